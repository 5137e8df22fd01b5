//! Memory shared between a master and the worker processes it forks.
//!
//! uWSGI keeps its caches, queue, shared areas, locks and per-worker scoreboard in
//! anonymous `MAP_SHARED` mappings created before `fork(2)`, so every worker sees the
//! same bytes. This module gives the same thing with a safe interface:
//!
//! * [`SharedCounters`]: an array of `AtomicU64` (scoreboards, counters, timestamps).
//! * [`SharedMutex`]: a byte area guarded by a process-shared lock. The lock is a futex
//!   word holding the owner's pid, so a process killed while holding it (`kill -9`,
//!   harakiri) does not wedge the others: a waiter that finds the owner gone takes the
//!   lock over and the guard reports it ([`SharedGuard::recovered`]).
//!
//! * [`SharedLocks`]: bare [`LockWord`]s (the same lock, taken and released by explicit
//!   calls, with a timeout if wanted) for locks held across calls (`uwsgi.lock(n)`).
//! * [`Region`] / [`RegionSet`]: typed regions of a [`SharedMutex`]'s area (types that
//!   derive zerocopy's `FromBytes + IntoBytes`), checked once for bounds, alignment and
//!   overlap; [`SharedGuard::carve_all`] then cuts a locked area into `&mut [T]`s with
//!   one comparison (the cache's arena view, built on every operation).
//!
//! This is the only module of the crate with `unsafe` code: creating and removing the
//! mapping, turning its bytes into atomics or slices while the lock is held, registering
//! the `pthread_atfork` handler that refreshes the cached pid, and (tests only) `fork`,
//! `waitpid` and `kill`.
//!
//! Rules for users: create the objects **before** forking; never fork while holding a
//! guard (the child would inherit a lock owned by a live parent).
#![allow(unsafe_code)]

use std::fmt;
use std::io;
use std::marker::PhantomData;
use std::ops::{Deref, DerefMut};
use std::ptr::NonNull;
use std::sync::atomic::{AtomicU8, AtomicU32, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use rustix::mm::{MapFlags, ProtFlags};
use rustix::thread::futex;
use zerocopy::{FromBytes, IntoBytes};

/// An anonymous shared mapping, zero-filled, unmapped on drop. Forked children inherit
/// it and see every write; the parent and children each drop their own view.
struct Mapping {
    ptr: NonNull<u8>,
    len: usize,
}

// SAFETY: the mapping is plain memory owned by this value; all access to its bytes goes
// through atomics or through `SharedMutex`'s lock.
unsafe impl Send for Mapping {}
// SAFETY: as above; `&Mapping` only hands out atomics or lock-guarded slices.
unsafe impl Sync for Mapping {}

impl Mapping {
    fn new(len: usize) -> io::Result<Mapping> {
        let len = len.max(1);
        // SAFETY: a fresh anonymous mapping at an address the kernel chooses aliases
        // nothing that Rust knows about.
        let ptr = unsafe {
            rustix::mm::mmap_anonymous(
                std::ptr::null_mut(),
                len,
                ProtFlags::READ | ProtFlags::WRITE,
                MapFlags::SHARED,
            )
        }?;
        let ptr = NonNull::new(ptr.cast::<u8>())
            .ok_or_else(|| io::Error::other("mmap returned a null mapping"))?;
        Ok(Mapping { ptr, len })
    }
}

impl Drop for Mapping {
    fn drop(&mut self) {
        // SAFETY: `ptr`/`len` are exactly what mmap returned, and no reference into the
        // mapping outlives `self` (they all borrow from the owner of this Mapping).
        let _ = unsafe { rustix::mm::munmap(self.ptr.as_ptr().cast(), self.len) };
    }
}

/// `count` 64-bit atomics in shared memory, all starting at 0.
pub struct SharedCounters {
    mapping: Mapping,
    count: usize,
}

impl SharedCounters {
    /// Maps `count` zeroed counters.
    pub fn new(count: usize) -> io::Result<SharedCounters> {
        let bytes = count
            .checked_mul(std::mem::size_of::<AtomicU64>())
            .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "too many counters"))?;
        Ok(SharedCounters {
            mapping: Mapping::new(bytes)?,
            count,
        })
    }
}

impl Deref for SharedCounters {
    type Target = [AtomicU64];

    fn deref(&self) -> &[AtomicU64] {
        // SAFETY: the mapping is page-aligned, zero-initialised (a valid AtomicU64 is any
        // bit pattern), at least `count * 8` bytes, and lives as long as `self`. Atomics
        // may alias across threads and processes by design.
        unsafe { std::slice::from_raw_parts(self.mapping.ptr.as_ptr().cast(), self.count) }
    }
}

impl fmt::Debug for SharedCounters {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SharedCounters")
            .field("count", &self.count)
            .finish()
    }
}

/// The data area starts this far into the mapping, after the lock word: a cache line,
/// so the data is 64-byte aligned and the lock has its line to itself.
const DATA_OFFSET: usize = 64;

/// Set in the lock word while some process may be sleeping on it.
const CONTENDED: u32 = 1 << 31;

/// How long a waiter sleeps before checking whether the owner is still alive.
const OWNER_CHECK_EVERY: Duration = Duration::from_millis(100);

/// Spins before sleeping: most critical sections here are a few hundred nanoseconds.
const SPINS: u32 = 100;

/// A process-shared lock in one 32-bit word of shared memory: 0 when free, else the
/// owner's pid (with bit 31 set while someone may sleep on it). A waiter that
/// finds the owner's process gone takes the lock over and is told so.
///
/// The lock is owned by a *process*: any thread of the owner may release it. Only
/// reachable inside a shared mapping ([`SharedMutex`], [`SharedLocks`]).
#[repr(transparent)]
pub struct LockWord(AtomicU32);

/// How a lock was taken.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Acquired {
    /// It was free (or released by its owner).
    Free,
    /// Its owner died holding it: whatever it guards may be half-updated.
    Recovered,
}

impl LockWord {
    /// Takes the lock, waiting as long as it takes.
    pub fn lock(&self) -> Acquired {
        let me = current_pid();
        if self.try_take(me) {
            return Acquired::Free;
        }
        for _ in 0..SPINS {
            std::hint::spin_loop();
            if self.0.load(Ordering::Relaxed) == 0 && self.try_take(me) {
                return Acquired::Free;
            }
        }
        loop {
            if let Some(how) = self.lock_contended(me, None) {
                return how;
            }
        }
    }

    /// Takes the lock, giving up after `timeout` (`None`). A zero timeout only tries
    /// once (a dead owner is still taken over).
    pub fn lock_timeout(&self, timeout: Duration) -> Option<Acquired> {
        let me = current_pid();
        if self.try_take(me) {
            return Some(Acquired::Free);
        }
        let deadline = Instant::now().checked_add(timeout);
        self.lock_contended(me, deadline)
    }

    /// Takes the lock if it is free now.
    pub fn try_lock(&self) -> bool {
        self.try_take(current_pid())
    }

    fn try_take(&self, me: u32) -> bool {
        self.0
            .compare_exchange(0, me, Ordering::Acquire, Ordering::Relaxed)
            .is_ok()
    }

    /// Waits for the lock until `deadline` (forever without one); `None` when the
    /// deadline passed first. The holder's liveness is only checked when a nap ends
    /// without a wake-up (or at the deadline), never on the way to sleep: a `kill(pid,
    /// 0)` per contended acquisition would cost more than the critical sections.
    #[cold]
    fn lock_contended(&self, me: u32, deadline: Option<Instant>) -> Option<Acquired> {
        let word = &self.0;
        loop {
            let current = word.load(Ordering::Relaxed);
            if current == 0 {
                // Someone else may be asleep: keep the contended mark so our unlock
                // wakes them.
                if word
                    .compare_exchange(0, me | CONTENDED, Ordering::Acquire, Ordering::Relaxed)
                    .is_ok()
                {
                    return Some(Acquired::Free);
                }
                continue;
            }
            let mut nap = OWNER_CHECK_EVERY;
            if let Some(deadline) = deadline {
                match deadline.checked_duration_since(Instant::now()) {
                    Some(left) if !left.is_zero() => nap = nap.min(left),
                    // Out of time: a dead holder can still be taken over.
                    _ => return self.take_over(current, me),
                }
            }
            let marked = current | CONTENDED;
            if current != marked
                && word
                    .compare_exchange(current, marked, Ordering::Relaxed, Ordering::Relaxed)
                    .is_err()
            {
                continue;
            }
            let timeout = rustix::time::Timespec {
                tv_sec: 0,
                tv_nsec: nap.subsec_nanos().into(),
            };
            // Woken, the word changed before we slept (EAGAIN) or a signal: look again.
            // A nap that ended by itself: is the holder still there?
            if let Err(rustix::io::Errno::TIMEDOUT) =
                futex::wait(word, futex::Flags::empty(), marked, Some(&timeout))
            {
                if let Some(taken) = self.take_over(marked, me) {
                    return Some(taken);
                }
            }
        }
    }

    /// Takes the lock from its holder if that process is gone and the word still reads
    /// `current`.
    fn take_over(&self, current: u32, me: u32) -> Option<Acquired> {
        let owner = current & !CONTENDED;
        (owner != 0
            && !process_alive(owner)
            && self
                .0
                .compare_exchange(
                    current,
                    me | CONTENDED,
                    Ordering::Acquire,
                    Ordering::Relaxed,
                )
                .is_ok())
        .then_some(Acquired::Recovered)
    }

    /// Releases the lock (whoever holds it) and wakes one sleeper.
    pub fn unlock(&self) {
        if self.0.swap(0, Ordering::Release) & CONTENDED != 0 {
            let _ = futex::wake(&self.0, futex::Flags::empty(), 1);
        }
    }

    /// The pid holding the lock now (0 when free).
    pub fn owner(&self) -> u32 {
        self.0.load(Ordering::Relaxed) & !CONTENDED
    }

    /// Whether the lock is held by a live process.
    pub fn is_held(&self) -> bool {
        let owner = self.owner();
        owner != 0 && process_alive(owner)
    }

    /// Whether the calling process holds the lock.
    pub fn held_by_me(&self) -> bool {
        self.owner() == current_pid()
    }
}

impl fmt::Debug for LockWord {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LockWord")
            .field("owner", &self.owner())
            .finish()
    }
}

/// A zero-filled byte area of a fixed length in shared memory, guarded by a lock that
/// works across processes (and across threads of one process).
pub struct SharedMutex {
    mapping: Mapping,
    len: usize,
}

impl SharedMutex {
    /// Maps `len` zeroed bytes and their lock.
    pub fn new(len: usize) -> io::Result<SharedMutex> {
        let total = len
            .checked_add(DATA_OFFSET)
            .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "area too large"))?;
        Ok(SharedMutex {
            mapping: Mapping::new(total)?,
            len,
        })
    }

    /// The number of guarded bytes.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether the guarded area is empty.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    fn word(&self) -> &LockWord {
        // SAFETY: the first 4 bytes of the page-aligned, zero-filled mapping are the
        // lock word; they are only ever accessed atomically (LockWord is a transparent
        // AtomicU32, and any bit pattern is a valid AtomicU32).
        unsafe { &*self.mapping.ptr.as_ptr().cast::<LockWord>() }
    }

    /// Takes the lock, waiting as long as it takes. If the previous owner died holding
    /// it, the lock is taken over and the guard says so.
    pub fn lock(&self) -> SharedGuard<'_> {
        let recovered = self.word().lock() == Acquired::Recovered;
        SharedGuard {
            mutex: self,
            recovered,
        }
    }

    /// Takes the lock if it is free now.
    pub fn try_lock(&self) -> Option<SharedGuard<'_>> {
        // `then`, not `then_some`: a guard built and dropped on failure would unlock.
        self.word().try_lock().then(|| SharedGuard {
            mutex: self,
            recovered: false,
        })
    }

    /// The pid holding the lock now (0 when free). For diagnostics and tests.
    pub fn owner(&self) -> u32 {
        self.word().owner()
    }

    /// The address of the guarded bytes ([`SharedMutex::len`] of them, 64-byte
    /// aligned), valid as long as `self`. For lending the area to code that shares
    /// memory on its own terms, without the lock: Python's buffer protocol, behind
    /// `uwsgi.sharedarea_memoryview`, where uWSGI too hands out the raw area. Getting
    /// the address is safe; whoever reads or writes through it answers for doing so
    /// only while `self` lives, and accepts that another process (or a guard holder)
    /// may change the bytes at the same time.
    pub fn data_ptr(&self) -> NonNull<u8> {
        // In bounds: the mapping is DATA_OFFSET + len bytes (see `new`), so the result
        // stays inside it and is not null.
        self.mapping
            .ptr
            .map_addr(|addr| addr.saturating_add(DATA_OFFSET))
    }

    fn unlock(&self) {
        self.word().unlock();
    }

    /// Checks that `regions` (made by [`SharedMutex::region`] on this area) come in
    /// increasing order without overlapping.
    pub fn region_set<R: RegionTuple>(&self, regions: R) -> Option<RegionSet<R>> {
        let area = self.mapping.ptr.as_ptr() as usize;
        let end = regions.ordered_in(area)?;
        Some(RegionSet { area, end, regions })
    }

    /// Checks that `count` values of `T` fit at `offset` bytes into the area, aligned
    /// for `T`; the region can then be [carved](SharedGuard::carve_all) out of this area's
    /// guards without further checks.
    pub fn region<T: FromBytes + IntoBytes>(
        &self,
        offset: usize,
        count: usize,
    ) -> Option<Region<T>> {
        let bytes = count.checked_mul(std::mem::size_of::<T>())?;
        let end = offset.checked_add(bytes)?;
        // The data area starts 64-byte aligned (page + DATA_OFFSET), so the offset's
        // alignment is the address's for any T aligned to at most 64.
        if end > self.len
            || offset % std::mem::align_of::<T>() != 0
            || std::mem::align_of::<T>() > DATA_OFFSET
        {
            return None;
        }
        Some(Region {
            area: self.mapping.ptr.as_ptr() as usize,
            offset,
            count,
            end,
            _type: PhantomData,
        })
    }
}

impl fmt::Debug for SharedMutex {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SharedMutex")
            .field("len", &self.len)
            .field("owner", &self.owner())
            .finish()
    }
}

/// `count` values of `T` at `offset` bytes into one [`SharedMutex`]'s area, checked
/// once (in bounds, aligned) when made with [`SharedMutex::region`], so that
/// [`SharedGuard::carve_all`] (through a [`RegionSet`]) can hand out the typed slices of a locked
/// area without checking sizes and alignment again on every lock.
pub struct Region<T> {
    /// The area it was checked against (its mapping's address).
    area: usize,
    offset: usize,
    count: usize,
    /// `offset + count * size_of::<T>()`, within the area's length.
    end: usize,
    _type: PhantomData<fn() -> T>,
}

impl<T> Clone for Region<T> {
    fn clone(&self) -> Self {
        *self
    }
}

impl<T> Copy for Region<T> {}

impl<T> fmt::Debug for Region<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Region")
            .field("offset", &self.offset)
            .field("count", &self.count)
            .finish()
    }
}

impl<T> Region<T> {
    /// Byte offset of the region's end.
    pub fn end(&self) -> usize {
        self.end
    }
}

mod sealed {
    /// Only this module implements [`super::RegionTuple`]: its soundness rests on
    /// `ordered_in` telling the truth.
    pub trait Sealed {}
}

/// A tuple of [`Region`]s of one area that can be cut out of a guard at once
/// ([`RegionSet`]); implemented (only) for tuples of 1 to 8 regions.
pub trait RegionTuple: Copy + sealed::Sealed {
    /// The tuple of mutable slices, one per region.
    type Slices<'a>;
    /// `Some(end of the last region)` if every region belongs to the area at `area`
    /// and each starts at or after the end of the previous one (so they are disjoint).
    fn ordered_in(&self, area: usize) -> Option<usize>;
    /// The slices over the area whose data starts at `data`.
    ///
    /// # Safety
    ///
    /// `data` must be the start of the data of the area the regions were checked
    /// against, locked and exclusively borrowed for `'a`, and the regions must be
    /// `ordered_in` it.
    unsafe fn slices<'a>(&self, data: *mut u8) -> Self::Slices<'a>;
}

/// Mutable slice of a region, given the start of the area's data.
///
/// # Safety
///
/// As [`RegionTuple::slices`], for this one region.
#[inline(always)]
unsafe fn region_slice<'a, T>(data: *mut u8, region: &Region<T>) -> &'a mut [T] {
    // SAFETY: the caller guarantees `data` is the area the region was checked against
    // (in bounds and aligned for T there), locked and exclusively borrowed for 'a, and
    // that this region overlaps no other slice handed out. T is FromBytes + IntoBytes
    // (required to make a Region<T>): any bytes are a valid T and writes keep them so.
    unsafe { std::slice::from_raw_parts_mut(data.add(region.offset).cast::<T>(), region.count) }
}

macro_rules! region_tuple {
    ($($t:ident $i:tt),+) => {
        impl<$($t: 'static),+> sealed::Sealed for ($(Region<$t>,)+) {}

        impl<$($t: 'static),+> RegionTuple for ($(Region<$t>,)+) {
            type Slices<'a> = ($(&'a mut [$t],)+);

            fn ordered_in(&self, area: usize) -> Option<usize> {
                let mut next = 0;
                $(
                    if self.$i.area != area || self.$i.offset < next {
                        return None;
                    }
                    next = self.$i.end;
                )+
                Some(next)
            }

            #[inline(always)]
            unsafe fn slices<'a>(&self, data: *mut u8) -> Self::Slices<'a> {
                // SAFETY: forwarded from the caller, and the regions are disjoint.
                unsafe { ($(region_slice(data, &self.$i),)+) }
            }
        }
    };
}

region_tuple!(A 0);
region_tuple!(A 0, B 1);
region_tuple!(A 0, B 1, C 2);
region_tuple!(A 0, B 1, C 2, D 3);
region_tuple!(A 0, B 1, C 2, D 3, E 4);
region_tuple!(A 0, B 1, C 2, D 3, E 4, F 5);
region_tuple!(A 0, B 1, C 2, D 3, E 4, F 5, G 6);
region_tuple!(A 0, B 1, C 2, D 3, E 4, F 5, G 6, H 7);

/// Disjoint regions of one [`SharedMutex`]'s area, checked together once
/// ([`SharedMutex::region_set`]), so [`SharedGuard::carve_all`] cuts a locked area into
/// typed slices with one comparison.
#[derive(Clone, Copy)]
pub struct RegionSet<R> {
    area: usize,
    /// The end of the last region: checked against the area's length again when
    /// carving, in case another area was later mapped at a dropped one's address.
    end: usize,
    regions: R,
}

impl<R> fmt::Debug for RegionSet<R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RegionSet").finish_non_exhaustive()
    }
}

/// `count` [`LockWord`]s in shared memory, all free: locks held across calls (user
/// locks), released explicitly rather than by a guard.
pub struct SharedLocks {
    mapping: Mapping,
    count: usize,
}

impl SharedLocks {
    /// Maps `count` free locks.
    pub fn new(count: usize) -> io::Result<SharedLocks> {
        let bytes = count
            .checked_mul(std::mem::size_of::<LockWord>())
            .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "too many locks"))?;
        Ok(SharedLocks {
            mapping: Mapping::new(bytes)?,
            count,
        })
    }
}

impl Deref for SharedLocks {
    type Target = [LockWord];

    fn deref(&self) -> &[LockWord] {
        // SAFETY: the mapping is page-aligned, zero-filled (0 = a free lock), at least
        // `count * 4` bytes and lives as long as `self`; LockWord is a transparent
        // AtomicU32, only ever accessed atomically.
        unsafe { std::slice::from_raw_parts(self.mapping.ptr.as_ptr().cast(), self.count) }
    }
}

impl fmt::Debug for SharedLocks {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SharedLocks")
            .field("count", &self.count)
            .finish()
    }
}

/// Exclusive access to a [`SharedMutex`]'s bytes; the lock is released on drop.
pub struct SharedGuard<'a> {
    mutex: &'a SharedMutex,
    recovered: bool,
}

impl SharedGuard<'_> {
    /// Whether the lock was taken over from a process that died holding it: the area
    /// may hold a half-finished update, and the caller should repair or reset it.
    pub fn recovered(&self) -> bool {
        self.recovered
    }
}

impl<'g> SharedGuard<'g> {
    /// Cuts the locked area into the typed slices of `set`; `None` if `set` was made for
    /// another area.
    #[inline(always)]
    pub fn carve_all<R: RegionTuple>(&mut self, set: &RegionSet<R>) -> Option<R::Slices<'_>> {
        let data = self.mutex.mapping.ptr.as_ptr();
        if set.area != data as usize || set.end > self.mutex.len {
            return None;
        }
        // SAFETY: the regions were checked (in bounds of an area of at least `set.end`
        // bytes, aligned against a 64-byte aligned start, disjoint) for an area mapped at
        // this address, and this area has at least `set.end` bytes, so every region lies
        // inside it and is aligned; the lock is held, and `&mut self` borrows the guard
        // for as long as the slices live.
        Some(unsafe { set.regions.slices(data.add(DATA_OFFSET)) })
    }
}

impl Deref for SharedGuard<'_> {
    type Target = [u8];

    fn deref(&self) -> &[u8] {
        // SAFETY: the data area lies inside the mapping (DATA_OFFSET + len bytes were
        // mapped) and the lock is held, so no other thread or process writes it now.
        unsafe {
            std::slice::from_raw_parts(
                self.mutex.mapping.ptr.as_ptr().add(DATA_OFFSET),
                self.mutex.len,
            )
        }
    }
}

impl DerefMut for SharedGuard<'_> {
    fn deref_mut(&mut self) -> &mut [u8] {
        // SAFETY: as in `deref`; the guard is the only holder of the lock and `&mut self`
        // makes this the only live slice from it.
        unsafe {
            std::slice::from_raw_parts_mut(
                self.mutex.mapping.ptr.as_ptr().add(DATA_OFFSET),
                self.mutex.len,
            )
        }
    }
}

impl Drop for SharedGuard<'_> {
    fn drop(&mut self) {
        self.mutex.unlock();
    }
}

impl fmt::Debug for SharedGuard<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SharedGuard")
            .field("len", &self.mutex.len)
            .field("recovered", &self.recovered)
            .finish()
    }
}

/// This process's pid, cached: `getpid` is a system call, and the lock fast path needs
/// the pid. A `pthread_atfork` child handler clears the cache, so a forked child (which
/// inherits the parent's memory, cache included) asks the kernel again. The pid is only
/// cached once the handler is known to be registered.
static PID: AtomicU32 = AtomicU32::new(0);

/// Whether the child handler is registered. Not a `Once`: a fork while another thread
/// is inside `call_once` would leave the child's copy "running" forever, and the child
/// would wait on it forever (found by the fork tests).
static ATFORK: AtomicU8 = AtomicU8::new(ATFORK_NONE);
const ATFORK_NONE: u8 = 0;
const ATFORK_REGISTERING: u8 = 1;
const ATFORK_REGISTERED: u8 = 2;

extern "C" fn forget_pid_in_child() {
    // Async-signal-safe: atomic stores. The handler ran, so it is registered (a fork
    // in the middle of the registration leaves the child knowing it).
    PID.store(0, Ordering::Relaxed);
    ATFORK.store(ATFORK_REGISTERED, Ordering::Release);
}

/// The calling process's pid.
pub fn current_pid() -> u32 {
    let cached = PID.load(Ordering::Relaxed);
    if cached != 0 {
        return cached;
    }
    let pid = rustix::process::getpid()
        .as_raw_nonzero()
        .get()
        .unsigned_abs();
    match ATFORK.load(Ordering::Acquire) {
        ATFORK_REGISTERED => PID.store(pid, Ordering::Relaxed),
        ATFORK_NONE
            if ATFORK
                .compare_exchange(
                    ATFORK_NONE,
                    ATFORK_REGISTERING,
                    Ordering::AcqRel,
                    Ordering::Acquire,
                )
                .is_ok() =>
        {
            // SAFETY: registers a handler that only performs atomic stores; the handler
            // is a plain `extern "C" fn` that lives for the whole program.
            let registered =
                unsafe { libc::pthread_atfork(None, None, Some(forget_pid_in_child)) } == 0;
            if registered {
                ATFORK.store(ATFORK_REGISTERED, Ordering::Release);
                PID.store(pid, Ordering::Relaxed);
            } else {
                ATFORK.store(ATFORK_NONE, Ordering::Release);
            }
        }
        // Another thread is registering it: do not cache yet, never wait.
        _ => {}
    }
    pid
}

/// Whether a process with this pid exists (a zombie counts until it is reaped).
pub fn process_alive(pid: u32) -> bool {
    let Some(pid) = i32::try_from(pid)
        .ok()
        .and_then(rustix::process::Pid::from_raw)
    else {
        return false;
    };
    !matches!(
        rustix::process::test_kill_process(pid),
        Err(rustix::io::Errno::SRCH)
    )
}

/// Forking for the cross-process tests of the state modules (only this module may call
/// `fork`, `waitpid` and `kill`).
#[cfg(test)]
pub(crate) mod testing {
    use std::panic::{AssertUnwindSafe, catch_unwind};

    /// A forked child process.
    #[derive(Debug)]
    pub(crate) struct Child {
        pid: libc::pid_t,
    }

    /// Forks; the child runs `body` and `_exit`s with its result (101 if it panicked),
    /// without running the parent's destructors or returning into the test harness.
    /// Children should only touch shared memory and do a bounded amount of work.
    pub(crate) fn fork(body: impl FnOnce() -> i32) -> Child {
        // SAFETY: the child runs `body` and exits with `_exit`; glibc's fork keeps malloc
        // usable in the child, and the bodies take no lock of the test harness.
        let pid = unsafe { libc::fork() };
        assert!(pid >= 0, "fork failed");
        if pid == 0 {
            let code = catch_unwind(AssertUnwindSafe(body)).unwrap_or(101);
            // SAFETY: ends the child at once, skipping the parent's atexit handlers and
            // destructors.
            unsafe { libc::_exit(code) };
        }
        Child { pid }
    }

    impl Child {
        /// Waits for the child (reaping it); its exit code, or `-signal` if a signal
        /// ended it.
        pub(crate) fn wait(self) -> i32 {
            let mut status = 0;
            // SAFETY: waits for our own child, once (`self` is consumed).
            let reaped = unsafe { libc::waitpid(self.pid, &mut status, 0) };
            assert_eq!(reaped, self.pid, "waitpid");
            if libc::WIFEXITED(status) {
                libc::WEXITSTATUS(status)
            } else {
                -libc::WTERMSIG(status)
            }
        }

        /// Sends SIGKILL.
        pub(crate) fn kill(&self) {
            // SAFETY: signals our own child, not yet reaped (so the pid is still ours).
            assert_eq!(unsafe { libc::kill(self.pid, libc::SIGKILL) }, 0);
        }
    }

    /// Waits (bounded: 10 s) until `flag` becomes non-zero.
    pub(crate) fn wait_for(flag: &std::sync::atomic::AtomicU64) {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while flag.load(std::sync::atomic::Ordering::Acquire) == 0 {
            assert!(
                std::time::Instant::now() < deadline,
                "child never got ready"
            );
            std::thread::sleep(std::time::Duration::from_millis(1));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    #[test]
    fn counters_start_at_zero_and_are_shared_between_threads() {
        let counters = Arc::new(SharedCounters::new(4).unwrap());
        assert!(counters.iter().all(|c| c.load(Ordering::Relaxed) == 0));
        let threads: Vec<_> = (0..4)
            .map(|_| {
                let counters = Arc::clone(&counters);
                std::thread::spawn(move || {
                    for _ in 0..10_000 {
                        counters[1].fetch_add(1, Ordering::Relaxed);
                    }
                })
            })
            .collect();
        for thread in threads {
            thread.join().unwrap();
        }
        assert_eq!(counters[1].load(Ordering::Relaxed), 40_000);
        assert_eq!(counters.len(), 4);
    }

    #[test]
    fn mutex_area_is_zeroed_and_writable() {
        let mutex = SharedMutex::new(4096).unwrap();
        let mut guard = mutex.lock();
        assert_eq!(guard.len(), 4096);
        assert!(guard.iter().all(|&b| b == 0));
        guard[4095] = 7;
        assert!(!guard.recovered());
        drop(guard);
        assert_eq!(mutex.lock()[4095], 7);
        assert_eq!(mutex.owner(), 0);
    }

    #[test]
    fn try_lock_fails_while_held() {
        let mutex = SharedMutex::new(8).unwrap();
        let guard = mutex.lock();
        assert!(mutex.try_lock().is_none());
        assert_eq!(mutex.owner(), current_pid());
        drop(guard);
        assert!(mutex.try_lock().is_some());
    }

    #[test]
    fn mutex_excludes_threads() {
        // Non-atomic read-modify-write of a counter in the area: any overlap would
        // lose increments.
        let mutex = Arc::new(SharedMutex::new(8).unwrap());
        let threads: Vec<_> = (0..4)
            .map(|_| {
                let mutex = Arc::clone(&mutex);
                std::thread::spawn(move || {
                    for _ in 0..20_000 {
                        let mut guard = mutex.lock();
                        let value = u64::from_ne_bytes(guard[..8].try_into().unwrap());
                        guard[..8].copy_from_slice(&(value + 1).to_ne_bytes());
                    }
                })
            })
            .collect();
        for thread in threads {
            thread.join().unwrap();
        }
        let value = u64::from_ne_bytes(mutex.lock()[..8].try_into().unwrap());
        assert_eq!(value, 80_000);
    }

    #[test]
    fn a_lock_held_by_a_dead_process_is_taken_over() {
        let mutex = SharedMutex::new(8).unwrap();
        // A pid that cannot exist (above Linux's PID_MAX_LIMIT of 2^22).
        mutex.word().0.store(4_194_305, Ordering::Relaxed);
        let guard = mutex.lock();
        assert!(guard.recovered());
        assert_eq!(mutex.owner(), current_pid());
        drop(guard);
        assert_eq!(mutex.owner(), 0);
        assert!(!mutex.lock().recovered());
    }
    /// Forks a child that hammers the same lock and counters as the parent: the area
    /// and the atomics must be one memory, and the lock must exclude across processes.
    #[test]
    fn lock_and_counters_work_across_fork() {
        let mutex = SharedMutex::new(8).unwrap();
        let counters = SharedCounters::new(1).unwrap();
        let bump = || {
            for _ in 0..20_000 {
                let mut guard = mutex.lock();
                let value = u64::from_ne_bytes(guard[..8].try_into().unwrap_or([0; 8]));
                guard[..8].copy_from_slice(&(value + 1).to_ne_bytes());
                drop(guard);
                counters[0].fetch_add(1, Ordering::Relaxed);
            }
        };
        // SAFETY: the child only takes the futex lock, touches shared memory and calls
        // _exit: no allocation, no lock of the (multi-threaded) test harness.
        let pid = unsafe { libc::fork() };
        assert!(pid >= 0, "fork failed");
        if pid == 0 {
            bump();
            // SAFETY: ends the child without running the parent's destructors.
            unsafe { libc::_exit(0) };
        }
        bump();
        let mut status = 0;
        // SAFETY: waits for the child forked above.
        assert_eq!(unsafe { libc::waitpid(pid, &mut status, 0) }, pid);
        assert!(libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0);
        let value = u64::from_ne_bytes(mutex.lock()[..8].try_into().unwrap());
        assert_eq!(value, 40_000);
        assert_eq!(counters[0].load(Ordering::Relaxed), 40_000);
    }

    #[test]
    fn a_forked_child_sees_its_own_pid() {
        let parent = current_pid();
        let seen = SharedCounters::new(1).unwrap();
        let child = testing::fork(|| {
            seen[0].store(u64::from(current_pid()), Ordering::SeqCst);
            0
        });
        assert_eq!(child.wait(), 0);
        let child_pid = seen[0].load(Ordering::SeqCst);
        assert_ne!(child_pid, 0);
        assert_ne!(
            child_pid,
            u64::from(parent),
            "the child used the parent's cached pid"
        );
        assert_eq!(current_pid(), parent);
    }

    #[test]
    fn lock_words_time_out_and_take_over_from_the_dead() {
        let locks = SharedLocks::new(2).unwrap();
        assert!(locks[0].try_lock());
        assert!(locks[0].held_by_me() && locks[0].is_held());
        // Held by a live process (us): a timed wait gives up.
        let started = Instant::now();
        assert_eq!(locks[0].lock_timeout(Duration::from_millis(30)), None);
        assert!(started.elapsed() >= Duration::from_millis(30));
        locks[0].unlock();
        assert_eq!(locks[0].lock_timeout(Duration::ZERO), Some(Acquired::Free));
        locks[0].unlock();
        // A child takes lock 1 and exits without releasing it.
        let child = testing::fork(|| i32::from(!locks[1].try_lock()));
        assert_eq!(child.wait(), 0);
        assert!(!locks[1].is_held(), "a dead owner does not hold");
        assert_ne!(locks[1].owner(), 0);
        assert_eq!(locks[1].lock(), Acquired::Recovered);
        assert!(locks[1].held_by_me());
    }

    #[test]
    fn regions_are_checked_once_and_carved_into_typed_slices() {
        let mutex = SharedMutex::new(256).unwrap();
        let other = SharedMutex::new(256).unwrap();
        // Out of bounds, misaligned, overflowing: refused when made.
        assert!(mutex.region::<u64>(0, 33).is_none());
        assert!(mutex.region::<u64>(4, 1).is_none());
        assert!(mutex.region::<u64>(8, usize::MAX).is_none());
        let words = mutex.region::<u64>(0, 4).unwrap();
        let bytes = mutex.region::<u8>(32, 16).unwrap();
        assert_eq!(words.end(), 32);
        // Overlapping or out of order: refused as a set.
        assert!(mutex.region_set((bytes, words)).is_none());
        assert!(
            mutex
                .region_set((words, mutex.region::<u8>(31, 1).unwrap()))
                .is_none()
        );
        // Regions of another area: refused.
        assert!(other.region_set((words, bytes)).is_none());
        let set = mutex.region_set((words, bytes)).unwrap();
        {
            let mut guard = mutex.lock();
            let (w, b) = guard.carve_all(&set).unwrap();
            assert_eq!((w.len(), b.len()), (4, 16));
            w[3] = u64::MAX;
            b[0] = 9;
        }
        let guard = mutex.lock();
        assert_eq!(guard[24..32], [0xff; 8]);
        assert_eq!(guard[32], 9);
        drop(guard);
        // A set used with another area's guard gives nothing.
        assert!(other.lock().carve_all(&set).is_none());
    }
}
