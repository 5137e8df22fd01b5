//! `--http-socket`: plain HTTP/1.1 into the same application path as uwsgi requests.
//!
//! Each request head is parsed under explicit limits (request.rs) and turned into the
//! vars nginx would send; the body is framed by `Content-Length` or decoded from
//! chunked (body.rs); the app gets a [`Request`] and writes a raw HTTP response, which
//! is framed for keep-alive on its way out (response.rs). One connection carries
//! requests one after the other: the next head is read only when the previous response
//! is complete and its body fully read or drained, so a body is never taken for a
//! request.

pub mod body;
pub mod request;
pub mod response;

use std::io::{self, Read, Write};
use std::os::fd::BorrowedFd;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use uwsgi_protocol::packet::Request;
use uwsgi_protocol::{Modifier1, VarsBuilder};

use crate::config::ServerConfig;
use crate::connection::Peer;
use crate::server::Shared;
use body::{BodyError, Exchange, FixedBody, Input, Timeouts};
use request::{Context, Framing, Head, Reject};
use response::{DRAIN_LIMIT, Framer};

/// Smallest read buffer of a connection (it is at least `--buffer-size` plus this).
const BUFFER_EXTRA: usize = 16 * 1024;
/// While idle between requests, the socket is polled in slices this long so that a
/// graceful stop is noticed.
const IDLE_SLICE: Duration = Duration::from_millis(250);
/// When another connection waits for a worker, an idle keep-alive connection gets this
/// long to start its next request before it is closed to free the worker.
pub const IDLE_GRACE_WHEN_BUSY: Duration = Duration::from_millis(200);
/// The same for a new connection that has sent nothing yet (a browser's preconnect).
pub const FRESH_GRACE_WHEN_BUSY: Duration = Duration::from_secs(1);

/// The HTTP socket's limits, from the configuration.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Settings {
    /// Largest request head (`--buffer-size`).
    pub head_limit: usize,
    /// Largest request body, plain or chunked (`--limit-post`, else the codec's 1 GiB).
    pub max_body: u64,
    /// The whole head must arrive within this, and each body read too
    /// (`--socket-timeout`).
    pub socket_timeout: Duration,
    /// How long an idle connection is kept between requests (`--http-keepalive`); zero
    /// closes after every response, as uWSGI's `--http-socket` does.
    pub keepalive: Duration,
    /// Requests served on one connection before it is closed.
    pub max_requests: u64,
    /// The modifier1 requests are served as (`--http-socket-modifier1`).
    pub modifier1: u8,
}

/// Requests one keep-alive connection may carry.
pub const MAX_REQUESTS_PER_CONNECTION: u64 = 1000;

impl Settings {
    /// The settings `config` describes.
    pub fn from_config(config: &ServerConfig) -> Settings {
        Settings {
            head_limit: usize::from(config.buffer_size),
            max_body: config.limits().max_body,
            socket_timeout: config.socket_timeout,
            keepalive: config.http_keepalive,
            max_requests: MAX_REQUESTS_PER_CONNECTION,
            modifier1: config.http_modifier1,
        }
    }
}

/// Why a connection ended other than by the client closing it between requests.
#[derive(Debug, thiserror::Error)]
pub enum HttpError {
    /// The client sent something we refuse; this status was sent back.
    #[error("refused with {}: {}", .0.status, .0.reason)]
    Rejected(Reject),
    /// The request head did not arrive within `--socket-timeout`.
    #[error("the request head did not arrive within --socket-timeout")]
    Timeout,
    /// The client closed in the middle of a request head.
    #[error("the client closed in the middle of a request head")]
    Truncated,
    /// A read or write failed.
    #[error("socket error: {0}")]
    Io(#[from] io::Error),
}

/// The response the server itself sends for `status`, with `Connection: close`.
pub fn error_response(status: u16) -> Vec<u8> {
    let reason = match status {
        400 => "Bad Request",
        408 => "Request Timeout",
        413 => "Content Too Large",
        414 => "URI Too Long",
        417 => "Expectation Failed",
        431 => "Request Header Fields Too Large",
        501 => "Not Implemented",
        503 => "Service Unavailable",
        505 => "HTTP Version Not Supported",
        _ => "Internal Server Error",
    };
    let body = format!("{status} {reason}\n");
    format!(
        "HTTP/1.1 {status} {reason}\r\nContent-Type: text/plain\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}

fn hostname() -> &'static str {
    static NAME: OnceLock<String> = OnceLock::new();
    NAME.get_or_init(crate::hostname)
}

fn ip_text(ip: std::net::IpAddr) -> String {
    match ip {
        std::net::IpAddr::V6(v6) => v6
            .to_ipv4_mapped()
            .map_or_else(|| v6.to_string(), |v4| v4.to_string()),
        v4 => v4.to_string(),
    }
}

impl Context {
    /// The vars of a TCP connection.
    pub fn tcp(local: std::net::SocketAddr, remote: std::net::SocketAddr) -> Context {
        Context {
            server_name: hostname().to_owned(),
            server_addr: ip_text(local.ip()),
            server_port: local.port().to_string(),
            remote_addr: ip_text(remote.ip()),
            remote_port: remote.port().to_string(),
        }
    }

    /// The vars of a unix-socket connection: nginx's `unix:` forms, and port 80 as
    /// uWSGI's http-socket says when its socket name has no port.
    pub fn unix(path: &std::path::Path) -> Context {
        Context {
            server_name: hostname().to_owned(),
            server_addr: format!("unix:{}", path.display()),
            server_port: "80".to_owned(),
            remote_addr: "unix:".to_owned(),
            remote_port: String::new(),
        }
    }
}

/// Writes the server's own error response, then reads for a moment what the client
/// is still sending so the close does not reset the connection under the response.
fn refuse<S>(input: &mut Input<'_, S>, stream: &S, status: u16)
where
    for<'s> &'s S: Read + Write,
    S: Sync,
{
    let mut writer = stream;
    if writer.write_all(&error_response(status)).is_ok() && writer.flush().is_ok() {
        let until = Instant::now() + Duration::from_millis(100);
        let mut drained = 0;
        while drained < 256 * 1024 {
            input.consume(input.available().len());
            let left = until.saturating_duration_since(Instant::now());
            match input.fill(Some(left)) {
                Ok(n) if n > 0 && !left.is_zero() => drained += n,
                _ => break,
            }
        }
    }
}

enum Waited {
    Head(Head),
    /// Closed cleanly, idle too long, or stopping: close without a word.
    Done,
}

/// Reads the next request head. The first request of a connection has the socket
/// timeout for all of it; later ones wait up to the keep-alive time for their first
/// byte, then have the socket timeout for the rest.
fn read_head<S>(
    input: &mut Input<'_, S>,
    settings: &Settings,
    context: &Context,
    first: bool,
    waiting: &Waiting<'_>,
) -> Result<Waited, HttpError>
where
    for<'s> &'s S: Read + Write,
    S: Sync,
{
    let socket_timeout = Some(settings.socket_timeout).filter(|t| !t.is_zero());
    let started = Instant::now();
    let mut deadline = if first {
        socket_timeout.map(|t| started + t)
    } else {
        None
    };
    loop {
        if input.available().is_empty() {
            // Nothing of a request yet: wait for its first bytes.
            let (until, grace) = if first {
                (deadline, FRESH_GRACE_WHEN_BUSY)
            } else {
                (Some(started + settings.keepalive), IDLE_GRACE_WHEN_BUSY)
            };
            if !wait_for_request(input, waiting, until, grace)? {
                return Ok(Waited::Done);
            }
            continue;
        }
        match request::parse(input.available(), settings.head_limit, context) {
            Ok(Some(head)) => return Ok(Waited::Head(head)),
            Ok(None) => {}
            Err(reject) => return Err(HttpError::Rejected(reject)),
        }
        if deadline.is_none() {
            deadline = socket_timeout.map(|t| Instant::now() + t);
        }
        let timeout = match deadline {
            Some(deadline) => {
                let left = deadline.saturating_duration_since(Instant::now());
                if left.is_zero() {
                    return Err(HttpError::Timeout);
                }
                Some(left)
            }
            None => None,
        };
        match input.fill(timeout) {
            Ok(0) => return Err(HttpError::Truncated),
            Ok(_) => {}
            Err(e) if e.kind() == io::ErrorKind::TimedOut => return Err(HttpError::Timeout),
            Err(e) => return Err(e.into()),
        }
    }
}

/// The descriptors a connection waiting for its next request polls: its own, and the
/// listening socket it came from (readable when another connection waits for a worker).
#[derive(Debug, Clone, Copy)]
pub struct Polled<'a> {
    /// The listening socket.
    pub listener: BorrowedFd<'a>,
    /// The connection.
    pub connection: BorrowedFd<'a>,
}

/// What a connection waiting for its next request looks at besides its bytes.
struct Waiting<'a> {
    /// Without descriptors (an in-memory stream), the server never yields.
    polled: Option<Polled<'a>>,
    /// The server is stopping.
    stopping: &'a AtomicBool,
}

impl Waiting<'_> {
    /// Whether a connection waits on the listener for a worker.
    fn others_wait(&self) -> io::Result<bool> {
        match self.polled {
            Some(polled) => Ok(readable([polled.listener], Duration::ZERO)? == [true]),
            None => Ok(false),
        }
    }
}

/// Which of `fds` are readable (or closed) within `timeout`.
fn readable<const N: usize>(fds: [BorrowedFd<'_>; N], timeout: Duration) -> io::Result<[bool; N]> {
    use rustix::event::{PollFd, PollFlags, Timespec, poll};
    let mut polled = fds.map(|fd| PollFd::from_borrowed_fd(fd, PollFlags::IN));
    let timeout = Timespec::try_from(timeout).unwrap_or(Timespec {
        tv_sec: 1,
        tv_nsec: 0,
    });
    match poll(&mut polled, Some(&timeout)) {
        Ok(_) => Ok(polled.map(|p| !p.revents().is_empty())),
        Err(rustix::io::Errno::INTR) => Ok([false; N]),
        Err(e) => Err(e.into()),
    }
}

/// Waits until the connection sends something (true, with the bytes read into `input`)
/// or should be closed (false): it closed, `until` passed, the server stops, or another
/// connection has waited `grace` for a worker while this one stayed silent.
fn wait_for_request<S>(
    input: &mut Input<'_, S>,
    waiting: &Waiting<'_>,
    until: Option<Instant>,
    grace: Duration,
) -> Result<bool, HttpError>
where
    for<'s> &'s S: Read + Write,
    S: Sync,
{
    loop {
        if waiting.stopping.load(Ordering::Relaxed) {
            return Ok(false);
        }
        let left = until.map_or(IDLE_SLICE, |u| u.saturating_duration_since(Instant::now()));
        if left.is_zero() {
            return Ok(false);
        }
        let slice = left.min(IDLE_SLICE);
        let ready = match waiting.polled {
            None => true,
            Some(polled) => {
                let [connection, listener_ready] =
                    readable([polled.connection, polled.listener], slice)?;
                if connection {
                    true
                } else if listener_ready {
                    // Someone waits for a worker: this connection gets `grace` to start
                    // a request, then yields its worker if the other one still waits.
                    let [connection] = readable([polled.connection], grace.min(left))?;
                    if !connection && readable([polled.listener], Duration::ZERO)? == [true] {
                        return Ok(false);
                    }
                    connection
                } else {
                    false
                }
            }
        };
        if !ready {
            continue;
        }
        match input.fill(Some(slice)) {
            Ok(0) => return Ok(false),
            Ok(_) => return Ok(true),
            Err(e) if e.kind() == io::ErrorKind::TimedOut => {}
            Err(e) => return Err(e.into()),
        }
    }
}

/// Serves HTTP requests on one connection until it closes, an idle keep-alive times
/// out, or the server stops. `polled` holds the connection's descriptor and the
/// listener's: while the listener has connections waiting for a worker, responses do
/// not keep the connection open, and a silent connection is closed after a short grace
/// ([`IDLE_GRACE_WHEN_BUSY`], [`FRESH_GRACE_WHEN_BUSY`]) to free this worker. Without
/// them (an in-memory stream) the server never yields. Returns the number of requests
/// answered.
#[allow(clippy::too_many_arguments)]
pub fn serve<S>(
    stream: &S,
    context: &Context,
    peer: Peer,
    shared: &Shared,
    buffer: &mut Vec<u8>,
    set_read_timeout: &(dyn Fn(Option<Duration>) -> io::Result<()> + Sync),
    stopping: &AtomicBool,
    polled: Option<Polled<'_>>,
    seat: Option<(usize, usize)>,
) -> Result<u64, HttpError>
where
    for<'s> &'s S: Read + Write,
    S: Sync,
{
    let waiting = Waiting { polled, stopping };
    let settings = shared.http;
    let socket_timeout = Some(settings.socket_timeout).filter(|t| !t.is_zero());
    let capacity = settings.head_limit + BUFFER_EXTRA;
    let mut input = Input::new(
        stream,
        buffer,
        capacity,
        Timeouts::new(set_read_timeout, socket_timeout),
    );
    let mut served = 0u64;
    loop {
        let head = match read_head(&mut input, &settings, context, served == 0, &waiting) {
            Ok(Waited::Head(head)) => head,
            Ok(Waited::Done) => return Ok(served),
            Err(HttpError::Rejected(reject)) => {
                refuse(&mut input, stream, reject.status);
                return Err(HttpError::Rejected(reject));
            }
            Err(HttpError::Timeout) => {
                refuse(&mut input, stream, 408);
                return Err(HttpError::Timeout);
            }
            Err(e) => return Err(e),
        };
        input.consume(head.len);
        let _busy = seat.map(|(worker, core)| shared.scoreboard.begin(worker, core));
        served += 1;
        let modifier1 = Modifier1::from(settings.modifier1);
        if !shared.modifier_allowed(settings.modifier1) || !shared.app.serves(modifier1) {
            let reject = Reject {
                status: 503,
                reason: "the application does not serve --http-socket-modifier1",
            };
            refuse(&mut input, stream, reject.status);
            return Err(HttpError::Rejected(reject));
        }
        // Keep-alive only while no other connection waits for a worker: a worker
        // serves one connection at a time, so a kept connection would make the waiting
        // ones queue behind all of its requests.
        let keep_alive = head.keep_alive
            && !settings.keepalive.is_zero()
            && served < settings.max_requests
            && !stopping.load(Ordering::Relaxed)
            && !waiting.others_wait()?;
        let exchange = Exchange::default();
        let mut vars = head.vars;
        let exchange_head = ExchangeHead {
            modifier1,
            is_head: head.is_head,
            minor: head.minor,
            keep_alive,
        };
        let keep = match head.framing {
            Framing::Chunked => {
                if head.expect_continue && input.available().is_empty() {
                    let mut writer = stream;
                    writer.write_all(body::CONTINUE)?;
                    writer.flush()?;
                }
                let decoded = match body::read_chunked(
                    &mut input,
                    settings.max_body,
                    settings.head_limit,
                    socket_timeout,
                ) {
                    Ok(decoded) => decoded,
                    Err(BodyError::Reject(reject)) => {
                        refuse(&mut input, stream, reject.status);
                        return Err(HttpError::Rejected(reject));
                    }
                    // A body cut short or too slow is the client's fault: say so.
                    Err(BodyError::Io(e))
                        if matches!(
                            e.kind(),
                            io::ErrorKind::UnexpectedEof | io::ErrorKind::TimedOut
                        ) =>
                    {
                        let status = if e.kind() == io::ErrorKind::TimedOut {
                            408
                        } else {
                            400
                        };
                        refuse(&mut input, stream, status);
                        return Err(e.into());
                    }
                    Err(BodyError::Io(e)) => return Err(e.into()),
                };
                if let Err(reject) = push_length(&mut vars, decoded.len) {
                    refuse(&mut input, stream, reject.status);
                    return Err(HttpError::Rejected(reject));
                }
                let mut reader = decoded.into_reader()?;
                call(
                    stream,
                    peer,
                    shared,
                    &vars,
                    &exchange_head,
                    &exchange,
                    &mut reader,
                )?
            }
            Framing::Length(length) => {
                if length > settings.max_body {
                    let reject = Reject {
                        status: 413,
                        reason: "Content-Length larger than --limit-post",
                    };
                    refuse(&mut input, stream, reject.status);
                    return Err(HttpError::Rejected(reject));
                }
                if let Err(reject) = push_length(&mut vars, length) {
                    refuse(&mut input, stream, reject.status);
                    return Err(HttpError::Rejected(reject));
                }
                exchange.remaining.store(length, Ordering::Relaxed);
                exchange.continue_pending.store(
                    head.expect_continue && input.available().is_empty(),
                    Ordering::Relaxed,
                );
                let mut body = FixedBody::new(&mut input, &exchange, socket_timeout);
                call(
                    stream,
                    peer,
                    shared,
                    &vars,
                    &exchange_head,
                    &exchange,
                    &mut body,
                )?
            }
            Framing::None => call(
                stream,
                peer,
                shared,
                &vars,
                &exchange_head,
                &exchange,
                &mut io::empty(),
            )?,
        };
        if !keep {
            return Ok(served);
        }
        // What the app left of the body is read and dropped, so it is never parsed as
        // the next request; too much of it, or a client still waiting for 100 Continue,
        // closes the connection instead.
        let left = exchange.remaining.load(Ordering::Relaxed);
        if left > 0 {
            if left > DRAIN_LIMIT || exchange.continue_pending.load(Ordering::Relaxed) {
                return Ok(served);
            }
            let mut body = FixedBody::new(&mut input, &exchange, socket_timeout);
            if io::copy(&mut body, &mut io::sink()).is_err() {
                return Ok(served);
            }
        }
    }
}

fn push_length(vars: &mut VarsBuilder, length: u64) -> Result<(), Reject> {
    vars.push("CONTENT_LENGTH", length.to_string())
        .map(|_| ())
        .map_err(|_| Reject {
            status: 431,
            reason: "request vars do not fit a uwsgi packet",
        })
}

struct ExchangeHead {
    modifier1: Modifier1,
    is_head: bool,
    minor: u8,
    keep_alive: bool,
}

/// Calls the app as the uwsgi path does and frames its response. Returns whether the
/// connection may carry another request.
fn call<S>(
    stream: &S,
    peer: Peer,
    shared: &Shared,
    vars: &VarsBuilder,
    head: &ExchangeHead,
    exchange: &Exchange,
    body: &mut (dyn Read + Send),
) -> io::Result<bool>
where
    for<'s> &'s S: Read + Write,
    S: Sync,
{
    let request = Request::new(head.modifier1, vars.as_vars());
    let mut framer = Framer::new(stream, exchange, head.is_head, head.minor, head.keep_alive);
    let started = Instant::now();
    let result = shared.app.call(&request, body, &mut framer);
    match &result {
        Ok(status) => shared.log_request(&request, peer, status, started.elapsed()),
        Err(err) => shared.log(format_args!("{peer}: the application failed: {err}")),
    }
    framer.finish(result.is_ok())
}
