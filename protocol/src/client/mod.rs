//! A small blocking client on std + socket2 (feature `client`).
//!
//! One [`Client`] names a peer ([`Address`]) and holds its [`Timeouts`] and reply cap.
//! Every call opens one connection, writes one request, reads the one reply and closes —
//! uwsgi has no keep-alive. All bytes are built and read by the codec ([`Packet`],
//! [`Reply`], the vars and array builders); this module only moves them.
//!
//! ```no_run
//! use uwsgi_protocol::client::Client;
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let client = Client::new("127.0.0.1:3031".parse()?);
//! assert_eq!(client.rpc("hello", ["a", "b"])?, Some(b"HELLO:a|b".to_vec()));
//! client.cache().set(b"key", b"value", 0)?;
//! # Ok(())
//! # }
//! ```
//!
//! See docs/client.md for the address syntax, timeouts, the reply cap and the error model.

mod address;
mod error;
mod http;
#[cfg(unix)]
mod listen;
mod multi;

use std::io::{self, Read, Write};
use std::net::Ipv4Addr;
use std::time::{Duration, Instant};

use socket2::{Domain, SockAddr, Socket, Type};

pub use address::{Address, AddressError};
pub use error::{Error, Phase, Result};
pub use http::HttpResponse;
#[cfg(unix)]
pub use listen::{Datagram, DatagramListener, ListenOptions};
pub use multi::{NodeReply, send_multi};

use crate::error::DecodeError;
use crate::header::{Header, Modifier1};
use crate::limits::Limits;
use crate::packet::{
    CacheMagic, CacheRequest, MagicCommand, Message, Packet, Payload, RawPacket, Reply, Request,
    RpcCall, RpcRequest, Signal, VarsMessage,
};
use crate::vars::Vars;

/// The default reply cap: 64 MiB.
pub const DEFAULT_MAX_REPLY: usize = 64 << 20;

/// Limits for decoding replies: any 16-bit block (uWSGI answers with up to 65535 bytes),
/// otherwise the defaults. The reply cap bounds everything else.
const REPLY_LIMITS: Limits = Limits {
    max_datasize: u16::MAX,
    ..Limits::DEFAULT
};

/// Most bytes asked from the socket per read.
const READ_CHUNK: usize = 64 * 1024;

/// Bodies up to this size go out in the same write as the packet.
const ONE_WRITE_BODY: usize = 64 * 1024;

/// Bytes asked by the first read of a reply.
const FIRST_READ: usize = 4 * 1024;

/// How long each step of an exchange may wait. [`Duration::ZERO`] means "no limit".
///
/// The read and write timeouts apply to every single wait on the socket, like uWSGI's
/// `--socket-timeout` (an idle timeout, not a deadline for the whole reply).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Timeouts {
    /// Establishing the connection.
    pub connect: Duration,
    /// Each wait for reply bytes.
    pub read: Duration,
    /// Each wait for room to send request bytes.
    pub write: Duration,
}

impl Timeouts {
    /// 4 seconds for every step, uWSGI's default socket timeout.
    pub const DEFAULT: Timeouts = Timeouts::uniform(Duration::from_secs(4));

    /// The same timeout for every step.
    pub const fn uniform(timeout: Duration) -> Self {
        Timeouts {
            connect: timeout,
            read: timeout,
            write: timeout,
        }
    }
}

impl Default for Timeouts {
    fn default() -> Self {
        Timeouts::DEFAULT
    }
}

/// `None` for a zero duration, which socket options reject.
fn limit(timeout: Duration) -> Option<Duration> {
    (!timeout.is_zero()).then_some(timeout)
}

/// Socket options for [`Client::send_datagram`]. The defaults leave the kernel's
/// (multicast TTL 1, loop on, no broadcast).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct DatagramOptions {
    /// Multicast TTL (IPv4) or hop limit (IPv6).
    pub multicast_ttl: Option<u32>,
    /// Whether multicast datagrams are looped back to local listeners.
    pub multicast_loop: Option<bool>,
    /// The local IPv4 address whose interface sends multicast (e.g. 127.0.0.1 for `lo`);
    /// ignored for IPv6 targets.
    pub multicast_interface: Option<Ipv4Addr>,
    /// Allow sending to a broadcast address.
    pub broadcast: bool,
}

/// A complete reply, owned: the bytes received and the request header that decides how
/// they decode.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OwnedReply {
    request: Header,
    bytes: Vec<u8>,
}

impl OwnedReply {
    /// The decoded reply ([`Reply::Closed`] when nothing came back).
    pub fn reply(&self) -> Reply<'_> {
        // These bytes decoded once already, with the same header and limits.
        Reply::decode(&self.bytes, self.request, true, &REPLY_LIMITS)
            .map_or(Reply::Raw(&self.bytes), |(reply, _)| reply)
    }

    /// The reply bytes as received (header included, trailing bytes after a framed reply
    /// excluded).
    pub fn as_bytes(&self) -> &[u8] {
        &self.bytes
    }

    /// The reply bytes.
    pub fn into_bytes(self) -> Vec<u8> {
        self.bytes
    }

    /// The header of the request this answers.
    pub fn request(&self) -> Header {
        self.request
    }

    /// `true` when the connection closed without a byte.
    pub fn is_closed(&self) -> bool {
        self.bytes.is_empty()
    }
}

/// A blocking uwsgi client for one peer. Cheap to clone; holds no connection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Client {
    address: Address,
    timeouts: Timeouts,
    max_reply: usize,
}

impl From<Address> for Client {
    fn from(address: Address) -> Self {
        Client::new(address)
    }
}

impl Client {
    /// A client for `address` with [`Timeouts::DEFAULT`] and [`DEFAULT_MAX_REPLY`].
    pub fn new(address: Address) -> Self {
        Client {
            address,
            timeouts: Timeouts::DEFAULT,
            max_reply: DEFAULT_MAX_REPLY,
        }
    }

    /// Replaces the timeouts.
    pub fn with_timeouts(mut self, timeouts: Timeouts) -> Self {
        self.timeouts = timeouts;
        self
    }

    /// Replaces the reply cap: the most bytes one reply may have (header and any value
    /// or body included). Larger replies fail with [`Error::ReplyTooLarge`].
    pub fn with_max_reply(mut self, bytes: usize) -> Self {
        self.max_reply = bytes;
        self
    }

    /// The peer.
    pub fn address(&self) -> &Address {
        &self.address
    }

    /// The timeouts in force.
    pub fn timeouts(&self) -> Timeouts {
        self.timeouts
    }

    /// The reply cap in force.
    pub fn max_reply(&self) -> usize {
        self.max_reply
    }

    /// Sends one raw packet — `modifier1`, `modifier2`, `payload` as the block — and reads
    /// the reply the way [`Expect::for_request`](crate::packet::Expect::for_request) says:
    /// one framed packet, bytes until the connection closes, or nothing (the close).
    pub fn send(
        &self,
        modifier1: impl Into<Modifier1>,
        modifier2: u8,
        payload: &[u8],
    ) -> Result<OwnedReply> {
        let packet = raw_packet(modifier1.into(), modifier2, payload)?;
        self.exchange(&packet, &[])
    }

    /// Sends an application request (modifier1 0: WSGI) with `vars` and `body`, and
    /// returns the raw response, read until the server closes (see [`HttpResponse`]).
    ///
    /// The vars must carry a `CONTENT_LENGTH` equal to the body length (or none, for an
    /// empty body); otherwise [`Error::BodyLength`] before anything is sent.
    pub fn request(&self, vars: Vars<'_>, body: &[u8]) -> Result<Vec<u8>> {
        let request = Request::new(Modifier1::Wsgi, vars);
        let declared = request.content_length();
        if u64::try_from(body.len()).ok() != Some(declared) {
            return Err(Error::BodyLength {
                declared,
                actual: body.len(),
            });
        }
        let reply = self.exchange(&Packet::Request(request), body)?;
        if reply.is_closed() {
            return Err(self.unexpected(&Reply::Closed));
        }
        Ok(reply.into_bytes())
    }

    /// Pings (modifier1 100). Returns the server's warning message, if it has one
    /// (`uwsgi.set_warning_message`). Measure the round trip around the call.
    pub fn ping(&self) -> Result<Option<String>> {
        let reply = self.exchange(&Packet::Ping(Message::new(0, Payload::EMPTY)), &[])?;
        match reply.reply() {
            Reply::Pong(pong) if pong.payload.is_empty() => Ok(None),
            Reply::Pong(pong) => Ok(Some(
                String::from_utf8_lossy(pong.payload.as_bytes()).into_owned(),
            )),
            other => Err(self.unexpected(&other)),
        }
    }

    /// Calls RPC function `function` with `args` (modifier1 173, framed reply; results
    /// over 65535 bytes arrive in uWSGI 2.0's modifier2 5 form and are handled too).
    ///
    /// `Ok(None)` is "no result": the server closed without answering, which is what
    /// uWSGI 2.0 does for an unknown function or an empty result. (uWSGI 1.4 answers both
    /// with an empty framed result instead: `Ok(Some(vec![]))`.)
    pub fn rpc<A: AsRef<[u8]>>(
        &self,
        function: impl AsRef<[u8]>,
        args: impl IntoIterator<Item = A>,
    ) -> Result<Option<Vec<u8>>> {
        let items = RpcCall::build(function.as_ref(), args)?;
        let call = RpcCall::framed(items.as_array())?;
        let reply = self.exchange(&Packet::Rpc(RpcRequest::Call(call)), &[])?;
        match reply.reply() {
            Reply::Closed => Ok(None),
            Reply::RpcResult(result) => Ok(Some(result.as_bytes().to_vec())),
            Reply::RpcBigResult { data, .. } => Ok(Some(data.to_vec())),
            other => Err(self.unexpected(&other)),
        }
    }

    /// Raises uWSGI signal `number` (modifier1 110). [`Error::Rejected`] when the server
    /// answers `ff 0000 00` (its signal queue is full). Delivery is asynchronous, and
    /// uWSGI accepts numbers that have no handler.
    pub fn signal(&self, number: u8) -> Result<()> {
        let reply = self.exchange(&Packet::Signal(Signal::new(number)), &[])?;
        self.acknowledged(&reply, "signal")
    }

    /// Enqueues a spooler job described by `vars` (modifier1 17). [`Error::Rejected`]
    /// when the server answers `ff 0000 00` (no spooler, file not written).
    pub fn spool(&self, vars: Vars<'_>) -> Result<()> {
        let reply = self.exchange(&Packet::Spool(VarsMessage::new(0, vars)), &[])?;
        self.acknowledged(&reply, "spool")
    }

    /// Forwards one packet read from `source` — header, block and the body the block
    /// announces (`CONTENT_LENGTH` for application requests, `size` for a cache magic
    /// value) — to the peer byte for byte, as uWSGI 1.4's `uwsgi.route()` re-sends the
    /// current request, and reads the reply as [`Client::send`] does. The body is
    /// streamed, not buffered. Bytes after the body are left in `source`.
    ///
    /// The packet is checked with the codec first ([`Error::InvalidRequest`]; a source
    /// that ends early is `DecodeError::Incomplete`).
    pub fn forward(&self, source: &mut impl Read) -> Result<OwnedReply> {
        let mut packet = vec![0; Header::LEN];
        read_all(source, &mut packet)?;
        let header = Header::parse(&packet).map_err(Error::InvalidRequest)?;
        packet.resize(header.packet_len(), 0);
        read_all(source, &mut packet[Header::LEN..])?;
        let body_len = Packet::from_block(header, &packet[Header::LEN..], &REPLY_LIMITS)
            .map_err(|e| Error::InvalidRequest(e.into()))?
            .body_len();
        let mut socket = self.connect(None)?;
        if body_len > 0 {
            no_delay(&socket);
        }
        self.write(&mut socket, &packet, None)?;
        let mut left = body_len;
        let mut chunk = vec![0; usize::try_from(left).unwrap_or(usize::MAX).min(READ_CHUNK)];
        while left > 0 {
            let want = usize::try_from(left).unwrap_or(usize::MAX).min(chunk.len());
            let n = match source.read(&mut chunk[..want]) {
                Ok(0) => {
                    let missing = usize::try_from(left).unwrap_or(usize::MAX);
                    return Err(Error::InvalidRequest(DecodeError::incomplete(missing)));
                }
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(Error::Input(e)),
            };
            self.write(&mut socket, &chunk[..n], None)?;
            left -= n as u64;
        }
        self.read_reply(&mut socket, header, None)
    }

    /// Reads a uWSGI stats server (`--stats ADDR`): it writes one JSON document on
    /// accept and closes. Returns the document's bytes, unchecked (uWSGI 1.4 does not
    /// escape strings, so they are not always valid JSON). [`Error::NoReply`] when the
    /// peer closes without a byte.
    pub fn stats(&self) -> Result<Vec<u8>> {
        let mut socket = self.connect(None)?;
        let document = self.read_to_close(&mut socket, None)?;
        if document.is_empty() {
            return Err(self.unexpected(&Reply::Closed));
        }
        Ok(document)
    }

    /// Like [`Client::stats`] for a stats server started with `--stats-http`: sends
    /// `GET / HTTP/1.0` first and returns the body of the HTTP response.
    pub fn stats_http(&self) -> Result<Vec<u8>> {
        let mut socket = self.connect(None)?;
        self.write(&mut socket, b"GET / HTTP/1.0\r\n\r\n", None)?;
        let response = self.read_to_close(&mut socket, None)?;
        if response.is_empty() {
            return Err(self.unexpected(&Reply::Closed));
        }
        match HttpResponse::parse(&response) {
            Some(http) => Ok(http.body.to_vec()),
            None => Err(self.unexpected(&Reply::Raw(&response))),
        }
    }

    /// The default cache of the peer, through uWSGI 2.0's magic interface.
    pub fn cache(&self) -> Cache<'_> {
        Cache {
            client: self,
            name: None,
        }
    }

    /// The cache called `name` (as in `--cache2 name=...`).
    pub fn cache_named<'a>(&'a self, name: &'a [u8]) -> Cache<'a> {
        Cache {
            client: self,
            name: Some(name),
        }
    }

    /// Sends one datagram `modifier1 | size | modifier2 | payload` to the address: UDP
    /// (unicast, broadcast or multicast) for `host:port`, a unix datagram socket for a
    /// path. Nothing is read back. A host resolving to several addresses gets the
    /// datagram on the first.
    pub fn send_datagram(
        &self,
        modifier1: impl Into<Modifier1>,
        modifier2: u8,
        payload: &[u8],
        options: &DatagramOptions,
    ) -> Result<()> {
        let packet = raw_packet(modifier1.into(), modifier2, payload)?.to_vec();
        let io = |e| Error::io(&self.address, Phase::Write, e);
        let (domain, target) = self
            .address
            .resolve_within(limit(self.timeouts.write))
            .map_err(io)?
            .into_iter()
            .next()
            .ok_or_else(|| {
                io(io::Error::new(
                    io::ErrorKind::NotFound,
                    "no address to send to",
                ))
            })?;
        let socket = Socket::new(domain, Type::DGRAM, None).map_err(io)?;
        datagram_options(&socket, domain, options).map_err(io)?;
        socket
            .set_write_timeout(limit(self.timeouts.write))
            .map_err(io)?;
        let sent = socket.send_to(&packet, &target).map_err(io)?;
        if sent != packet.len() {
            return Err(io(io::Error::new(
                io::ErrorKind::WriteZero,
                "datagram truncated",
            )));
        }
        Ok(())
    }

    /// One exchange: connect, write the packet and body, read the reply.
    fn exchange(&self, packet: &Packet<'_>, body: &[u8]) -> Result<OwnedReply> {
        self.exchange_until(packet, body, None)
    }

    /// [`Client::exchange`] where every step also ends by `deadline`, if there is one.
    pub(crate) fn exchange_until(
        &self,
        packet: &Packet<'_>,
        body: &[u8],
        deadline: Option<Instant>,
    ) -> Result<OwnedReply> {
        let mut socket = self.connect(deadline)?;
        let mut bytes = packet.to_vec();
        if body.len() <= ONE_WRITE_BODY {
            // One write: no small second segment for Nagle to hold back.
            bytes.extend_from_slice(body);
            self.write(&mut socket, &bytes, deadline)?;
        } else {
            no_delay(&socket);
            self.write(&mut socket, &bytes, deadline)?;
            self.write(&mut socket, body, deadline)?;
        }
        self.read_reply(&mut socket, packet.header(), deadline)
    }

    /// The wait allowed for one step: the step's timeout, cut to what is left before the
    /// deadline. `Ok(None)` is "no limit"; a deadline already past is a timeout.
    fn step_limit(
        &self,
        step: Duration,
        deadline: Option<Instant>,
        phase: Phase,
    ) -> Result<Option<Duration>> {
        let Some(deadline) = deadline else {
            return Ok(limit(step));
        };
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(Error::Timeout {
                address: self.address.clone(),
                phase,
            });
        }
        Ok(Some(limit(step).map_or(left, |step| step.min(left))))
    }

    pub(crate) fn connect(&self, deadline: Option<Instant>) -> Result<Socket> {
        let connect_error = |e| Error::io(&self.address, Phase::Connect, e);
        let mut last = io::Error::new(io::ErrorKind::NotFound, "host resolves to no address");
        // Resolving a host name is part of connecting: the connect timeout bounds it.
        let resolve_limit = self.step_limit(self.timeouts.connect, deadline, Phase::Connect)?;
        let addrs = self
            .address
            .resolve_within(resolve_limit)
            .map_err(connect_error)?;
        for (domain, addr) in addrs {
            let timeout = self.step_limit(self.timeouts.connect, deadline, Phase::Connect)?;
            match self.connect_one(domain, &addr, timeout) {
                Ok(socket) => return Ok(socket),
                Err(e) => last = e,
            }
        }
        Err(connect_error(last))
    }

    fn connect_one(
        &self,
        domain: Domain,
        addr: &SockAddr,
        timeout: Option<Duration>,
    ) -> io::Result<Socket> {
        let socket = Socket::new(domain, Type::STREAM, None)?;
        let write = limit(self.timeouts.write);
        #[cfg(target_os = "linux")]
        {
            // Linux bounds a blocking connect by SO_SNDTIMEO (socket(7): EINPROGRESS
            // when it expires), which spares connect_timeout's switch to non-blocking
            // mode and back: four fcntl calls per connection, a third of a ping's
            // syscalls (measured with `uwsgi-cli bench`).
            socket.set_write_timeout(timeout)?;
            if let Err(e) = socket.connect(addr) {
                if e.raw_os_error() == Some(libc::EINPROGRESS) {
                    return Err(io::ErrorKind::TimedOut.into());
                }
                return Err(e);
            }
            if write != timeout {
                socket.set_write_timeout(write)?;
            }
        }
        #[cfg(not(target_os = "linux"))]
        {
            match timeout {
                Some(timeout) => socket.connect_timeout(addr, timeout)?,
                None => socket.connect(addr)?,
            }
            socket.set_write_timeout(write)?;
        }
        socket.set_read_timeout(limit(self.timeouts.read))?;
        Ok(socket)
    }

    /// Writes all of `bytes`. A peer that closes while we write is not an error by
    /// itself: uWSGI closes early to refuse a request, and the (empty) reply says so.
    fn write(&self, socket: &mut Socket, bytes: &[u8], deadline: Option<Instant>) -> Result<()> {
        let mut rest = bytes;
        while !rest.is_empty() {
            if deadline.is_some() {
                let timeout = self.step_limit(self.timeouts.write, deadline, Phase::Write)?;
                socket
                    .set_write_timeout(timeout)
                    .map_err(|e| Error::io(&self.address, Phase::Write, e))?;
            }
            match socket.write(rest) {
                Ok(0) => {
                    let e =
                        io::Error::new(io::ErrorKind::WriteZero, "socket accepts no more bytes");
                    return Err(Error::io(&self.address, Phase::Write, e));
                }
                Ok(n) => rest = &rest[n..],
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) if is_peer_close(&e) => return Ok(()),
                Err(e) => return Err(Error::io(&self.address, Phase::Write, e)),
            }
        }
        Ok(())
    }

    /// Reads until the codec has a complete reply, within the cap.
    fn read_reply(
        &self,
        socket: &mut Socket,
        request: Header,
        deadline: Option<Instant>,
    ) -> Result<OwnedReply> {
        let mut bytes = Vec::new();
        let mut eof = false;
        loop {
            match Reply::decode(&bytes, request, eof, &REPLY_LIMITS) {
                Ok((_, used)) => {
                    bytes.truncate(used);
                    return Ok(OwnedReply { request, bytes });
                }
                Err(DecodeError::Incomplete { needed }) if !eof => {
                    // Fail early on an announced length past the cap; otherwise read at
                    // most one byte past it, so that a reply of exactly the cap still fits
                    // (a raw reply "needs" one more byte until it sees the close).
                    let room = self.max_reply.saturating_sub(bytes.len());
                    if needed > room.saturating_add(1) {
                        return Err(self.too_large());
                    }
                    eof = self.read_chunk(socket, &mut bytes, room.saturating_add(1), deadline)?;
                    if bytes.len() > self.max_reply {
                        return Err(self.too_large());
                    }
                }
                Err(source) => {
                    return Err(Error::Protocol {
                        address: self.address.clone(),
                        source,
                    });
                }
            }
        }
    }

    /// Reads until the peer closes, within the cap: the whole stream, unframed.
    pub(crate) fn read_to_close(
        &self,
        socket: &mut Socket,
        deadline: Option<Instant>,
    ) -> Result<Vec<u8>> {
        let mut bytes = Vec::new();
        loop {
            let room = self.max_reply.saturating_sub(bytes.len());
            if self.read_chunk(socket, &mut bytes, room.saturating_add(1), deadline)? {
                return Ok(bytes);
            }
            if bytes.len() > self.max_reply {
                return Err(self.too_large());
            }
        }
    }

    /// Appends up to `max` bytes from one read; `Ok(true)` at the end of the stream.
    fn read_chunk(
        &self,
        socket: &mut Socket,
        bytes: &mut Vec<u8>,
        max: usize,
        deadline: Option<Instant>,
    ) -> Result<bool> {
        if deadline.is_some() {
            let timeout = self.step_limit(self.timeouts.read, deadline, Phase::Read)?;
            socket
                .set_read_timeout(timeout)
                .map_err(|e| Error::io(&self.address, Phase::Read, e))?;
        }
        let start = bytes.len();
        // Most replies are small: start with a small buffer (zero-filling 64 KiB for a
        // 4-byte pong costs more than the syscall) and grow with the reply.
        let chunk = start.clamp(FIRST_READ, READ_CHUNK);
        bytes.resize(start + max.min(chunk), 0);
        let result = loop {
            match socket.read(&mut bytes[start..]) {
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                other => break other,
            }
        };
        match result {
            Ok(n) => {
                bytes.truncate(start + n);
                Ok(n == 0)
            }
            // A reset before any reply byte is uWSGI refusing (it closed with our request
            // unread): the same "nothing" as a clean close.
            Err(e) if start == 0 && is_peer_close(&e) => {
                bytes.clear();
                Ok(true)
            }
            Err(e) => {
                bytes.truncate(start);
                Err(Error::io(&self.address, Phase::Read, e))
            }
        }
    }

    fn acknowledged(&self, reply: &OwnedReply, what: &'static str) -> Result<()> {
        match reply.reply() {
            Reply::Response(ack) if ack.modifier2 == 1 => Ok(()),
            Reply::Response(ack) => Err(Error::Rejected {
                address: self.address.clone(),
                what,
                status: ack.modifier2,
            }),
            other => Err(self.unexpected(&other)),
        }
    }

    fn unexpected(&self, reply: &Reply<'_>) -> Error {
        let address = self.address.clone();
        match reply {
            Reply::Closed => Error::NoReply { address },
            other => Error::UnexpectedReply {
                address,
                kind: other.kind(),
            },
        }
    }

    fn too_large(&self) -> Error {
        Error::ReplyTooLarge {
            address: self.address.clone(),
            limit: self.max_reply,
        }
    }
}

fn raw_packet(modifier1: Modifier1, modifier2: u8, payload: &[u8]) -> Result<Packet<'_>> {
    Ok(Packet::Raw(RawPacket {
        modifier1,
        modifier2,
        payload: Payload::new(payload)?,
    }))
}

/// Turns Nagle's algorithm off on a TCP socket, before a request goes out in several
/// writes (so that the last, small segment is not held back); a no-op on unix sockets.
fn no_delay(socket: &Socket) {
    // Fails with EOPNOTSUPP on unix sockets, where there is nothing to turn off.
    let _ = socket.set_tcp_nodelay(true);
}

/// Fills `buf` from `source`; an early end is an incomplete packet to forward.
fn read_all(source: &mut impl Read, buf: &mut [u8]) -> Result<()> {
    let mut filled = 0;
    while filled < buf.len() {
        match source.read(&mut buf[filled..]) {
            Ok(0) => {
                return Err(Error::InvalidRequest(DecodeError::incomplete(
                    buf.len() - filled,
                )));
            }
            Ok(n) => filled += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(Error::Input(e)),
        }
    }
    Ok(())
}

fn is_peer_close(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::BrokenPipe | io::ErrorKind::ConnectionReset
    )
}

fn datagram_options(socket: &Socket, domain: Domain, options: &DatagramOptions) -> io::Result<()> {
    if options.broadcast {
        socket.set_broadcast(true)?;
    }
    if domain == Domain::IPV4 {
        if let Some(ttl) = options.multicast_ttl {
            socket.set_multicast_ttl_v4(ttl)?;
        }
        if let Some(on) = options.multicast_loop {
            socket.set_multicast_loop_v4(on)?;
        }
        if let Some(interface) = &options.multicast_interface {
            socket.set_multicast_if_v4(interface)?;
        }
    } else if domain == Domain::IPV6 {
        if let Some(hops) = options.multicast_ttl {
            socket.set_multicast_hops_v6(hops)?;
        }
        if let Some(on) = options.multicast_loop {
            socket.set_multicast_loop_v6(on)?;
        }
    }
    Ok(())
}

/// One cache of a peer, through uWSGI 2.0's magic interface (modifier1 111, modifier2
/// 17). uWSGI answers every failure — miss, existing key on `set`, unknown cache, value
/// too large — by closing without a reply, so each failure is a plain `None` / `false`.
#[derive(Debug, Clone, Copy)]
pub struct Cache<'a> {
    client: &'a Client,
    name: Option<&'a [u8]>,
}

impl Cache<'_> {
    /// The value of `key`, or `None`.
    pub fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>> {
        self.magic(MagicCommand::Get, key, None, 0)
    }

    /// Whether `key` exists.
    pub fn exists(&self, key: &[u8]) -> Result<bool> {
        Ok(self.magic(MagicCommand::Exists, key, None, 0)?.is_some())
    }

    /// Stores `value` unless `key` exists. `expires` is in seconds from now, 0 for never.
    pub fn set(&self, key: &[u8], value: &[u8], expires: u64) -> Result<bool> {
        Ok(self
            .magic(MagicCommand::Set, key, Some(value), expires)?
            .is_some())
    }

    /// Stores `value`, replacing any existing one. `expires` as for [`Cache::set`].
    pub fn update(&self, key: &[u8], value: &[u8], expires: u64) -> Result<bool> {
        Ok(self
            .magic(MagicCommand::Update, key, Some(value), expires)?
            .is_some())
    }

    /// Removes `key`; `false` when it did not exist.
    pub fn del(&self, key: &[u8]) -> Result<bool> {
        Ok(self.magic(MagicCommand::Del, key, None, 0)?.is_some())
    }

    /// Removes every item.
    pub fn clear(&self) -> Result<bool> {
        Ok(self.magic(MagicCommand::Clear, b"", None, 0)?.is_some())
    }

    /// One magic exchange; `Some(value)` when the server said `status: ok`.
    fn magic(
        &self,
        command: MagicCommand,
        key: &[u8],
        value: Option<&[u8]>,
        expires: u64,
    ) -> Result<Option<Vec<u8>>> {
        let client = self.client;
        let size = value.map(|v| u64::try_from(v.len()).unwrap_or(u64::MAX));
        let expires = (expires > 0).then_some(expires);
        let vars = CacheMagic::build(command, key, self.name, size, expires)?;
        let magic = CacheMagic::from_vars(vars.as_vars()).map_err(|e| Error::Protocol {
            address: client.address.clone(),
            source: e.into(),
        })?;
        let packet = Packet::Cache(CacheRequest::Magic(magic));
        let reply = client.exchange(&packet, value.unwrap_or_default())?;
        match reply.reply() {
            Reply::Closed => Ok(None),
            Reply::CacheMagic { reply, value } => Ok(reply.is_ok().then(|| value.to_vec())),
            other => Err(client.unexpected(&other)),
        }
    }
}
