//! Replies: what a server sends back, decoded in the light of the request.
//!
//! Whether a reply is framed at all depends on the request (spec §1.6): application
//! requests, echo and raw RPC are answered with bytes until the connection closes, cache
//! sets and deletes get nothing. [`Expect::for_request`] tells which, and
//! [`Reply::decode`] takes `at_eof` so that replies that end with the connection can be
//! decoded without I/O.

use bytes::BufMut;

use super::cache::{CacheMagicReply, op as cache_op};
use super::payload::{Message, Payload, put_framed};
use super::rpc::mode as rpc_mode;
use crate::error::{DecodeError, InvalidPacket};
use crate::header::{Header, Modifier1};
use crate::limits::Limits;
use crate::vars::Vars;

/// The shape of the reply a request gets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Expect {
    /// No reply: the server closes (or, for UDP, nothing comes back).
    Nothing,
    /// One framed packet (plus a body its vars announce, for big RPC results and cache
    /// magic values).
    Framed,
    /// Unframed bytes until the connection closes (HTTP responses, echo, raw RPC).
    RawToEof,
    /// A header, then bytes until the connection closes (cache get+stream and dump).
    FramedThenRawToEof,
}

impl Expect {
    /// What a uwsgi server answers to a request with this header.
    pub fn for_request(request: Header) -> Expect {
        let m2 = request.modifier2;
        match request.modifier1 {
            m if m.is_app_request() => Expect::RawToEof,
            Modifier1::Admin
            | Modifier1::Spooler
            | Modifier1::Signal
            | Modifier1::Ping
            | Modifier1::Marshal => Expect::Framed,
            Modifier1::Echo => Expect::RawToEof,
            Modifier1::Cache => match m2 {
                cache_op::GET | cache_op::MAGIC => Expect::Framed,
                cache_op::DICT_KEY | cache_op::DICT_GET => Expect::RawToEof,
                cache_op::GET_STREAM | cache_op::DUMP => Expect::FramedThenRawToEof,
                _ => Expect::Nothing,
            },
            Modifier1::Rpc if m2 == rpc_mode::FRAMED => Expect::Framed,
            Modifier1::Rpc => Expect::RawToEof,
            _ => Expect::Nothing,
        }
    }
}

/// A decoded reply, borrowing from the input.
#[non_exhaustive]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reply<'a> {
    /// The connection closed before any byte arrived (uWSGI's answer to most failures).
    Closed,
    /// Ping reply (modifier1 100, modifier2 1); the payload is the warning message.
    Pong(Message<'a>),
    /// Generic response (modifier1 255); modifier2 is the status (1 ok, 0 failed).
    Response(Message<'a>),
    /// Admin get reply: option index and value.
    AdminValue {
        /// Option index.
        option: u8,
        /// Its value.
        value: u32,
    },
    /// RPC result, framed (modifier2 0).
    RpcResult(Payload<'a>),
    /// RPC result over 65535 bytes (modifier2 5): vars with `CONTENT_LENGTH`, then data.
    RpcBigResult {
        /// The announcing vars.
        vars: Vars<'a>,
        /// The result.
        data: &'a [u8],
    },
    /// Framed cache value (cache get, modifier2 0).
    CacheValue(Message<'a>),
    /// Cache get+stream reply: `6f 0000 01` and the value until close, or `6f 0000 00`.
    CacheStream {
        /// Whether the key was found.
        found: bool,
        /// The value (empty when not found).
        value: &'a [u8],
    },
    /// Cache magic reply: status vars and the value they announce.
    CacheMagic {
        /// The reply vars.
        reply: CacheMagicReply<'a>,
        /// The value (`size` bytes), empty for commands that return none.
        value: &'a [u8],
    },
    /// Cache dump: vars `items`, `blocksize`, then the cache image until close.
    CacheDump {
        /// The dump vars.
        vars: Vars<'a>,
        /// The image.
        image: &'a [u8],
    },
    /// A marshalled reply to a marshal message (modifier1 33).
    Marshal(Message<'a>),
    /// A raw HTTP response (the modifier1 72 convention).
    Http(&'a [u8]),
    /// Unframed bytes (echo, raw RPC result, dictionary cache lookups).
    Raw(&'a [u8]),
}

fn unexpected(header: Header, expected: &'static str) -> DecodeError {
    InvalidPacket::UnexpectedReply {
        modifier1: header.modifier1,
        modifier2: header.modifier2,
        expected,
    }
    .into()
}

fn expected_name(request: Modifier1) -> &'static str {
    match request {
        Modifier1::Ping => "ping",
        Modifier1::Spooler => "spooler",
        Modifier1::Signal => "signal",
        Modifier1::Admin => "admin",
        Modifier1::Marshal => "marshal",
        Modifier1::Rpc => "rpc",
        Modifier1::Cache => "cache",
        _ => "framed",
    }
}

/// Splits `len` bytes off `input` at `at`, or reports how many are missing.
fn take_body(input: &[u8], at: usize, len: u64) -> Result<&[u8], DecodeError> {
    let available = input.len() - at;
    match usize::try_from(len) {
        Ok(len) if len <= available => Ok(&input[at..at + len]),
        Ok(len) => Err(DecodeError::incomplete(len - available)),
        Err(_) => Err(DecodeError::incomplete(usize::MAX)),
    }
}

impl<'a> Reply<'a> {
    /// Decodes the reply to `request` from the start of `input`. `at_eof` says the
    /// connection has closed, which ends replies that run until close. Returns the reply
    /// and the bytes it used.
    pub fn decode(
        input: &'a [u8],
        request: Header,
        at_eof: bool,
        limits: &Limits,
    ) -> Result<(Reply<'a>, usize), DecodeError> {
        match Self::decode_inner(input, request, at_eof, limits) {
            Err(DecodeError::Incomplete { needed }) if at_eof => {
                Err(InvalidPacket::Truncated { needed }.into())
            }
            other => other,
        }
    }

    fn decode_inner(
        input: &'a [u8],
        request: Header,
        at_eof: bool,
        limits: &Limits,
    ) -> Result<(Reply<'a>, usize), DecodeError> {
        if input.is_empty() && at_eof {
            return Ok((Reply::Closed, 0));
        }
        let expect = Expect::for_request(request);
        if matches!(expect, Expect::RawToEof | Expect::Nothing) {
            if !at_eof {
                return Err(DecodeError::incomplete(1));
            }
            let reply = if request.modifier1.is_app_request() {
                Reply::Http(input)
            } else {
                Reply::Raw(input)
            };
            return Ok((reply, input.len()));
        }

        let header = Header::parse(input)?;
        let allowed: &[Modifier1] = match request.modifier1 {
            Modifier1::Ping => &[Modifier1::Ping],
            Modifier1::Spooler | Modifier1::Signal => &[Modifier1::Response],
            Modifier1::Admin => &[Modifier1::Admin, Modifier1::Response],
            Modifier1::Marshal => &[Modifier1::Marshal, Modifier1::Response],
            other => &[other],
        };
        if !allowed.contains(&header.modifier1) {
            return Err(unexpected(header, expected_name(request.modifier1)));
        }
        if header.datasize > limits.max_datasize {
            return Err(InvalidPacket::DatasizeTooLarge {
                datasize: header.datasize,
                max: limits.max_datasize,
            }
            .into());
        }
        let block_end = header.packet_len();
        let Some(block) = input.get(Header::LEN..block_end) else {
            return Err(DecodeError::incomplete(block_end - input.len()));
        };
        let base = Header::LEN;
        let m2 = header.modifier2;
        let message = Message::new(m2, Payload::from_block(block));
        let to_eof = |at: usize| -> Result<&'a [u8], DecodeError> {
            if at_eof {
                Ok(&input[at..])
            } else {
                Err(DecodeError::incomplete(1))
            }
        };

        let reply = match (request.modifier1, header.modifier1) {
            (Modifier1::Ping, Modifier1::Ping) => Reply::Pong(message),
            (
                Modifier1::Spooler | Modifier1::Signal | Modifier1::Admin | Modifier1::Marshal,
                Modifier1::Response,
            ) => Reply::Response(message),
            (Modifier1::Admin, Modifier1::Admin) => {
                let value =
                    <[u8; 4]>::try_from(block).map_err(|_| InvalidPacket::UnexpectedDatasize {
                        what: "admin reply",
                        expected: "4",
                        actual: block.len(),
                    })?;
                Reply::AdminValue {
                    option: m2,
                    value: u32::from_le_bytes(value),
                }
            }
            (Modifier1::Marshal, Modifier1::Marshal) => Reply::Marshal(message),
            (Modifier1::Rpc, Modifier1::Rpc) if m2 == rpc_mode::FRAMED => {
                Reply::RpcResult(Payload::from_block(block))
            }
            (Modifier1::Rpc, Modifier1::Rpc) if m2 == rpc_mode::BIG_RESULT => {
                let vars = Vars::parse_at(block, base, limits.max_vars)?;
                let len = vars
                    .get("CONTENT_LENGTH")
                    .and_then(super::number::strict_decimal)
                    .ok_or(InvalidPacket::BadNumber {
                        what: "rpc big result",
                        key: "CONTENT_LENGTH",
                    })?;
                let data = take_body(input, block_end, len)?;
                Reply::RpcBigResult { vars, data }
            }
            (Modifier1::Cache, Modifier1::Cache) => match (request.modifier2, m2) {
                (cache_op::GET, _) => Reply::CacheValue(message),
                (cache_op::MAGIC, cache_op::MAGIC) => {
                    let reply =
                        CacheMagicReply::from_vars(Vars::parse_at(block, base, limits.max_vars)?)?;
                    let value = take_body(input, block_end, reply.size())?;
                    Reply::CacheMagic { reply, value }
                }
                (cache_op::GET_STREAM, 0 | 1) if block.is_empty() => Reply::CacheStream {
                    found: m2 == 1,
                    value: to_eof(block_end)?,
                },
                (cache_op::DUMP, cache_op::DUMP_REPLY) => Reply::CacheDump {
                    vars: Vars::parse_at(block, base, limits.max_vars)?,
                    image: to_eof(block_end)?,
                },
                _ => return Err(unexpected(header, "cache")),
            },
            _ => return Err(unexpected(header, expected_name(request.modifier1))),
        };
        let consumed = match reply {
            Reply::RpcBigResult { data, .. } => block_end + data.len(),
            Reply::CacheMagic { value, .. } => block_end + value.len(),
            Reply::CacheStream { .. } | Reply::CacheDump { .. } => input.len(),
            _ => block_end,
        };
        Ok((reply, consumed))
    }

    /// Writes the reply as a server sends it.
    pub fn encode(&self, dst: &mut impl BufMut) {
        match self {
            Reply::Closed => {}
            Reply::Pong(m) => put_framed(dst, Modifier1::Ping, m.modifier2, m.payload.as_bytes()),
            Reply::Response(m) => {
                put_framed(dst, Modifier1::Response, m.modifier2, m.payload.as_bytes())
            }
            Reply::AdminValue { option, value } => {
                put_framed(dst, Modifier1::Admin, *option, &value.to_le_bytes());
            }
            Reply::RpcResult(data) => {
                put_framed(dst, Modifier1::Rpc, rpc_mode::FRAMED, data.as_bytes())
            }
            Reply::RpcBigResult { vars, data } => {
                put_framed(dst, Modifier1::Rpc, rpc_mode::BIG_RESULT, vars.as_bytes());
                dst.put_slice(data);
            }
            Reply::CacheValue(m) => {
                put_framed(dst, Modifier1::Cache, m.modifier2, m.payload.as_bytes())
            }
            Reply::CacheStream { found, value } => {
                put_framed(dst, Modifier1::Cache, u8::from(*found), &[]);
                dst.put_slice(value);
            }
            Reply::CacheMagic { reply, value } => {
                put_framed(
                    dst,
                    Modifier1::Cache,
                    cache_op::MAGIC,
                    reply.vars.as_bytes(),
                );
                dst.put_slice(value);
            }
            Reply::CacheDump { vars, image } => {
                put_framed(dst, Modifier1::Cache, cache_op::DUMP_REPLY, vars.as_bytes());
                dst.put_slice(image);
            }
            Reply::Marshal(m) => {
                put_framed(dst, Modifier1::Marshal, m.modifier2, m.payload.as_bytes())
            }
            Reply::Http(bytes) | Reply::Raw(bytes) => dst.put_slice(bytes),
        }
    }

    /// The reply as a new vector.
    pub fn to_vec(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.encoded_len());
        self.encode(&mut out);
        out
    }

    /// The number of bytes [`Reply::encode`] writes.
    pub fn encoded_len(&self) -> usize {
        const HEADER: usize = 4;
        match self {
            Reply::Closed => 0,
            Reply::Pong(m) | Reply::Response(m) | Reply::CacheValue(m) | Reply::Marshal(m) => {
                HEADER + m.payload.as_bytes().len()
            }
            Reply::AdminValue { .. } => HEADER + 4,
            Reply::RpcResult(data) => HEADER + data.as_bytes().len(),
            Reply::RpcBigResult { vars, data } => HEADER + vars.as_bytes().len() + data.len(),
            Reply::CacheStream { value, .. } => HEADER + value.len(),
            Reply::CacheMagic { reply, value } => {
                HEADER + reply.vars.as_bytes().len() + value.len()
            }
            Reply::CacheDump { vars, image } => HEADER + vars.as_bytes().len() + image.len(),
            Reply::Http(bytes) | Reply::Raw(bytes) => bytes.len(),
        }
    }

    /// The OK acknowledgement `ff 0000 01` (signal queued, job spooled, option set).
    pub fn ok() -> Reply<'static> {
        Reply::Response(Message::new(1, Payload::EMPTY))
    }

    /// The failure acknowledgement `ff 0000 00`.
    pub fn failed() -> Reply<'static> {
        Reply::Response(Message::new(0, Payload::EMPTY))
    }

    /// A short lowercase name of the reply kind.
    pub fn kind(&self) -> &'static str {
        match self {
            Reply::Closed => "closed",
            Reply::Pong(_) => "pong",
            Reply::Response(_) => "response",
            Reply::AdminValue { .. } => "admin-value",
            Reply::RpcResult(_) => "rpc-result",
            Reply::RpcBigResult { .. } => "rpc-big-result",
            Reply::CacheValue(_) => "cache-value",
            Reply::CacheStream { .. } => "cache-stream",
            Reply::CacheMagic { .. } => "cache-magic",
            Reply::CacheDump { .. } => "cache-dump",
            Reply::Marshal(_) => "marshal",
            Reply::Http(_) => "http",
            Reply::Raw(_) => "raw",
        }
    }
}
