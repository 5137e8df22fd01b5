//! Cache replication between servers over UDP (`--cache-udp-node` / `--cache-udp-server`,
//! `nodes=` / `udp=` of `--cache2`), as uWSGI 2.0 does it (`core/cache.c`:
//! `cache_send_udp_command`, `cache_udp_server_loop`): the datagrams as pure functions,
//! and the sending side ([`Replicator`]), which a [`Cache`] with `nodes` owns, so every
//! writer (network commands, the magic interface, Python's `uwsgi.cache_*`) replicates
//! through the same code. Receiving (binding the `udp` addresses, checking the peer)
//! belongs to the server, which hands each datagram to [`apply`].
//!
//! # Sending
//!
//! A cache with `nodes` opens one non-blocking UDP socket per address family when it is
//! created, before the workers fork, so every worker sends from the same socket. After a
//! successful `set`, `update`, `del` or number operation ([`Cache::store`],
//! [`Cache::del`], [`Cache::math`]), the datagram goes to every node in turn with one
//! `sendto` each: the request path never waits (a full socket buffer is a failed send).
//! Sends and failures are counted in shared memory, so the counts of every process add
//! up ([`Replicator::stats`]); failures are logged through the logger the server installs
//! (the first failure of each process, then one in every [`EVERY`](crate::sampled_log::EVERY)). Delivery is best effort, as in uWSGI: nothing is acknowledged,
//! retried or ordered. Expiry by the sweeper, LRU eviction, `clear` and the applying of
//! a received datagram are not replicated (uWSGI's `UWSGI_CACHE_FLAG_LOCAL`).
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

use std::fmt;
use std::net::{SocketAddr, ToSocketAddrs, UdpSocket};
use std::sync::atomic::Ordering;
use std::sync::{Arc, OnceLock};

use uwsgi_protocol::packet::cache_op as op;
use uwsgi_protocol::packet::{CacheRequest, SyncDelete, SyncSet};
use uwsgi_protocol::{DecodeError, EncodeError, Header, Limits, Modifier1, Packet};

use crate::cache::{Cache, CacheError, Expiry, StoreMode};
use crate::shm::SharedCounters;

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
/// a node does: a set becomes an `update` with the absolute expiry, a delete a `del`,
/// both local ([`Cache::store_local`], [`Cache::del_local`]): nothing is sent on, even
/// when this cache has nodes of its own, so two caches naming each other do not loop.
/// Returns what was applied.
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
        } => cache.store_local(key, value, Expiry::At(expires), StoreMode::Update, now)?,
        SyncCommand::Delete { key } => cache.del_local(key, now)?,
    }
    Ok(command)
}

/// Where the replicator reports failed sends (the server's log).
pub type SyncLogger = Arc<dyn Fn(fmt::Arguments<'_>) + Send + Sync>;

/// Why a `nodes` entry was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid cache udp node {node:?}: {reason}")]
pub struct NodeError {
    /// The entry as written.
    pub node: String,
    /// What is wrong with it.
    pub reason: String,
}

/// Sends and failures of one [`Replicator`], counted by every process sharing it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ReplicationStats {
    /// Datagrams handed to the kernel (one per node per write).
    pub sent: u64,
    /// Sends that failed (a full socket buffer, an unreachable network…).
    pub failed: u64,
    /// Writes that could not be encoded (a value over 65535 bytes): sent to no node.
    pub unsendable: u64,
}

/// The sending side of a cache with `nodes`: the resolved node addresses and the
/// non-blocking sockets they are reached from.
pub struct Replicator {
    nodes: Vec<(String, SocketAddr)>,
    v4: Option<UdpSocket>,
    v6: Option<UdpSocket>,
    /// [`SENT`], [`FAILED`], [`UNSENDABLE`]: shared with the forked workers.
    counters: SharedCounters,
    logger: OnceLock<SyncLogger>,
}

const SENT: usize = 0;
const FAILED: usize = 1;
const UNSENDABLE: usize = 2;

impl fmt::Debug for Replicator {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Replicator")
            .field("nodes", &self.nodes)
            .field("stats", &self.stats())
            .finish_non_exhaustive()
    }
}

/// `HOST:PORT` (or `[V6]:PORT`) as one address; an IPv4 address is preferred when the
/// name has several, as uWSGI only speaks IPv4 to its nodes.
pub fn resolve_node(node: &str) -> Result<SocketAddr, NodeError> {
    let error = |reason: &str| NodeError {
        node: node.to_owned(),
        reason: reason.to_owned(),
    };
    if let Ok(addr) = node.parse::<SocketAddr>() {
        return Ok(addr);
    }
    let Some((host, port)) = node.rsplit_once(':') else {
        return Err(error("expected HOST:PORT"));
    };
    if host.is_empty() || port.parse::<u16>().is_err() {
        return Err(error("expected HOST:PORT"));
    }
    let addrs: Vec<SocketAddr> = node
        .to_socket_addrs()
        .map_err(|e| error(&format!("cannot resolve: {e}")))?
        .collect();
    addrs
        .iter()
        .find(|a| a.is_ipv4())
        .or_else(|| addrs.first())
        .copied()
        .ok_or_else(|| error("the name resolves to no address"))
}

impl Replicator {
    /// Resolves every node and opens the sockets (non-blocking, bound to an ephemeral
    /// port of the unspecified address of each family used).
    pub fn new(nodes: &[String]) -> Result<Self, NodeError> {
        let nodes = nodes
            .iter()
            .map(|node| resolve_node(node).map(|addr| (node.clone(), addr)))
            .collect::<Result<Vec<_>, _>>()?;
        let open = |any: &str| -> Result<UdpSocket, NodeError> {
            let socket = UdpSocket::bind(any).map_err(|e| NodeError {
                node: any.to_owned(),
                reason: format!("cannot open the sending socket: {e}"),
            })?;
            socket.set_nonblocking(true).map_err(|e| NodeError {
                node: any.to_owned(),
                reason: format!("cannot make the sending socket non-blocking: {e}"),
            })?;
            Ok(socket)
        };
        let v4 = match nodes.iter().any(|(_, a)| a.is_ipv4()) {
            true => Some(open("0.0.0.0:0")?),
            false => None,
        };
        let v6 = match nodes.iter().any(|(_, a)| a.is_ipv6()) {
            true => Some(open("[::]:0")?),
            false => None,
        };
        let counters = SharedCounters::new(3).map_err(|e| NodeError {
            node: String::new(),
            reason: format!("cannot map the replication counters: {e}"),
        })?;
        Ok(Replicator {
            nodes,
            v4,
            v6,
            counters,
            logger: OnceLock::new(),
        })
    }

    /// The nodes, as written and as resolved.
    pub fn nodes(&self) -> &[(String, SocketAddr)] {
        &self.nodes
    }

    /// Installs where failures are logged (the first call wins); without a logger they
    /// are only counted.
    pub fn set_logger(&self, logger: SyncLogger) {
        let _ = self.logger.set(logger);
    }

    /// The counters, summed over every process sharing this replicator.
    pub fn stats(&self) -> ReplicationStats {
        let get = |index: usize| {
            self.counters
                .get(index)
                .map_or(0, |c| c.load(Ordering::Relaxed))
        };
        ReplicationStats {
            sent: get(SENT),
            failed: get(FAILED),
            unsendable: get(UNSENDABLE),
        }
    }

    /// Adds one to a counter; returns its previous value.
    fn count(&self, index: usize) -> u64 {
        self.counters
            .get(index)
            .map_or(0, |c| c.fetch_add(1, Ordering::Relaxed))
    }

    /// Sends a set of `value` under `key` expiring at `expires` (absolute, 0 = never).
    pub fn send_set(&self, cache: &str, key: &[u8], value: &[u8], expires: u64) {
        self.send(cache, key, encode_set(key, value, expires));
    }

    /// Sends a delete of `key`.
    pub fn send_delete(&self, cache: &str, key: &[u8]) {
        self.send(cache, key, encode_delete(key));
    }

    fn send(&self, cache: &str, key: &[u8], datagram: Result<Vec<u8>, EncodeError>) {
        let datagram = match datagram {
            Ok(datagram) => datagram,
            Err(err) => {
                let count = self.count(UNSENDABLE);
                if crate::sampled_log::is_logged(count) {
                    self.log(format_args!(
                        "[cache-udp-node] cache \"{cache}\": not replicating key {:?}: {err} \
                         ({} such writes so far)",
                        String::from_utf8_lossy(key),
                        count + 1
                    ));
                }
                return;
            }
        };
        for (name, addr) in &self.nodes {
            let socket = if addr.is_ipv4() { &self.v4 } else { &self.v6 };
            let result = match socket {
                Some(socket) => socket.send_to(&datagram, addr).map(|_| ()),
                None => Err(std::io::Error::other("no socket for this address family")),
            };
            match result {
                Ok(()) => {
                    self.count(SENT);
                }
                Err(err) => {
                    let count = self.count(FAILED);
                    if crate::sampled_log::is_logged(count) {
                        self.log(format_args!(
                            "[cache-udp-node] cache \"{cache}\": sending to {name} ({addr}) \
                             failed: {err} ({} failed sends so far)",
                            count + 1
                        ));
                    }
                }
            }
        }
    }

    fn log(&self, line: fmt::Arguments<'_>) {
        if let Some(logger) = self.logger.get() {
            logger(line);
        }
    }
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

    fn receiver() -> (UdpSocket, String) {
        let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
        socket
            .set_read_timeout(Some(std::time::Duration::from_secs(5)))
            .unwrap();
        let addr = socket.local_addr().unwrap().to_string();
        (socket, addr)
    }

    fn replicating(nodes: &[&str]) -> Cache {
        let mut config = CacheConfig::new("replicated", 8);
        config.blocksize = 64;
        config.hashsize = 16;
        config.nodes = nodes.iter().map(|n| (*n).to_owned()).collect();
        Cache::new(config).unwrap()
    }

    fn next(socket: &UdpSocket) -> Vec<u8> {
        let mut buffer = vec![0; 70_000];
        let (len, _) = socket.recv_from(&mut buffer).unwrap();
        buffer.truncate(len);
        buffer
    }

    #[test]
    fn every_successful_write_is_sent_to_every_node() {
        let (first, first_addr) = receiver();
        let (second, second_addr) = receiver();
        let origin = replicating(&[&first_addr, &second_addr]);
        origin.set(b"k", b"v1", 30, 1000).unwrap();
        origin.update(b"k", b"v2", 0, 1000).unwrap();
        assert_eq!(origin.inc(b"n", 5, 0, 1000), Ok(5));
        assert_eq!(origin.inc(b"n", 2, 0, 1000), Ok(7));
        origin.del(b"k", 1000).unwrap();
        // Failed writes send nothing.
        assert!(origin.set(b"n", b"x", 0, 1000).is_err());
        assert!(origin.del(b"missing", 1000).is_err());
        origin.set(b"last", b"z", 0, 1000).unwrap();
        let expected = [
            encode_set(b"k", b"v1", 1030).unwrap(),
            encode_set(b"k", b"v2", 0).unwrap(),
            encode_set(b"n", &5i64.to_ne_bytes(), 0).unwrap(),
            encode_set(b"n", &7i64.to_ne_bytes(), 0).unwrap(),
            encode_delete(b"k").unwrap(),
            encode_set(b"last", b"z", 0).unwrap(),
        ];
        for socket in [&first, &second] {
            for datagram in &expected {
                assert_eq!(&next(socket), datagram);
            }
        }
        let stats = origin.replicator().unwrap().stats();
        assert_eq!(stats.sent, 12);
        assert_eq!(stats.failed, 0);
    }

    #[test]
    fn applied_datagrams_are_not_sent_on() {
        let (downstream, downstream_addr) = receiver();
        let node = replicating(&[&downstream_addr]);
        apply(&node, &encode_set(b"k", b"v", 0).unwrap(), 0).unwrap();
        apply(&node, &encode_delete(b"k").unwrap(), 0).unwrap();
        assert_eq!(node.replicator().unwrap().stats().sent, 0);
        // A local write still is: the first datagram the downstream sees is this one.
        node.set(b"mine", b"1", 0, 0).unwrap();
        assert_eq!(next(&downstream), encode_set(b"mine", b"1", 0).unwrap());
    }

    #[test]
    fn values_too_large_for_a_datagram_are_counted_not_sent() {
        let (node, node_addr) = receiver();
        let mut config = CacheConfig::new("big", 4);
        config.blocksize = 70_000;
        config.hashsize = 16;
        config.nodes = vec![node_addr];
        let origin = Cache::new(config).unwrap();
        let logged = Arc::new(std::sync::Mutex::new(Vec::new()));
        let sink = Arc::clone(&logged);
        origin
            .replicator()
            .unwrap()
            .set_logger(Arc::new(move |line: fmt::Arguments<'_>| {
                sink.lock().unwrap().push(line.to_string());
            }));
        origin.set(b"big", &vec![1; 65_536], 0, 0).unwrap();
        origin.set(b"small", b"s", 0, 0).unwrap();
        assert_eq!(next(&node), encode_set(b"small", b"s", 0).unwrap());
        let stats = origin.replicator().unwrap().stats();
        assert_eq!((stats.sent, stats.unsendable), (1, 1));
        let logged = logged.lock().unwrap();
        assert_eq!(logged.len(), 1);
        assert!(logged[0].contains("not replicating"), "{logged:?}");
    }

    proptest::proptest! {
        /// Any datagram is applied or refused, never a panic, and a refused one leaves
        /// the cache untouched.
        #[test]
        fn any_datagram_is_applied_or_refused(datagram in proptest::collection::vec(proptest::num::u8::ANY, 0..80)) {
            let node = cache();
            let result = apply(&node, &datagram, 0);
            if result.is_err() {
                proptest::prop_assert!(node.is_empty());
            }
        }

        /// Every set the sender can encode is applied as sent.
        #[test]
        fn encoded_sets_round_trip(
            key in proptest::collection::vec(proptest::num::u8::ANY, 1..32),
            value in proptest::collection::vec(proptest::num::u8::ANY, 1..64),
            expires in proptest::num::u64::ANY,
        ) {
            let node = cache();
            let datagram = encode_set(&key, &value, expires).unwrap();
            apply(&node, &datagram, 0).unwrap();
            let item = node.get_item(&key, 0).unwrap();
            proptest::prop_assert_eq!(item.value, value);
            proptest::prop_assert_eq!(item.expires, expires);
        }
    }

    #[test]
    fn nodes_must_be_addresses() {
        for bad in ["nocolon", ":", "host:notaport", ":99999", ""] {
            assert!(resolve_node(bad).is_err(), "{bad}");
        }
        assert_eq!(
            resolve_node("127.0.0.1:3000").unwrap(),
            "127.0.0.1:3000".parse().unwrap()
        );
        assert!(resolve_node("localhost:3000").unwrap().is_ipv4());
        let mut config = CacheConfig::new("c", 4);
        config.blocksize = 64;
        config.nodes = vec!["nowhere".into()];
        assert!(matches!(
            Cache::new(config),
            Err(crate::cache::CacheConfigError::InvalidNode { .. })
        ));
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
