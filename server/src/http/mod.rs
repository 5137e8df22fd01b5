//! `--http-socket`: plain HTTP/1.1 into the same application path as uwsgi requests.
//!
//! Each request head is parsed under explicit limits (request.rs) and turned into the
//! vars nginx would send; the body is framed by `Content-Length` or decoded from
//! chunked (body.rs); the app gets a [`Request`] and writes a raw HTTP response, which
//! is framed for keep-alive on its way out (response.rs). One connection carries
//! requests one after the other: the next head is read only when the previous response
//! is complete and its body fully read or drained, so a body is never taken for a
//! request.
//!
//! A connection is served in turns ([`serve_turn`]): each serves the requests whose
//! heads are complete in its buffer and never waits for a head. Between turns, real
//! sockets are parked in the worker process's poller (park.rs), holding no thread;
//! [`serve`] drives the turns on a blocking stream instead (in-memory streams).

pub mod body;
pub(crate) mod park;
pub mod request;
pub mod response;

use std::io::{self, Read, Write};
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
/// A blocking connection ([`serve`]) waiting for its next request looks at the stop
/// flag at least this often.
const IDLE_SLICE: Duration = Duration::from_millis(250);

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
    /// Connections a worker process keeps parked, waiting for their next request
    /// (`--http-max-parked`); past it the one closest to its deadline is closed.
    pub max_parked: usize,
}

/// Requests one keep-alive connection may carry.
pub const MAX_REQUESTS_PER_CONNECTION: u64 = 1000;

/// Default of `--http-max-parked`.
pub const DEFAULT_MAX_PARKED: usize = 1000;

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
            max_parked: config.http_max_parked.max(1),
        }
    }

    /// The read buffer of a connection being served: the largest head and a little
    /// more, so that a pipelined request or the start of a body arrives with the head.
    pub fn buffer_capacity(&self) -> usize {
        self.head_limit + BUFFER_EXTRA
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

/// Where requests are served: the connection and what every request on it shares.
struct Place<'a, S> {
    stream: &'a S,
    peer: Peer,
    shared: &'a Shared,
    stopping: &'a AtomicBool,
    seat: Option<(usize, usize)>,
    /// The connection's descriptor, when it has one.
    fd: Option<i32>,
}

/// What became of a connection at the end of a turn ([`serve_turn`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Turn {
    /// No complete request is buffered: wait until the client sends more (or the
    /// deadline of [`Progress::deadline`] passes).
    Wait,
    /// Complete requests are still buffered, but this turn served its share
    /// ([`MAX_REQUESTS_PER_TURN`]): serve them on a later turn, after other clients.
    Yield,
    /// Close the connection: the response said so, or the client closed.
    Close,
}

/// Requests served on one connection in one turn before it yields its thread to other
/// connections (pipelined requests beyond this wait for the next turn).
pub const MAX_REQUESTS_PER_TURN: u32 = 16;

/// What a connection remembers between turns.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Progress {
    /// Requests answered so far.
    pub served: u64,
    /// When the request head now expected started: the accept for a connection's first
    /// request, the first byte of it for later ones; `None` while idle between requests.
    pub head_started: Option<Instant>,
    /// When the last response ended (or the accept).
    pub idle_since: Instant,
}

impl Progress {
    /// A connection accepted at `accepted`.
    pub fn new(accepted: Instant) -> Progress {
        Progress {
            served: 0,
            head_started: Some(accepted),
            idle_since: accepted,
        }
    }

    /// When the connection must be closed if no complete head arrives: the whole head
    /// within `--socket-timeout` of its start (of the accept for the first request), or
    /// the next request's first byte within `--http-keepalive` of the last response.
    /// `None`: no limit (`--socket-timeout 0`).
    pub fn deadline(&self, settings: &Settings) -> Option<Instant> {
        match self.head_started {
            Some(started) => Some(settings.socket_timeout)
                .filter(|t| !t.is_zero())
                .and_then(|t| started.checked_add(t)),
            None => self.idle_since.checked_add(settings.keepalive),
        }
    }
}

/// Serves the requests whose heads are complete in `input` (at most
/// [`MAX_REQUESTS_PER_TURN`]), reading their bodies from the stream as they need
/// (under `--socket-timeout`), but never waiting for a head: a head not complete yet is
/// left buffered for a later turn. `eof`: the client has closed its side, so no more
/// bytes will come.
///
/// This is the whole of HTTP serving: the poller calls it each time a connection has
/// bytes to read, [`serve`] in a loop on a blocking stream.
#[allow(clippy::too_many_arguments)]
pub fn serve_turn<S>(
    input: &mut Input<'_, S>,
    stream: &S,
    context: &Context,
    peer: Peer,
    shared: &Shared,
    stopping: &AtomicBool,
    seat: Option<(usize, usize)>,
    progress: &mut Progress,
    eof: bool,
    fd: Option<i32>,
) -> Result<Turn, HttpError>
where
    for<'s> &'s S: Read + Write,
    S: Sync,
{
    let place = Place {
        stream,
        peer,
        shared,
        stopping,
        seat,
        fd,
    };
    let settings = &shared.http;
    let mut this_turn = 0;
    loop {
        if input.available().is_empty() {
            return Ok(if eof { Turn::Close } else { Turn::Wait });
        }
        let started = *progress.head_started.get_or_insert_with(Instant::now);
        if this_turn >= MAX_REQUESTS_PER_TURN {
            return Ok(Turn::Yield);
        }
        match request::parse(input.available(), settings.head_limit, context) {
            Ok(Some(head)) => {
                progress.served += 1;
                this_turn += 1;
                if !serve_request(input, &place, head, progress.served)? {
                    return Ok(Turn::Close);
                }
                progress.head_started = None;
                progress.idle_since = Instant::now();
            }
            Ok(None) if eof => return Err(HttpError::Truncated),
            Ok(None) => {
                let late = Some(settings.socket_timeout)
                    .filter(|t| !t.is_zero())
                    .is_some_and(|t| started.elapsed() >= t);
                if late {
                    refuse(input, stream, 408);
                    return Err(HttpError::Timeout);
                }
                return Ok(Turn::Wait);
            }
            Err(reject) => {
                refuse(input, stream, reject.status);
                return Err(HttpError::Rejected(reject));
            }
        }
    }
}

/// Serves HTTP requests on one blocking connection until it closes, an idle keep-alive
/// times out, or the server stops: [`serve_turn`] in a loop, waiting on the stream
/// between turns. The poller serves real sockets without holding a thread between
/// requests; this serves streams without a descriptor (in-memory ones, the fuzz
/// harness). Returns the number of requests answered.
#[allow(clippy::too_many_arguments)]
pub fn serve<S>(
    stream: &S,
    context: &Context,
    peer: Peer,
    shared: &Shared,
    buffer: &mut Vec<u8>,
    set_read_timeout: &(dyn Fn(Option<Duration>) -> io::Result<()> + Sync),
    stopping: &AtomicBool,
    seat: Option<(usize, usize)>,
) -> Result<u64, HttpError>
where
    for<'s> &'s S: Read + Write,
    S: Sync,
{
    let settings = shared.http;
    let socket_timeout = Some(settings.socket_timeout).filter(|t| !t.is_zero());
    let mut input = Input::new(
        stream,
        buffer,
        settings.buffer_capacity(),
        Timeouts::new(set_read_timeout, socket_timeout),
    );
    let mut progress = Progress::new(Instant::now());
    loop {
        let turn = serve_turn(
            &mut input,
            stream,
            context,
            peer,
            shared,
            stopping,
            seat,
            &mut progress,
            false,
            None,
        )?;
        match turn {
            Turn::Close => return Ok(progress.served),
            Turn::Yield => continue,
            Turn::Wait => {}
        }
        if stopping.load(Ordering::Relaxed) && input.available().is_empty() {
            return Ok(progress.served);
        }
        let left = progress
            .deadline(&settings)
            .map(|d| d.saturating_duration_since(Instant::now()));
        if left.is_some_and(|left| left.is_zero()) {
            if input.available().is_empty() {
                return Ok(progress.served);
            }
            refuse(&mut input, stream, 408);
            return Err(HttpError::Timeout);
        }
        let slice = left.map_or(IDLE_SLICE, |left| left.min(IDLE_SLICE));
        match input.fill(Some(slice)) {
            Ok(0) if input.available().is_empty() => return Ok(progress.served),
            Ok(0) => return Err(HttpError::Truncated),
            Ok(_) => {}
            Err(e) if e.kind() == io::ErrorKind::TimedOut => {}
            Err(e) => return Err(e.into()),
        }
    }
}

/// Serves one request whose head was just parsed (the `served`th on its connection).
/// Returns whether the connection may carry another request.
fn serve_request<S>(
    input: &mut Input<'_, S>,
    place: &Place<'_, S>,
    head: Head,
    served: u64,
) -> Result<bool, HttpError>
where
    for<'s> &'s S: Read + Write,
    S: Sync,
{
    let Place {
        stream,
        peer,
        shared,
        stopping,
        seat,
        fd,
    } = *place;
    let settings = shared.http;
    let socket_timeout = Some(settings.socket_timeout).filter(|t| !t.is_zero());
    input.consume(head.len);
    let _busy = seat.map(|(worker, core)| shared.scoreboard.begin(worker, core));
    let modifier1 = Modifier1::from(settings.modifier1);
    if !shared.modifier_allowed(settings.modifier1) || !shared.app.serves(modifier1) {
        let reject = Reject {
            status: 503,
            reason: "the application does not serve --http-socket-modifier1",
        };
        refuse(input, stream, reject.status);
        return Err(HttpError::Rejected(reject));
    }
    let keep_alive = head.keep_alive
        && !settings.keepalive.is_zero()
        && served < settings.max_requests
        && !stopping.load(Ordering::Relaxed);
    let exchange = Exchange::default();
    let mut vars = head.vars;
    let exchange_head = ExchangeHead {
        stopping,
        fd,
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
                input,
                settings.max_body,
                settings.head_limit,
                socket_timeout,
            ) {
                Ok(decoded) => decoded,
                Err(BodyError::Reject(reject)) => {
                    refuse(input, stream, reject.status);
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
                    refuse(input, stream, status);
                    return Err(e.into());
                }
                Err(BodyError::Io(e)) => return Err(e.into()),
            };
            if let Err(reject) = push_length(&mut vars, decoded.len) {
                refuse(input, stream, reject.status);
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
                refuse(input, stream, reject.status);
                return Err(HttpError::Rejected(reject));
            }
            if let Err(reject) = push_length(&mut vars, length) {
                refuse(input, stream, reject.status);
                return Err(HttpError::Rejected(reject));
            }
            exchange.remaining.store(length, Ordering::Relaxed);
            exchange.continue_pending.store(
                head.expect_continue && input.available().is_empty(),
                Ordering::Relaxed,
            );
            let mut body = FixedBody::new(input, &exchange, socket_timeout);
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
        return Ok(false);
    }
    // What the app left of the body is read and dropped, so it is never parsed as the
    // next request; too much of it, or a client still waiting for 100 Continue, closes
    // the connection instead.
    let left = exchange.remaining.load(Ordering::Relaxed);
    if left > 0 {
        if left > DRAIN_LIMIT || exchange.continue_pending.load(Ordering::Relaxed) {
            return Ok(false);
        }
        let mut body = FixedBody::new(input, &exchange, socket_timeout);
        if io::copy(&mut body, &mut io::sink()).is_err() {
            return Ok(false);
        }
    }
    Ok(true)
}

fn push_length(vars: &mut VarsBuilder, length: u64) -> Result<(), Reject> {
    vars.push("CONTENT_LENGTH", length.to_string())
        .map(|_| ())
        .map_err(|_| Reject {
            status: 431,
            reason: "request vars do not fit a uwsgi packet",
        })
}

struct ExchangeHead<'a> {
    /// The server's stop flag: a response whose head goes out after it is set closes.
    stopping: &'a AtomicBool,
    /// The connection's descriptor, when it has one.
    fd: Option<i32>,
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
    head: &ExchangeHead<'_>,
    exchange: &Exchange,
    body: &mut (dyn Read + Send),
) -> io::Result<bool>
where
    for<'s> &'s S: Read + Write,
    S: Sync,
{
    let request = Request::new(head.modifier1, vars.as_vars());
    let mut framer = Framer::new(stream, exchange, head.is_head, head.minor, head.keep_alive)
        .closing_when(head.stopping)
        .with_fd(head.fd);
    let started = Instant::now();
    let result = shared.app.call(&request, body, &mut framer);
    match &result {
        Ok(status) => shared.log_request(&request, peer, status, started.elapsed()),
        Err(err) => shared.log(format_args!("{peer}: the application failed: {err}")),
    }
    let keep = framer.finish(result.is_ok());
    crate::server::exit_if_grunt();
    keep
}
