//! uWSGI's user locks (`--locks N`, spec §8.3), backing `uwsgi.lock(n)`,
//! `uwsgi.unlock(n)` and `uwsgi.is_locked(n)`.
//!
//! # Semantics
//!
//! * `--locks N` creates **N + 1** locks numbered 0..=N; lock 0 always exists, so a
//!   server without the option has exactly one.
//! * A number below 0 or above N is refused ("Invalid lock number", `ValueError`).
//! * A lock is held by one owner — a thread, or whatever the caller names (a worker id,
//!   a request): [`LockOwner`]. `lock` blocks until the lock is free.
//!
//! uWSGI's locks are process-shared, non-recursive pthread robust mutexes: locking twice
//! from the same owner deadlocks, and unlocking a lock one does not hold is undefined.
//! Here both are refused with an error instead ([`LockError::WouldDeadlock`],
//! [`LockError::NotHeld`], [`LockError::NotOwner`]); the Python layer may ignore the
//! unlock errors to keep uWSGI's silent `None`. Robust mutexes are released when their
//! holder dies: [`UserLocks::release_all`] does that for an owner that went away.
//! [`UserLocks::force_unlock`] releases whoever holds a lock (what uWSGI's semaphore and
//! spinlock engines do on any `unlock`).
//!
//! # Across processes
//!
//! The locks live in shared memory created before the workers fork, so `uwsgi.lock(n)`
//! in one worker excludes every other worker: each lock is a futex word holding the pid
//! of the process that holds it ([`crate::shm::LockWord`]), and beside it a record of
//! the holder (`pid`, kind, value) in shared atomics, behind a sequence number (a
//! seqlock: written by the holder, read by anyone, never seen half-written). A [`LockOwner::Thread`] is only
//! meaningful inside its process, so it is compared together with the pid; a
//! [`LockOwner::Custom`] (a worker id…) is global, so the master can
//! [`UserLocks::release_all`] for a worker that died.
//!
//! A worker that dies holding a lock does not wedge the others, as with uWSGI's robust
//! mutexes: a waiter notices (within 100 ms) that the holder's process is gone and takes
//! the lock over; [`UserLocks::is_locked`] and [`UserLocks::holder`] already report such
//! a lock as free. The holder's process must have been reaped (a zombie still counts as
//! alive) — the master reaps its workers.
//!
//! # Limits
//!
//! `N` up to `u32::MAX - 1` (the mapping is touched lazily; one that cannot be created
//! at all panics, where the allocation it replaces aborted); lock numbers are `i64` so
//! negative numbers from Python get the same error as too large ones.

use std::sync::atomic::{AtomicU64, Ordering, fence};
use std::time::Duration;

use crate::shm::{self, LockWord, SharedCounters, SharedLocks};

/// Who holds a lock.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum LockOwner {
    /// A thread of this process (see [`LockOwner::current_thread`]).
    Thread(u64),
    /// An owner named by the caller: a worker id, a request id…
    Custom(u64),
}

static NEXT_THREAD_OWNER: AtomicU64 = AtomicU64::new(1);

thread_local! {
    static THREAD_OWNER: u64 = NEXT_THREAD_OWNER.fetch_add(1, Ordering::Relaxed);
}

impl LockOwner {
    /// The calling thread: the same value for every call on one thread, distinct
    /// between threads.
    pub fn current_thread() -> Self {
        LockOwner::Thread(THREAD_OWNER.with(|id| *id))
    }
}

/// Why a lock operation was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum LockError {
    /// The number is negative or above `--locks` (uWSGI: `ValueError("Invalid lock
    /// number")`).
    #[error("Invalid lock number")]
    InvalidLockNumber {
        /// The number asked for.
        number: i64,
        /// The highest valid number (`--locks` N).
        max: u32,
    },
    /// The owner already holds this lock: locking again would wait forever.
    #[error("lock {number} is already held by this owner")]
    WouldDeadlock {
        /// Lock number.
        number: u32,
    },
    /// Unlock of a lock nobody holds.
    #[error("lock {number} is not locked")]
    NotHeld {
        /// Lock number.
        number: u32,
    },
    /// Unlock by someone else than the holder.
    #[error("lock {number} is held by another owner")]
    NotOwner {
        /// Lock number.
        number: u32,
        /// Who holds it.
        holder: LockOwner,
    },
}

/// The holder record's fields, four shared atomics per lock: a sequence number (odd
/// while being written: a seqlock, so a reader never mixes two holders' fields), then
/// the holder's pid, kind and value.
const SEQ: usize = 0;
const PID: usize = 1;
const KIND: usize = 2;
const VALUE: usize = 3;
const RECORD: usize = 4;

const KIND_NONE: u64 = 0;
const KIND_THREAD: u64 = 1;
const KIND_CUSTOM: u64 = 2;

/// Reads of a record being rewritten are retried this many times, then given up (no
/// known holder): a writer killed in the middle leaves the sequence odd until the next
/// holder rewrites the record.
const READ_TRIES: u32 = 64;

impl LockOwner {
    fn encode(self) -> (u64, u64) {
        match self {
            LockOwner::Thread(id) => (KIND_THREAD, id),
            LockOwner::Custom(id) => (KIND_CUSTOM, id),
        }
    }
}

/// The holder record of one lock.
struct Record<'a>(&'a [AtomicU64]);

/// One consistent reading of a record.
#[derive(Clone, Copy)]
struct Holder {
    pid: u64,
    owner: LockOwner,
}

impl Record<'_> {
    fn field(&self, index: usize) -> Option<&AtomicU64> {
        self.0.get(index)
    }

    /// The recorded holder, read consistently (or `None`).
    fn read(&self) -> Option<Holder> {
        let seq = self.field(SEQ)?;
        for _ in 0..READ_TRIES {
            let before = seq.load(Ordering::Acquire);
            if before & 1 == 1 {
                std::hint::spin_loop();
                continue;
            }
            let pid = self.field(PID)?.load(Ordering::Relaxed);
            let kind = self.field(KIND)?.load(Ordering::Relaxed);
            let value = self.field(VALUE)?.load(Ordering::Relaxed);
            fence(Ordering::Acquire);
            if seq.load(Ordering::Relaxed) != before {
                continue;
            }
            let owner = match kind {
                KIND_THREAD => LockOwner::Thread(value),
                KIND_CUSTOM => LockOwner::Custom(value),
                _ => return None,
            };
            return Some(Holder { pid, owner });
        }
        None
    }

    fn owner(&self) -> Option<LockOwner> {
        self.read().map(|holder| holder.owner)
    }

    /// Whether `owner` is the recorded holder: same kind and value, and for a thread
    /// the same process.
    fn is(&self, owner: LockOwner) -> bool {
        self.read().is_some_and(|holder| {
            holder.owner == owner
                && (matches!(owner, LockOwner::Custom(_))
                    || holder.pid == u64::from(shm::current_pid()))
        })
    }

    fn write(&self, pid: u64, kind: u64, value: u64) {
        let (Some(seq), Some(pid_field), Some(kind_field), Some(value_field)) = (
            self.field(SEQ),
            self.field(PID),
            self.field(KIND),
            self.field(VALUE),
        ) else {
            return;
        };
        // Odd whatever state a dead writer left it in, even again at the end.
        let odd = seq.load(Ordering::Relaxed) | 1;
        seq.store(odd, Ordering::Relaxed);
        fence(Ordering::Release);
        pid_field.store(pid, Ordering::Relaxed);
        kind_field.store(kind, Ordering::Relaxed);
        value_field.store(value, Ordering::Relaxed);
        seq.store(odd.wrapping_add(1), Ordering::Release);
    }

    fn set(&self, owner: LockOwner) {
        let (kind, value) = owner.encode();
        self.write(u64::from(shm::current_pid()), kind, value);
    }

    fn clear(&self) {
        self.write(0, KIND_NONE, 0);
    }
}

/// The user locks of a server. Shared with the processes forked after it was created.
#[derive(Debug)]
pub struct UserLocks {
    words: SharedLocks,
    records: SharedCounters,
}

impl Default for UserLocks {
    /// Lock 0 only, as without `--locks`.
    fn default() -> Self {
        UserLocks::new(0)
    }
}

impl UserLocks {
    /// The locks of `--locks extra`: `extra + 1` of them.
    pub fn new(extra: u32) -> Self {
        let count = usize::try_from(extra)
            .unwrap_or(usize::MAX)
            .saturating_add(1);
        let words = SharedLocks::new(count).expect("cannot map the user locks");
        let records =
            SharedCounters::new(count.saturating_mul(RECORD)).expect("cannot map the user locks");
        UserLocks { words, records }
    }

    /// Number of locks (N + 1).
    pub fn count(&self) -> usize {
        self.words.len()
    }

    fn max(&self) -> u32 {
        u32::try_from(self.words.len().saturating_sub(1)).unwrap_or(u32::MAX)
    }

    fn get(&self, number: i64) -> Result<(u32, &LockWord, Record<'_>), LockError> {
        let invalid = LockError::InvalidLockNumber {
            number,
            max: self.max(),
        };
        let index = u32::try_from(number).map_err(|_| invalid)?;
        let i = usize::try_from(index).map_err(|_| invalid)?;
        let word = self.words.get(i).ok_or(invalid)?;
        let record = self
            .records
            .get(i * RECORD..(i + 1) * RECORD)
            .ok_or(invalid)?;
        Ok((index, word, Record(record)))
    }

    /// `uwsgi.lock(n)`: waits until lock `n` is free and takes it (from a dead process
    /// too).
    pub fn lock(&self, number: i64, owner: LockOwner) -> Result<(), LockError> {
        let (index, word, record) = self.get(number)?;
        // The record first: `is_held` asks the kernel whether the holder lives.
        if record.is(owner) && word.is_held() {
            return Err(LockError::WouldDeadlock { number: index });
        }
        word.lock();
        record.set(owner);
        Ok(())
    }

    /// Takes lock `n` if it is free; `Ok(false)` if someone else holds it.
    pub fn try_lock(&self, number: i64, owner: LockOwner) -> Result<bool, LockError> {
        self.lock_timeout(number, owner, Duration::ZERO)
    }

    /// Like [`UserLocks::lock`], giving up after `timeout` (`Ok(false)`).
    pub fn lock_timeout(
        &self,
        number: i64,
        owner: LockOwner,
        timeout: Duration,
    ) -> Result<bool, LockError> {
        let (index, word, record) = self.get(number)?;
        // The record first: `is_held` asks the kernel whether the holder lives.
        if record.is(owner) && word.is_held() {
            return Err(LockError::WouldDeadlock { number: index });
        }
        if word.lock_timeout(timeout).is_none() {
            return Ok(false);
        }
        record.set(owner);
        Ok(true)
    }

    /// `uwsgi.unlock(n)`: releases lock `n`, which `owner` must hold.
    pub fn unlock(&self, number: i64, owner: LockOwner) -> Result<(), LockError> {
        let (index, word, record) = self.get(number)?;
        // A lock whose holder died is still released by its owner (a respawned worker
        // reusing a Custom id), without asking the kernel on every unlock.
        let holder = if word.owner() != 0 {
            record.owner()
        } else {
            None
        };
        match holder {
            None => Err(LockError::NotHeld { number: index }),
            Some(current) if !record.is(owner) => Err(LockError::NotOwner {
                number: index,
                holder: current,
            }),
            Some(_) => {
                record.clear();
                word.unlock();
                Ok(())
            }
        }
    }

    /// Releases lock `n` whoever holds it; returns the previous holder.
    pub fn force_unlock(&self, number: i64) -> Result<Option<LockOwner>, LockError> {
        let (_, word, record) = self.get(number)?;
        let previous = if word.owner() != 0 {
            record.owner()
        } else {
            None
        };
        record.clear();
        word.unlock();
        Ok(previous)
    }

    /// `uwsgi.is_locked(n)`: held by a live process.
    pub fn is_locked(&self, number: i64) -> Result<bool, LockError> {
        let (_, word, _) = self.get(number)?;
        Ok(word.is_held())
    }

    /// Who holds lock `n` (`None` when free, or when its holder's process died).
    pub fn holder(&self, number: i64) -> Result<Option<LockOwner>, LockError> {
        let (_, word, record) = self.get(number)?;
        Ok(if word.is_held() { record.owner() } else { None })
    }

    /// Releases every lock `owner` holds (its process or thread is gone, as a robust
    /// mutex is released when its holder dies). Returns how many.
    pub fn release_all(&self, owner: LockOwner) -> usize {
        let mut released = 0;
        for number in 0..self.words.len() {
            let Ok((_, word, record)) = self.get(i64::try_from(number).unwrap_or(-1)) else {
                continue;
            };
            if word.owner() != 0 && record.is(owner) {
                record.clear();
                word.unlock();
                released += 1;
            }
        }
        released
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::sync::atomic::AtomicBool;

    #[test]
    fn locks_n_creates_n_plus_one() {
        // §8.3: "--locks N creates N+1 user locks (0..N; lock 0 always exists)".
        assert_eq!(UserLocks::default().count(), 1);
        let locks = UserLocks::new(2);
        assert_eq!(locks.count(), 3);
        let me = LockOwner::current_thread();
        for n in 0..=2 {
            locks.lock(n, me).unwrap();
            assert!(locks.is_locked(n).unwrap());
            locks.unlock(n, me).unwrap();
            assert!(!locks.is_locked(n).unwrap());
        }
    }

    #[test]
    fn invalid_numbers_are_refused() {
        // §8.3: "n < 0 or n > N → ValueError("Invalid lock number")".
        let locks = UserLocks::new(2);
        let me = LockOwner::current_thread();
        for n in [-1, 3, i64::MAX, i64::MIN] {
            let err = locks.lock(n, me).unwrap_err();
            assert_eq!(err, LockError::InvalidLockNumber { number: n, max: 2 });
            assert_eq!(err.to_string(), "Invalid lock number");
            assert!(locks.unlock(n, me).is_err());
            assert!(locks.is_locked(n).is_err());
        }
    }

    #[test]
    fn relocking_and_foreign_unlock_are_errors_not_deadlocks() {
        let locks = UserLocks::default();
        let a = LockOwner::Custom(1);
        let b = LockOwner::Custom(2);
        assert_eq!(locks.unlock(0, a), Err(LockError::NotHeld { number: 0 }));
        locks.lock(0, a).unwrap();
        assert_eq!(
            locks.lock(0, a),
            Err(LockError::WouldDeadlock { number: 0 })
        );
        assert_eq!(
            locks.unlock(0, b),
            Err(LockError::NotOwner {
                number: 0,
                holder: a
            })
        );
        assert_eq!(locks.holder(0), Ok(Some(a)));
        assert_eq!(locks.try_lock(0, b), Ok(false));
        assert_eq!(locks.force_unlock(0), Ok(Some(a)));
        assert_eq!(locks.try_lock(0, b), Ok(true));
        assert_eq!(locks.release_all(b), 1);
        assert_eq!(locks.release_all(b), 0);
        assert!(!locks.is_locked(0).unwrap());
    }

    #[test]
    fn thread_owners_differ_between_threads() {
        let here = LockOwner::current_thread();
        assert_eq!(here, LockOwner::current_thread());
        let there = std::thread::spawn(LockOwner::current_thread)
            .join()
            .unwrap();
        assert_ne!(here, there);
    }

    #[test]
    fn lock_waits_for_the_holder() {
        let locks = Arc::new(UserLocks::default());
        let owner = LockOwner::Custom(7);
        locks.lock(0, owner).unwrap();
        let released = Arc::new(AtomicBool::new(false));
        let waiter = {
            let (locks, released) = (Arc::clone(&locks), Arc::clone(&released));
            std::thread::spawn(move || {
                locks.lock(0, LockOwner::current_thread()).unwrap();
                assert!(
                    released.load(Ordering::SeqCst),
                    "took the lock before release"
                );
                locks.unlock(0, LockOwner::current_thread()).unwrap();
            })
        };
        std::thread::sleep(Duration::from_millis(50));
        released.store(true, Ordering::SeqCst);
        locks.unlock(0, owner).unwrap();
        waiter.join().unwrap();
        assert_eq!(
            locks.lock_timeout(0, owner, Duration::from_millis(10)),
            Ok(true)
        );
        let other = LockOwner::Custom(8);
        assert_eq!(
            locks.lock_timeout(0, other, Duration::from_millis(20)),
            Ok(false)
        );
    }

    #[test]
    fn mutual_exclusion_under_contention() {
        // A non-atomic read-modify-write protected by lock 1 loses no update.
        let locks = Arc::new(UserLocks::new(1));
        let counter = Arc::new(AtomicU64::new(0));
        let threads: Vec<_> = (0..4)
            .map(|_| {
                let (locks, counter) = (Arc::clone(&locks), Arc::clone(&counter));
                std::thread::spawn(move || {
                    let me = LockOwner::current_thread();
                    for _ in 0..2000 {
                        locks.lock(1, me).unwrap();
                        let value = counter.load(Ordering::Relaxed);
                        std::hint::spin_loop();
                        counter.store(value + 1, Ordering::Relaxed);
                        locks.unlock(1, me).unwrap();
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        assert_eq!(counter.load(Ordering::Relaxed), 8000);
    }

    // ---- across processes ----

    use crate::shm::{SharedCounters, testing};

    #[test]
    fn a_user_lock_excludes_across_processes() {
        // A non-atomic read-modify-write of a shared counter under lock 1, from a child
        // and the parent at once: any overlap would lose increments.
        let locks = UserLocks::new(1);
        let shared = SharedCounters::new(1).unwrap();
        let work = || {
            let me = LockOwner::current_thread();
            for _ in 0..3000 {
                locks.lock(1, me).unwrap();
                let value = shared[0].load(Ordering::Relaxed);
                std::hint::spin_loop();
                shared[0].store(value + 1, Ordering::Relaxed);
                locks.unlock(1, me).unwrap();
            }
        };
        let child = testing::fork(|| {
            work();
            0
        });
        work();
        assert_eq!(child.wait(), 0);
        assert_eq!(shared[0].load(Ordering::Relaxed), 6000);
        assert!(!locks.is_locked(1).unwrap());
    }

    #[test]
    fn a_lock_held_in_another_process_is_seen_and_waited_for() {
        let locks = UserLocks::new(0);
        // [0]: the child holds the lock; [1]: it is about to release it; [2]: the
        // parent has looked (so a slow parent cannot miss the held lock).
        let ready = SharedCounters::new(3).unwrap();
        let child = testing::fork(|| {
            locks.lock(0, LockOwner::Custom(42)).unwrap();
            ready[0].store(1, Ordering::Release);
            testing::wait_for(&ready[2]);
            std::thread::sleep(Duration::from_millis(50));
            ready[1].store(1, Ordering::Release);
            locks.unlock(0, LockOwner::Custom(42)).unwrap();
            0
        });
        crate::shm::testing::wait_for(&ready[0]);
        assert_eq!(locks.holder(0), Ok(Some(LockOwner::Custom(42))));
        let me = LockOwner::current_thread();
        assert_eq!(locks.try_lock(0, me), Ok(false));
        // A Thread owner of another process is not us: no WouldDeadlock, and not ours
        // to unlock.
        assert_eq!(
            locks.unlock(0, me),
            Err(LockError::NotOwner {
                number: 0,
                holder: LockOwner::Custom(42)
            })
        );
        ready[2].store(1, Ordering::Release);
        locks.lock(0, me).unwrap();
        assert_eq!(ready[1].load(Ordering::Acquire), 1, "locked before release");
        assert_eq!(child.wait(), 0);
        locks.unlock(0, me).unwrap();
    }

    #[test]
    fn a_lock_held_by_a_dead_worker_is_recovered() {
        let locks = UserLocks::new(2);
        let child = testing::fork(|| {
            locks.lock(2, LockOwner::Custom(7)).unwrap();
            // Exits without unlocking (as a crashed worker would).
            0
        });
        assert_eq!(child.wait(), 0);
        assert_eq!(locks.is_locked(2), Ok(false));
        assert_eq!(locks.holder(2), Ok(None));
        let me = LockOwner::current_thread();
        assert_eq!(locks.lock_timeout(2, me, Duration::from_secs(5)), Ok(true));
        assert_eq!(locks.holder(2), Ok(Some(me)));
        locks.unlock(2, me).unwrap();
        // The master's clean-up for a dead worker id works across processes too.
        let child = testing::fork(|| i32::from(locks.lock(1, LockOwner::Custom(9)).is_err()));
        assert_eq!(child.wait(), 0);
        assert_eq!(locks.release_all(LockOwner::Custom(9)), 1);
        assert_eq!(locks.try_lock(1, me), Ok(true));
    }
}
