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

use std::io::{self, Read, Write};
use std::net::Ipv4Addr;
use std::time::Duration;

use socket2::{Domain, SockAddr, Socket, Type};

pub use address::{Address, AddressError};
pub use error::{Error, Phase, Result};
pub use http::HttpResponse;

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

/// Bytes asked from the socket per read.
const READ_CHUNK: usize = 64 * 1024;

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
            .resolve()
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
        let mut socket = self.connect()?;
        self.write(&mut socket, &packet.to_vec())?;
        self.write(&mut socket, body)?;
        self.read_reply(&mut socket, packet.header())
    }

    fn connect(&self) -> Result<Socket> {
        let connect_error = |e| Error::io(&self.address, Phase::Connect, e);
        let mut last = io::Error::new(io::ErrorKind::NotFound, "host resolves to no address");
        for (domain, addr) in self.address.resolve().map_err(connect_error)? {
            match self.connect_one(domain, &addr) {
                Ok(socket) => return Ok(socket),
                Err(e) => last = e,
            }
        }
        Err(connect_error(last))
    }

    fn connect_one(&self, domain: Domain, addr: &SockAddr) -> io::Result<Socket> {
        let socket = Socket::new(domain, Type::STREAM, None)?;
        match limit(self.timeouts.connect) {
            Some(timeout) => socket.connect_timeout(addr, timeout)?,
            None => socket.connect(addr)?,
        }
        socket.set_read_timeout(limit(self.timeouts.read))?;
        socket.set_write_timeout(limit(self.timeouts.write))?;
        if domain != Domain::UNIX {
            // Request and body go out in two writes; don't let Nagle hold the second.
            socket.set_tcp_nodelay(true)?;
        }
        Ok(socket)
    }

    /// Writes all of `bytes`. A peer that closes while we write is not an error by
    /// itself: uWSGI closes early to refuse a request, and the (empty) reply says so.
    fn write(&self, socket: &mut Socket, bytes: &[u8]) -> Result<()> {
        match socket.write_all(bytes) {
            Ok(()) => Ok(()),
            Err(e) if is_peer_close(&e) => Ok(()),
            Err(e) => Err(Error::io(&self.address, Phase::Write, e)),
        }
    }

    /// Reads until the codec has a complete reply, within the cap.
    fn read_reply(&self, socket: &mut Socket, request: Header) -> Result<OwnedReply> {
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
                    eof = self.read_chunk(socket, &mut bytes, room.saturating_add(1))?;
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

    /// Appends up to `max` bytes from one read; `Ok(true)` at the end of the stream.
    fn read_chunk(&self, socket: &mut Socket, bytes: &mut Vec<u8>, max: usize) -> Result<bool> {
        let start = bytes.len();
        bytes.resize(start + max.min(READ_CHUNK), 0);
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
