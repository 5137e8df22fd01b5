//! The one place that reads 16-bit length-prefixed fields out of a block.
//!
//! Both vars and arrays are sequences of `u16le length | bytes`; every bounds check of the
//! codec happens here, through nom's checked primitives, and turns into a precise
//! [`InvalidPacket`] by the callers.

use nom::Parser;
use nom::bytes::complete::take;
use nom::number::complete::le_u16;

/// Reads a little-endian u16 at `pos`, or `None` when fewer than 2 bytes remain.
pub(crate) fn u16_at(block: &[u8], pos: usize) -> Option<u16> {
    let rest = block.get(pos..)?;
    let parsed: nom::IResult<&[u8], u16> = le_u16(rest);
    parsed.ok().map(|(_, v)| v)
}

/// The `len` bytes starting at `pos`, or `None` when the block is shorter.
pub(crate) fn bytes_at(block: &[u8], pos: usize, len: usize) -> Option<&[u8]> {
    let rest = block.get(pos..)?;
    let parsed: nom::IResult<&[u8], &[u8]> = take(len).parse(rest);
    parsed.ok().map(|(_, v)| v)
}

/// Appends `u16le len | bytes`. The caller has checked that `bytes` fits in 16 bits.
pub(crate) fn put_prefixed(dst: &mut Vec<u8>, bytes: &[u8]) {
    let len = u16::try_from(bytes.len()).unwrap_or(u16::MAX);
    dst.extend_from_slice(&len.to_le_bytes());
    dst.extend_from_slice(bytes);
}
