//! Reference models and generators shared by the harnesses.
//!
//! The models are written from `docs/protocol.md` (the vars and array rules, the
//! `CONTENT_LENGTH` reading), deliberately simple and independent of the crate's own
//! walkers, so every harness is also a differential test against the documentation.

use arbitrary::Unstructured;
use uwsgi_protocol::InvalidPacket;

/// Reads a little-endian u16 at `at`; the caller has checked that two bytes are there.
fn le16(block: &[u8], at: usize) -> usize {
    usize::from(u16::from_le_bytes([block[at], block[at + 1]]))
}

/// A vars block walked by the model: the pairs before the first error, and that error.
#[derive(Debug)]
pub(crate) struct VarsWalk<'a> {
    pub pairs: Vec<(&'a [u8], &'a [u8])>,
    pub error: Option<InvalidPacket>,
}

/// Walks a vars block by the rules of docs/protocol.md §2.
pub(crate) fn walk_vars(block: &[u8]) -> VarsWalk<'_> {
    let end = block.len();
    let mut pos = 0;
    let mut pairs = Vec::new();
    let error = loop {
        if pos == end {
            break None;
        }
        let remaining = end - pos;
        if remaining < 3 {
            break Some(InvalidPacket::TrailingBytes {
                offset: pos,
                len: remaining,
            });
        }
        let key_len = le16(block, pos);
        if key_len == 0 {
            break Some(InvalidPacket::EmptyKey { offset: pos });
        }
        let key_start = pos + 2;
        // The key must leave room for at least one byte after it.
        if key_start + key_len >= end {
            break Some(InvalidPacket::KeyPastEnd {
                offset: key_start,
                len: key_len,
                end,
            });
        }
        let value_len_at = key_start + key_len;
        if value_len_at + 2 > end {
            break Some(InvalidPacket::MissingValueLength {
                offset: value_len_at,
                end,
            });
        }
        let value_len = le16(block, value_len_at);
        let value_start = value_len_at + 2;
        if value_start + value_len > end {
            break Some(InvalidPacket::ValuePastEnd {
                offset: value_start,
                len: value_len,
                end,
            });
        }
        pairs.push((
            &block[key_start..value_len_at],
            &block[value_start..value_start + value_len],
        ));
        pos = value_start + value_len;
    };
    VarsWalk { pairs, error }
}

/// What `Vars::parse(block, max_pairs)` must return according to the model: the number
/// of pairs, or the error. More valid pairs than allowed before any malformed byte is
/// `TooManyVars`; otherwise the first malformed byte decides.
pub(crate) fn expect_vars(block: &[u8], max_pairs: usize) -> Result<usize, InvalidPacket> {
    if block.len() > uwsgi_protocol::MAX_DATASIZE {
        return Err(InvalidPacket::BlockTooLarge { len: block.len() });
    }
    let walk = walk_vars(block);
    if walk.pairs.len() > max_pairs {
        return Err(InvalidPacket::TooManyVars { max: max_pairs });
    }
    match walk.error {
        Some(e) => Err(e),
        None => Ok(walk.pairs.len()),
    }
}

/// An array block walked by the model: every entry before the first error, including
/// the empty ones uWSGI skips, and that error.
#[derive(Debug)]
pub(crate) struct ArrayWalk<'a> {
    pub entries: Vec<&'a [u8]>,
    pub error: Option<InvalidPacket>,
}

impl ArrayWalk<'_> {
    /// The non-empty items, what `Array::iter` must yield.
    pub fn items(&self) -> Vec<&[u8]> {
        self.entries
            .iter()
            .copied()
            .filter(|e| !e.is_empty())
            .collect()
    }
}

/// Walks an array block by the rules of docs/protocol.md §2 and `protocol/src/array.rs`:
/// an entry needs at least three bytes (length + one), empty entries are skipped.
pub(crate) fn walk_array(block: &[u8]) -> ArrayWalk<'_> {
    let end = block.len();
    let mut pos = 0;
    let mut entries = Vec::new();
    let error = loop {
        if pos == end {
            break None;
        }
        let remaining = end - pos;
        if remaining < 3 {
            break Some(InvalidPacket::TrailingBytes {
                offset: pos,
                len: remaining,
            });
        }
        let len = le16(block, pos);
        let start = pos + 2;
        if start + len > end {
            break Some(InvalidPacket::ItemPastEnd {
                offset: start,
                len,
                end,
            });
        }
        entries.push(&block[start..start + len]);
        pos = start + len;
    };
    ArrayWalk { entries, error }
}

/// What `Array::parse(block, max_items)` must return according to the model.
pub(crate) fn expect_array(block: &[u8], max_items: usize) -> Result<usize, InvalidPacket> {
    if block.len() > uwsgi_protocol::MAX_DATASIZE {
        return Err(InvalidPacket::BlockTooLarge { len: block.len() });
    }
    let walk = walk_array(block);
    let items = walk.items().len();
    if items > max_items {
        return Err(InvalidPacket::TooManyItems { max: max_items });
    }
    match walk.error {
        Some(e) => Err(e),
        None => Ok(items),
    }
}

/// `CONTENT_LENGTH` as uWSGI reads it (docs/protocol.md §3): the leading ASCII digits,
/// 0 when there are none, saturating instead of wrapping.
pub(crate) fn content_length(value: &[u8]) -> u64 {
    value
        .iter()
        .take_while(|b| b.is_ascii_digit())
        .fold(0u64, |n, &d| {
            n.saturating_mul(10).saturating_add(u64::from(d - b'0'))
        })
}

/// The body length of an application request whose block is `block` (already known to
/// be valid vars): the last `CONTENT_LENGTH`, read as uWSGI does.
pub(crate) fn request_body_len(block: &[u8]) -> u64 {
    walk_vars(block)
        .pairs
        .iter()
        .rev()
        .find(|(k, _)| *k == b"CONTENT_LENGTH")
        .map_or(0, |(_, v)| content_length(v))
}

/// `e` with every offset moved by `base` (what `parse_at(block, base, ..)` reports).
pub(crate) fn shift(e: InvalidPacket, base: usize) -> InvalidPacket {
    use InvalidPacket as I;
    match e {
        I::TrailingBytes { offset, len } => I::TrailingBytes {
            offset: offset + base,
            len,
        },
        I::EmptyKey { offset } => I::EmptyKey {
            offset: offset + base,
        },
        I::KeyPastEnd { offset, len, end } => I::KeyPastEnd {
            offset: offset + base,
            len,
            end: end + base,
        },
        I::MissingValueLength { offset, end } => I::MissingValueLength {
            offset: offset + base,
            end: end + base,
        },
        I::ValuePastEnd { offset, len, end } => I::ValuePastEnd {
            offset: offset + base,
            len,
            end: end + base,
        },
        I::ItemPastEnd { offset, len, end } => I::ItemPastEnd {
            offset: offset + base,
            len,
            end: end + base,
        },
        other => other,
    }
}

/// The offsets an error points at (offset and block end), to check they lie inside
/// the packet.
pub(crate) fn offsets(e: &InvalidPacket) -> Vec<usize> {
    use InvalidPacket as I;
    match e {
        I::TrailingBytes { offset, len } => vec![*offset, offset + len],
        I::EmptyKey { offset } => vec![*offset],
        I::KeyPastEnd { offset, end, .. }
        | I::MissingValueLength { offset, end }
        | I::ValuePastEnd { offset, end, .. }
        | I::ItemPastEnd { offset, end, .. } => vec![*offset, *end],
        _ => Vec::new(),
    }
}

/// Bytes of a generated field: usually short and taken from the input, sometimes one
/// byte repeated up to 70,000 times, so the 65535-byte limits of the builders are
/// reached with short fuzz inputs.
pub(crate) fn bytes(u: &mut Unstructured<'_>) -> arbitrary::Result<Vec<u8>> {
    if u.ratio(1, 32)? {
        let len = u.int_in_range(0..=70_000usize)?;
        let byte: u8 = u.arbitrary()?;
        return Ok(vec![byte; len]);
    }
    let len = u.int_in_range(0..=64usize)?;
    Ok(u.bytes(len.min(u.len()))?.to_vec())
}

/// A generated key: one of [`super::COMMON_KEYS`] half the time (so duplicates and
/// the keys the decoders look up are frequent), otherwise [`bytes`] (possibly empty,
/// which builders must refuse).
pub(crate) fn key(u: &mut Unstructured<'_>) -> arbitrary::Result<Vec<u8>> {
    if u.arbitrary()? {
        Ok(u.choose(super::COMMON_KEYS)?.as_bytes().to_vec())
    } else {
        bytes(u)
    }
}

/// Up to 24 generated pairs.
pub(crate) fn pairs(u: &mut Unstructured<'_>) -> arbitrary::Result<Vec<(Vec<u8>, Vec<u8>)>> {
    let n = u.int_in_range(0..=24usize)?;
    let mut out = Vec::with_capacity(n);
    for _ in 0..n {
        out.push((key(u)?, bytes(u)?));
    }
    Ok(out)
}

/// Prefix lengths to try for an encoding of `len` bytes: the edges, the header
/// boundary, the middle, and a few chosen by the fuzzer (never all of them, to keep
/// every input fast).
pub(crate) fn prefix_lengths(len: usize, u: &mut Unstructured<'_>) -> Vec<usize> {
    let mut out: Vec<usize> = [
        0,
        1,
        3,
        4,
        5,
        len / 2,
        len.saturating_sub(2),
        len.saturating_sub(1),
    ]
    .into_iter()
    .collect();
    for _ in 0..4 {
        match u.int_in_range(0..=len) {
            Ok(l) => out.push(l),
            Err(_) => break,
        }
    }
    out.retain(|&l| l < len);
    out.sort_unstable();
    out.dedup();
    out
}
