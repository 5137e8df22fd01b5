//! Raw connections (spec §5.7): `connect`, `async_connect`, `send`, `recv`,
//! `recv_block`, `recv_frame`, `is_connected`, `close`.
//!
//! uWSGI hands out bare file descriptors and calls `read()`/`write()` on them. Here
//! `connect` opens a socket this module owns and returns its descriptor number; the
//! other functions look the number up, so they work on connections made by `connect`
//! (any other descriptor raises `UwsgiValueError`, except for `close`, which closes
//! it). Every read and write has a timeout and runs without the GIL.

use std::collections::HashMap;
use std::io::{self, Read, Write};
use std::net::ToSocketAddrs;
use std::os::fd::AsRawFd;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyTuple};
use socket2::{Domain, SockAddr, Socket, Type};
use uwsgi_protocol::client::Address;

use crate::convert::{address_of, bytes_of, timeout_of};
use crate::errors;
use crate::instance::{self, lock};

/// uWSGI caps `recv` and `recv_block` at 4096 bytes per call.
pub const MAX_RECV: usize = 4096;

#[derive(Debug)]
struct Connection {
    socket: Socket,
    peer: String,
    /// Bytes read past the last frame by `recv_frame`.
    pending: Mutex<Vec<u8>>,
}

static CONNECTIONS: Mutex<Option<HashMap<i32, Arc<Connection>>>> = Mutex::new(None);

fn connection(py: Python<'_>, fd: i32) -> PyResult<Arc<Connection>> {
    lock(&CONNECTIONS)
        .as_ref()
        .and_then(|map| map.get(&fd).cloned())
        .ok_or_else(|| {
            errors::value_error(
                py,
                format!("fd {fd} is not a connection opened by uwsgi.connect()"),
            )
        })
}

/// Closes every connection (`uwsgi.testing.reset`).
pub fn close_all() {
    lock(&CONNECTIONS).take();
}

/// The socket domains and addresses of `address`, resolving host names.
fn resolve(address: &Address) -> io::Result<Vec<(Domain, SockAddr)>> {
    match address {
        Address::Tcp { host, port } => Ok((host.as_str(), *port)
            .to_socket_addrs()?
            .map(|addr| (Domain::for_address(addr), SockAddr::from(addr)))
            .collect()),
        Address::Unix(path) => Ok(vec![(Domain::UNIX, SockAddr::unix(path)?)]),
        Address::Abstract(name) => {
            use std::os::unix::ffi::OsStringExt;
            let mut path = vec![0];
            path.extend_from_slice(name);
            Ok(vec![(
                Domain::UNIX,
                SockAddr::unix(std::ffi::OsString::from_vec(path))?,
            )])
        }
        _ => Err(io::Error::new(
            io::ErrorKind::Unsupported,
            "unsupported address kind",
        )),
    }
}

/// A connected stream socket to `address` (blocking, connect bounded by `timeout`).
pub fn open_stream(address: &Address, timeout: Duration) -> io::Result<Socket> {
    open(address, timeout, false)
}

fn open(address: &Address, timeout: Duration, nonblocking: bool) -> io::Result<Socket> {
    let mut last = io::Error::new(io::ErrorKind::NotFound, "the host resolves to no address");
    for (domain, addr) in resolve(address)? {
        let socket = Socket::new(domain, Type::STREAM, None)?;
        let connected = if nonblocking {
            socket.set_nonblocking(true)?;
            match socket.connect(&addr) {
                Ok(()) => Ok(()),
                Err(e)
                    if e.raw_os_error() == Some(rustix::io::Errno::INPROGRESS.raw_os_error()) =>
                {
                    Ok(())
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => Ok(()),
                Err(e) => Err(e),
            }
        } else {
            socket.connect_timeout(&addr, timeout)
        };
        match connected {
            Ok(()) => return Ok(socket),
            Err(e) => last = e,
        }
    }
    Err(last)
}

fn register(socket: Socket, peer: String) -> i32 {
    let fd = socket.as_raw_fd();
    let connection = Arc::new(Connection {
        socket,
        peer,
        pending: Mutex::new(Vec::new()),
    });
    lock(&CONNECTIONS)
        .get_or_insert_with(HashMap::new)
        .insert(fd, connection);
    fd
}

/// `connect(address, timeout=None)`: opens a stream connection to `address` (`host:port`,
/// a socket path, `@abstract`) and returns its file descriptor. Failures raise
/// `UwsgiConnectionError` (uWSGI returns -1).
#[pyfunction]
#[pyo3(signature = (address, timeout=None))]
pub fn connect(py: Python<'_>, address: &Bound<'_, PyAny>, timeout: Option<f64>) -> PyResult<i32> {
    let instance = instance::current();
    let address = address_of(address, "address")?;
    let timeout = timeout_of(py, timeout, &instance)?;
    let peer = address.to_string();
    let socket = py
        .detach(|| open(&address, timeout, false))
        .map_err(|e| errors::connection_error(py, &e, &peer))?;
    Ok(register(socket, peer))
}

/// `async_connect(address)`: starts a non-blocking connection and returns its file
/// descriptor at once (wait for it with `wait_fd_write`).
#[pyfunction]
pub fn async_connect(py: Python<'_>, address: &Bound<'_, PyAny>) -> PyResult<i32> {
    let address = address_of(address, "address")?;
    let peer = address.to_string();
    let socket = open(&address, Duration::ZERO, true)
        .map_err(|e| errors::connection_error(py, &e, &peer))?;
    Ok(register(socket, peer))
}

/// `send(fd, data, *, timeout=None)`: writes all of `data` on a connection; `True`. With a
/// single argument uWSGI writes to the current request's socket, which a standalone
/// module does not have (`NoServerError`).
#[pyfunction]
#[pyo3(signature = (*args, timeout=None))]
pub fn send(py: Python<'_>, args: &Bound<'_, PyTuple>, timeout: Option<f64>) -> PyResult<bool> {
    let (fd, data) = match args.len() {
        2 => (args.get_item(0)?.extract::<i32>()?, args.get_item(1)?),
        1 => {
            return Err(errors::no_server_error(
                py,
                "uwsgi.send(data) without a fd writes to the current request and",
            ));
        }
        n => {
            return Err(pyo3::exceptions::PyTypeError::new_err(format!(
                "send() takes (fd, data) or (data,), not {n} arguments"
            )));
        }
    };
    let data = bytes_of(&data, "data")?;
    let connection = connection(py, fd)?;
    let timeout = timeout_of(py, timeout, &instance::current())?;
    py.detach(|| {
        connection.socket.set_write_timeout(Some(timeout))?;
        (&connection.socket).write_all(&data)
    })
    .map_err(|e| errors::connection_error(py, &e, &connection.peer))?;
    Ok(true)
}

/// One read of at most `max` bytes, with `timeout`; `Ok(vec![])` at the end of stream.
fn read_some(connection: &Connection, max: usize, timeout: Duration) -> io::Result<Vec<u8>> {
    connection.socket.set_read_timeout(Some(timeout))?;
    let mut buf = vec![0; max];
    loop {
        match (&connection.socket).read(&mut buf) {
            Ok(n) => {
                buf.truncate(n);
                return Ok(buf);
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
}

/// `recv(fd, max_size=4096, *, timeout=None)`: one read of at most `max_size` bytes
/// (capped at 4096, as uWSGI); `None` at the end of the stream.
#[pyfunction]
#[pyo3(signature = (fd, max_size=4096, *, timeout=None))]
pub fn recv(
    py: Python<'_>,
    fd: i32,
    max_size: usize,
    timeout: Option<f64>,
) -> PyResult<Option<Bound<'_, PyBytes>>> {
    let connection = connection(py, fd)?;
    let timeout = timeout_of(py, timeout, &instance::current())?;
    let max = max_size.clamp(1, MAX_RECV);
    let data = py
        .detach(|| read_some(&connection, max, timeout))
        .map_err(|e| errors::connection_error(py, &e, &connection.peer))?;
    Ok((!data.is_empty()).then(|| PyBytes::new(py, &data)))
}

/// `recv_block(fd, size, timeout=None)`: exactly `size` bytes (capped at 4096, as
/// uWSGI); `None` when the stream ends first. A wait longer than `timeout` raises
/// `UwsgiTimeoutError`.
#[pyfunction]
#[pyo3(signature = (fd, size, timeout=None))]
pub fn recv_block(
    py: Python<'_>,
    fd: i32,
    size: usize,
    timeout: Option<f64>,
) -> PyResult<Option<Bound<'_, PyBytes>>> {
    let connection = connection(py, fd)?;
    let timeout = timeout_of(py, timeout, &instance::current())?;
    let size = size.min(MAX_RECV);
    let data = py
        .detach(|| -> io::Result<Vec<u8>> {
            let mut data = Vec::with_capacity(size);
            while data.len() < size {
                let chunk = read_some(&connection, size - data.len(), timeout)?;
                if chunk.is_empty() {
                    break;
                }
                data.extend_from_slice(&chunk);
            }
            Ok(data)
        })
        .map_err(|e| errors::connection_error(py, &e, &connection.peer))?;
    Ok((data.len() == size).then(|| PyBytes::new(py, &data)))
}

/// Finds a frame in `buffer`: the bytes between the first `prefix` and the next
/// `suffix`. Returns the frame and how many bytes it consumed.
pub fn find_frame(buffer: &[u8], prefix: u8, suffix: u8) -> Option<(Vec<u8>, usize)> {
    let start = buffer.iter().position(|&b| b == prefix)? + 1;
    let len = buffer[start..].iter().position(|&b| b == suffix)?;
    Some((buffer[start..start + len].to_vec(), start + len + 1))
}

/// `recv_frame(fd, prefix=b"\x00", suffix=b"\xff", *, timeout=None)`: reads until a
/// frame `prefix … suffix` (the hixie websocket framing uWSGI 1.4 read) and returns its
/// content; bytes after it are kept for the next call. At the end of the stream, the
/// bytes after the last prefix are returned (`b""` if none).
#[pyfunction]
#[pyo3(
    signature = (fd, prefix=b"\x00".as_slice(), suffix=b"\xff".as_slice(), *, timeout=None),
    text_signature = "(fd, prefix=b'\\x00', suffix=b'\\xff', *, timeout=None)"
)]
pub fn recv_frame<'py>(
    py: Python<'py>,
    fd: i32,
    prefix: &[u8],
    suffix: &[u8],
    timeout: Option<f64>,
) -> PyResult<Bound<'py, PyBytes>> {
    let (&[prefix], &[suffix]) = (prefix, suffix) else {
        return Err(errors::value_error(
            py,
            "prefix and suffix are single bytes",
        ));
    };
    let connection = connection(py, fd)?;
    let timeout = timeout_of(py, timeout, &instance::current())?;
    let frame = py
        .detach(|| -> io::Result<Vec<u8>> {
            let mut pending = lock(&connection.pending);
            loop {
                if let Some((frame, used)) = find_frame(&pending, prefix, suffix) {
                    pending.drain(..used);
                    return Ok(frame);
                }
                let chunk = read_some(&connection, MAX_RECV, timeout)?;
                if chunk.is_empty() {
                    let rest = match pending.iter().position(|&b| b == prefix) {
                        Some(start) => pending[start + 1..].to_vec(),
                        None => Vec::new(),
                    };
                    pending.clear();
                    return Ok(rest);
                }
                pending.extend_from_slice(&chunk);
            }
        })
        .map_err(|e| errors::connection_error(py, &e, &connection.peer))?;
    Ok(PyBytes::new(py, &frame))
}

/// `is_connected(fd)`: whether the connection is established and has no pending error.
#[pyfunction]
pub fn is_connected(py: Python<'_>, fd: i32) -> PyResult<bool> {
    let connection = connection(py, fd)?;
    Ok(matches!(connection.socket.take_error(), Ok(None)) && connection.socket.peer_addr().is_ok())
}

/// `close(fd)`: closes a connection made by `connect`, or any other descriptor (as
/// `os.close`).
#[pyfunction]
pub fn close(py: Python<'_>, fd: i32) -> PyResult<()> {
    let removed = lock(&CONNECTIONS).as_mut().and_then(|map| map.remove(&fd));
    if removed.is_none() {
        py.import("os")?.call_method1("close", (fd,))?;
    }
    Ok(())
}

/// Adds the functions to the module.
/// `async_send_message(fd, modifier1, modifier2, obj)` (uWSGI 1.4): writes one uwsgi
/// packet with these modifiers on a connection opened by `connect`/`async_connect`.
/// The payload is `obj` encoded as 1.4 encodes it: a dict as uwsgi vars (keys and
/// values `str` or `bytes`), `bytes` as they are, anything else marshalled. A negative
/// `fd` sends nothing, as 1.4. Returns `None`; a failed write raises
/// `UwsgiConnectionError` (1.4 ignored it), a payload over 65535 bytes
/// `UwsgiValueError` (1.4 truncated its 16-bit size).
#[pyfunction]
pub fn async_send_message(
    py: Python<'_>,
    fd: i32,
    modifier1: u8,
    modifier2: u8,
    obj: &Bound<'_, PyAny>,
) -> PyResult<()> {
    if fd < 0 {
        return Ok(());
    }
    let payload = if let Ok(dict) = obj.cast::<pyo3::types::PyDict>() {
        let mut vars = uwsgi_protocol::VarsBuilder::new();
        for (key, value) in dict.iter() {
            vars.push(bytes_of(&key, "keys")?, bytes_of(&value, "values")?)
                .map_err(|e| errors::value_error(py, e.to_string()))?;
        }
        vars.into_block()
    } else if let Ok(bytes) = obj.cast::<PyBytes>() {
        bytes.as_bytes().to_vec()
    } else {
        crate::marshal::dumps(obj, 1)?
    };
    let size = u16::try_from(payload.len()).map_err(|_| {
        errors::value_error(
            py,
            format!(
                "a message of {} bytes does not fit a uwsgi packet",
                payload.len()
            ),
        )
    })?;
    let mut packet = uwsgi_protocol::Header::new(modifier1, size, modifier2)
        .to_bytes()
        .to_vec();
    packet.extend_from_slice(&payload);
    let connection = connection(py, fd)?;
    let timeout = timeout_of(py, None, &instance::current())?;
    py.detach(|| {
        connection.socket.set_write_timeout(Some(timeout))?;
        (&connection.socket).write_all(&packet)
    })
    .map_err(|e| errors::connection_error(py, &e, &connection.peer))
}

pub fn register_functions(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(connect, m)?)?;
    m.add_function(wrap_pyfunction!(async_connect, m)?)?;
    m.add_function(wrap_pyfunction!(send, m)?)?;
    m.add_function(wrap_pyfunction!(recv, m)?)?;
    m.add_function(wrap_pyfunction!(recv_block, m)?)?;
    m.add_function(wrap_pyfunction!(recv_frame, m)?)?;
    m.add_function(wrap_pyfunction!(is_connected, m)?)?;
    m.add_function(wrap_pyfunction!(close, m)?)?;
    m.add_function(wrap_pyfunction!(async_send_message, m)?)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_are_found_between_prefix_and_suffix() {
        assert_eq!(
            find_frame(b"\x00hi\xff", 0, 0xff),
            Some((b"hi".to_vec(), 4))
        );
        assert_eq!(
            find_frame(b"junk\x00a\xff\x00b", 0, 0xff),
            Some((b"a".to_vec(), 7))
        );
        assert_eq!(find_frame(b"\x00open", 0, 0xff), None);
        assert_eq!(find_frame(b"no prefix\xff", 0, 0xff), None);
    }
}
