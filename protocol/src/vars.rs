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

/// One step of the walk: the pair starting at `pos` and where the next one starts.
/// `base` is the offset of the block inside its packet, used only in errors.
fn pair_at(block: &[u8], pos: usize, base: usize) -> Result<(&[u8], &[u8], usize), InvalidPacket> {
    let end = block.len();
    let remaining = end - pos;
    // A pair needs a key length and at least one key byte before its value length.
    if remaining < 3 {
        return Err(InvalidPacket::TrailingBytes {
            offset: base + pos,
            len: remaining,
        });
    }
    let key_len = usize::from(u16_at(block, pos).unwrap_or(0));
    if key_len == 0 {
        return Err(InvalidPacket::EmptyKey { offset: base + pos });
    }
    let key_start = pos + 2;
    let key = match bytes_at(block, key_start, key_len) {
        Some(key) if key_start + key_len < end => key,
        _ => {
            return Err(InvalidPacket::KeyPastEnd {
                offset: base + key_start,
                len: key_len,
                end: base + end,
            });
        }
    };
    let value_len_at = key_start + key_len;
    let Some(value_len) = u16_at(block, value_len_at) else {
        return Err(InvalidPacket::MissingValueLength {
            offset: base + value_len_at,
            end: base + end,
        });
    };
    let value_len = usize::from(value_len);
    let value_start = value_len_at + 2;
    let Some(value) = bytes_at(block, value_start, value_len) else {
        return Err(InvalidPacket::ValuePastEnd {
            offset: base + value_start,
            len: value_len,
            end: base + end,
        });
    };
    Ok((key, value, value_start + value_len))
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
        if block.len() > MAX_DATASIZE {
            return Err(InvalidPacket::BlockTooLarge { len: block.len() });
        }
        let mut pos = 0;
        let mut len = 0;
        while pos < block.len() {
            let (_, _, next) = pair_at(block, pos, base)?;
            len += 1;
            if len > max_pairs {
                return Err(InvalidPacket::TooManyVars { max: max_pairs });
            }
            pos = next;
        }
        Ok(Vars { block, len })
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
    pub fn iter(&self) -> VarsIter<'a> {
        VarsIter {
            block: self.block,
            pos: 0,
            remaining: self.len,
        }
    }

    /// The value of the last pair named `key` (uWSGI's environ keeps the last one).
    pub fn get(&self, key: impl AsRef<[u8]>) -> Option<&'a [u8]> {
        let key = key.as_ref();
        self.iter()
            .filter(|(k, _)| *k == key)
            .map(|(_, v)| v)
            .last()
    }

    /// The value of the first pair named `key`.
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

    fn next(&mut self) -> Option<Self::Item> {
        if self.remaining == 0 {
            return None;
        }
        // The block was validated when the view was made, so this walk cannot fail.
        let (key, value, next) = pair_at(self.block, self.pos, 0).ok()?;
        self.pos = next;
        self.remaining -= 1;
        Some((key, value))
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
}
