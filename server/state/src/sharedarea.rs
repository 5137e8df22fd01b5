//! uWSGI's shared areas (`--sharedarea`, spec §8.2): raw byte areas shared by all workers,
//! addressed by id (the order of the options, from 0) and byte offset, backing
//! `uwsgi.sharedarea_*`.
//!
//! # Semantics (uWSGI 2.0, `core/sharedarea.c`)
//!
//! * `--sharedarea N` creates an area of N pages of 4096 bytes; the key/value form
//!   `pages=N` or `size=BYTES` (rounded up to whole pages) is accepted too.
//! * Every access names the area id first (2.0); an unknown id is an error.
//! * Bounds are 2.0's: an access of `len` bytes at `pos` needs `pos < size` and
//!   `pos + len <= size` — the last byte is reachable (1.4's `>=` check lost it).
//! * [`SharedAreas::read`] with `len` 0 reads to the end of the area.
//! * Integers (`read8/16/32/64`, `write…`, `inc…`, `dec…`) are signed and in native byte
//!   order; increments wrap. `readbyte`/`writebyte`/`readlong`/`writelong`/`inclong` are
//!   the 8- and 64-bit ones.
//! * Writes and increments count as updates ([`SharedAreas::updates`]), reads as hits;
//!   uWSGI uses the update counter to let `sharedarea_wait` notice changes.
//!
//! Errors: uWSGI 2.0 raises `ValueError` for every failure here (1.4 returned `None`).
//!
//! # Memory layout
//!
//! Each area is its own shared mapping created before the workers fork
//! ([`SharedMutex`]: a process-shared lock word, then the area's bytes, page-aligned
//! after the first cache line), zero-filled and touched lazily by the OS, plus two shared
//! atomic counters (hits, updates). A write in one worker is read by every other.
//! uWSGI guards each area with a process-shared rwlock; here the lock is exclusive, so
//! concurrent readers of one area take turns (accesses copy a few bytes under it).
//! A worker that dies holding an area's lock leaves at worst a torn write (as in uWSGI):
//! the next access takes the lock over and the bytes are used as they are.
//!
//! # Limits
//!
//! | what | limit |
//! |---|---|
//! | pages per area | ≥ 1 (uWSGI accepts 0 and then computes a wrapped size) |
//! | page | 4096 bytes |
//! | offsets | `u64`, checked without overflow (1.4 let negative offsets wrap) |
//!
//! # Differences from uWSGI
//!
//! `inc64`/`dec64` check 8 bytes (2.0 checks 4 and can touch 4 bytes past the end);
//! `file=`, `fd=` and `ptr=` areas are not supported.

use std::sync::atomic::{AtomicU64, Ordering};

use super::options::{self, NumberError};
use super::shm::{SharedCounters, SharedMutex};

/// Bytes per page.
pub const PAGE_SIZE: u64 = 4096;

/// One `--sharedarea` option.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SharedAreaConfig {
    /// Pages of 4096 bytes.
    pub pages: u64,
}

/// Why a `--sharedarea` option was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SharedAreaConfigError {
    /// A number that is not one.
    #[error("sharedarea: {0}")]
    Number(#[from] NumberError),
    /// No pages (and no size).
    #[error("you need to set a size for a sharedarea: {0:?}")]
    NoSize(String),
    /// `file=`, `fd=` or `ptr=`: areas backed by something else than memory.
    #[error("sharedarea key {0:?} is not supported")]
    Unsupported(String),
    /// The area does not fit in memory.
    #[error("a sharedarea of {0} pages cannot be allocated")]
    TooLarge(u64),
}

impl SharedAreaConfig {
    /// An area of `pages` pages.
    pub fn pages(pages: u64) -> Self {
        SharedAreaConfig { pages }
    }

    /// Parses one `--sharedarea` value: a number of pages, or `pages=N` / `size=BYTES`
    /// (`0x` hexadecimal allowed for `size`, as in uWSGI).
    pub fn from_option(option: &str) -> Result<Self, SharedAreaConfigError> {
        if !option.contains('=') {
            let pages = options::parse_u64("sharedarea", option)?;
            return Self::checked(pages, option);
        }
        let mut pages = None;
        let mut size_pages = None;
        for kv in options::parse_kvlist(option) {
            match kv.key.as_str() {
                "pages" => pages = Some(options::parse_u64("pages", &kv.value)?),
                "size" => {
                    let bytes = match kv.value.strip_prefix("0x") {
                        Some(hex) => {
                            u64::from_str_radix(hex, 16).map_err(|_| NumberError::NotANumber {
                                option: "size".into(),
                                value: kv.value.clone(),
                            })?
                        }
                        None => options::parse_u64("size", &kv.value)?,
                    };
                    size_pages = Some(bytes.div_ceil(PAGE_SIZE));
                }
                "file" | "fd" | "ptr" | "offset" => {
                    return Err(SharedAreaConfigError::Unsupported(kv.key));
                }
                _ => {}
            }
        }
        // As in uWSGI, `pages` wins over `size`.
        Self::checked(pages.or(size_pages).unwrap_or(0), option)
    }

    fn checked(pages: u64, option: &str) -> Result<Self, SharedAreaConfigError> {
        if pages == 0 {
            return Err(SharedAreaConfigError::NoSize(option.to_owned()));
        }
        Ok(SharedAreaConfig { pages })
    }

    /// Size in bytes.
    pub fn size(&self) -> u64 {
        self.pages.saturating_mul(PAGE_SIZE)
    }
}

/// Why an access was refused (uWSGI 2.0 raises `ValueError`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SharedAreaError {
    /// No area with this id.
    #[error("sharedarea {id} does not exist ({count} configured)")]
    NoSuchArea {
        /// The id asked for.
        id: usize,
        /// Number of areas.
        count: usize,
    },
    /// The access does not fit inside the area.
    #[error("sharedarea {id}: {len} byte(s) at {pos} do not fit in {size} bytes")]
    OutOfBounds {
        /// Area id.
        id: usize,
        /// Offset asked for.
        pos: u64,
        /// Length asked for.
        len: u64,
        /// Size of the area.
        size: u64,
    },
}

/// One area: its bytes behind a process-shared lock, and its counters.
#[derive(Debug)]
struct Area {
    pages: u64,
    shared: SharedMutex,
    /// `[hits, updates]`, atomics in shared memory (reads only count, so they need
    /// no lock for that).
    counters: SharedCounters,
}

const HITS: usize = 0;
const UPDATES: usize = 1;

impl Area {
    fn hits(&self) -> &AtomicU64 {
        &self.counters[HITS]
    }

    fn updates(&self) -> &AtomicU64 {
        &self.counters[UPDATES]
    }
}

/// Counters of one area.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SharedAreaStats {
    /// Pages.
    pub pages: u64,
    /// Bytes.
    pub size: u64,
    /// Writes and increments so far.
    pub updates: u64,
    /// Reads so far.
    pub hits: u64,
}

/// Signed integers stored in an area: 8, 16, 32 or 64 bits, native byte order.
pub trait AreaInt: Copy + std::fmt::Debug + Send + Sync + 'static {
    /// Width in bytes.
    const LEN: usize;
    /// Reads from exactly `LEN` bytes.
    fn read(bytes: &[u8]) -> Self;
    /// Writes into exactly `LEN` bytes.
    fn write(self, bytes: &mut [u8]);
    /// Wrapping addition.
    fn add(self, other: Self) -> Self;
    /// Wrapping subtraction.
    fn sub(self, other: Self) -> Self;
}

macro_rules! area_int {
    ($($t:ty),*) => {$(
        impl AreaInt for $t {
            const LEN: usize = std::mem::size_of::<$t>();
            fn read(bytes: &[u8]) -> Self {
                <[u8; std::mem::size_of::<$t>()]>::try_from(bytes).map_or(0, <$t>::from_ne_bytes)
            }
            fn write(self, bytes: &mut [u8]) {
                if bytes.len() == Self::LEN {
                    bytes.copy_from_slice(&self.to_ne_bytes());
                }
            }
            fn add(self, other: Self) -> Self {
                self.wrapping_add(other)
            }
            fn sub(self, other: Self) -> Self {
                self.wrapping_sub(other)
            }
        }
    )*};
}

area_int!(i8, i16, i32, i64);

/// All shared areas of a server, by id.
#[derive(Debug, Default)]
pub struct SharedAreas {
    areas: Vec<Area>,
}

impl SharedAreas {
    /// No area (uWSGI without `--sharedarea`).
    pub fn none() -> Self {
        SharedAreas::default()
    }

    /// One area per config, ids in order from 0.
    pub fn new(
        configs: impl IntoIterator<Item = SharedAreaConfig>,
    ) -> Result<Self, SharedAreaConfigError> {
        let mut areas = Vec::new();
        for config in configs {
            if config.pages == 0 {
                return Err(SharedAreaConfigError::NoSize(String::from("0")));
            }
            let too_large = || SharedAreaConfigError::TooLarge(config.pages);
            let size = config.pages.checked_mul(PAGE_SIZE).ok_or_else(too_large)?;
            let bytes = usize::try_from(size)
                .ok()
                .filter(|&b| isize::try_from(b).is_ok())
                .ok_or_else(too_large)?;
            areas.push(Area {
                pages: config.pages,
                shared: SharedMutex::new(bytes).map_err(|_| too_large())?,
                counters: SharedCounters::new(2).map_err(|_| too_large())?,
            });
        }
        Ok(SharedAreas { areas })
    }

    /// Number of areas.
    pub fn len(&self) -> usize {
        self.areas.len()
    }

    /// `true` without any area.
    pub fn is_empty(&self) -> bool {
        self.areas.is_empty()
    }

    fn area(&self, id: usize) -> Result<&Area, SharedAreaError> {
        self.areas.get(id).ok_or(SharedAreaError::NoSuchArea {
            id,
            count: self.areas.len(),
        })
    }

    /// The byte range of an access, checked as uWSGI 2.0 checks it.
    fn range(
        id: usize,
        size: usize,
        pos: u64,
        len: u64,
    ) -> Result<std::ops::Range<usize>, SharedAreaError> {
        let out = || SharedAreaError::OutOfBounds {
            id,
            pos,
            len,
            size: u64::try_from(size).unwrap_or(u64::MAX),
        };
        let start = usize::try_from(pos).map_err(|_| out())?;
        let len = usize::try_from(len).map_err(|_| out())?;
        let end = start.checked_add(len).ok_or_else(out)?;
        if start >= size || end > size {
            return Err(out());
        }
        Ok(start..end)
    }

    /// Size of area `id` in bytes.
    pub fn size(&self, id: usize) -> Result<u64, SharedAreaError> {
        Ok(self.area(id)?.pages.saturating_mul(PAGE_SIZE))
    }

    /// `sharedarea_read(id, pos, len)`: `len` bytes at `pos`; `len` 0 reads to the end.
    pub fn read(&self, id: usize, pos: u64, len: u64) -> Result<Vec<u8>, SharedAreaError> {
        let area = self.area(id)?;
        let data = area.shared.lock();
        let size = data.len();
        let len = if len == 0 {
            u64::try_from(size).unwrap_or(u64::MAX).saturating_sub(pos)
        } else {
            len
        };
        let range = Self::range(id, size, pos, len)?;
        area.hits().fetch_add(1, Ordering::Relaxed);
        Ok(data.get(range).unwrap_or_default().to_vec())
    }

    /// `sharedarea_write(id, pos, bytes)`.
    pub fn write(&self, id: usize, pos: u64, bytes: &[u8]) -> Result<(), SharedAreaError> {
        let area = self.area(id)?;
        let mut data = area.shared.lock();
        let len = u64::try_from(bytes.len()).unwrap_or(u64::MAX);
        let range = Self::range(id, data.len(), pos, len)?;
        if let Some(target) = data.get_mut(range) {
            target.copy_from_slice(bytes);
        }
        area.updates().fetch_add(1, Ordering::Relaxed);
        Ok(())
    }

    /// `sharedarea_read8/16/32/64(id, pos)`.
    pub fn read_int<T: AreaInt>(&self, id: usize, pos: u64) -> Result<T, SharedAreaError> {
        let area = self.area(id)?;
        let data = area.shared.lock();
        let range = Self::range(id, data.len(), pos, T::LEN as u64)?;
        area.hits().fetch_add(1, Ordering::Relaxed);
        Ok(T::read(data.get(range).unwrap_or_default()))
    }

    /// `sharedarea_write8/16/32/64(id, pos, value)`.
    pub fn write_int<T: AreaInt>(
        &self,
        id: usize,
        pos: u64,
        value: T,
    ) -> Result<(), SharedAreaError> {
        let area = self.area(id)?;
        let mut data = area.shared.lock();
        let range = Self::range(id, data.len(), pos, T::LEN as u64)?;
        if let Some(target) = data.get_mut(range) {
            value.write(target);
        }
        area.updates().fetch_add(1, Ordering::Relaxed);
        Ok(())
    }

    /// `sharedarea_inc8/16/32/64(id, pos, amount)`: adds (wrapping) and returns the new
    /// value (1.4's `inclong` returned it; 2.0 returns `None` to Python).
    pub fn inc<T: AreaInt>(&self, id: usize, pos: u64, amount: T) -> Result<T, SharedAreaError> {
        self.modify(id, pos, |value: T| value.add(amount))
    }

    /// `sharedarea_dec8/16/32/64(id, pos, amount)`: subtracts (wrapping), returns the
    /// new value.
    pub fn dec<T: AreaInt>(&self, id: usize, pos: u64, amount: T) -> Result<T, SharedAreaError> {
        self.modify(id, pos, |value: T| value.sub(amount))
    }

    fn modify<T: AreaInt>(
        &self,
        id: usize,
        pos: u64,
        change: impl FnOnce(T) -> T,
    ) -> Result<T, SharedAreaError> {
        let area = self.area(id)?;
        let mut data = area.shared.lock();
        let range = Self::range(id, data.len(), pos, T::LEN as u64)?;
        let Some(target) = data.get_mut(range) else {
            return Ok(T::read(&[]));
        };
        let value = change(T::read(target));
        value.write(target);
        area.updates().fetch_add(1, Ordering::Relaxed);
        Ok(value)
    }

    /// `sharedarea_readbyte(id, pos)`: a signed byte.
    pub fn read_byte(&self, id: usize, pos: u64) -> Result<i8, SharedAreaError> {
        self.read_int(id, pos)
    }

    /// `sharedarea_writebyte(id, pos, value)`.
    pub fn write_byte(&self, id: usize, pos: u64, value: i8) -> Result<(), SharedAreaError> {
        self.write_int(id, pos, value)
    }

    /// `sharedarea_readlong(id, pos)`: a signed 64-bit integer.
    pub fn read_long(&self, id: usize, pos: u64) -> Result<i64, SharedAreaError> {
        self.read_int(id, pos)
    }

    /// `sharedarea_writelong(id, pos, value)`.
    pub fn write_long(&self, id: usize, pos: u64, value: i64) -> Result<(), SharedAreaError> {
        self.write_int(id, pos, value)
    }

    /// `sharedarea_inclong(id, pos, amount=1)`: returns the new value.
    pub fn inc_long(&self, id: usize, pos: u64, amount: i64) -> Result<i64, SharedAreaError> {
        self.inc(id, pos, amount)
    }

    /// The address and length of area `id`'s bytes, for `uwsgi.sharedarea_memoryview`
    /// (see [`SharedMutex::data_ptr`] for what a user of the address answers for). The
    /// address is valid as long as `self`.
    pub fn raw_area(&self, id: usize) -> Result<(std::ptr::NonNull<u8>, usize), SharedAreaError> {
        let area = self.area(id)?;
        Ok((area.shared.data_ptr(), area.shared.len()))
    }

    /// `sharedarea_update(id)`: marks the area as changed without writing.
    pub fn mark_updated(&self, id: usize) -> Result<(), SharedAreaError> {
        let area = self.area(id)?;
        area.updates().fetch_add(1, Ordering::Relaxed);
        Ok(())
    }

    /// The update counter of area `id` (changes on every write, increment and
    /// [`SharedAreas::mark_updated`]).
    pub fn updates(&self, id: usize) -> Result<u64, SharedAreaError> {
        let area = self.area(id)?;
        Ok(area.updates().load(Ordering::Relaxed))
    }

    /// Counters of area `id`.
    pub fn stats(&self, id: usize) -> Result<SharedAreaStats, SharedAreaError> {
        let area = self.area(id)?;
        Ok(SharedAreaStats {
            pages: area.pages,
            size: area.pages.saturating_mul(PAGE_SIZE),
            updates: area.updates().load(Ordering::Relaxed),
            hits: area.hits().load(Ordering::Relaxed),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    fn areas(pages: &[u64]) -> SharedAreas {
        SharedAreas::new(pages.iter().map(|&p| SharedAreaConfig::pages(p))).unwrap()
    }

    #[test]
    fn option_forms() {
        // §8.2: `--sharedarea N` pages; 2.0 keyval `pages=`/`size=`.
        assert_eq!(SharedAreaConfig::from_option("2").unwrap().pages, 2);
        assert_eq!(SharedAreaConfig::from_option("pages=3").unwrap().pages, 3);
        assert_eq!(SharedAreaConfig::from_option("size=4097").unwrap().pages, 2);
        assert_eq!(
            SharedAreaConfig::from_option("size=0x2000").unwrap().pages,
            2
        );
        assert_eq!(
            SharedAreaConfig::from_option("size=8192,pages=5")
                .unwrap()
                .pages,
            5
        );
        assert!(matches!(
            SharedAreaConfig::from_option("0"),
            Err(SharedAreaConfigError::NoSize(_))
        ));
        assert!(matches!(
            SharedAreaConfig::from_option("x"),
            Err(SharedAreaConfigError::Number(_))
        ));
        assert!(matches!(
            SharedAreaConfig::from_option("file=/dev/zero,size=10"),
            Err(SharedAreaConfigError::Unsupported(_))
        ));
        assert!(matches!(
            SharedAreaConfig::from_option("foo=1"),
            Err(SharedAreaConfigError::NoSize(_))
        ));
        assert!(matches!(
            SharedAreas::new([SharedAreaConfig::pages(u64::MAX)]),
            Err(SharedAreaConfigError::TooLarge(_))
        ));
    }

    #[test]
    fn ids_are_checked() {
        let a = areas(&[1, 2]);
        assert_eq!(a.len(), 2);
        assert_eq!(a.size(1), Ok(8192));
        assert_eq!(
            a.read(2, 0, 1),
            Err(SharedAreaError::NoSuchArea { id: 2, count: 2 })
        );
        assert!(SharedAreas::none().read(0, 0, 1).is_err());
    }

    #[test]
    fn read_write_round_trip() {
        let a = areas(&[1]);
        a.write(0, 10, b"hello").unwrap();
        assert_eq!(a.read(0, 10, 5).unwrap(), b"hello");
        assert_eq!(a.read(0, 9, 7).unwrap(), b"\0hello\0");
    }

    #[test]
    fn bounds_are_2_0_inclusive_of_the_last_byte() {
        // §8.2 (2.0): `pos+len > max_pos+1` is refused, so the last byte is reachable.
        let a = areas(&[1]);
        assert_eq!(a.read(0, 4088, 8).unwrap().len(), 8);
        a.write(0, 4095, b"z").unwrap();
        assert_eq!(a.read_byte(0, 4095), Ok(i8::from_ne_bytes([b'z'])));
        assert!(matches!(
            a.read(0, 4089, 8),
            Err(SharedAreaError::OutOfBounds { .. })
        ));
        assert!(matches!(
            a.write(0, 4095, b"zz"),
            Err(SharedAreaError::OutOfBounds { .. })
        ));
        assert!(matches!(
            a.read(0, 4096, 1),
            Err(SharedAreaError::OutOfBounds { .. })
        ));
        assert!(matches!(
            a.read_long(0, 4089),
            Err(SharedAreaError::OutOfBounds { .. })
        ));
        // Offsets that would overflow are refused, never wrapped (§10.2 #10).
        assert!(matches!(
            a.read(0, u64::MAX, 2),
            Err(SharedAreaError::OutOfBounds { .. })
        ));
        assert!(matches!(
            a.inc_long(0, u64::MAX - 3, 1),
            Err(SharedAreaError::OutOfBounds { .. })
        ));
    }

    #[test]
    fn read_with_len_zero_reads_to_the_end() {
        // §8.2 (2.0): `len=0 → to end`.
        let a = areas(&[1]);
        assert_eq!(a.read(0, 0, 0).unwrap().len(), 4096);
        assert_eq!(a.read(0, 4000, 0).unwrap().len(), 96);
        assert!(a.read(0, 4096, 0).is_err());
    }

    #[test]
    fn integers_are_native_endian_and_wrap() {
        let a = areas(&[1]);
        a.write_long(0, 0, 0x0102_0304_0506_0708).unwrap();
        assert_eq!(
            a.read(0, 0, 8).unwrap(),
            0x0102_0304_0506_0708i64.to_ne_bytes()
        );
        assert_eq!(a.read_long(0, 0), Ok(0x0102_0304_0506_0708));
        assert_eq!(a.inc_long(0, 0, 1), Ok(0x0102_0304_0506_0709));
        a.write_byte(0, 100, -1).unwrap();
        assert_eq!(a.read_byte(0, 100), Ok(-1));
        assert_eq!(a.read(0, 100, 1).unwrap(), [0xff]);
        a.write_int::<i32>(0, 200, i32::MAX).unwrap();
        assert_eq!(a.inc::<i32>(0, 200, 1), Ok(i32::MIN));
        assert_eq!(a.dec::<i16>(0, 300, 1), Ok(-1));
        assert_eq!(a.read_int::<i16>(0, 300), Ok(-1));
        assert_eq!(a.inc::<i8>(0, 400, 5), Ok(5));
    }

    #[test]
    fn updates_and_hits_are_counted() {
        let a = areas(&[1]);
        a.write(0, 0, b"x").unwrap();
        a.inc_long(0, 8, 1).unwrap();
        a.mark_updated(0).unwrap();
        a.read(0, 0, 1).unwrap();
        let stats = a.stats(0).unwrap();
        assert_eq!((stats.updates, stats.hits, stats.size), (3, 1, 4096));
        assert_eq!(a.updates(0), Ok(3));
        // Failed accesses change nothing.
        let _ = a.write(0, 5000, b"x");
        assert_eq!(a.updates(0), Ok(3));
    }

    #[test]
    fn concurrent_increments_lose_nothing() {
        let a = Arc::new(areas(&[1]));
        let threads: Vec<_> = (0..4)
            .map(|_| {
                let a = Arc::clone(&a);
                std::thread::spawn(move || {
                    for _ in 0..1000 {
                        a.inc_long(0, 16, 1).unwrap();
                        a.inc::<i32>(0, 64, 2).unwrap();
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        assert_eq!(a.read_long(0, 16), Ok(4000));
        assert_eq!(a.read_int::<i32>(0, 64), Ok(8000));
    }

    // ---- across processes ----

    use crate::shm::testing;

    #[test]
    fn writes_are_visible_across_fork_and_increments_are_exclusive() {
        let a = areas(&[1, 1]);
        a.write(1, 0, b"parent").unwrap();
        let child = testing::fork(|| {
            let ok = a.read(1, 0, 6).as_deref() == Ok(&b"parent"[..])
                && a.write(1, 100, b"from the child").is_ok();
            for _ in 0..5000 {
                a.inc_long(0, 8, 1).unwrap();
            }
            i32::from(!ok)
        });
        for _ in 0..5000 {
            a.inc_long(0, 8, 1).unwrap();
        }
        assert_eq!(child.wait(), 0);
        assert_eq!(a.read(1, 100, 14).unwrap(), b"from the child");
        assert_eq!(a.read_long(0, 8), Ok(10_000));
        let stats = a.stats(0).unwrap();
        assert_eq!(stats.updates, 10_000);
        assert_eq!(a.updates(1), Ok(2));
    }
}
