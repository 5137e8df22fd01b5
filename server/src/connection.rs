//! One connection: read one packet within the limits and the socket timeout, answer it,
//! close — the uwsgi protocol has one request per connection in every uWSGI version.
//!
//! The body that follows an application request is framed strictly by its
//! `CONTENT_LENGTH`: the app can read exactly that many bytes and no more, and nothing
//! after them is ever parsed, so a body can never be taken for a second packet.

use std::io::{self, Read, Write};
use std::net::IpAddr;
use std::os::fd::{AsFd, BorrowedFd};
use std::sync::Arc;
use std::time::{Duration, Instant};

use uwsgi_protocol::{DecodeError, InvalidPacket, Packet};

use crate::dispatch::{self, Outcome};
use crate::server::Shared;

/// Who is on the other end.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Peer {
    /// A TCP peer.
    Inet(std::net::SocketAddr),
    /// A unix-socket peer.
    Unix,
}

impl Peer {
    /// The peer's IP, `None` for unix sockets.
    pub fn ip(&self) -> Option<IpAddr> {
        match self {
            Peer::Inet(addr) => Some(addr.ip()),
            Peer::Unix => None,
        }
    }
}

impl std::fmt::Display for Peer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Peer::Inet(addr) => write!(f, "{}", addr.ip()),
            Peer::Unix => f.write_str("unix"),
        }
    }
}

/// How a connection ended without a reply; whose fault it was is in the variant.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    /// The peer sent bytes that are not a valid packet.
    #[error("peer sent an invalid packet: {0}")]
    Invalid(#[from] InvalidPacket),
    /// The peer closed before a whole packet arrived.
    #[error("peer closed the connection mid-packet ({needed} more byte(s) were due)")]
    Truncated {
        /// Bytes still missing.
        needed: usize,
    },
    /// The peer closed without sending anything (a connect/close probe).
    #[error("peer closed the connection without sending anything")]
    Empty,
    /// A read or write failed or timed out.
    #[error("socket error: {0}")]
    Io(#[from] io::Error),
}

/// The body of an application request: the bytes already read past the block, then the
/// rest from the socket, never more than the announced length in total.
pub struct Body<'a> {
    prefix: &'a [u8],
    stream: &'a mut (dyn Read + Send),
    remaining: u64,
}

impl std::fmt::Debug for Body<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Body")
            .field("buffered", &self.prefix.len())
            .field("remaining", &self.remaining)
            .finish_non_exhaustive()
    }
}

impl<'a> Body<'a> {
    pub(crate) fn new(prefix: &'a [u8], stream: &'a mut (dyn Read + Send), len: u64) -> Self {
        let take = usize::try_from(len).unwrap_or(usize::MAX).min(prefix.len());
        Body {
            prefix: &prefix[..take],
            stream,
            remaining: len,
        }
    }

    /// Bytes of body not read yet.
    pub fn remaining(&self) -> u64 {
        self.remaining
    }
}

impl Read for Body<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.remaining == 0 || buf.is_empty() {
            return Ok(0);
        }
        let want = usize::try_from(self.remaining)
            .unwrap_or(usize::MAX)
            .min(buf.len());
        let n = if self.prefix.is_empty() {
            let n = read_retrying(self.stream, &mut buf[..want])?;
            if n == 0 {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    format!("peer closed with {} body byte(s) unsent", self.remaining),
                ));
            }
            n
        } else {
            let n = want.min(self.prefix.len());
            buf[..n].copy_from_slice(&self.prefix[..n]);
            self.prefix = &self.prefix[n..];
            n
        };
        self.remaining -= n as u64;
        Ok(n)
    }
}

/// The reply side of a connection: the stream, its descriptor when it has one (for
/// `sendfile(2)`), and the server's shared handle on it when there is one (for
/// [`crate::app::Output::try_clone_connection`]).
struct Reply<'a, S> {
    stream: &'a S,
    fd: Option<BorrowedFd<'a>>,
    shared: Option<&'a crate::app::SharedConnection>,
}

impl<S> Write for Reply<'_, S>
where
    for<'s> &'s S: Write,
{
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.stream.write(buf)
    }
    fn write_all(&mut self, buf: &[u8]) -> io::Result<()> {
        self.stream.write_all(buf)
    }
    fn write_vectored(&mut self, bufs: &[io::IoSlice<'_>]) -> io::Result<usize> {
        self.stream.write_vectored(bufs)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.stream.flush()
    }
}

impl<S: Sync> crate::app::Output for Reply<'_, S>
where
    for<'s> &'s S: Write,
{
    fn send_file(&mut self, file: &std::fs::File, offset: u64, len: u64) -> io::Result<u64> {
        let Some(fd) = self.fd else {
            return crate::app::copy_file(file, offset, len, self);
        };
        let mut position = offset;
        let end = offset.saturating_add(len);
        while position < end {
            let want = usize::try_from(end - position)
                .unwrap_or(usize::MAX)
                .min(1 << 30);
            match rustix::fs::sendfile(fd, file, Some(&mut position), want) {
                Ok(0) => break,
                Ok(_) => {}
                Err(rustix::io::Errno::INTR) => {}
                Err(rustix::io::Errno::AGAIN) => {
                    return Err(io::Error::new(
                        io::ErrorKind::TimedOut,
                        "sendfile: the peer did not read within --socket-timeout",
                    ));
                }
                // Not a socket or file sendfile(2) can pair (nothing was sent yet in
                // this call's failing step): copy the rest.
                Err(rustix::io::Errno::INVAL | rustix::io::Errno::NOSYS) => {
                    let copied = crate::app::copy_file(file, position, end - position, self)?;
                    return Ok(position - offset + copied);
                }
                Err(err) => return Err(err.into()),
            }
        }
        Ok(position - offset)
    }

    /// One non-blocking `sendmsg(2)` of the parts (`MSG_DONTWAIT`, `MSG_NOSIGNAL` as
    /// the ordinary writes have).
    fn write_now(&mut self, parts: &[io::IoSlice<'_>]) -> io::Result<usize> {
        let Some(fd) = self.fd else {
            return Ok(0);
        };
        let flags = rustix::net::SendFlags::DONTWAIT | rustix::net::SendFlags::NOSIGNAL;
        let mut control = rustix::net::SendAncillaryBuffer::default();
        match rustix::net::sendmsg(fd, parts, &mut control, flags) {
            Ok(n) => Ok(n),
            // Full, interrupted, or not a socket after all: the blocking way does it.
            Err(
                rustix::io::Errno::AGAIN | rustix::io::Errno::INTR | rustix::io::Errno::NOTSOCK,
            ) => Ok(0),
            Err(err) => Err(err.into()),
        }
    }

    fn raw_fd(&self) -> Option<i32> {
        use std::os::fd::AsRawFd;
        self.fd.map(|fd| fd.as_raw_fd())
    }

    fn try_clone_connection(&self) -> Option<crate::app::SharedConnection> {
        self.shared.cloned()
    }
}

/// Serves one request on `stream`. `buffer` is the worker's reusable read buffer.
///
/// The stream is used through shared references (`&TcpStream` and `&UnixStream` read
/// and write), so the body reader and the reply writer can both hold it.
pub fn serve<S: Sync>(
    stream: &S,
    peer: Peer,
    shared: &Shared,
    buffer: &mut Vec<u8>,
    set_read_timeout: &dyn Fn(Option<Duration>) -> io::Result<()>,
) -> Result<Outcome, ServeError>
where
    for<'s> &'s S: Read + Write,
{
    serve_on(stream, None, None, peer, shared, buffer, set_read_timeout)
}

/// [`serve`] on a socket the server holds in an `Arc`: file responses go out with
/// `sendfile(2)`, and an app may hold the connection for the time of the request
/// (see [`crate::app::Output::try_clone_connection`]).
pub fn serve_socket<S: Send + Sync + AsFd + 'static>(
    stream: &Arc<S>,
    peer: Peer,
    shared: &Shared,
    buffer: &mut Vec<u8>,
    set_read_timeout: &dyn Fn(Option<Duration>) -> io::Result<()>,
) -> Result<Outcome, ServeError>
where
    for<'s> &'s S: Read + Write,
{
    let handle: crate::app::SharedConnection = Arc::clone(stream) as _;
    serve_on(
        &**stream,
        Some(stream.as_fd()),
        Some(&handle),
        peer,
        shared,
        buffer,
        set_read_timeout,
    )
}

fn serve_on<S: Sync>(
    stream: &S,
    fd: Option<BorrowedFd<'_>>,
    handle: Option<&crate::app::SharedConnection>,
    peer: Peer,
    shared: &Shared,
    buffer: &mut Vec<u8>,
    set_read_timeout: &dyn Fn(Option<Duration>) -> io::Result<()>,
) -> Result<Outcome, ServeError>
where
    for<'s> &'s S: Read + Write,
{
    let limits = shared.limits;
    let mut reader = stream;
    let mut filled = 0;
    // The whole packet must arrive within one socket timeout, not each read: a peer
    // trickling a byte at a time cannot hold a worker for longer than that.
    let deadline = Some(shared.socket_timeout)
        .filter(|t| !t.is_zero())
        .map(|t| Instant::now() + t);
    let mut shortened = false;
    // Only the header is looked at while reading: the packet is decoded once, whole.
    let consumed = loop {
        let needed = match Packet::frame_len(&buffer[..filled], &limits) {
            Ok(end) if end <= filled => break end,
            Ok(end) => end - filled,
            Err(DecodeError::Invalid(reason)) => return Err(reason.into()),
            Err(DecodeError::Incomplete { needed }) => needed,
        };
        // Read greedily, as uWSGI 2.0 does: the header, the block and the start of
        // the body usually arrive in one read.
        let want = needed.max(READ_CHUNK.saturating_sub(filled));
        if buffer.len() < filled + want {
            buffer.resize(filled + want, 0);
        }
        // The first read runs under the socket's own timeout (set once on the
        // listener and inherited); later reads only get what is left of it.
        if let Some(deadline) = deadline.filter(|_| filled > 0) {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(ServeError::Io(io::Error::new(
                    io::ErrorKind::TimedOut,
                    "the request packet did not arrive within --socket-timeout",
                )));
            }
            set_read_timeout(Some(left))?;
            shortened = true;
        }
        let read =
            read_retrying(&mut reader, &mut buffer[filled..filled + want]).map_err(|e| match e
                .kind()
            {
                io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut => io::Error::new(
                    io::ErrorKind::TimedOut,
                    "the request packet did not arrive within --socket-timeout",
                ),
                _ => e,
            })?;
        if read == 0 {
            return Err(if filled == 0 {
                ServeError::Empty
            } else {
                ServeError::Truncated { needed }
            });
        }
        filled += read;
    };
    // The body gets the full socket timeout for each read again.
    if shortened {
        set_read_timeout(Some(shared.socket_timeout).filter(|t| !t.is_zero()))?;
    }
    let (packet, surplus) = buffer[..filled].split_at(consumed);
    let decoded = Packet::decode(packet, &limits).map_err(|e| match e {
        DecodeError::Invalid(reason) => ServeError::Invalid(reason),
        DecodeError::Incomplete { needed } => ServeError::Truncated { needed },
    })?;
    let mut body = Body::new(surplus, &mut reader, decoded.body_len);
    let mut writer = Reply {
        stream,
        fd,
        shared: handle,
    };
    let outcome = dispatch::answer(&decoded.packet, &mut body, &mut writer, peer, shared)?;
    writer.flush()?;
    Ok(outcome)
}

/// One `read`, repeated when a signal interrupted it (a forked worker's threads may get
/// the wake-up signal meant for `accept` just as they start reading).
fn read_retrying(reader: &mut (impl Read + ?Sized), buf: &mut [u8]) -> io::Result<usize> {
    loop {
        match reader.read(buf) {
            Err(err) if err.kind() == io::ErrorKind::Interrupted => {}
            other => return other,
        }
    }
}

/// Bytes asked of the first read: a typical nginx request block and some body.
const READ_CHUNK: usize = 4096;
