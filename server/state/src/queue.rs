//! uWSGI's queue (`--queue N`, `--queue-blocksize B`, spec §8.1): a shared ring of N
//! fixed-size slots with two cursors, backing `uwsgi.queue_*`.
//!
//! # Semantics (`core/queue.c`)
//!
//! * Each slot is a 16-byte header — the message size (`u64`, 0 = empty slot) and the
//!   time it was written (`u64` unix seconds) — followed by the message, so a message
//!   holds at most `blocksize - 16` bytes. Empty messages are refused.
//! * `pos` is the push/pop end, `pull_pos` the pull end; both start at 0.
//! * [`Queue::push`] writes at `pos` **overwriting** whatever is there, then advances
//!   `pos` (wrapping). [`Queue::pull`] reads at `pull_pos`: an empty slot gives `None`;
//!   otherwise the slot is cleared and `pull_pos` advances (FIFO). [`Queue::pop`] first
//!   moves `pos` back one slot (wrapping) and then reads and clears it (LIFO) — the
//!   cursor has moved even when the slot was empty.
//! * [`Queue::get`] / [`Queue::set`] read / overwrite slot *i* without touching the
//!   cursors; *i* ≥ N is refused.
//! * [`Queue::last`] is the slot before `pos`; [`Queue::last_n`] walks back from there,
//!   newest first, at most N entries, `None` for empty slots.
//!
//! # Memory layout
//!
//! One shared mapping ([`SharedMutex`]), created before the workers fork: a 64-byte
//! header holding the two cursors (`pos`, `pull_pos`, native `usize`), then the ring of
//! `N × blocksize` bytes with the slot headers in-band (native byte order, like uWSGI's
//! struct). A push in one worker is pulled in another.
//!
//! A worker that dies holding the queue's lock leaves at worst one slot half-written
//! (its size already set, its bytes partly old): the next locker takes the lock over,
//! brings out-of-range cursors back to 0 and empties slots whose size is impossible;
//! the messages already there stay.
//!
//! # Limits
//!
//! | what | limit |
//! |---|---|
//! | slots | ≥ 1 |
//! | blocksize | > 16; default 8192 |
//! | `slots × blocksize` | a multiple of the 4096-byte page (uWSGI refuses to start otherwise) |
//! | message | 1..=`blocksize - 16` bytes |
//!
//! # Differences from uWSGI
//!
//! uWSGI checks messages against `blocksize + 16` (1.4 push and set; 2.0 set), letting a
//! message overflow up to 32 bytes into the next slot (§10.2 #9); here the bound is the
//! real one, `blocksize - 16`. `--queue-blocksize` works (1.4 ignored it, §8.1).

use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout};

use crate::shm::SharedMutex;

/// Bytes of a slot header: size and timestamp.
pub const SLOT_HEADER_LEN: usize = 16;
/// Default `--queue-blocksize`.
pub const DEFAULT_BLOCKSIZE: u64 = 8192;
/// The page size `slots × blocksize` must be a multiple of.
pub const PAGE_SIZE: u64 = 4096;

/// Settings of the queue: `--queue` and `--queue-blocksize`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QueueConfig {
    /// `--queue N`: number of slots.
    pub slots: u64,
    /// `--queue-blocksize B`: bytes per slot, header included.
    pub blocksize: u64,
}

impl QueueConfig {
    /// `slots` slots of the default 8192 bytes.
    pub fn new(slots: u64) -> Self {
        QueueConfig {
            slots,
            blocksize: DEFAULT_BLOCKSIZE,
        }
    }

    /// Largest message: `blocksize - 16`.
    pub fn max_message_len(&self) -> u64 {
        self.blocksize.saturating_sub(16)
    }
}

/// Why a queue configuration was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum QueueConfigError {
    /// `--queue 0`.
    #[error("the queue needs at least one slot")]
    NoSlots,
    /// A blocksize with no room for a message after the 16-byte header.
    #[error("queue blocksize {0} leaves no room for a message (must be more than 16)")]
    BlocksizeTooSmall(u64),
    /// `slots × blocksize` is not a whole number of pages.
    #[error(
        "invalid queue size/blocksize: {slots} × {blocksize} must be a multiple of the memory page size ({PAGE_SIZE} bytes)"
    )]
    NotPageMultiple {
        /// Slots asked for.
        slots: u64,
        /// Blocksize asked for.
        blocksize: u64,
    },
    /// The area does not fit in memory.
    #[error("the queue needs {0} bytes, which cannot be allocated")]
    TooLarge(u64),
}

/// Why a queue write was refused (the Python functions return `None`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum QueueError {
    /// An empty message.
    #[error("empty queue message")]
    Empty,
    /// A message larger than a slot holds.
    #[error("queue message of {len} bytes is larger than {max}")]
    TooLarge {
        /// Message length.
        len: usize,
        /// Largest message.
        max: usize,
    },
    /// A slot number ≥ the number of slots.
    #[error("queue slot {index} does not exist ({slots} slots)")]
    NoSuchSlot {
        /// The slot asked for.
        index: u64,
        /// Number of slots.
        slots: u64,
    },
}

/// The cursors, at the start of the shared area.
#[derive(Debug, FromBytes, IntoBytes, KnownLayout, Immutable)]
#[repr(C)]
struct Cursors {
    pos: usize,
    pull_pos: usize,
}

/// Bytes before the ring: the cursors, padded to a cache line.
const RING_OFFSET: usize = 64;

/// The locked queue: cursors and ring, viewed over the shared bytes.
#[derive(Debug)]
struct Ring<'a> {
    cursors: &'a mut Cursors,
    area: &'a mut [u8],
}

/// The queue. Thread-safe, and shared with the processes forked after it was created;
/// share it between threads with an `Arc`.
#[derive(Debug)]
pub struct Queue {
    config: QueueConfig,
    slots: usize,
    blocksize: usize,
    shared: SharedMutex,
}

impl Queue {
    /// Validates `config` as uWSGI does at start and allocates the ring.
    pub fn new(config: QueueConfig) -> Result<Self, QueueConfigError> {
        if config.slots == 0 {
            return Err(QueueConfigError::NoSlots);
        }
        if config.blocksize <= 16 {
            return Err(QueueConfigError::BlocksizeTooSmall(config.blocksize));
        }
        let total = config
            .slots
            .checked_mul(config.blocksize)
            .ok_or(QueueConfigError::TooLarge(u64::MAX))?;
        if total % PAGE_SIZE != 0 {
            return Err(QueueConfigError::NotPageMultiple {
                slots: config.slots,
                blocksize: config.blocksize,
            });
        }
        let too_large = || QueueConfigError::TooLarge(total);
        let bytes = usize::try_from(total)
            .ok()
            .and_then(|bytes| bytes.checked_add(RING_OFFSET))
            .filter(|&bytes| isize::try_from(bytes).is_ok())
            .ok_or_else(too_large)?;
        let shared = SharedMutex::new(bytes).map_err(|_| too_large())?;
        Ok(Queue {
            config,
            slots: usize::try_from(config.slots).map_err(|_| too_large())?,
            blocksize: usize::try_from(config.blocksize).map_err(|_| too_large())?,
            shared,
        })
    }

    /// The settings.
    pub fn config(&self) -> QueueConfig {
        self.config
    }

    /// Number of slots (`uwsgi.queue_size`).
    pub fn size(&self) -> u64 {
        self.config.slots
    }

    /// Runs `f` on the ring under the queue's lock, repairing it first if the lock was
    /// taken over from a process that died holding it.
    fn with_ring<R>(&self, f: impl FnOnce(&mut Ring<'_>) -> R) -> R {
        let mut guard = self.shared.lock();
        let recovered = guard.recovered();
        let (head, area) = guard.split_at_mut(RING_OFFSET);
        let Ok((cursors, _)) = Cursors::mut_from_prefix(head) else {
            unreachable!("the queue area starts with its cursors");
        };
        let mut ring = Ring { cursors, area };
        if recovered {
            self.repair(&mut ring);
        }
        f(&mut ring)
    }

    /// After a takeover: cursors back in range, impossible slot sizes cleared.
    fn repair(&self, ring: &mut Ring<'_>) {
        if ring.cursors.pos >= self.slots {
            ring.cursors.pos = 0;
        }
        if ring.cursors.pull_pos >= self.slots {
            ring.cursors.pull_pos = 0;
        }
        for slot in 0..self.slots {
            let (size, _) = self.slot_header(ring, slot);
            if usize::try_from(size).map_or(true, |len| len > self.max_len()) {
                let start = slot * self.blocksize;
                if let Some(bytes) = ring.area.get_mut(start..start + 8) {
                    bytes.fill(0);
                }
            }
        }
    }

    /// For the takeover test: takes the lock, leaves the cursors out of range and slot 1
    /// with an impossible size (as a torn write could), says so through `ready`, and
    /// never returns (the test kills the process).
    #[cfg(test)]
    fn hold_lock_forever(&self, ready: &std::sync::atomic::AtomicU64) {
        self.with_ring(|ring| {
            ring.cursors.pos = self.slots + 5;
            ring.cursors.pull_pos = usize::MAX;
            let start = self.blocksize;
            if let Some(size) = ring.area.get_mut(start..start + 8) {
                size.copy_from_slice(&u64::MAX.to_ne_bytes());
            }
            ready.store(1, std::sync::atomic::Ordering::Release);
            loop {
                std::thread::sleep(std::time::Duration::from_secs(1));
            }
        })
    }

    fn max_len(&self) -> usize {
        self.blocksize - SLOT_HEADER_LEN
    }

    fn check_message(&self, message: &[u8]) -> Result<(), QueueError> {
        if message.is_empty() {
            return Err(QueueError::Empty);
        }
        if message.len() > self.max_len() {
            return Err(QueueError::TooLarge {
                len: message.len(),
                max: self.max_len(),
            });
        }
        Ok(())
    }

    fn slot_index(&self, index: u64) -> Result<usize, QueueError> {
        usize::try_from(index)
            .ok()
            .filter(|&i| i < self.slots)
            .ok_or(QueueError::NoSuchSlot {
                index,
                slots: self.config.slots,
            })
    }

    /// `queue_push(msg)`: writes at `pos` (overwriting) and advances `pos`.
    pub fn push(&self, message: &[u8], now: u64) -> Result<(), QueueError> {
        self.check_message(message)?;
        self.with_ring(|ring| {
            let slot = ring.cursors.pos % self.slots;
            self.write_slot(ring, slot, message, now);
            ring.cursors.pos = (slot + 1) % self.slots;
        });
        Ok(())
    }

    /// `queue_set(i, msg)`: overwrites slot `i`; cursors unchanged.
    pub fn set(&self, index: u64, message: &[u8], now: u64) -> Result<(), QueueError> {
        let slot = self.slot_index(index)?;
        self.check_message(message)?;
        self.with_ring(|ring| self.write_slot(ring, slot, message, now));
        Ok(())
    }

    /// `queue_pull()`: the message at `pull_pos`, removed, and `pull_pos` advanced;
    /// `None` (nothing moves) when that slot is empty.
    pub fn pull(&self) -> Option<Vec<u8>> {
        self.with_ring(|ring| {
            let slot = ring.cursors.pull_pos % self.slots;
            let message = self.take_slot(ring, slot)?;
            ring.cursors.pull_pos = (slot + 1) % self.slots;
            Some(message)
        })
    }

    /// `queue_pop()`: moves `pos` back one slot and returns that slot's message, removed.
    /// `pos` moves even when the slot is empty (uWSGI does the same).
    pub fn pop(&self) -> Option<Vec<u8>> {
        self.with_ring(|ring| {
            let slot = ring.cursors.pos.checked_sub(1).unwrap_or(self.slots - 1);
            ring.cursors.pos = slot;
            self.take_slot(ring, slot)
        })
    }

    /// `queue_get(i)`: the message in slot `i`, left in place; `None` if empty or
    /// `i` ≥ the number of slots.
    pub fn get(&self, index: u64) -> Option<Vec<u8>> {
        let slot = self.slot_index(index).ok()?;
        self.with_ring(|ring| self.read_slot(ring, slot).map(<[u8]>::to_vec))
    }

    /// `queue_last()`: the newest message (the slot before `pos`), left in place.
    pub fn last(&self) -> Option<Vec<u8>> {
        self.with_ring(|ring| {
            let slot = ring.cursors.pos.checked_sub(1).unwrap_or(self.slots - 1);
            self.read_slot(ring, slot).map(<[u8]>::to_vec)
        })
    }

    /// `queue_last(n)`: the `n` newest slots (at most the number of slots), newest
    /// first, `None` for empty slots.
    pub fn last_n(&self, n: u64) -> Vec<Option<Vec<u8>>> {
        let count = usize::try_from(n).unwrap_or(usize::MAX).min(self.slots);
        self.with_ring(|ring| {
            let mut slot = ring.cursors.pos;
            (0..count)
                .map(|_| {
                    slot = slot.checked_sub(1).unwrap_or(self.slots - 1);
                    self.read_slot(ring, slot).map(<[u8]>::to_vec)
                })
                .collect()
        })
    }

    /// The unix time slot `i` was last written, if it holds a message.
    pub fn timestamp(&self, index: u64) -> Option<u64> {
        let slot = self.slot_index(index).ok()?;
        let (size, written) = self.with_ring(|ring| self.slot_header(ring, slot));
        (size != 0).then_some(written)
    }

    /// `queue_slot()`: the push/pop cursor.
    pub fn slot(&self) -> u64 {
        u64::try_from(self.with_ring(|ring| ring.cursors.pos)).unwrap_or(u64::MAX)
    }

    /// `queue_pull_slot()`: the pull cursor.
    pub fn pull_slot(&self) -> u64 {
        u64::try_from(self.with_ring(|ring| ring.cursors.pull_pos)).unwrap_or(u64::MAX)
    }

    fn slot_range(&self, slot: usize) -> std::ops::Range<usize> {
        let start = slot * self.blocksize;
        start..start + self.blocksize
    }

    fn slot_header(&self, ring: &Ring<'_>, slot: usize) -> (u64, u64) {
        let Some(bytes) = ring.area.get(self.slot_range(slot)) else {
            return (0, 0);
        };
        let word = |at: usize| {
            bytes
                .get(at..at + 8)
                .and_then(|b| <[u8; 8]>::try_from(b).ok())
                .map_or(0, u64::from_ne_bytes)
        };
        (word(0), word(8))
    }

    fn read_slot<'r>(&self, ring: &'r Ring<'_>, slot: usize) -> Option<&'r [u8]> {
        let (size, _) = self.slot_header(ring, slot);
        let len = usize::try_from(size).ok().filter(|&len| len > 0)?;
        let start = slot * self.blocksize + SLOT_HEADER_LEN;
        ring.area.get(start..start + len.min(self.max_len()))
    }

    fn take_slot(&self, ring: &mut Ring<'_>, slot: usize) -> Option<Vec<u8>> {
        let message = self.read_slot(ring, slot)?.to_vec();
        let start = slot * self.blocksize;
        if let Some(size) = ring.area.get_mut(start..start + 8) {
            size.fill(0);
        }
        Some(message)
    }

    fn write_slot(&self, ring: &mut Ring<'_>, slot: usize, message: &[u8], now: u64) {
        let Some(bytes) = ring.area.get_mut(self.slot_range(slot)) else {
            return;
        };
        let size = u64::try_from(message.len()).unwrap_or(0);
        let (header, body) = bytes.split_at_mut(SLOT_HEADER_LEN);
        header[..8].copy_from_slice(&size.to_ne_bytes());
        header[8..].copy_from_slice(&now.to_ne_bytes());
        if let Some(target) = body.get_mut(..message.len()) {
            target.copy_from_slice(message);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    fn queue(slots: u64) -> Queue {
        Queue::new(QueueConfig::new(slots)).unwrap()
    }

    fn some(bytes: &[u8]) -> Option<Vec<u8>> {
        Some(bytes.to_vec())
    }

    #[test]
    fn config_checks_follow_uwsgi_init_queue() {
        assert_eq!(
            Queue::new(QueueConfig::new(0)).unwrap_err(),
            QueueConfigError::NoSlots
        );
        let odd = QueueConfig {
            slots: 3,
            blocksize: 1000,
        };
        assert!(matches!(
            Queue::new(odd).unwrap_err(),
            QueueConfigError::NotPageMultiple { .. }
        ));
        let tiny = QueueConfig {
            slots: 256,
            blocksize: 16,
        };
        assert_eq!(
            Queue::new(tiny).unwrap_err(),
            QueueConfigError::BlocksizeTooSmall(16)
        );
        let huge = QueueConfig {
            slots: u64::MAX / 4096,
            blocksize: 8192,
        };
        assert!(matches!(
            Queue::new(huge).unwrap_err(),
            QueueConfigError::TooLarge(_)
        ));
        let small = QueueConfig {
            slots: 4,
            blocksize: 1024,
        };
        assert_eq!(Queue::new(small).unwrap().config().max_message_len(), 1008);
    }

    #[test]
    fn push_pull_is_fifo() {
        // §8.1: push writes at pos, pull reads at pull_pos.
        let q = queue(10);
        q.push(b"q1", 0).unwrap();
        q.push(b"q2", 0).unwrap();
        assert_eq!((q.slot(), q.pull_slot()), (2, 0));
        assert_eq!(q.pull(), some(b"q1"));
        assert_eq!(q.pull(), some(b"q2"));
        assert_eq!(q.pull(), None);
        // An empty pull does not advance.
        assert_eq!(q.pull_slot(), 2);
    }

    #[test]
    fn push_pop_is_lifo_and_pop_moves_even_when_empty() {
        // §8.1: "an empty slot returns None but pos has still moved".
        let q = queue(4);
        q.push(b"a", 0).unwrap();
        q.push(b"b", 0).unwrap();
        assert_eq!(q.pop(), some(b"b"));
        assert_eq!(q.pop(), some(b"a"));
        assert_eq!(q.slot(), 0);
        assert_eq!(q.pop(), None);
        assert_eq!(q.slot(), 3);
    }

    #[test]
    fn push_wraps_and_overwrites() {
        // §8.1: "advances pos (wraps), overwrites whatever was there".
        let q = queue(2);
        q.push(b"one", 0).unwrap();
        q.push(b"two", 0).unwrap();
        assert_eq!(q.slot(), 0);
        q.push(b"three", 0).unwrap();
        assert_eq!(q.get(0), some(b"three"));
        assert_eq!(q.pull(), some(b"three"));
        assert_eq!(q.pull(), some(b"two"));
        assert_eq!(q.pull_slot(), 0);
    }

    #[test]
    fn get_and_set_address_slots_directly() {
        let q = queue(4);
        assert_eq!(q.get(0), None);
        q.set(2, b"x", 0).unwrap();
        assert_eq!(q.get(2), some(b"x"));
        assert_eq!((q.slot(), q.pull_slot()), (0, 0));
        assert_eq!(q.get(4), None);
        assert_eq!(q.get(u64::MAX), None);
        assert_eq!(
            q.set(4, b"x", 0),
            Err(QueueError::NoSuchSlot { index: 4, slots: 4 })
        );
    }

    #[test]
    fn last_and_last_n_match_the_spec_transcript() {
        // §8.1 [V14]: after pushing q1, q2 into a 10-slot queue, queue_last(3) is
        // ['q2', 'q1', None].
        let q = queue(10);
        assert_eq!(q.last(), None);
        q.push(b"q1", 0).unwrap();
        q.push(b"q2", 0).unwrap();
        assert_eq!(q.last(), some(b"q2"));
        assert_eq!(q.last_n(3), vec![some(b"q2"), some(b"q1"), None]);
        // At most the number of slots.
        assert_eq!(q.last_n(1000).len(), 10);
        assert!(q.last_n(0).is_empty());
    }

    #[test]
    fn message_limits() {
        let q = Queue::new(QueueConfig {
            slots: 4,
            blocksize: 1024,
        })
        .unwrap();
        assert_eq!(q.push(b"", 0), Err(QueueError::Empty));
        q.push(&[1; 1008], 0).unwrap();
        assert_eq!(
            q.push(&[1; 1009], 0),
            Err(QueueError::TooLarge {
                len: 1009,
                max: 1008
            })
        );
        assert_eq!(
            q.set(0, &[1; 1009], 0),
            Err(QueueError::TooLarge {
                len: 1009,
                max: 1008
            })
        );
        // The full-size message did not spill into the next slot.
        assert_eq!(q.get(1), None);
        assert_eq!(q.get(0), Some(vec![1; 1008]));
    }

    #[test]
    fn timestamps_are_recorded() {
        let q = queue(2);
        q.push(b"m", 1234).unwrap();
        assert_eq!(q.timestamp(0), Some(1234));
        assert_eq!(q.timestamp(1), None);
        q.pull();
        assert_eq!(q.timestamp(0), None);
    }

    #[test]
    fn concurrent_producers_and_consumers_lose_nothing() {
        let q = Arc::new(queue(4096));
        let producers: Vec<_> = (0..4u32)
            .map(|t| {
                let q = Arc::clone(&q);
                std::thread::spawn(move || {
                    for i in 0..500u32 {
                        q.push(&(t * 1000 + i).to_le_bytes(), 0).unwrap();
                    }
                })
            })
            .collect();
        for p in producers {
            p.join().unwrap();
        }
        let consumers: Vec<_> = (0..4)
            .map(|_| {
                let q = Arc::clone(&q);
                std::thread::spawn(move || {
                    let mut got = Vec::new();
                    while let Some(m) = q.pull() {
                        got.push(u32::from_le_bytes(m.try_into().unwrap()));
                    }
                    got
                })
            })
            .collect();
        let mut all: Vec<u32> = consumers
            .into_iter()
            .flat_map(|c| c.join().unwrap())
            .collect();
        all.sort_unstable();
        let mut expected: Vec<u32> = (0..4u32)
            .flat_map(|t| (0..500).map(move |i| t * 1000 + i))
            .collect();
        expected.sort_unstable();
        assert_eq!(all, expected);
    }

    // ---- across processes ----

    use crate::shm::testing;

    #[test]
    fn push_in_a_child_pull_in_the_parent() {
        let q = queue(8);
        q.push(b"first", 1).unwrap();
        let child = testing::fork(|| {
            let ok = q.push(b"second", 2).is_ok()
                && q.push(b"third", 3).is_ok()
                && q.pull().as_deref() == Some(&b"first"[..]);
            i32::from(!ok)
        });
        assert_eq!(child.wait(), 0);
        assert_eq!((q.slot(), q.pull_slot()), (3, 1));
        assert_eq!(q.timestamp(2), Some(3));
        assert_eq!(q.pull(), some(b"second"));
        assert_eq!(q.pull(), some(b"third"));
        assert_eq!(q.pull(), None);
    }

    #[test]
    fn a_takeover_repairs_cursors_and_slot_sizes() {
        let q = queue(4);
        q.set(0, b"kept", 0).unwrap();
        let ready = crate::shm::SharedCounters::new(1).unwrap();
        let child = testing::fork(|| {
            q.hold_lock_forever(&ready[0]);
            1
        });
        testing::wait_for(&ready[0]);
        child.kill();
        assert_eq!(child.wait(), -libc::SIGKILL);
        assert_eq!((q.slot(), q.pull_slot()), (0, 0));
        assert_eq!(q.get(1), None, "an impossible size is cleared");
        assert_eq!(q.get(0), some(b"kept"));
        q.push(b"x", 0).unwrap();
        assert_eq!(q.pull(), some(b"x"));
    }
}
