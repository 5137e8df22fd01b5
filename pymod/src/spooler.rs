//! The spooler (spec §7.5): `spool` / `send_to_spooler`, `spooler_jobs`,
//! `spooler_get_task`, `set_spooler_frequency`, `spooler_pid`, `spooler_pids`,
//! `i_am_the_spooler`, and the pass that runs pending jobs through `uwsgi.spooler`
//! (`uwsgi.testing.run_spooler`, standalone).
//!
//! Jobs are files in the instance's spool directories, written exactly as uWSGI writes
//! them ([`Spoolers`](uwsgi_server_state::spooler::Spoolers)): a uWSGI spooler can run
//! a job spooled here, and the reverse.

use std::os::unix::ffi::OsStrExt;
use std::path::Path;
use std::sync::atomic::Ordering;

use pyo3::exceptions::PyTypeError;
use pyo3::prelude::*;
use pyo3::types::{PyBool, PyBytes, PyDict, PyFloat, PyInt, PyList, PyTuple};
use uwsgi_protocol::VarsBuilder;
use uwsgi_server_state::spooler::{RunReport, SpoolError, SpoolOutcome, SpoolTask};

use crate::convert::bytes_of;
use crate::errors;
use crate::instance::{self, Instance, stash, take_stashed};

/// A spool var value: bytes, str (UTF-8), or a number / bool written as `str()` would.
fn value_bytes(value: &Bound<'_, PyAny>) -> PyResult<Vec<u8>> {
    if value.is_instance_of::<PyInt>()
        || value.is_instance_of::<PyFloat>()
        || value.is_instance_of::<PyBool>()
    {
        return Ok(value.str()?.to_str()?.as_bytes().to_vec());
    }
    bytes_of(value, "spool values")
}

/// Builds the vars and body of a job from `spool(dict)` / `spool(**kwargs)`.
fn job_of(
    py: Python<'_>,
    args: &Bound<'_, PyTuple>,
    kwargs: Option<&Bound<'_, PyDict>>,
) -> PyResult<(VarsBuilder, Vec<u8>)> {
    let mut items: Vec<(Bound<'_, PyAny>, Bound<'_, PyAny>)> = Vec::new();
    match args.len() {
        0 => {}
        1 => {
            let dict = args.get_item(0)?;
            let dict = dict.cast::<PyDict>().map_err(|_| {
                errors::value_error(py, "The argument of spooler callable must be a dictionary")
            })?;
            items.extend(dict.iter());
        }
        n => {
            return Err(PyTypeError::new_err(format!(
                "spool() takes at most 1 positional argument ({n} given)"
            )));
        }
    }
    if let Some(kwargs) = kwargs {
        items.extend(kwargs.iter());
    }
    if items.is_empty() {
        return Err(errors::value_error(
            py,
            "The argument of spooler callable must be a dictionary",
        ));
    }
    let mut vars = VarsBuilder::new();
    let mut body = Vec::new();
    for (key, value) in items {
        let key = bytes_of(&key, "spool keys")?;
        if key == b"body" {
            body = bytes_of(&value, "the spool body")?;
            continue;
        }
        vars.push(key, value_bytes(&value)?)
            .map_err(|e| errors::value_error(py, format!("unable to spool job: {e}")))?;
    }
    Ok((vars, body))
}

/// `spool(job=None, /, **vars)` (also `send_to_spooler`): writes a spool job and
/// returns its full path (bytes, as uWSGI 2.0).
///
/// The job is a dict or keyword arguments (both may be given; keywords win). Keys are
/// bytes or str; values bytes, str, or numbers (written as `str()` does). The `body` item
/// becomes the job's body (the bytes after the vars). `spooler` picks the spool
/// directory (its real path), `priority` and `at` are honoured as by uWSGI. Without a
/// spooler, or when the file cannot be written, `UwsgiValueError` ("unable to spool
/// job").
#[pyfunction]
#[pyo3(signature = (*args, **kwargs))]
pub fn spool<'py>(
    py: Python<'py>,
    args: &Bound<'py, PyTuple>,
    kwargs: Option<&Bound<'py, PyDict>>,
) -> PyResult<Bound<'py, PyBytes>> {
    let (vars, body) = job_of(py, args, kwargs)?;
    let instance = instance::current();
    let path = py
        .detach(|| instance.state.spoolers().enqueue(&vars.as_vars(), &body))
        .map_err(|err| match err {
            SpoolError::NoSpooler => errors::value_error(
                py,
                "unable to spool job: no spooler configured \
                 (uwsgi.testing.configure(spooler=DIR) adds one)",
            ),
            other => errors::value_error(py, format!("unable to spool job: {other}")),
        })?;
    Ok(PyBytes::new(py, path.as_os_str().as_bytes()))
}

/// `spooler_jobs()`: the full paths (bytes) of the jobs waiting in the first spooler,
/// ready or not, in run order; `[]` without a spooler.
#[pyfunction]
pub fn spooler_jobs(py: Python<'_>) -> PyResult<Bound<'_, PyList>> {
    let instance = instance::current();
    let jobs = match instance.state.spoolers().iter().next() {
        Some(spooler) => py
            .detach(|| spooler.pending())
            .map_err(|e| errors::value_error(py, e.to_string()))?,
        None => Vec::new(),
    };
    PyList::new(
        py,
        jobs.iter()
            .map(|job| PyBytes::new(py, job.path.as_os_str().as_bytes())),
    )
}

/// The dict `uwsgi.spooler` receives for a task: `"spooler_task_name"` (the file name,
/// bytes), every var (bytes keys and values) and `"body"` when the job has one — the
/// mix of str and bytes keys uWSGI 2.0 builds on Python 3.
pub fn task_env<'py>(py: Python<'py>, task: &SpoolTask) -> PyResult<Bound<'py, PyDict>> {
    let env = PyDict::new(py);
    env.set_item(
        "spooler_task_name",
        PyBytes::new(py, task.name().as_bytes()),
    )?;
    for (key, value) in task.vars().iter() {
        env.set_item(PyBytes::new(py, key), PyBytes::new(py, value))?;
    }
    if !task.body().is_empty() {
        env.set_item("body", PyBytes::new(py, task.body()))?;
    }
    Ok(env)
}

/// `spooler_get_task(path)`: the dict `uwsgi.spooler` would receive for the job file at
/// `path`, or `None` when it is not a readable job of one of the spoolers.
#[pyfunction]
pub fn spooler_get_task<'py>(
    py: Python<'py>,
    path: &Bound<'py, PyAny>,
) -> PyResult<Option<Bound<'py, PyDict>>> {
    let raw = bytes_of(path, "path")?;
    let path = Path::new(std::ffi::OsStr::from_bytes(&raw)).to_path_buf();
    let instance = instance::current();
    for spooler in instance.state.spoolers().iter() {
        let jobs = py.detach(|| spooler.pending()).unwrap_or_default();
        if let Some(job) = jobs.into_iter().find(|job| job.path == path) {
            return match py.detach(|| spooler.read_task(&job)) {
                Ok(Some(task)) => Ok(Some(task_env(py, &task)?)),
                _ => Ok(None),
            };
        }
    }
    Ok(None)
}

/// `set_spooler_frequency(seconds)`: how often a spooler scans; returns `True`.
/// Embedded, the server's running spoolers (threads or forked processes) use the new
/// value from their next wait on. Standalone, jobs run when
/// `uwsgi.testing.run_spooler()` is called, so the value is only kept (and reported by
/// `uwsgi.testing.info()`).
#[pyfunction]
pub fn set_spooler_frequency(py: Python<'_>, seconds: i64) -> PyResult<bool> {
    let seconds = u64::try_from(seconds)
        .ok()
        .filter(|s| *s > 0)
        .ok_or_else(|| {
            errors::value_error(py, "the spooler frequency must be at least 1 second")
        })?;
    let instance = instance::current();
    instance.spooler_frequency.store(seconds, Ordering::Relaxed);
    if let Some(host) = &instance.host {
        host.set_spooler_frequency(seconds);
    }
    Ok(true)
}

/// The spooler pids as the host knows them; one 0 per spooler without a process of
/// its own (standalone, or a server that runs its spoolers as threads).
fn pids() -> Vec<u32> {
    let instance = instance::current();
    instance
        .host
        .as_ref()
        .and_then(|host| host.spooler_pids())
        .unwrap_or_else(|| vec![0; instance.state.spoolers().len()])
}

/// `spooler_pid()`: the pid of the first spooler process, 0 when there is none (as
/// uWSGI without spoolers).
#[pyfunction]
pub fn spooler_pid() -> u32 {
    pids().first().copied().unwrap_or(0)
}

/// `spooler_pids()`: the pid of every spooler process.
#[pyfunction]
pub fn spooler_pids() -> Vec<u32> {
    pids()
}

/// `i_am_the_spooler()`: `True` while `uwsgi.testing.run_spooler` runs a job, else
/// `None`.
#[pyfunction]
pub fn i_am_the_spooler(py: Python<'_>) -> Bound<'_, PyAny> {
    if instance::current().in_spooler.load(Ordering::Relaxed) {
        PyBool::new(py, true).to_owned().into_any()
    } else {
        py.None().into_bound(py)
    }
}

/// Runs every job ready now, in every spooler, through `uwsgi.spooler(env)` — read from
/// `sys.modules["uwsgi"]`, so an assignment `uwsgi.spooler = f` is seen. As in uWSGI:
/// `SPOOL_OK` (-2) removes the file, `SPOOL_IGNORE` (0) and `SPOOL_RETRY` (-1, or any
/// other int, or a non-int) keep it; malformed files are removed. An exception from
/// the function keeps its file, skips the remaining jobs (kept too) and is raised after
/// the pass.
pub fn run_pending(py: Python<'_>, instance: &Instance) -> PyResult<RunReport> {
    let module = py.import("sys")?.getattr("modules")?.get_item("uwsgi")?;
    let function = module.getattr("spooler").map_err(|_| {
        errors::UwsgiError::new_err(
            "uwsgi.spooler is not set: assign the spooler function (uwsgi.spooler = f) first",
        )
    })?;
    let function = function.unbind();
    let now = instance.now();
    let mut total = RunReport::default();
    let mut failed = false;
    for spooler in instance.state.spoolers().iter() {
        let report = py.detach(|| {
            spooler.run_pending(now, &mut |task: &SpoolTask| {
                if failed {
                    return SpoolOutcome::Retry;
                }
                Python::attach(|py| {
                    instance.in_spooler.store(true, Ordering::Relaxed);
                    let outcome =
                        task_env(py, task).and_then(|env| function.bind(py).call1((env,)));
                    instance.in_spooler.store(false, Ordering::Relaxed);
                    match outcome {
                        Ok(code) => code
                            .extract::<i64>()
                            .map_or(SpoolOutcome::Retry, SpoolOutcome::from_code),
                        Err(err) => {
                            stash(py, err);
                            failed = true;
                            SpoolOutcome::Retry
                        }
                    }
                })
            })
        });
        let report = report.map_err(|e| errors::value_error(py, e.to_string()))?;
        total.done += report.done;
        total.retried += report.retried;
        total.ignored += report.ignored;
        total.malformed += report.malformed;
        total.skipped += report.skipped;
        if failed {
            break;
        }
    }
    if failed && let Some(err) = take_stashed() {
        return Err(err);
    }
    Ok(total)
}

/// Adds the functions to the module.
pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(spool, m)?)?;
    m.add("send_to_spooler", wrap_pyfunction!(spool, m)?)?;
    m.add_function(wrap_pyfunction!(spooler_jobs, m)?)?;
    m.add_function(wrap_pyfunction!(spooler_get_task, m)?)?;
    m.add_function(wrap_pyfunction!(set_spooler_frequency, m)?)?;
    m.add_function(wrap_pyfunction!(spooler_pid, m)?)?;
    m.add_function(wrap_pyfunction!(spooler_pids, m)?)?;
    m.add_function(wrap_pyfunction!(i_am_the_spooler, m)?)?;
    Ok(())
}
