//! What the `uwsgi` module's request functions reach of the request this thread serves:
//! its output (the writer the server gave the app), a copy of its vars, the vars the
//! application added (`uwsgi.add_var`), and its `wsgi.input`.
//!
//! The output is a `&mut dyn Output` borrowed for the time of the request. It is kept in
//! a thread-local slot by [`install`] and lent out by [`with_output`], which takes it out
//! of the slot while it is used: one user at a time (the response writer or a module
//! function), never two.

use std::cell::{Cell, RefCell};
use std::marker::PhantomData;
use std::ptr::NonNull;

use pyo3::prelude::*;
use uwsgi_protocol::Vars;

use crate::app::Output;

/// The current request's output, with its lifetime erased (see [`install`]).
type Slot = Option<NonNull<dyn Output + 'static>>;

thread_local! {
    static OUTPUT: Cell<Slot> = const { Cell::new(None) };
    /// The current request's vars block (uwsgi encoding), modifier1 and modifier2.
    static VARS: RefCell<(Vec<u8>, u8, u8)> = const { RefCell::new((Vec::new(), 0, 0)) };
    /// Vars added by `uwsgi.add_var` during the current request.
    static ADDED: RefCell<Vec<(Vec<u8>, Vec<u8>)>> = const { RefCell::new(Vec::new()) };
    /// The current request's `wsgi.input`.
    static INPUT: RefCell<Option<Py<super::input::Input>>> = const { RefCell::new(None) };
    /// The current request's `start_response`, which `uwsgi.start_response` calls.
    static START_RESPONSE: RefCell<Option<Py<PyAny>>> = const { RefCell::new(None) };
}

/// The output lent to the thread-local slot; it goes back to its owner when dropped.
#[derive(Debug)]
pub struct Installed<'o> {
    _borrow: PhantomData<&'o mut dyn Output>,
}

/// Lends `out` to the slot until the returned guard is dropped.
#[allow(unsafe_code)]
pub fn install<'o>(out: &'o mut dyn Output) -> Installed<'o> {
    let pointer: NonNull<dyn Output + 'o> = NonNull::from(out);
    // SAFETY: only the lifetime changes. The pointer leaves the slot when the guard,
    // which holds the `'o` borrow, is dropped, and [`with_output`] hands it out only
    // for the length of a call it does not let escape; so it is never used after `'o`.
    let pointer: NonNull<dyn Output + 'static> = unsafe { std::mem::transmute(pointer) };
    OUTPUT.with(|slot| slot.set(Some(pointer)));
    Installed {
        _borrow: PhantomData,
    }
}

impl Drop for Installed<'_> {
    fn drop(&mut self) {
        OUTPUT.with(|slot| slot.set(None));
    }
}

/// Runs `f` on the current request's output; `None` outside a request, or while the
/// output is already in use further up this thread's stack.
#[allow(unsafe_code)]
pub fn with_output<R>(f: impl FnOnce(&mut dyn Output) -> R) -> Option<R> {
    struct Restore(NonNull<dyn Output + 'static>);
    impl Drop for Restore {
        fn drop(&mut self) {
            let pointer = self.0;
            OUTPUT.with(|slot| slot.set(Some(pointer)));
        }
    }
    let pointer = OUTPUT.with(Cell::take)?;
    let restore = Restore(pointer);
    // SAFETY: the pointer came from a live `&mut` (see [`install`]) and was taken out
    // of the slot, so this is the only reference to the output until `restore` puts it
    // back; the borrow below does not outlive `f`.
    let out = unsafe { &mut *restore.0.as_ptr() };
    Some(f(out))
}

/// Records the request (a copy of its vars block) at its start, and forgets what the
/// previous one added.
pub fn begin(vars: &Vars<'_>, modifier1: u8, modifier2: u8) {
    VARS.with(|slot| {
        let mut slot = slot.borrow_mut();
        slot.0.clear();
        slot.0.extend_from_slice(vars.as_bytes());
        slot.1 = modifier1;
        slot.2 = modifier2;
    });
    ADDED.with(|added| added.borrow_mut().clear());
}

/// Forgets the request's `wsgi.input` and `start_response` at its end.
pub fn end() {
    INPUT.with(|slot| slot.borrow_mut().take());
    START_RESPONSE.with(|slot| slot.borrow_mut().take());
}

/// Keeps the request's `start_response` for `uwsgi.start_response`.
pub fn set_start_response(start_response: Py<PyAny>) {
    START_RESPONSE.with(|slot| *slot.borrow_mut() = Some(start_response));
}

/// `uwsgi.start_response(status, headers, exc_info=None)`: the `start_response` of the
/// request this thread serves, as uWSGI's module-level one (`wsgi_spitout`) answers
/// for the current request. Being per thread, it is right under `--threads` too.
/// Outside a request it raises `SystemError`, uWSGI's "only from the main callable".
#[pyfunction]
#[pyo3(signature = (*args, **kwargs))]
pub fn start_response<'py>(
    py: Python<'py>,
    args: &Bound<'py, pyo3::types::PyTuple>,
    kwargs: Option<&Bound<'py, pyo3::types::PyDict>>,
) -> PyResult<Bound<'py, PyAny>> {
    let current = START_RESPONSE.with(|slot| slot.borrow().as_ref().map(|s| s.clone_ref(py)));
    match current {
        Some(start_response) => start_response.bind(py).call(args, kwargs),
        None => Err(pyo3::exceptions::PySystemError::new_err(
            "you can call uwsgi api function only from the main callable",
        )),
    }
}

/// Keeps the request's `wsgi.input` for `uwsgi.chunked_read` and `uwsgi.route`.
pub fn set_input(input: Py<super::input::Input>) {
    INPUT.with(|slot| *slot.borrow_mut() = Some(input));
}

/// The request's `wsgi.input`.
pub fn input(py: Python<'_>) -> Option<Py<super::input::Input>> {
    INPUT.with(|slot| slot.borrow().as_ref().map(|i| i.clone_ref(py)))
}

/// The value of the current request's var `key` (an added one wins).
pub fn var(key: &[u8]) -> Option<Vec<u8>> {
    let added = ADDED.with(|added| {
        added
            .borrow()
            .iter()
            .rev()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.clone())
    });
    added.or_else(|| {
        VARS.with(|slot| {
            let slot = slot.borrow();
            Vars::parse(&slot.0, usize::MAX)
                .ok()
                .and_then(|vars| vars.get(key).map(<[u8]>::to_vec))
        })
    })
}

/// The vars the request added, taken for its log line once it is served.
pub fn take_added() -> Vec<(Vec<u8>, Vec<u8>)> {
    ADDED.with(|added| std::mem::take(&mut *added.borrow_mut()))
}

/// The current request's vars block with the added vars after it, and its modifiers.
pub fn vars_block() -> (Vec<u8>, u8, u8) {
    let (mut block, modifier1, modifier2) = VARS.with(|slot| slot.borrow().clone());
    ADDED.with(|added| {
        for (key, value) in added.borrow().iter() {
            push_pair(&mut block, key, value);
        }
    });
    (block, modifier1, modifier2)
}

/// Appends one pair in the uwsgi encoding (16-bit little-endian sizes).
fn push_pair(block: &mut Vec<u8>, key: &[u8], value: &[u8]) {
    for part in [key, value] {
        let len = u16::try_from(part.len()).unwrap_or(u16::MAX);
        block.extend_from_slice(&len.to_le_bytes());
        block.extend_from_slice(&part[..usize::from(len)]);
    }
}

/// `uwsgi.add_var(key, value)`: adds a var to the current request, as uWSGI appends it
/// to the request's buffer; `false` when the vars would no longer fit a uwsgi packet
/// (`limit`: the packet's largest vars block, `--buffer-size`).
pub fn add_var(key: &[u8], value: &[u8], limit: usize) -> bool {
    let used = VARS.with(|slot| slot.borrow().0.len())
        + ADDED.with(|added| {
            added
                .borrow()
                .iter()
                .map(|(k, v)| 4 + k.len() + v.len())
                .sum::<usize>()
        });
    if key.len() > usize::from(u16::MAX)
        || value.len() > usize::from(u16::MAX)
        || used + 4 + key.len() + value.len() > limit
    {
        return false;
    }
    ADDED.with(|added| added.borrow_mut().push((key.to_vec(), value.to_vec())));
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn added_vars_follow_the_block_and_win_lookups() {
        let mut block = Vec::new();
        push_pair(&mut block, b"A", b"1");
        let vars = Vars::parse(&block, 10).unwrap();
        begin(&vars, 0, 0);
        assert_eq!(var(b"A").as_deref(), Some(&b"1"[..]));
        assert!(add_var(b"A", b"2", 4096));
        assert!(add_var(b"B", b"3", 4096));
        assert_eq!(var(b"A").as_deref(), Some(&b"2"[..]));
        let (all, _, _) = vars_block();
        let parsed = Vars::parse(&all, 10).unwrap();
        assert_eq!(parsed.len(), 3);
        assert_eq!(parsed.get(b"B"), Some(&b"3"[..]));
        assert!(!add_var(b"C", &[b'x'; 5000], 4096));
        begin(&Vars::EMPTY, 0, 0);
        assert_eq!(var(b"B"), None);
    }

    #[test]
    fn the_output_is_lent_to_one_user_at_a_time() {
        let mut out: Vec<u8> = Vec::new();
        {
            let _installed = install(&mut out);
            let nested = with_output(|o| {
                o.write_all(b"ab").unwrap();
                with_output(|_| ()).is_none()
            });
            assert_eq!(nested, Some(true));
            assert_eq!(with_output(|o| o.write_all(b"c").is_ok()), Some(true));
        }
        assert!(with_output(|_| ()).is_none());
        assert_eq!(out, b"abc");
    }
}
