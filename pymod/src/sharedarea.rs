//! Shared areas (spec §8.2, uWSGI 2.0's API: the area id first), on the instance's
//! [`SharedAreas`](uwsgi_server_state::sharedarea::SharedAreas). Every failure — an id
//! that does not exist, bytes outside the area — raises `UwsgiValueError` (a
//! `ValueError`, as uWSGI 2.0 raises). Writes and increments return `None`, as 2.0.

use std::sync::{Arc, Condvar, Mutex};

use pyo3::prelude::*;
use pyo3::types::PyBytes;
use uwsgi_server_state::sharedarea::SharedAreaError;

use crate::convert::bytes_of;
use crate::errors;
use crate::instance::{self, lock};

fn area_error(py: Python<'_>, err: &SharedAreaError) -> PyErr {
    errors::value_error(py, err.to_string())
}

fn id_of(py: Python<'_>, id: i64) -> PyResult<usize> {
    usize::try_from(id)
        .map_err(|_| errors::value_error(py, format!("sharedarea {id} does not exist")))
}

fn pos_of(py: Python<'_>, pos: i64) -> PyResult<u64> {
    u64::try_from(pos)
        .map_err(|_| errors::value_error(py, format!("invalid sharedarea offset {pos}")))
}

/// `sharedarea_read(id, pos, len=0)`: `len` bytes at `pos`; 0 reads to the end.
#[pyfunction]
#[pyo3(signature = (id, pos, len=0))]
pub fn sharedarea_read(
    py: Python<'_>,
    id: i64,
    pos: i64,
    len: i64,
) -> PyResult<Bound<'_, PyBytes>> {
    let (id, pos) = (id_of(py, id)?, pos_of(py, pos)?);
    let len = u64::try_from(len).map_err(|_| errors::value_error(py, "negative length"))?;
    let bytes = instance::current()
        .state
        .sharedareas()
        .read(id, pos, len)
        .map_err(|e| area_error(py, &e))?;
    Ok(PyBytes::new(py, &bytes))
}

/// `sharedarea_write(id, pos, data)`: writes the bytes at `pos`.
#[pyfunction]
pub fn sharedarea_write(
    py: Python<'_>,
    id: i64,
    pos: i64,
    data: &Bound<'_, PyAny>,
) -> PyResult<()> {
    let data = bytes_of(data, "data")?;
    let (id, pos) = (id_of(py, id)?, pos_of(py, pos)?);
    instance::current()
        .state
        .sharedareas()
        .write(id, pos, &data)
        .map_err(|e| area_error(py, &e))
}

macro_rules! int_functions {
    ($read:ident, $write:ident, $t:ty) => {
        #[doc = concat!("`", stringify!($read), "(id, pos)`: the native-endian ", stringify!($t), " at `pos`.")]
        #[pyfunction]
        pub fn $read(py: Python<'_>, id: i64, pos: i64) -> PyResult<$t> {
            let (id, pos) = (id_of(py, id)?, pos_of(py, pos)?);
            instance::current()
                .state
                .sharedareas()
                .read_int::<$t>(id, pos)
                .map_err(|e| area_error(py, &e))
        }

        #[doc = concat!("`", stringify!($write), "(id, pos, value)`: writes a native-endian ", stringify!($t), ".")]
        #[pyfunction]
        pub fn $write(py: Python<'_>, id: i64, pos: i64, value: $t) -> PyResult<()> {
            let (id, pos) = (id_of(py, id)?, pos_of(py, pos)?);
            instance::current()
                .state
                .sharedareas()
                .write_int::<$t>(id, pos, value)
                .map_err(|e| area_error(py, &e))
        }
    };
}

int_functions!(sharedarea_read8, sharedarea_write8, i8);
int_functions!(sharedarea_read16, sharedarea_write16, i16);
int_functions!(sharedarea_read32, sharedarea_write32, i32);
int_functions!(sharedarea_read64, sharedarea_write64, i64);

macro_rules! step_function {
    ($name:ident, $method:ident, $t:ty) => {
        #[doc = concat!("`", stringify!($name), "(id, pos, value=1)`: wrapping ", stringify!($method), " of the ", stringify!($t), " at `pos`.")]
        #[pyfunction]
        #[pyo3(signature = (id, pos, value=1))]
        pub fn $name(py: Python<'_>, id: i64, pos: i64, value: $t) -> PyResult<()> {
            let (id, pos) = (id_of(py, id)?, pos_of(py, pos)?);
            instance::current()
                .state
                .sharedareas()
                .$method::<$t>(id, pos, value)
                .map(|_| ())
                .map_err(|e| area_error(py, &e))
        }
    };
}

step_function!(sharedarea_inc32, inc, i32);
step_function!(sharedarea_inc64, inc, i64);
step_function!(sharedarea_dec32, dec, i32);
step_function!(sharedarea_dec64, dec, i64);

/// `sharedarea_update(id)`: marks the area as changed.
#[pyfunction]
pub fn sharedarea_update(py: Python<'_>, id: i64) -> PyResult<()> {
    let id = id_of(py, id)?;
    instance::current()
        .state
        .sharedareas()
        .mark_updated(id)
        .map_err(|e| area_error(py, &e))
}

/// The user-level read/write locks of `sharedarea_rlock/wlock/unlock`: held across
/// calls, so a guard cannot express them; readers count and a writer flag instead.
#[derive(Debug, Default)]
pub struct AreaLock {
    state: Mutex<(u32, bool)>,
    changed: Condvar,
}

static AREA_LOCKS: Mutex<Vec<Arc<AreaLock>>> = Mutex::new(Vec::new());

/// Forgets every area lock (`uwsgi.testing.reset`).
pub fn reset_locks() {
    lock(&AREA_LOCKS).clear();
}

fn area_lock(py: Python<'_>, id: i64) -> PyResult<Arc<AreaLock>> {
    let id = id_of(py, id)?;
    // The id must exist in the current instance.
    instance::current()
        .state
        .sharedareas()
        .size(id)
        .map_err(|e| area_error(py, &e))?;
    let mut locks = lock(&AREA_LOCKS);
    while locks.len() <= id {
        locks.push(Arc::default());
    }
    Ok(Arc::clone(&locks[id]))
}

/// `sharedarea_rlock(id)`: takes the area's lock for reading (waits for a writer).
#[pyfunction]
pub fn sharedarea_rlock(py: Python<'_>, id: i64) -> PyResult<()> {
    let area = area_lock(py, id)?;
    py.detach(|| {
        let mut state = lock(&area.state);
        while state.1 {
            state = area
                .changed
                .wait(state)
                .unwrap_or_else(std::sync::PoisonError::into_inner);
        }
        state.0 += 1;
    });
    Ok(())
}

/// `sharedarea_wlock(id)`: takes the area's lock for writing (waits for everyone).
#[pyfunction]
pub fn sharedarea_wlock(py: Python<'_>, id: i64) -> PyResult<()> {
    let area = area_lock(py, id)?;
    py.detach(|| {
        let mut state = lock(&area.state);
        while state.1 || state.0 > 0 {
            state = area
                .changed
                .wait(state)
                .unwrap_or_else(std::sync::PoisonError::into_inner);
        }
        state.1 = true;
    });
    Ok(())
}

/// `sharedarea_unlock(id)`: releases the writer, or one reader. Unlocking an area
/// nobody locked raises `UwsgiValueError`.
#[pyfunction]
pub fn sharedarea_unlock(py: Python<'_>, id: i64) -> PyResult<()> {
    let area = area_lock(py, id)?;
    let mut state = lock(&area.state);
    if state.1 {
        state.1 = false;
    } else if state.0 > 0 {
        state.0 -= 1;
    } else {
        return Err(errors::value_error(
            py,
            format!("sharedarea {id} is not locked"),
        ));
    }
    drop(state);
    area.changed.notify_all();
    Ok(())
}

/// The memory of one shared area, lent to Python through the buffer protocol (what
/// `sharedarea_memoryview` wraps in a `memoryview`). It holds the instance's state, so
/// the mapping stays alive as long as any view of it does — even after
/// `uwsgi.testing.reset()` replaced the instance.
#[pyclass(frozen, module = "uwsgi")]
#[derive(Debug)]
pub struct SharedAreaMemory {
    state: Arc<uwsgi_server_state::ServerState>,
    id: usize,
}

// The one unsafe function of the crate: CPython's buffer protocol is a raw-pointer
// interface (pyo3 offers no safe way to export memory), and the area is memory shared
// with other processes that Rust cannot borrow for Python's lifetime anyway.
#[allow(unsafe_code)]
#[pymethods]
impl SharedAreaMemory {
    /// Exports the area's bytes, writable, one dimension of unsigned bytes.
    ///
    /// # Safety
    ///
    /// Called by CPython only, with `view` pointing at a `Py_buffer` to fill.
    unsafe fn __getbuffer__(
        slf: Bound<'_, Self>,
        view: *mut pyo3::ffi::Py_buffer,
        flags: std::os::raw::c_int,
    ) -> PyResult<()> {
        let memory = slf.get();
        let (ptr, len) = memory
            .state
            .sharedareas()
            .raw_area(memory.id)
            .map_err(|e| area_error(slf.py(), &e))?;
        let len = pyo3::ffi::Py_ssize_t::try_from(len)
            .map_err(|_| errors::value_error(slf.py(), "sharedarea too large to export"))?;
        // SAFETY: `view` comes from CPython (the contract of this slot). The area is
        // `len` bytes at `ptr`, owned by `memory.state`; PyBuffer_FillInfo stores a new
        // reference to `slf` in `view.obj`, so this object (and through it the Arc that
        // keeps the mapping) lives until the last consumer releases the buffer. The
        // bytes may change under Python at any time (other processes write them too):
        // that is what uWSGI's memoryview exposes, and the buffer protocol promises no
        // more. Within this process, Python writes through the view hold the GIL, and
        // so does every `sharedarea_*` function while its Rust slice over the area
        // lives (none releases the GIL around the bytes), so no Rust reference to the
        // bytes is live during such a write. The format pointer stays NULL (bytes), so
        // nothing needs freeing.
        let filled = unsafe {
            pyo3::ffi::PyBuffer_FillInfo(view, slf.as_ptr(), ptr.as_ptr().cast(), len, 0, flags)
        };
        if filled == 0 {
            Ok(())
        } else {
            Err(PyErr::fetch(slf.py()))
        }
    }
}

/// `sharedarea_memoryview(id)`: a writable `memoryview` over the whole area, as uWSGI
/// 2.0. Writes through it go straight to the shared memory (every worker sees them)
/// without the area's lock, as uWSGI's; `sharedarea_read`/`write` take the lock. An
/// unknown id raises `UwsgiValueError`.
#[pyfunction]
pub fn sharedarea_memoryview(py: Python<'_>, id: i64) -> PyResult<Bound<'_, PyAny>> {
    let state = Arc::clone(&instance::current().state);
    let id = usize::try_from(id)
        .ok()
        .filter(|&id| state.sharedareas().size(id).is_ok())
        .ok_or_else(|| {
            errors::value_error(
                py,
                format!("cannot get a memoryview object from sharedarea {id}"),
            )
        })?;
    let memory = Bound::new(py, SharedAreaMemory { state, id })?;
    py.import("builtins")?
        .getattr("memoryview")?
        .call1((memory,))
}

/// `sharedarea_object(id)`: uWSGI returns the Python object an area was created
/// from (`--sharedarea` with `obj=`, an embedding-only form); uwsgi-rs areas are bytes
/// only, so it raises `UwsgiValueError`.
#[pyfunction]
pub fn sharedarea_object(py: Python<'_>, id: i64) -> PyResult<()> {
    Err(errors::value_error(
        py,
        format!(
            "cannot get an object from sharedarea {id}: uwsgi-rs areas are bytes only; use \
             sharedarea_read/sharedarea_write"
        ),
    ))
}

/// Adds the functions (and uWSGI 2.0's aliases) to the module.
pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(sharedarea_read, m)?)?;
    m.add_function(wrap_pyfunction!(sharedarea_write, m)?)?;
    for (name, function) in [
        ("sharedarea_read8", wrap_pyfunction!(sharedarea_read8, m)?),
        (
            "sharedarea_readbyte",
            wrap_pyfunction!(sharedarea_read8, m)?,
        ),
        ("sharedarea_write8", wrap_pyfunction!(sharedarea_write8, m)?),
        (
            "sharedarea_writebyte",
            wrap_pyfunction!(sharedarea_write8, m)?,
        ),
        ("sharedarea_read16", wrap_pyfunction!(sharedarea_read16, m)?),
        (
            "sharedarea_write16",
            wrap_pyfunction!(sharedarea_write16, m)?,
        ),
        ("sharedarea_read32", wrap_pyfunction!(sharedarea_read32, m)?),
        (
            "sharedarea_write32",
            wrap_pyfunction!(sharedarea_write32, m)?,
        ),
        ("sharedarea_read64", wrap_pyfunction!(sharedarea_read64, m)?),
        (
            "sharedarea_readlong",
            wrap_pyfunction!(sharedarea_read64, m)?,
        ),
        (
            "sharedarea_write64",
            wrap_pyfunction!(sharedarea_write64, m)?,
        ),
        (
            "sharedarea_writelong",
            wrap_pyfunction!(sharedarea_write64, m)?,
        ),
        ("sharedarea_inc32", wrap_pyfunction!(sharedarea_inc32, m)?),
        ("sharedarea_inc64", wrap_pyfunction!(sharedarea_inc64, m)?),
        ("sharedarea_inclong", wrap_pyfunction!(sharedarea_inc64, m)?),
        ("sharedarea_dec32", wrap_pyfunction!(sharedarea_dec32, m)?),
        ("sharedarea_dec64", wrap_pyfunction!(sharedarea_dec64, m)?),
    ] {
        m.add(name, function)?;
    }
    m.add_function(wrap_pyfunction!(sharedarea_update, m)?)?;
    m.add_function(wrap_pyfunction!(sharedarea_rlock, m)?)?;
    m.add_function(wrap_pyfunction!(sharedarea_wlock, m)?)?;
    m.add_function(wrap_pyfunction!(sharedarea_unlock, m)?)?;
    m.add_function(wrap_pyfunction!(sharedarea_memoryview, m)?)?;
    m.add_function(wrap_pyfunction!(sharedarea_object, m)?)?;
    m.add_class::<SharedAreaMemory>()?;
    Ok(())
}
