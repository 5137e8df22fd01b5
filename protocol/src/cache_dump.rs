//! The cache dump of uWSGI 2.0 (modifier1 111, modifier2 6; spec §6.1 "6 dump").
//!
//! A node asks another for a whole cache with `6f LLLL 06 | cache name` and gets back
//! `6f LLLL 07 | vars{items, blocksize}` followed by an *image*: the bytes of uWSGI's
//! shared cache mapping, as they are in memory. `LLLL` covers the vars only; the image
//! follows unannounced, and its length is not sent: the receiver computes it from **its
//! own** configuration, after checking that `items` and `blocksize` equal its own
//! (uWSGI exits when they differ). This module reads and writes that image.
//!
//! # The image (uWSGI 2.0, 64-bit little-endian builds)
//!
//! ```text
//! items × ( item header, 88 bytes | key area, keysize bytes )   the item table
//! blocks × blocksize bytes                                      the data area
//! ```
//!
//! The item header is eleven little-endian `u64`s, packed:
//!
//! | offset | field | meaning |
//! |---|---|---|
//! | 0 | flags | store flags; bit 0 ("ungettable") hides the item from reads |
//! | 8 | keysize | key length; **0 marks a free slot** |
//! | 16 | hash | the key's 32-bit hash (djb33x or murmur2, the cache's `hash=`) |
//! | 24 | valsize | value length |
//! | 32 | first_block | first data block of the value (item *i* owns block *i* without a bitmap) |
//! | 40 | expires | absolute unix time, 0 = never |
//! | 48 | hits | reads so far |
//! | 56 | prev | previous slot in the same hash bucket, 0 = first |
//! | 64 | next | next slot in the same hash bucket, 0 = last |
//! | 72 | lru_prev | previous slot in the LRU list |
//! | 80 | lru_next | next slot in the LRU list |
//!
//! followed by the key's bytes, zero-padded to `keysize`. Slot 0 is never used. The
//! value is the `valsize` bytes at `first_block × blocksize` of the data area (several
//! contiguous blocks in bitmap mode). The hash table, free-slot stack and block bitmap
//! are *not* in the image: a uWSGI receiver rebuilds its hash table from the items whose
//! `prev` is 0 (each the head of its bucket's chain, followed through `next`), so the
//! chains written here must be consistent with the receiver's `hash` and `hashsize`. It
//! does not rebuild its block bitmap (a uWSGI bug: after a sync, a bitmap cache may place
//! new values over the copied ones).
//!
//! The item table depends on nothing but the four numbers of [`DumpGeometry`], so the
//! image is reproducible by any implementation. Decoding never trusts a size in the
//! image: every key and value is checked against the geometry before it is sliced.

use crate::error::{DecodeError, EncodeError, Field, InvalidPacket};
use crate::header::{Header, Modifier1};
use crate::packet::{Reply, cache_op, strict_decimal};
use crate::vars::{Vars, VarsBuilder};

/// Size of uWSGI's packed item header (eleven `u64`s).
pub const ITEM_HEADER_LEN: usize = 88;

/// uWSGI's "ungettable" item flag: reads of the item miss.
pub const FLAG_UNGETTABLE: u64 = 1;

/// Largest `keysize` uWSGI accepts.
pub const MAX_KEYSIZE: u64 = 65535;

/// The four numbers that fix the image's layout. The receiver uses its own: `items` and
/// `blocksize` are checked against the reply's vars, `keysize` and `blocks` are trusted
/// (uWSGI sends neither).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DumpGeometry {
    items: u64,
    blocksize: u64,
    blocks: u64,
    keysize: u64,
    stride: usize,
    table_len: usize,
    image_len: usize,
}

impl DumpGeometry {
    /// The geometry of a cache with `items` slots, `blocks` blocks of `blocksize` bytes
    /// and keys of at most `keysize` bytes (uWSGI's `--cache2` numbers; `blocks` is
    /// `items` unless `blocks=` was given). `None` if uWSGI would refuse the cache
    /// (a zero, `blocks < items`, `keysize > 65535`) or the image is not addressable.
    pub fn new(items: u64, blocksize: u64, blocks: u64, keysize: u64) -> Option<Self> {
        if items == 0 || blocksize == 0 || blocks < items || keysize == 0 || keysize > MAX_KEYSIZE {
            return None;
        }
        let stride = ITEM_HEADER_LEN.checked_add(usize::try_from(keysize).ok()?)?;
        let table_len = stride.checked_mul(usize::try_from(items).ok()?)?;
        let data_len = usize::try_from(blocks.checked_mul(blocksize)?).ok()?;
        let image_len = table_len.checked_add(data_len)?;
        // Every offset must also fit the image's u64 fields and slicing arithmetic.
        if image_len > isize::MAX as usize {
            return None;
        }
        Some(DumpGeometry {
            items,
            blocksize,
            blocks,
            keysize,
            stride,
            table_len,
            image_len,
        })
    }

    /// Item slots (slot 0 is reserved).
    pub fn items(&self) -> u64 {
        self.items
    }

    /// Bytes per data block.
    pub fn blocksize(&self) -> u64 {
        self.blocksize
    }

    /// Data blocks.
    pub fn blocks(&self) -> u64 {
        self.blocks
    }

    /// Longest key.
    pub fn keysize(&self) -> u64 {
        self.keysize
    }

    /// Length of the image: uWSGI's `filesize`.
    pub fn image_len(&self) -> usize {
        self.image_len
    }
}

/// One stored item read from an image.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DumpItem<'a> {
    /// Its slot (1..items).
    pub slot: u64,
    /// The key.
    pub key: &'a [u8],
    /// The value.
    pub value: &'a [u8],
    /// Absolute unix expiry, 0 = never.
    pub expires: u64,
    /// Reads so far.
    pub hits: u64,
    /// uWSGI's store flags ([`FLAG_UNGETTABLE`] hides the item from reads).
    pub flags: u64,
}

/// A checked image: every used slot's key and value lie inside it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DumpImage<'a> {
    geometry: DumpGeometry,
    image: &'a [u8],
}

const FIELD_FLAGS: usize = 0;
const FIELD_KEYSIZE: usize = 1;
const FIELD_HASH: usize = 2;
const FIELD_VALSIZE: usize = 3;
const FIELD_FIRST_BLOCK: usize = 4;
const FIELD_EXPIRES: usize = 5;
const FIELD_HITS: usize = 6;
const FIELD_PREV: usize = 7;
const FIELD_NEXT: usize = 8;
const FIELD_LRU_PREV: usize = 9;
const FIELD_LRU_NEXT: usize = 10;

/// The eleven header fields at the start of `bytes` (nom, little-endian).
fn header_fields(bytes: &[u8]) -> Option<[u64; 11]> {
    use nom::Parser;
    use nom::multi::count;
    use nom::number::complete::le_u64;
    let parsed: nom::IResult<&[u8], Vec<u64>> = count(le_u64, 11).parse(bytes);
    parsed.ok()?.1.try_into().ok()
}

impl<'a> DumpImage<'a> {
    /// Checks the first `geometry.image_len()` bytes of `input` as an image.
    /// Fewer bytes is [`DecodeError::Incomplete`]; a used slot whose key is longer than
    /// `keysize` or whose value lies outside the data area is
    /// [`InvalidPacket::BadDumpItem`]. Returns the image and the bytes used.
    pub fn parse(input: &'a [u8], geometry: DumpGeometry) -> Result<(Self, usize), DecodeError> {
        let Some(image) = input.get(..geometry.image_len) else {
            return Err(DecodeError::incomplete(geometry.image_len - input.len()));
        };
        let dump = DumpImage { geometry, image };
        for slot in 1..geometry.items {
            dump.item(slot)?;
        }
        Ok((dump, geometry.image_len))
    }

    /// The geometry the image was read with.
    pub fn geometry(&self) -> DumpGeometry {
        self.geometry
    }

    /// The image's bytes.
    pub fn as_bytes(&self) -> &'a [u8] {
        self.image
    }

    /// The stored items, in slot order.
    pub fn items(&self) -> impl Iterator<Item = DumpItem<'a>> + '_ {
        (1..self.geometry.items).filter_map(|slot| self.item(slot).ok().flatten())
    }

    /// The item in `slot`: `None` when free, an error when it does not fit the geometry.
    fn item(&self, slot: u64) -> Result<Option<DumpItem<'a>>, InvalidPacket> {
        let g = &self.geometry;
        // slot < items, so these products are within the table (checked in `new`).
        let start = usize::try_from(slot)
            .unwrap_or(usize::MAX)
            .saturating_mul(g.stride);
        let bad = |what| InvalidPacket::BadDumpItem {
            slot,
            offset: start,
            what,
        };
        let entry = self
            .image
            .get(start..start.saturating_add(g.stride))
            .ok_or(bad("slot outside the item table"))?;
        let fields = header_fields(entry).ok_or(bad("short item header"))?;
        let keysize = fields[FIELD_KEYSIZE];
        if keysize == 0 {
            return Ok(None);
        }
        if keysize > g.keysize {
            return Err(bad("key longer than the keysize"));
        }
        let key_len = usize::try_from(keysize).map_err(|_| bad("key length"))?;
        let key = entry
            .get(ITEM_HEADER_LEN..ITEM_HEADER_LEN + key_len)
            .ok_or(bad("key outside its slot"))?;
        let data = &self.image[g.table_len..];
        let value = fields[FIELD_FIRST_BLOCK]
            .checked_mul(g.blocksize)
            .and_then(|offset| usize::try_from(offset).ok())
            .and_then(|offset| {
                let len = usize::try_from(fields[FIELD_VALSIZE]).ok()?;
                data.get(offset..offset.checked_add(len)?)
            })
            .ok_or(bad("value outside the data area"))?;
        Ok(Some(DumpItem {
            slot,
            key,
            value,
            expires: fields[FIELD_EXPIRES],
            hits: fields[FIELD_HITS],
            flags: fields[FIELD_FLAGS],
        }))
    }
}

/// Checks a dump reply's vars against the receiver's geometry as uWSGI does: an
/// `items` or `blocksize` var that is present must equal the receiver's (a missing one
/// is not checked; uWSGI always sends both).
pub fn check_vars(vars: &Vars<'_>, geometry: &DumpGeometry) -> Result<(), InvalidPacket> {
    for (key, expected) in [("items", geometry.items), ("blocksize", geometry.blocksize)] {
        let Some(value) = vars.get(key) else {
            continue;
        };
        let actual = strict_decimal(value).ok_or(InvalidPacket::BadNumber {
            what: "cache dump",
            key,
        })?;
        if actual != expected {
            return Err(InvalidPacket::DumpMismatch {
                what: key,
                expected,
                actual,
            });
        }
    }
    Ok(())
}

/// Decodes a whole dump reply (`6f LLLL 07 | vars | image`) for a receiver of
/// `geometry`: the header, the vars (checked with [`check_vars`]), then the image.
/// Returns the image and the bytes used; bytes after the image are left alone.
pub fn decode_reply(
    input: &[u8],
    geometry: DumpGeometry,
    max_vars: usize,
) -> Result<(DumpImage<'_>, usize), DecodeError> {
    let header = Header::parse(input)?;
    if header.modifier1 != Modifier1::Cache || header.modifier2 != cache_op::DUMP_REPLY {
        return Err(InvalidPacket::UnexpectedReply {
            modifier1: header.modifier1,
            modifier2: header.modifier2,
            expected: "cache dump",
        }
        .into());
    }
    let block_end = Header::LEN + usize::from(header.datasize);
    let Some(block) = input.get(Header::LEN..block_end) else {
        return Err(DecodeError::incomplete(block_end - input.len()));
    };
    let vars = Vars::parse_at(block, Header::LEN, max_vars)?;
    check_vars(&vars, &geometry)?;
    let (image, used) = DumpImage::parse(&input[block_end..], geometry).map_err(|e| match e {
        DecodeError::Incomplete { needed } => DecodeError::incomplete(needed),
        other => other,
    })?;
    Ok((image, block_end + used))
}

/// An item to write into an image.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DumpEntry<'a> {
    /// The key (1..=keysize bytes).
    pub key: &'a [u8],
    /// The value (1.. bytes; at most `blocksize`, or what fits the blocks in bitmap mode).
    pub value: &'a [u8],
    /// Absolute unix expiry, 0 = never.
    pub expires: u64,
    /// Reads so far.
    pub hits: u64,
}

/// How values are placed in the data area.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Placement {
    /// Item *i* owns block *i* (uWSGI's default); a value is at most `blocksize` bytes.
    SlotBlock,
    /// uWSGI's `bitmap=1`: a value takes as many contiguous blocks as it needs, laid
    /// out one after the other from block 0.
    Bitmap,
}

/// How an image is laid out beyond its geometry: the receiver's hash settings and the
/// sender's placement of values.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DumpLayout {
    /// Where values go.
    pub placement: Placement,
    /// Buckets of the receiver's hash table (uWSGI's `hashsize`, 65536 by default): the
    /// chains link items of the same `hash % hashsize`.
    pub hashsize: u64,
    /// Link the items into an LRU list in entry order (least recently used first), as a
    /// `purge_lru` cache does; without it the LRU fields are 0, as uWSGI leaves them.
    pub lru: bool,
}

/// Why an image could not be written.
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DumpEncodeError {
    /// More entries than `items - 1` slots.
    #[error("{count} items do not fit a cache of {slots} usable slots")]
    TooManyItems {
        /// Entries given.
        count: usize,
        /// `items - 1`.
        slots: u64,
    },
    /// A key is empty or longer than `keysize`.
    #[error("cache key of {len} bytes does not fit the keysize {max}")]
    BadKey {
        /// Its length.
        len: usize,
        /// The keysize.
        max: u64,
    },
    /// A value is empty or does not fit its block(s).
    #[error("cache value of {len} bytes does not fit the data area")]
    BadValue {
        /// Its length.
        len: usize,
    },
    /// The `hashsize` is 0.
    #[error("hashsize 0")]
    HashSize,
}

/// Writes the image of `entries` for `geometry`: entry *n* goes to slot *n + 1*; hash
/// chains are built with `hash` (the receiver's hash function: uWSGI's djb33x by
/// default) modulo `layout.hashsize`, in entry order; flags are 0.
pub fn encode_image(
    geometry: &DumpGeometry,
    layout: &DumpLayout,
    hash: &dyn Fn(&[u8]) -> u32,
    entries: &[DumpEntry<'_>],
) -> Result<Vec<u8>, DumpEncodeError> {
    let g = geometry;
    let DumpLayout {
        placement,
        hashsize,
        lru,
    } = *layout;
    let slots = g.items - 1;
    if u64::try_from(entries.len()).unwrap_or(u64::MAX) > slots {
        return Err(DumpEncodeError::TooManyItems {
            count: entries.len(),
            slots,
        });
    }
    if hashsize == 0 {
        return Err(DumpEncodeError::HashSize);
    }
    let blocksize = usize::try_from(g.blocksize).unwrap_or(usize::MAX);
    let mut image = vec![0u8; g.image_len];
    let (table, data) = image.split_at_mut(g.table_len);
    // Last slot of each bucket seen so far (sparse: only buckets in use).
    let mut tails: std::collections::HashMap<u64, u64> = std::collections::HashMap::new();
    let mut next_block: usize = 0;
    let count = entries.len() as u64;
    for (slot, entry) in (1u64..).zip(entries) {
        let key_len = entry.key.len();
        if key_len == 0 || key_len as u64 > g.keysize {
            return Err(DumpEncodeError::BadKey {
                len: key_len,
                max: g.keysize,
            });
        }
        let bad_value = DumpEncodeError::BadValue {
            len: entry.value.len(),
        };
        if entry.value.is_empty() {
            return Err(bad_value);
        }
        let first_block = match placement {
            Placement::SlotBlock if entry.value.len() <= blocksize => {
                usize::try_from(slot).map_err(|_| bad_value.clone())?
            }
            Placement::SlotBlock => return Err(bad_value),
            Placement::Bitmap => {
                let first = next_block;
                next_block = next_block.saturating_add(entry.value.len().div_ceil(blocksize));
                first
            }
        };
        let offset = first_block
            .checked_mul(blocksize)
            .ok_or(bad_value.clone())?;
        data.get_mut(offset..offset.saturating_add(entry.value.len()))
            .ok_or(bad_value)?
            .copy_from_slice(entry.value);

        let hash = u64::from(hash(entry.key));
        let bucket = hash % hashsize;
        let prev = tails.insert(bucket, slot).unwrap_or(0);
        let start = usize::try_from(slot).unwrap_or(usize::MAX) * g.stride;
        if prev != 0 {
            let prev_start = usize::try_from(prev).unwrap_or(usize::MAX) * g.stride;
            put_field(table, prev_start, FIELD_NEXT, slot);
        }
        put_field(table, start, FIELD_KEYSIZE, key_len as u64);
        put_field(table, start, FIELD_HASH, hash);
        put_field(table, start, FIELD_VALSIZE, entry.value.len() as u64);
        put_field(table, start, FIELD_FIRST_BLOCK, first_block as u64);
        put_field(table, start, FIELD_EXPIRES, entry.expires);
        put_field(table, start, FIELD_HITS, entry.hits);
        put_field(table, start, FIELD_PREV, prev);
        if lru {
            put_field(table, start, FIELD_LRU_PREV, slot - 1);
            put_field(
                table,
                start,
                FIELD_LRU_NEXT,
                if slot < count { slot + 1 } else { 0 },
            );
        }
        let key_at = start + ITEM_HEADER_LEN;
        table[key_at..key_at + key_len].copy_from_slice(entry.key);
    }
    Ok(image)
}

fn put_field(table: &mut [u8], start: usize, field: usize, value: u64) {
    let at = start + field * 8;
    if let Some(bytes) = table.get_mut(at..at + 8) {
        bytes.copy_from_slice(&value.to_le_bytes());
    }
}

/// The dump request for cache `name` (`6f LLLL 06 | name`; uWSGI always names the
/// cache, `default` for the `--cache` one).
pub fn encode_request(name: &[u8]) -> Result<Vec<u8>, EncodeError> {
    crate::error::check_len(Field::Payload, name.len(), crate::MAX_DATASIZE)?;
    let len = u16::try_from(name.len()).unwrap_or(u16::MAX);
    let mut out = Vec::with_capacity(Header::LEN + name.len());
    out.extend_from_slice(&Header::new(Modifier1::Cache, len, cache_op::DUMP).to_bytes());
    out.extend_from_slice(name);
    Ok(out)
}

/// The vars of a dump reply: `items` and `blocksize` in decimal, as uWSGI sends them.
pub fn reply_vars(geometry: &DumpGeometry) -> VarsBuilder {
    let mut vars = VarsBuilder::new();
    // Two short pairs always fit a block.
    let _ = vars.push("items", geometry.items.to_string());
    let _ = vars.push("blocksize", geometry.blocksize.to_string());
    vars
}

/// A whole dump reply: header, vars and `image`.
pub fn encode_reply(geometry: &DumpGeometry, image: &[u8]) -> Vec<u8> {
    let vars = reply_vars(geometry);
    let mut out = Vec::with_capacity(Header::LEN + vars.block_len() + image.len());
    Reply::CacheDump {
        vars: vars.as_vars(),
        image,
    }
    .encode(&mut out);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// uWSGI's djb33x (the default cache hash).
    fn djb33x(key: &[u8]) -> u32 {
        key.iter().fold(5381u32, |h, &c| {
            h.wrapping_mul(33) ^ (c as i8 as i32 as u32)
        })
    }

    fn layout(placement: Placement, hashsize: u64) -> DumpLayout {
        DumpLayout {
            placement,
            hashsize,
            lru: true,
        }
    }

    fn entries() -> Vec<DumpEntry<'static>> {
        vec![
            DumpEntry {
                key: b"k1",
                value: b"v1",
                expires: 0,
                hits: 0,
            },
            DumpEntry {
                key: b"key2",
                value: b"value-two",
                expires: 0,
                hits: 3,
            },
            DumpEntry {
                key: b"exp",
                value: b"soon",
                expires: 1_795_598_227,
                hits: 0,
            },
        ]
    }

    #[test]
    fn geometry_matches_uwsgi_filesize() {
        let g = DumpGeometry::new(4, 16, 4, 16).unwrap();
        // uWSGI: "key: 104 bytes, keys: 416 bytes, data: 64 bytes".
        assert_eq!(g.image_len(), 416 + 64);
        assert!(DumpGeometry::new(0, 16, 4, 16).is_none());
        assert!(DumpGeometry::new(4, 16, 3, 16).is_none());
        assert!(DumpGeometry::new(4, 16, 4, 65536).is_none());
        assert!(DumpGeometry::new(u64::MAX, u64::MAX, u64::MAX, 1).is_none());
    }

    #[test]
    fn round_trip_slot_blocks() {
        let g = DumpGeometry::new(4, 16, 4, 16).unwrap();
        let image = encode_image(
            &g,
            &layout(Placement::SlotBlock, 65536),
            &djb33x,
            &entries(),
        )
        .unwrap();
        let (dump, used) = DumpImage::parse(&image, g).unwrap();
        assert_eq!(used, image.len());
        let got: Vec<_> = dump
            .items()
            .map(|i| (i.key, i.value, i.expires, i.hits))
            .collect();
        let want: Vec<_> = entries()
            .iter()
            .map(|e| (e.key, e.value, e.expires, e.hits))
            .collect();
        assert_eq!(got, want);
        // The hash of "k1" as uWSGI 2.0.30 stored it (tests/vectors/cache-dump).
        assert_eq!(djb33x(b"k1"), 5_861_311);
    }

    #[test]
    fn round_trip_bitmap_and_chains() {
        let g = DumpGeometry::new(4, 8, 8, 8).unwrap();
        let list = [
            DumpEntry {
                key: b"a",
                value: b"0123456789abc",
                expires: 0,
                hits: 0,
            },
            DumpEntry {
                key: b"b",
                value: b"x",
                expires: 7,
                hits: 0,
            },
        ];
        // hashsize 1: every key in one bucket, chained 1 -> 2.
        let image = encode_image(&g, &layout(Placement::Bitmap, 1), &djb33x, &list).unwrap();
        let (dump, _) = DumpImage::parse(&image, g).unwrap();
        let items: Vec<_> = dump.items().collect();
        assert_eq!(items.len(), 2);
        assert_eq!(items[0].value, b"0123456789abc");
        assert_eq!(items[1].value, b"x");
        let field = |slot: usize, f: usize| {
            let at = slot * (88 + 8) + f * 8;
            u64::from_le_bytes(image[at..at + 8].try_into().unwrap())
        };
        assert_eq!((field(1, FIELD_PREV), field(1, FIELD_NEXT)), (0, 2));
        assert_eq!((field(2, FIELD_PREV), field(2, FIELD_NEXT)), (1, 0));
        assert_eq!(field(2, FIELD_FIRST_BLOCK), 2);
        assert_eq!((field(1, FIELD_LRU_PREV), field(1, FIELD_LRU_NEXT)), (0, 2));
    }

    #[test]
    fn encode_refuses_what_does_not_fit() {
        let g = DumpGeometry::new(2, 4, 2, 2).unwrap();
        let big = [DumpEntry {
            key: b"k",
            value: b"12345",
            expires: 0,
            hits: 0,
        }];
        assert!(encode_image(&g, &layout(Placement::SlotBlock, 1), &djb33x, &big).is_err());
        let long = [DumpEntry {
            key: b"kkk",
            value: b"1",
            expires: 0,
            hits: 0,
        }];
        assert!(encode_image(&g, &layout(Placement::SlotBlock, 1), &djb33x, &long).is_err());
        let two = [long[0], long[0]];
        assert!(encode_image(&g, &layout(Placement::SlotBlock, 1), &djb33x, &two).is_err());
        let bitmap = [DumpEntry {
            key: b"k",
            value: b"123456789",
            expires: 0,
            hits: 0,
        }];
        assert!(encode_image(&g, &layout(Placement::Bitmap, 1), &djb33x, &bitmap).is_err());
    }

    #[test]
    fn decode_refuses_items_outside_the_geometry() {
        let g = DumpGeometry::new(2, 4, 2, 2).unwrap();
        let mut image = vec![0u8; g.image_len()];
        let slot1 = 90;
        image[slot1 + 8] = 3; // keysize 3 > 2
        assert!(matches!(
            DumpImage::parse(&image, g),
            Err(DecodeError::Invalid(InvalidPacket::BadDumpItem {
                slot: 1,
                ..
            }))
        ));
        image[slot1 + 8] = 1;
        image[slot1 + 24] = 5; // valsize 5 at block 0: past the 8-byte data area? no: 5 fits
        image[slot1 + 32] = 1; // first block 1: bytes 4..9 of 8
        assert!(DumpImage::parse(&image, g).is_err());
        image[slot1 + 32] = 0;
        assert_eq!(DumpImage::parse(&image, g).unwrap().0.items().count(), 1);
        image[slot1 + 32..slot1 + 40].copy_from_slice(&u64::MAX.to_le_bytes());
        assert!(DumpImage::parse(&image, g).is_err());
    }

    #[test]
    fn every_prefix_is_incomplete_and_vars_are_checked() {
        let g = DumpGeometry::new(3, 4, 3, 2).unwrap();
        let list = [DumpEntry {
            key: b"k",
            value: b"v",
            expires: 0,
            hits: 0,
        }];
        let image = encode_image(&g, &layout(Placement::SlotBlock, 65536), &djb33x, &list).unwrap();
        let reply = encode_reply(&g, &image);
        let (dump, used) = decode_reply(&reply, g, 128).unwrap();
        assert_eq!(used, reply.len());
        assert_eq!(dump.items().count(), 1);
        for end in 0..reply.len() {
            assert!(
                decode_reply(&reply[..end], g, 128)
                    .unwrap_err()
                    .is_incomplete()
            );
        }
        let other = DumpGeometry::new(4, 4, 4, 2).unwrap();
        assert_eq!(
            decode_reply(&reply, other, 128).unwrap_err(),
            DecodeError::Invalid(InvalidPacket::DumpMismatch {
                what: "items",
                expected: 4,
                actual: 3
            })
        );
        assert_eq!(encode_request(b"c").unwrap(), b"\x6f\x01\x00\x06c");
    }
}
