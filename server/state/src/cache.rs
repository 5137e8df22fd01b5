//! uWSGI's cache ("cache2", spec §6.4): fixed-size key/value stores preallocated at start,
//! shared by every worker, reached locally (`uwsgi.cache_*`) and over the network
//! (modifier1 111, §6.1–§6.2).
//!
//! # Semantics (uWSGI 2.0, `core/cache.c`)
//!
//! * A cache has `items` item slots; slot 0 is reserved, so **`items - 1` keys fit**.
//! * Keys are 1..=`keysize` bytes (default 2048); values 1..=`max_item_size` bytes, where
//!   `max_item_size` is `blocksize` (default 65536), or `blocksize × blocks` in bitmap mode
//!   (a value then spans several contiguous blocks). Empty values are refused.
//! * [`Cache::set`] **fails if the key exists**; [`Cache::update`] overwrites (or creates).
//! * Expiry is given in seconds relative to `now` (0 = never) and stored absolute. An
//!   update replaces the expiry with the one given — including 0, which makes the item
//!   immortal (2.0 behaviour; 1.4 kept the old expiry when 0 was passed).
//! * **Reads do not check expiry**: an expired item stays readable until
//!   [`Cache::sweep_expired`] (uWSGI's sweeper thread, every `--cache-expire-freq`
//!   seconds, default 3) removes it, unless the cache has `lazy_expire`, in which case any
//!   lookup of an expired item deletes it and reports a miss. Caches with `purge_lru`,
//!   `lazy_expire` or `no_expire` are skipped by the sweeper, as in uWSGI.
//! * When the cache is full: `purge_lru` evicts the least recently used item,
//!   `sweep_on_full=N` sweeps expired items (at most every N seconds), `clear_on_full`
//!   empties the cache (unless the sweep freed something); then the store is retried once.
//!   Otherwise the store fails with [`CacheError::Full`].
//! * Every time a store finds the cache full the `full` counter grows and, unless the
//!   cache has `ignore_full`, a line goes to the logger installed with
//!   [`Caches::set_full_logger`]: uWSGI's `*** DANGER cache "NAME" is FULL !!! ***`
//!   (`LRU item will be purged from cache "NAME"` with `purge_lru`), followed by the
//!   count so far. uWSGI logs every occurrence; here a process logs at most one line per
//!   cache per second ([`FULL_LOG_INTERVAL`]), so a flood of sets cannot fill the log.
//!   A key or value too large for the cache is not "full" (uWSGI neither logs nor counts
//!   it): the store fails with its own error.
//! * Numbers (`cache_inc/dec/mul/div/num`): 8-byte signed integers in native byte order.
//!   A missing key is created from `math_initial` (default 0) and the operation applied;
//!   an existing value's first 8 bytes are the operand, the stored length becomes 8, and
//!   the expiry is left untouched. Division by zero stores 0. Arithmetic wraps.
//! * Key order of [`Cache::keys`] is uWSGI's: hash-bucket order, then insertion order
//!   within a bucket, with uWSGI's hash functions (djb33x by default, or murmur2), so the
//!   same keys list in the same order.
//!
//! # Memory layout
//!
//! Each cache is one shared mapping ([`SharedMutex`]) created with the cache, before the
//! workers fork, so every worker sees the same items: a value set by worker 1 is read by
//! worker 2. Its area is cut into regions at offsets computed from the geometry alone,
//! each on a 64-byte boundary: the scalars (free-stack depth, bitmap cursor, LRU ends,
//! item count, counters), an item table of fixed-size headers, a bucket table of
//! `hashsize` slot numbers (0 = empty), a stack of free slots, in bitmap mode one bit per
//! block, a key area of `items × keysize` bytes and a data area of `blocks × blocksize`
//! bytes (`items` blocks without a bitmap: item *i* owns block *i*). There are no
//! pointers and no per-item allocation: hash chains and the LRU list are slot numbers, so
//! the arena means the same in every process. The regions are checked once against the
//! mapping and viewed as typed slices under the lock; values are copied out under it.
//! The mapping is zero-filled and touched lazily, like uWSGI's anonymous `mmap`.
//!
//! A process that dies holding a cache's lock (SIGKILL, harakiri) does not wedge the
//! others: the next locker takes the lock over, validates the whole arena
//! (counts, free stack, chains, hashes, blocks, LRU list) and **clears the cache** if
//! the dead process left it inconsistent ([`Cache::recovery_stats`]).
//!
//! # Limits
//!
//! | what | limit |
//! |---|---|
//! | items | 1..; `items - 1` usable |
//! | keysize | 1..=65535 (default 2048) |
//! | blocksize | ≥ 1 (default 65536) |
//! | blocks | ≥ items (default items; only used in bitmap mode) |
//! | hashsize | ≥ 1 (default 65536) |
//! | arena | the total size must be addressable; a mapping the kernel refuses is reported as [`CacheConfigError::TooLarge`] |
//!
//! # Differences from uWSGI (all deliberate, see docs/server-state.md)
//!
//! * Numbers read from a value shorter than 8 bytes are zero-padded (uWSGI reads stale
//!   bytes of the block).
//! * With `purge_lru`, expiries are stored absolute like everywhere else (uWSGI stores the
//!   relative number as if it were a date).
//! * In bitmap mode an update may reuse its own blocks (uWSGI needs room for the new value
//!   beside the old one); an update that still does not fit fails with `Full` without
//!   evicting anything (uWSGI's full handler could evict the item being updated).
//! * Empty cache names and duplicate names are refused; numbers in `--cache2` must be
//!   decimal (uWSGI reads a numeric prefix, or 0).

use std::sync::Arc;

use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout};

use super::cache_sync::{Replicator, SyncLogger};
use super::options::{self, NumberError};
use super::shm::{Region, RegionSet, SharedGuard, SharedMutex};

/// Default `blocksize` (uWSGI's `UMAX16`).
pub const DEFAULT_BLOCKSIZE: u64 = 65536;
/// Default `keysize`.
pub const DEFAULT_KEYSIZE: u64 = 2048;
/// Largest `keysize` uWSGI accepts (`keysize >= 65536` is refused).
pub const MAX_KEYSIZE: u64 = 65535;
/// Default number of hash buckets (2.0; 1.4 used 65535).
pub const DEFAULT_HASHSIZE: u64 = 65536;
/// Name of the cache created by the legacy `--cache N` option.
pub const DEFAULT_CACHE_NAME: &str = "default";
/// Size of the numbers handled by `cache_inc/dec/mul/div/num`.
pub const NUMBER_LEN: usize = 8;

/// The hash function that places keys in buckets (`hash=` of `--cache2`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum HashAlgorithm {
    /// Bernstein's hash with XOR, uWSGI's default.
    #[default]
    Djb33x,
    /// MurmurHash2 as adapted by nginx and uWSGI.
    Murmur2,
}

impl HashAlgorithm {
    /// Parses uWSGI's name for the algorithm.
    pub fn from_name(name: &str) -> Option<Self> {
        match name {
            "djb33x" => Some(HashAlgorithm::Djb33x),
            "murmur2" => Some(HashAlgorithm::Murmur2),
            _ => None,
        }
    }

    /// Hashes `key` exactly as uWSGI does on x86 (where `char` is signed).
    pub fn hash(self, key: &[u8]) -> u32 {
        match self {
            HashAlgorithm::Djb33x => djb33x(key),
            HashAlgorithm::Murmur2 => murmur2(key),
        }
    }
}

/// A byte as C's signed `char` promoted to `int`, then seen as `uint32_t`.
fn signed_char(byte: u8) -> u32 {
    u32::from_ne_bytes(i32::from(i8::from_ne_bytes([byte])).to_ne_bytes())
}

fn djb33x(key: &[u8]) -> u32 {
    key.iter().fold(5381u32, |hash, &byte| {
        (hash << 5).wrapping_add(hash) ^ signed_char(byte)
    })
}

fn murmur2(key: &[u8]) -> u32 {
    const M: u32 = 0x5bd1_e995;
    // uWSGI seeds with the length narrowed to 32 bits.
    let mut h = u32::try_from(key.len() & 0xffff_ffff).unwrap_or(0);
    let mut chunks = key.chunks_exact(4);
    for chunk in &mut chunks {
        let mut k = <[u8; 4]>::try_from(chunk).map_or(0, u32::from_le_bytes);
        k = k.wrapping_mul(M);
        k ^= k >> 24;
        k = k.wrapping_mul(M);
        h = h.wrapping_mul(M);
        h ^= k;
    }
    let tail_len = chunks.remainder().len();
    // uWSGI's tail reads `key[0..3]` — the *start* of the key, not the bytes left after
    // the 4-byte blocks (it advanced another pointer). Reproduced, as it decides the
    // bucket of every key whose length is not a multiple of 4.
    let byte = |i: usize| signed_char(key.get(i).copied().unwrap_or(0));
    if tail_len >= 3 {
        h ^= byte(2) << 16;
    }
    if tail_len >= 2 {
        h ^= byte(1) << 8;
    }
    if tail_len >= 1 {
        h ^= byte(0);
        h = h.wrapping_mul(M);
    }
    h ^= h >> 13;
    h = h.wrapping_mul(M);
    h ^= h >> 15;
    h
}

/// One cache's settings, named after `--cache2` keys.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CacheConfig {
    /// `name`: how callers pick the cache (`cache` var, Python `cache` argument).
    pub name: String,
    /// `items` (also `max_items`, `maxitems`): item slots, slot 0 reserved.
    pub items: u64,
    /// `blocksize`: bytes per block.
    pub blocksize: u64,
    /// `blocks`: data blocks; defaults to `items`; must not be fewer.
    pub blocks: u64,
    /// `keysize` (also `key_size`): longest key.
    pub keysize: u64,
    /// `hash`: bucket hash function.
    pub hash: HashAlgorithm,
    /// `hashsize` (also `hash_size`): number of buckets.
    pub hashsize: u64,
    /// `bitmap`: values may span several contiguous blocks.
    pub bitmap: bool,
    /// `purge_lru` (also `lru`): evict the least recently used item when full.
    pub purge_lru: bool,
    /// `lazy_expire` (also `lazy`): lookups delete expired items.
    pub lazy_expire: bool,
    /// `math_initial`: the starting value of a number created by `inc/dec/mul/div`.
    pub math_initial: i64,
    /// `ignore_full`: do not log when full (uWSGI only changes logging).
    pub ignore_full: bool,
    /// `clear_on_full`: empty the cache when it is full.
    pub clear_on_full: bool,
    /// `sweep_on_full`: when full, sweep expired items, at most every this many seconds
    /// (0 = off).
    pub sweep_on_full: u64,
    /// `no_expire`: the sweeper skips this cache.
    pub no_expire: bool,
    /// `store`: backing file (carried for the caller; not implemented by this module).
    pub store: Option<String>,
    /// `store_sync` (also `storesync`): msync period in master cycles (carried only).
    pub store_sync: Option<u64>,
    /// `store_delete` (also `storedelete`): remove a store file of the wrong size
    /// (carried only).
    pub store_delete: bool,
    /// `nodes` (also `node`): UDP peers every successful write is replicated to,
    /// `;`-separated `HOST:PORT` (see [`crate::cache_sync`]).
    pub nodes: Vec<String>,
    /// `sync`: nodes to copy the cache from at start (their dump, modifier2 6),
    /// `;`-separated, tried in order; the server runs the copy.
    pub sync: Vec<String>,
    /// `udp` (also `udp_servers`, …): addresses receiving replication, bound and served
    /// by the server (see [`crate::cache_sync`]).
    pub udp_servers: Vec<String>,
    /// `lastmod`: track the last modification time (carried only).
    pub last_modified: bool,
    /// Keys of the option string that uWSGI does not know; uWSGI ignores them silently,
    /// they are kept here so the caller can warn.
    pub ignored_keys: Vec<String>,
}

/// Why a cache configuration was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CacheConfigError {
    /// `name` missing or empty.
    #[error("you have to specify a cache name")]
    MissingName,
    /// `items` missing or 0.
    #[error("cache \"{0}\": you have to specify the maximum number of cache items")]
    MissingItems(String),
    /// A number that is not one.
    #[error("cache option: {0}")]
    Number(#[from] NumberError),
    /// `blocksize` 0.
    #[error("invalid cache blocksize for \"{0}\"")]
    InvalidBlocksize(String),
    /// `blocks` 0 or fewer than `items`.
    #[error(
        "invalid number of cache blocks for \"{name}\": {blocks}, must be at least items ({items})"
    )]
    InvalidBlocks {
        /// Cache name.
        name: String,
        /// Blocks asked for.
        blocks: u64,
        /// Items asked for.
        items: u64,
    },
    /// `keysize` 0 or above 65535.
    #[error("invalid cache keysize for \"{name}\": {keysize} (1..=65535)")]
    InvalidKeysize {
        /// Cache name.
        name: String,
        /// Keysize asked for.
        keysize: u64,
    },
    /// `hashsize` 0.
    #[error("invalid cache hashsize for \"{0}\"")]
    InvalidHashsize(String),
    /// `hash` names an unknown function.
    #[error("invalid cache hash for \"{name}\": {hash:?} (djb33x or murmur2)")]
    InvalidHash {
        /// Cache name.
        name: String,
        /// The name given.
        hash: String,
    },
    /// The arena does not fit in memory.
    #[error("cache \"{name}\" needs {bytes} bytes, which cannot be allocated")]
    TooLarge {
        /// Cache name.
        name: String,
        /// Bytes needed (saturated at `u64::MAX`).
        bytes: u64,
    },
    /// Two caches with the same name.
    #[error("duplicate cache name \"{0}\"")]
    DuplicateName(String),
    /// A `nodes` entry that is not an address, or the sending socket could not be opened.
    #[error("cache \"{name}\": {error}")]
    InvalidNode {
        /// Cache name.
        name: String,
        /// What is wrong.
        error: crate::cache_sync::NodeError,
    },
}

impl CacheConfig {
    /// A cache named `name` with `items` slots and every other setting at uWSGI's default.
    pub fn new(name: impl Into<String>, items: u64) -> Self {
        CacheConfig {
            name: name.into(),
            items,
            blocksize: DEFAULT_BLOCKSIZE,
            blocks: items,
            keysize: DEFAULT_KEYSIZE,
            hash: HashAlgorithm::Djb33x,
            hashsize: DEFAULT_HASHSIZE,
            bitmap: false,
            purge_lru: false,
            lazy_expire: false,
            math_initial: 0,
            ignore_full: false,
            clear_on_full: false,
            sweep_on_full: 0,
            no_expire: false,
            store: None,
            store_sync: None,
            store_delete: false,
            nodes: Vec::new(),
            sync: Vec::new(),
            udp_servers: Vec::new(),
            last_modified: false,
            ignored_keys: Vec::new(),
        }
    }

    /// The cache of the legacy options `--cache N` and `--cache-blocksize B`: named
    /// `default`, `blocksize` 65536 unless given (0 also means the default, as in uWSGI).
    pub fn legacy(items: u64, blocksize: Option<u64>) -> Self {
        let mut config = CacheConfig::new(DEFAULT_CACHE_NAME, items);
        if let Some(size) = blocksize.filter(|&size| size > 0) {
            config.blocksize = size;
        }
        config
    }

    /// Parses the value of one `--cache2` option, e.g.
    /// `name=foo,items=100,blocksize=4096,keysize=128,bitmap=1,purge_lru=1`, and
    /// validates it.
    pub fn from_cache2_option(option: &str) -> Result<Self, CacheConfigError> {
        let mut name = None;
        let mut items = None;
        let mut blocks = None;
        let mut config = CacheConfig::new("", 0);
        let list = |value: &str| -> Vec<String> {
            value
                .split(';')
                .filter(|part| !part.is_empty())
                .map(str::to_owned)
                .collect()
        };
        for kv in options::parse_kvlist(option) {
            let (key, value) = (kv.key.as_str(), kv.value.as_str());
            match key {
                "name" => name = Some(kv.value.clone()),
                "items" | "max_items" | "maxitems" => items = Some(options::parse_u64(key, value)?),
                "blocksize" => config.blocksize = options::parse_u64(key, value)?,
                "blocks" => blocks = Some(options::parse_u64(key, value)?),
                "hash" => {
                    config.hash = HashAlgorithm::from_name(value).ok_or_else(|| {
                        CacheConfigError::InvalidHash {
                            name: name.clone().unwrap_or_default(),
                            hash: kv.value.clone(),
                        }
                    })?;
                }
                "hashsize" | "hash_size" => config.hashsize = options::parse_u64(key, value)?,
                "keysize" | "key_size" => config.keysize = options::parse_u64(key, value)?,
                "store" => config.store = Some(kv.value.clone()),
                "store_sync" | "storesync" => {
                    config.store_sync = Some(options::parse_u64(key, value)?)
                }
                "store_delete" | "storedelete" => config.store_delete = options::parse_flag(value),
                "node" | "nodes" => config.nodes = list(value),
                "sync" => config.sync = list(value),
                "udp" | "udp_servers" | "udp_server" | "udpservers" | "udpserver" => {
                    config.udp_servers = list(value);
                }
                "bitmap" => config.bitmap = options::parse_flag(value),
                "lastmod" => config.last_modified = options::parse_flag(value),
                "math_initial" => config.math_initial = options::parse_i64(key, value)?,
                "ignore_full" => config.ignore_full = options::parse_flag(value),
                "purge_lru" | "lru" => config.purge_lru = options::parse_flag(value),
                "lazy_expire" | "lazy" => config.lazy_expire = options::parse_flag(value),
                "sweep_on_full" => config.sweep_on_full = options::parse_u64(key, value)?,
                "clear_on_full" => config.clear_on_full = options::parse_flag(value),
                "no_expire" => config.no_expire = options::parse_flag(value),
                _ => config.ignored_keys.push(kv.key.clone()),
            }
        }
        config.name = name
            .filter(|n| !n.is_empty())
            .ok_or(CacheConfigError::MissingName)?;
        config.items = items
            .filter(|&n| n > 0)
            .ok_or_else(|| CacheConfigError::MissingItems(config.name.clone()))?;
        config.blocks = blocks.unwrap_or(config.items);
        config.validate()?;
        Ok(config)
    }

    /// Checks the settings as uWSGI does at start.
    pub fn validate(&self) -> Result<(), CacheConfigError> {
        if self.name.is_empty() {
            return Err(CacheConfigError::MissingName);
        }
        if self.items == 0 {
            return Err(CacheConfigError::MissingItems(self.name.clone()));
        }
        if self.blocksize == 0 {
            return Err(CacheConfigError::InvalidBlocksize(self.name.clone()));
        }
        if self.blocks == 0 || self.blocks < self.items {
            return Err(CacheConfigError::InvalidBlocks {
                name: self.name.clone(),
                blocks: self.blocks,
                items: self.items,
            });
        }
        if self.keysize == 0 || self.keysize > MAX_KEYSIZE {
            return Err(CacheConfigError::InvalidKeysize {
                name: self.name.clone(),
                keysize: self.keysize,
            });
        }
        if self.hashsize == 0 {
            return Err(CacheConfigError::InvalidHashsize(self.name.clone()));
        }
        Geometry::of(self).map(|_| ())
    }

    /// Largest value: `blocksize`, or `blocksize × blocks` in bitmap mode.
    pub fn max_item_size(&self) -> u64 {
        if self.bitmap {
            self.blocksize.saturating_mul(self.blocks)
        } else {
            self.blocksize
        }
    }

    /// Number of keys the cache can hold: `items - 1` (slot 0 is reserved).
    pub fn capacity(&self) -> u64 {
        self.items.saturating_sub(1)
    }
}

/// The sizes of a cache, converted to `usize` and checked once.
#[derive(Debug, Clone, Copy)]
struct Geometry {
    items: usize,
    keysize: usize,
    blocksize: usize,
    blocks: usize,
    hashsize: usize,
    bitmap: bool,
}

/// Every region of the arena starts on a cache line.
const REGION_ALIGN: usize = 64;

/// Where each region of a cache's arena lies in its shared area, in bytes from the
/// start; computed from the geometry alone, so every process agrees.
#[derive(Debug, Clone, Copy)]
struct Layout {
    headers: usize,
    buckets: usize,
    free_slots: usize,
    bitmap: usize,
    keys: usize,
    data: usize,
    total: usize,
}

impl Layout {
    /// `None` when the sizes overflow `usize`.
    fn of(geometry: &Geometry) -> Option<Layout> {
        let word = std::mem::size_of::<usize>();
        // Each region's start, then its length; `next` rounds up to REGION_ALIGN.
        let next = |start: usize, len: usize| -> Option<usize> {
            start
                .checked_add(len)?
                .checked_next_multiple_of(REGION_ALIGN)
        };
        let headers = std::mem::size_of::<Meta>().next_multiple_of(REGION_ALIGN);
        let buckets = next(
            headers,
            geometry
                .items
                .checked_mul(std::mem::size_of::<ItemHeader>())?,
        )?;
        let free_slots = next(buckets, geometry.hashsize.checked_mul(word)?)?;
        let bitmap = next(free_slots, geometry.items.checked_mul(word)?)?;
        let bitmap_len = if geometry.bitmap {
            geometry.blocks.div_ceil(8)
        } else {
            0
        };
        let keys = next(bitmap, bitmap_len)?;
        let data = next(keys, geometry.items.checked_mul(geometry.keysize)?)?;
        let total = data.checked_add(geometry.blocks.checked_mul(geometry.blocksize)?)?;
        Some(Layout {
            headers,
            buckets,
            free_slots,
            bitmap,
            keys,
            data,
            total,
        })
    }
}

impl Geometry {
    fn of(config: &CacheConfig) -> Result<Self, CacheConfigError> {
        let too_large = |bytes: u64| CacheConfigError::TooLarge {
            name: config.name.clone(),
            bytes,
        };
        let size = |n: u64| usize::try_from(n).map_err(|_| too_large(n));
        // Without a bitmap item i owns block i, so only `items` blocks are ever used.
        let blocks = if config.bitmap {
            config.blocks
        } else {
            config.items
        };
        let geometry = Geometry {
            items: size(config.items)?,
            keysize: size(config.keysize)?,
            blocksize: size(config.blocksize)?,
            blocks: size(blocks)?,
            hashsize: size(config.hashsize)?,
            bitmap: config.bitmap,
        };
        // The whole arena must be addressable: at most isize::MAX bytes.
        let limit = usize::try_from(isize::MAX).unwrap_or(usize::MAX);
        match Layout::of(&geometry) {
            Some(layout) if layout.total <= limit => Ok(geometry),
            Some(layout) => Err(too_large(u64::try_from(layout.total).unwrap_or(u64::MAX))),
            None => Err(too_large(u64::MAX)),
        }
    }

    /// The bucket of a hash: `hash % hashsize` as in uWSGI, with a mask when `hashsize`
    /// is a power of two (the default 65536), which gives the same bucket without a
    /// division on every lookup.
    #[inline]
    fn bucket_of(&self, hash: u32) -> usize {
        let hash = usize::try_from(hash).unwrap_or(0);
        if self.hashsize.is_power_of_two() {
            hash & (self.hashsize - 1)
        } else {
            hash % self.hashsize
        }
    }

    /// Blocks needed for a value of `len` bytes (at least one).
    fn blocks_for(&self, len: usize) -> usize {
        len.div_ceil(self.blocksize).max(1)
    }

    /// The arena's layout; [`Geometry::of`] checked that it exists.
    fn layout(&self) -> Layout {
        Layout::of(self).unwrap_or(Layout {
            headers: 0,
            buckets: 0,
            free_slots: 0,
            bitmap: 0,
            keys: 0,
            data: 0,
            total: usize::MAX,
        })
    }
}

/// Why a cache operation failed. Every failure of uWSGI's `cache_set2`/`cache_del2` has a
/// variant; over the network uWSGI answers none of them (the connection just closes), and
/// the Python functions return `None` (1.4 raised `ValueError` for a too-large value).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CacheError {
    /// The key is empty.
    #[error("empty cache key")]
    EmptyKey,
    /// The key is longer than `keysize`.
    #[error("cache key of {len} bytes is longer than the keysize ({max})")]
    KeyTooLarge {
        /// Key length.
        len: usize,
        /// The cache's keysize.
        max: u64,
    },
    /// The value is empty (uWSGI refuses empty values).
    #[error("empty cache value")]
    EmptyValue,
    /// The value is larger than the largest item.
    #[error("cache value of {len} bytes is larger than the max item size ({max})")]
    ValueTooLarge {
        /// Value length.
        len: usize,
        /// The cache's max item size.
        max: u64,
    },
    /// `set` of a key that exists (only `update` overwrites).
    #[error("cache key already exists")]
    KeyExists,
    /// `del` (or a lookup that must succeed) of a missing key.
    #[error("cache key not found")]
    NotFound,
    /// No free slot or blocks, even after the full-cache policy ran.
    #[error("cache \"{0}\" is full")]
    Full(String),
}

/// When an item expires.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Expiry {
    /// Never (uWSGI's `expires` 0).
    Never,
    /// This many seconds after `now` (uWSGI's `expires` argument).
    After(u64),
    /// At this unix time (the UDP sync packets carry absolute expiries).
    At(u64),
}

impl Expiry {
    /// uWSGI's relative `expires` argument: 0 means never.
    pub fn relative(seconds: u64) -> Self {
        if seconds == 0 {
            Expiry::Never
        } else {
            Expiry::After(seconds)
        }
    }

    fn absolute(self, now: u64) -> u64 {
        match self {
            Expiry::Never => 0,
            Expiry::After(seconds) => now.saturating_add(seconds),
            Expiry::At(when) => when,
        }
    }
}

/// Whether a store may overwrite.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StoreMode {
    /// `cache_set`: fail with [`CacheError::KeyExists`] if the key exists.
    Set,
    /// `cache_update`: overwrite, or create.
    Update,
}

/// The arithmetic of `cache_inc/dec/mul/div`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MathOp {
    /// `value + delta`.
    Inc,
    /// `value - delta`.
    Dec,
    /// `value * delta`.
    Mul,
    /// `value / delta`, 0 when `delta` is 0.
    Div,
}

impl MathOp {
    fn apply(self, value: i64, delta: i64) -> i64 {
        match self {
            MathOp::Inc => value.wrapping_add(delta),
            MathOp::Dec => value.wrapping_sub(delta),
            MathOp::Mul => value.wrapping_mul(delta),
            MathOp::Div if delta == 0 => 0,
            MathOp::Div => value.wrapping_div(delta),
        }
    }
}

/// A value read with its metadata (what the magic `get` reply carries).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CacheItem {
    /// The value.
    pub value: Vec<u8>,
    /// Absolute unix expiry, 0 = never.
    pub expires: u64,
    /// Reads of this item before this one.
    pub hits: u64,
}

/// One item copied by [`Cache::snapshot`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SnapshotItem {
    /// The key.
    pub key: Vec<u8>,
    /// The value.
    pub value: Vec<u8>,
    /// Absolute unix expiry, 0 = never.
    pub expires: u64,
    /// Reads so far.
    pub hits: u64,
}

/// Counters of one cache.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct CacheStats {
    /// Keys stored.
    pub items: u64,
    /// Keys that fit (`items - 1`).
    pub capacity: u64,
    /// Successful reads.
    pub hits: u64,
    /// Reads of missing keys.
    pub misses: u64,
    /// Times a store found the cache full.
    pub full: u64,
}

/// One item slot's header. `key_len == 0` means the slot is free. Links are slot numbers,
/// 0 meaning none (slot 0 is never used, which is why uWSGI reserves it).
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, FromBytes, IntoBytes, KnownLayout, Immutable,
)]
#[repr(C)]
struct ItemHeader {
    hash: u32,
    key_len: u16,
    /// Explicit padding: the shared bytes have no hidden holes.
    pad: u16,
    value_len: usize,
    first_block: usize,
    expires: u64,
    hits: u64,
    chain_prev: usize,
    chain_next: usize,
    lru_prev: usize,
    lru_next: usize,
}

/// The scalars of a cache, at the start of its shared area.
#[derive(Debug, Clone, Copy, Default, FromBytes, IntoBytes, KnownLayout, Immutable)]
#[repr(C)]
struct Meta {
    /// Entries of the free-slot stack in use.
    free_top: usize,
    /// Where the next free-block search starts (uWSGI's `blocks_bitmap_pos`).
    bitmap_cursor: usize,
    lru_head: usize,
    lru_tail: usize,
    len: usize,
    hits: u64,
    misses: u64,
    full: u64,
    /// Earliest expiry the sweeper has to look at (0 = nothing expires).
    next_scan: u64,
    /// When `sweep_on_full` may sweep again.
    next_full_sweep: u64,
    /// Locks taken over from a dead process.
    recoveries: u64,
    /// Of those, the ones that found the arena inconsistent and cleared it.
    recovery_clears: u64,
}

/// What happened when workers died holding a cache's lock ([`Cache::recovery_stats`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct CacheRecoveryStats {
    /// Times the lock was taken over from a process that died holding it.
    pub recoveries: u64,
    /// Times the arena was then found inconsistent and cleared.
    pub clears: u64,
}

/// The regions of a cache's shared area, in order: meta, item headers, buckets, free
/// slots, bitmap, keys, data.
type ArenaRegions = (
    Region<Meta>,
    Region<ItemHeader>,
    Region<usize>,
    Region<usize>,
    Region<u8>,
    Region<u8>,
    Region<u8>,
);

/// The regions of a cache's area, checked against it once at creation.
fn arena_regions(
    geometry: &Geometry,
    layout: &Layout,
    area: &SharedMutex,
) -> Option<RegionSet<ArenaRegions>> {
    let bitmap_len = if geometry.bitmap {
        geometry.blocks.div_ceil(8)
    } else {
        0
    };
    area.region_set((
        area.region(0, 1)?,
        area.region(layout.headers, geometry.items)?,
        area.region(layout.buckets, geometry.hashsize)?,
        area.region(layout.free_slots, geometry.items)?,
        area.region(layout.bitmap, bitmap_len)?,
        area.region(layout.keys, geometry.items.checked_mul(geometry.keysize)?)?,
        area.region(
            layout.data,
            geometry.blocks.checked_mul(geometry.blocksize)?,
        )?,
    ))
}

/// A view of a cache's arena over the bytes of its locked shared area: the flat regions
/// described in the module docs, typed. Built for each locked operation.
#[derive(Debug)]
struct Arena<'a> {
    geometry: Geometry,
    meta: &'a mut Meta,
    headers: &'a mut [ItemHeader],
    buckets: &'a mut [usize],
    /// A stack of free slots, `meta.free_top` deep.
    free_slots: &'a mut [usize],
    /// One bit per block (bitmap mode only), most significant bit first, like uWSGI.
    bitmap: &'a mut [u8],
    keys: &'a mut [u8],
    data: &'a mut [u8],
}

impl<'a> Arena<'a> {
    /// The typed regions of the locked area, carved along `regions` (checked when the
    /// cache was created). `None` only if `regions` belong to another area. Always
    /// inlined: it runs on every operation, and out of line the view is built on the
    /// stack and copied.
    #[inline(always)]
    fn view(
        geometry: Geometry,
        regions: &RegionSet<ArenaRegions>,
        guard: &'a mut SharedGuard<'_>,
    ) -> Option<Arena<'a>> {
        let (meta, headers, buckets, free_slots, bitmap, keys, data) = guard.carve_all(regions)?;
        Some(Arena {
            geometry,
            meta: meta.first_mut()?,
            headers,
            buckets,
            free_slots,
            bitmap,
            keys,
            data,
        })
    }

    /// Every slot but 0 is free; the highest is used first, as uWSGI's stack does.
    fn reset_free_slots(&mut self) {
        let usable = self.geometry.items.saturating_sub(1);
        for (entry, slot) in self.free_slots.iter_mut().zip(1..) {
            *entry = slot;
        }
        self.meta.free_top = usable;
    }

    fn pop_free_slot(&mut self) -> Option<usize> {
        let top = self.meta.free_top.checked_sub(1)?;
        let slot = self.free_slots.get(top).copied()?;
        self.meta.free_top = top;
        Some(slot)
    }

    fn push_free_slot(&mut self, slot: usize) {
        if let Some(entry) = self.free_slots.get_mut(self.meta.free_top) {
            *entry = slot;
            self.meta.free_top += 1;
        }
    }

    fn header(&self, slot: usize) -> ItemHeader {
        self.headers.get(slot).copied().unwrap_or_default()
    }

    fn header_mut(&mut self, slot: usize) -> Option<&mut ItemHeader> {
        self.headers.get_mut(slot)
    }

    fn key_of(&self, slot: usize) -> &[u8] {
        let key_len = self.headers.get(slot).map_or(0, |h| usize::from(h.key_len));
        let start = slot * self.geometry.keysize;
        self.keys.get(start..start + key_len).unwrap_or_default()
    }

    #[inline]
    fn value_of(&self, slot: usize) -> &[u8] {
        let Some(header) = self.headers.get(slot) else {
            return &[];
        };
        let start = header.first_block.saturating_mul(self.geometry.blocksize);
        self.data
            .get(start..start.saturating_add(header.value_len))
            .unwrap_or_default()
    }

    fn bucket_of(&self, hash: u32) -> usize {
        self.geometry.bucket_of(hash)
    }

    /// The slot holding `key`, ignoring expiry.
    #[inline]
    fn find(&self, key: &[u8], hash: u32) -> Option<usize> {
        let mut slot = self.buckets.get(self.bucket_of(hash)).copied().unwrap_or(0);
        // A chain can never be longer than the number of slots; the bound makes a
        // corrupted chain end instead of loop.
        let mut steps = 0;
        while slot != 0 && steps < self.geometry.items {
            let header = self.headers.get(slot)?;
            if header.hash == hash && usize::from(header.key_len) == key.len() {
                let start = slot * self.geometry.keysize;
                if self.keys.get(start..start + key.len()) == Some(key) {
                    return Some(slot);
                }
            }
            slot = header.chain_next;
            steps += 1;
        }
        None
    }

    fn is_expired(&self, slot: usize, now: u64) -> bool {
        let expires = self.header(slot).expires;
        expires != 0 && expires <= now
    }

    fn lru_unlink(&mut self, slot: usize) {
        let header = self.header(slot);
        match self.header_mut(header.lru_next) {
            Some(next) if header.lru_next != 0 => next.lru_prev = header.lru_prev,
            _ => self.meta.lru_tail = header.lru_prev,
        }
        match self.header_mut(header.lru_prev) {
            Some(prev) if header.lru_prev != 0 => prev.lru_next = header.lru_next,
            _ => self.meta.lru_head = header.lru_next,
        }
        if let Some(item) = self.header_mut(slot) {
            item.lru_prev = 0;
            item.lru_next = 0;
        }
    }

    fn lru_push_back(&mut self, slot: usize) {
        let tail = self.meta.lru_tail;
        if let Some(item) = self.header_mut(slot) {
            item.lru_prev = tail;
            item.lru_next = 0;
        }
        match self.header_mut(tail) {
            Some(previous) if tail != 0 => previous.lru_next = slot,
            _ => self.meta.lru_head = slot,
        }
        self.meta.lru_tail = slot;
    }

    fn touch_lru(&mut self, slot: usize, purge_lru: bool) {
        if purge_lru {
            self.lru_unlink(slot);
            self.lru_push_back(slot);
        }
    }

    fn block_used(&self, block: usize) -> bool {
        self.bitmap
            .get(block / 8)
            .is_some_and(|byte| byte & (0x80 >> (block % 8)) != 0)
    }

    fn mark_blocks(&mut self, first: usize, count: usize, used: bool) {
        for block in first..first.saturating_add(count).min(self.geometry.blocks) {
            if let Some(byte) = self.bitmap.get_mut(block / 8) {
                let bit = 0x80 >> (block % 8);
                if used {
                    *byte |= bit;
                } else {
                    *byte &= !bit;
                }
            }
        }
    }

    /// First run of `count` free blocks at or after the cursor, else from block 0. A run
    /// never wraps around the end of the area (uWSGI does not allow that either).
    fn find_free_run(&self, count: usize) -> Option<usize> {
        let blocks = self.geometry.blocks;
        let scan = |from: usize, to: usize| {
            let mut run = 0;
            for block in from..to {
                if self.block_used(block) {
                    run = 0;
                } else {
                    run += 1;
                    if run == count {
                        return Some(block + 1 - count);
                    }
                }
            }
            None
        };
        let cursor = self.meta.bitmap_cursor.min(blocks);
        scan(cursor, blocks).or_else(|| scan(0, blocks))
    }

    /// Places a value of `len` bytes in bitmap mode: finds and marks blocks.
    fn allocate_blocks(&mut self, len: usize) -> Option<usize> {
        let count = self.geometry.blocks_for(len);
        let first = self.find_free_run(count)?;
        self.mark_blocks(first, count, true);
        let end = first + count;
        self.meta.bitmap_cursor = if end >= self.geometry.blocks { 0 } else { end };
        Some(first)
    }

    fn free_blocks(&mut self, slot: usize) {
        if self.geometry.bitmap {
            let header = self.header(slot);
            let count = self.geometry.blocks_for(header.value_len);
            self.mark_blocks(header.first_block, count, false);
        }
    }

    #[inline]
    fn write_value(&mut self, slot: usize, value: &[u8]) {
        let header = self.header(slot);
        let start = header.first_block.saturating_mul(self.geometry.blocksize);
        if let Some(target) = self.data.get_mut(start..start.saturating_add(value.len())) {
            target.copy_from_slice(value);
        }
        if let Some(item) = self.header_mut(slot) {
            item.value_len = value.len();
        }
    }

    fn note_expiry(&mut self, expires: u64) {
        if expires != 0 && (self.meta.next_scan == 0 || self.meta.next_scan > expires) {
            self.meta.next_scan = expires;
        }
    }

    /// Removes the item in `slot` (which must be in use).
    fn remove(&mut self, slot: usize, purge_lru: bool) {
        let header = self.header(slot);
        if header.key_len == 0 {
            return;
        }
        self.free_blocks(slot);
        if header.chain_prev != 0 {
            if let Some(prev) = self.header_mut(header.chain_prev) {
                prev.chain_next = header.chain_next;
            }
        } else {
            let bucket = self.bucket_of(header.hash);
            if let Some(head) = self.buckets.get_mut(bucket) {
                *head = header.chain_next;
            }
        }
        if header.chain_next != 0 {
            if let Some(next) = self.header_mut(header.chain_next) {
                next.chain_prev = header.chain_prev;
            }
        }
        if purge_lru {
            self.lru_unlink(slot);
        }
        if let Some(item) = self.header_mut(slot) {
            *item = ItemHeader::default();
        }
        self.push_free_slot(slot);
        self.meta.len = self.meta.len.saturating_sub(1);
    }

    /// Empties the arena; the counters (hits, misses, full, recoveries) stay.
    fn clear(&mut self) {
        self.headers.fill(ItemHeader::default());
        self.buckets.fill(0);
        self.bitmap.fill(0);
        self.meta.bitmap_cursor = 0;
        self.meta.lru_head = 0;
        self.meta.lru_tail = 0;
        self.meta.len = 0;
        self.meta.next_scan = 0;
        self.reset_free_slots();
    }

    /// Deletes expired items and recomputes the next scan time. Returns how many went.
    fn sweep(&mut self, now: u64, purge_lru: bool) -> usize {
        let mut removed = 0;
        self.meta.next_scan = 0;
        for slot in 1..self.geometry.items {
            let header = self.header(slot);
            if header.key_len == 0 || header.expires == 0 {
                continue;
            }
            if header.expires <= now {
                self.remove(slot, purge_lru);
                removed += 1;
            } else {
                self.note_expiry(header.expires);
            }
        }
        removed
    }

    /// Checks every structural invariant of the arena: counts, the free stack, hash
    /// chains (links, buckets, hashes), block ownership, the LRU list. Bounded (never
    /// loops on a corrupted link) and read-only; allocates a little, as it only runs
    /// after a lock takeover and in tests. The first violation found is returned.
    fn validate(&self, hash: HashAlgorithm, purge_lru: bool) -> Result<(), &'static str> {
        let items = self.geometry.items;
        let usable = items.saturating_sub(1);
        let meta = &*self.meta;
        if meta.len > usable || meta.free_top > usable || meta.len + meta.free_top != usable {
            return Err("slots are neither used nor free");
        }
        if meta.bitmap_cursor > self.geometry.blocks {
            return Err("bitmap cursor out of range");
        }
        let in_range = |slot: usize| slot != 0 && slot < items;
        // Free slots: in range, unused, listed once.
        let mut seen = vec![false; items];
        for &slot in self.free_slots.get(..meta.free_top).unwrap_or_default() {
            if !in_range(slot) || seen[slot] {
                return Err("free slot stack");
            }
            seen[slot] = true;
            if self.header(slot).key_len != 0 {
                return Err("a free slot holds an item");
            }
        }
        // Used slots: sane headers, blocks owned once.
        let mut owned = vec![
            false;
            if self.geometry.bitmap {
                self.geometry.blocks
            } else {
                0
            }
        ];
        let max_value = if self.geometry.bitmap {
            self.geometry.blocksize.saturating_mul(self.geometry.blocks)
        } else {
            self.geometry.blocksize
        };
        let mut used = 0;
        for (slot, &free) in seen.iter().enumerate().skip(1) {
            let header = self.header(slot);
            if header.key_len == 0 {
                if !free {
                    return Err("an empty slot is not free");
                }
                continue;
            }
            if free {
                return Err("a used slot is on the free stack");
            }
            used += 1;
            if usize::from(header.key_len) > self.geometry.keysize
                || header.value_len == 0
                || header.value_len > max_value
            {
                return Err("item sizes");
            }
            if hash.hash(self.key_of(slot)) != header.hash {
                return Err("item hash");
            }
            if self.geometry.bitmap {
                let count = self.geometry.blocks_for(header.value_len);
                let end = header.first_block.checked_add(count);
                if end.is_none_or(|end| end > self.geometry.blocks) {
                    return Err("item blocks out of range");
                }
                let first = header.first_block;
                for (block, mine) in owned.iter_mut().enumerate().skip(first).take(count) {
                    if *mine || !self.block_used(block) {
                        return Err("block ownership");
                    }
                    *mine = true;
                }
            } else if header.first_block != slot {
                return Err("item block");
            }
        }
        if used != meta.len {
            return Err("item count");
        }
        if self.geometry.bitmap {
            let marked = (0..self.geometry.blocks)
                .filter(|&block| self.block_used(block))
                .count();
            if marked != owned.iter().filter(|&&o| o).count() {
                return Err("marked blocks belong to no item");
            }
        }
        // Chains: every item once, in its own bucket, back links right.
        let mut chained = 0;
        for (bucket, &head) in self.buckets.iter().enumerate() {
            let mut slot = head;
            let mut prev = 0;
            while slot != 0 {
                let header = self.header(slot);
                if !in_range(slot) || header.key_len == 0 || chained >= meta.len {
                    return Err("chain link");
                }
                if header.chain_prev != prev || self.bucket_of(header.hash) != bucket {
                    return Err("chain back link or bucket");
                }
                chained += 1;
                prev = slot;
                slot = header.chain_next;
            }
        }
        if chained != meta.len {
            return Err("an item is in no chain");
        }
        if purge_lru {
            let mut count = 0;
            let mut slot = meta.lru_head;
            let mut prev = 0;
            while slot != 0 {
                let header = self.header(slot);
                if !in_range(slot) || header.key_len == 0 || count >= meta.len {
                    return Err("LRU link");
                }
                if header.lru_prev != prev {
                    return Err("LRU back link");
                }
                count += 1;
                prev = slot;
                slot = header.lru_next;
            }
            if count != meta.len || meta.lru_tail != prev {
                return Err("LRU list");
            }
        }
        Ok(())
    }
}

/// One named cache. Thread-safe and shared with the processes forked after it was
/// created (its arena is in a shared mapping); share it between threads with an [`Arc`].
#[derive(Debug)]
pub struct Cache {
    config: CacheConfig,
    geometry: Geometry,
    regions: RegionSet<ArenaRegions>,
    area: SharedMutex,
    /// Where successful writes are replicated (`nodes`).
    replicator: Option<Replicator>,
    /// Where "cache full" lines go ([`Caches::set_full_logger`]).
    full_logger: FullLogger,
    /// Unix second of this process's last "cache full" line, plus one (0: none yet).
    full_logged: std::sync::atomic::AtomicU64,
}

/// Where a cache logs that it is full: set once by the server.
#[derive(Default)]
struct FullLogger(std::sync::OnceLock<SyncLogger>);

impl std::fmt::Debug for FullLogger {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("FullLogger")
            .field(&self.0.get().is_some())
            .finish()
    }
}

/// A process writes at most one "cache full" line per cache in this many seconds.
pub const FULL_LOG_INTERVAL: u64 = 1;

impl Cache {
    /// Validates `config` and maps the arena (shared, zero-filled, touched lazily).
    pub fn new(config: CacheConfig) -> Result<Self, CacheConfigError> {
        config.validate()?;
        let geometry = Geometry::of(&config)?;
        let layout = geometry.layout();
        let too_large = || CacheConfigError::TooLarge {
            name: config.name.clone(),
            bytes: u64::try_from(layout.total).unwrap_or(u64::MAX),
        };
        let area = SharedMutex::new(layout.total).map_err(|_| too_large())?;
        let regions = arena_regions(&geometry, &layout, &area).ok_or_else(too_large)?;
        {
            let mut guard = area.lock();
            let mut arena = Arena::view(geometry, &regions, &mut guard).ok_or_else(too_large)?;
            arena.reset_free_slots();
        }
        let replicator = match config.nodes.is_empty() {
            true => None,
            false => Some(Replicator::new(&config.nodes).map_err(|error| {
                CacheConfigError::InvalidNode {
                    name: config.name.clone(),
                    error,
                }
            })?),
        };
        Ok(Cache {
            config,
            geometry,
            regions,
            area,
            replicator,
            full_logger: FullLogger::default(),
            full_logged: std::sync::atomic::AtomicU64::new(0),
        })
    }

    /// Counts a store that found the cache full and logs it (see the module
    /// documentation: not with `ignore_full`, at most once per [`FULL_LOG_INTERVAL`]).
    fn report_full(&self, arena: &mut Arena<'_>, now: u64) {
        use std::sync::atomic::Ordering;
        arena.meta.full += 1;
        if self.config.ignore_full {
            return;
        }
        let Some(logger) = self.full_logger.0.get() else {
            return;
        };
        let last = self.full_logged.load(Ordering::Relaxed);
        if last != 0 && now < (last - 1).saturating_add(FULL_LOG_INTERVAL) {
            return;
        }
        // Another thread of this process may have logged this second already.
        if self
            .full_logged
            .compare_exchange(
                last,
                now.saturating_add(1),
                Ordering::Relaxed,
                Ordering::Relaxed,
            )
            .is_err()
        {
            return;
        }
        let name = &self.config.name;
        let count = arena.meta.full;
        if self.config.purge_lru {
            logger(format_args!(
                "LRU item will be purged from cache \"{name}\" (full {count} times so far)"
            ));
        } else {
            logger(format_args!(
                "*** DANGER cache \"{name}\" is FULL !!! *** (full {count} times so far)"
            ));
        }
    }

    /// The settings.
    pub fn config(&self) -> &CacheConfig {
        &self.config
    }

    /// The name.
    pub fn name(&self) -> &str {
        &self.config.name
    }

    /// Largest value this cache stores.
    pub fn max_item_size(&self) -> u64 {
        self.config.max_item_size()
    }

    /// The sender to this cache's `nodes`, if it has any.
    pub fn replicator(&self) -> Option<&Replicator> {
        self.replicator.as_ref()
    }

    /// Runs `f` on the arena under the cache's lock. A lock taken over from a process
    /// that died holding it is repaired first: the arena is validated, and cleared if
    /// the dead process left it inconsistent (see the module docs).
    fn with_arena<R>(&self, f: impl FnOnce(&mut Arena<'_>) -> R) -> R {
        let mut guard = self.area.lock();
        if guard.recovered() {
            self.repair(&mut guard);
        }
        let Some(mut arena) = Arena::view(self.geometry, &self.regions, &mut guard) else {
            // Unreachable: `new` built this very view over this area.
            unreachable!("cache arena does not match its layout");
        };
        f(&mut arena)
    }

    /// After a lock takeover: validates the arena, clears it if the dead holder left it
    /// inconsistent. Out of line, so the view of the hot path stays in registers.
    #[cold]
    #[inline(never)]
    fn repair(&self, guard: &mut SharedGuard<'_>) {
        if let Some(mut arena) = Arena::view(self.geometry, &self.regions, guard) {
            arena.meta.recoveries += 1;
            if arena
                .validate(self.config.hash, self.config.purge_lru)
                .is_err()
            {
                arena.meta.recovery_clears += 1;
                arena.clear();
            }
        }
    }

    /// How many times a dead process's lock was taken over, and how many of those
    /// cleared the cache.
    pub fn recovery_stats(&self) -> CacheRecoveryStats {
        self.with_arena(|arena| CacheRecoveryStats {
            recoveries: arena.meta.recoveries,
            clears: arena.meta.recovery_clears,
        })
    }

    /// The slot holding `key`, deleting it first if it expired and the cache is lazy.
    #[inline]
    fn lookup(&self, arena: &mut Arena<'_>, key: &[u8], now: u64) -> Option<usize> {
        if key.is_empty() || key.len() > arena.geometry.keysize {
            return None;
        }
        let slot = arena.find(key, self.config.hash.hash(key))?;
        if self.config.lazy_expire && arena.is_expired(slot, now) {
            arena.remove(slot, self.config.purge_lru);
            return None;
        }
        Some(slot)
    }

    /// The value of `key` (`cache_get`), counting a hit or a miss.
    pub fn get(&self, key: &[u8], now: u64) -> Option<Vec<u8>> {
        self.get_item(key, now).map(|item| item.value)
    }

    /// The value of `key` with its expiry and hit count (magic `get`).
    pub fn get_item(&self, key: &[u8], now: u64) -> Option<CacheItem> {
        self.with_arena(|arena| {
            let Some(slot) = self.lookup(arena, key, now) else {
                arena.meta.misses += 1;
                return None;
            };
            arena.touch_lru(slot, self.config.purge_lru);
            arena.meta.hits += 1;
            let header = arena.header(slot);
            if let Some(item) = arena.header_mut(slot) {
                item.hits += 1;
            }
            Some(CacheItem {
                value: arena.value_of(slot).to_vec(),
                expires: header.expires,
                hits: header.hits,
            })
        })
    }

    /// Copies the value of `key` into `buffer` (cleared first), reusing its allocation.
    /// Returns whether the key was found.
    pub fn get_into(&self, key: &[u8], now: u64, buffer: &mut Vec<u8>) -> bool {
        buffer.clear();
        self.with_arena(|arena| {
            let Some(slot) = self.lookup(arena, key, now) else {
                arena.meta.misses += 1;
                return false;
            };
            arena.touch_lru(slot, self.config.purge_lru);
            arena.meta.hits += 1;
            if let Some(item) = arena.header_mut(slot) {
                item.hits += 1;
            }
            buffer.extend_from_slice(arena.value_of(slot));
            true
        })
    }

    /// Whether `key` is stored (`cache_exists`). Not counted as a hit.
    pub fn exists(&self, key: &[u8], now: u64) -> bool {
        self.with_arena(|arena| self.lookup(arena, key, now).is_some())
    }

    /// `cache_set(key, value, expires)`: stores a new key; fails if it exists.
    /// `expires` is in seconds from `now`, 0 = never.
    pub fn set(&self, key: &[u8], value: &[u8], expires: u64, now: u64) -> Result<(), CacheError> {
        self.store(key, value, Expiry::relative(expires), StoreMode::Set, now)
    }

    /// `cache_update(key, value, expires)`: stores, overwriting; the expiry is replaced.
    pub fn update(
        &self,
        key: &[u8],
        value: &[u8],
        expires: u64,
        now: u64,
    ) -> Result<(), CacheError> {
        self.store(
            key,
            value,
            Expiry::relative(expires),
            StoreMode::Update,
            now,
        )
    }

    /// The general store behind [`Cache::set`] and [`Cache::update`]. Once it
    /// succeeded, it is replicated to the cache's `nodes` (if any) with its absolute
    /// expiry.
    pub fn store(
        &self,
        key: &[u8],
        value: &[u8],
        expiry: Expiry,
        mode: StoreMode,
        now: u64,
    ) -> Result<(), CacheError> {
        let expires = expiry.absolute(now);
        self.store_local(key, value, Expiry::At(expires), mode, now)?;
        if let Some(replicator) = &self.replicator {
            replicator.send_set(self.name(), key, value, expires);
        }
        Ok(())
    }

    /// [`Cache::store`] without replication: what a node does with a received sync
    /// datagram ([`Expiry::At`] serves them, their expiry is absolute).
    pub fn store_local(
        &self,
        key: &[u8],
        value: &[u8],
        expiry: Expiry,
        mode: StoreMode,
        now: u64,
    ) -> Result<(), CacheError> {
        self.check_key(key)?;
        if value.is_empty() {
            return Err(CacheError::EmptyValue);
        }
        self.check_value_len(value.len())?;
        let expires = expiry.absolute(now);
        self.with_arena(|arena| match self.lookup(arena, key, now) {
            None => {
                let slot = self.create(arena, key, value.len(), expires, now)?;
                arena.write_value(slot, value);
                Ok(())
            }
            Some(_) if mode == StoreMode::Set => Err(CacheError::KeyExists),
            Some(slot) => {
                // Blocks first: if they cannot be found nothing has changed yet.
                self.relocate(arena, slot, value.len(), now)?;
                arena.touch_lru(slot, self.config.purge_lru);
                if let Some(item) = arena.header_mut(slot) {
                    item.expires = expires;
                }
                arena.note_expiry(expires);
                arena.write_value(slot, value);
                Ok(())
            }
        })
    }

    fn check_key(&self, key: &[u8]) -> Result<(), CacheError> {
        if key.is_empty() {
            return Err(CacheError::EmptyKey);
        }
        if u64::try_from(key.len()).unwrap_or(u64::MAX) > self.config.keysize {
            return Err(CacheError::KeyTooLarge {
                len: key.len(),
                max: self.config.keysize,
            });
        }
        Ok(())
    }

    fn check_value_len(&self, len: usize) -> Result<(), CacheError> {
        let max = self.config.max_item_size();
        if u64::try_from(len).unwrap_or(u64::MAX) > max {
            return Err(CacheError::ValueTooLarge { len, max });
        }
        Ok(())
    }

    /// Takes a free slot (and blocks) for a new key, running the full-cache policy once
    /// if needed. The value is written by the caller.
    fn create(
        &self,
        arena: &mut Arena<'_>,
        key: &[u8],
        value_len: usize,
        expires: u64,
        now: u64,
    ) -> Result<usize, CacheError> {
        let slot = match self.take_slot(arena, value_len) {
            Some(slot) => slot,
            None => {
                self.cache_full(arena, now);
                self.take_slot(arena, value_len)
                    .ok_or_else(|| CacheError::Full(self.config.name.clone()))?
            }
        };
        let hash = self.config.hash.hash(key);
        let key_len = u16::try_from(key.len()).unwrap_or(0);
        let start = slot * arena.geometry.keysize;
        if let Some(target) = arena.keys.get_mut(start..start + key.len()) {
            target.copy_from_slice(key);
        }
        // Append to the tail of the bucket's chain, as uWSGI does (this fixes the order
        // of `keys()`).
        let bucket = arena.bucket_of(hash);
        let mut tail = arena.buckets.get(bucket).copied().unwrap_or(0);
        if tail == 0 {
            if let Some(head) = arena.buckets.get_mut(bucket) {
                *head = slot;
            }
        } else {
            let mut steps = 0;
            while arena.header(tail).chain_next != 0 && steps < arena.geometry.items {
                tail = arena.header(tail).chain_next;
                steps += 1;
            }
            if let Some(previous) = arena.header_mut(tail) {
                previous.chain_next = slot;
            }
        }
        if let Some(item) = arena.header_mut(slot) {
            item.hash = hash;
            item.key_len = key_len;
            item.expires = expires;
            item.hits = 0;
            item.chain_prev = tail;
            item.chain_next = 0;
        }
        if self.config.purge_lru {
            arena.lru_push_back(slot);
        }
        arena.note_expiry(expires);
        arena.meta.len += 1;
        Ok(slot)
    }

    /// A free slot with room for `value_len` bytes, or `None` (nothing taken).
    fn take_slot(&self, arena: &mut Arena<'_>, value_len: usize) -> Option<usize> {
        let slot = arena.pop_free_slot()?;
        let first_block = if arena.geometry.bitmap {
            match arena.allocate_blocks(value_len) {
                Some(first) => first,
                None => {
                    arena.push_free_slot(slot);
                    return None;
                }
            }
        } else {
            slot
        };
        if let Some(item) = arena.header_mut(slot) {
            *item = ItemHeader {
                first_block,
                ..ItemHeader::default()
            };
        }
        Some(slot)
    }

    /// In bitmap mode, gives an existing item blocks for a value of `value_len` bytes,
    /// reusing its own blocks when they fit.
    fn relocate(
        &self,
        arena: &mut Arena<'_>,
        slot: usize,
        value_len: usize,
        now: u64,
    ) -> Result<(), CacheError> {
        if !arena.geometry.bitmap {
            return Ok(());
        }
        let header = arena.header(slot);
        let old_count = arena.geometry.blocks_for(header.value_len);
        arena.mark_blocks(header.first_block, old_count, false);
        match arena.allocate_blocks(value_len) {
            Some(first) => {
                if let Some(item) = arena.header_mut(slot) {
                    item.first_block = first;
                }
                Ok(())
            }
            None => {
                arena.mark_blocks(header.first_block, old_count, true);
                self.report_full(arena, now);
                Err(CacheError::Full(self.config.name.clone()))
            }
        }
    }

    /// uWSGI's `cache_full()`: the policies that make room.
    fn cache_full(&self, arena: &mut Arena<'_>, now: u64) {
        self.report_full(arena, now);
        if self.config.purge_lru && arena.meta.lru_head != 0 {
            let victim = arena.meta.lru_head;
            arena.remove(victim, true);
        }
        let mut swept = 0;
        if self.config.sweep_on_full > 0 && arena.meta.next_full_sweep <= now {
            arena.meta.next_full_sweep = now.saturating_add(self.config.sweep_on_full);
            swept = arena.sweep(now, self.config.purge_lru);
        }
        if self.config.clear_on_full && swept == 0 {
            arena.clear();
        }
    }

    /// `cache_del(key)`: fails with [`CacheError::NotFound`] if missing. Once it
    /// succeeded, it is replicated to the cache's `nodes` (if any).
    pub fn del(&self, key: &[u8], now: u64) -> Result<(), CacheError> {
        self.del_local(key, now)?;
        if let Some(replicator) = &self.replicator {
            replicator.send_delete(self.name(), key);
        }
        Ok(())
    }

    /// [`Cache::del`] without replication: what a node does with a received delete.
    pub fn del_local(&self, key: &[u8], now: u64) -> Result<(), CacheError> {
        self.with_arena(|arena| {
            let slot = self.lookup(arena, key, now).ok_or(CacheError::NotFound)?;
            arena.remove(slot, self.config.purge_lru);
            Ok(())
        })
    }

    /// `cache_clear()`: deletes every item.
    pub fn clear(&self) {
        self.with_arena(|arena| arena.clear());
    }

    /// `cache_keys()`: every key, in uWSGI's order (bucket, then chain). Expired items
    /// not yet swept are included, as in uWSGI.
    pub fn keys(&self) -> Vec<Vec<u8>> {
        self.with_arena(|arena| {
            let mut keys = Vec::with_capacity(arena.meta.len);
            for &head in arena.buckets.iter() {
                let mut slot = head;
                let mut steps = 0;
                while slot != 0 && steps < arena.geometry.items {
                    keys.push(arena.key_of(slot).to_vec());
                    slot = arena.header(slot).chain_next;
                    steps += 1;
                }
            }
            keys
        })
    }

    /// A copy of every stored item, for a cache dump (modifier2 6): in LRU order (least
    /// recently used first) with `purge_lru`, in slot order otherwise. Expired items not
    /// yet swept are included, as in uWSGI's image. One lock, so the copy is consistent.
    pub fn snapshot(&self) -> Vec<SnapshotItem> {
        self.with_arena(|arena| {
            let item = |slot: usize| {
                let header = arena.header(slot);
                SnapshotItem {
                    key: arena.key_of(slot).to_vec(),
                    value: arena.value_of(slot).to_vec(),
                    expires: header.expires,
                    hits: header.hits,
                }
            };
            let mut items = Vec::with_capacity(arena.meta.len);
            if self.config.purge_lru {
                let mut slot = arena.meta.lru_head;
                while slot != 0 && items.len() < arena.meta.len {
                    items.push(item(slot));
                    slot = arena.header(slot).lru_next;
                }
            } else {
                for slot in 1..arena.geometry.items {
                    if arena.header(slot).key_len != 0 {
                        items.push(item(slot));
                    }
                }
            }
            items
        })
    }

    /// Number of items stored.
    pub fn len(&self) -> usize {
        self.with_arena(|arena| arena.meta.len)
    }

    /// `true` when nothing is stored.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Number of keys that fit (`items - 1`).
    pub fn capacity(&self) -> u64 {
        self.config.capacity()
    }

    /// Counters.
    pub fn stats(&self) -> CacheStats {
        self.with_arena(|arena| CacheStats {
            items: u64::try_from(arena.meta.len).unwrap_or(u64::MAX),
            capacity: self.config.capacity(),
            hits: arena.meta.hits,
            misses: arena.meta.misses,
            full: arena.meta.full,
        })
    }

    /// `cache_inc/dec/mul/div(key, delta, expires)`: applies `op` to the 64-bit number
    /// under `key` and returns the new number. `expires` (seconds from `now`, 0 = never)
    /// only applies when the key is created. Once it succeeded, the resulting number (not
    /// the delta, unlike uWSGI) is replicated to the cache's `nodes` (if any) as a set
    /// with the item's expiry.
    pub fn math(
        &self,
        key: &[u8],
        op: MathOp,
        delta: i64,
        expires: u64,
        now: u64,
    ) -> Result<i64, CacheError> {
        self.check_key(key)?;
        self.check_value_len(NUMBER_LEN)?;
        let (result, expires) = self.with_arena(|arena| {
            let (slot, result) = match self.lookup(arena, key, now) {
                Some(slot) => {
                    // Read before relocating: the new blocks may overlap the old ones.
                    let current = read_number(arena.value_of(slot));
                    self.relocate(arena, slot, NUMBER_LEN, now)?;
                    arena.touch_lru(slot, self.config.purge_lru);
                    (slot, op.apply(current, delta))
                }
                None => {
                    let expires = Expiry::relative(expires).absolute(now);
                    let slot = self.create(arena, key, NUMBER_LEN, expires, now)?;
                    (slot, op.apply(self.config.math_initial, delta))
                }
            };
            arena.write_value(slot, &result.to_ne_bytes());
            Ok((result, arena.header(slot).expires))
        })?;
        if let Some(replicator) = &self.replicator {
            replicator.send_set(self.name(), key, &result.to_ne_bytes(), expires);
        }
        Ok(result)
    }

    /// `cache_inc(key, delta, expires)`.
    pub fn inc(&self, key: &[u8], delta: i64, expires: u64, now: u64) -> Result<i64, CacheError> {
        self.math(key, MathOp::Inc, delta, expires, now)
    }

    /// `cache_dec(key, delta, expires)`.
    pub fn dec(&self, key: &[u8], delta: i64, expires: u64, now: u64) -> Result<i64, CacheError> {
        self.math(key, MathOp::Dec, delta, expires, now)
    }

    /// `cache_mul(key, factor, expires)`.
    pub fn mul(&self, key: &[u8], factor: i64, expires: u64, now: u64) -> Result<i64, CacheError> {
        self.math(key, MathOp::Mul, factor, expires, now)
    }

    /// `cache_div(key, divisor, expires)`.
    pub fn div(&self, key: &[u8], divisor: i64, expires: u64, now: u64) -> Result<i64, CacheError> {
        self.math(key, MathOp::Div, divisor, expires, now)
    }

    /// `cache_num(key)`: the number under `key` (the Python function answers 0 for
    /// `None`). Counts a hit or a miss.
    pub fn num(&self, key: &[u8], now: u64) -> Option<i64> {
        self.with_arena(|arena| {
            let Some(slot) = self.lookup(arena, key, now) else {
                arena.meta.misses += 1;
                return None;
            };
            arena.meta.hits += 1;
            if let Some(item) = arena.header_mut(slot) {
                item.hits += 1;
            }
            Some(read_number(arena.value_of(slot)))
        })
    }

    /// The sweeper's pass: deletes items whose expiry is at or before `now` and returns
    /// how many. Does nothing before the earliest known expiry, and nothing at all for
    /// caches with `no_expire`, `purge_lru` or `lazy_expire` (as in uWSGI).
    pub fn sweep_expired(&self, now: u64) -> usize {
        if self.config.no_expire || self.config.purge_lru || self.config.lazy_expire {
            return 0;
        }
        self.with_arena(|arena| {
            if arena.meta.next_scan == 0 || arena.meta.next_scan > now {
                return 0;
            }
            arena.sweep(now, false)
        })
    }

    /// Checks the arena's invariants (what a lock takeover checks); the first violation.
    pub fn check_consistency(&self) -> Result<(), &'static str> {
        self.with_arena(|arena| arena.validate(self.config.hash, self.config.purge_lru))
    }

    #[cfg(test)]
    fn check_invariants(&self) {
        assert_eq!(self.check_consistency(), Ok(()));
    }

    /// For the takeover tests: takes the lock, optionally leaves the arena as a
    /// half-finished store would (a slot taken off the free stack, nothing else), says
    /// so through `ready` and never returns (the test kills the process).
    #[cfg(test)]
    fn hold_lock_forever(&self, half_finished: bool, ready: &std::sync::atomic::AtomicU64) {
        self.with_arena(|arena| {
            if half_finished {
                let _ = arena.pop_free_slot();
            }
            ready.store(1, std::sync::atomic::Ordering::Release);
            loop {
                std::thread::sleep(std::time::Duration::from_secs(1));
            }
        })
    }

    #[cfg(test)]
    fn largest_free_run(&self) -> usize {
        self.with_arena(|arena| {
            let mut best = 0;
            let mut run = 0;
            for block in 0..arena.geometry.blocks {
                if arena.block_used(block) {
                    run = 0;
                } else {
                    run += 1;
                    best = best.max(run);
                }
            }
            best
        })
    }
}

/// The first 8 bytes of a value as a native-endian signed number, zero-padded.
fn read_number(value: &[u8]) -> i64 {
    let mut bytes = [0u8; NUMBER_LEN];
    for (target, source) in bytes.iter_mut().zip(value) {
        *target = *source;
    }
    i64::from_ne_bytes(bytes)
}

/// Where a cache identifier (the Python `cache` argument, 2.0) points: a local cache by
/// name, or a remote server (`name@address`, or `@address` for its default cache).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CacheLocation<'a> {
    /// A local cache; an empty name means the default (first) cache.
    Local {
        /// Cache name.
        name: &'a [u8],
    },
    /// A cache on another server, reached through the magic interface (§6.2).
    Remote {
        /// Cache name on that server; empty = its default cache.
        name: &'a [u8],
        /// `host:port` or socket path.
        address: &'a [u8],
    },
}

impl<'a> CacheLocation<'a> {
    /// Splits an identifier at its first `@`, as uWSGI does.
    pub fn parse(identifier: &'a [u8]) -> Self {
        match identifier.iter().position(|&b| b == b'@') {
            Some(at) => CacheLocation::Remote {
                name: identifier.get(..at).unwrap_or_default(),
                address: identifier.get(at + 1..).unwrap_or_default(),
            },
            None => CacheLocation::Local { name: identifier },
        }
    }
}

/// The caches of a server, in configuration order; the first is the default one.
#[derive(Debug, Clone, Default)]
pub struct Caches {
    caches: Vec<Arc<Cache>>,
}

impl Caches {
    /// No cache at all (uWSGI without `--cache`/`--cache2`).
    pub fn none() -> Self {
        Caches::default()
    }

    /// Creates every cache; names must be distinct.
    pub fn new(configs: impl IntoIterator<Item = CacheConfig>) -> Result<Self, CacheConfigError> {
        let mut caches: Vec<Arc<Cache>> = Vec::new();
        for config in configs {
            if caches.iter().any(|cache| cache.name() == config.name) {
                return Err(CacheConfigError::DuplicateName(config.name));
            }
            caches.push(Arc::new(Cache::new(config)?));
        }
        Ok(Caches { caches })
    }

    /// The first cache, used when no name is given.
    pub fn default_cache(&self) -> Option<&Arc<Cache>> {
        self.caches.first()
    }

    /// The cache called `name`; an empty name is the default cache (uWSGI's
    /// `uwsgi_cache_by_name`).
    pub fn by_name(&self, name: &[u8]) -> Option<&Arc<Cache>> {
        if name.is_empty() {
            return self.default_cache();
        }
        self.caches
            .iter()
            .find(|cache| cache.name().as_bytes() == name)
    }

    /// Every cache, in order.
    pub fn iter(&self) -> impl Iterator<Item = &Arc<Cache>> {
        self.caches.iter()
    }

    /// Number of caches.
    pub fn len(&self) -> usize {
        self.caches.len()
    }

    /// `true` without any cache.
    pub fn is_empty(&self) -> bool {
        self.caches.is_empty()
    }

    /// Installs `logger` as where every cache's [`Replicator`] reports failed sends.
    pub fn set_sync_logger(&self, logger: &crate::cache_sync::SyncLogger) {
        for cache in &self.caches {
            if let Some(replicator) = cache.replicator() {
                replicator.set_logger(Arc::clone(logger));
            }
        }
    }

    /// Installs `logger` as where every cache logs that it is full (the first call
    /// wins); without one, full caches are only counted.
    pub fn set_full_logger(&self, logger: &SyncLogger) {
        for cache in &self.caches {
            let _ = cache.full_logger.0.set(Arc::clone(logger));
        }
    }

    /// Runs [`Cache::sweep_expired`] on every cache; returns the total removed.
    pub fn sweep_expired(&self, now: u64) -> usize {
        self.caches
            .iter()
            .map(|cache| cache.sweep_expired(now))
            .sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::collections::HashMap;

    fn small(items: u64, blocksize: u64) -> Cache {
        let mut config = CacheConfig::new("test", items);
        config.blocksize = blocksize;
        config.hashsize = 64;
        Cache::new(config).unwrap()
    }

    // ---- full-cache log ----

    fn logged_caches(ignore_full: bool) -> (Caches, Arc<std::sync::Mutex<Vec<String>>>) {
        let mut config = CacheConfig::new("tiny", 3);
        config.blocksize = 64;
        config.hashsize = 64;
        config.ignore_full = ignore_full;
        let caches = Caches::new([config]).unwrap();
        let lines = Arc::new(std::sync::Mutex::new(Vec::new()));
        let sink = Arc::clone(&lines);
        let logger: SyncLogger = Arc::new(move |line: std::fmt::Arguments<'_>| {
            sink.lock().unwrap().push(line.to_string());
        });
        caches.set_full_logger(&logger);
        (caches, lines)
    }

    #[test]
    fn full_cache_is_logged_at_most_once_per_second() {
        let (caches, lines) = logged_caches(false);
        let cache = caches.default_cache().unwrap();
        let capacity = cache.capacity();
        for i in 0..capacity {
            cache.set(format!("k{i}").as_bytes(), b"v", 0, 100).unwrap();
        }
        for i in 0..50 {
            assert!(matches!(
                cache.set(format!("x{i}").as_bytes(), b"v", 0, 100),
                Err(CacheError::Full(_))
            ));
        }
        assert_eq!(cache.stats().full, 50, "every failure is counted");
        assert_eq!(
            *lines.lock().unwrap(),
            ["*** DANGER cache \"tiny\" is FULL !!! *** (full 1 times so far)"]
        );
        // The next second gets its line, with the count so far.
        let _ = cache.set(b"y", b"v", 0, 101);
        assert_eq!(lines.lock().unwrap().len(), 2);
        assert!(lines.lock().unwrap()[1].ends_with("(full 51 times so far)"));
        // Too large is not full: no line, no count.
        let _ = cache.set(&[b'k'; 5000], b"v", 0, 200);
        let _ = cache.set(b"z", &[0; 65], 0, 200);
        assert_eq!(cache.stats().full, 51);
        assert_eq!(lines.lock().unwrap().len(), 2);
    }

    #[test]
    fn ignore_full_counts_without_logging() {
        let (caches, lines) = logged_caches(true);
        let cache = caches.default_cache().unwrap();
        for i in 0..=cache.capacity() {
            let _ = cache.set(format!("k{i}").as_bytes(), b"v", 0, 100);
        }
        assert_eq!(cache.stats().full, 1);
        assert!(lines.lock().unwrap().is_empty());
    }

    // ---- configuration (§6.4 `--cache2` keys, legacy `--cache`) ----

    #[test]
    fn cache2_option_parses_every_documented_key() {
        let config = CacheConfig::from_cache2_option(
            "name=foo,items=100,blocksize=4096,blocks=200,keysize=128,hash=murmur2,\
             hashsize=1024,bitmap=1,purge_lru=1,lazy_expire=1,math_initial=-3,\
             sweep_on_full=5,clear_on_full=1,no_expire=1,ignore_full=1,store=/tmp/c,\
             nodes=1.2.3.4:5;6.7.8.9:10,udp=0:3000,sync=a:1,lastmod=1,whatever=2",
        )
        .unwrap();
        assert_eq!(config.name, "foo");
        assert_eq!(config.items, 100);
        assert_eq!(config.blocksize, 4096);
        assert_eq!(config.blocks, 200);
        assert_eq!(config.keysize, 128);
        assert_eq!(config.hash, HashAlgorithm::Murmur2);
        assert_eq!(config.hashsize, 1024);
        assert!(config.bitmap && config.purge_lru && config.lazy_expire);
        assert!(config.clear_on_full && config.no_expire && config.ignore_full);
        assert!(config.last_modified);
        assert_eq!(config.math_initial, -3);
        assert_eq!(config.sweep_on_full, 5);
        assert_eq!(config.store.as_deref(), Some("/tmp/c"));
        assert_eq!(config.nodes, vec!["1.2.3.4:5", "6.7.8.9:10"]);
        assert_eq!(config.udp_servers, vec!["0:3000"]);
        assert_eq!(config.sync, vec!["a:1"]);
        assert_eq!(config.ignored_keys, vec!["whatever"]);
        assert_eq!(config.max_item_size(), 4096 * 200);
    }

    #[test]
    fn cache2_option_defaults_follow_uwsgi() {
        let config = CacheConfig::from_cache2_option("name=c,items=10").unwrap();
        assert_eq!(config.blocksize, 65536);
        assert_eq!(config.blocks, 10);
        assert_eq!(config.keysize, 2048);
        assert_eq!(config.hashsize, 65536);
        assert_eq!(config.hash, HashAlgorithm::Djb33x);
        assert!(!config.bitmap && !config.purge_lru && !config.lazy_expire);
        assert_eq!(config.capacity(), 9);
        // Aliases of items.
        assert_eq!(
            CacheConfig::from_cache2_option("name=c,maxitems=7")
                .unwrap()
                .items,
            7
        );
        assert_eq!(
            CacheConfig::from_cache2_option("name=c,max_items=7")
                .unwrap()
                .items,
            7
        );
    }

    #[test]
    fn cache2_option_rejects_what_uwsgi_rejects() {
        let err = |s: &str| CacheConfig::from_cache2_option(s).unwrap_err();
        assert_eq!(err("items=10"), CacheConfigError::MissingName);
        assert_eq!(err("name=,items=10"), CacheConfigError::MissingName);
        assert!(matches!(err("name=a"), CacheConfigError::MissingItems(_)));
        assert!(matches!(
            err("name=a,items=0"),
            CacheConfigError::MissingItems(_)
        ));
        assert!(matches!(
            err("name=a,items=10,blocksize=0"),
            CacheConfigError::InvalidBlocksize(_)
        ));
        assert!(matches!(
            err("name=a,items=10,blocks=5"),
            CacheConfigError::InvalidBlocks { .. }
        ));
        assert!(matches!(
            err("name=a,items=10,keysize=0"),
            CacheConfigError::InvalidKeysize { .. }
        ));
        assert!(matches!(
            err("name=a,items=10,keysize=65536"),
            CacheConfigError::InvalidKeysize { .. }
        ));
        assert!(matches!(
            err("name=a,items=10,hashsize=0"),
            CacheConfigError::InvalidHashsize(_)
        ));
        assert!(matches!(
            err("name=a,items=10,hash=md5"),
            CacheConfigError::InvalidHash { .. }
        ));
        assert!(matches!(
            err("name=a,items=ten"),
            CacheConfigError::Number(_)
        ));
        assert!(matches!(
            err("name=a,items=18446744073709551615,blocksize=18446744073709551615"),
            CacheConfigError::TooLarge { .. }
        ));
    }

    #[test]
    fn legacy_cache_option() {
        let config = CacheConfig::legacy(100, None);
        assert_eq!(config.name, "default");
        assert_eq!(config.blocksize, 65536);
        assert_eq!(CacheConfig::legacy(100, Some(4096)).blocksize, 4096);
        assert_eq!(CacheConfig::legacy(100, Some(0)).blocksize, 65536);
    }

    #[test]
    fn flags_spelled_off_stay_off() {
        let config = CacheConfig::from_cache2_option("name=a,items=3,bitmap=0,lru=false").unwrap();
        assert!(!config.bitmap);
        assert!(!config.purge_lru);
    }

    // ---- hash functions (placement and key order as in uWSGI) ----

    #[test]
    fn hashes_match_uwsgi_core_hash_c() {
        // Known answers from the C functions of core/hash.c compiled with gcc on x86-64
        // (signed `char`), so bucket placement and keys() order match uWSGI.
        let cases: &[(&[u8], u32, u32)] = &[
            (b"", 5381, 0),
            (b"a", 177_604, 2_456_313_694),
            (b"foo", 193_410_979, 2_414_502_773),
            (b"abcd", 2_087_551_809, 646_393_889),
            (b"hello world", 4_173_747_013, 3_742_290_278),
            (b"\xff\xfe\x80", 4_101_589_348, 385_410_881),
            (b"cache\xe9key!", 3_083_978_742, 2_109_643_656),
        ];
        for &(key, djb, murmur) in cases {
            assert_eq!(HashAlgorithm::Djb33x.hash(key), djb, "djb33x {key:?}");
            assert_eq!(HashAlgorithm::Murmur2.hash(key), murmur, "murmur2 {key:?}");
        }
    }

    // ---- basic operations (§6.4) ----

    #[test]
    fn set_then_get() {
        let cache = small(10, 64);
        cache.set(b"foo", b"bar", 0, 1000).unwrap();
        assert_eq!(cache.get(b"foo", 1000), Some(b"bar".to_vec()));
        assert!(cache.exists(b"foo", 1000));
        assert_eq!(cache.len(), 1);
        cache.check_invariants();
    }

    #[test]
    fn set_does_not_overwrite_but_update_does() {
        // §6.4: "if the key already exists it fails ... unless the update flag is given".
        let cache = small(10, 64);
        cache.set(b"k", b"one", 0, 0).unwrap();
        assert_eq!(cache.set(b"k", b"two", 0, 0), Err(CacheError::KeyExists));
        assert_eq!(cache.get(b"k", 0), Some(b"one".to_vec()));
        cache.update(b"k", b"three", 0, 0).unwrap();
        assert_eq!(cache.get(b"k", 0), Some(b"three".to_vec()));
        // update creates a missing key.
        cache.update(b"new", b"v", 0, 0).unwrap();
        assert_eq!(cache.get(b"new", 0), Some(b"v".to_vec()));
        cache.check_invariants();
    }

    #[test]
    fn empty_key_and_empty_value_are_refused() {
        // §6.4: cache_set rejects an empty key and an empty value ([V20]).
        let cache = small(10, 64);
        assert_eq!(cache.set(b"", b"v", 0, 0), Err(CacheError::EmptyKey));
        assert_eq!(cache.set(b"k", b"", 0, 0), Err(CacheError::EmptyValue));
        assert_eq!(cache.update(b"k", b"", 0, 0), Err(CacheError::EmptyValue));
        assert!(cache.is_empty());
    }

    #[test]
    fn key_and_value_limits() {
        // §6.4: key max = keysize; value max = blocksize.
        let mut config = CacheConfig::new("limits", 10);
        config.blocksize = 16;
        config.keysize = 4;
        let cache = Cache::new(config).unwrap();
        assert_eq!(
            cache.set(b"12345", b"v", 0, 0),
            Err(CacheError::KeyTooLarge { len: 5, max: 4 })
        );
        cache.set(b"1234", &[7; 16], 0, 0).unwrap();
        assert_eq!(
            cache.set(b"x", &[7; 17], 0, 0),
            Err(CacheError::ValueTooLarge { len: 17, max: 16 })
        );
        // A too-long key is simply not found by reads.
        assert_eq!(cache.get(b"12345", 0), None);
        assert!(!cache.exists(b"12345", 0));
    }

    #[test]
    fn slot_zero_is_reserved_so_items_minus_one_fit() {
        // §6.4: "slot 0 is reserved ⇒ N-1 usable items".
        let cache = small(4, 8);
        assert_eq!(cache.capacity(), 3);
        for key in [b"a", b"b", b"c"] {
            cache.set(key, b"v", 0, 0).unwrap();
        }
        assert_eq!(
            cache.set(b"d", b"v", 0, 0),
            Err(CacheError::Full("test".into()))
        );
        assert_eq!(cache.stats().full, 1);
        // Updating an existing key still works when full.
        cache.update(b"a", b"w", 0, 0).unwrap();
        cache.del(b"b", 0).unwrap();
        cache.set(b"d", b"v", 0, 0).unwrap();
        cache.check_invariants();
    }

    #[test]
    fn items_one_holds_nothing() {
        let cache = small(1, 8);
        assert_eq!(cache.capacity(), 0);
        assert!(matches!(
            cache.set(b"a", b"v", 0, 0),
            Err(CacheError::Full(_))
        ));
    }

    #[test]
    fn del_missing_key_is_not_found() {
        // §6.2: "del of a missing key" is a failure (no reply).
        let cache = small(10, 8);
        assert_eq!(cache.del(b"nope", 0), Err(CacheError::NotFound));
        cache.set(b"k", b"v", 0, 0).unwrap();
        cache.del(b"k", 0).unwrap();
        assert_eq!(cache.get(b"k", 0), None);
        assert_eq!(cache.del(b"k", 0), Err(CacheError::NotFound));
    }

    #[test]
    fn clear_empties_everything() {
        let cache = small(10, 8);
        for i in 0..9u8 {
            cache.set(&[b'k', i], &[i + 1], 0, 0).unwrap();
        }
        cache.clear();
        assert!(cache.is_empty());
        assert!(cache.keys().is_empty());
        for i in 0..9u8 {
            cache.set(&[b'k', i], &[i + 1], 0, 0).unwrap();
        }
        cache.check_invariants();
    }

    #[test]
    fn keys_lists_every_key_in_bucket_order() {
        let cache = small(10, 8);
        for key in [&b"alpha"[..], b"beta", b"gamma"] {
            cache.set(key, b"v", 0, 0).unwrap();
        }
        let keys = cache.keys();
        assert_eq!(keys.len(), 3);
        let mut expected: Vec<Vec<u8>> =
            vec![b"alpha".to_vec(), b"beta".to_vec(), b"gamma".to_vec()];
        expected.sort_by_key(|key| djb33x(key) % 64);
        assert_eq!(keys, expected);
    }

    #[test]
    fn collisions_chain_and_unlink_correctly() {
        // One bucket: every key collides.
        let mut config = CacheConfig::new("one-bucket", 8);
        config.blocksize = 8;
        config.hashsize = 1;
        let cache = Cache::new(config).unwrap();
        for key in [b"a", b"b", b"c", b"d"] {
            cache.set(key, key, 0, 0).unwrap();
        }
        assert_eq!(
            cache.keys(),
            vec![b"a".to_vec(), b"b".to_vec(), b"c".to_vec(), b"d".to_vec()]
        );
        cache.del(b"b", 0).unwrap();
        cache.del(b"a", 0).unwrap();
        cache.check_invariants();
        assert_eq!(cache.keys(), vec![b"c".to_vec(), b"d".to_vec()]);
        assert_eq!(cache.get(b"d", 0), Some(b"d".to_vec()));
        cache.del(b"d", 0).unwrap();
        cache.check_invariants();
        assert_eq!(cache.keys(), vec![b"c".to_vec()]);
    }

    #[test]
    fn values_are_copies() {
        let cache = small(4, 8);
        cache.set(b"k", b"abc", 0, 0).unwrap();
        let mut value = cache.get(b"k", 0).unwrap();
        value[0] = b'z';
        assert_eq!(cache.get(b"k", 0), Some(b"abc".to_vec()));
        let mut buffer = b"stale".to_vec();
        assert!(cache.get_into(b"k", 0, &mut buffer));
        assert_eq!(buffer, b"abc");
        assert!(!cache.get_into(b"missing", 0, &mut buffer));
        assert!(buffer.is_empty());
    }

    #[test]
    fn hits_and_misses_are_counted() {
        // §6.4: "get increments a per-item hit counter".
        let cache = small(4, 8);
        cache.set(b"k", b"v", 0, 0).unwrap();
        assert_eq!(cache.get_item(b"k", 0).unwrap().hits, 0);
        assert_eq!(cache.get_item(b"k", 0).unwrap().hits, 1);
        assert_eq!(cache.get(b"x", 0), None);
        let stats = cache.stats();
        assert_eq!(
            (stats.hits, stats.misses, stats.items, stats.capacity),
            (2, 1, 1, 3)
        );
    }

    // ---- expiry (§6.4) ----

    #[test]
    fn expiry_is_absolute_and_reads_ignore_it_until_swept() {
        // §6.4: stored as now + expires; "Reads do not check expiry".
        let cache = small(10, 8);
        cache.set(b"k", b"v", 100, 1000).unwrap();
        assert_eq!(cache.get_item(b"k", 1000).unwrap().expires, 1100);
        assert_eq!(cache.get(b"k", 5000), Some(b"v".to_vec()));
        assert_eq!(cache.sweep_expired(1099), 0);
        assert_eq!(cache.sweep_expired(1100), 1);
        assert_eq!(cache.get(b"k", 1100), None);
        cache.check_invariants();
    }

    #[test]
    fn sweep_keeps_unexpired_and_immortal_items() {
        let cache = small(10, 8);
        cache.set(b"short", b"v", 10, 0).unwrap();
        cache.set(b"long", b"v", 100, 0).unwrap();
        cache.set(b"forever", b"v", 0, 0).unwrap();
        assert_eq!(cache.sweep_expired(50), 1);
        assert_eq!(cache.sweep_expired(60), 0);
        assert_eq!(cache.sweep_expired(100), 1);
        assert_eq!(cache.keys(), vec![b"forever".to_vec()]);
        assert_eq!(cache.sweep_expired(u64::MAX), 0);
    }

    #[test]
    fn update_replaces_expiry_even_with_zero() {
        // 2.0 core/cache.c: an update sets the expiry it is given (0 = never).
        let cache = small(10, 8);
        cache.set(b"k", b"v", 10, 0).unwrap();
        cache.update(b"k", b"w", 50, 5).unwrap();
        assert_eq!(cache.get_item(b"k", 5).unwrap().expires, 55);
        cache.update(b"k", b"x", 0, 6).unwrap();
        assert_eq!(cache.get_item(b"k", 6).unwrap().expires, 0);
        assert_eq!(cache.sweep_expired(1_000_000), 0);
    }

    #[test]
    fn absolute_expiry_for_udp_sync() {
        // §6.6: sync packets carry absolute expiries (ABSEXPIRE).
        let cache = small(10, 8);
        cache
            .store(b"k", b"v", Expiry::At(4242), StoreMode::Update, 10)
            .unwrap();
        assert_eq!(cache.get_item(b"k", 10).unwrap().expires, 4242);
    }

    #[test]
    fn lazy_expire_deletes_on_lookup() {
        // §6.4: "lazy_expire: a lookup deletes an expired item and reports a miss".
        let mut config = CacheConfig::new("lazy", 10);
        config.blocksize = 8;
        config.lazy_expire = true;
        let cache = Cache::new(config).unwrap();
        cache.set(b"k", b"v", 10, 0).unwrap();
        assert!(cache.exists(b"k", 9));
        assert_eq!(cache.get(b"k", 10), None);
        assert_eq!(cache.len(), 0);
        // A set over an expired key succeeds (the old item is gone).
        cache.set(b"j", b"v", 10, 0).unwrap();
        cache.set(b"j", b"w", 0, 20).unwrap();
        assert_eq!(cache.get(b"j", 20), Some(b"w".to_vec()));
        // The sweeper skips lazy caches.
        cache.set(b"s", b"v", 1, 20).unwrap();
        assert_eq!(cache.sweep_expired(100), 0);
        cache.check_invariants();
    }

    #[test]
    fn no_expire_caches_are_not_swept() {
        let mut config = CacheConfig::new("keep", 10);
        config.blocksize = 8;
        config.no_expire = true;
        let cache = Cache::new(config).unwrap();
        cache.set(b"k", b"v", 1, 0).unwrap();
        assert_eq!(cache.sweep_expired(100), 0);
        assert!(cache.exists(b"k", 100));
    }

    // ---- full-cache policies (2.0 cache_full) ----

    #[test]
    fn purge_lru_evicts_least_recently_used() {
        let mut config = CacheConfig::new("lru", 4);
        config.blocksize = 8;
        config.purge_lru = true;
        let cache = Cache::new(config).unwrap();
        cache.set(b"a", b"1", 0, 0).unwrap();
        cache.set(b"b", b"2", 0, 0).unwrap();
        cache.set(b"c", b"3", 0, 0).unwrap();
        // Reading `a` makes `b` the least recently used.
        cache.get(b"a", 0).unwrap();
        cache.set(b"d", b"4", 0, 0).unwrap();
        assert!(!cache.exists(b"b", 0));
        assert!(cache.exists(b"a", 0) && cache.exists(b"c", 0) && cache.exists(b"d", 0));
        // Updating `c` refreshes it: `a` goes next.
        cache.update(b"c", b"5", 0, 0).unwrap();
        cache.set(b"e", b"6", 0, 0).unwrap();
        assert!(!cache.exists(b"a", 0));
        cache.check_invariants();
    }

    #[test]
    fn clear_on_full_empties_then_stores() {
        let mut config = CacheConfig::new("clear", 3);
        config.blocksize = 8;
        config.clear_on_full = true;
        let cache = Cache::new(config).unwrap();
        cache.set(b"a", b"1", 0, 0).unwrap();
        cache.set(b"b", b"2", 0, 0).unwrap();
        cache.set(b"c", b"3", 0, 0).unwrap();
        assert_eq!(cache.keys(), vec![b"c".to_vec()]);
        cache.check_invariants();
    }

    #[test]
    fn sweep_on_full_frees_expired_items_at_most_every_n_seconds() {
        let mut config = CacheConfig::new("sweep", 3);
        config.blocksize = 8;
        config.sweep_on_full = 60;
        let cache = Cache::new(config).unwrap();
        cache.set(b"a", b"1", 5, 0).unwrap();
        cache.set(b"b", b"2", 0, 0).unwrap();
        cache.set(b"c", b"3", 0, 10).unwrap();
        assert!(!cache.exists(b"a", 10));
        cache.set(b"d", b"4", 1, 10).unwrap_err();
        // Rate limited: at 20 the next sweep is not yet allowed.
        cache.del(b"c", 20).unwrap();
        cache.set(b"e", b"5", 1, 20).unwrap();
        assert!(matches!(
            cache.set(b"f", b"6", 0, 30),
            Err(CacheError::Full(_))
        ));
        cache.set(b"f", b"6", 0, 70).unwrap();
        assert!(!cache.exists(b"e", 70));
    }

    // ---- bitmap mode (2.0 --cache2 bitmap=1) ----

    fn bitmap_cache(items: u64, blocks: u64, blocksize: u64) -> Cache {
        let mut config = CacheConfig::new("bitmap", items);
        config.blocksize = blocksize;
        config.blocks = blocks;
        config.bitmap = true;
        config.hashsize = 16;
        Cache::new(config).unwrap()
    }

    #[test]
    fn bitmap_values_span_blocks() {
        let cache = bitmap_cache(4, 8, 4);
        assert_eq!(cache.max_item_size(), 32);
        cache.set(b"big", &[1; 30], 0, 0).unwrap();
        assert_eq!(cache.get(b"big", 0), Some(vec![1; 30]));
        assert_eq!(cache.largest_free_run(), 0);
        assert!(matches!(
            cache.set(b"x", b"y", 0, 0),
            Err(CacheError::Full(_))
        ));
        // Shrinking by update frees blocks; the item reuses its own.
        cache.update(b"big", &[2; 4], 0, 0).unwrap();
        assert_eq!(cache.largest_free_run(), 7);
        cache.set(b"x", &[3; 28], 0, 0).unwrap();
        assert_eq!(cache.get(b"big", 0), Some(vec![2; 4]));
        assert_eq!(cache.get(b"x", 0), Some(vec![3; 28]));
        cache.check_invariants();
        assert_eq!(
            cache.set(b"huge", &[0; 33], 0, 0),
            Err(CacheError::ValueTooLarge { len: 33, max: 32 })
        );
    }

    #[test]
    fn bitmap_update_that_cannot_fit_keeps_the_old_value() {
        let cache = bitmap_cache(4, 4, 4);
        cache.set(b"a", &[1; 8], 0, 0).unwrap();
        cache.set(b"b", &[2; 8], 0, 0).unwrap();
        assert!(matches!(
            cache.update(b"a", &[3; 12], 0, 0),
            Err(CacheError::Full(_))
        ));
        assert_eq!(cache.get(b"a", 0), Some(vec![1; 8]));
        cache.check_invariants();
        cache.del(b"b", 0).unwrap();
        cache.update(b"a", &[3; 16], 0, 0).unwrap();
        assert_eq!(cache.get(b"a", 0), Some(vec![3; 16]));
        cache.check_invariants();
    }

    // ---- numbers (§6.4 cache_inc/dec/mul/div/num) ----

    #[test]
    fn math_matches_the_spec_transcript() {
        // §6.4 [V20]: inc 1, inc 5 → raw 8 bytes 6 LE; dec 2, mul 10, div 3 → 13.
        let cache = small(10, 64);
        assert_eq!(cache.inc(b"n", 1, 0, 0), Ok(1));
        assert_eq!(cache.inc(b"n", 5, 0, 0), Ok(6));
        assert_eq!(cache.get(b"n", 0), Some(6i64.to_ne_bytes().to_vec()));
        assert_eq!(cache.dec(b"n", 2, 0, 0), Ok(4));
        assert_eq!(cache.mul(b"n", 10, 0, 0), Ok(40));
        assert_eq!(cache.div(b"n", 3, 0, 0), Ok(13));
        assert_eq!(cache.num(b"n", 0), Some(13));
        assert_eq!(cache.num(b"missing", 0), None);
    }

    #[test]
    fn math_on_missing_keys_starts_from_math_initial() {
        // §6.4: "inc → delta, dec → -delta, mul → 0, div → 0" with math_initial 0.
        let cache = small(10, 64);
        assert_eq!(cache.dec(b"d", 3, 0, 0), Ok(-3));
        assert_eq!(cache.mul(b"m", 3, 0, 0), Ok(0));
        assert_eq!(cache.div(b"v", 3, 0, 0), Ok(0));
        let mut config = CacheConfig::new("initial", 10);
        config.blocksize = 64;
        config.math_initial = 10;
        let cache = Cache::new(config).unwrap();
        assert_eq!(cache.mul(b"m", 3, 0, 0), Ok(30));
        assert_eq!(cache.div(b"v", 4, 0, 0), Ok(2));
    }

    #[test]
    fn math_division_by_zero_stores_zero_and_overflow_wraps() {
        let cache = small(10, 64);
        cache.inc(b"n", 42, 0, 0).unwrap();
        assert_eq!(cache.div(b"n", 0, 0, 0), Ok(0));
        cache.inc(b"max", i64::MAX, 0, 0).unwrap();
        assert_eq!(cache.inc(b"max", 1, 0, 0), Ok(i64::MIN));
        cache.update(b"min", &i64::MIN.to_ne_bytes(), 0, 0).unwrap();
        assert_eq!(cache.div(b"min", -1, 0, 0), Ok(i64::MIN));
    }

    #[test]
    fn math_reads_the_first_eight_bytes_and_stores_eight() {
        let cache = small(10, 64);
        let mut raw = 7i64.to_ne_bytes().to_vec();
        raw.extend_from_slice(b"trailing");
        cache.set(b"n", &raw, 0, 0).unwrap();
        assert_eq!(cache.inc(b"n", 1, 0, 0), Ok(8));
        assert_eq!(cache.get(b"n", 0).unwrap().len(), 8);
        // Shorter values are zero-padded.
        cache.set(b"s", &[5], 0, 0).unwrap();
        assert_eq!(cache.num(b"s", 0), Some(5));
        assert_eq!(cache.inc(b"s", 1, 0, 0), Ok(6));
    }

    #[test]
    fn math_keeps_the_expiry_of_existing_items() {
        // §6.4: "Expiry is left untouched (FIXEXPIRE flag)" — but applies on creation.
        let cache = small(10, 64);
        assert_eq!(cache.inc(b"n", 1, 100, 1000), Ok(1));
        assert_eq!(cache.get_item(b"n", 1000).unwrap().expires, 1100);
        cache.inc(b"n", 1, 5, 1050).unwrap();
        assert_eq!(cache.get_item(b"n", 1050).unwrap().expires, 1100);
    }

    #[test]
    fn math_needs_room_for_eight_bytes() {
        let cache = small(10, 4);
        assert_eq!(
            cache.inc(b"n", 1, 0, 0),
            Err(CacheError::ValueTooLarge { len: 8, max: 4 })
        );
    }

    // ---- registry and identifiers ----

    #[test]
    fn caches_registry_default_and_lookup() {
        let caches =
            Caches::new([CacheConfig::new("first", 3), CacheConfig::new("second", 3)]).unwrap();
        assert_eq!(caches.len(), 2);
        assert_eq!(caches.default_cache().unwrap().name(), "first");
        assert_eq!(caches.by_name(b"").unwrap().name(), "first");
        assert_eq!(caches.by_name(b"second").unwrap().name(), "second");
        assert!(caches.by_name(b"third").is_none());
        assert!(Caches::none().default_cache().is_none());
        assert_eq!(
            Caches::new([CacheConfig::new("a", 3), CacheConfig::new("a", 3)]).unwrap_err(),
            CacheConfigError::DuplicateName("a".into())
        );
    }

    #[test]
    fn cache_identifiers_split_at_the_first_at_sign() {
        // §6.3 (2.0): `name`, `name@host:port`, `@host:port`.
        assert_eq!(
            CacheLocation::parse(b"foo"),
            CacheLocation::Local { name: b"foo" }
        );
        assert_eq!(
            CacheLocation::parse(b"foo@127.0.0.1:3031"),
            CacheLocation::Remote {
                name: b"foo",
                address: b"127.0.0.1:3031"
            }
        );
        assert_eq!(
            CacheLocation::parse(b"@/tmp/s@x"),
            CacheLocation::Remote {
                name: b"",
                address: b"/tmp/s@x"
            }
        );
    }

    // ---- concurrency ----

    #[test]
    fn concurrent_increments_lose_nothing() {
        let cache = Arc::new(small(16, 64));
        let threads: Vec<_> = (0..4)
            .map(|_| {
                let cache = Arc::clone(&cache);
                std::thread::spawn(move || {
                    for _ in 0..1000 {
                        cache.inc(b"counter", 1, 0, 0).unwrap();
                    }
                })
            })
            .collect();
        for thread in threads {
            thread.join().unwrap();
        }
        assert_eq!(cache.num(b"counter", 0), Some(4000));
    }

    #[test]
    fn concurrent_set_del_keeps_the_arena_consistent() {
        let cache = Arc::new(bitmap_cache(32, 64, 8));
        let threads: Vec<_> = (0..4u8)
            .map(|t| {
                let cache = Arc::clone(&cache);
                std::thread::spawn(move || {
                    for i in 0..500u32 {
                        let key = [t, u8::try_from(i % 10).unwrap()];
                        let len = usize::try_from(i % 20 + 1).unwrap();
                        let _ = cache.update(&key, &vec![t; len], 0, 0);
                        if i % 3 == 0 {
                            let _ = cache.del(&key, 0);
                        }
                        if let Some(value) = cache.get(&key, 0) {
                            assert!(value.iter().all(|&b| b == t));
                        }
                    }
                })
            })
            .collect();
        for thread in threads {
            thread.join().unwrap();
        }
        cache.check_invariants();
    }

    // ---- property: the cache behaves like a bounded map ----

    #[derive(Debug, Clone)]
    enum Op {
        Set(u8, Vec<u8>),
        Update(u8, Vec<u8>),
        Get(u8),
        Del(u8),
        Exists(u8),
        Clear,
    }

    fn op() -> impl Strategy<Value = Op> {
        let key = 0u8..12;
        let value = proptest::collection::vec(any::<u8>(), 0..12);
        prop_oneof![
            4 => (key.clone(), value.clone()).prop_map(|(k, v)| Op::Set(k, v)),
            3 => (key.clone(), value).prop_map(|(k, v)| Op::Update(k, v)),
            3 => key.clone().prop_map(Op::Get),
            2 => key.clone().prop_map(Op::Del),
            1 => key.prop_map(Op::Exists),
            1 => Just(Op::Clear),
        ]
    }

    /// Runs `ops` against `cache` and a HashMap model with `capacity` keys and values of
    /// at most `max_value` bytes. In bitmap mode a store may also fail for lack of
    /// contiguous blocks, which the model cannot predict: that outcome is checked against
    /// the arena instead.
    fn run_model(cache: &Cache, ops: &[Op], capacity: usize, max_value: usize, bitmap: bool) {
        let mut model: HashMap<Vec<u8>, Vec<u8>> = HashMap::new();
        for op in ops {
            match op {
                Op::Set(k, v) | Op::Update(k, v) => {
                    let key = vec![b'k', *k];
                    let is_set = matches!(op, Op::Set(..));
                    let result = if is_set {
                        cache.set(&key, v, 0, 0)
                    } else {
                        cache.update(&key, v, 0, 0)
                    };
                    let expected = if v.is_empty() {
                        Err(CacheError::EmptyValue)
                    } else if v.len() > max_value {
                        Err(CacheError::ValueTooLarge {
                            len: v.len(),
                            max: max_value as u64,
                        })
                    } else if is_set && model.contains_key(&key) {
                        Err(CacheError::KeyExists)
                    } else if !model.contains_key(&key) && model.len() == capacity {
                        Err(CacheError::Full(cache.name().to_owned()))
                    } else {
                        Ok(())
                    };
                    match (&result, &expected) {
                        (Err(CacheError::Full(_)), Ok(())) if bitmap => {
                            let needed = v.len().div_ceil(4);
                            assert!(cache.largest_free_run() < needed, "Full with room");
                        }
                        _ => assert_eq!(result, expected, "{op:?}"),
                    }
                    if result.is_ok() {
                        model.insert(key, v.clone());
                    }
                }
                Op::Get(k) => {
                    let key = vec![b'k', *k];
                    assert_eq!(cache.get(&key, 0), model.get(&key).cloned(), "{op:?}");
                }
                Op::Del(k) => {
                    let key = vec![b'k', *k];
                    let expected = if model.remove(&key).is_some() {
                        Ok(())
                    } else {
                        Err(CacheError::NotFound)
                    };
                    assert_eq!(cache.del(&key, 0), expected, "{op:?}");
                }
                Op::Exists(k) => {
                    let key = vec![b'k', *k];
                    assert_eq!(cache.exists(&key, 0), model.contains_key(&key));
                }
                Op::Clear => {
                    cache.clear();
                    model.clear();
                }
            }
            assert_eq!(cache.len(), model.len());
        }
        cache.check_invariants();
        let mut keys = cache.keys();
        keys.sort();
        let mut expected: Vec<_> = model.keys().cloned().collect();
        expected.sort();
        assert_eq!(keys, expected);
    }

    proptest! {
        #[test]
        fn cache_behaves_like_a_bounded_map(ops in proptest::collection::vec(op(), 1..200)) {
            let mut config = CacheConfig::new("model", 7);
            config.blocksize = 8;
            config.hashsize = 4;
            let cache = Cache::new(config).unwrap();
            run_model(&cache, &ops, 6, 8, false);
        }

        #[test]
        fn bitmap_cache_behaves_like_a_bounded_map(ops in proptest::collection::vec(op(), 1..200)) {
            let mut config = CacheConfig::new("model", 7);
            config.blocksize = 4;
            config.blocks = 10;
            config.bitmap = true;
            config.hashsize = 4;
            let cache = Cache::new(config).unwrap();
            run_model(&cache, &ops, 6, 40, true);
        }

        #[test]
        fn parsing_any_cache2_string_never_panics(s in ".{0,80}") {
            let _ = CacheConfig::from_cache2_option(&s);
        }
    }

    // ---- across processes (the arena is in shared memory) ----

    use crate::shm::{SharedCounters, testing};

    #[test]
    fn a_value_set_in_a_child_is_read_in_the_parent() {
        let cache = small(16, 64);
        cache.set(b"before", b"fork", 0, 0).unwrap();
        let child = testing::fork(|| {
            let ok = cache.get(b"before", 0).as_deref() == Some(&b"fork"[..])
                && cache.set(b"from", b"child", 0, 0).is_ok()
                && cache.del(b"before", 0).is_ok();
            i32::from(!ok)
        });
        assert_eq!(child.wait(), 0);
        assert_eq!(cache.get(b"from", 0), Some(b"child".to_vec()));
        assert!(!cache.exists(b"before", 0));
        assert_eq!(cache.len(), 1);
        // Hits and misses are shared too: the child's get counted.
        assert_eq!(cache.stats().hits, 2);
        cache.check_invariants();
    }

    #[test]
    fn two_processes_updating_one_cache_lose_nothing_and_keep_it_consistent() {
        let cache = bitmap_cache(32, 64, 8);
        let work = |tag: u8| {
            for i in 0..3000u32 {
                cache.inc(b"counter", 1, 0, 0).unwrap();
                let key = [tag, u8::try_from(i % 12).unwrap()];
                let len = usize::try_from(i % 20 + 1).unwrap();
                let _ = cache.update(&key, &[tag; 24][..len], 0, 0);
                if i % 3 == 0 {
                    let _ = cache.del(&key, 0);
                }
                let mut value = Vec::new();
                if cache.get_into(&key, 0, &mut value) {
                    assert!(value.iter().all(|&b| b == tag), "torn value");
                }
            }
        };
        let child = testing::fork(|| {
            work(b'c');
            0
        });
        work(b'p');
        assert_eq!(child.wait(), 0);
        assert_eq!(cache.num(b"counter", 0), Some(6000));
        cache.check_invariants();
        assert_eq!(cache.recovery_stats(), CacheRecoveryStats::default());
    }

    #[test]
    fn two_processes_evicting_from_one_lru_cache_keep_it_consistent() {
        // 24 keys into 7 usable slots from two processes: constant LRU evictions, the
        // most link-heavy path (chains, free stack and LRU list all change).
        let mut config = CacheConfig::new("lru", 8);
        config.blocksize = 16;
        config.hashsize = 4;
        config.purge_lru = true;
        let cache = Cache::new(config).unwrap();
        let work = |tag: u8| {
            let mut buffer = Vec::with_capacity(16);
            for i in 0..4000u32 {
                let key = [b'k', u8::try_from(i * 7 % 24).unwrap()];
                cache
                    .update(
                        &key,
                        &[tag; 16][..usize::try_from(i % 16 + 1).unwrap()],
                        0,
                        0,
                    )
                    .unwrap();
                if cache.get_into(&[b'k', u8::try_from(i % 24).unwrap()], 0, &mut buffer) {
                    assert!(!buffer.is_empty());
                }
                if i % 5 == 0 {
                    let _ = cache.del(&key, 0);
                }
            }
        };
        let child = testing::fork(|| {
            work(b'c');
            0
        });
        work(b'p');
        assert_eq!(child.wait(), 0);
        cache.check_invariants();
        assert!(cache.len() <= 7);
    }

    #[test]
    fn a_child_killed_holding_the_lock_does_not_wedge_the_parent() {
        let cache = small(8, 16);
        cache.set(b"kept", b"value", 0, 0).unwrap();
        let ready = SharedCounters::new(1).unwrap();
        let child = testing::fork(|| {
            cache.hold_lock_forever(false, &ready[0]);
            1
        });
        testing::wait_for(&ready[0]);
        child.kill();
        assert_eq!(child.wait(), -libc::SIGKILL);
        // The lock is taken over; the arena was consistent, so nothing is lost.
        assert_eq!(cache.get(b"kept", 0), Some(b"value".to_vec()));
        assert_eq!(
            cache.recovery_stats(),
            CacheRecoveryStats {
                recoveries: 1,
                clears: 0
            }
        );
        cache.set(b"new", b"1", 0, 0).unwrap();
        cache.check_invariants();
    }

    #[test]
    fn a_half_finished_update_of_a_dead_process_clears_the_cache() {
        let mut config = CacheConfig::new("lru", 8);
        config.blocksize = 16;
        config.purge_lru = true;
        let cache = Cache::new(config).unwrap();
        cache.set(b"a", b"1", 0, 0).unwrap();
        cache.set(b"b", b"2", 0, 0).unwrap();
        let ready = SharedCounters::new(1).unwrap();
        let child = testing::fork(|| {
            cache.hold_lock_forever(true, &ready[0]);
            1
        });
        testing::wait_for(&ready[0]);
        child.kill();
        assert_eq!(child.wait(), -libc::SIGKILL);
        // The leaked slot makes the arena inconsistent: it is cleared, not trusted.
        assert_eq!(cache.get(b"a", 0), None);
        assert!(cache.is_empty());
        assert_eq!(
            cache.recovery_stats(),
            CacheRecoveryStats {
                recoveries: 1,
                clears: 1
            }
        );
        cache.check_invariants();
        // Every slot is usable again.
        for i in 0..7u8 {
            cache.set(&[b'k', i], b"v", 0, 0).unwrap();
        }
        cache.check_invariants();
    }

    #[test]
    fn validation_catches_corruption() {
        let cache = small(8, 16);
        cache.set(b"a", b"1", 0, 0).unwrap();
        cache.set(b"b", b"2", 0, 0).unwrap();
        cache.with_arena(|arena| {
            let slot = arena.find(b"a", HashAlgorithm::Djb33x.hash(b"a")).unwrap();
            arena.header_mut(slot).unwrap().chain_next = slot;
        });
        assert!(cache.check_consistency().is_err());
        cache.clear();
        cache.with_arena(|arena| arena.meta.len = 3);
        assert_eq!(
            cache.check_consistency(),
            Err("slots are neither used nor free")
        );
    }
}
