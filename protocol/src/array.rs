//! The array block (RPC arguments and results, cache set): `u16le len | bytes`, repeated.
//!
//! uWSGI's parser skips zero-length items but rejects the whole array when a length field
//! sits in the last two bytes of the block (so a trailing empty item is invalid) or when
//! a single stray byte is left. [`Array`] follows those rules exactly and yields only the
//! non-empty items. [`ArrayBuilder`] refuses empty items, since no uWSGI peer can receive
//! them.

use crate::error::{EncodeError, Field, InvalidPacket, check_len};
use crate::header::MAX_DATASIZE;
use crate::wire::{bytes_at, put_prefixed, u16_at};

/// A validated array block borrowed from a buffer.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct Array<'a> {
    block: &'a [u8],
    len: usize,
}

/// One step of the walk: the item at `pos` (`None` for a skipped empty item) and where
/// the next one starts.
fn item_at(block: &[u8], pos: usize, base: usize) -> Result<(Option<&[u8]>, usize), InvalidPacket> {
    let end = block.len();
    let remaining = end - pos;
    if remaining < 3 {
        return Err(InvalidPacket::TrailingBytes {
            offset: base + pos,
            len: remaining,
        });
    }
    let len = usize::from(u16_at(block, pos).unwrap_or(0));
    let start = pos + 2;
    if len == 0 {
        return Ok((None, start));
    }
    match bytes_at(block, start, len) {
        Some(item) => Ok((Some(item), start + len)),
        None => Err(InvalidPacket::ItemPastEnd {
            offset: base + start,
            len,
            end: base + end,
        }),
    }
}

impl<'a> Array<'a> {
    /// An empty array.
    pub const EMPTY: Array<'static> = Array { block: &[], len: 0 };

    /// Validates `block` as an array of at most `max_items` non-empty items.
    pub fn parse(block: &'a [u8], max_items: usize) -> Result<Self, InvalidPacket> {
        Self::parse_at(block, 0, max_items)
    }

    /// Like [`Array::parse`], with error offsets shifted by `base`.
    pub fn parse_at(block: &'a [u8], base: usize, max_items: usize) -> Result<Self, InvalidPacket> {
        if block.len() > MAX_DATASIZE {
            return Err(InvalidPacket::BlockTooLarge { len: block.len() });
        }
        let mut pos = 0;
        let mut len = 0;
        while pos < block.len() {
            let (item, next) = item_at(block, pos, base)?;
            if item.is_some() {
                len += 1;
                if len > max_items {
                    return Err(InvalidPacket::TooManyItems { max: max_items });
                }
            }
            pos = next;
        }
        Ok(Array { block, len })
    }

    /// The encoded block.
    pub fn as_bytes(&self) -> &'a [u8] {
        self.block
    }

    /// Number of non-empty items.
    pub fn len(&self) -> usize {
        self.len
    }

    /// `true` when there is no non-empty item.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The non-empty items in wire order.
    pub fn iter(&self) -> ArrayIter<'a> {
        ArrayIter {
            block: self.block,
            pos: 0,
            remaining: self.len,
        }
    }

    /// The first item (for RPC: the function name).
    pub fn first(&self) -> Option<&'a [u8]> {
        self.iter().next()
    }
}

impl std::fmt::Debug for Array<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list()
            .entries(self.iter().map(String::from_utf8_lossy))
            .finish()
    }
}

impl<'a> IntoIterator for Array<'a> {
    type Item = &'a [u8];
    type IntoIter = ArrayIter<'a>;
    fn into_iter(self) -> ArrayIter<'a> {
        self.iter()
    }
}

/// Iterator over the non-empty items of an [`Array`].
#[derive(Debug, Clone)]
pub struct ArrayIter<'a> {
    block: &'a [u8],
    pos: usize,
    remaining: usize,
}

impl<'a> Iterator for ArrayIter<'a> {
    type Item = &'a [u8];

    fn next(&mut self) -> Option<&'a [u8]> {
        while self.remaining > 0 {
            // Validated when the view was made: the walk cannot fail here.
            let (item, next) = item_at(self.block, self.pos, 0).ok()?;
            self.pos = next;
            if let Some(item) = item {
                self.remaining -= 1;
                return Some(item);
            }
        }
        None
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        (self.remaining, Some(self.remaining))
    }
}

impl ExactSizeIterator for ArrayIter<'_> {}

/// Builds an array block; items are 1..=65535 bytes and the block at most 65535.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ArrayBuilder {
    block: Vec<u8>,
    len: usize,
}

impl ArrayBuilder {
    /// An empty builder.
    pub fn new() -> Self {
        Self::default()
    }

    /// Appends one item, or refuses it (leaving the builder unchanged).
    pub fn push(&mut self, item: impl AsRef<[u8]>) -> Result<&mut Self, EncodeError> {
        let item = item.as_ref();
        if item.is_empty() {
            return Err(EncodeError::EmptyItem);
        }
        check_len(Field::Item, item.len(), MAX_DATASIZE)?;
        check_len(
            Field::Block,
            self.block.len() + 2 + item.len(),
            MAX_DATASIZE,
        )?;
        put_prefixed(&mut self.block, item);
        self.len += 1;
        Ok(self)
    }

    /// [`ArrayBuilder::push`] for chaining by value.
    pub fn with(mut self, item: impl AsRef<[u8]>) -> Result<Self, EncodeError> {
        self.push(item)?;
        Ok(self)
    }

    /// Builds an array from items, stopping at the first refused one.
    pub fn from_items<I: AsRef<[u8]>>(
        items: impl IntoIterator<Item = I>,
    ) -> Result<Self, EncodeError> {
        let mut builder = ArrayBuilder::new();
        for item in items {
            builder.push(item)?;
        }
        Ok(builder)
    }

    /// The block built so far, as a validated view.
    pub fn as_array(&self) -> Array<'_> {
        Array {
            block: &self.block,
            len: self.len,
        }
    }

    /// Number of items so far.
    pub fn len(&self) -> usize {
        self.len
    }

    /// `true` when no item was pushed.
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
    fn rpc_hello_a_b() {
        // spec §3.4
        let block = hex("0500 68656c6c6f 0100 61 0100 62");
        let arr = Array::parse(&block, 255).unwrap();
        assert_eq!(
            arr.iter().collect::<Vec<_>>(),
            vec![&b"hello"[..], b"a", b"b"]
        );
        let built = ArrayBuilder::from_items(["hello", "a", "b"]).unwrap();
        assert_eq!(built.as_array().as_bytes(), &block[..]);
    }

    #[test]
    fn empty_items_inside_are_skipped() {
        // leading empty item: uWSGI 1.4 still calls hello (spec Appendix A)
        let block = hex("0000 0500 68656c6c6f 0000 0100 61");
        let arr = Array::parse(&block, 255).unwrap();
        assert_eq!(arr.len(), 2);
        assert_eq!(arr.iter().collect::<Vec<_>>(), vec![&b"hello"[..], b"a"]);
    }

    #[test]
    fn trailing_empty_item_rejects_the_array() {
        let block = hex("0500 68656c6c6f 0000");
        assert_eq!(
            Array::parse(&block, 255).unwrap_err(),
            InvalidPacket::TrailingBytes { offset: 7, len: 2 }
        );
        assert_eq!(
            Array::parse(&hex("0100 61 07"), 255).unwrap_err(),
            InvalidPacket::TrailingBytes { offset: 3, len: 1 }
        );
        assert_eq!(
            Array::parse(&hex("0900 6162"), 255).unwrap_err(),
            InvalidPacket::ItemPastEnd {
                offset: 2,
                len: 9,
                end: 4
            }
        );
    }

    #[test]
    fn item_limit() {
        let block = ArrayBuilder::from_items(["a"; 256]).unwrap().into_block();
        assert_eq!(
            Array::parse(&block, 255).unwrap_err(),
            InvalidPacket::TooManyItems { max: 255 }
        );
        assert_eq!(Array::parse(&block, 256).unwrap().len(), 256);
    }

    #[test]
    fn builder_refuses_what_does_not_fit() {
        let mut b = ArrayBuilder::new();
        assert_eq!(b.push("").unwrap_err(), EncodeError::EmptyItem);
        b.push(vec![0u8; 65533]).unwrap();
        assert_eq!(
            b.push("x").unwrap_err(),
            EncodeError::TooLarge {
                what: Field::Block,
                len: 65538,
                max: 65535
            }
        );
        assert_eq!(b.len(), 1);
    }
}
