//! Typed packets: one variant per modifier1 with a defined layout, decode and encode.
//!
//! [`Packet`] is what a peer sends *to* a server (requests, one-way UDP datagrams, and
//! the generic 255 response when it appears in a stream); [`Reply`] is what a server
//! answers, decoded in the light of the request it answers. Anything without a defined
//! layout decodes as [`Packet::Raw`], never as an error.

mod cache;
mod number;
mod payload;
mod reply;
mod request;
mod rpc;

use bytes::BufMut;

pub use cache::{
    CacheMagic, CacheMagicReply, CacheRequest, CacheSet, MagicCommand, SyncDelete, SyncSet,
    op as cache_op,
};
pub use number::{content_length, strict_decimal};
pub use payload::{Message, Payload, VarsMessage};
pub use reply::{Expect, Reply};
pub use request::Request;
pub use rpc::{RpcCall, RpcRequest, mode as rpc_mode};

use crate::error::{DecodeError, InvalidPacket};
use crate::header::{Header, Modifier1};
use crate::limits::Limits;
use crate::vars::Vars;
use payload::put_framed;

/// A decoded packet, borrowing from the input.
#[non_exhaustive]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Packet<'a> {
    /// An application request (modifier1 0, 5–9, 11, 14, 15, 18, 19, 23–25, 27, 28, 30,
    /// 35); a body of `content_length()` bytes follows on the stream.
    Request(Request<'a>),
    /// modifier1 10: read (empty block) or set (4-byte block) a numbered option.
    Admin(Admin),
    /// modifier1 17: enqueue a spooler job described by vars.
    Spool(VarsMessage<'a>),
    /// modifier1 33: a marshalled Python object; modifier2 is passed to the handler.
    Marshal(Message<'a>),
    /// modifier1 73: cluster announce carrying the sender's hostname (UDP).
    ClusterAnnounce(Message<'a>),
    /// modifier1 74: custom multicast message (UDP).
    Multicast(Message<'a>),
    /// modifier1 95: cluster membership announce, vars `hostname`, `address`, `workers`,
    /// `requests` (UDP).
    ClusterNode(VarsMessage<'a>),
    /// modifier1 96: a remote log line (UDP).
    ClusterLog(Message<'a>),
    /// modifier1 98: graceful reload request (UDP).
    ClusterReload(Message<'a>),
    /// modifier1 99: configuration request (modifier2 0, empty) or response (modifier2 1,
    /// vars of options).
    ClusterConfig(VarsMessage<'a>),
    /// modifier1 100: ping. The block is ignored by servers.
    Ping(Message<'a>),
    /// modifier1 101: echo; the reply is the block, raw.
    Echo(Message<'a>),
    /// modifier1 109: Legion, encrypted, opaque here.
    Legion(Legion<'a>),
    /// modifier1 110: raise uWSGI signal `number` (modifier2); the block is ignored.
    Signal(Signal<'a>),
    /// modifier1 111: cache.
    Cache(CacheRequest<'a>),
    /// modifier1 173: RPC.
    Rpc(RpcRequest<'a>),
    /// modifier1 224: subscribe (modifier2 0) or unsubscribe to a corerouter (UDP).
    Subscription(VarsMessage<'a>),
    /// modifier1 255: the generic response; modifier2 is the status.
    Response(Message<'a>),
    /// Any other modifier1: header fields and the block, untouched.
    Raw(RawPacket<'a>),
}

/// A packet whose modifier1 has no layout in this crate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RawPacket<'a> {
    /// First header byte.
    pub modifier1: Modifier1,
    /// Last header byte.
    pub modifier2: u8,
    /// The block.
    pub payload: Payload<'a>,
}

/// Admin (modifier1 10): modifier2 is the option index.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admin {
    /// Empty block: read option `option`.
    Get {
        /// Option index.
        option: u8,
    },
    /// 4-byte block: set option `option` to `value`.
    Set {
        /// Option index.
        option: u8,
        /// New value (little-endian on the wire).
        value: u32,
    },
}

/// A signal request (modifier1 110).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Signal<'a> {
    /// The signal number, 0–255 (modifier2).
    pub number: u8,
    /// The block, ignored by servers (kept so decoding loses nothing).
    pub payload: Payload<'a>,
}

impl Signal<'_> {
    /// Signal `number` with an empty block.
    pub fn new(number: u8) -> Self {
        Signal {
            number,
            payload: Payload::EMPTY,
        }
    }
}

/// A Legion packet (modifier1 109). The header's datasize is the *plaintext* length;
/// the ciphertext is the rest of the datagram.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Legion<'a> {
    /// Last header byte.
    pub modifier2: u8,
    /// The plaintext length announced by the header.
    pub plaintext_len: u16,
    /// The encrypted vars.
    pub ciphertext: Payload<'a>,
}

/// The result of [`Packet::decode`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Decoded<'a> {
    /// The packet.
    pub packet: Packet<'a>,
    /// Bytes of input used: header and block. A body is not included.
    pub consumed: usize,
    /// Bytes of body that follow on the stream (see [`Packet::body_len`]).
    pub body_len: u64,
}

impl<'a> Packet<'a> {
    /// Decodes one packet from the start of `input` (a stream): the header, then the
    /// block of `datasize` bytes. Bytes after the block are not looked at: they are the
    /// body ([`Decoded::body_len`]) or the next packet.
    pub fn decode(input: &'a [u8], limits: &Limits) -> Result<Decoded<'a>, DecodeError> {
        let header = Header::parse(input)?;
        let end = Packet::checked_len(header, limits)?;
        let Some(block) = input.get(Header::LEN..end) else {
            return Err(DecodeError::incomplete(end - input.len()));
        };
        let (packet, body_len) = Packet::from_block_framed(header, block, limits)?;
        if body_len > limits.max_body {
            return Err(InvalidPacket::BodyTooLarge {
                len: body_len,
                max: limits.max_body,
            }
            .into());
        }
        Ok(Decoded {
            packet,
            consumed: end,
            body_len,
        })
    }

    /// The length of the packet starting `input` (header and block, not a body), known
    /// as soon as its 4-byte header is there: what a reader buffers before calling
    /// [`Packet::decode`] once. A datasize over the limit is invalid at this point.
    #[inline]
    pub fn frame_len(input: &[u8], limits: &Limits) -> Result<usize, DecodeError> {
        Packet::checked_len(Header::parse(input)?, limits)
    }

    /// The packet length `header` announces, refused past the datasize limit.
    #[inline]
    fn checked_len(header: Header, limits: &Limits) -> Result<usize, DecodeError> {
        if header.datasize > limits.max_datasize {
            return Err(InvalidPacket::DatasizeTooLarge {
                datasize: header.datasize,
                max: limits.max_datasize,
            }
            .into());
        }
        Ok(header.packet_len())
    }

    /// Decodes a whole UDP datagram. The header's datasize must match the bytes that
    /// follow (except for Legion, where it is the plaintext length).
    pub fn decode_datagram(datagram: &'a [u8], limits: &Limits) -> Result<Packet<'a>, DecodeError> {
        let header = Header::parse(datagram).map_err(|_| InvalidPacket::TrailingBytes {
            offset: 0,
            len: datagram.len(),
        })?;
        let block = datagram.get(Header::LEN..).unwrap_or_default();
        if header.modifier1 == Modifier1::Legion {
            return Ok(Packet::Legion(Legion {
                modifier2: header.modifier2,
                plaintext_len: header.datasize,
                ciphertext: Payload::new(block)
                    .map_err(|_| InvalidPacket::BlockTooLarge { len: block.len() })?,
            }));
        }
        if usize::from(header.datasize) != block.len() {
            return Err(InvalidPacket::DatagramSize {
                datasize: header.datasize,
                actual: block.len(),
            }
            .into());
        }
        if header.datasize > limits.max_datasize {
            return Err(InvalidPacket::DatasizeTooLarge {
                datasize: header.datasize,
                max: limits.max_datasize,
            }
            .into());
        }
        Ok(Packet::from_block(header, block, limits)?)
    }

    /// Types a complete block and says how many body bytes follow it on a stream.
    /// Requests find `CONTENT_LENGTH` in the validating walk, so a request block is
    /// walked once.
    fn from_block_framed(
        header: Header,
        block: &'a [u8],
        limits: &Limits,
    ) -> Result<(Packet<'a>, u64), InvalidPacket> {
        if header.modifier1.is_app_request() {
            let (vars, content_length) =
                Vars::parse_finding(block, Header::LEN, limits.max_vars, b"CONTENT_LENGTH")?;
            let request = Request {
                modifier1: header.modifier1,
                modifier2: header.modifier2,
                vars,
            };
            return Ok((
                Packet::Request(request),
                content_length.map_or(0, number::content_length),
            ));
        }
        let packet = Packet::from_block(header, block, limits)?;
        let body_len = packet.body_len();
        Ok((packet, body_len))
    }

    /// Types a complete block according to its header.
    pub fn from_block(
        header: Header,
        block: &'a [u8],
        limits: &Limits,
    ) -> Result<Packet<'a>, InvalidPacket> {
        let base = Header::LEN;
        let m2 = header.modifier2;
        let message = || Message::new(m2, Payload::from_block(block));
        let vars = || -> Result<VarsMessage<'a>, InvalidPacket> {
            Ok(VarsMessage::new(
                m2,
                Vars::parse_at(block, base, limits.max_vars)?,
            ))
        };
        Ok(match header.modifier1 {
            m if m.is_app_request() => Packet::Request(Request {
                modifier1: m,
                modifier2: m2,
                vars: Vars::parse_at(block, base, limits.max_vars)?,
            }),
            Modifier1::Admin => Packet::Admin(match block.len() {
                0 => Admin::Get { option: m2 },
                4 => {
                    let value = crate::wire::bytes_at(block, 0, 4)
                        .and_then(|b| <[u8; 4]>::try_from(b).ok())
                        .map_or(0, u32::from_le_bytes);
                    Admin::Set { option: m2, value }
                }
                actual => {
                    return Err(InvalidPacket::UnexpectedDatasize {
                        what: "admin",
                        expected: "0 (get) or 4 (set)",
                        actual,
                    });
                }
            }),
            Modifier1::Spooler => Packet::Spool(vars()?),
            Modifier1::Marshal => Packet::Marshal(message()),
            Modifier1::ClusterAnnounce => Packet::ClusterAnnounce(message()),
            Modifier1::Multicast => Packet::Multicast(message()),
            Modifier1::ClusterNode => Packet::ClusterNode(vars()?),
            Modifier1::ClusterLog => Packet::ClusterLog(message()),
            Modifier1::GracefulReload => Packet::ClusterReload(message()),
            Modifier1::ClusterConfig => Packet::ClusterConfig(vars()?),
            Modifier1::Ping => Packet::Ping(message()),
            Modifier1::Echo => Packet::Echo(message()),
            Modifier1::Legion => Packet::Legion(Legion {
                modifier2: m2,
                plaintext_len: header.datasize,
                ciphertext: Payload::from_block(block),
            }),
            Modifier1::Signal => Packet::Signal(Signal {
                number: m2,
                payload: Payload::from_block(block),
            }),
            Modifier1::Cache => Packet::Cache(CacheRequest::parse(m2, block, limits)?),
            Modifier1::Rpc => Packet::Rpc(RpcRequest::parse(m2, block, limits)?),
            Modifier1::Subscription => Packet::Subscription(vars()?),
            Modifier1::Response => Packet::Response(message()),
            other => Packet::Raw(RawPacket {
                modifier1: other,
                modifier2: m2,
                payload: Payload::from_block(block),
            }),
        })
    }

    /// The header this packet encodes with.
    pub fn header(&self) -> Header {
        let (modifier1, modifier2, _) = self.parts();
        let datasize = match self {
            Packet::Legion(legion) => legion.plaintext_len,
            _ => payload::block_size(self.encoded_len() - Header::LEN),
        };
        Header::new(modifier1, datasize, modifier2)
    }

    fn parts(&self) -> (Modifier1, u8, &'a [u8]) {
        let m = |m1: Modifier1, msg: &Message<'a>| (m1, msg.modifier2, msg.payload.as_bytes());
        let v = |m1: Modifier1, msg: &VarsMessage<'a>| (m1, msg.modifier2, msg.vars.as_bytes());
        match self {
            Packet::Request(r) => (r.modifier1, r.modifier2, r.vars.as_bytes()),
            Packet::Admin(Admin::Get { option }) => (Modifier1::Admin, *option, &[]),
            Packet::Admin(Admin::Set { option, .. }) => (Modifier1::Admin, *option, &[]),
            Packet::Spool(x) => v(Modifier1::Spooler, x),
            Packet::Marshal(x) => m(Modifier1::Marshal, x),
            Packet::ClusterAnnounce(x) => m(Modifier1::ClusterAnnounce, x),
            Packet::Multicast(x) => m(Modifier1::Multicast, x),
            Packet::ClusterNode(x) => v(Modifier1::ClusterNode, x),
            Packet::ClusterLog(x) => m(Modifier1::ClusterLog, x),
            Packet::ClusterReload(x) => m(Modifier1::GracefulReload, x),
            Packet::ClusterConfig(x) => v(Modifier1::ClusterConfig, x),
            Packet::Ping(x) => m(Modifier1::Ping, x),
            Packet::Echo(x) => m(Modifier1::Echo, x),
            Packet::Legion(x) => (Modifier1::Legion, x.modifier2, x.ciphertext.as_bytes()),
            Packet::Signal(s) => (Modifier1::Signal, s.number, s.payload.as_bytes()),
            Packet::Cache(c) => (Modifier1::Cache, c.modifier2(), c.block()),
            Packet::Rpc(r) => (Modifier1::Rpc, r.modifier2(), r.block()),
            Packet::Subscription(x) => v(Modifier1::Subscription, x),
            Packet::Response(x) => m(Modifier1::Response, x),
            Packet::Raw(r) => (r.modifier1, r.modifier2, r.payload.as_bytes()),
        }
    }

    /// Bytes that follow the block on a stream: `CONTENT_LENGTH` for application
    /// requests and XML-RPC, `size` for a cache magic set/update, otherwise 0.
    pub fn body_len(&self) -> u64 {
        match self {
            Packet::Request(r) => r.content_length(),
            Packet::Cache(c) => c.body_len(),
            Packet::Rpc(r) => r.body_len(),
            _ => 0,
        }
    }

    /// Size of header and block once encoded.
    pub fn encoded_len(&self) -> usize {
        match self {
            Packet::Admin(Admin::Set { .. }) => Header::LEN + 4,
            _ => Header::LEN + self.parts().2.len(),
        }
    }

    /// Writes header and block. A body ([`Packet::body_len`]) is the caller's to write.
    pub fn encode(&self, dst: &mut impl BufMut) {
        match self {
            Packet::Admin(Admin::Set { option, value }) => {
                put_framed(dst, Modifier1::Admin, *option, &value.to_le_bytes());
            }
            Packet::Legion(legion) => {
                self.header().encode(dst);
                dst.put_slice(legion.ciphertext.as_bytes());
            }
            _ => {
                let (modifier1, modifier2, block) = self.parts();
                put_framed(dst, modifier1, modifier2, block);
            }
        }
    }

    /// Header and block as a new vector.
    pub fn to_vec(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.encoded_len());
        self.encode(&mut out);
        out
    }

    /// A short lowercase name of the packet kind (`request`, `rpc`, `cache`, …).
    pub fn kind(&self) -> &'static str {
        match self {
            Packet::Request(_) => "request",
            Packet::Admin(_) => "admin",
            Packet::Spool(_) => "spool",
            Packet::Marshal(_) => "marshal",
            Packet::ClusterAnnounce(_) => "cluster-announce",
            Packet::Multicast(_) => "multicast",
            Packet::ClusterNode(_) => "cluster-node",
            Packet::ClusterLog(_) => "cluster-log",
            Packet::ClusterReload(_) => "cluster-reload",
            Packet::ClusterConfig(_) => "cluster-config",
            Packet::Ping(_) => "ping",
            Packet::Echo(_) => "echo",
            Packet::Legion(_) => "legion",
            Packet::Signal(_) => "signal",
            Packet::Cache(_) => "cache",
            Packet::Rpc(_) => "rpc",
            Packet::Subscription(_) => "subscription",
            Packet::Response(_) => "response",
            Packet::Raw(_) => "raw",
        }
    }

    /// The vars of packets whose block is vars.
    pub fn vars(&self) -> Option<Vars<'a>> {
        match self {
            Packet::Request(r) => Some(r.vars),
            Packet::Spool(x)
            | Packet::ClusterNode(x)
            | Packet::ClusterConfig(x)
            | Packet::Subscription(x) => Some(x.vars),
            Packet::Cache(CacheRequest::DictGet { vars, .. }) => Some(*vars),
            Packet::Cache(CacheRequest::Magic(magic)) => Some(magic.vars),
            Packet::Rpc(RpcRequest::Http { vars } | RpcRequest::XmlRpc { vars }) => Some(*vars),
            _ => None,
        }
    }

    /// The items of packets whose block is an array.
    pub fn items(&self) -> Option<crate::array::Array<'a>> {
        match self {
            Packet::Rpc(RpcRequest::Call(call)) => Some(call.items()),
            Packet::Cache(CacheRequest::Set(set)) => Some(set.items()),
            _ => None,
        }
    }
}
