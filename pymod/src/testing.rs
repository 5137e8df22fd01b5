//! `uwsgi.testing`: control of the standalone instance for the tests of applications
//! that `import uwsgi` (and of this module).
//!
//! ```python
//! import uwsgi, uwsgi.testing
//!
//! @pytest.fixture(autouse=True)
//! def fresh_uwsgi(tmp_path):
//!     uwsgi.testing.configure(spooler=tmp_path / "spool", locks=4)
//!     yield
//!     uwsgi.testing.reset()
//! ```
//!
//! `configure` builds a new instance (caches, queue, shared areas, locks, spoolers,
//! clock) — keywords left out take the standalone defaults; `reset` builds a new one
//! with the current settings. Either way every registration (RPC functions, signal
//! handlers, timers), cached item, queued message, log var and connection of the old
//! instance is gone (a connection is shut down, its descriptor number kept until
//! `uwsgi.close`: see [`crate::sockets::close_all`]). Module attributes set by the
//! application (`uwsgi.spooler = f`) are left alone.

use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::time::Duration;

use pyo3::exceptions::PyTypeError;
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyDict, PyList, PyString};
use uwsgi_server_state::queue::{DEFAULT_BLOCKSIZE, QueueConfig};
use uwsgi_server_state::sharedarea::SharedAreaConfig;

use crate::convert;
use crate::errors;
use crate::globals;
use crate::instance::{self, Settings, lock};
use crate::{marshal, process, sharedarea, signals, sockets, spooler};

/// A path from `str`, `bytes` or `os.PathLike`.
fn path_of(value: &Bound<'_, PyAny>) -> PyResult<PathBuf> {
    let fspath = value.py().import("os")?.call_method1("fspath", (value,))?;
    match fspath.cast::<PyBytes>() {
        Ok(bytes) => {
            use std::os::unix::ffi::OsStringExt;
            Ok(PathBuf::from(std::ffi::OsString::from_vec(
                bytes.as_bytes().to_vec(),
            )))
        }
        Err(_) => fspath.extract::<PathBuf>(),
    }
}

/// One path or a list of them.
fn paths_of(value: &Bound<'_, PyAny>) -> PyResult<Vec<PathBuf>> {
    if value.is_instance_of::<PyList>() || value.is_instance_of::<pyo3::types::PyTuple>() {
        value.try_iter()?.map(|item| path_of(&item?)).collect()
    } else {
        Ok(vec![path_of(value)?])
    }
}

/// `--cache2` strings: one or a list.
fn strings_of(value: &Bound<'_, PyAny>) -> PyResult<Vec<String>> {
    if let Ok(text) = value.cast::<PyString>() {
        return Ok(vec![text.to_str()?.to_owned()]);
    }
    value
        .try_iter()?
        .map(|item| item?.extract::<String>())
        .collect()
}

/// Shared areas: a number of pages, a `--sharedarea` option string, or a list of them.
fn sharedareas_of(py: Python<'_>, value: &Bound<'_, PyAny>) -> PyResult<Vec<u64>> {
    let one = |item: &Bound<'_, PyAny>| -> PyResult<u64> {
        if let Ok(pages) = item.extract::<u64>() {
            return Ok(pages);
        }
        let option: String = item.extract().map_err(|_| {
            PyTypeError::new_err("sharedareas: a number of pages or a --sharedarea option string")
        })?;
        SharedAreaConfig::from_option(&option)
            .map(|config| config.pages)
            .map_err(|e| errors::value_error(py, e.to_string()))
    };
    if value.is_instance_of::<PyList>() || value.is_instance_of::<pyo3::types::PyTuple>() {
        value.try_iter()?.map(|item| one(&item?)).collect()
    } else {
        Ok(vec![one(value)?])
    }
}

/// Replaces the current instance and refreshes the module globals.
fn install(py: Python<'_>, settings: Settings) -> PyResult<()> {
    // Inside a server the instance is the server's own state: replacing it would cut
    // the application off from the server.
    if crate::embed::is_embedded() {
        return Err(errors::UwsgiError::new_err(
            "uwsgi.testing.configure()/reset() only work standalone: this module is embedded in a server",
        ));
    }
    instance::replace(settings).map_err(|why| errors::value_error(py, why))?;
    process::reset_options();
    process::reset_snmp();
    sharedarea::reset_locks();
    sockets::close_all();
    globals::refresh(py)
}

/// `configure(*, caches=…, queue=…, queue_blocksize=8192, sharedareas=…, locks=0,
/// rpc_max=64, spooler=None, spooler_ordered=False, socket_timeout=4.0, clock=None,
/// opt=None)`: a fresh instance with these settings; keywords left out take the
/// standalone defaults (docs/python.md). `caches` are `--cache2` option strings (`[]`:
/// no cache); `queue` a number of slots (0: no queue); `sharedareas` page counts or
/// `--sharedarea` strings (`[]`: none); `spooler` one directory or a list (created if
/// missing); `clock` a unix time to start a manual clock at (moved by `advance_time`),
/// `None` for the system clock; `opt` the dict `uwsgi.opt` shows.
#[pyfunction]
#[pyo3(signature = (
    *,
    caches=None,
    queue=None,
    queue_blocksize=DEFAULT_BLOCKSIZE,
    sharedareas=None,
    locks=0,
    rpc_max=uwsgi_server_state::rpc::DEFAULT_MAX_FUNCTIONS,
    spooler=None,
    spooler_ordered=false,
    socket_timeout=None,
    clock=None,
    opt=None,
), text_signature = "(*, caches=None, queue=None, queue_blocksize=8192, sharedareas=None, \
    locks=0, rpc_max=64, spooler=None, spooler_ordered=False, socket_timeout=None, clock=None, \
    opt=None)")]
#[allow(clippy::too_many_arguments)]
pub fn configure(
    py: Python<'_>,
    caches: Option<&Bound<'_, PyAny>>,
    queue: Option<u64>,
    queue_blocksize: u64,
    sharedareas: Option<&Bound<'_, PyAny>>,
    locks: u32,
    rpc_max: usize,
    spooler: Option<&Bound<'_, PyAny>>,
    spooler_ordered: bool,
    socket_timeout: Option<f64>,
    clock: Option<u64>,
    opt: Option<&Bound<'_, PyDict>>,
) -> PyResult<()> {
    let mut settings = Settings::standalone();
    if let Some(caches) = caches {
        settings.caches = strings_of(caches)?;
    }
    if let Some(slots) = queue {
        settings.queue = (slots > 0).then_some(QueueConfig {
            slots,
            blocksize: queue_blocksize,
        });
    } else if queue_blocksize != DEFAULT_BLOCKSIZE {
        settings.queue = settings.queue.map(|q| QueueConfig {
            blocksize: queue_blocksize,
            ..q
        });
    }
    if let Some(areas) = sharedareas {
        settings.sharedareas = sharedareas_of(py, areas)?;
    }
    settings.locks = locks;
    settings.rpc_max = rpc_max;
    if let Some(spooler) = spooler.filter(|s| !s.is_none()) {
        settings.spoolers = paths_of(spooler)?;
    }
    settings.spooler_ordered = spooler_ordered;
    if let Some(timeout) = socket_timeout {
        settings.socket_timeout = convert::seconds(py, timeout, "socket_timeout")?;
    }
    settings.manual_clock = clock;
    install(py, settings)?;
    globals::set_opt(py, opt)
}

/// `reset()`: a fresh instance with the current settings (see the module docs).
#[pyfunction]
pub fn reset(py: Python<'_>) -> PyResult<()> {
    let settings = instance::current().settings.clone();
    install(py, settings)
}

/// `run_spooler()`: runs every job ready now through `uwsgi.spooler` (see
/// `spooler::run_pending`); returns `{"done", "retried", "ignored", "malformed",
/// "skipped"}` counts.
#[pyfunction]
pub fn run_spooler(py: Python<'_>) -> PyResult<Bound<'_, PyDict>> {
    let instance = instance::current();
    if instance.state.spoolers().is_empty() {
        return Err(errors::value_error(
            py,
            "no spooler configured (uwsgi.testing.configure(spooler=DIR) adds one)",
        ));
    }
    let report = spooler::run_pending(py, &instance)?;
    let counts = PyDict::new(py);
    counts.set_item("done", report.done)?;
    counts.set_item("retried", report.retried)?;
    counts.set_item("ignored", report.ignored)?;
    counts.set_item("malformed", report.malformed)?;
    counts.set_item("skipped", report.skipped)?;
    Ok(counts)
}

/// `run_timers()`: raises every signal due now — timers, rb timers, crons matching the
/// local time, file monitors whose file changed — and returns their numbers.
#[pyfunction]
pub fn run_timers(py: Python<'_>) -> PyResult<Vec<u32>> {
    let instance = instance::current();
    Ok(numbers(signals::run_due(py, &instance)?))
}

/// Signal numbers as a list of ints (a `Vec<u8>` would become `bytes`).
fn numbers(signals: Vec<u8>) -> Vec<u32> {
    signals.into_iter().map(u32::from).collect()
}

/// `advance_time(seconds)`: moves the manual clock (see `configure(clock=…)`) forward,
/// sweeps expired cache items, and runs what is due (`run_timers`); returns the signals
/// raised. With the system clock, `UwsgiValueError`.
#[pyfunction]
pub fn advance_time(py: Python<'_>, seconds: f64) -> PyResult<Vec<u32>> {
    let instance = instance::current();
    let Some(clock) = instance.manual_clock.as_ref() else {
        return Err(errors::value_error(
            py,
            "advance_time needs the manual clock: uwsgi.testing.configure(clock=START)",
        ));
    };
    if !(seconds.is_finite() && seconds >= 0.0) {
        return Err(errors::value_error(
            py,
            "seconds must be a non-negative number",
        ));
    }
    clock.advance(Duration::from_secs_f64(seconds));
    instance.state.caches().sweep_expired(instance.now());
    Ok(numbers(signals::run_due(py, &instance)?))
}

/// `now()`: the instance's clock, in unix seconds.
#[pyfunction]
pub fn now() -> u64 {
    instance::current().now()
}

/// `info()`: what the current instance holds: cache names, queue size, shared area
/// sizes, lock count, spool directories, spooler frequency, ping warning, socket
/// timeout, whether the clock is manual, registered RPC functions and signals.
#[pyfunction]
pub fn info(py: Python<'_>) -> PyResult<Bound<'_, PyDict>> {
    let instance = instance::current();
    let state = &instance.state;
    let info = PyDict::new(py);
    let caches: Vec<String> = state.caches().iter().map(|c| c.name().to_owned()).collect();
    info.set_item("caches", caches)?;
    info.set_item("queue_size", state.queue().map(|q| q.size()))?;
    let areas: Vec<u64> = (0..state.sharedareas().len())
        .filter_map(|id| state.sharedareas().size(id).ok())
        .collect();
    info.set_item("sharedareas", areas)?;
    info.set_item("locks", state.locks().count())?;
    let spoolers: Vec<Bound<'_, PyBytes>> = state
        .spoolers()
        .iter()
        .map(|s| {
            use std::os::unix::ffi::OsStrExt;
            PyBytes::new(py, s.dir().as_os_str().as_bytes())
        })
        .collect();
    info.set_item("spoolers", spoolers)?;
    info.set_item(
        "spooler_frequency",
        instance.spooler_frequency.load(Ordering::Relaxed),
    )?;
    info.set_item(
        "warning_message",
        PyBytes::new(py, &lock(&instance.warning_message)),
    )?;
    info.set_item(
        "socket_timeout",
        instance.settings.socket_timeout.as_secs_f64(),
    )?;
    info.set_item("manual_clock", instance.manual_clock.is_some())?;
    let rpc: Vec<Bound<'_, PyBytes>> = state
        .rpc()
        .list()
        .iter()
        .map(|n| PyBytes::new(py, n))
        .collect();
    info.set_item("rpc", rpc)?;
    let signums: Vec<u32> = state
        .signals()
        .registered()
        .into_iter()
        .map(u32::from)
        .collect();
    info.set_item("signals", signums)?;
    info.set_item("generation", instance::generation())?;
    Ok(info)
}

/// `snmp_value(oid)`: the value kept by the `snmp_*` functions in slot `oid`, or `None`.
#[pyfunction]
pub fn snmp_value(oid: usize) -> Option<u64> {
    process::snmp_value(oid)
}

/// `marshal_dumps(obj, version=1)`: `obj` in Python's marshal format, written by the
/// protocol crate's codec (what `send_message` sends for modifier1 33).
#[pyfunction]
#[pyo3(signature = (obj, version=marshal::CLIENT_VERSION), text_signature = "(obj, version=1)")]
pub fn marshal_dumps<'py>(
    py: Python<'py>,
    obj: &Bound<'py, PyAny>,
    version: u8,
) -> PyResult<Bound<'py, PyBytes>> {
    Ok(PyBytes::new(py, &marshal::dumps(obj, version)?))
}

/// `marshal_loads(data)`: the object in marshal bytes, read by the protocol crate's
/// codec (what `send_message` returns for a modifier1 33 reply). Malformed bytes raise
/// `ProtocolError`.
#[pyfunction]
pub fn marshal_loads<'py>(
    py: Python<'py>,
    data: &Bound<'py, PyAny>,
) -> PyResult<Bound<'py, PyAny>> {
    let data = convert::bytes_of(data, "data")?;
    marshal::loads(py, &data)
}

/// `encode_vars(dict)`: the uwsgi vars block of a dict (what `send_message` sends for a
/// dict payload).
#[pyfunction]
pub fn encode_vars<'py>(
    py: Python<'py>,
    vars: &Bound<'py, PyDict>,
) -> PyResult<Bound<'py, PyBytes>> {
    Ok(PyBytes::new(
        py,
        &crate::client::vars_of(vars, "vars")?.into_block(),
    ))
}

/// The `uwsgi.testing` submodule.
pub fn module(py: Python<'_>) -> PyResult<Bound<'_, PyModule>> {
    let m = PyModule::new(py, "uwsgi.testing")?;
    m.setattr(
        "__doc__",
        "Control of the standalone uwsgi instance, for tests (see docs/python.md).",
    )?;
    m.add_function(wrap_pyfunction!(configure, &m)?)?;
    m.add_function(wrap_pyfunction!(reset, &m)?)?;
    m.add_function(wrap_pyfunction!(run_spooler, &m)?)?;
    m.add_function(wrap_pyfunction!(run_timers, &m)?)?;
    m.add_function(wrap_pyfunction!(advance_time, &m)?)?;
    m.add_function(wrap_pyfunction!(now, &m)?)?;
    m.add_function(wrap_pyfunction!(info, &m)?)?;
    m.add_function(wrap_pyfunction!(snmp_value, &m)?)?;
    m.add_function(wrap_pyfunction!(marshal_dumps, &m)?)?;
    m.add_function(wrap_pyfunction!(marshal_loads, &m)?)?;
    m.add_function(wrap_pyfunction!(encode_vars, &m)?)?;
    Ok(m)
}
