//! Cache replication between servers over UDP (`--cache-udp-node` / `--cache-udp-server`,
//! `nodes=` / `udp=` of `--cache2`), as uWSGI 2.0 does it (`core/cache.c`:
//! `cache_send_udp_command`, `cache_udp_server_loop`), as pure functions: the network
//! side (a non-blocking UDP socket sending to every node, a thread reading the `udp`
//! addresses) belongs to the server.
//!
//! # The datagrams
//!
//! One uwsgi packet per datagram, modifier1 111, the header's datasize equal to the
//! bytes that follow (a receiver drops any other datagram):
//!
//! | modifier2 | sent after | block |
//! |---|---|---|
//! | 10 | a successful `set`, `update` or number operation | `u16 klen, key, u16 vlen, value, u16 elen, expires` |
//! | 11 | a successful `del` | `u16 klen, key` |
//!
//! Lengths are little-endian; `expires` is the **absolute** unix time in ASCII decimal
//! (`0` = never). A node applies a set as an `update` with that absolute expiry, and a
//! delete as a `del`, both *locally*: an applied datagram is never forwarded again
//! (uWSGI's `UWSGI_CACHE_FLAG_LOCAL`), which [`apply`] guarantees by not returning
//! anything to send. There is no cache name in the datagram: a `udp` address belongs to
//! one cache, which is the one to pass to [`apply`].
//!
//! # Differences from uWSGI (deliberate)
//!
//! * uWSGI's receiver checks the key against `4 + keylen ≤ datasize` for both commands,
//!   which no delete datagram (`2 + keylen` bytes) can pass: uWSGI nodes silently drop
//!   every replicated delete. Deletes are applied here. A uWSGI node receiving ours
//!   still drops them, as it drops its own.
//! * For the number operations (`cache_inc`…) uWSGI replicates the *delta* as the new
//!   value (the `val` it was given), so nodes store the wrong number; here the caller
//!   sends the resulting 8 bytes ([`encode_set`] of the value the cache now holds).
//! * A value over 65535 bytes: uWSGI sends its length truncated to 16 bits (and only
//!   that many bytes); here [`encode_set`] refuses it (`EncodeError`), and a node
//!   refuses a datagram whose fields do not exactly fill it.
//! * uWSGI accepts a set without the expiry field (expiry 0) and reads the digits without
//!   checking them; its own sender always sends the field. Here the field is required
//!   and must be decimal, so every datagram uWSGI sends is accepted.

use uwsgi_protocol::packet::cache_op as op;
use uwsgi_protocol::packet::{CacheRequest, SyncDelete, SyncSet};
use uwsgi_protocol::{DecodeError, EncodeError, Header, Limits, Modifier1, Packet};

use crate::cache::{Cache, CacheError, Expiry, StoreMode};

/// What a sync datagram asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SyncCommand<'a> {
    /// modifier2 10: store `value` under `key`, overwriting, expiring at `expires`
    /// (absolute unix seconds, 0 = never).
    Set {
        /// The key.
        key: &'a [u8],
        /// The value.
        value: &'a [u8],
        /// Absolute expiry, 0 = never.
        expires: u64,
    },
    /// modifier2 11: delete `key`.
    Delete {
        /// The key.
        key: &'a [u8],
    },
}

/// Why a received datagram was not applied (uWSGI drops it, or logs "unable to update
/// cache").
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SyncError {
    /// Not a well-formed uwsgi packet, or its datasize does not match the datagram.
    #[error("invalid cache sync datagram: {0}")]
    Decode(#[from] DecodeError),
    /// A well-formed packet that is not a cache sync (modifier1 111, modifier2 10/11).
    #[error("not a cache sync datagram (modifier1 {modifier1}, modifier2 {modifier2})")]
    NotSync {
        /// Its modifier1.
        modifier1: u8,
        /// Its modifier2.
        modifier2: u8,
    },
    /// The cache refused the operation (full, value too large, key missing…).
    #[error("unable to update cache: {0}")]
    Cache(#[from] CacheError),
}

/// The datagram a cache sends to its nodes after a successful store of `value` under
/// `key` that expires at `expires` (absolute unix seconds, 0 = never: what
/// [`Expiry`] gives for the store's `now`).
pub fn encode_set(key: &[u8], value: &[u8], expires: u64) -> Result<Vec<u8>, EncodeError> {
    frame(op::SYNC_SET, SyncSet::build(key, value, expires)?)
}

/// [`encode_set`] for a store given its [`Expiry`] and `now` (the absolute expiry the
/// cache stored).
pub fn encode_store(
    key: &[u8],
    value: &[u8],
    expiry: Expiry,
    now: u64,
) -> Result<Vec<u8>, EncodeError> {
    let expires = match expiry {
        Expiry::Never => 0,
        Expiry::After(seconds) => now.saturating_add(seconds),
        Expiry::At(when) => when,
    };
    encode_set(key, value, expires)
}

/// The datagram a cache sends to its nodes after a successful delete of `key`.
pub fn encode_delete(key: &[u8]) -> Result<Vec<u8>, EncodeError> {
    frame(op::SYNC_DELETE, SyncDelete::build(key)?)
}

fn frame(modifier2: u8, block: Vec<u8>) -> Result<Vec<u8>, EncodeError> {
    // The builders already refuse blocks over 65535 bytes.
    let datasize = u16::try_from(block.len()).map_err(|_| EncodeError::TooLarge {
        what: uwsgi_protocol::Field::Block,
        len: block.len(),
        max: usize::from(u16::MAX),
    })?;
    let mut datagram = Vec::with_capacity(Header::LEN + block.len());
    datagram.extend_from_slice(&Header::new(Modifier1::Cache, datasize, modifier2).to_bytes());
    datagram.extend_from_slice(&block);
    Ok(datagram)
}

/// Reads a received datagram.
pub fn decode(datagram: &[u8]) -> Result<SyncCommand<'_>, SyncError> {
    let limits = Limits::default();
    match Packet::decode_datagram(datagram, &limits)? {
        Packet::Cache(CacheRequest::SyncSet(set)) => Ok(SyncCommand::Set {
            key: set.key(),
            value: set.value(),
            expires: set.expires(),
        }),
        Packet::Cache(CacheRequest::SyncDelete(delete)) => {
            Ok(SyncCommand::Delete { key: delete.key() })
        }
        _ => Err(SyncError::NotSync {
            modifier1: datagram.first().copied().unwrap_or(0),
            modifier2: datagram.get(3).copied().unwrap_or(0),
        }),
    }
}

/// Applies a received datagram to `cache` (the cache its `udp` address belongs to), as
/// a node does: a set becomes an `update` with the absolute expiry, a delete a `del`.
/// Returns what was applied; nothing is to be sent on.
pub fn apply<'d>(
    cache: &Cache,
    datagram: &'d [u8],
    now: u64,
) -> Result<SyncCommand<'d>, SyncError> {
    let command = decode(datagram)?;
    match command {
        SyncCommand::Set {
            key,
            value,
            expires,
        } => cache.store(key, value, Expiry::At(expires), StoreMode::Update, now)?,
        SyncCommand::Delete { key } => cache.del(key, now)?,
    }
    Ok(command)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cache::CacheConfig;

    fn cache() -> Cache {
        let mut config = CacheConfig::new("synced", 8);
        config.blocksize = 64;
        config.hashsize = 16;
        Cache::new(config).unwrap()
    }

    #[test]
    fn set_datagram_is_uwsgi_bytes() {
        // What cache_send_udp_command writes for key "k", value "v1", expires 1700000000:
        // 6f | pktsize 2+1+2+2+2+10 = 19 LE | 0a | 0100 'k' | 0200 'v1' | 0a00 digits.
        let datagram = encode_set(b"k", b"v1", 1_700_000_000).unwrap();
        let mut expected = vec![0x6f, 19, 0, 10, 1, 0, b'k', 2, 0, b'v', b'1', 10, 0];
        expected.extend_from_slice(b"1700000000");
        assert_eq!(datagram, expected);
        // No expiry is the digit 0 (uwsgi_long2str2n of 0).
        let never = encode_set(b"k", b"v", 0).unwrap();
        assert_eq!(&never[never.len() - 3..], &[1, 0, b'0']);
    }

    #[test]
    fn delete_datagram_is_uwsgi_bytes() {
        assert_eq!(
            encode_delete(b"key").unwrap(),
            vec![0x6f, 5, 0, 11, 3, 0, b'k', b'e', b'y']
        );
    }

    #[test]
    fn encode_store_sends_the_absolute_expiry() {
        let relative = encode_store(b"k", b"v", Expiry::After(30), 1000).unwrap();
        assert_eq!(
            decode(&relative).unwrap(),
            SyncCommand::Set {
                key: b"k",
                value: b"v",
                expires: 1030
            }
        );
        let never = encode_store(b"k", b"v", Expiry::relative(0), 1000).unwrap();
        assert!(matches!(
            decode(&never).unwrap(),
            SyncCommand::Set { expires: 0, .. }
        ));
    }

    #[test]
    fn a_node_applies_sets_as_updates_with_absolute_expiry() {
        let node = cache();
        node.set(b"k", b"old", 0, 0).unwrap();
        let datagram = encode_set(b"k", b"new", 2000).unwrap();
        assert_eq!(
            apply(&node, &datagram, 1000),
            Ok(SyncCommand::Set {
                key: b"k",
                value: b"new",
                expires: 2000
            })
        );
        let item = node.get_item(b"k", 1000).unwrap();
        assert_eq!(item.value, b"new");
        assert_eq!(item.expires, 2000, "absolute, not 1000 + 2000");
        // Expiry 0: immortal.
        apply(&node, &encode_set(b"n", b"1", 0).unwrap(), 1000).unwrap();
        assert_eq!(node.get_item(b"n", 1000).unwrap().expires, 0);
    }

    #[test]
    fn a_node_applies_deletes() {
        let node = cache();
        node.set(b"gone", b"x", 0, 0).unwrap();
        let datagram = encode_delete(b"gone").unwrap();
        assert_eq!(
            apply(&node, &datagram, 0),
            Ok(SyncCommand::Delete { key: b"gone" })
        );
        assert!(!node.exists(b"gone", 0));
        assert_eq!(
            apply(&node, &datagram, 0),
            Err(SyncError::Cache(CacheError::NotFound))
        );
    }

    #[test]
    fn replication_round_trip_between_two_caches() {
        // Every store on the first cache, replicated, leaves the second one equal.
        let origin = cache();
        let node = cache();
        let mut sent = Vec::new();
        origin.set(b"a", b"1", 60, 100).unwrap();
        sent.push(encode_store(b"a", b"1", Expiry::After(60), 100).unwrap());
        origin.update(b"b", b"2", 0, 100).unwrap();
        sent.push(encode_store(b"b", b"2", Expiry::Never, 100).unwrap());
        let n = origin.inc(b"n", 5, 0, 100).unwrap();
        sent.push(encode_set(b"n", &n.to_ne_bytes(), 0).unwrap());
        origin.del(b"b", 100).unwrap();
        sent.push(encode_delete(b"b").unwrap());
        for datagram in &sent {
            apply(&node, datagram, 101).unwrap();
        }
        let mut keys = node.keys();
        keys.sort();
        assert_eq!(keys, vec![b"a".to_vec(), b"n".to_vec()]);
        assert_eq!(
            node.get_item(b"a", 101),
            origin.get_item(b"a", 101).map(|mut i| {
                i.hits = 0;
                i
            })
        );
        assert_eq!(node.num(b"n", 101), Some(5));
    }

    #[test]
    fn malformed_and_foreign_datagrams_are_refused() {
        let node = cache();
        let good = encode_set(b"k", b"v", 5).unwrap();
        // Datasize not matching the datagram (a truncated or padded datagram).
        assert!(matches!(
            apply(&node, &good[..good.len() - 1], 0),
            Err(SyncError::Decode(_))
        ));
        let mut padded = good.clone();
        padded.push(0);
        assert!(matches!(
            apply(&node, &padded, 0),
            Err(SyncError::Decode(_))
        ));
        // Fields that do not fill the block exactly.
        let mut short_value = good.clone();
        short_value[7] = 9;
        assert!(matches!(
            apply(&node, &short_value, 0),
            Err(SyncError::Decode(_))
        ));
        // Non-decimal expiry.
        let mut bad_digit = encode_set(b"k", b"v", 5).unwrap();
        let last = bad_digit.len() - 1;
        bad_digit[last] = b'x';
        assert!(matches!(
            apply(&node, &bad_digit, 0),
            Err(SyncError::Decode(_))
        ));
        // Another cache command, another modifier1.
        let mut get = vec![0x6f, 1, 0, 0];
        get.push(b'k');
        assert_eq!(
            apply(&node, &get, 0),
            Err(SyncError::NotSync {
                modifier1: 111,
                modifier2: 0
            })
        );
        assert!(matches!(
            apply(&node, &[0, 0, 0, 0], 0),
            Err(SyncError::NotSync { modifier1: 0, .. })
        ));
        assert!(matches!(
            apply(&node, &[0x6f, 0], 0),
            Err(SyncError::Decode(_))
        ));
        assert!(node.is_empty());
        // Too large to send: refused, not truncated.
        assert!(encode_set(b"k", &vec![0; 65536], 0).is_err());
        // A value the node cannot hold: the cache's error.
        let big = encode_set(b"k", &[1; 65], 0).unwrap();
        assert!(matches!(
            apply(&node, &big, 0),
            Err(SyncError::Cache(CacheError::ValueTooLarge { .. }))
        ));
    }
}
