//! The 0.9.9–1.4 UDP cluster packets (spec §5.4–§5.6) received on `--udp` sockets:
//! 73 (a node announces its hostname), 74 (a custom multicast message), 95 (cluster
//! membership: a node's `hostname`, `address`, `workers`, `requests`) and 99 (a request
//! for this server's configuration). uWSGI removed the subsystem in 1.9; this server
//! keeps the table of announced nodes and answers the configuration request, and does
//! not join a cluster or announce itself.
//!
//! # Semantics
//!
//! * **73**: logged as `new node available: <hostname>`, as 1.4.
//! * **74**: 1.4 has no receiver; its generic UDP logger writes the raw datagram
//!   (header included) as `[udp:ADDR:PORT] <bytes>`, and so does this server.
//! * **95** (a management packet): adds or refreshes the node keyed by `address`.
//!   `workers` and `requests` are decimal numbers (0 when missing or malformed, as
//!   1.4's `atoi`). A node not re-announced for [`NODE_TTL_SECS`] is dropped.
//! * **99**, modifier2 0 (a management packet): answered to the sender with one
//!   datagram `63 LLLL 01 | vars(options)`, the server's own settings as given (name →
//!   value, a bare flag as `true`), which 1.4 meant to send (its reply carried only
//!   the header, spec §5.6). Options that no longer fit one datagram
//!   ([`MAX_REPLY`] bytes) are left out, in order, and the reply says nothing of them
//!   (the server logs how many). Any other modifier2 (a reply sent to us) is logged
//!   and ignored: this server never asks for a configuration.
//!
//! 95 and 99 are management packets (the dispatcher checks the peer): the reply to a
//! 4-byte 99 can be 64 KB, which must not go to any source address a datagram claims.
//! 73 and 74 come from anyone and are logged once per datagram, as 1.4.
//!
//! Log lines carry the sender's bytes with control and non-ASCII bytes escaped
//! (`\xNN`) and at most [`MAX_LOGGED`] of them, so a datagram cannot forge or flood a
//! line.
//!
//! # Where the table lives
//!
//! In memory shared by every process of the server ([`SharedMutex`], created before the
//! master forks): the process reading the `--udp` sockets (the master with `--master`)
//! writes it, the stats server shows it, and every worker's `uwsgi.cluster_nodes()`,
//! `cluster_best_node()` and `cluster_node_name(addr)` read it.
//!
//! # Limits
//!
//! | what | limit | beyond it |
//! |---|---|---|
//! | `address` | 1..=[`MAX_ADDRESS`] bytes | refused |
//! | `hostname` | 1..=[`MAX_HOSTNAME`] bytes | refused |
//! | nodes | [`MAX_NODES`] | a new node is refused (refreshes of known nodes pass) |
//! | node lifetime | [`NODE_TTL_SECS`] s without an announcement | dropped |
//! | configuration reply | one datagram of at most [`MAX_REPLY`] bytes | options left out |
//!
//! A refused 95 changes nothing and is logged (the first one, then one in every
//! [`EVERY`](crate::state::sampled_log::EVERY)).

use std::io;
use std::time::{SystemTime, UNIX_EPOCH};

use serde_json::{Value, json};
use uwsgi_protocol::packet::VarsMessage;
use uwsgi_protocol::{Packet, VarsBuilder};

use crate::state::sampled_log::SampledLog;
use crate::state::shm::SharedMutex;

/// Longest node address (1.4's limit).
pub const MAX_ADDRESS: usize = 100;
/// Longest node hostname (1.4's limit).
pub const MAX_HOSTNAME: usize = 255;
/// Most nodes in the table (1.4's limit).
pub const MAX_NODES: usize = 100;
/// Seconds after its last announcement that a node is dropped (1.4's value).
pub const NODE_TTL_SECS: u64 = 30;
/// Most bytes of a sender's data written in one log line.
pub const MAX_LOGGED: usize = 512;
/// Largest configuration reply: the largest UDP payload over IPv4.
pub const MAX_REPLY: usize = 65_507;
// Shared layout: bytes 0..8 the last round-robin stamp handed out, then one record per
// node slot. A record: byte 0 in use, byte 1 the address length, byte 2 the hostname
// length, the address at 8, the hostname at 108, then four native-endian u64: workers,
// requests, last announcement (unix seconds), last chosen (stamp, milliseconds).
const STAMP_AT: usize = 0;
const RECORDS_AT: usize = 8;
const ADDRESS_AT: usize = 8;
const HOSTNAME_AT: usize = ADDRESS_AT + MAX_ADDRESS;
const WORKERS_AT: usize = 368;
const REQUESTS_AT: usize = WORKERS_AT + 8;
const SEEN_AT: usize = REQUESTS_AT + 8;
const CHOSEN_AT: usize = SEEN_AT + 8;
const RECORD: usize = CHOSEN_AT + 8;
const AREA: usize = RECORDS_AT + RECORD * MAX_NODES;

// The hostname must end before the numbers start.
const _: () = assert!(HOSTNAME_AT + MAX_HOSTNAME <= WORKERS_AT);

/// One announced node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClusterNode {
    /// Its `address` var: the node's id.
    pub address: Vec<u8>,
    /// Its `hostname` var.
    pub hostname: Vec<u8>,
    /// Its `workers` var.
    pub workers: u64,
    /// Its `requests` var.
    pub requests: u64,
    /// When it last announced itself (unix seconds).
    pub last_seen: u64,
    /// When `cluster_best_node()` last chose it (milliseconds; 0: never).
    pub last_chosen: u64,
}

/// What a membership packet did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Change {
    /// A node new to the table.
    Added,
    /// A known node, refreshed.
    Refreshed,
}

/// Why a membership packet changed nothing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    /// No `address` or no `hostname` var.
    #[error("no address or no hostname")]
    Incomplete,
    /// `address` empty or over [`MAX_ADDRESS`] bytes.
    #[error("address of {0} bytes (1..={MAX_ADDRESS})")]
    AddressLength(usize),
    /// `hostname` empty or over [`MAX_HOSTNAME`] bytes.
    #[error("hostname of {0} bytes (1..={MAX_HOSTNAME})")]
    HostnameLength(usize),
    /// [`MAX_NODES`] fresh nodes already.
    #[error("table full ({MAX_NODES} nodes)")]
    Full,
}

/// The table of announced nodes, in shared memory (see the module documentation).
#[derive(Debug)]
pub struct ClusterNodes {
    area: SharedMutex,
    refused: SampledLog,
}

fn read_u64(area: &[u8], at: usize) -> u64 {
    area.get(at..at + 8)
        .and_then(|b| <[u8; 8]>::try_from(b).ok())
        .map_or(0, u64::from_ne_bytes)
}

fn write_u64(area: &mut [u8], at: usize, value: u64) {
    if let Some(slot) = area.get_mut(at..at + 8) {
        slot.copy_from_slice(&value.to_ne_bytes());
    }
}

fn number(value: Option<&[u8]>) -> u64 {
    value
        .and_then(|v| std::str::from_utf8(v).ok()?.trim().parse::<u64>().ok())
        .unwrap_or(0)
}

/// Milliseconds since the epoch, for the round-robin stamps.
pub fn now_millis() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// The record of slot `index`, if in use.
fn node_at(area: &[u8], index: usize) -> Option<ClusterNode> {
    let at = RECORDS_AT + index * RECORD;
    let record = area.get(at..at + RECORD)?;
    if record[0] == 0 {
        return None;
    }
    let address_len = usize::from(record[1]).min(MAX_ADDRESS);
    let hostname_len = usize::from(record[2]).min(MAX_HOSTNAME);
    Some(ClusterNode {
        address: record[ADDRESS_AT..ADDRESS_AT + address_len].to_vec(),
        hostname: record[HOSTNAME_AT..HOSTNAME_AT + hostname_len].to_vec(),
        workers: read_u64(record, WORKERS_AT),
        requests: read_u64(record, REQUESTS_AT),
        last_seen: read_u64(record, SEEN_AT),
        last_chosen: read_u64(record, CHOSEN_AT),
    })
}

fn is_fresh(node: &ClusterNode, now: u64) -> bool {
    now.saturating_sub(node.last_seen) <= NODE_TTL_SECS
}

/// Frees every slot whose node has not announced itself for [`NODE_TTL_SECS`].
fn expire(area: &mut [u8], now: u64) {
    for index in 0..MAX_NODES {
        if node_at(area, index).is_some_and(|node| !is_fresh(&node, now)) {
            area[RECORDS_AT + index * RECORD] = 0;
        }
    }
}

impl ClusterNodes {
    /// Maps an empty table.
    pub fn new() -> io::Result<ClusterNodes> {
        Ok(ClusterNodes {
            area: SharedMutex::new(AREA)?,
            refused: SampledLog::new(),
        })
    }

    /// Applies one membership packet (modifier1 95) received at unix time `now`.
    pub fn apply(&self, message: &VarsMessage<'_>, now: u64) -> Result<Change, Refusal> {
        let [address, hostname, workers, requests] =
            message
                .vars
                .get_many([b"address".as_slice(), b"hostname", b"workers", b"requests"]);
        let (Some(address), Some(hostname)) = (address, hostname) else {
            return Err(Refusal::Incomplete);
        };
        if address.is_empty() || address.len() > MAX_ADDRESS {
            return Err(Refusal::AddressLength(address.len()));
        }
        if hostname.is_empty() || hostname.len() > MAX_HOSTNAME {
            return Err(Refusal::HostnameLength(hostname.len()));
        }
        // A lock taken over from a dead process leaves at worst one half-written record,
        // which its node's next announcement rewrites.
        let mut area = self.area.lock();
        expire(&mut area, now);
        let known =
            (0..MAX_NODES).find(|&i| node_at(&area, i).is_some_and(|n| n.address == address));
        let (index, change) = match known {
            Some(index) => (index, Change::Refreshed),
            None => {
                let free = (0..MAX_NODES).find(|&i| area[RECORDS_AT + i * RECORD] == 0);
                let Some(index) = free else {
                    return Err(Refusal::Full);
                };
                (index, Change::Added)
            }
        };
        let at = RECORDS_AT + index * RECORD;
        let record = &mut area[at..at + RECORD];
        if change == Change::Added {
            record.fill(0);
        }
        record[0] = 1;
        record[1] = u8::try_from(address.len()).unwrap_or(0);
        record[2] = u8::try_from(hostname.len()).unwrap_or(0);
        record[ADDRESS_AT..ADDRESS_AT + address.len()].copy_from_slice(address);
        record[HOSTNAME_AT..HOSTNAME_AT + hostname.len()].copy_from_slice(hostname);
        write_u64(record, WORKERS_AT, number(workers));
        write_u64(record, REQUESTS_AT, number(requests));
        write_u64(record, SEEN_AT, now);
        Ok(change)
    }

    /// [`ClusterNodes::apply`], logging a refusal through `log` (rate-limited).
    pub fn record(
        &self,
        message: &VarsMessage<'_>,
        now: u64,
        log: &dyn Fn(std::fmt::Arguments<'_>),
    ) -> Result<Change, Refusal> {
        let result = self.apply(message, now);
        if let Err(why) = &result {
            self.refused.count(|n| {
                log(format_args!(
                    "cluster node announcement refused: {why} ({n} refused so far)"
                ));
            });
        }
        result
    }

    /// The nodes announced within the last [`NODE_TTL_SECS`] at unix time `now`, in
    /// table order (the others are dropped).
    pub fn fresh(&self, now: u64) -> Vec<ClusterNode> {
        let mut area = self.area.lock();
        expire(&mut area, now);
        (0..MAX_NODES).filter_map(|i| node_at(&area, i)).collect()
    }

    /// `cluster_best_node()`: the address of the fresh node chosen least recently (the
    /// first in table order among equals), whose choice time becomes now: round robin
    /// by time, as 1.4. `now_ms` orders the choices; two choices in the same
    /// millisecond still get distinct, increasing stamps.
    pub fn best(&self, now: u64, now_ms: u64) -> Option<Vec<u8>> {
        let mut area = self.area.lock();
        expire(&mut area, now);
        let (index, node) = (0..MAX_NODES)
            .filter_map(|i| node_at(&area, i).map(|n| (i, n)))
            .min_by_key(|(i, n)| (n.last_chosen, *i))?;
        let stamp = now_ms.max(read_u64(&area, STAMP_AT).saturating_add(1));
        write_u64(&mut area, STAMP_AT, stamp);
        write_u64(&mut area, RECORDS_AT + index * RECORD + CHOSEN_AT, stamp);
        Some(node.address)
    }

    /// `cluster_node_name(addr)`: the hostname announced by the fresh node `address`.
    pub fn hostname(&self, address: &[u8], now: u64) -> Option<Vec<u8>> {
        self.fresh(now)
            .into_iter()
            .find(|n| n.address == address)
            .map(|n| n.hostname)
    }

    /// The stats document's `cluster_nodes` array (fresh nodes, table order); `None`
    /// when there is none, so the document only has it where nodes announce
    /// themselves.
    pub fn stats(&self, now: u64) -> Option<Value> {
        let nodes = self.fresh(now);
        if nodes.is_empty() {
            return None;
        }
        Some(Value::Array(
            nodes
                .iter()
                .map(|n| {
                    json!({
                        "address": String::from_utf8_lossy(&n.address),
                        "hostname": String::from_utf8_lossy(&n.hostname),
                        "workers": n.workers,
                        "requests": n.requests,
                        "last_seen": n.last_seen,
                    })
                })
                .collect(),
        ))
    }
}

/// `bytes` for a log line: printable ASCII kept (a backslash doubled), anything else
/// as `\xNN`, at most [`MAX_LOGGED`] bytes, the rest counted.
pub fn escape(bytes: &[u8]) -> String {
    let shown = &bytes[..bytes.len().min(MAX_LOGGED)];
    let mut text = String::with_capacity(shown.len() + 16);
    for &byte in shown {
        match byte {
            b'\\' => text.push_str("\\\\"),
            0x20..=0x7e => text.push(char::from(byte)),
            _ => text.push_str(&format!("\\x{byte:02x}")),
        }
    }
    if bytes.len() > shown.len() {
        text.push_str(&format!("... ({} bytes)", bytes.len()));
    }
    text
}

/// The reply to a configuration request, built once from the settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigReply {
    /// `63 LLLL 01 | vars(options)`.
    pub datagram: Vec<u8>,
    /// Options in the reply.
    pub sent: usize,
    /// Options left out because the datagram had no room for them.
    pub skipped: usize,
}

impl ConfigReply {
    /// The reply carrying `settings` (name → value, in order), at most `max` bytes
    /// with its header: an option that does not fit is left out and the next tried.
    pub fn new(settings: &[(String, String)], max: usize) -> ConfigReply {
        let room = max.saturating_sub(uwsgi_protocol::Header::LEN);
        let mut vars = VarsBuilder::new();
        let mut skipped = 0;
        for (name, value) in settings {
            let grown = vars.block_len() + 4 + name.len() + value.len();
            if grown > room || vars.push(name, value).is_err() {
                skipped += 1;
            }
        }
        let sent = vars.len();
        let message = VarsMessage::new(1, vars.as_vars());
        ConfigReply {
            datagram: Packet::ClusterConfig(message).to_vec(),
            sent,
            skipped,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use uwsgi_protocol::Limits;

    fn announce(table: &ClusterNodes, pairs: &[(&str, &str)], now: u64) -> Result<Change, Refusal> {
        let vars = VarsBuilder::from_pairs(pairs.iter().copied()).unwrap();
        table.apply(&VarsMessage::new(0, vars.as_vars()), now)
    }

    fn node(address: &str) -> Vec<(&'static str, String)> {
        vec![
            ("hostname", format!("host-{address}")),
            ("address", address.to_owned()),
            ("workers", "4".to_owned()),
            ("requests", "x".to_owned()),
        ]
    }

    fn announce_node(table: &ClusterNodes, address: &str, now: u64) -> Result<Change, Refusal> {
        let pairs = node(address);
        let pairs: Vec<(&str, &str)> = pairs.iter().map(|(k, v)| (*k, v.as_str())).collect();
        announce(table, &pairs, now)
    }

    #[test]
    fn announcements_add_refresh_and_expire() {
        let table = ClusterNodes::new().unwrap();
        assert_eq!(
            announce_node(&table, "10.0.0.1:3031", 100),
            Ok(Change::Added)
        );
        assert_eq!(
            announce_node(&table, "10.0.0.1:3031", 110),
            Ok(Change::Refreshed)
        );
        let nodes = table.fresh(110);
        assert_eq!(nodes.len(), 1);
        assert_eq!(nodes[0].hostname, b"host-10.0.0.1:3031");
        assert_eq!((nodes[0].workers, nodes[0].requests), (4, 0));
        // 30 s after the last announcement the node is still there, then gone.
        assert_eq!(table.fresh(140).len(), 1);
        assert!(table.fresh(141).is_empty());
        assert!(table.stats(141).is_none());
        assert_eq!(table.hostname(b"10.0.0.1:3031", 141), None);
    }

    #[test]
    fn limits_are_enforced() {
        let table = ClusterNodes::new().unwrap();
        let long = "a".repeat(MAX_ADDRESS + 1);
        assert_eq!(
            announce_node(&table, &long, 1),
            Err(Refusal::AddressLength(101))
        );
        let host = "h".repeat(MAX_HOSTNAME + 1);
        assert_eq!(
            announce(&table, &[("hostname", &host), ("address", "a")], 1),
            Err(Refusal::HostnameLength(256))
        );
        assert_eq!(
            announce(&table, &[("address", "a")], 1),
            Err(Refusal::Incomplete)
        );
        let longest = "a".repeat(MAX_ADDRESS);
        assert_eq!(announce_node(&table, &longest, 1), Ok(Change::Added));
        for i in 1..MAX_NODES {
            assert_eq!(
                announce_node(&table, &format!("n{i}"), 1),
                Ok(Change::Added)
            );
        }
        assert_eq!(announce_node(&table, "one-too-many", 1), Err(Refusal::Full));
        assert_eq!(announce_node(&table, "n1", 2), Ok(Change::Refreshed));
        assert_eq!(table.fresh(2)[0].address, longest.as_bytes());
        // Once the others expire there is room again.
        assert_eq!(announce_node(&table, "late", 32), Ok(Change::Added));
        assert_eq!(table.fresh(32).len(), 2);
    }

    #[test]
    fn best_node_is_round_robin_by_time() {
        let table = ClusterNodes::new().unwrap();
        assert_eq!(table.best(1, 1000), None);
        for address in ["a", "b", "c"] {
            announce_node(&table, address, 1).unwrap();
        }
        // The same millisecond every time: the stamps still move on.
        let chosen: Vec<Vec<u8>> = (0..6).filter_map(|_| table.best(1, 1000)).collect();
        let expected: Vec<&[u8]> = vec![b"a", b"b", b"c", b"a", b"b", b"c"];
        assert_eq!(chosen, expected);
    }

    #[test]
    fn escape_bounds_and_neutralises_bytes() {
        assert_eq!(escape(b"a\nb\\c\xff"), "a\\x0ab\\\\c\\xff");
        let long = vec![b'x'; MAX_LOGGED + 10];
        let line = escape(&long);
        assert!(line.ends_with(&format!("... ({} bytes)", MAX_LOGGED + 10)));
        assert_eq!(line.matches('x').count(), MAX_LOGGED);
    }

    #[test]
    fn config_reply_carries_the_options_that_fit() {
        let settings = vec![
            ("socket".to_owned(), "127.0.0.1:3031".to_owned()),
            ("big".to_owned(), "v".repeat(100)),
            ("master".to_owned(), "true".to_owned()),
        ];
        let reply = ConfigReply::new(&settings, 64);
        assert_eq!((reply.sent, reply.skipped), (2, 1));
        assert!(reply.datagram.len() <= 64);
        let packet = Packet::decode_datagram(&reply.datagram, &Limits::default()).unwrap();
        let Packet::ClusterConfig(message) = packet else {
            panic!("not a configuration reply: {packet:?}");
        };
        assert_eq!(message.modifier2, 1);
        assert_eq!(
            message.vars.get("socket"),
            Some(b"127.0.0.1:3031".as_slice())
        );
        assert_eq!(message.vars.get("master"), Some(b"true".as_slice()));
        assert_eq!(message.vars.get("big"), None);
        let empty = ConfigReply::new(&[], MAX_REPLY);
        assert_eq!(empty.datagram, [99, 0, 0, 1]);
    }
}
