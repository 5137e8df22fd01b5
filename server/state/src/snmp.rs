//! The SNMP agent's shared table (spec §7.6): 100 custom slots and the community
//! string, set by `--snmp-community` and the `uwsgi.snmp_*` Python functions and read by
//! the agent (`17.2.Y` answers slot Y).
//!
//! # Semantics (uWSGI 2.0's)
//!
//! * A slot is numbered 1..=100 and holds a type (Counter32, Gauge or Counter64) and a
//!   64-bit value; an unset slot answers NULL. Any other number is refused
//!   ([`InvalidSlot`]; Python: the function returns `None`).
//! * `set_counter32` / `set_gauge` store a 32-bit value, `set_counter64` a 64-bit one;
//!   every setter also sets the slot's type.
//! * `incr` / `decr` add or subtract a **32-bit** delta to the 64-bit value (uWSGI
//!   parses the delta with `"I"`, even for the 64-bit variants), wrapping around, and
//!   overwrite the slot's type with the variant's. The value is stored on 64 bits
//!   whatever the type; a Counter32 or Gauge answers its low 32 bits.
//! * The community is at most 72 bytes; a longer one is cut to 72 (uWSGI logs a warning
//!   and does the same), and it ends at the first NUL (uWSGI keeps it as a C string).
//!   An empty community (the default) matches no request: the agent stays silent until
//!   one is set.
//!
//! # Memory
//!
//! One [`SharedMutex`] area created before the workers fork, so every worker process
//! sees the same slots (uWSGI: `uwsgi.shared->snmp_value` under `snmp_lock`). Layout:
//! byte 0 the community length, bytes 1..=72 the community, then from byte 80 one
//! 16-byte record per slot (type byte, 7 bytes of padding, the value in native byte
//! order). A lock taken over from a dead process (see [`SharedMutex`]) leaves at worst
//! one half-written value, which the next write replaces.

use std::io;
use std::sync::Arc;

use uwsgi_protocol::snmp::SnmpValue;

use crate::shm::SharedMutex;

/// Number of custom slots.
pub const SLOTS: u8 = 100;
/// Longest community string.
pub const MAX_COMMUNITY: usize = 72;

const SLOTS_AT: usize = 80;
const RECORD: usize = 16;
const AREA: usize = SLOTS_AT + RECORD * SLOTS as usize;

/// The type of a custom slot, with its SNMP (BER) type byte.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SnmpKind {
    /// Counter32 (`0x41`).
    Counter32,
    /// Gauge32 (`0x42`).
    Gauge,
    /// Counter64 (`0x46`).
    Counter64,
}

impl SnmpKind {
    /// The BER type byte the agent answers with.
    pub fn tag(self) -> u8 {
        match self {
            SnmpKind::Counter32 => 0x41,
            SnmpKind::Gauge => 0x42,
            SnmpKind::Counter64 => 0x46,
        }
    }

    /// The kind of a BER type byte.
    pub fn from_tag(tag: u8) -> Option<SnmpKind> {
        match tag {
            0x41 => Some(SnmpKind::Counter32),
            0x42 => Some(SnmpKind::Gauge),
            0x46 => Some(SnmpKind::Counter64),
            _ => None,
        }
    }
}

/// What a set slot holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SnmpSlot {
    /// Its type.
    pub kind: SnmpKind,
    /// Its value, 64 bits whatever the type (the agent sends the low 32 bits of a
    /// Counter32 or Gauge).
    pub value: u64,
}

/// A slot number outside 1..=100 (uWSGI's Python functions return `None`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("SNMP slot {slot} outside 1..=100")]
pub struct InvalidSlot {
    /// The number asked for.
    pub slot: i64,
}

/// Why the SNMP table could not be created.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SnmpConfigError {
    /// `--snmp-community` longer than 72 bytes (uWSGI cuts it with a warning; this
    /// server refuses to start, since a cut community never matches what clients send).
    #[error("SNMP community of {len} bytes (at most {MAX_COMMUNITY})")]
    CommunityTooLong {
        /// Its length.
        len: usize,
    },
    /// The shared memory could not be mapped.
    #[error("SNMP shared memory: {0}")]
    Memory(#[from] io::Error),
}

/// `--snmp` / `--snmp-community` as the state needs them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SnmpConfig {
    /// The community from `--snmp-community`; `None` or empty: no request is answered
    /// until `snmp_set_community` sets one.
    pub community: Option<Vec<u8>>,
}

/// The shared SNMP table. Clones are handles on the same table (for closures such as
/// RPC functions that outlive a borrow of the state).
#[derive(Clone)]
pub struct Snmp {
    area: Arc<SharedMutex>,
}

impl std::fmt::Debug for Snmp {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Snmp")
            .field("community_len", &self.community().len())
            .finish_non_exhaustive()
    }
}

/// Whether `slot` is a valid number, as an index 0..100.
fn index(slot: i64) -> Result<usize, InvalidSlot> {
    usize::try_from(slot)
        .ok()
        .filter(|s| (1..=usize::from(SLOTS)).contains(s))
        .map(|s| s - 1)
        .ok_or(InvalidSlot { slot })
}

impl Snmp {
    /// Maps the table (all slots unset) with `config`'s community.
    pub fn new(config: &SnmpConfig) -> Result<Snmp, SnmpConfigError> {
        let community = config.community.as_deref().unwrap_or_default();
        if community.len() > MAX_COMMUNITY {
            return Err(SnmpConfigError::CommunityTooLong {
                len: community.len(),
            });
        }
        let snmp = Snmp {
            area: Arc::new(SharedMutex::new(AREA)?),
        };
        snmp.set_community(community);
        Ok(snmp)
    }

    /// The community requests must carry (empty: none matches).
    pub fn community(&self) -> Vec<u8> {
        let area = self.area.lock();
        let len = usize::from(area[0]).min(MAX_COMMUNITY);
        area[1..=len].to_vec()
    }

    /// Whether a request's community is the configured one (never when none is set).
    pub fn community_matches(&self, candidate: &[u8]) -> bool {
        let area = self.area.lock();
        let len = usize::from(area[0]).min(MAX_COMMUNITY);
        len > 0 && area[1..=len] == *candidate
    }

    /// `snmp_set_community`: keeps `community` up to its first NUL and at most 72 bytes.
    /// Returns `true` when it had to be cut at 72 (uWSGI logs a warning then).
    pub fn set_community(&self, community: &[u8]) -> bool {
        let community = community
            .iter()
            .position(|b| *b == 0)
            .map_or(community, |nul| &community[..nul]);
        let truncated = community.len() > MAX_COMMUNITY;
        let community = &community[..community.len().min(MAX_COMMUNITY)];
        let mut area = self.area.lock();
        area[0] = u8::try_from(community.len()).unwrap_or(0);
        area[1..=community.len()].copy_from_slice(community);
        truncated
    }

    /// What slot `slot` holds (`None`: unset).
    pub fn slot(&self, slot: i64) -> Result<Option<SnmpSlot>, InvalidSlot> {
        let at = SLOTS_AT + RECORD * index(slot)?;
        let area = self.area.lock();
        Ok(SnmpKind::from_tag(area[at]).map(|kind| SnmpSlot {
            kind,
            value: read_value(&area[at + 8..at + 16]),
        }))
    }

    /// What the agent answers for `17.2.slot`: the slot's value with its type, or NULL
    /// for an unset slot or a number outside 1..=100.
    pub fn value(&self, slot: i64) -> SnmpValue {
        match self.slot(slot) {
            Ok(Some(SnmpSlot { kind, value })) => SnmpValue::from_tag(kind.tag(), value),
            _ => SnmpValue::Null,
        }
    }

    /// Applies `change` to slot `slot`'s value (0 when unset) and sets its type, under
    /// the lock. Returns the new value.
    fn update(
        &self,
        slot: i64,
        kind: SnmpKind,
        change: impl FnOnce(u64) -> u64,
    ) -> Result<u64, InvalidSlot> {
        let at = SLOTS_AT + RECORD * index(slot)?;
        let mut area = self.area.lock();
        let value = change(read_value(&area[at + 8..at + 16]));
        area[at] = kind.tag();
        area[at + 8..at + 16].copy_from_slice(&value.to_ne_bytes());
        Ok(value)
    }

    /// Stores `value` with type `kind` (the general form of the three setters).
    pub fn set(&self, slot: i64, kind: SnmpKind, value: u64) -> Result<(), InvalidSlot> {
        self.update(slot, kind, |_| value).map(drop)
    }

    /// `snmp_set_counter32(slot, value)`.
    pub fn set_counter32(&self, slot: i64, value: u32) -> Result<(), InvalidSlot> {
        self.set(slot, SnmpKind::Counter32, u64::from(value))
    }

    /// `snmp_set_counter64(slot, value)`.
    pub fn set_counter64(&self, slot: i64, value: u64) -> Result<(), InvalidSlot> {
        self.set(slot, SnmpKind::Counter64, value)
    }

    /// `snmp_set_gauge(slot, value)`.
    pub fn set_gauge(&self, slot: i64, value: u32) -> Result<(), InvalidSlot> {
        self.set(slot, SnmpKind::Gauge, u64::from(value))
    }

    /// `snmp_incr_counter32` / `snmp_incr_counter64` / `snmp_incr_gauge(slot, delta)`:
    /// adds the 32-bit `delta` (wrapping on 64 bits) and makes the slot a `kind`.
    /// Returns the new value.
    pub fn incr(&self, slot: i64, kind: SnmpKind, delta: u32) -> Result<u64, InvalidSlot> {
        self.update(slot, kind, |v| v.wrapping_add(u64::from(delta)))
    }

    /// `snmp_decr_*(slot, delta)`: subtracts the 32-bit `delta` (wrapping on 64 bits)
    /// and makes the slot a `kind`. Returns the new value.
    pub fn decr(&self, slot: i64, kind: SnmpKind, delta: u32) -> Result<u64, InvalidSlot> {
        self.update(slot, kind, |v| v.wrapping_sub(u64::from(delta)))
    }

    /// Unsets every slot (the community stays).
    pub fn clear_slots(&self) {
        let mut area = self.area.lock();
        area[SLOTS_AT..].fill(0);
    }
}

fn read_value(bytes: &[u8]) -> u64 {
    let mut raw = [0u8; 8];
    raw.copy_from_slice(&bytes[..8]);
    u64::from_ne_bytes(raw)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table(community: &str) -> Snmp {
        Snmp::new(&SnmpConfig {
            community: Some(community.as_bytes().to_vec()),
        })
        .unwrap()
    }

    #[test]
    fn slots_start_unset_and_are_numbered_1_to_100() {
        let snmp = table("public");
        for slot in 1..=100 {
            assert_eq!(snmp.slot(slot), Ok(None));
        }
        for slot in [0, 101, -1, 256, i64::MAX, i64::MIN] {
            assert_eq!(snmp.slot(slot), Err(InvalidSlot { slot }));
            assert_eq!(snmp.set_gauge(slot, 1), Err(InvalidSlot { slot }));
            assert_eq!(
                snmp.incr(slot, SnmpKind::Counter32, 1),
                Err(InvalidSlot { slot })
            );
        }
    }

    #[test]
    fn setters_store_type_and_value() {
        let snmp = table("public");
        snmp.set_counter32(1, 7).unwrap();
        snmp.set_gauge(6, 42).unwrap();
        snmp.set_counter64(100, 1_234_567_890_123).unwrap();
        let got = |slot| snmp.slot(slot).unwrap().unwrap();
        assert_eq!(
            got(1),
            SnmpSlot {
                kind: SnmpKind::Counter32,
                value: 7
            }
        );
        assert_eq!(
            got(6),
            SnmpSlot {
                kind: SnmpKind::Gauge,
                value: 42
            }
        );
        assert_eq!(
            got(100),
            SnmpSlot {
                kind: SnmpKind::Counter64,
                value: 1_234_567_890_123
            }
        );
        assert_eq!(snmp.slot(2), Ok(None));
        assert_eq!(snmp.value(6), SnmpValue::Gauge(42));
        assert_eq!(snmp.value(100), SnmpValue::Counter64(1_234_567_890_123));
        assert_eq!(snmp.value(2), SnmpValue::Null);
        assert_eq!(snmp.value(0), SnmpValue::Null);
        snmp.incr(1, SnmpKind::Counter32, u32::MAX).unwrap();
        assert_eq!(snmp.value(1), SnmpValue::Counter32(6));
        snmp.set(2, SnmpKind::Gauge, 9).unwrap();
        assert_eq!(got(2).value, 9);
        snmp.clear_slots();
        assert_eq!(snmp.slot(1), Ok(None));
        assert_eq!(snmp.community(), b"public");
    }

    #[test]
    fn incr_and_decr_follow_uwsgi() {
        let snmp = table("x");
        // An unset slot starts at 0; the type is overwritten by every call.
        assert_eq!(snmp.incr(3, SnmpKind::Counter32, 1), Ok(1));
        assert_eq!(
            snmp.incr(3, SnmpKind::Gauge, u32::MAX),
            Ok(1 + u64::from(u32::MAX))
        );
        assert_eq!(snmp.slot(3).unwrap().unwrap().kind, SnmpKind::Gauge);
        // 64-bit storage: a 32-bit type keeps the high bits (the agent sends the low 32).
        assert_eq!(snmp.slot(3).unwrap().unwrap().value, 0x1_0000_0000);
        assert_eq!(snmp.decr(3, SnmpKind::Counter64, 1), Ok(0xffff_ffff));
        assert_eq!(snmp.slot(3).unwrap().unwrap().kind, SnmpKind::Counter64);
        // Wrapping on 64 bits.
        snmp.set_counter64(4, 0).unwrap();
        assert_eq!(snmp.decr(4, SnmpKind::Counter64, 2), Ok(u64::MAX - 1));
        assert_eq!(snmp.incr(4, SnmpKind::Counter64, 3), Ok(1));
    }

    #[test]
    fn community_rules() {
        let snmp = Snmp::new(&SnmpConfig::default()).unwrap();
        assert!(snmp.community().is_empty());
        assert!(!snmp.community_matches(b""));
        assert!(!snmp.community_matches(b"public"));
        assert!(!snmp.set_community(b"public"));
        assert!(snmp.community_matches(b"public"));
        assert!(!snmp.community_matches(b"publi"));
        assert!(!snmp.community_matches(b"public2"));
        assert!(snmp.set_community(&[b'a'; 80]));
        assert_eq!(snmp.community(), vec![b'a'; 72]);
        assert!(!snmp.set_community(b"ab\0cd"));
        assert_eq!(snmp.community(), b"ab");
        assert!(!snmp.set_community(b""));
        assert!(!snmp.community_matches(b""));
        assert!(matches!(
            Snmp::new(&SnmpConfig {
                community: Some(vec![b'c'; 73])
            }),
            Err(SnmpConfigError::CommunityTooLong { len: 73 })
        ));
        assert_eq!(SnmpKind::from_tag(0x42), Some(SnmpKind::Gauge));
        assert_eq!(SnmpKind::from_tag(0x05), None);
        for kind in [SnmpKind::Counter32, SnmpKind::Gauge, SnmpKind::Counter64] {
            assert_eq!(SnmpKind::from_tag(kind.tag()), Some(kind));
        }
    }

    /// The table lives in shared memory: a forked child's writes are the parent's.
    #[test]
    #[allow(unsafe_code)]
    fn slots_are_shared_across_fork() {
        let snmp = table("public");
        // SAFETY: the child only takes the futex lock, writes shared memory and calls
        // _exit: no allocation, no lock of the test harness.
        let pid = unsafe { libc::fork() };
        assert!(pid >= 0, "fork failed");
        if pid == 0 {
            let ok = snmp.set_gauge(9, 99).is_ok() && !snmp.set_community(b"secret");
            // SAFETY: ends the child without running the parent's destructors.
            unsafe { libc::_exit(if ok { 0 } else { 1 }) };
        }
        let mut status = 0;
        // SAFETY: waits for the child forked above.
        assert_eq!(unsafe { libc::waitpid(pid, &mut status, 0) }, pid);
        assert!(libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0);
        assert_eq!(
            snmp.slot(9),
            Ok(Some(SnmpSlot {
                kind: SnmpKind::Gauge,
                value: 99
            }))
        );
        assert!(snmp.community_matches(b"secret"));
    }
}
