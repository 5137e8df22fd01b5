//! The functions that act on the request being served (uWSGI 2.0's signatures and
//! results): `sendfile`, `route`, `add_var`, `offload`, `chunked_read`,
//! `chunked_read_nb`, `websocket_*`, `request_context`, `grunt`.
//!
//! Embedded, each asks the server ([`crate::embed::RequestIo`]); outside a request they
//! raise uWSGI's `SystemError`, and standalone `NoServerError`.

use pyo3::exceptions::{PyOSError, PyTypeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyString, PyTuple};

use crate::embed::RequestIo;
use crate::errors;
use crate::instance;

/// Runs `f` on the current request's I/O; `NoServerError` standalone (`what` says what
/// the function does), uWSGI's `SystemError` outside a request.
pub(crate) fn with_request<T>(
    py: Python<'_>,
    name: &str,
    what: &str,
    f: impl FnOnce(&dyn RequestIo) -> PyResult<T>,
) -> PyResult<T> {
    let Some(host) = instance::host() else {
        return Err(errors::no_server_error(
            py,
            &format!("uwsgi.{name}() {what}"),
        ));
    };
    match host.request() {
        Some(request) => f(request),
        None => Err(crate::process::outside_request(py)),
    }
}

/// The bytes of a `str` (UTF-8) or bytes-like argument, as uWSGI's `s#`.
fn text_or_bytes(value: &Bound<'_, PyAny>, what: &str) -> PyResult<Vec<u8>> {
    if let Ok(text) = value.cast::<PyString>() {
        return Ok(text.to_str()?.as_bytes().to_vec());
    }
    crate::convert::bytes_of(value, what)
}

fn optional_text(value: Option<&Bound<'_, PyAny>>, what: &str) -> PyResult<Option<Vec<u8>>> {
    match value {
        Some(value) if !value.is_none() => text_or_bytes(value, what).map(Some),
        _ => Ok(None),
    }
}

fn io_error(message: String) -> PyErr {
    PyOSError::new_err(message)
}

/// `sendfile(file, chunk=0, pos=0, filesize=0)`: sends the response head (if not sent)
/// then the file now, from `pos`, `filesize` bytes (to the end when 0). `file` is a
/// path (`str`/`bytes`) or an object with a descriptor (`fileno()` or an int). `True`
/// once sent; `None` when the file cannot be opened (logged), as uWSGI 2.0. A
/// connection error raises `OSError`.
#[pyfunction]
#[pyo3(signature = (file, chunk=0, pos=0, filesize=0))]
pub fn sendfile(
    py: Python<'_>,
    file: &Bound<'_, PyAny>,
    chunk: i64,
    pos: i64,
    filesize: i64,
) -> PyResult<Option<bool>> {
    let _ = chunk;
    with_request(
        py,
        "sendfile",
        "sends a file as the current response",
        |request| {
            let opened = if file.is_instance_of::<PyString>() || file.is_instance_of::<PyBytes>() {
                let path = if let Ok(text) = file.cast::<PyString>() {
                    text.to_str()?.to_owned()
                } else {
                    String::from_utf8_lossy(&crate::convert::bytes_of(file, "file")?).into_owned()
                };
                std::fs::File::open(&path).map_err(|err| format!("open(\"{path}\"): {err}"))
            } else {
                let fd: i32 = match file.extract() {
                    Ok(fd) => fd,
                    Err(_) => file.call_method0("fileno")?.extract()?,
                };
                if fd < 0 {
                    return Err(PyValueError::new_err(format!(
                        "file descriptor cannot be a negative integer ({fd})"
                    )));
                }
                std::fs::File::open(format!("/proc/self/fd/{fd}"))
                    .map_err(|err| format!("sendfile: descriptor {fd}: {err}"))
            };
            let opened = match opened {
                Ok(opened) => opened,
                Err(line) => {
                    if let Some(host) = instance::host() {
                        host.log(&line);
                    }
                    return Ok(None);
                }
            };
            let offset = u64::try_from(pos).unwrap_or(0);
            let len = u64::try_from(filesize).unwrap_or(0);
            request
                .sendfile(py, opened, offset, len)
                .map(|_| Some(true))
                .map_err(io_error)
        },
    )
}

/// `route(router, args)`: runs the routing action `router` on the current request and
/// returns its code (uWSGI's `uwsgi_route_api_func`): the `uwsgi` router with
/// `addr,modifier1,modifier2[,appid]` forwards the request to that node and relays its
/// response (2, "break"); -1 for an unknown router or bad arguments.
#[pyfunction]
pub fn route(py: Python<'_>, router: &str, args: &str) -> PyResult<i64> {
    with_request(
        py,
        "route",
        "applies an internal routing action to the current request",
        |request| Ok(request.route(py, router, args)),
    )
}

/// `add_var(key, value)`: adds a var to the current request (seen by the request log
/// and by `route()`); `True`, or `ValueError` when it does not fit the buffer.
#[pyfunction]
pub fn add_var(py: Python<'_>, key: &Bound<'_, PyAny>, value: &Bound<'_, PyAny>) -> PyResult<bool> {
    let key = text_or_bytes(key, "key")?;
    let value = text_or_bytes(value, "value")?;
    with_request(
        py,
        "add_var",
        "adds a var to the current request",
        |request| {
            if request.add_var(&key, &value) {
                Ok(true)
            } else {
                Err(PyValueError::new_err(
                    "unable to add request var, check your buffer size",
                ))
            }
        },
    )
}

/// `offload(...)`: uWSGI 2.0 keeps the name but its body is disabled: it returns `b""`
/// whatever the arguments.
#[pyfunction]
#[pyo3(signature = (*args))]
pub fn offload<'py>(py: Python<'py>, args: &Bound<'py, PyTuple>) -> PyResult<Bound<'py, PyBytes>> {
    let _ = args;
    if instance::host().is_none() {
        return Err(errors::no_server_error(
            py,
            "uwsgi.offload() offloads the current response",
        ));
    }
    Ok(PyBytes::new(py, b""))
}

/// `chunked_read(timeout=0)`: the next chunk of the request's chunked body, `b""` at
/// its end; `OSError("unable to receive chunked part")` on an error or timeout.
#[pyfunction]
#[pyo3(signature = (timeout=0))]
pub fn chunked_read(py: Python<'_>, timeout: i64) -> PyResult<Py<PyBytes>> {
    with_request(
        py,
        "chunked_read",
        "reads the current request's chunked body",
        |request| match request.chunked_read(py, timeout, false) {
            Ok(chunk) => Ok(PyBytes::new(py, &chunk.unwrap_or_default()).unbind()),
            Err(_) => Err(io_error("unable to receive chunked part".to_owned())),
        },
    )
}

/// `chunked_read_nb()`: like `chunked_read` without waiting: `None` when no complete
/// chunk is there yet.
#[pyfunction]
pub fn chunked_read_nb(py: Python<'_>) -> PyResult<Option<Py<PyBytes>>> {
    with_request(
        py,
        "chunked_read_nb",
        "reads the current request's chunked body",
        |request| match request.chunked_read(py, 0, true) {
            Ok(chunk) => Ok(chunk.map(|c| PyBytes::new(py, &c).unbind())),
            Err(_) => Err(io_error("unable to receive chunked part".to_owned())),
        },
    )
}

/// `websocket_handshake(key=None, origin=None, proto=None)`: answers the request's
/// websocket upgrade (101, `Sec-WebSocket-Accept` from `key`, else the request's
/// `Sec-WebSocket-Key`); `None`, or `OSError("unable to complete websocket handshake")`.
#[pyfunction]
#[pyo3(signature = (key=None, origin=None, proto=None))]
pub fn websocket_handshake(
    py: Python<'_>,
    key: Option<&Bound<'_, PyAny>>,
    origin: Option<&Bound<'_, PyAny>>,
    proto: Option<&Bound<'_, PyAny>>,
) -> PyResult<()> {
    let key = optional_text(key, "key")?;
    let origin = optional_text(origin, "origin")?;
    let proto = optional_text(proto, "proto")?;
    with_request(
        py,
        "websocket_handshake",
        "upgrades the current request to a websocket",
        |request| {
            request
                .websocket_handshake(py, key.as_deref(), origin.as_deref(), proto.as_deref())
                .map_err(|_| io_error("unable to complete websocket handshake".to_owned()))
        },
    )
}

/// A request context (`request_context()`) given to a websocket function: it must be
/// the current request's.
fn check_context(py: Python<'_>, context: Option<&Bound<'_, PyAny>>) -> PyResult<()> {
    let Some(context) = context.filter(|c| !c.is_none()) else {
        return Ok(());
    };
    let context = context
        .cast::<RequestContext>()
        .map_err(|_| PyTypeError::new_err("expected a uwsgi.RequestContext"))?;
    let current = instance::host().map_or(0, |host| host.request_id());
    if context.borrow().request_id != current {
        let _ = py;
        return Err(PyValueError::new_err(
            "the request context is no longer valid",
        ));
    }
    Ok(())
}

/// `websocket_recv(request_context=None)`: the next message (text or binary, its
/// fragments joined), answering pings meanwhile; `OSError("unable to receive websocket
/// message")` when the peer closed, on an error, or past `--websockets-max-size`.
#[pyfunction]
#[pyo3(signature = (request_context=None))]
pub fn websocket_recv(
    py: Python<'_>,
    request_context: Option<&Bound<'_, PyAny>>,
) -> PyResult<Py<PyBytes>> {
    check_context(py, request_context)?;
    with_request(
        py,
        "websocket_recv",
        "reads from the current websocket",
        |request| {
            request
                .websocket_recv(py, false)
                .map(|message| PyBytes::new(py, &message).unbind())
                .map_err(|_| io_error("unable to receive websocket message".to_owned()))
        },
    )
}

/// `websocket_recv_nb(request_context=None)`: like `websocket_recv` without waiting:
/// `b""` when no message is complete yet.
#[pyfunction]
#[pyo3(signature = (request_context=None))]
pub fn websocket_recv_nb(
    py: Python<'_>,
    request_context: Option<&Bound<'_, PyAny>>,
) -> PyResult<Py<PyBytes>> {
    check_context(py, request_context)?;
    with_request(
        py,
        "websocket_recv_nb",
        "reads from the current websocket",
        |request| {
            request
                .websocket_recv(py, true)
                .map(|message| PyBytes::new(py, &message).unbind())
                .map_err(|_| io_error("unable to receive websocket message".to_owned()))
        },
    )
}

/// `websocket_send(message, request_context=None)`: one text frame; `None`, or
/// `OSError("unable to send websocket message")`.
#[pyfunction]
#[pyo3(signature = (message, request_context=None))]
pub fn websocket_send(
    py: Python<'_>,
    message: &Bound<'_, PyAny>,
    request_context: Option<&Bound<'_, PyAny>>,
) -> PyResult<()> {
    send_frame(py, message, request_context, false)
}

/// `websocket_send_binary(message, request_context=None)`: one binary frame; `None`,
/// or `OSError("unable to send websocket binary message")`.
#[pyfunction]
#[pyo3(signature = (message, request_context=None))]
pub fn websocket_send_binary(
    py: Python<'_>,
    message: &Bound<'_, PyAny>,
    request_context: Option<&Bound<'_, PyAny>>,
) -> PyResult<()> {
    send_frame(py, message, request_context, true)
}

/// The two `websocket_send*` functions: a text or binary frame, with uWSGI's names and
/// error messages for each.
fn send_frame(
    py: Python<'_>,
    message: &Bound<'_, PyAny>,
    request_context: Option<&Bound<'_, PyAny>>,
    binary: bool,
) -> PyResult<()> {
    check_context(py, request_context)?;
    let message = text_or_bytes(message, "message")?;
    let (name, failure) = if binary {
        (
            "websocket_send_binary",
            "unable to send websocket binary message",
        )
    } else {
        ("websocket_send", "unable to send websocket message")
    };
    with_request(py, name, "writes to the current websocket", |request| {
        request
            .websocket_send(py, &message, binary)
            .map_err(|_| io_error(failure.to_owned()))
    })
}

/// The current request, as `request_context()` returns it (uWSGI 2.1): passed to the
/// websocket functions, it must still be the request being served.
#[derive(Debug)]
#[pyclass(module = "uwsgi", name = "RequestContext", frozen)]
pub struct RequestContext {
    request_id: u64,
}

/// `request_context()`: the current request (see [`RequestContext`]).
#[pyfunction]
pub fn request_context(py: Python<'_>) -> PyResult<RequestContext> {
    with_request(
        py,
        "request_context",
        "is the current request's context",
        |_| {
            let request_id = instance::host().map_or(0, |host| host.request_id());
            Ok(RequestContext { request_id })
        },
    )
}

/// `grunt(*args)` (uWSGI 1.4, needs `--grunt`): forks the worker in the middle of the
/// request. The child (a grunt: no longer accepting requests, not counted as a worker)
/// gets `True` and finishes the request, then exits; the parent gets `None` and lets go
/// of the connection (kept when any argument is given). Without `--grunt`, logs
/// "grunt support is disabled !!!" and returns `None`.
#[pyfunction]
#[pyo3(signature = (*args))]
pub fn grunt(py: Python<'_>, args: &Bound<'_, PyTuple>) -> PyResult<Option<bool>> {
    let keep_connection = !args.is_empty();
    with_request(
        py,
        "grunt",
        "forks a detached worker (--grunt)",
        |request| match request.grunt(py, keep_connection) {
            Ok(true) => Ok(Some(true)),
            Ok(false) => Ok(None),
            Err(line) => {
                if let Some(host) = instance::host() {
                    host.log(&line);
                }
                Ok(None)
            }
        },
    )
}

/// Adds the functions to the module.
pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    for function in [
        wrap_pyfunction!(sendfile, m)?,
        wrap_pyfunction!(route, m)?,
        wrap_pyfunction!(add_var, m)?,
        wrap_pyfunction!(offload, m)?,
        wrap_pyfunction!(chunked_read, m)?,
        wrap_pyfunction!(chunked_read_nb, m)?,
        wrap_pyfunction!(websocket_handshake, m)?,
        wrap_pyfunction!(websocket_recv, m)?,
        wrap_pyfunction!(websocket_recv_nb, m)?,
        wrap_pyfunction!(websocket_send, m)?,
        wrap_pyfunction!(websocket_send_binary, m)?,
        wrap_pyfunction!(request_context, m)?,
        wrap_pyfunction!(grunt, m)?,
    ] {
        m.add_function(function)?;
    }
    m.add_class::<RequestContext>()?;
    Ok(())
}
