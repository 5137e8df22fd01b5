//! The host's side of the `uwsgi` module's request functions ([`RequestIo`]):
//! `sendfile`, `route`, `add_var`, `chunked_read`, `websocket_*`, `grunt` and
//! `send(data)`, on the request the calling thread serves.

use std::io::{self, Read, Write};
use std::os::fd::BorrowedFd;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use pyo3::prelude::*;
use uwsgi_pymod::embed::RequestIo;

use super::websocket::{self, Session, Step, WsError};
use super::{PythonHost, current, response};

/// Grunts forked by this process and not reaped yet.
static GRUNTS: Mutex<Vec<rustix::process::Pid>> = Mutex::new(Vec::new());

/// The routing codes of uWSGI (`UWSGI_ROUTE_*`).
const ROUTE_CONTINUE: i64 = 1;
const ROUTE_BREAK: i64 = 2;
/// The most `chunked_read` returns at once: the largest piece the body's reader buffers.
const CHUNK: usize = 64 * 1024;

/// Runs `f` on the current request's socket; an error when it has none.
#[allow(unsafe_code)]
fn with_socket<R>(f: impl FnOnce(BorrowedFd<'_>) -> io::Result<R>) -> io::Result<R> {
    let Some(fd) = super::CURRENT
        .with(std::cell::Cell::get)
        .and_then(|(_, fd)| fd)
    else {
        return Err(io::Error::other(
            "the request's connection has no descriptor",
        ));
    };
    // SAFETY: `fd` is the descriptor of the connection the server lent this thread for
    // the current request (set at its start, cleared at its end); the server closes it
    // only after the request, so it is open for the length of this call.
    let fd = unsafe { BorrowedFd::borrow_raw(fd) };
    f(fd)
}

/// Waits until the socket is readable (at most `timeout`; `None` waits forever), then
/// reads what is there into `buf`. `Ok(None)`: the time passed; `Ok(Some(0))`: the peer
/// closed.
fn read_socket(buf: &mut Vec<u8>, timeout: Option<Duration>) -> io::Result<Option<usize>> {
    with_socket(|fd| {
        use rustix::event::{PollFd, PollFlags, Timespec};
        let spec = timeout.map(|t| Timespec {
            tv_sec: i64::try_from(t.as_secs()).unwrap_or(i64::MAX),
            tv_nsec: i64::from(t.subsec_nanos()),
        });
        let mut fds = [PollFd::from_borrowed_fd(fd, PollFlags::IN)];
        loop {
            match rustix::event::poll(&mut fds, spec.as_ref()) {
                Ok(0) => return Ok(None),
                Ok(_) => break,
                Err(rustix::io::Errno::INTR) => {}
                Err(err) => return Err(err.into()),
            }
        }
        let mut chunk = [0u8; 16 * 1024];
        loop {
            match rustix::net::recv(fd, &mut chunk, rustix::net::RecvFlags::DONTWAIT) {
                Ok((n, _)) => {
                    buf.extend_from_slice(&chunk[..n]);
                    return Ok(Some(n));
                }
                Err(rustix::io::Errno::INTR) => {}
                Err(rustix::io::Errno::AGAIN) => return Ok(None),
                Err(err) => return Err(err.into()),
            }
        }
    })
}

impl PythonHost {
    fn websocket_max(&self) -> u64 {
        let kib = if self.websockets_max_size == 0 {
            1024
        } else {
            self.websockets_max_size
        };
        kib.saturating_mul(1024)
    }

    /// Runs `f` on the request's websocket session (opened on first use).
    fn session<R>(&self, f: impl FnOnce(&mut Session) -> R) -> R {
        websocket::SESSION.with(|slot| {
            let mut slot = slot.borrow_mut();
            f(slot.get_or_insert_with(|| Session::new(self.websocket_max())))
        })
    }

    fn websocket_recv_now(&self, nonblocking: bool) -> Result<Vec<u8>, WsError> {
        let io = |e: io::Error| WsError::Io(e.to_string());
        loop {
            let step = self.session(|s| {
                if s.closed {
                    return Err(WsError::Closed);
                }
                s.step()
            });
            match step {
                Ok(Some(Step::Message(message))) => return Ok(message),
                Ok(Some(Step::Reply(frame))) => {
                    response::send_now(&frame).map_err(io)?;
                    continue;
                }
                Ok(Some(Step::Continue)) => continue,
                Ok(None) => {}
                Err(WsError::Closed) => {
                    let _ = response::send_now(&websocket::close_frame());
                    return Err(WsError::Closed);
                }
                Err(err) => {
                    self.session(|s| s.closed = true);
                    return Err(err);
                }
            }
            let mut buf = self.session(|s| std::mem::take(&mut s.buf));
            let wait = if nonblocking {
                Some(Duration::ZERO)
            } else {
                Some(websocket::PING_FREQ)
            };
            let read = read_socket(&mut buf, wait);
            self.session(|s| s.buf = buf);
            match read {
                Ok(Some(0)) | Err(_) => {
                    self.session(|s| s.closed = true);
                    return Err(WsError::Closed);
                }
                Ok(Some(_)) => {}
                Ok(None) => {
                    // Idle: ping the client, or give up when it stopped answering.
                    let ping = self.session(|s| s.keepalive(Instant::now()));
                    match ping {
                        Ok(Some(frame)) => response::send_now(&frame).map_err(io)?,
                        Ok(None) => {}
                        Err(err) => {
                            self.session(|s| s.closed = true);
                            return Err(err);
                        }
                    }
                    if nonblocking {
                        return Ok(Vec::new());
                    }
                }
            }
        }
    }

    /// Forwards the request to the uwsgi node `addr` with `modifier1`/`modifier2` and
    /// relays its response to the client; the status code and bytes relayed.
    fn forward(
        &self,
        addr: &str,
        modifier1: u8,
        modifier2: u8,
        body: &[u8],
    ) -> io::Result<(u16, usize)> {
        let (vars, _, _) = current::vars_block();
        let size = u16::try_from(vars.len())
            .map_err(|_| io::Error::other("the request's vars do not fit a uwsgi packet"))?;
        let mut packet = Vec::with_capacity(4 + vars.len() + body.len());
        packet.push(modifier1);
        packet.extend_from_slice(&size.to_le_bytes());
        packet.push(modifier2);
        packet.extend_from_slice(&vars);
        packet.extend_from_slice(body);
        let timeout = Some(self.socket_timeout).filter(|t| !t.is_zero());
        let node = connect_node(addr, timeout)?;
        (&node).write_all(&packet)?;
        let mut relayed = 0usize;
        let mut code = 0u16;
        let mut buf = vec![0u8; 32 * 1024];
        loop {
            let n = match (&node).read(&mut buf) {
                Ok(0) => break,
                Ok(n) => n,
                Err(err) if err.kind() == io::ErrorKind::Interrupted => continue,
                Err(err) if relayed == 0 => return Err(err),
                Err(_) => break,
            };
            if relayed == 0 {
                code = status_code(&buf[..n]).unwrap_or(0);
                response::mark_sent(code, 0);
            }
            response::write_raw(&buf[..n])?;
            relayed += n;
        }
        Ok((code, relayed))
    }
}

/// A node connection: TCP or unix.
/// A connection to the uwsgi node `addr` (`host:port`, `[v6]:port`, a unix socket path
/// or `@abstract`, as everywhere else): a host name is resolved within `timeout`, and
/// connecting, reading and writing are bounded by it too.
fn connect_node(addr: &str, timeout: Option<Duration>) -> io::Result<socket2::Socket> {
    let address: uwsgi_protocol::client::Address = addr
        .parse()
        .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
    let mut last = io::Error::new(
        io::ErrorKind::NotFound,
        format!("{addr} resolves to no address"),
    );
    for (domain, target) in address.resolve_within(timeout)? {
        let socket = socket2::Socket::new(domain, socket2::Type::STREAM, None)?;
        let connected = match timeout {
            Some(t) => socket.connect_timeout(&target, t),
            None => socket.connect(&target),
        };
        match connected {
            Ok(()) => {
                socket.set_read_timeout(timeout)?;
                socket.set_write_timeout(timeout)?;
                return Ok(socket);
            }
            Err(err) => last = err,
        }
    }
    Err(last)
}

/// The status code of a response that starts with `HTTP/x.y NNN`.
fn status_code(bytes: &[u8]) -> Option<u16> {
    let rest = bytes.strip_prefix(b"HTTP/")?;
    let space = rest.iter().position(|b| *b == b' ')?;
    let code = rest.get(space + 1..space + 4)?;
    std::str::from_utf8(code).ok()?.parse().ok()
}

/// Reaps the grunts of this process that ended (called after each request).
pub fn reap_grunts() {
    let mut grunts = GRUNTS
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    if grunts.is_empty() {
        return;
    }
    grunts.retain(|pid| {
        matches!(
            rustix::process::waitpid(Some(*pid), rustix::process::WaitOptions::NOHANG),
            Ok(None)
        )
    });
}

/// Points the connection's descriptor at `/dev/null` in a parent whose grunt took the
/// connection over: whatever this process still writes goes nowhere, and its close at
/// the end of the request leaves the grunt's copy of the socket alone.
#[allow(unsafe_code)]
fn let_go_of_connection() {
    let Some(fd) = super::CURRENT
        .with(std::cell::Cell::get)
        .and_then(|(_, fd)| fd)
    else {
        return;
    };
    let Ok(null) = std::fs::OpenOptions::new()
        .write(true)
        .read(true)
        .open("/dev/null")
    else {
        return;
    };
    // SAFETY: dup2 on two descriptors this process owns: `fd` (the request's
    // connection, open for the request) now refers to /dev/null; no memory is involved.
    let _ = unsafe { libc::dup2(std::os::fd::AsRawFd::as_raw_fd(&null), fd) };
}

impl RequestIo for PythonHost {
    fn sendfile(
        &self,
        py: Python<'_>,
        file: std::fs::File,
        offset: u64,
        len: u64,
    ) -> Result<u64, String> {
        let size = file.metadata().map_err(|e| e.to_string())?.len();
        if offset >= size && len == 0 {
            return Ok(0);
        }
        let len = if len == 0 { size - offset } else { len };
        py.detach(|| response::send_file_now(&file, offset, len))
            .map_err(|e| format!("write error: {e}"))
    }

    fn route(&self, py: Python<'_>, router: &str, args: &str) -> i64 {
        if router != "uwsgi" && router != "proxyuwsgi" {
            return -1;
        }
        let parts: Vec<&str> = args.splitn(4, ',').collect();
        if parts.len() < 3 {
            self.log.write(&format!("invalid route syntax: {args}"));
            return -1;
        }
        let number = |s: &str| s.trim().parse::<u8>().unwrap_or(0);
        let (modifier1, modifier2) = (number(parts[1]), number(parts[2]));
        let appid = parts.get(3).filter(|a| !a.is_empty());
        if let Some(appid) = appid {
            current::add_var(b"UWSGI_APPID", appid.as_bytes(), usize::MAX);
        }
        if parts[0].is_empty() {
            // The modifier remapper: it changes what the next routing rules see; here
            // there are none, so only the app id remains.
            return ROUTE_CONTINUE;
        }
        let body = match current::input(py).map(|input| input.borrow(py).read_rest(py)) {
            Some(Ok(body)) => body,
            Some(Err(err)) => {
                self.log.write(&format!(
                    "error routing request to uwsgi server {}: {err}",
                    parts[0]
                ));
                return ROUTE_BREAK;
            }
            None => Vec::new(),
        };
        let addr = parts[0];
        if let Err(err) = py.detach(|| self.forward(addr, modifier1, modifier2, &body)) {
            self.log.write(&format!(
                "error routing request to uwsgi server {addr}: {err}"
            ));
        }
        ROUTE_BREAK
    }

    fn add_var(&self, key: &[u8], value: &[u8]) -> bool {
        current::add_var(key, value, usize::from(self.buffer_size))
    }

    fn chunked_read(
        &self,
        py: Python<'_>,
        timeout: i64,
        nonblocking: bool,
    ) -> Result<Option<Vec<u8>>, String> {
        let Some(input) = current::input(py) else {
            return Err("no request body".to_owned());
        };
        // The server already took the chunked framing off (--http-socket decodes it):
        // the chunks come as the body arrives, b"" at its end. uWSGI's timeout 0 is the
        // socket timeout, which bounds every read of the body anyway.
        let wait = if nonblocking {
            Some(Duration::ZERO)
        } else {
            u64::try_from(timeout)
                .ok()
                .filter(|&secs| secs > 0)
                .map(Duration::from_secs)
        };
        let input = input.borrow(py);
        match wait {
            None => input.next_block(py, CHUNK).map(Some),
            Some(wait) => match input.next_block_within(py, CHUNK, wait) {
                Ok(None) if !nonblocking => Err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    "no chunk within the timeout",
                )),
                other => other,
            },
        }
        .map_err(|e| e.to_string())
    }

    fn websocket_handshake(
        &self,
        py: Python<'_>,
        key: Option<&[u8]>,
        origin: Option<&[u8]>,
        proto: Option<&[u8]>,
    ) -> Result<(), String> {
        let key = key
            .map(<[u8]>::to_vec)
            .or_else(|| current::var(b"HTTP_SEC_WEBSOCKET_KEY"))
            .filter(|k| !k.is_empty())
            .ok_or("no Sec-WebSocket-Key")?;
        let origin = origin
            .map(<[u8]>::to_vec)
            .or_else(|| current::var(b"HTTP_ORIGIN"))
            .unwrap_or_else(|| b"*".to_vec());
        let proto = proto
            .map(<[u8]>::to_vec)
            .or_else(|| current::var(b"HTTP_SEC_WEBSOCKET_PROTOCOL"));
        let accept = websocket::accept_key(&key);
        let mut headers: Vec<(&str, &[u8])> = vec![
            ("Upgrade", b"WebSocket"),
            ("Connection", b"Upgrade"),
            ("Sec-WebSocket-Origin", &origin),
        ];
        if let Some(proto) = &proto {
            headers.push(("Sec-WebSocket-Protocol", proto));
        }
        headers.push(("Sec-WebSocket-Accept", accept.as_bytes()));
        py.detach(|| response::send_head_now("101 Web Socket Protocol Handshake", &headers))
            .map_err(|e| e.to_string())?;
        self.session(|s| s.last_pong = Instant::now());
        Ok(())
    }

    fn websocket_recv(&self, py: Python<'_>, nonblocking: bool) -> Result<Vec<u8>, String> {
        let result = py.detach(|| self.websocket_recv_now(nonblocking));
        result.map_err(|err| {
            if !matches!(err, WsError::Closed) {
                let uri = current::var(b"REQUEST_URI").unwrap_or_default();
                self.log.write(&format!(
                    "[uwsgi-websocket] \"{}\" {err}",
                    String::from_utf8_lossy(&uri)
                ));
            }
            err.to_string()
        })
    }

    fn websocket_send(&self, py: Python<'_>, message: &[u8], binary: bool) -> Result<(), String> {
        if self.session(|s| s.closed) {
            return Err("the websocket is closed".to_owned());
        }
        let frame = websocket::message_frame(message, binary);
        py.detach(|| response::send_now(&frame)).map_err(|e| {
            self.session(|s| s.closed = true);
            e.to_string()
        })
    }

    fn send_raw(&self, py: Python<'_>, data: &[u8]) -> Result<(), String> {
        // As uWSGI's write() on the request's descriptor: the bytes go out as they are,
        // before whatever head the application's response still has to send.
        py.detach(|| response::write_raw(data))
            .map_err(|e| format!("write error: {e}"))
    }

    fn grunt(&self, py: Python<'_>, keep_connection: bool) -> Result<bool, String> {
        if !self.grunt {
            return Err("grunt support is disabled !!!".to_owned());
        }
        self.log.write(&format!(
            "spawning a grunt from worker {} (pid :{})...",
            uwsgi_pymod::embed::Host::worker_id(self),
            std::process::id()
        ));
        let _ = py;
        super::fork::before();
        match crate::master::fork_process() {
            Err(err) => {
                super::fork::parent();
                Err(format!("fork(): {err}"))
            }
            Ok(None) => {
                super::fork::child();
                // The grunt takes no more requests: its listening sockets go, it leaves
                // the worker's session, and it exits once this request is answered.
                for fd in &self.listen_fds {
                    close_fd(*fd);
                }
                let _ = rustix::process::setsid();
                crate::server::become_grunt();
                Ok(true)
            }
            Ok(Some(pid)) => {
                super::fork::parent();
                GRUNTS
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner)
                    .push(pid);
                if !keep_connection {
                    let_go_of_connection();
                    response::set_disconnected(true);
                }
                Ok(false)
            }
        }
    }
}

/// Closes a listening socket inherited by a grunt.
#[allow(unsafe_code)]
fn close_fd(fd: i32) {
    // SAFETY: `fd` is one of the server's listening sockets, which this process (a
    // grunt) will never use again; nothing else in it holds the number.
    let _ = unsafe { libc::close(fd) };
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_codes_of_relayed_heads() {
        assert_eq!(status_code(b"HTTP/1.1 404 Not Found\r\n"), Some(404));
        assert_eq!(status_code(b"HTTP/1.0 200"), Some(200));
        assert_eq!(status_code(b"garbage"), None);
    }
}
