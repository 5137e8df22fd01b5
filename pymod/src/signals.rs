//! uWSGI signals (spec §7.1, §8.5, §8.6): `register_signal`, `signal`,
//! `signal_registered`, `signal_wait`, `signal_received`, and what raises signals on its
//! own: `add_timer`, `add_ms_timer`, `add_rb_timer`, `add_cron`, `add_file_monitor`
//! (`add_probe` existed in 1.4 only).
//!
//! Standalone, the process is worker 1 and also plays the master: a local `signal(n)`
//! runs the registered handler at once, in the calling thread, whatever its target
//! (there is one process), and an exception from the handler propagates to the caller.
//! The same holds embedded in a server without `--master` (one process, threads).
//!
//! Embedded under a master ([`ProcessRole`] other than `Alone`), the module follows
//! uWSGI 2.0: a registration is recorded for the registering process (the master before
//! the fork is worker 0, worker N is N; mules and spoolers may not register), a local
//! `signal(n)` goes to the master, which routes it by the master's registration, and
//! the receiving processes run their handlers on the server's signal thread.
//! Timers, crons and file monitors are registered in the instance's
//! [`Schedules`](uwsgi_server_state::timers::Schedules) and fire when
//! `uwsgi.testing.run_timers()` or `uwsgi.testing.advance_time()` is called: there is no
//! master loop in a standalone process.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use pyo3::exceptions::PyTypeError;
use pyo3::prelude::*;
use pyo3::types::{PyBool, PyBytes};
use uwsgi_server_state::signals::{HandlerFailure, SignalError, SignalHandler, SignalTarget};
use uwsgi_server_state::timers::{CivilTime, CronSpec, TimerError};

use crate::client;
use crate::convert::{self, bytes_of};
use crate::embed::ProcessRole;
use crate::errors;
use crate::instance::{self, Instance, WORKER_ID, lock, stash, take_stashed};
use uwsgi_server_state::signals::{MASTER, RaiseOutcome, WorkerId};

/// Where this code runs ([`ProcessRole::Alone`] standalone).
fn role() -> ProcessRole {
    instance::host().map_or(ProcessRole::Alone, |host| host.process_role())
}

/// The row of the signal table this process reads and writes: mules and spoolers are
/// worker 0, like the master, and run its registrations.
fn table_id(role: ProcessRole) -> WorkerId {
    match role {
        ProcessRole::Alone => WORKER_ID,
        ProcessRole::Worker(id) => id,
        ProcessRole::Master | ProcessRole::Mule(_) | ProcessRole::Spooler => MASTER,
    }
}

/// One line in the server log (embedded) or on the `uwsgi` logger (standalone).
fn log_line(py: Python<'_>, message: &str) -> PyResult<()> {
    match instance::host() {
        Some(host) => {
            host.log(message);
            Ok(())
        }
        None => log_warning(py, message),
    }
}

/// The logger uWSGI's log lines go to in a standalone module.
pub fn log_warning(py: Python<'_>, message: &str) -> PyResult<()> {
    py.import("logging")?
        .call_method1("getLogger", ("uwsgi",))?
        .call_method1("warning", ("%s", message))?;
    Ok(())
}

/// Calls the Python handler; its exception is stashed for the delivering call. Run by
/// the server's signal thread (under a master), it also wakes `signal_wait`.
fn make_handler(function: Py<PyAny>, routed: bool) -> Arc<dyn SignalHandler> {
    Arc::new(move |signum: u8| {
        let result = Python::attach(|py| {
            function
                .bind(py)
                .call1((signum,))
                .map(|_| ())
                .map_err(|err| HandlerFailure(stash(py, err)))
        });
        if routed {
            instance::current().note_signal(signum);
        }
        result
    })
}

/// Delivers `signum` in this process: runs its handler (its exception is raised here),
/// or logs, as uWSGI does, when no handler is registered or its target is unsupported.
pub fn deliver(py: Python<'_>, instance: &Instance, signum: u8) -> PyResult<()> {
    let table = instance.state.signals();
    let result = match table.entry(signum, WORKER_ID) {
        Some(entry) => match entry.target {
            SignalTarget::Unsupported(target) => {
                log_warning(
                    py,
                    &format!("unsupported signal target {target:?} for signal {signum}"),
                )?;
                Ok(())
            }
            _ => table.deliver(signum, WORKER_ID),
        },
        None => Err(SignalError::NotRegistered { signum }),
    };
    instance.note_signal(signum);
    match result {
        Ok(()) => Ok(()),
        Err(SignalError::HandlerFailed { failure, .. }) => {
            Err(take_stashed().unwrap_or_else(|| {
                errors::UwsgiError::new_err(format!("error managing signal {signum}: {failure}"))
            }))
        }
        Err(err) => {
            // uWSGI: the worker logs "error managing signal" and carries on.
            log_warning(py, &format!("error managing signal {signum}: {err}"))
        }
    }
}

/// `register_signal(num, target, handler)`: registers `handler(num)` for signal `num`.
/// `target` is uWSGI's (`""`, `worker`, `workers`, `workerN`, `spooler`, `mule`, …);
/// standalone every target is this process. A target over 63 bytes raises
/// `UwsgiValueError`, as uWSGI's "unable to register signal".
#[pyfunction]
pub fn register_signal(
    py: Python<'_>,
    num: u8,
    target: &str,
    handler: &Bound<'_, PyAny>,
) -> PyResult<()> {
    if !handler.is_callable() {
        return Err(PyTypeError::new_err(
            "register_signal: the handler must be callable",
        ));
    }
    let role = role();
    if matches!(role, ProcessRole::Mule(_) | ProcessRole::Spooler) {
        // uWSGI 2.0 core/signal.c: worker 0 that is not the master may not register.
        log_line(
            py,
            "only the master and the workers can register signal handlers",
        )?;
        return Err(errors::value_error(py, "unable to register signal"));
    }
    let id = table_id(role);
    let handler = make_handler(handler.clone().unbind(), role != ProcessRole::Alone);
    let registered = instance::current()
        .state
        .signals()
        .register(num, target, handler, id);
    if let Err(SignalError::AlreadyRegistered { .. }) = registered {
        log_line(
            py,
            "[uwsgi-signal] you cannot re-register a signal as the master !!!",
        )?;
    }
    registered.map_err(|e| errors::value_error(py, format!("unable to register signal: {e}")))?;
    if role != ProcessRole::Alone {
        let shown = if target.is_empty() {
            "default, any worker"
        } else {
            target
        };
        log_line(
            py,
            &format!(
                "[uwsgi-signal] signum {num} registered (wid: {id} modifier1: 0 target: {shown})"
            ),
        )?;
    }
    Ok(())
}

/// `signal(num, remote=None, *, timeout=None)`: raises signal `num`.
///
/// Local (no `remote`), standalone or without a master: the handler runs now, in this
/// thread; its exception propagates; a signal without a handler is logged on the
/// `uwsgi` logger. Local under a master: the number goes to the master, which routes it
/// (a full queue is logged, as uWSGI does). Remote: sent as `6e 0000 NN` to the server
/// at `remote` (see docs/python.md for the errors).
#[pyfunction]
#[pyo3(signature = (num, remote=None, *, timeout=None))]
pub fn signal(
    py: Python<'_>,
    num: u8,
    remote: Option<&Bound<'_, PyAny>>,
    timeout: Option<f64>,
) -> PyResult<()> {
    let instance = instance::current();
    match remote {
        Some(remote) if !remote.is_none() => {
            client::remote_signal(py, &instance, num, remote, timeout)
        }
        _ if role() == ProcessRole::Alone => deliver(py, &instance, num),
        _ => {
            if instance.state.signal_queue().raise(num) == RaiseOutcome::QueueFull {
                log_line(
                    py,
                    &format!("*** SIGNAL QUEUE IS FULL: signal {num} lost ***"),
                )?;
            }
            Ok(())
        }
    }
}

/// `signal_registered(num)`: `True` if a handler is registered, else `None`.
#[pyfunction]
pub fn signal_registered(py: Python<'_>, num: u8) -> Bound<'_, PyAny> {
    if instance::current()
        .state
        .signals()
        .is_registered(num, table_id(role()))
    {
        PyBool::new(py, true).to_owned().into_any()
    } else {
        py.None().into_bound(py)
    }
}

/// `signal_wait(num=None, *, timeout=None)`: waits (without the GIL) until a signal —
/// `num`, if given — is delivered in this process by another thread, then returns `b""`
/// as uWSGI does. `timeout` seconds (default: forever) ends the wait with
/// `UwsgiTimeoutError`. Ctrl-C interrupts it.
#[pyfunction]
#[pyo3(signature = (num=None, *, timeout=None))]
pub fn signal_wait(
    py: Python<'_>,
    num: Option<u8>,
    timeout: Option<f64>,
) -> PyResult<Bound<'_, PyBytes>> {
    let instance = instance::current();
    *lock(&instance.last_waited_signal) = -1;
    let limit = timeout
        .map(|t| convert::seconds(py, t, "timeout"))
        .transpose()?;
    let start = std::time::Instant::now();
    let seen = instance.signal_count();
    loop {
        let slice = match limit {
            Some(limit) => {
                let left = limit.saturating_sub(start.elapsed());
                if left.is_zero() {
                    return Err(errors::timeout_error(py, "signal_wait", "signal queue"));
                }
                left.min(Duration::from_millis(200))
            }
            None => Duration::from_millis(200),
        };
        if let Some(got) = py.detach(|| instance.wait_signal(seen, num, slice)) {
            *lock(&instance.last_waited_signal) = i64::from(got);
            return Ok(PyBytes::new(py, b""));
        }
        py.check_signals()?;
    }
}

/// `signal_received()`: the signal the last `signal_wait` returned for (-1: none).
#[pyfunction]
pub fn signal_received() -> i64 {
    *lock(&instance::current().last_waited_signal)
}

fn timer_error(py: Python<'_>, what: &str, err: &TimerError) -> PyErr {
    errors::value_error(py, format!("unable to add {what}: {err}"))
}

/// `add_timer(num, seconds)`: raise `num` every `seconds`.
#[pyfunction]
pub fn add_timer(py: Python<'_>, num: u8, seconds: u64) -> PyResult<()> {
    let instance = instance::current();
    let now = instance.state.clock().now_millis();
    instance
        .state
        .schedules()
        .add_timer(num, seconds, now)
        .map_err(|e| timer_error(py, "timer", &e))
}

/// `add_ms_timer(num, milliseconds)`: raise `num` every `milliseconds`.
#[pyfunction]
pub fn add_ms_timer(py: Python<'_>, num: u8, milliseconds: u64) -> PyResult<()> {
    let instance = instance::current();
    let now = instance.state.clock().now_millis();
    instance
        .state
        .schedules()
        .add_ms_timer(num, milliseconds, now)
        .map_err(|e| timer_error(py, "ms timer", &e))
}

/// `add_rb_timer(num, seconds, iterations=0)`: raise `num` every `seconds`, `iterations`
/// times (0: forever).
#[pyfunction]
#[pyo3(signature = (num, seconds, iterations=0))]
pub fn add_rb_timer(py: Python<'_>, num: u8, seconds: u64, iterations: u64) -> PyResult<()> {
    let instance = instance::current();
    let now = instance.state.clock().now_millis();
    instance
        .state
        .schedules()
        .add_rb_timer(num, seconds, iterations, now)
        .map_err(|e| timer_error(py, "rb_timer", &e))
}

/// `add_cron(num, minute, hour, day, month, weekday)`: raise `num` when the local time
/// matches (-1 any, -N every N); returns `True`.
#[pyfunction]
pub fn add_cron(
    py: Python<'_>,
    num: u8,
    minute: i32,
    hour: i32,
    day: i32,
    month: i32,
    weekday: i32,
) -> PyResult<bool> {
    let spec = CronSpec {
        minute,
        hour,
        day,
        month,
        weekday,
    };
    instance::current()
        .state
        .schedules()
        .add_cron(num, spec)
        .map_err(|e| timer_error(py, "cron", &e))?;
    Ok(true)
}

/// `add_file_monitor(num, path)`: raise `num` when `path` changes (checked by
/// `uwsgi.testing.run_timers`, standalone).
#[pyfunction]
pub fn add_file_monitor(py: Python<'_>, num: u8, path: &Bound<'_, PyAny>) -> PyResult<()> {
    let raw = bytes_of(path, "path")?;
    let path = PathBuf::from(String::from_utf8_lossy(&raw).into_owned());
    let instance = instance::current();
    instance
        .state
        .schedules()
        .add_file_monitor(num, &path)
        .map_err(|e| timer_error(py, "file monitor", &e))?;
    let stamp = std::fs::metadata(&path).and_then(|m| m.modified()).ok();
    lock(&instance.file_stamps).push((num, path, stamp));
    Ok(())
}

/// `add_probe(...)`: uWSGI 1.4's probe plugins do not exist in uwsgi-rs (nor in uWSGI
/// 2.0); raises `UwsgiValueError`.
#[pyfunction]
#[pyo3(signature = (*args))]
pub fn add_probe(py: Python<'_>, args: &Bound<'_, pyo3::types::PyTuple>) -> PyResult<()> {
    let _ = args;
    Err(errors::value_error(
        py,
        "unable to add probe: probes were removed in uWSGI 2.0 and uwsgi-rs has none",
    ))
}

/// The local UTC offset at `unix_secs`, from Python's `time.localtime`.
fn utc_offset(py: Python<'_>, unix_secs: u64) -> PyResult<i64> {
    py.import("time")?
        .call_method1("localtime", (unix_secs,))?
        .getattr("tm_gmtoff")?
        .extract()
}

/// Fires what is due now: timers and rb timers, crons matching the local time, and
/// file monitors whose file changed. Returns the signals raised, in order.
pub fn run_due(py: Python<'_>, instance: &Instance) -> PyResult<Vec<u8>> {
    let schedules = instance.state.schedules();
    let now_ms = instance.state.clock().now_millis();
    let now = instance.now();
    let mut due = schedules.due_timers(now_ms);
    let offset = utc_offset(py, now)?;
    let civil = CivilTime::from_unix(i64::try_from(now).unwrap_or(i64::MAX), offset);
    due.extend(schedules.due_crons(now, &civil));
    {
        let mut stamps = lock(&instance.file_stamps);
        for (signum, path, stamp) in stamps.iter_mut() {
            let current = std::fs::metadata(&*path).and_then(|m| m.modified()).ok();
            if current != *stamp {
                *stamp = current;
                due.push(*signum);
            }
        }
    }
    for &signum in &due {
        deliver(py, instance, signum)?;
    }
    Ok(due)
}

/// Adds the functions to the module.
pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(register_signal, m)?)?;
    m.add_function(wrap_pyfunction!(signal, m)?)?;
    m.add_function(wrap_pyfunction!(signal_registered, m)?)?;
    m.add_function(wrap_pyfunction!(signal_wait, m)?)?;
    m.add_function(wrap_pyfunction!(signal_received, m)?)?;
    m.add_function(wrap_pyfunction!(add_timer, m)?)?;
    m.add_function(wrap_pyfunction!(add_ms_timer, m)?)?;
    m.add_function(wrap_pyfunction!(add_rb_timer, m)?)?;
    m.add_function(wrap_pyfunction!(add_cron, m)?)?;
    m.add_function(wrap_pyfunction!(add_file_monitor, m)?)?;
    m.add_function(wrap_pyfunction!(add_probe, m)?)?;
    Ok(())
}
