//! Size-checked building blocks shared by the typed packets.

use bytes::BufMut;

use crate::error::{EncodeError, Field, check_len};
use crate::header::{Header, MAX_DATASIZE, Modifier1};
use crate::vars::Vars;

/// Raw bytes carried as a packet's block, guaranteed to fit the 16-bit datasize.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Payload<'a>(&'a [u8]);

impl<'a> Payload<'a> {
    /// No bytes.
    pub const EMPTY: Payload<'static> = Payload(&[]);

    /// Wraps `bytes`, refusing more than 65535 of them.
    pub fn new(bytes: &'a [u8]) -> Result<Self, EncodeError> {
        check_len(Field::Payload, bytes.len(), MAX_DATASIZE)?;
        Ok(Payload(bytes))
    }

    /// Wraps a block taken from a decoded packet (its length came from a 16-bit field).
    pub(crate) fn from_block(bytes: &'a [u8]) -> Self {
        Payload(bytes)
    }

    /// The bytes.
    pub fn as_bytes(&self) -> &'a [u8] {
        self.0
    }

    /// Number of bytes.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// `true` when there are no bytes.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl std::fmt::Debug for Payload<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:?}", String::from_utf8_lossy(self.0))
    }
}

impl AsRef<[u8]> for Payload<'_> {
    fn as_ref(&self) -> &[u8] {
        self.0
    }
}

/// A packet whose block is opaque bytes: modifier2 plus a payload.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Message<'a> {
    /// The header's last byte.
    pub modifier2: u8,
    /// The block.
    pub payload: Payload<'a>,
}

impl<'a> Message<'a> {
    /// A message with modifier2 `modifier2` carrying `payload`.
    pub fn new(modifier2: u8, payload: Payload<'a>) -> Self {
        Message { modifier2, payload }
    }
}

/// A packet whose block is vars: modifier2 plus the pairs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct VarsMessage<'a> {
    /// The header's last byte.
    pub modifier2: u8,
    /// The block.
    pub vars: Vars<'a>,
}

impl<'a> VarsMessage<'a> {
    /// A vars packet with modifier2 `modifier2`.
    pub fn new(modifier2: u8, vars: Vars<'a>) -> Self {
        VarsMessage { modifier2, vars }
    }
}

/// A block length that is known to fit 16 bits (every block type guarantees it).
pub(crate) fn block_size(len: usize) -> u16 {
    u16::try_from(len).unwrap_or(u16::MAX)
}

/// Writes a header for `block` followed by the block.
pub(crate) fn put_framed(dst: &mut impl BufMut, modifier1: Modifier1, modifier2: u8, block: &[u8]) {
    Header::new(modifier1, block_size(block.len()), modifier2).encode(dst);
    dst.put_slice(block);
}
