//! Facts about the process and the server, logging, and everything that only means
//! something inside a running uWSGI server.
//!
//! Standalone, the module is one process that is worker 1, with no master, no mules, no
//! sockets and no current request. Each function gives the single-process answer when
//! one exists (`worker_id()` is 1, `masterpid()` 0, `workers()` describes this process),
//! and raises `NoServerError` when the function only acts on a server or a request
//! (`reload`, `stop`, `disconnect`, `sendfile`, …), so that a test never passes because
//! a call silently did nothing. docs/python.md has the table.

use std::sync::Mutex;
use std::sync::atomic::Ordering;
use std::time::{SystemTime, UNIX_EPOCH};

use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyDict, PyList, PyTuple};

use crate::convert::bytes_of;
use crate::errors;
use crate::instance::{self, lock};

/// `worker_id()`: the server's worker id; 1, the standalone process.
#[pyfunction]
pub fn worker_id() -> u32 {
    instance::host().map_or(instance::WORKER_ID, |host| host.worker_id())
}

/// `mule_id()`: this mule's id; 0 outside a mule (always standalone).
#[pyfunction]
pub fn mule_id() -> u32 {
    instance::host().map_or(0, |host| host.mule_id())
}

/// `masterpid()`: the server's master pid; 0 without a master (uWSGI's answer without
/// `--master`) and standalone.
#[pyfunction]
pub fn masterpid() -> u32 {
    instance::host().map_or(0, |host| host.masterpid())
}

/// `total_requests()`: requests served by the server; 0 standalone.
#[pyfunction]
pub fn total_requests() -> u64 {
    instance::host().map_or(0, |host| host.total_requests())
}

/// `request_id()`: the current request's number in this worker; 0 standalone.
#[pyfunction]
pub fn request_id() -> u64 {
    instance::host().map_or(0, |host| host.request_id())
}

/// Resident and virtual memory of this process in bytes, from `/proc/self/status`
/// (0 where it cannot be read).
fn memory() -> (u64, u64) {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let field = |name: &str| -> u64 {
        status
            .lines()
            .find_map(|line| line.strip_prefix(name))
            .and_then(|rest| rest.split_whitespace().next())
            .and_then(|kb| kb.parse::<u64>().ok())
            .map_or(0, |kb| kb * 1024)
    };
    (field("VmRSS:"), field("VmSize:"))
}

/// `mem()`: `(rss, vsz)` of this process, in bytes.
#[pyfunction]
pub fn mem() -> (u64, u64) {
    memory()
}

/// `workers()`: a tuple with one dict, this process as worker 1 (uWSGI's keys; status
/// `b"idle"`, no apps).
#[pyfunction]
pub fn workers(py: Python<'_>) -> PyResult<Bound<'_, PyTuple>> {
    let instance = instance::current();
    if let Some(host) = &instance.host {
        let (rss, vsz) = memory();
        let list = host
            .workers()
            .into_iter()
            .map(|info| {
                let worker = PyDict::new(py);
                worker.set_item("id", info.id)?;
                worker.set_item("pid", info.pid)?;
                worker.set_item("requests", info.requests)?;
                worker.set_item("delta_requests", info.requests)?;
                worker.set_item("signals", instance.signal_count())?;
                worker.set_item("exceptions", 0)?;
                let status: &[u8] = if info.busy { b"busy" } else { b"idle" };
                worker.set_item("status", PyBytes::new(py, status))?;
                worker.set_item("rss", rss)?;
                worker.set_item("vsz", vsz)?;
                worker.set_item("running_time", 0)?;
                worker.set_item("last_spawn", info.last_spawn)?;
                worker.set_item("respawn_count", 1)?;
                worker.set_item("tx", info.tx)?;
                worker.set_item("avg_rt", 0)?;
                worker.set_item("apps", PyTuple::empty(py))?;
                Ok(worker)
            })
            .collect::<PyResult<Vec<_>>>()?;
        return PyTuple::new(py, list);
    }
    let (rss, vsz) = memory();
    let worker = PyDict::new(py);
    worker.set_item("id", instance::WORKER_ID)?;
    worker.set_item("pid", std::process::id())?;
    worker.set_item("requests", 0)?;
    worker.set_item("delta_requests", 0)?;
    worker.set_item("signals", instance.signal_count())?;
    worker.set_item("exceptions", 0)?;
    worker.set_item("status", PyBytes::new(py, b"idle"))?;
    worker.set_item("rss", rss)?;
    worker.set_item("vsz", vsz)?;
    worker.set_item("running_time", 0)?;
    worker.set_item("last_spawn", crate::globals::started_on())?;
    worker.set_item("respawn_count", 1)?;
    worker.set_item("tx", 0)?;
    worker.set_item("avg_rt", 0)?;
    worker.set_item("apps", PyTuple::empty(py))?;
    PyTuple::new(py, [worker])
}

/// `log(message)`: writes `message` and a newline to `sys.stderr` (where uWSGI logs by
/// default); returns `True`.
#[pyfunction]
pub fn log(py: Python<'_>, message: &Bound<'_, PyAny>) -> PyResult<bool> {
    let text = match message.cast::<PyBytes>() {
        Ok(bytes) => String::from_utf8_lossy(bytes.as_bytes()).into_owned(),
        Err(_) => message.str()?.to_str()?.to_owned(),
    };
    if let Some(host) = instance::host() {
        host.log(&text);
        instance::current()
            .log_bytes
            .fetch_add(text.len() as u64 + 1, Ordering::Relaxed);
        return Ok(true);
    }
    let line = format!("{text}\n");
    let stderr = py.import("sys")?.getattr("stderr")?;
    stderr.call_method1("write", (&line,))?;
    let _ = stderr.call_method0("flush");
    instance::current()
        .log_bytes
        .fetch_add(line.len() as u64, Ordering::Relaxed);
    Ok(true)
}

/// `logsize()`: the bytes written by `log()` so far (uWSGI: the log file's size).
#[pyfunction]
pub fn logsize() -> u64 {
    instance::current().log_bytes.load(Ordering::Relaxed)
}

/// `log_this_request()`: forces the current request into the server's log; standalone
/// there is no request log, and it returns `None`.
#[pyfunction]
pub fn log_this_request() {
    if let Some(host) = instance::host() {
        host.log_this_request();
    }
}

/// The error of a request-local function called in a server outside a request (uWSGI
/// raises `SystemError` with this message).
pub(crate) fn outside_request(py: Python<'_>) -> PyErr {
    let _ = py;
    pyo3::exceptions::PySystemError::new_err(
        "you can call uwsgi api function only from the main callable",
    )
}

/// `cl()`: the current request's `CONTENT_LENGTH`. Raises `NoServerError` standalone.
#[pyfunction]
pub fn cl(py: Python<'_>) -> PyResult<u64> {
    match instance::host() {
        Some(host) => host.content_length().ok_or_else(|| outside_request(py)),
        None => Err(errors::no_server_error(
            py,
            "uwsgi.cl() is the current request's CONTENT_LENGTH",
        )),
    }
}

/// `connection_fd()`: the current request's socket. Raises `NoServerError` standalone.
#[pyfunction]
pub fn connection_fd(py: Python<'_>) -> PyResult<i32> {
    match instance::host() {
        Some(host) => host.connection_fd().ok_or_else(|| outside_request(py)),
        None => Err(errors::no_server_error(
            py,
            "uwsgi.connection_fd() is the current request's socket",
        )),
    }
}

/// `disconnect()`: closes the current request's connection (what the application
/// sends afterwards is dropped); returns `None`. Raises `NoServerError` standalone.
#[pyfunction]
pub fn disconnect(py: Python<'_>) -> PyResult<()> {
    match instance::host() {
        Some(host) => host
            .disconnect()
            .map(drop)
            .ok_or_else(|| outside_request(py)),
        None => Err(errors::no_server_error(
            py,
            "uwsgi.disconnect() closes the current request's connection",
        )),
    }
}

/// `reload()`: asks the server for a graceful reload; `True` when asked, `None` when
/// the server cannot reload. Raises `NoServerError` standalone.
#[pyfunction]
pub fn reload(py: Python<'_>) -> PyResult<Option<bool>> {
    match instance::host() {
        Some(host) => Ok(host.reload().then_some(true)),
        None => Err(errors::no_server_error(
            py,
            "uwsgi.reload() gracefully reloads the server (SIGHUP to the master)",
        )),
    }
}

/// `stop()`: asks the server to stop; `True` when asked, `None` when it cannot.
/// Raises `NoServerError` standalone.
#[pyfunction]
pub fn stop(py: Python<'_>) -> PyResult<Option<bool>> {
    match instance::host() {
        Some(host) => Ok(host.stop().then_some(true)),
        None => Err(errors::no_server_error(
            py,
            "uwsgi.stop() stops the server (SIGQUIT to the master)",
        )),
    }
}

/// `set_logvar(key, value)`: sets a log variable (standalone: one table for the
/// process, cleared by `uwsgi.testing.reset()`).
#[pyfunction]
pub fn set_logvar(key: &Bound<'_, PyAny>, value: &Bound<'_, PyAny>) -> PyResult<()> {
    let key = bytes_of(key, "key")?;
    let value = bytes_of(value, "value")?;
    let instance = instance::current();
    if let Some(host) = &instance.host
        && host.set_logvar(&key, &value)
    {
        return Ok(());
    }
    let mut vars = lock(&instance.logvars);
    match vars.iter_mut().find(|(k, _)| *k == key) {
        Some(slot) => slot.1 = value,
        None => vars.push((key, value)),
    }
    Ok(())
}

/// `get_logvar(key)`: the value set by `set_logvar`, or `None`.
#[pyfunction]
pub fn get_logvar<'py>(
    py: Python<'py>,
    key: &Bound<'py, PyAny>,
) -> PyResult<Option<Bound<'py, PyBytes>>> {
    let key = bytes_of(key, "key")?;
    let instance = instance::current();
    if let Some(found) = instance
        .host
        .as_ref()
        .and_then(|host| host.get_logvar(&key))
    {
        return Ok(found.map(|value| PyBytes::new(py, &value)));
    }
    let vars = lock(&instance.logvars);
    Ok(vars
        .iter()
        .find(|(k, _)| *k == key)
        .map(|(_, v)| PyBytes::new(py, v)))
}

/// `set_warning_message(message)`: the ping warning (at most 80 bytes, uWSGI's limit,
/// else `UwsgiValueError`); returns `True`.
#[pyfunction]
pub fn set_warning_message(py: Python<'_>, message: &Bound<'_, PyAny>) -> PyResult<bool> {
    let message = bytes_of(message, "message")?;
    if message.len() > 80 {
        return Err(errors::value_error(
            py,
            "the warning message is limited to 80 bytes",
        ));
    }
    // Embedded, the server answers pings with it; the module's copy is what
    // `uwsgi.testing.info()` shows standalone.
    if let Some(host) = instance::host() {
        host.set_warning_message(&message);
    }
    *lock(&instance::current().warning_message) = message;
    Ok(true)
}

/// `alarm(name, message)`: standalone there are no alarms configured; the alarm is
/// written to the `uwsgi` logger at WARNING level.
#[pyfunction]
pub fn alarm(py: Python<'_>, name: &str, message: &Bound<'_, PyAny>) -> PyResult<()> {
    let message = bytes_of(message, "message")?;
    crate::signals::log_warning(
        py,
        &format!("alarm {name}: {}", String::from_utf8_lossy(&message)),
    )
}

/// `setprocname(name)`: sets this process's name (Linux `/proc/self/comm`, 15 bytes).
/// A name the system refuses raises the builtin `OSError` (its `errno`, `filename`
/// `/proc/self/comm`); uWSGI 2.0 ignores the failure.
#[pyfunction]
pub fn setprocname(name: &Bound<'_, PyAny>) -> PyResult<()> {
    let mut name = bytes_of(name, "name")?;
    name.truncate(15);
    std::fs::write(PROCESS_NAME, &name).map_err(|e| {
        let code = e.raw_os_error().unwrap_or(0);
        let text = e.to_string();
        // io::Error's Display appends " (os error N)"; strerror is the text before it.
        let strerror = text
            .strip_suffix(&format!(" (os error {code})"))
            .unwrap_or(&text)
            .to_owned();
        // OSError(errno, strerror, filename): Python picks the subclass (PermissionError…).
        pyo3::exceptions::PyOSError::new_err((code, strerror, PROCESS_NAME))
    })
}

/// Where Linux keeps the process name `setprocname` sets.
const PROCESS_NAME: &str = "/proc/self/comm";

/// `micros()`: the current time in microseconds.
#[pyfunction]
pub fn micros() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_micros()).unwrap_or(u64::MAX))
}

/// `ready()`: `True`, the single process is up.
#[pyfunction]
pub fn ready() -> bool {
    true
}

/// `accepting(accepting=1)`: marks this worker as accepting requests (any non-zero
/// value) or not, in the server's scoreboard (uWSGI's `workers[id].accepting`); returns
/// `None`. Standalone there is no scoreboard: nothing to mark.
#[pyfunction]
#[pyo3(signature = (accepting=1))]
pub fn accepting(accepting: i64) {
    if let Some(host) = instance::host() {
        host.set_accepting(accepting != 0);
    }
}

/// `set_user_harakiri(seconds)`: embedded, arms the master's watchdog for this worker
/// (`seconds` from now; 0, or a negative value, disarms it); the server disarms it at
/// the end of every request, as uWSGI. Without a master the server logs uWSGI's
/// "unable to set user harakiri" line. Standalone there is no watchdog. Returns `None`.
#[pyfunction]
pub fn set_user_harakiri(seconds: i64) {
    if let Some(host) = instance::host()
        && let Err(line) = host.set_user_harakiri(u64::try_from(seconds).unwrap_or(0))
    {
        host.log(&line);
    }
}

/// `sorry_i_need_to_block()` (1.4): `None`, there is no master.
#[pyfunction]
pub fn sorry_i_need_to_block() {}

/// `has_hook(num)` (1.4): always `None`, as uWSGI 1.4's stub.
#[pyfunction]
pub fn has_hook(num: i64) {
    let _ = num;
}

static OPTIONS: Mutex<[i64; 256]> = Mutex::new([0; 256]);

fn option_index(py: Python<'_>, index: i64) -> PyResult<usize> {
    usize::try_from(index)
        .ok()
        .filter(|&i| i < 256)
        .ok_or_else(|| errors::value_error(py, format!("invalid option index {index} (0..=255)")))
}

/// `get_option(index)` / `getoption` (1.4): the value of option slot `index`: the
/// server's shared slots when embedded (those of the admin packet), else this process's.
#[pyfunction]
pub fn get_option(py: Python<'_>, index: i64) -> PyResult<i64> {
    let slot = option_index(py, index)?;
    let host_value = u8::try_from(slot)
        .ok()
        .and_then(|slot| instance::host()?.option(slot));
    Ok(host_value.map_or_else(|| lock(&OPTIONS)[slot], i64::from))
}

/// `set_option(index, value)` / `setoption` (1.4): sets slot `index`; returns the value.
/// The server's slots hold 32-bit values, as uWSGI's: embedded, a value outside
/// 0..=4294967295 raises `ValueError` (uWSGI wrapped it silently).
#[pyfunction]
pub fn set_option(py: Python<'_>, index: i64, value: i64) -> PyResult<i64> {
    let slot = option_index(py, index)?;
    if let (Some(host), Ok(slot)) = (instance::host(), u8::try_from(slot)) {
        let wire = u32::try_from(value).map_err(|_| {
            errors::value_error(
                py,
                format!("option value {value} out of range (0..=4294967295)"),
            )
        })?;
        if host.set_option(slot, wire) {
            return Ok(value);
        }
    }
    lock(&OPTIONS)[slot] = value;
    Ok(value)
}

/// Clears the option slots (`uwsgi.testing.reset`).
pub fn reset_options() {
    *lock(&OPTIONS) = [0; 256];
}

/// What uWSGI logs when an async function runs without async mode.
const NO_ASYNC_MODE: &str = "ASYNC call without async mode !!!";

/// `async_sleep(seconds)`: sleeps without the GIL (standalone, or embedded with
/// `--async`: the async core is a thread); returns `b""`. Embedded without `--async`,
/// as uWSGI there: a whole number of seconds > 0 logs that there is no async mode, and
/// nothing waits.
#[pyfunction]
pub fn async_sleep(py: Python<'_>, seconds: f64) -> PyResult<Bound<'_, PyBytes>> {
    if crate::embed::async_mode_off() {
        // uWSGI truncates to whole seconds and only then asks for a timeout.
        if seconds >= 1.0 {
            log_no_async_mode(py)?;
        }
        return Ok(PyBytes::new(py, b""));
    }
    if seconds > 0.0 {
        let duration = crate::convert::seconds(py, seconds, "seconds")?;
        py.detach(|| std::thread::sleep(duration));
    }
    Ok(PyBytes::new(py, b""))
}

/// `suspend()` / `green_schedule()`: `True` at once (no green threads standalone).
#[pyfunction]
pub fn suspend() -> bool {
    true
}

/// Logs uWSGI's line for an async call without async mode.
fn log_no_async_mode(py: Python<'_>) -> PyResult<()> {
    match crate::instance::host() {
        Some(host) => {
            host.log(NO_ASYNC_MODE);
            Ok(())
        }
        None => crate::signals::log_warning(py, NO_ASYNC_MODE),
    }
}

fn wait_fd(py: Python<'_>, fd: i32, timeout: i64, write: bool) -> PyResult<Bound<'_, PyBytes>> {
    if crate::embed::async_mode_off() {
        // uWSGI cannot add the descriptor to an async loop it does not have.
        log_no_async_mode(py)?;
        return Err(pyo3::exceptions::PyOSError::new_err(format!(
            "unable to fd {fd} to the event queue"
        )));
    }
    let select = py.import("select")?;
    let empty = PyList::empty(py);
    let fds = PyList::new(py, [fd])?;
    let limit: Option<f64> = (timeout > 0).then_some(timeout as f64);
    let (read, written) = if write {
        (&empty, &fds)
    } else {
        (&fds, &empty)
    };
    select.call_method1("select", (read, written, &empty, limit))?;
    Ok(PyBytes::new(py, b""))
}

/// `wait_fd_read(fd, timeout=0)`: waits until `fd` is readable (at most `timeout`
/// seconds, 0: forever); returns `b""`.
#[pyfunction]
#[pyo3(signature = (fd, timeout=0))]
pub fn wait_fd_read(py: Python<'_>, fd: i32, timeout: i64) -> PyResult<Bound<'_, PyBytes>> {
    wait_fd(py, fd, timeout, false)
}

/// `wait_fd_write(fd, timeout=0)`: waits until `fd` is writable.
#[pyfunction]
#[pyo3(signature = (fd, timeout=0))]
pub fn wait_fd_write(py: Python<'_>, fd: i32, timeout: i64) -> PyResult<Bound<'_, PyBytes>> {
    wait_fd(py, fd, timeout, true)
}

/// `extract(location)`: the contents of a file, or `None` when it cannot be read.
/// uWSGI also reads `sym://`, `data://`, `http://` … locations, which need a server
/// binary or a network and answer `None` here.
#[pyfunction]
pub fn extract<'py>(py: Python<'py>, location: &str) -> Option<Bound<'py, PyBytes>> {
    let path = location.strip_prefix("file://").unwrap_or(location);
    if path.contains("://") {
        return None;
    }
    std::fs::read(path).ok().map(|data| PyBytes::new(py, &data))
}

/// `embedded_data(name)`: uWSGI reads data linked into its binary; there is none here,
/// so every name raises `UwsgiValueError` (uWSGI's "unable to get symbol").
#[pyfunction]
pub fn embedded_data(py: Python<'_>, name: &str) -> PyResult<()> {
    Err(errors::value_error(
        py,
        format!("unable to get symbol {name:?}: uwsgi-rs has no embedded data"),
    ))
}

/// The bytes of a mule message: `bytes`-like or `str` (UTF-8), as uWSGI's `s#`.
fn message_bytes(message: &Bound<'_, PyAny>) -> PyResult<Vec<u8>> {
    if let Ok(text) = message.extract::<String>() {
        return Ok(text.into_bytes());
    }
    bytes_of(message, "message")
}

/// `mule_msg(message, target=None)`: sends to the queue every mule reads, to mule
/// `target` (an int) or to farm `target` (a str). `True` once queued, `False` when the
/// queue is full. `UwsgiValueError` without mules (standalone: always), for a bad
/// target, or a message over the size limit.
#[pyfunction]
#[pyo3(signature = (message, target=None))]
pub fn mule_msg(
    py: Python<'_>,
    message: &Bound<'_, PyAny>,
    target: Option<&Bound<'_, PyAny>>,
) -> PyResult<bool> {
    let data = message_bytes(message)?;
    let Some(host) = instance::host() else {
        return Err(errors::value_error(py, "no mule configured"));
    };
    let farm;
    let target = match target {
        None => crate::embed::MuleTarget::AnyMule,
        Some(t) if t.is_none() => crate::embed::MuleTarget::AnyMule,
        Some(t) => {
            if let Ok(id) = t.extract::<i64>() {
                if id == 0 {
                    crate::embed::MuleTarget::AnyMule
                } else {
                    crate::embed::MuleTarget::Mule(id)
                }
            } else {
                farm = t.extract::<String>()?;
                crate::embed::MuleTarget::Farm(&farm)
            }
        }
    };
    host.mule_msg(&data, target)
        .map_err(|err| errors::value_error(py, err))
}

/// `mule_get_msg(signals=True, farms=True, buffer_size=65536, timeout=-1)`: in a mule,
/// waits (GIL released) for the next message for it and returns its bytes (cut at
/// `buffer_size`); `None` when `timeout` seconds (≥ 0) passed. `farms=False` skips the
/// farm queues. uWSGI signals run on their own thread in a mule, so `signals` changes
/// nothing. Raises `UwsgiValueError` outside a mule.
#[pyfunction]
#[pyo3(
    signature = (signals=true, farms=true, buffer_size=65536, timeout=-1),
    text_signature = "(signals=True, farms=True, buffer_size=65536, timeout=-1)"
)]
pub fn mule_get_msg(
    py: Python<'_>,
    signals: bool,
    farms: bool,
    buffer_size: i64,
    timeout: i64,
) -> PyResult<Option<Py<PyBytes>>> {
    let _ = signals;
    let Some(host) = instance::host() else {
        return Err(errors::value_error(
            py,
            "you can receive mule messages only in a mule !!!",
        ));
    };
    let size = usize::try_from(buffer_size).unwrap_or(0).max(1);
    let wait = u64::try_from(timeout)
        .ok()
        .map(std::time::Duration::from_secs);
    let got = py.detach(|| host.mule_get_msg(farms, size, wait));
    match got {
        Ok(Some(bytes)) => Ok(Some(PyBytes::new(py, &bytes).unbind())),
        Ok(None) => Ok(None),
        Err(err) => Err(errors::value_error(py, err)),
    }
}

/// `farm_msg(farm, message)`: `mule_msg(message, farm)`.
#[pyfunction]
pub fn farm_msg(py: Python<'_>, farm: &str, message: &Bound<'_, PyAny>) -> PyResult<bool> {
    let data = message_bytes(message)?;
    let Some(host) = instance::host() else {
        return Err(errors::value_error(
            py,
            format!("unknown farm {farm:?}: no farms standalone"),
        ));
    };
    host.mule_msg(&data, crate::embed::MuleTarget::Farm(farm))
        .map_err(|err| errors::value_error(py, err))
}

/// `farm_get_msg()`: a message waiting in one of this mule's farms, without blocking;
/// `None` when there is none or outside a farm.
#[pyfunction]
pub fn farm_get_msg(py: Python<'_>) -> Option<Py<PyBytes>> {
    let host = instance::host()?;
    let bytes = py.detach(|| host.farm_get_msg())?;
    Some(PyBytes::new(py, &bytes).unbind())
}

/// `in_farm(name=None)`: `True` when this mule is in farm `name` (any farm without a
/// name), else `None` (as uWSGI).
#[pyfunction]
#[pyo3(signature = (name=None))]
pub fn in_farm(name: Option<&str>) -> Option<bool> {
    let host = instance::host()?;
    host.in_farm(name).then_some(true)
}

/// `listen_queue(id=0)`: embedded, the connections waiting in the backlog of the
/// server's listening socket `id` (in the order the sockets were given). An unknown id
/// raises `UwsgiValueError` ("unable to find socket", as uWSGI's `ValueError`);
/// standalone there are no sockets, so every id is unknown.
#[pyfunction]
#[pyo3(signature = (id=0))]
pub fn listen_queue(py: Python<'_>, id: i64) -> PyResult<u64> {
    let queue = usize::try_from(id)
        .ok()
        .and_then(|index| instance::host()?.listen_queue(index));
    queue.ok_or_else(|| errors::value_error(py, format!("unable to find socket {id}")))
}

/// `ready_fd()`: the descriptor that woke the current request in async mode; -1 when
/// none did, which is always the case here (uWSGI answers -1 outside its async loop,
/// and this server's async mode waits inside `wait_fd_*` instead of resuming requests
/// from a loop). Embedded outside a request it raises `SystemError`, as uWSGI;
/// standalone it is -1.
#[pyfunction]
pub fn ready_fd(py: Python<'_>) -> PyResult<i64> {
    match instance::host() {
        Some(host) if host.request().is_none() => Err(outside_request(py)),
        _ => Ok(-1),
    }
}

/// `i_am_the_lord(legion)`: `False` — this server has no Legion subsystem, and uWSGI
/// answers `False` for a legion it does not know.
#[pyfunction]
pub fn i_am_the_lord(legion: &str) -> bool {
    let _ = legion;
    false
}

/// `lord_scroll(legion)`: `None` — no legion, so no lord scroll (uWSGI's answer for an
/// unknown legion).
#[pyfunction]
pub fn lord_scroll(legion: &str) {
    let _ = legion;
}

/// `scrolls(legion)`: `None` — no legion, so no scrolls (uWSGI's answer for an unknown
/// legion).
#[pyfunction]
pub fn scrolls(legion: &str) {
    let _ = legion;
}

/// `cluster()` (1.4): the `--cluster` address; `None`, there is no cluster.
#[pyfunction]
pub fn cluster() {}

/// `cluster_nodes()` (1.4): the addresses (bytes, as 1.4's strings on Python 3) of the
/// cluster nodes that announced themselves recently to the server's `--udp` sockets;
/// `[]` standalone.
#[pyfunction]
pub fn cluster_nodes(py: Python<'_>) -> PyResult<Bound<'_, PyList>> {
    let nodes = instance::host()
        .map(|host| host.cluster_nodes())
        .unwrap_or_default();
    PyList::new(py, nodes.iter().map(|address| PyBytes::new(py, address)))
}

/// `cluster_best_node()` (1.4): the address (bytes) of the fresh node chosen least
/// recently, now the most recently chosen (round robin by time); `None` without nodes.
#[pyfunction]
pub fn cluster_best_node(py: Python<'_>) -> Option<Bound<'_, PyBytes>> {
    let address = instance::host()?.cluster_best_node()?;
    Some(PyBytes::new(py, &address))
}

/// `cluster_node_name(name=None)` (1.4): this host's name (bytes) without an argument;
/// the hostname (bytes) node `name` (str or bytes) announced, `None` for an unknown or
/// expired node.
#[pyfunction]
#[pyo3(signature = (name=None))]
pub fn cluster_node_name<'py>(
    py: Python<'py>,
    name: Option<&Bound<'py, PyAny>>,
) -> PyResult<Option<Bound<'py, PyBytes>>> {
    let Some(name) = name.filter(|name| !name.is_none()) else {
        return Ok(Some(PyBytes::new(py, &crate::globals::hostname())));
    };
    let address = bytes_of(name, "cluster_node_name: name")?;
    Ok(instance::host()
        .and_then(|host| host.cluster_node_name(&address))
        .map(|hostname| PyBytes::new(py, &hostname)))
}

/// The `snmp_*` functions (spec §7.6) on the state's SNMP table: in the server it is the
/// table its agent answers from (shared by every worker); standalone it only keeps the
/// values. `None` for a slot outside 1..=100 as in uWSGI, and also when the server runs
/// without `--snmp` (uWSGI leaves the functions out then; we keep them, inert).
fn snmp_change(
    value: i128,
    bits: u32,
    change: impl FnOnce(&uwsgi_server_state::snmp::Snmp, u64) -> bool,
) -> PyResult<Option<bool>> {
    // uWSGI parses values with "I"/"K": no overflow check, the integer is taken modulo
    // 2^32 or 2^64 (so -1 is 0xffffffff).
    let modulus = 1_i128 << bits;
    let value = u64::try_from(value.rem_euclid(modulus)).unwrap_or(u64::MAX);
    let instance = instance::current();
    Ok(instance
        .state
        .snmp()
        .and_then(|snmp| change(snmp, value).then_some(true)))
}

macro_rules! snmp_functions {
    ($($name:ident, $bits:literal, $doc:literal, |$snmp:ident, $slot:ident, $value:ident| $body:expr);* $(;)?) => {
        $(
            #[doc = concat!("`", stringify!($name), "(oid, value=1)`: ", $doc, "; `True`, or `None` for a slot outside 1..=100.")]
            #[pyfunction]
            #[pyo3(signature = (oid, value=1))]
            pub fn $name(oid: i64, value: i128) -> PyResult<Option<bool>> {
                snmp_change(value, $bits, |$snmp, $value| {
                    let $slot = oid;
                    $body
                })
            }
        )*
        fn register_snmp(m: &Bound<'_, PyModule>) -> PyResult<()> {
            $( m.add_function(wrap_pyfunction!($name, m)?)?; )*
            Ok(())
        }
    };
}

use uwsgi_server_state::snmp::SnmpKind;

snmp_functions! {
    snmp_set_counter32, 32, "sets a Counter32", |s, slot, v| s.set(slot, SnmpKind::Counter32, v).is_ok();
    snmp_set_counter64, 64, "sets a Counter64", |s, slot, v| s.set(slot, SnmpKind::Counter64, v).is_ok();
    snmp_set_gauge, 32, "sets a Gauge", |s, slot, v| s.set(slot, SnmpKind::Gauge, v).is_ok();
    snmp_incr_counter32, 32, "adds to a Counter32", |s, slot, v| s.incr(slot, SnmpKind::Counter32, delta(v)).is_ok();
    snmp_incr_counter64, 32, "adds to a Counter64 (the delta is 32-bit, as in uWSGI)", |s, slot, v| s.incr(slot, SnmpKind::Counter64, delta(v)).is_ok();
    snmp_incr_gauge, 32, "adds to a Gauge", |s, slot, v| s.incr(slot, SnmpKind::Gauge, delta(v)).is_ok();
    snmp_decr_counter32, 32, "subtracts from a Counter32", |s, slot, v| s.decr(slot, SnmpKind::Counter32, delta(v)).is_ok();
    snmp_decr_counter64, 32, "subtracts from a Counter64 (32-bit delta)", |s, slot, v| s.decr(slot, SnmpKind::Counter64, delta(v)).is_ok();
    snmp_decr_gauge, 32, "subtracts from a Gauge", |s, slot, v| s.decr(slot, SnmpKind::Gauge, delta(v)).is_ok();
}

/// A delta already reduced modulo 2^32 by [`snmp_change`].
fn delta(value: u64) -> u32 {
    u32::try_from(value & 0xffff_ffff).unwrap_or(u32::MAX)
}

/// The value kept in SNMP slot `oid` (1..=100), for `uwsgi.testing`.
pub fn snmp_value(oid: usize) -> Option<u64> {
    let instance = instance::current();
    let snmp = instance.state.snmp()?;
    let slot = i64::try_from(oid).ok()?;
    snmp.slot(slot).ok().flatten().map(|s| s.value)
}

/// Clears the SNMP slots (`uwsgi.testing.reset`).
pub fn reset_snmp() {
    if let Some(snmp) = instance::current().state.snmp() {
        snmp.clear_slots();
    }
}

/// `snmp_set_community(community)`: the community the agent answers to (cut at 72
/// bytes, with a warning, as uWSGI); `True` once stored. `None` when there is no SNMP
/// table to store it in (embedded without `--snmp`, where uWSGI 2.0 has no such
/// function), like the other `snmp_*` functions.
#[pyfunction]
pub fn snmp_set_community(py: Python<'_>, community: &Bound<'_, PyAny>) -> PyResult<Option<bool>> {
    let community = bytes_of(community, "community")?;
    let instance = instance::current();
    let Some(snmp) = instance.state.snmp() else {
        return Ok(None);
    };
    if snmp.set_community(&community) {
        let warning =
            "*** warning the supplied SNMP community string will be truncated to 72 chars ***";
        match instance::host() {
            Some(host) => host.log(warning),
            None => crate::signals::log_warning(py, warning)?,
        }
    }
    Ok(Some(true))
}

/// Adds the functions to the module.
pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    for function in [
        wrap_pyfunction!(worker_id, m)?,
        wrap_pyfunction!(mule_id, m)?,
        wrap_pyfunction!(masterpid, m)?,
        wrap_pyfunction!(total_requests, m)?,
        wrap_pyfunction!(request_id, m)?,
        wrap_pyfunction!(mem, m)?,
        wrap_pyfunction!(workers, m)?,
        wrap_pyfunction!(log, m)?,
        wrap_pyfunction!(logsize, m)?,
        wrap_pyfunction!(log_this_request, m)?,
        wrap_pyfunction!(reload, m)?,
        wrap_pyfunction!(cl, m)?,
        wrap_pyfunction!(disconnect, m)?,
        wrap_pyfunction!(connection_fd, m)?,
        wrap_pyfunction!(stop, m)?,
        wrap_pyfunction!(set_logvar, m)?,
        wrap_pyfunction!(get_logvar, m)?,
        wrap_pyfunction!(set_warning_message, m)?,
        wrap_pyfunction!(alarm, m)?,
        wrap_pyfunction!(setprocname, m)?,
        wrap_pyfunction!(micros, m)?,
        wrap_pyfunction!(ready, m)?,
        wrap_pyfunction!(accepting, m)?,
        wrap_pyfunction!(set_user_harakiri, m)?,
        wrap_pyfunction!(sorry_i_need_to_block, m)?,
        wrap_pyfunction!(has_hook, m)?,
        wrap_pyfunction!(get_option, m)?,
        wrap_pyfunction!(set_option, m)?,
        wrap_pyfunction!(async_sleep, m)?,
        wrap_pyfunction!(suspend, m)?,
        wrap_pyfunction!(wait_fd_read, m)?,
        wrap_pyfunction!(wait_fd_write, m)?,
        wrap_pyfunction!(extract, m)?,
        wrap_pyfunction!(embedded_data, m)?,
        wrap_pyfunction!(mule_msg, m)?,
        wrap_pyfunction!(mule_get_msg, m)?,
        wrap_pyfunction!(farm_msg, m)?,
        wrap_pyfunction!(farm_get_msg, m)?,
        wrap_pyfunction!(in_farm, m)?,
        wrap_pyfunction!(listen_queue, m)?,
        wrap_pyfunction!(ready_fd, m)?,
        wrap_pyfunction!(i_am_the_lord, m)?,
        wrap_pyfunction!(lord_scroll, m)?,
        wrap_pyfunction!(scrolls, m)?,
        wrap_pyfunction!(cluster, m)?,
        wrap_pyfunction!(cluster_nodes, m)?,
        wrap_pyfunction!(cluster_best_node, m)?,
        wrap_pyfunction!(cluster_node_name, m)?,
        wrap_pyfunction!(snmp_set_community, m)?,
    ] {
        m.add_function(function)?;
    }
    m.add("getoption", wrap_pyfunction!(get_option, m)?)?;
    m.add("setoption", wrap_pyfunction!(set_option, m)?)?;
    m.add("green_schedule", wrap_pyfunction!(suspend, m)?)?;
    register_snmp(m)?;
    Ok(())
}
