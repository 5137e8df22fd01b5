//! Cache packets (modifier1 111): one layout per modifier2 sub-command.

use bytes::BufMut;

use super::number::{decimal, strict_decimal};
use super::payload::{Payload, put_framed};
use crate::array::{Array, ArrayBuilder};
use crate::error::{EncodeError, Field, InvalidPacket, check_len};
use crate::header::{MAX_DATASIZE, Modifier1};
use crate::limits::Limits;
use crate::vars::{Vars, VarsBuilder};
use crate::wire::{bytes_at, put_prefixed, u16_at};

/// Cache sub-commands, the modifier2 values of modifier1 111.
pub mod op {
    /// Get: the block is the key; the reply is the value, framed.
    pub const GET: u8 = 0;
    /// Set: the block is an array `[key, value]`; no reply.
    pub const SET: u8 = 1;
    /// Delete: the block is the key; no reply.
    pub const DELETE: u8 = 2;
    /// Dictionary lookup by a `key` var; raw reply.
    pub const DICT_KEY: u8 = 3;
    /// Dictionary lookup by a `get` var; raw reply or HTTP 404.
    pub const DICT_GET: u8 = 4;
    /// Get and stream: `6f 0000 01` then the value until close, or `6f 0000 00`.
    pub const GET_STREAM: u8 = 5;
    /// Dump the whole cache (2.0).
    pub const DUMP: u8 = 6;
    /// The modifier2 of a dump reply.
    pub const DUMP_REPLY: u8 = 7;
    /// UDP sync of a set/update between cache nodes (2.0).
    pub const SYNC_SET: u8 = 10;
    /// UDP sync of a delete between cache nodes (2.0).
    pub const SYNC_DELETE: u8 = 11;
    /// The "magic" vars interface of uWSGI 2.0, used by its Python client.
    pub const MAGIC: u8 = 17;
}

/// A cache request, by sub-command.
#[non_exhaustive]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CacheRequest<'a> {
    /// modifier2 0: the whole block is the key.
    Get {
        /// The key.
        key: Payload<'a>,
    },
    /// modifier2 1: an array whose first two items are key and value (no expiry, cannot
    /// overwrite an existing key).
    Set(CacheSet<'a>),
    /// modifier2 2: the whole block is the key.
    Delete {
        /// The key.
        key: Payload<'a>,
    },
    /// modifier2 3 or 4: a lookup through the `key` or `get` var.
    DictGet {
        /// 3 or 4.
        modifier2: u8,
        /// The lookup vars.
        vars: Vars<'a>,
    },
    /// modifier2 5: the whole block is the key; the reply streams the value.
    GetStream {
        /// The key.
        key: Payload<'a>,
    },
    /// modifier2 6: dump a cache (optionally named by the block).
    Dump {
        /// The cache name, or empty for the default cache.
        cache: Payload<'a>,
    },
    /// modifier2 10: a set/update replicated over UDP.
    SyncSet(SyncSet<'a>),
    /// modifier2 11: a delete replicated over UDP.
    SyncDelete(SyncDelete<'a>),
    /// modifier2 17: the magic vars interface; a value of `size` bytes follows the block
    /// for `set` and `update`.
    Magic(CacheMagic<'a>),
    /// Any other modifier2 (uWSGI answers nothing).
    Other {
        /// The sub-command.
        modifier2: u8,
        /// The block.
        payload: Payload<'a>,
    },
}

impl<'a> CacheRequest<'a> {
    pub(crate) fn parse(
        modifier2: u8,
        block: &'a [u8],
        limits: &Limits,
    ) -> Result<Self, InvalidPacket> {
        let base = crate::header::Header::LEN;
        Ok(match modifier2 {
            op::GET => CacheRequest::Get {
                key: Payload::from_block(block),
            },
            op::SET => CacheRequest::Set(CacheSet::from_array(Array::parse_at(
                block,
                base,
                limits.max_array_items,
            )?)?),
            op::DELETE => CacheRequest::Delete {
                key: Payload::from_block(block),
            },
            op::DICT_KEY | op::DICT_GET => CacheRequest::DictGet {
                modifier2,
                vars: Vars::parse_at(block, base, limits.max_vars)?,
            },
            op::GET_STREAM => CacheRequest::GetStream {
                key: Payload::from_block(block),
            },
            op::DUMP => CacheRequest::Dump {
                cache: Payload::from_block(block),
            },
            op::SYNC_SET => CacheRequest::SyncSet(SyncSet::parse(block)?),
            op::SYNC_DELETE => CacheRequest::SyncDelete(SyncDelete::parse(block)?),
            op::MAGIC => CacheRequest::Magic(CacheMagic::from_vars(Vars::parse_at(
                block,
                base,
                limits.max_vars,
            )?)?),
            _ => CacheRequest::Other {
                modifier2,
                payload: Payload::from_block(block),
            },
        })
    }

    /// The sub-command byte.
    pub fn modifier2(&self) -> u8 {
        match self {
            CacheRequest::Get { .. } => op::GET,
            CacheRequest::Set(_) => op::SET,
            CacheRequest::Delete { .. } => op::DELETE,
            CacheRequest::DictGet { modifier2, .. } | CacheRequest::Other { modifier2, .. } => {
                *modifier2
            }
            CacheRequest::GetStream { .. } => op::GET_STREAM,
            CacheRequest::Dump { .. } => op::DUMP,
            CacheRequest::SyncSet(_) => op::SYNC_SET,
            CacheRequest::SyncDelete(_) => op::SYNC_DELETE,
            CacheRequest::Magic(_) => op::MAGIC,
        }
    }

    /// The block bytes.
    pub fn block(&self) -> &'a [u8] {
        match self {
            CacheRequest::Get { key }
            | CacheRequest::Delete { key }
            | CacheRequest::GetStream { key } => key.as_bytes(),
            CacheRequest::Set(set) => set.items.as_bytes(),
            CacheRequest::DictGet { vars, .. } => vars.as_bytes(),
            CacheRequest::Dump { cache } => cache.as_bytes(),
            CacheRequest::SyncSet(sync) => sync.block,
            CacheRequest::SyncDelete(sync) => sync.block,
            CacheRequest::Magic(magic) => magic.vars.as_bytes(),
            CacheRequest::Other { payload, .. } => payload.as_bytes(),
        }
    }

    /// Bytes that follow the block on the stream (the value of a magic set/update).
    pub fn body_len(&self) -> u64 {
        match self {
            CacheRequest::Magic(magic) => magic.value_len(),
            _ => 0,
        }
    }

    /// Writes header and block (a magic value is the caller's to write after it).
    pub fn encode(&self, dst: &mut impl BufMut) {
        put_framed(dst, Modifier1::Cache, self.modifier2(), self.block());
    }
}

/// The array-based set (modifier2 1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CacheSet<'a> {
    items: Array<'a>,
    key: &'a [u8],
    value: &'a [u8],
}

impl<'a> CacheSet<'a> {
    /// A set from an array holding at least key and value (uWSGI ignores further items).
    pub fn from_array(items: Array<'a>) -> Result<Self, InvalidPacket> {
        let mut iter = items.iter();
        match (iter.next(), iter.next()) {
            (Some(key), Some(value)) => Ok(CacheSet { items, key, value }),
            _ => Err(InvalidPacket::TooFewItems {
                what: "cache set",
                min: 2,
                actual: items.len(),
            }),
        }
    }

    /// Builds the array `[key, value]`.
    pub fn build(key: &[u8], value: &[u8]) -> Result<ArrayBuilder, EncodeError> {
        ArrayBuilder::new().with(key)?.with(value)
    }

    /// The key.
    pub fn key(&self) -> &'a [u8] {
        self.key
    }

    /// The value.
    pub fn value(&self) -> &'a [u8] {
        self.value
    }

    /// The whole array.
    pub fn items(&self) -> Array<'a> {
        self.items
    }
}

/// A set/update replicated to cache nodes over UDP (modifier2 10):
/// `u16 klen key | u16 vlen value | u16 elen expires`, where expires is the absolute
/// unix time in ASCII decimal.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SyncSet<'a> {
    block: &'a [u8],
    key: &'a [u8],
    value: &'a [u8],
    expires: u64,
}

/// Reads the three length-prefixed fields of a sync block, in order.
fn prefixed_fields<'a, const N: usize>(block: &'a [u8]) -> Result<[&'a [u8]; N], InvalidPacket> {
    let base = crate::header::Header::LEN;
    let mut fields: [&'a [u8]; N] = [&[]; N];
    let mut pos = 0;
    for field in fields.iter_mut() {
        let Some(len) = u16_at(block, pos) else {
            return Err(InvalidPacket::TrailingBytes {
                offset: base + pos,
                len: block.len() - pos.min(block.len()),
            });
        };
        let len = usize::from(len);
        let Some(bytes) = bytes_at(block, pos + 2, len) else {
            return Err(InvalidPacket::ItemPastEnd {
                offset: base + pos + 2,
                len,
                end: base + block.len(),
            });
        };
        *field = bytes;
        pos += 2 + len;
    }
    if pos != block.len() {
        return Err(InvalidPacket::TrailingBytes {
            offset: base + pos,
            len: block.len() - pos,
        });
    }
    Ok(fields)
}

impl<'a> SyncSet<'a> {
    fn parse(block: &'a [u8]) -> Result<Self, InvalidPacket> {
        let [key, value, expires] = prefixed_fields::<3>(block)?;
        let expires = strict_decimal(expires).ok_or(InvalidPacket::BadNumber {
            what: "cache sync set",
            key: "expires",
        })?;
        Ok(SyncSet {
            block,
            key,
            value,
            expires,
        })
    }

    /// Builds the block; refuses a key, value and expiry that do not fit 65535 bytes.
    pub fn build(key: &[u8], value: &[u8], expires: u64) -> Result<Vec<u8>, EncodeError> {
        let mut digits = [0u8; 20];
        let expires = decimal(expires, &mut digits);
        check_len(Field::Key, key.len(), MAX_DATASIZE)?;
        check_len(Field::Value, value.len(), MAX_DATASIZE)?;
        let total = 6 + key.len() + value.len() + expires.len();
        check_len(Field::Block, total, MAX_DATASIZE)?;
        let mut block = Vec::with_capacity(total);
        put_prefixed(&mut block, key);
        put_prefixed(&mut block, value);
        put_prefixed(&mut block, expires);
        Ok(block)
    }

    /// Parses a block made by [`SyncSet::build`] or received from a peer.
    pub fn from_block(block: &'a [u8]) -> Result<Self, InvalidPacket> {
        Self::parse(block)
    }

    /// The key.
    pub fn key(&self) -> &'a [u8] {
        self.key
    }

    /// The value.
    pub fn value(&self) -> &'a [u8] {
        self.value
    }

    /// Absolute expiry (unix seconds), 0 for none.
    pub fn expires(&self) -> u64 {
        self.expires
    }
}

/// A delete replicated to cache nodes over UDP (modifier2 11): `u16 klen key`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SyncDelete<'a> {
    block: &'a [u8],
    key: &'a [u8],
}

impl<'a> SyncDelete<'a> {
    fn parse(block: &'a [u8]) -> Result<Self, InvalidPacket> {
        let [key] = prefixed_fields::<1>(block)?;
        Ok(SyncDelete { block, key })
    }

    /// Builds the block; refuses a key over 65533 bytes.
    pub fn build(key: &[u8]) -> Result<Vec<u8>, EncodeError> {
        check_len(Field::Key, key.len(), MAX_DATASIZE - 2)?;
        let mut block = Vec::with_capacity(2 + key.len());
        put_prefixed(&mut block, key);
        Ok(block)
    }

    /// Parses a block made by [`SyncDelete::build`] or received from a peer.
    pub fn from_block(block: &'a [u8]) -> Result<Self, InvalidPacket> {
        Self::parse(block)
    }

    /// The key.
    pub fn key(&self) -> &'a [u8] {
        self.key
    }
}

/// The commands of the magic interface (the `cmd` var).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MagicCommand {
    /// Read a value.
    Get,
    /// Test for a key.
    Exists,
    /// Remove a key.
    Del,
    /// Remove every key of a cache.
    Clear,
    /// Store a value, failing if the key exists.
    Set,
    /// Store a value, overwriting.
    Update,
}

impl MagicCommand {
    /// The `cmd` value on the wire.
    pub fn as_str(self) -> &'static str {
        match self {
            MagicCommand::Get => "get",
            MagicCommand::Exists => "exists",
            MagicCommand::Del => "del",
            MagicCommand::Clear => "clear",
            MagicCommand::Set => "set",
            MagicCommand::Update => "update",
        }
    }

    /// Parses a `cmd` value.
    pub fn from_bytes(value: &[u8]) -> Option<Self> {
        Some(match value {
            b"get" => MagicCommand::Get,
            b"exists" => MagicCommand::Exists,
            b"del" => MagicCommand::Del,
            b"clear" => MagicCommand::Clear,
            b"set" => MagicCommand::Set,
            b"update" => MagicCommand::Update,
            _ => return None,
        })
    }

    /// `true` when a value follows the vars block.
    pub fn carries_value(self) -> bool {
        matches!(self, MagicCommand::Set | MagicCommand::Update)
    }
}

/// A magic-interface request (modifier2 17): vars `cmd`, `key`, `size`, `expires`,
/// `cache`; for `set`/`update` a value of `size` bytes follows the block.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CacheMagic<'a> {
    /// The request vars, as sent.
    pub vars: Vars<'a>,
    command: MagicCommand,
    size: u64,
    expires: Option<u64>,
}

const MAGIC: &str = "cache magic";

fn number_var(
    vars: &Vars<'_>,
    what: &'static str,
    key: &'static str,
) -> Result<Option<u64>, InvalidPacket> {
    vars.get(key)
        .map(|v| strict_decimal(v).ok_or(InvalidPacket::BadNumber { what, key }))
        .transpose()
}

impl<'a> CacheMagic<'a> {
    /// Interprets vars as a magic request.
    pub fn from_vars(vars: Vars<'a>) -> Result<Self, InvalidPacket> {
        let cmd = vars.get("cmd").ok_or(InvalidPacket::MissingVar {
            what: MAGIC,
            key: "cmd",
        })?;
        let command = MagicCommand::from_bytes(cmd).ok_or(InvalidPacket::UnknownValue {
            what: MAGIC,
            key: "cmd",
        })?;
        if command != MagicCommand::Clear && vars.get("key").is_none() {
            return Err(InvalidPacket::MissingVar {
                what: MAGIC,
                key: "key",
            });
        }
        let size = number_var(&vars, MAGIC, "size")?;
        if command.carries_value() && size.is_none() {
            return Err(InvalidPacket::MissingVar {
                what: MAGIC,
                key: "size",
            });
        }
        Ok(CacheMagic {
            vars,
            command,
            size: size.unwrap_or(0),
            expires: number_var(&vars, MAGIC, "expires")?,
        })
    }

    /// Builds the vars of a magic request. `value_len` is required for set/update and
    /// `expires` (relative seconds) is sent only when given.
    pub fn build(
        command: MagicCommand,
        key: &[u8],
        cache: Option<&[u8]>,
        value_len: Option<u64>,
        expires: Option<u64>,
    ) -> Result<VarsBuilder, EncodeError> {
        let mut vars = VarsBuilder::new();
        vars.push("cmd", command.as_str())?;
        if command != MagicCommand::Clear || !key.is_empty() {
            vars.push("key", key)?;
        }
        let mut digits = [0u8; 20];
        if let Some(len) = value_len {
            vars.push("size", decimal(len, &mut digits))?;
        }
        if let Some(expires) = expires {
            vars.push("expires", decimal(expires, &mut digits))?;
        }
        if let Some(cache) = cache {
            vars.push("cache", cache)?;
        }
        Ok(vars)
    }

    /// The command.
    pub fn command(&self) -> MagicCommand {
        self.command
    }

    /// The key (empty for `clear`).
    pub fn key(&self) -> &'a [u8] {
        self.vars.get("key").unwrap_or_default()
    }

    /// The cache name; `None` or empty means the default cache.
    pub fn cache(&self) -> Option<&'a [u8]> {
        self.vars.get("cache")
    }

    /// The declared `size` (0 when absent).
    pub fn size(&self) -> u64 {
        self.size
    }

    /// Relative expiry in seconds, if given.
    pub fn expires(&self) -> Option<u64> {
        self.expires
    }

    /// Bytes of value following the block: `size` for set/update, otherwise 0.
    pub fn value_len(&self) -> u64 {
        if self.command.carries_value() {
            self.size
        } else {
            0
        }
    }
}

/// The vars of a magic reply: `status`, and `size`/`expires` when a value is returned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CacheMagicReply<'a> {
    /// The reply vars, as sent.
    pub vars: Vars<'a>,
    size: u64,
    expires: Option<u64>,
}

impl<'a> CacheMagicReply<'a> {
    /// Interprets reply vars.
    pub fn from_vars(vars: Vars<'a>) -> Result<Self, InvalidPacket> {
        const WHAT: &str = "cache magic reply";
        if vars.get("status").is_none() {
            return Err(InvalidPacket::MissingVar {
                what: WHAT,
                key: "status",
            });
        }
        Ok(CacheMagicReply {
            vars,
            size: number_var(&vars, WHAT, "size")?.unwrap_or(0),
            expires: number_var(&vars, WHAT, "expires")?,
        })
    }

    /// Builds reply vars: `status: ok`, plus `size` and `expires` (absolute) when given.
    pub fn build_ok(size: Option<u64>, expires: Option<u64>) -> Result<VarsBuilder, EncodeError> {
        // Room for all three vars (two 2-byte lengths each, values of up to 20 digits):
        // the builder never grows on this path, which a cache hit takes every time.
        const MOST: usize = (4 + 6 + 2) + (4 + 4 + 20) + (4 + 7 + 20);
        let mut vars = VarsBuilder::with_capacity(MOST);
        vars.push("status", "ok")?;
        let mut digits = [0u8; 20];
        if let Some(size) = size {
            vars.push("size", decimal(size, &mut digits))?;
        }
        if let Some(expires) = expires {
            vars.push("expires", decimal(expires, &mut digits))?;
        }
        Ok(vars)
    }

    /// The `status` value (`ok` on success).
    pub fn status(&self) -> &'a [u8] {
        self.vars.get("status").unwrap_or_default()
    }

    /// `true` when the status is `ok`.
    pub fn is_ok(&self) -> bool {
        self.status() == b"ok"
    }

    /// Bytes of value following the block.
    pub fn size(&self) -> u64 {
        self.size
    }

    /// Absolute expiry (unix seconds), when the item has one.
    pub fn expires(&self) -> Option<u64> {
        self.expires
    }
}
