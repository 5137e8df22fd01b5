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
//! Built on `Mutex` + `Condvar`, no `unsafe`. The state of each lock is one plain value
//! (the holder), which is what a shared-memory version will store.
//!
//! # Limits
//!
//! `N` up to `u32::MAX - 1`; lock numbers are `i64` so negative numbers from Python get
//! the same error as too large ones.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Condvar, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

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

#[derive(Debug, Default)]
struct UserLock {
    holder: Mutex<Option<LockOwner>>,
    released: Condvar,
}

/// The user locks of a server.
#[derive(Debug)]
pub struct UserLocks {
    locks: Vec<UserLock>,
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
        UserLocks {
            locks: (0..count).map(|_| UserLock::default()).collect(),
        }
    }

    /// Number of locks (N + 1).
    pub fn count(&self) -> usize {
        self.locks.len()
    }

    fn max(&self) -> u32 {
        u32::try_from(self.locks.len().saturating_sub(1)).unwrap_or(u32::MAX)
    }

    fn get(&self, number: i64) -> Result<(u32, &UserLock), LockError> {
        let invalid = LockError::InvalidLockNumber {
            number,
            max: self.max(),
        };
        let index = u32::try_from(number).map_err(|_| invalid)?;
        let lock = usize::try_from(index)
            .ok()
            .and_then(|i| self.locks.get(i))
            .ok_or(invalid)?;
        Ok((index, lock))
    }

    fn holder_of(lock: &UserLock) -> MutexGuard<'_, Option<LockOwner>> {
        // The guarded value is a plain Option written in one step: never half-updated.
        lock.holder.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// `uwsgi.lock(n)`: waits until lock `n` is free and takes it.
    pub fn lock(&self, number: i64, owner: LockOwner) -> Result<(), LockError> {
        let (index, lock) = self.get(number)?;
        let mut holder = Self::holder_of(lock);
        loop {
            match *holder {
                None => {
                    *holder = Some(owner);
                    return Ok(());
                }
                Some(current) if current == owner => {
                    return Err(LockError::WouldDeadlock { number: index });
                }
                Some(_) => {
                    holder = lock
                        .released
                        .wait(holder)
                        .unwrap_or_else(PoisonError::into_inner);
                }
            }
        }
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
        let (index, lock) = self.get(number)?;
        let deadline = Instant::now().checked_add(timeout);
        let mut holder = Self::holder_of(lock);
        loop {
            match *holder {
                None => {
                    *holder = Some(owner);
                    return Ok(true);
                }
                Some(current) if current == owner => {
                    return Err(LockError::WouldDeadlock { number: index });
                }
                Some(_) => {
                    let now = Instant::now();
                    let left = match deadline {
                        Some(deadline) if deadline > now => deadline - now,
                        Some(_) => return Ok(false),
                        // A timeout too large to represent: wait as long as it takes.
                        None => Duration::from_secs(3600),
                    };
                    holder = lock
                        .released
                        .wait_timeout(holder, left)
                        .unwrap_or_else(PoisonError::into_inner)
                        .0;
                }
            }
        }
    }

    /// `uwsgi.unlock(n)`: releases lock `n`, which `owner` must hold.
    pub fn unlock(&self, number: i64, owner: LockOwner) -> Result<(), LockError> {
        let (index, lock) = self.get(number)?;
        let mut holder = Self::holder_of(lock);
        match *holder {
            None => Err(LockError::NotHeld { number: index }),
            Some(current) if current != owner => Err(LockError::NotOwner {
                number: index,
                holder: current,
            }),
            Some(_) => {
                *holder = None;
                drop(holder);
                lock.released.notify_one();
                Ok(())
            }
        }
    }

    /// Releases lock `n` whoever holds it; returns the previous holder.
    pub fn force_unlock(&self, number: i64) -> Result<Option<LockOwner>, LockError> {
        let (_, lock) = self.get(number)?;
        let previous = Self::holder_of(lock).take();
        lock.released.notify_one();
        Ok(previous)
    }

    /// `uwsgi.is_locked(n)`.
    pub fn is_locked(&self, number: i64) -> Result<bool, LockError> {
        Ok(self.holder(number)?.is_some())
    }

    /// Who holds lock `n`.
    pub fn holder(&self, number: i64) -> Result<Option<LockOwner>, LockError> {
        let (_, lock) = self.get(number)?;
        Ok(*Self::holder_of(lock))
    }

    /// Releases every lock `owner` holds (its process or thread is gone, as a robust
    /// mutex is released when its holder dies). Returns how many.
    pub fn release_all(&self, owner: LockOwner) -> usize {
        let mut released = 0;
        for lock in &self.locks {
            let mut holder = Self::holder_of(lock);
            if *holder == Some(owner) {
                *holder = None;
                drop(holder);
                lock.released.notify_one();
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
}
