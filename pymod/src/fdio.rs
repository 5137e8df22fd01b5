//! I/O on file descriptors this module does not own: a pipe given to
//! `send_message(..., fd, cl)` or `fcgi(stdin_fd=...)`, the request's socket from
//! `uwsgi.connection_fd()`, a socket opened by Python code. uWSGI reads and writes any
//! descriptor number it is given, so these functions do too.
//!
//! Rust cannot borrow a bare descriptor number without unsafe code, which the workspace
//! denies; these go through Python's `os` and `select` modules instead, which release the
//! GIL around each system call (and run signal handlers on `EINTR`, so Ctrl-C still
//! interrupts a wait). Every wait is bounded by a timeout: a descriptor that is not
//! ready in time raises `UwsgiTimeoutError`. Other failures are the `OSError` the system
//! call raised.

use std::time::{Duration, Instant};

use pyo3::exceptions::PyBlockingIOError;
use pyo3::prelude::*;
use pyo3::types::{IntoPyDict, PyBytes};

use crate::errors;

/// How a descriptor is named in errors.
pub fn label(fd: i32) -> String {
    format!("fd {fd}")
}

/// What a wait is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Readiness {
    /// Bytes to read (or the end of the stream).
    Read,
    /// Room to write.
    Write,
}

/// Waits (without the GIL) until `fd` is ready, at most `timeout`.
pub fn wait(py: Python<'_>, fd: i32, readiness: Readiness, timeout: Duration) -> PyResult<()> {
    let select = py.import("select")?;
    let (flag, phase) = match readiness {
        Readiness::Read => ("POLLIN", "read"),
        Readiness::Write => ("POLLOUT", "write"),
    };
    let poller = select.call_method0("poll")?;
    poller.call_method1("register", (fd, select.getattr(flag)?))?;
    // poll() counts milliseconds: round up, so a short timeout still waits.
    let millis = timeout.as_micros().div_ceil(1000);
    let ready = poller.call_method1("poll", (u64::try_from(millis).unwrap_or(u64::MAX),))?;
    if ready.len()? == 0 {
        return Err(errors::timeout_error(py, phase, &label(fd)));
    }
    Ok(())
}

/// One read of at most `max` bytes from `fd`, after waiting at most `timeout` for it to
/// be readable; empty at the end of the stream.
pub fn read_some(py: Python<'_>, fd: i32, max: usize, timeout: Duration) -> PyResult<Vec<u8>> {
    let os = py.import("os")?;
    loop {
        wait(py, fd, Readiness::Read, timeout)?;
        match os.call_method1("read", (fd, max)) {
            Ok(chunk) => return Ok(chunk.cast::<PyBytes>()?.as_bytes().to_vec()),
            // A non-blocking descriptor whose bytes another reader took first.
            Err(err) if err.is_instance_of::<PyBlockingIOError>(py) => {}
            Err(err) => return Err(err),
        }
    }
}

/// Exactly `len` bytes from `fd`, all read by `deadline`; a stream that ends first is
/// a `UwsgiValueError` naming `why` (what announced the length).
pub fn read_exact(
    py: Python<'_>,
    fd: i32,
    len: usize,
    deadline: Instant,
    why: &str,
) -> PyResult<Vec<u8>> {
    let mut data = Vec::with_capacity(len.min(1 << 20));
    while data.len() < len {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(errors::timeout_error(py, "read", &label(fd)));
        }
        let chunk = read_some(py, fd, (len - data.len()).min(64 * 1024), left)?;
        if chunk.is_empty() {
            return Err(errors::value_error(
                py,
                format!(
                    "fd {fd} ended after {} of the {len} bytes announced by {why}",
                    data.len()
                ),
            ));
        }
        data.extend_from_slice(&chunk);
    }
    Ok(data)
}

/// Writes all of `data` to `fd`, waiting at most `timeout` each time it is not writable.
pub fn write_all(py: Python<'_>, fd: i32, data: &[u8], timeout: Duration) -> PyResult<()> {
    let os = py.import("os")?;
    let mut rest = data;
    while !rest.is_empty() {
        wait(py, fd, Readiness::Write, timeout)?;
        match os.call_method1("write", (fd, PyBytes::new(py, rest))) {
            Ok(written) => {
                let written: usize = written.extract()?;
                rest = rest.get(written..).unwrap_or_default();
            }
            Err(err) if err.is_instance_of::<PyBlockingIOError>(py) => {}
            Err(err) => return Err(err),
        }
    }
    Ok(())
}

/// Whether `fd` is a connected socket with no pending error (uWSGI's
/// `uwsgi_is_bad_connection` negated); `false` for anything that is not a socket.
pub fn is_connected(py: Python<'_>, fd: i32) -> PyResult<bool> {
    let socket_module = py.import("socket")?;
    let class = socket_module.getattr("socket")?;
    let level = socket_module.getattr("SOL_SOCKET")?;
    let option = socket_module.getattr("SO_ERROR")?;
    let kwargs = [("fileno", fd)].into_py_dict(py)?;
    // socket.socket(fileno=fd) adopts the descriptor: nothing between here and detach()
    // may return early, so the Python object never closes what it does not own.
    let Ok(socket) = class.call((), Some(&kwargs)) else {
        return Ok(false);
    };
    let error = socket.call_method1("getsockopt", (level, option));
    let peer = socket.call_method0("getpeername");
    socket.call_method0("detach")?;
    let no_error = matches!(error.map(|code| code.extract::<i64>()), Ok(Ok(0)));
    Ok(no_error && peer.is_ok())
}
