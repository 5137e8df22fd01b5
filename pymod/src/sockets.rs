//! Raw connections (spec §5.7): `connect`, `async_connect`, `send`, `recv`,
//! `recv_block`, `recv_frame`, `is_connected`, `close`.
//!
//! uWSGI hands out bare file descriptors and calls `read()`/`write()` on whatever number
//! it is given. Here `connect` and `async_connect` open a socket this module owns and
//! return its descriptor number; the other functions look the number up and work on that
//! socket without the GIL. Any other descriptor (`uwsgi.connection_fd()`, a pipe, a
//! socket made by Python code) is read and written through [`crate::fdio`]. Either way
//! every wait for the descriptor is bounded by the call's timeout, so a non-blocking
//! socket (what `async_connect` returns, as uWSGI's does) honours it too.

use std::collections::HashMap;
use std::io::{self, Read, Write};
use std::net::Shutdown;
use std::os::fd::{AsFd, AsRawFd};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyTuple};
use socket2::{Socket, Type};
use uwsgi_protocol::client::Address;

use crate::convert::{address_of, bytes_of, timeout_of};
use crate::errors;
use crate::fdio::{self, Readiness};
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

/// The connections made by `connect`/`async_connect`, by descriptor number.
static CONNECTIONS: Mutex<Option<HashMap<i32, Arc<Connection>>>> = Mutex::new(None);

/// Connections `uwsgi.testing.reset()` shut down. Their sockets stay open (shut down in
/// both directions) until `uwsgi.close(fd)`: the number stays taken, so code that still
/// holds it can never read, write or close another file that would otherwise reuse it.
static RETIRED: Mutex<Option<HashMap<i32, Socket>>> = Mutex::new(None);

/// Bytes read past the last frame by `recv_frame` on descriptors this module does not
/// own, by descriptor number (forgotten by `close`).
static FOREIGN_PENDING: Mutex<Option<HashMap<i32, Vec<u8>>>> = Mutex::new(None);

/// The descriptor a function is asked to work on.
enum Target {
    /// A connection made by `connect` or `async_connect`.
    Own(Arc<Connection>),
    /// Any other descriptor, used through [`crate::fdio`].
    Foreign(i32),
}

fn target(py: Python<'_>, fd: i32) -> PyResult<Target> {
    if let Some(connection) = lock(&CONNECTIONS)
        .as_ref()
        .and_then(|map| map.get(&fd).cloned())
    {
        return Ok(Target::Own(connection));
    }
    if lock(&RETIRED)
        .as_ref()
        .is_some_and(|map| map.contains_key(&fd))
    {
        return Err(errors::value_error(
            py,
            format!(
                "fd {fd} was a uwsgi.connect() connection, shut down by \
                 uwsgi.testing.reset(); only uwsgi.close({fd}) is left to do"
            ),
        ));
    }
    if fd < 0 {
        return Err(errors::value_error(
            py,
            format!("{fd} is not a file descriptor"),
        ));
    }
    Ok(Target::Foreign(fd))
}

/// Shuts down every connection (`uwsgi.testing.reset`); their numbers stay reserved
/// until `uwsgi.close` (see [`RETIRED`]).
pub fn close_all() {
    let connections = lock(&CONNECTIONS).take().unwrap_or_default();
    let mut retired = lock(&RETIRED);
    let retired = retired.get_or_insert_with(HashMap::new);
    for (fd, connection) in connections {
        // Not connected yet (an async_connect in progress) is as shut down as it gets.
        let _ = connection.socket.shutdown(Shutdown::Both);
        // When another thread is inside a call on it, that call ends on the shut-down
        // socket and drops it, which closes it: the number is not kept then.
        if let Ok(connection) = Arc::try_unwrap(connection) {
            retired.insert(fd, connection.socket);
        }
    }
    lock(&FOREIGN_PENDING).take();
}

/// Waits (the GIL released by the caller) until `socket` is ready, at most `timeout`.
fn wait_ready(socket: &Socket, readiness: Readiness, timeout: Duration) -> io::Result<()> {
    use rustix::event::{PollFd, PollFlags, Timespec};
    let flags = match readiness {
        Readiness::Read => PollFlags::IN,
        Readiness::Write => PollFlags::OUT,
    };
    let spec = Timespec {
        tv_sec: i64::try_from(timeout.as_secs()).unwrap_or(i64::MAX),
        tv_nsec: i64::from(timeout.subsec_nanos()),
    };
    let mut fds = [PollFd::from_borrowed_fd(socket.as_fd(), flags)];
    loop {
        match rustix::event::poll(&mut fds, Some(&spec)) {
            Ok(0) => return Err(io::ErrorKind::TimedOut.into()),
            Ok(_) => return Ok(()),
            Err(rustix::io::Errno::INTR) => {}
            Err(err) => return Err(err.into()),
        }
    }
}

/// Connects to `address`: resolving a host name and connecting are bounded by `timeout`
/// each. Non-blocking, it returns as soon as the connection is under way.
fn open(address: &Address, timeout: Duration, nonblocking: bool) -> io::Result<Socket> {
    let mut last = io::Error::new(io::ErrorKind::NotFound, "the host resolves to no address");
    for (domain, addr) in address.resolve_within(Some(timeout))? {
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

/// A connected stream socket to `address` (blocking, resolving and connecting bounded
/// by `timeout`).
pub fn open_stream(address: &Address, timeout: Duration) -> io::Result<Socket> {
    open(address, timeout, false)
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
/// a socket path, `@abstract`) and returns its file descriptor. Resolving the host and
/// connecting each take at most `timeout`. Failures raise `UwsgiConnectionError` (uWSGI
/// returns -1).
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
/// descriptor at once (wait for it with `wait_fd_write`). Resolving a host name is
/// bounded by the socket timeout and runs without the GIL. The socket stays
/// non-blocking, as uWSGI's; `send`/`recv` on it still wait up to their timeout.
#[pyfunction]
pub fn async_connect(py: Python<'_>, address: &Bound<'_, PyAny>) -> PyResult<i32> {
    let address = address_of(address, "address")?;
    let timeout = instance::current().settings.socket_timeout;
    let peer = address.to_string();
    let socket = py
        .detach(|| open(&address, timeout, true))
        .map_err(|e| errors::connection_error(py, &e, &peer))?;
    Ok(register(socket, peer))
}

/// Whether a read or write that failed with `e` is tried again after the next wait: a
/// signal interrupted it, or the (non-blocking) socket was not ready after all.
fn wait_again(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::Interrupted | io::ErrorKind::WouldBlock
    )
}

/// Writes all of `data`, waiting at most `timeout` each time the socket is not writable.
fn write_all(connection: &Connection, data: &[u8], timeout: Duration) -> io::Result<()> {
    // A blocking socket could still block inside write() on more than fits its buffer.
    connection.socket.set_write_timeout(Some(timeout))?;
    let mut rest = data;
    while !rest.is_empty() {
        wait_ready(&connection.socket, Readiness::Write, timeout)?;
        match (&connection.socket).write(rest) {
            Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
            Ok(n) => rest = &rest[n..],
            Err(e) if wait_again(&e) => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// `send(fd, data, *, timeout=None)`: writes all of `data` to `fd` (a connection made by
/// `connect`, or any descriptor); `True`. `send(data)` writes `data`, as it is, to the
/// current request's connection (uWSGI 2.0); standalone that is a `NoServerError`, and
/// embedded outside a request uWSGI's `SystemError`.
#[pyfunction]
#[pyo3(signature = (*args, timeout=None))]
pub fn send(py: Python<'_>, args: &Bound<'_, PyTuple>, timeout: Option<f64>) -> PyResult<bool> {
    let (fd, data) = match args.len() {
        2 => (args.get_item(0)?.extract::<i32>()?, args.get_item(1)?),
        1 => {
            let data = bytes_of(&args.get_item(0)?, "data")?;
            return crate::request::with_request(
                py,
                "send",
                "without a fd writes to the current request and",
                |request| {
                    request
                        .send_raw(py, &data)
                        .map(|()| true)
                        .map_err(pyo3::exceptions::PyOSError::new_err)
                },
            );
        }
        n => {
            return Err(pyo3::exceptions::PyTypeError::new_err(format!(
                "send() takes (fd, data) or (data,), not {n} arguments"
            )));
        }
    };
    let data = bytes_of(&data, "data")?;
    let timeout = timeout_of(py, timeout, &instance::current())?;
    match target(py, fd)? {
        Target::Own(connection) => py
            .detach(|| write_all(&connection, &data, timeout))
            .map_err(|e| errors::connection_error(py, &e, &connection.peer))?,
        Target::Foreign(fd) => fdio::write_all(py, fd, &data, timeout)?,
    }
    Ok(true)
}

/// One read of at most `max` bytes, waiting at most `timeout` for them; `Ok(vec![])` at
/// the end of the stream.
fn read_some(connection: &Connection, max: usize, timeout: Duration) -> io::Result<Vec<u8>> {
    let mut buf = vec![0; max];
    loop {
        wait_ready(&connection.socket, Readiness::Read, timeout)?;
        match (&connection.socket).read(&mut buf) {
            Ok(n) => {
                buf.truncate(n);
                return Ok(buf);
            }
            Err(e) if wait_again(&e) => {}
            Err(e) => return Err(e),
        }
    }
}

/// One read of at most `max` bytes from `target`, without the GIL for a connection of
/// ours; empty at the end of the stream.
fn read_target(
    py: Python<'_>,
    target: &Target,
    max: usize,
    timeout: Duration,
) -> PyResult<Vec<u8>> {
    match target {
        Target::Own(connection) => py
            .detach(|| read_some(connection, max, timeout))
            .map_err(|e| errors::connection_error(py, &e, &connection.peer)),
        Target::Foreign(fd) => fdio::read_some(py, *fd, max, timeout),
    }
}

/// `recv(fd, max_size=4096, *, timeout=None)`: one read of at most `max_size` bytes
/// (capped at 4096, as uWSGI) from `fd` (a connection made by `connect`, or any
/// descriptor); `None` at the end of the stream.
#[pyfunction]
#[pyo3(signature = (fd, max_size=4096, *, timeout=None))]
pub fn recv(
    py: Python<'_>,
    fd: i32,
    max_size: usize,
    timeout: Option<f64>,
) -> PyResult<Option<Bound<'_, PyBytes>>> {
    let target = target(py, fd)?;
    let timeout = timeout_of(py, timeout, &instance::current())?;
    let data = read_target(py, &target, max_size.clamp(1, MAX_RECV), timeout)?;
    Ok((!data.is_empty()).then(|| PyBytes::new(py, &data)))
}

/// `recv_block(fd, size, timeout=None)`: exactly `size` bytes (capped at 4096, as
/// uWSGI 1.4) from `fd`; `None` when the stream ends first. A wait longer than
/// `timeout` raises `UwsgiTimeoutError`.
#[pyfunction]
#[pyo3(signature = (fd, size, timeout=None))]
pub fn recv_block(
    py: Python<'_>,
    fd: i32,
    size: usize,
    timeout: Option<f64>,
) -> PyResult<Option<Bound<'_, PyBytes>>> {
    let target = target(py, fd)?;
    let timeout = timeout_of(py, timeout, &instance::current())?;
    let size = size.min(MAX_RECV);
    let mut data = Vec::with_capacity(size);
    while data.len() < size {
        let chunk = read_target(py, &target, size - data.len(), timeout)?;
        if chunk.is_empty() {
            break;
        }
        data.extend_from_slice(&chunk);
    }
    Ok((data.len() == size).then(|| PyBytes::new(py, &data)))
}

/// Finds a frame in `buffer`: the bytes between the first `prefix` and the next
/// `suffix`. Returns the frame and how many bytes it consumed.
pub fn find_frame(buffer: &[u8], prefix: u8, suffix: u8) -> Option<(Vec<u8>, usize)> {
    let start = buffer.iter().position(|&b| b == prefix)? + 1;
    let len = buffer[start..].iter().position(|&b| b == suffix)?;
    Some((buffer[start..start + len].to_vec(), start + len + 1))
}

/// The next frame of `pending` + what `read` brings; at the end of the stream, the
/// bytes after the last prefix (`b""` if none).
fn next_frame<E>(
    pending: &mut Vec<u8>,
    prefix: u8,
    suffix: u8,
    mut read: impl FnMut() -> Result<Vec<u8>, E>,
) -> Result<Vec<u8>, E> {
    loop {
        if let Some((frame, used)) = find_frame(pending, prefix, suffix) {
            pending.drain(..used);
            return Ok(frame);
        }
        let chunk = read()?;
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
}

/// `recv_frame(fd, prefix=b"\x00", suffix=b"\xff", *, timeout=None)`: reads until a
/// frame `prefix … suffix` (the hixie websocket framing uWSGI 1.4 read) and returns its
/// content; bytes after it are kept for the next call on `fd`. At the end of the
/// stream, the bytes after the last prefix are returned (`b""` if none).
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
    let target = target(py, fd)?;
    let timeout = timeout_of(py, timeout, &instance::current())?;
    let frame = match &target {
        Target::Own(connection) => py
            .detach(|| {
                let mut pending = lock(&connection.pending);
                next_frame(&mut pending, prefix, suffix, || {
                    read_some(connection, MAX_RECV, timeout)
                })
            })
            .map_err(|e| errors::connection_error(py, &e, &connection.peer))?,
        Target::Foreign(fd) => {
            // Python code runs inside the reads (signal handlers): the table is not
            // locked across them.
            let mut pending = lock(&FOREIGN_PENDING)
                .as_mut()
                .and_then(|map| map.remove(fd))
                .unwrap_or_default();
            let frame = next_frame(&mut pending, prefix, suffix, || {
                fdio::read_some(py, *fd, MAX_RECV, timeout)
            });
            if !pending.is_empty() {
                lock(&FOREIGN_PENDING)
                    .get_or_insert_with(HashMap::new)
                    .insert(*fd, pending);
            }
            frame?
        }
    };
    Ok(PyBytes::new(py, &frame))
}

/// `is_connected(fd)`: whether `fd` is a connected socket with no pending error
/// (`False` for any other descriptor).
#[pyfunction]
pub fn is_connected(py: Python<'_>, fd: i32) -> PyResult<bool> {
    match target(py, fd)? {
        Target::Own(connection) => Ok(matches!(connection.socket.take_error(), Ok(None))
            && connection.socket.peer_addr().is_ok()),
        Target::Foreign(fd) => fdio::is_connected(py, fd),
    }
}

/// `close(fd)`: closes a connection made by `connect` (or one `uwsgi.testing.reset()`
/// shut down), or any other descriptor (as `os.close`).
#[pyfunction]
pub fn close(py: Python<'_>, fd: i32) -> PyResult<()> {
    if let Some(map) = lock(&FOREIGN_PENDING).as_mut() {
        map.remove(&fd);
    }
    let connection = lock(&CONNECTIONS).as_mut().and_then(|map| map.remove(&fd));
    if connection.is_some() {
        return Ok(());
    }
    let retired = lock(&RETIRED).as_mut().and_then(|map| map.remove(&fd));
    if retired.is_some() {
        return Ok(());
    }
    py.import("os")?.call_method1("close", (fd,))?;
    Ok(())
}

/// `async_send_message(fd, modifier1, modifier2, obj)` (uWSGI 1.4): writes one uwsgi
/// packet with these modifiers on `fd` (a connection opened by `connect`/
/// `async_connect`, or any descriptor, as the raw functions).
/// The payload is `obj` encoded as 1.4 encodes it: a dict as uwsgi vars (keys and
/// values `str` or `bytes`), `bytes` as they are, anything else marshalled. A negative
/// `fd` sends nothing, as 1.4. Returns `None`; a failed write raises
/// `UwsgiConnectionError` on a `connect` connection and the system's `OSError` on another
/// descriptor (1.4 ignored it), a payload over 65535 bytes
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
    let timeout = timeout_of(py, None, &instance::current())?;
    match target(py, fd)? {
        Target::Own(connection) => py
            .detach(|| write_all(&connection, &packet, timeout))
            .map_err(|e| errors::connection_error(py, &e, &connection.peer)),
        Target::Foreign(fd) => fdio::write_all(py, fd, &packet, timeout),
    }
}

/// Adds the functions to the module.
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
