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
//! This is the only module of the crate with `unsafe` code: creating and removing the
//! mapping, and turning its bytes into atomics or a slice while the lock is held.
//!
//! Rules for users: create the objects **before** forking; never fork while holding a
//! guard (the child would inherit a lock owned by a live parent).
#![allow(unsafe_code)]

use std::fmt;
use std::io;
use std::ops::{Deref, DerefMut};
use std::ptr::NonNull;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::time::Duration;

use rustix::mm::{MapFlags, ProtFlags};
use rustix::thread::futex;

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

    fn word(&self) -> &AtomicU32 {
        // SAFETY: the first 4 bytes of the page-aligned, zero-filled mapping are the
        // lock word; they are only ever accessed atomically.
        unsafe { &*self.mapping.ptr.as_ptr().cast::<AtomicU32>() }
    }

    /// Takes the lock, waiting as long as it takes. If the previous owner died holding
    /// it, the lock is taken over and the guard says so.
    pub fn lock(&self) -> SharedGuard<'_> {
        let me = current_pid();
        let word = self.word();
        if word
            .compare_exchange(0, me, Ordering::Acquire, Ordering::Relaxed)
            .is_ok()
        {
            return SharedGuard {
                mutex: self,
                recovered: false,
            };
        }
        for _ in 0..SPINS {
            std::hint::spin_loop();
            if word.load(Ordering::Relaxed) == 0
                && word
                    .compare_exchange(0, me, Ordering::Acquire, Ordering::Relaxed)
                    .is_ok()
            {
                return SharedGuard {
                    mutex: self,
                    recovered: false,
                };
            }
        }
        self.lock_contended(me)
    }

    #[cold]
    fn lock_contended(&self, me: u32) -> SharedGuard<'_> {
        let word = self.word();
        let timeout = rustix::time::Timespec {
            tv_sec: 0,
            tv_nsec: OWNER_CHECK_EVERY.subsec_nanos().into(),
        };
        loop {
            let current = word.load(Ordering::Relaxed);
            if current == 0 {
                // Someone else may be asleep: keep the contended mark so our unlock
                // wakes them.
                if word
                    .compare_exchange(0, me | CONTENDED, Ordering::Acquire, Ordering::Relaxed)
                    .is_ok()
                {
                    return SharedGuard {
                        mutex: self,
                        recovered: false,
                    };
                }
                continue;
            }
            let marked = current | CONTENDED;
            if current != marked
                && word
                    .compare_exchange(current, marked, Ordering::Relaxed, Ordering::Relaxed)
                    .is_err()
            {
                continue;
            }
            // Woken, the word changed before we slept (EAGAIN) or a signal: retry. A
            // timeout: check that the owner still exists.
            if let Err(rustix::io::Errno::TIMEDOUT) =
                futex::wait(word, futex::Flags::empty(), marked, Some(&timeout))
            {
                let owner = marked & !CONTENDED;
                if !process_alive(owner)
                    && word
                        .compare_exchange(
                            marked,
                            me | CONTENDED,
                            Ordering::Acquire,
                            Ordering::Relaxed,
                        )
                        .is_ok()
                {
                    return SharedGuard {
                        mutex: self,
                        recovered: true,
                    };
                }
            }
        }
    }

    /// Takes the lock if it is free now.
    pub fn try_lock(&self) -> Option<SharedGuard<'_>> {
        self.word()
            .compare_exchange(0, current_pid(), Ordering::Acquire, Ordering::Relaxed)
            .ok()
            .map(|_| SharedGuard {
                mutex: self,
                recovered: false,
            })
    }

    /// The pid holding the lock now (0 when free). For diagnostics and tests.
    pub fn owner(&self) -> u32 {
        self.word().load(Ordering::Relaxed) & !CONTENDED
    }

    fn unlock(&self) {
        let word = self.word();
        if word.swap(0, Ordering::Release) & CONTENDED != 0 {
            let _ = futex::wake(word, futex::Flags::empty(), 1);
        }
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

fn current_pid() -> u32 {
    rustix::process::getpid()
        .as_raw_nonzero()
        .get()
        .unsigned_abs()
}

/// Whether a process with this pid exists (a zombie counts until it is reaped).
fn process_alive(pid: u32) -> bool {
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
        mutex.word().store(4_194_305, Ordering::Relaxed);
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
}
