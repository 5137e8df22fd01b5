//! Errors of the codec.
//!
//! Decoding distinguishes "give me more bytes" ([`DecodeError::Incomplete`]) from "these
//! bytes can never be a valid packet" ([`DecodeError::Invalid`]). Every invalid cause is a
//! variant carrying the offset (from the first byte of the packet header) and the limit
//! that was crossed, so a server can log precisely whose fault it was.
//!
//! Encoding cannot fail: builders refuse oversize input when it is pushed
//! ([`EncodeError`]), so a built value always fits the 16-bit size fields.

use crate::header::Modifier1;

/// Why a decode did not produce a packet.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    /// The input is a valid prefix; at least `needed` more bytes are required.
    #[error("incomplete packet: at least {needed} more byte(s) needed")]
    Incomplete {
        /// Lower bound on the number of bytes still missing (always at least 1).
        needed: usize,
    },
    /// The input can never become a valid packet, whatever follows.
    #[error("invalid packet: {0}")]
    Invalid(#[from] InvalidPacket),
}

impl DecodeError {
    /// `true` for [`DecodeError::Incomplete`].
    pub fn is_incomplete(&self) -> bool {
        matches!(self, DecodeError::Incomplete { .. })
    }

    pub(crate) fn incomplete(needed: usize) -> Self {
        DecodeError::Incomplete {
            needed: needed.max(1),
        }
    }
}

/// The precise reason a packet was rejected. Offsets count from the first header byte.
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InvalidPacket {
    /// The header announces a block larger than the configured maximum (uWSGI's
    /// `--buffer-size`).
    #[error("datasize {datasize} exceeds the limit of {max} bytes")]
    DatasizeTooLarge {
        /// Announced block size.
        datasize: u16,
        /// Configured maximum.
        max: u16,
    },
    /// A block handed to a parser is longer than any header can announce.
    #[error("block of {len} bytes exceeds the maximum of 65535")]
    BlockTooLarge {
        /// Its length.
        len: usize,
    },
    /// A datagram whose header datasize does not match the bytes that follow it.
    #[error("datagram header announces {datasize} bytes but {actual} follow")]
    DatagramSize {
        /// Announced block size.
        datasize: u16,
        /// Bytes present after the header.
        actual: usize,
    },
    /// One or two stray bytes where a key or item length (and its data) should start.
    #[error("{len} stray byte(s) at offset {offset}: too short to start a pair or item")]
    TrailingBytes {
        /// Where the stray bytes start.
        offset: usize,
        /// How many there are.
        len: usize,
    },
    /// A vars key of length zero.
    #[error("empty vars key at offset {offset}")]
    EmptyKey {
        /// Offset of the key length field.
        offset: usize,
    },
    /// A key runs to or past the end of the block, leaving no room for its value length.
    #[error(
        "vars key at offset {offset} of length {len} leaves no room for a value (block ends at {end})"
    )]
    KeyPastEnd {
        /// Offset of the key bytes.
        offset: usize,
        /// Declared key length.
        len: usize,
        /// Offset where the block ends.
        end: usize,
    },
    /// A value length field is cut by the end of the block.
    #[error("value length at offset {offset} is cut by the end of the block at {end}")]
    MissingValueLength {
        /// Offset of the value length field.
        offset: usize,
        /// Offset where the block ends.
        end: usize,
    },
    /// A value runs past the end of the block.
    #[error("vars value at offset {offset} of length {len} runs past the block end at {end}")]
    ValuePastEnd {
        /// Offset of the value bytes.
        offset: usize,
        /// Declared value length.
        len: usize,
        /// Offset where the block ends.
        end: usize,
    },
    /// More key/value pairs than allowed (uWSGI: 2 × `--max-vars`, 128 by default).
    #[error("more than {max} vars pairs")]
    TooManyVars {
        /// Configured maximum.
        max: usize,
    },
    /// An array item runs past the end of the block.
    #[error("array item at offset {offset} of length {len} runs past the block end at {end}")]
    ItemPastEnd {
        /// Offset of the item bytes.
        offset: usize,
        /// Declared item length.
        len: usize,
        /// Offset where the block ends.
        end: usize,
    },
    /// More array items than allowed (RPC: function name + 254 arguments).
    #[error("more than {max} array items")]
    TooManyItems {
        /// Configured maximum.
        max: usize,
    },
    /// An array has fewer items than the packet kind needs.
    #[error("{what} needs at least {min} array item(s), got {actual}")]
    TooFewItems {
        /// The kind of packet.
        what: &'static str,
        /// Items required.
        min: usize,
        /// Items present.
        actual: usize,
    },
    /// A packet whose block must not be empty is empty (an RPC call without a name).
    #[error("{what} needs a non-empty block")]
    EmptyBlock {
        /// The kind of packet.
        what: &'static str,
    },
    /// The block has a size that the packet kind does not allow.
    #[error("{what}: datasize {actual} is not allowed (expected {expected})")]
    UnexpectedDatasize {
        /// The kind of packet.
        what: &'static str,
        /// What the layout allows, in words.
        expected: &'static str,
        /// Actual datasize.
        actual: usize,
    },
    /// A required var is missing from a vars-based packet.
    #[error("{what}: required var {key:?} is missing")]
    MissingVar {
        /// The kind of packet.
        what: &'static str,
        /// The missing key.
        key: &'static str,
    },
    /// A var that must hold a decimal number does not.
    #[error("{what}: var {key:?} is not a decimal number")]
    BadNumber {
        /// The kind of packet.
        what: &'static str,
        /// The offending key.
        key: &'static str,
    },
    /// A var holds a value outside the set the packet kind defines.
    #[error("{what}: var {key:?} has an unknown value")]
    UnknownValue {
        /// The kind of packet.
        what: &'static str,
        /// The offending key.
        key: &'static str,
    },
    /// A request announces a body larger than allowed (uWSGI's `--limit-post`).
    #[error("body of {len} bytes exceeds the limit of {max} bytes")]
    BodyTooLarge {
        /// Announced body length.
        len: u64,
        /// Configured maximum.
        max: u64,
    },
    /// The connection closed before the reply was complete.
    #[error("connection closed with the reply incomplete: at least {needed} more byte(s) were due")]
    Truncated {
        /// Lower bound on the missing bytes.
        needed: usize,
    },
    /// A cache dump's `items` or `blocksize` differs from the receiving cache's (uWSGI
    /// exits in this case).
    #[error("cache dump has {what} {actual}, this cache has {expected}")]
    DumpMismatch {
        /// `items` or `blocksize`.
        what: &'static str,
        /// The receiving cache's.
        expected: u64,
        /// The dump's.
        actual: u64,
    },
    /// A used slot of a cache dump image does not fit the geometry.
    #[error("cache dump slot {slot} (image offset {offset}): {what}")]
    BadDumpItem {
        /// The slot.
        slot: u64,
        /// Offset of the slot in the image.
        offset: usize,
        /// What is wrong, in words.
        what: &'static str,
    },
    /// A reply does not match the request it answers.
    #[error(
        "reply with modifier1 {modifier1} / modifier2 {modifier2} does not answer a {expected} request"
    )]
    UnexpectedReply {
        /// modifier1 of the reply.
        modifier1: Modifier1,
        /// modifier2 of the reply.
        modifier2: u8,
        /// The request kind, in words.
        expected: &'static str,
    },
}

/// Which part of a packet a size error is about.
#[non_exhaustive]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Field {
    /// A vars key.
    Key,
    /// A vars value.
    Value,
    /// An array item.
    Item,
    /// A whole vars or array block (the header's 16-bit datasize).
    Block,
    /// A raw payload carried as the block.
    Payload,
}

impl std::fmt::Display for Field {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Field::Key => "key",
            Field::Value => "value",
            Field::Item => "array item",
            Field::Block => "block",
            Field::Payload => "payload",
        })
    }
}

/// A value was refused while building a packet, before anything was encoded.
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EncodeError {
    /// Longer than a 16-bit length field (or the whole block) can describe.
    #[error("{what} of {len} bytes exceeds the maximum of {max}")]
    TooLarge {
        /// Which part.
        what: Field,
        /// Its length.
        len: usize,
        /// The maximum allowed.
        max: usize,
    },
    /// Empty keys are rejected by every uwsgi parser.
    #[error("a vars key must not be empty")]
    EmptyKey,
    /// Empty array items are dropped (or the array rejected) by every uwsgi parser.
    #[error("an array item must not be empty")]
    EmptyItem,
    /// An array needs at least one item (for RPC: the function name).
    #[error("{what} needs at least one item")]
    EmptyArray {
        /// The kind of packet.
        what: &'static str,
    },
}

/// Fails with [`EncodeError::TooLarge`] when `len` does not fit in `max`.
pub(crate) fn check_len(what: Field, len: usize, max: usize) -> Result<(), EncodeError> {
    if len > max {
        Err(EncodeError::TooLarge { what, len, max })
    } else {
        Ok(())
    }
}
