//! The vars block: `u16le keylen | key | u16le vallen | value`, repeated to the block end.
//!
//! [`Vars`] is a borrowed, validated, zero-copy view: order and duplicate keys are kept
//! (nginx sends a repeated header twice), and [`Vars::get`] returns the *last* occurrence,
//! which is what uWSGI's environ ends up holding. [`VarsBuilder`] builds a block and
//! refuses, at push time, anything that would not fit the 16-bit fields.

use crate::error::{EncodeError, Field, InvalidPacket, check_len};
use crate::header::MAX_DATASIZE;
use crate::wire::{bytes_at, put_prefixed, u16_at};

/// A validated vars block borrowed from a buffer.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct Vars<'a> {
    block: &'a [u8],
    len: usize,
}

/// One pair of a validated walk: key and value, and where the next pair starts.
struct Pair<'a> {
    key: &'a [u8],
    value: &'a [u8],
    next: usize,
}

/// The pair starting at `pos`, or `None` when the bytes there are not a whole pair.
/// This is the hot path of every decode, so it only answers yes or no; [`pair_error`]
/// says why, off the hot path.
#[inline(always)]
fn pair_at(block: &[u8], pos: usize) -> Option<Pair<'_>> {
    let key_len = usize::from(u16_at(block, pos)?);
    if key_len == 0 {
        return None;
    }
    let key = bytes_at(block, pos + 2, key_len)?;
    let value_len_at = pos + 2 + key_len;
    let value_len = usize::from(u16_at(block, value_len_at)?);
    let value = bytes_at(block, value_len_at + 2, value_len)?;
    Some(Pair {
        key,
        value,
        next: value_len_at + 2 + value_len,
    })
}

/// Why [`pair_at`] refused the bytes at `pos`. `base` is the offset of the block inside
/// its packet, so the error points into the packet.
#[cold]
#[inline(never)]
fn pair_error(block: &[u8], pos: usize, base: usize) -> InvalidPacket {
    let end = block.len();
    let remaining = end - pos;
    // A pair needs a key length and at least one key byte before its value length.
    if remaining < 3 {
        return InvalidPacket::TrailingBytes {
            offset: base + pos,
            len: remaining,
        };
    }
    let key_len = usize::from(u16_at(block, pos).unwrap_or(0));
    if key_len == 0 {
        return InvalidPacket::EmptyKey { offset: base + pos };
    }
    let key_start = pos + 2;
    if key_start + key_len >= end {
        return InvalidPacket::KeyPastEnd {
            offset: base + key_start,
            len: key_len,
            end: base + end,
        };
    }
    let value_len_at = key_start + key_len;
    let Some(value_len) = u16_at(block, value_len_at) else {
        return InvalidPacket::MissingValueLength {
            offset: base + value_len_at,
            end: base + end,
        };
    };
    InvalidPacket::ValuePastEnd {
        offset: base + value_len_at + 2,
        len: usize::from(value_len),
        end: base + end,
    }
}

/// Validates a whole block, calling `on_pair` for every pair in order, and returns the
/// number of pairs.
#[inline(always)]
fn walk<'a>(
    block: &'a [u8],
    base: usize,
    max_pairs: usize,
    mut on_pair: impl FnMut(&'a [u8], &'a [u8]),
) -> Result<usize, InvalidPacket> {
    if block.len() > MAX_DATASIZE {
        return Err(InvalidPacket::BlockTooLarge { len: block.len() });
    }
    let mut pos = 0;
    let mut len = 0;
    while pos < block.len() {
        let Some(pair) = pair_at(block, pos) else {
            return Err(pair_error(block, pos, base));
        };
        len += 1;
        if len > max_pairs {
            return Err(InvalidPacket::TooManyVars { max: max_pairs });
        }
        on_pair(pair.key, pair.value);
        pos = pair.next;
    }
    Ok(len)
}

impl<'a> Vars<'a> {
    /// An empty vars block.
    pub const EMPTY: Vars<'static> = Vars { block: &[], len: 0 };

    /// Validates `block` as vars with at most `max_pairs` pairs. Error offsets count from
    /// the start of `block`.
    pub fn parse(block: &'a [u8], max_pairs: usize) -> Result<Self, InvalidPacket> {
        Self::parse_at(block, 0, max_pairs)
    }

    /// Like [`Vars::parse`], with error offsets shifted by `base` (the block's offset in
    /// its packet).
    pub fn parse_at(block: &'a [u8], base: usize, max_pairs: usize) -> Result<Self, InvalidPacket> {
        let len = walk(block, base, max_pairs, |_, _| {})?;
        Ok(Vars { block, len })
    }

    /// Validates like [`Vars::parse_at`] and, in the same pass, finds the value of the
    /// last pair named `key`. Decoding a request uses it to read `CONTENT_LENGTH`
    /// without a second walk.
    pub fn parse_finding(
        block: &'a [u8],
        base: usize,
        max_pairs: usize,
        key: &[u8],
    ) -> Result<(Self, Option<&'a [u8]>), InvalidPacket> {
        let mut found = None;
        let len = walk(block, base, max_pairs, |k, v| {
            if k == key {
                found = Some(v);
            }
        })?;
        Ok((Vars { block, len }, found))
    }

    /// The encoded block (without a header).
    pub fn as_bytes(&self) -> &'a [u8] {
        self.block
    }

    /// Number of pairs, duplicates included.
    pub fn len(&self) -> usize {
        self.len
    }

    /// `true` when there are no pairs.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The pairs in wire order.
    #[inline]
    pub fn iter(&self) -> VarsIter<'a> {
        VarsIter {
            block: self.block,
            pos: 0,
            remaining: self.len,
        }
    }

    /// The value of the last pair named `key` (uWSGI's environ keeps the last one).
    /// Each call walks the block; to read several vars, [`Vars::get_many`] walks once.
    #[inline]
    pub fn get(&self, key: impl AsRef<[u8]>) -> Option<&'a [u8]> {
        let [value] = self.get_many([key.as_ref()]);
        value
    }

    /// The values of the last pairs named `keys[0]`, `keys[1]`, … in one walk of the
    /// block: what a server does to pick up the few vars it needs.
    #[inline]
    pub fn get_many<const N: usize>(&self, keys: [&[u8]; N]) -> [Option<&'a [u8]>; N] {
        let mut found = [None; N];
        for (k, v) in self.iter() {
            for (slot, key) in found.iter_mut().zip(keys) {
                if k == key {
                    *slot = Some(v);
                }
            }
        }
        found
    }

    /// The value of the first pair named `key`.
    #[inline]
    pub fn get_first(&self, key: impl AsRef<[u8]>) -> Option<&'a [u8]> {
        let key = key.as_ref();
        self.iter().find(|(k, _)| *k == key).map(|(_, v)| v)
    }

    /// Every value of the pairs named `key`, in wire order.
    pub fn get_all<'k>(&self, key: &'k [u8]) -> impl Iterator<Item = &'a [u8]> + 'k
    where
        'a: 'k,
    {
        self.iter().filter(move |(k, _)| *k == key).map(|(_, v)| v)
    }
}

impl std::fmt::Debug for Vars<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list()
            .entries(
                self.iter()
                    .map(|(k, v)| (String::from_utf8_lossy(k), String::from_utf8_lossy(v))),
            )
            .finish()
    }
}

impl<'a> IntoIterator for Vars<'a> {
    type Item = (&'a [u8], &'a [u8]);
    type IntoIter = VarsIter<'a>;
    fn into_iter(self) -> VarsIter<'a> {
        self.iter()
    }
}

impl<'a> IntoIterator for &Vars<'a> {
    type Item = (&'a [u8], &'a [u8]);
    type IntoIter = VarsIter<'a>;
    fn into_iter(self) -> VarsIter<'a> {
        self.iter()
    }
}

/// Iterator over the `(key, value)` pairs of a [`Vars`] block.
#[derive(Debug, Clone)]
pub struct VarsIter<'a> {
    block: &'a [u8],
    pos: usize,
    remaining: usize,
}

impl<'a> Iterator for VarsIter<'a> {
    type Item = (&'a [u8], &'a [u8]);

    #[inline]
    fn next(&mut self) -> Option<Self::Item> {
        if self.remaining == 0 {
            return None;
        }
        // The block was validated when the view was made, so this step cannot fail.
        let pair = pair_at(self.block, self.pos)?;
        self.pos = pair.next;
        self.remaining -= 1;
        Some((pair.key, pair.value))
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        (self.remaining, Some(self.remaining))
    }
}

impl ExactSizeIterator for VarsIter<'_> {}

/// Builds a vars block. Every push is checked, so the finished block always fits a
/// packet: keys are 1..=65535 bytes, values 0..=65535, the whole block at most 65535.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct VarsBuilder {
    block: Vec<u8>,
    len: usize,
}

impl VarsBuilder {
    /// An empty builder.
    pub fn new() -> Self {
        Self::default()
    }

    /// An empty builder with room for `bytes` bytes of block.
    pub fn with_capacity(bytes: usize) -> Self {
        VarsBuilder {
            block: Vec::with_capacity(bytes.min(MAX_DATASIZE)),
            len: 0,
        }
    }

    /// Appends one pair, or refuses it (leaving the builder unchanged).
    pub fn push(
        &mut self,
        key: impl AsRef<[u8]>,
        value: impl AsRef<[u8]>,
    ) -> Result<&mut Self, EncodeError> {
        let (key, value) = (key.as_ref(), value.as_ref());
        if key.is_empty() {
            return Err(EncodeError::EmptyKey);
        }
        check_len(Field::Key, key.len(), MAX_DATASIZE)?;
        check_len(Field::Value, value.len(), MAX_DATASIZE)?;
        let grown = self.block.len() + 4 + key.len() + value.len();
        check_len(Field::Block, grown, MAX_DATASIZE)?;
        put_prefixed(&mut self.block, key);
        put_prefixed(&mut self.block, value);
        self.len += 1;
        Ok(self)
    }

    /// [`VarsBuilder::push`] for chaining by value.
    pub fn with(
        mut self,
        key: impl AsRef<[u8]>,
        value: impl AsRef<[u8]>,
    ) -> Result<Self, EncodeError> {
        self.push(key, value)?;
        Ok(self)
    }

    /// Builds a block from pairs, stopping at the first refused one.
    pub fn from_pairs<K, V>(pairs: impl IntoIterator<Item = (K, V)>) -> Result<Self, EncodeError>
    where
        K: AsRef<[u8]>,
        V: AsRef<[u8]>,
    {
        let mut builder = VarsBuilder::new();
        for (k, v) in pairs {
            builder.push(k, v)?;
        }
        Ok(builder)
    }

    /// Removes every pair, keeping the allocation for the next block.
    pub fn clear(&mut self) {
        self.block.clear();
        self.len = 0;
    }

    /// The block built so far, as a validated view.
    pub fn as_vars(&self) -> Vars<'_> {
        Vars {
            block: &self.block,
            len: self.len,
        }
    }

    /// Size of the block so far.
    pub fn block_len(&self) -> usize {
        self.block.len()
    }

    /// Number of pairs so far.
    pub fn len(&self) -> usize {
        self.len
    }

    /// `true` when no pair was pushed.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The encoded block.
    pub fn into_block(self) -> Vec<u8> {
        self.block
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hex(s: &str) -> Vec<u8> {
        let s: String = s.split_whitespace().collect();
        (0..s.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
            .collect()
    }

    #[test]
    fn spec_example_block() {
        // spec §1.1: REQUEST_METHOD=GET, PATH_INFO=/
        let block =
            hex("0e00 524551554553545f4d4554484f44 0300 474554 0900 504154485f494e464f 0100 2f");
        let vars = Vars::parse(&block, 128).unwrap();
        let pairs: Vec<_> = vars.iter().collect();
        assert_eq!(
            pairs,
            vec![
                (&b"REQUEST_METHOD"[..], &b"GET"[..]),
                (&b"PATH_INFO"[..], &b"/"[..])
            ]
        );
        let built = VarsBuilder::new()
            .with("REQUEST_METHOD", "GET")
            .unwrap()
            .with("PATH_INFO", "/")
            .unwrap();
        assert_eq!(built.as_vars().as_bytes(), &block[..]);
        assert_eq!(built.block_len(), 35);
    }

    #[test]
    fn duplicates_are_kept_and_last_wins() {
        let b = VarsBuilder::from_pairs([("HTTP_X", "1"), ("A", ""), ("HTTP_X", "2")]).unwrap();
        let v = b.as_vars();
        assert_eq!(v.len(), 3);
        assert_eq!(v.get("HTTP_X"), Some(&b"2"[..]));
        assert_eq!(v.get_first("HTTP_X"), Some(&b"1"[..]));
        assert_eq!(
            v.get_all(b"HTTP_X").collect::<Vec<_>>(),
            vec![&b"1"[..], &b"2"[..]]
        );
        assert_eq!(v.get("A"), Some(&b""[..]));
        assert_eq!(v.get("missing"), None);
    }

    #[test]
    fn rejection_rules_match_uwsgi() {
        let cases: &[(&str, InvalidPacket)] = &[
            ("0000 0100 61", InvalidPacket::EmptyKey { offset: 0 }),
            // key ends exactly at the block end: no room for the value length
            (
                "0300 616263",
                InvalidPacket::KeyPastEnd {
                    offset: 2,
                    len: 3,
                    end: 5,
                },
            ),
            (
                "0500 6162",
                InvalidPacket::KeyPastEnd {
                    offset: 2,
                    len: 5,
                    end: 4,
                },
            ),
            (
                "0100 61 00",
                InvalidPacket::MissingValueLength { offset: 3, end: 4 },
            ),
            (
                "0100 61 0500 6263",
                InvalidPacket::ValuePastEnd {
                    offset: 5,
                    len: 5,
                    end: 7,
                },
            ),
            (
                "0100 61 0100 62 01",
                InvalidPacket::TrailingBytes { offset: 6, len: 1 },
            ),
            (
                "0100 61 0100 62 0100",
                InvalidPacket::TrailingBytes { offset: 6, len: 2 },
            ),
        ];
        for (block, want) in cases {
            let bytes = hex(block);
            assert_eq!(
                Vars::parse(&bytes, 128).unwrap_err(),
                *want,
                "block {block}"
            );
        }
        // empty value as the very last item is fine
        assert_eq!(Vars::parse(&hex("0100 61 0000"), 128).unwrap().len(), 1);
    }

    #[test]
    fn pair_limit() {
        let mut b = VarsBuilder::new();
        for _ in 0..129 {
            b.push("k", "v").unwrap();
        }
        let block = b.into_block();
        assert_eq!(
            Vars::parse(&block, 128).unwrap_err(),
            InvalidPacket::TooManyVars { max: 128 }
        );
        assert_eq!(Vars::parse(&block, 129).unwrap().len(), 129);
    }

    #[test]
    fn offsets_are_shifted_by_base() {
        assert_eq!(
            Vars::parse_at(&hex("0000"), 4, 128).unwrap_err(),
            InvalidPacket::TrailingBytes { offset: 4, len: 2 }
        );
    }

    #[test]
    fn builder_refuses_what_does_not_fit() {
        let mut b = VarsBuilder::new();
        assert_eq!(b.push("", "x").unwrap_err(), EncodeError::EmptyKey);
        let big = vec![b'x'; 65536];
        assert_eq!(
            b.push(&big, "").unwrap_err(),
            EncodeError::TooLarge {
                what: Field::Key,
                len: 65536,
                max: 65535
            }
        );
        assert_eq!(
            b.push("k", &big).unwrap_err(),
            EncodeError::TooLarge {
                what: Field::Value,
                len: 65536,
                max: 65535
            }
        );
        // 4 + 1 + 65530 = 65535 fits exactly; one more byte does not.
        b.push("k", &big[..65530]).unwrap();
        assert_eq!(b.block_len(), 65535);
        assert_eq!(
            b.push("k", "").unwrap_err(),
            EncodeError::TooLarge {
                what: Field::Block,
                len: 65540,
                max: 65535
            }
        );
        assert_eq!(b.len(), 1);
    }

    #[test]
    fn one_walk_lookups_agree_with_get() {
        let b = VarsBuilder::from_pairs([
            ("CONTENT_LENGTH", "5"),
            ("PATH_INFO", "/a"),
            ("HTTP_X", "1"),
            ("CONTENT_LENGTH", "12"),
            ("QUERY_STRING", ""),
        ])
        .unwrap();
        let vars = b.as_vars();
        let keys: [&[u8]; 5] = [
            b"CONTENT_LENGTH",
            b"PATH_INFO",
            b"QUERY_STRING",
            b"MISSING",
            b"HTTP_X",
        ];
        let many = vars.get_many(keys);
        for (key, value) in keys.iter().zip(many) {
            assert_eq!(value, vars.get(key), "{}", String::from_utf8_lossy(key));
        }
        assert_eq!(many[0], Some(&b"12"[..]));
        assert_eq!(many[2], Some(&b""[..]));
        assert_eq!(many[3], None);

        let block = vars.as_bytes();
        let (parsed, found) = Vars::parse_finding(block, 4, 128, b"CONTENT_LENGTH").unwrap();
        assert_eq!(parsed, vars);
        assert_eq!(found, Some(&b"12"[..]));
        let (_, missing) = Vars::parse_finding(block, 4, 128, b"NOPE").unwrap();
        assert_eq!(missing, None);
        // The finding walk refuses exactly what parse refuses.
        assert_eq!(
            Vars::parse_finding(&block[..block.len() - 1], 4, 128, b"X").unwrap_err(),
            Vars::parse_at(&block[..block.len() - 1], 4, 128).unwrap_err()
        );
    }

    #[test]
    fn cleared_builder_starts_over() {
        let mut b = VarsBuilder::from_pairs([("A", "1"), ("B", "2")]).unwrap();
        b.clear();
        assert!(b.is_empty());
        assert_eq!(b.block_len(), 0);
        b.push("C", "3").unwrap();
        assert_eq!(
            b.as_vars().iter().collect::<Vec<_>>(),
            vec![(&b"C"[..], &b"3"[..])]
        );
    }
}
