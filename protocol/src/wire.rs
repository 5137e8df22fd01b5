//! The one place that reads 16-bit length-prefixed fields out of a block.
//!
//! Both vars and arrays are sequences of `u16le length | bytes`. Every bounds check of
//! those walks happens here, and the callers turn a `None` into a precise
//! [`InvalidPacket`](crate::InvalidPacket).
//!
//! These two readers are plain checked slicing rather than nom combinators: they run
//! twice per var on every request, and nom 8's `take` is an out-of-line call per field
//! (35 % of decode time when profiled, see docs/benchmarks.md). The header and the
//! other structured parsers stay on nom.

/// Reads a little-endian u16 at `pos`, or `None` when fewer than 2 bytes remain.
#[inline(always)]
pub(crate) fn u16_at(block: &[u8], pos: usize) -> Option<u16> {
    match block.get(pos..)? {
        [lo, hi, ..] => Some(u16::from_le_bytes([*lo, *hi])),
        _ => None,
    }
}

/// The `len` bytes starting at `pos`, or `None` when the block is shorter.
#[inline(always)]
pub(crate) fn bytes_at(block: &[u8], pos: usize, len: usize) -> Option<&[u8]> {
    block.get(pos..pos.checked_add(len)?)
}

/// Appends `u16le len | bytes`. The caller has checked that `bytes` fits in 16 bits.
pub(crate) fn put_prefixed(dst: &mut Vec<u8>, bytes: &[u8]) {
    let len = u16::try_from(bytes.len()).unwrap_or(u16::MAX);
    dst.extend_from_slice(&len.to_le_bytes());
    dst.extend_from_slice(bytes);
}
