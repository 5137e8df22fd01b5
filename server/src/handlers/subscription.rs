//! The subscription table (modifier1 224, spec §7.7): instances announce themselves
//! (`--subscribe-to`) to a subscription server, which keeps key (pool, usually a virtual
//! host) → nodes. This server keeps the table and shows it in the stats document; it
//! routes nothing with it.
//!
//! # Semantics
//!
//! * Subscriptions are received on `--udp` sockets, as uWSGI's subscription servers
//!   receive them: in the process that reads those sockets (the master with
//!   `--master`), which is also the one that serves `--stats`.
//! * modifier2 0 subscribes (or refreshes) the node `address` under `key`; **any other
//!   modifier2** unsubscribes it (uWSGI sends 1 at shutdown). An unsubscribed node is
//!   removed at once (uWSGI marks it dead and frees it when no request uses it), and a
//!   key without nodes with it.
//! * The node's `modifier1`, `modifier2`, `cores`, `load` and `weight` vars are decimal
//!   numbers; a missing or malformed one reads 0, and a weight of 0 reads 1, as uWSGI.
//!
//! # Limits
//!
//! | what | limit | beyond it |
//! |---|---|---|
//! | `key` | 1..=[`MAX_KEY`] bytes | refused (uWSGI keeps keys in 255-byte slots and overflows them with longer ones) |
//! | `address` | 1..=[`MAX_ADDRESS`] bytes | refused |
//! | keys | [`MAX_KEYS`] | a subscription to a new key is refused |
//! | nodes, all keys together | [`MAX_NODES`] | a new node is refused (refreshes of known nodes still pass) |
//!
//! A refused packet changes nothing; refusals are logged for the first one and then one
//! in every [`EVERY`](crate::state::sampled_log::EVERY), so a flood cannot fill the log.

use std::collections::HashMap;
use std::sync::Mutex;

use crate::state::sampled_log::SampledLog;
use serde_json::{Value, json};
use uwsgi_protocol::packet::VarsMessage;

/// Longest key (uWSGI's slot key array).
pub const MAX_KEY: usize = 255;
/// Longest node address.
pub const MAX_ADDRESS: usize = 255;
/// Most keys in the table.
pub const MAX_KEYS: usize = 1024;
/// Most nodes in the table, all keys together.
pub const MAX_NODES: usize = 4096;
/// One subscribed node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SubscribedNode {
    /// The node's address as it announced it (`address` var).
    pub address: String,
    /// `modifier1` var.
    pub modifier1: u8,
    /// `modifier2` var.
    pub modifier2: u8,
    /// `cores` var.
    pub cores: u64,
    /// `load` var.
    pub load: u64,
    /// `weight` var (0 reads 1).
    pub weight: u64,
    /// When it last announced itself (unix seconds).
    pub last_check: u64,
}

/// What a subscription packet did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    /// The node is (still) subscribed.
    Subscribed,
    /// The node was removed (or was not there).
    Unsubscribed,
    /// Nothing changed, for this reason.
    Refused(Refusal),
}

/// Why a subscription packet changed nothing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    /// No `key` or no `address` var.
    #[error("no key or no address")]
    Incomplete,
    /// `key` empty or over [`MAX_KEY`] bytes.
    #[error("key of {0} bytes (1..=255)")]
    KeyLength(usize),
    /// `address` empty or over [`MAX_ADDRESS`] bytes.
    #[error("address of {0} bytes (1..=255)")]
    AddressLength(usize),
    /// [`MAX_KEYS`] keys already.
    #[error("table full ({MAX_KEYS} keys)")]
    TooManyKeys,
    /// [`MAX_NODES`] nodes already.
    #[error("table full ({MAX_NODES} nodes)")]
    TooManyNodes,
}

#[derive(Debug, Default)]
struct Table {
    keys: HashMap<Vec<u8>, Vec<SubscribedNode>>,
    nodes: usize,
}

/// The subscription table: key → nodes, bounded (see the module documentation).
#[derive(Debug, Default)]
pub struct Subscriptions {
    table: Mutex<Table>,
    refused: SampledLog,
}

fn number(value: Option<&[u8]>) -> u64 {
    value
        .and_then(|v| std::str::from_utf8(v).ok()?.parse::<u64>().ok())
        .unwrap_or(0)
}

impl Subscriptions {
    /// Applies one subscription packet received at unix time `now`.
    pub fn apply(&self, message: &VarsMessage<'_>, now: u64) -> Change {
        let [key, address, modifier1, modifier2, cores, load, weight] = message.vars.get_many([
            b"key".as_slice(),
            b"address",
            b"modifier1",
            b"modifier2",
            b"cores",
            b"load",
            b"weight",
        ]);
        let (Some(key), Some(address)) = (key, address) else {
            return Change::Refused(Refusal::Incomplete);
        };
        if key.is_empty() || key.len() > MAX_KEY {
            return Change::Refused(Refusal::KeyLength(key.len()));
        }
        if address.is_empty() || address.len() > MAX_ADDRESS {
            return Change::Refused(Refusal::AddressLength(address.len()));
        }
        let address = String::from_utf8_lossy(address).into_owned();
        // The table stays consistent between statements, so a panic elsewhere while
        // it was held leaves nothing to repair.
        let mut table = self
            .table
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let table = &mut *table;
        if message.modifier2 != 0 {
            if let Some(nodes) = table.keys.get_mut(key) {
                let before = nodes.len();
                nodes.retain(|node| node.address != address);
                table.nodes = table.nodes.saturating_sub(before - nodes.len());
                if nodes.is_empty() {
                    table.keys.remove(key);
                }
            }
            return Change::Unsubscribed;
        }
        let node = SubscribedNode {
            address,
            modifier1: u8::try_from(number(modifier1)).unwrap_or(0),
            modifier2: u8::try_from(number(modifier2)).unwrap_or(0),
            cores: number(cores),
            load: number(load),
            weight: number(weight).max(1),
            last_check: now,
        };
        let known_key = table.keys.contains_key(key);
        if !known_key && table.keys.len() >= MAX_KEYS {
            return Change::Refused(Refusal::TooManyKeys);
        }
        let nodes = table.keys.entry(key.to_vec()).or_default();
        if let Some(existing) = nodes.iter_mut().find(|n| n.address == node.address) {
            *existing = node;
            return Change::Subscribed;
        }
        if table.nodes >= MAX_NODES {
            if nodes.is_empty() {
                table.keys.remove(key);
            }
            return Change::Refused(Refusal::TooManyNodes);
        }
        nodes.push(node);
        table.nodes += 1;
        Change::Subscribed
    }

    /// [`Subscriptions::apply`], logging a refusal through `log` (rate-limited).
    pub fn record(
        &self,
        message: &VarsMessage<'_>,
        now: u64,
        log: &dyn Fn(std::fmt::Arguments<'_>),
    ) -> Change {
        let change = self.apply(message, now);
        if let Change::Refused(why) = &change {
            self.refused.count(|n| {
                log(format_args!(
                    "subscription refused: {why} ({n} refused so far)"
                ))
            });
        }
        change
    }

    /// The nodes subscribed to `key`.
    pub fn nodes(&self, key: &[u8]) -> Vec<SubscribedNode> {
        self.table
            .lock()
            .map(|t| t.keys.get(key).cloned().unwrap_or_default())
            .unwrap_or_default()
    }

    /// The stats document's `subscriptions` array (uWSGI's subscription servers' shape,
    /// with the fields this table knows), keys sorted; `None` when the table is empty,
    /// as uWSGI writes the array only where subscriptions are served.
    pub fn stats(&self) -> Option<Value> {
        let table = self.table.lock().ok()?;
        if table.keys.is_empty() {
            return None;
        }
        let mut keys: Vec<_> = table.keys.iter().collect();
        keys.sort_by(|a, b| a.0.cmp(b.0));
        Some(Value::Array(
            keys.into_iter()
                .map(|(key, nodes)| {
                    json!({
                        "key": String::from_utf8_lossy(key),
                        "nodes": nodes.iter().map(|node| json!({
                            "name": node.address,
                            "modifier1": node.modifier1,
                            "modifier2": node.modifier2,
                            "last_check": node.last_check,
                            "cores": node.cores,
                            "load": node.load,
                            "weight": node.weight,
                        })).collect::<Vec<_>>(),
                    })
                })
                .collect(),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use uwsgi_protocol::VarsBuilder;

    fn apply(table: &Subscriptions, modifier2: u8, pairs: &[(&str, &str)]) -> Change {
        let vars = VarsBuilder::from_pairs(pairs.iter().copied()).unwrap();
        table.apply(&VarsMessage::new(modifier2, vars.as_vars()), 7)
    }

    #[test]
    fn modifier2_decides_subscribe_or_unsubscribe() {
        let table = Subscriptions::default();
        let node = [("key", "a.example"), ("address", "127.0.0.1:1")];
        assert_eq!(apply(&table, 0, &node), Change::Subscribed);
        assert_eq!(table.nodes(b"a.example").len(), 1);
        assert_eq!(table.nodes(b"a.example")[0].weight, 1);
        // Any non-zero modifier2 unsubscribes, with no extra var.
        assert_eq!(apply(&table, 2, &node), Change::Unsubscribed);
        assert!(table.nodes(b"a.example").is_empty());
        assert!(table.stats().is_none());
        // An `unsubscribe` var means nothing: modifier2 0 subscribes.
        let with_var = [
            ("key", "a.example"),
            ("address", "127.0.0.1:1"),
            ("unsubscribe", "1"),
        ];
        assert_eq!(apply(&table, 0, &with_var), Change::Subscribed);
    }

    #[test]
    fn limits_are_enforced() {
        let table = Subscriptions::default();
        let long = "k".repeat(MAX_KEY + 1);
        assert_eq!(
            apply(&table, 0, &[("key", &long), ("address", "x")]),
            Change::Refused(Refusal::KeyLength(256))
        );
        assert_eq!(
            apply(&table, 0, &[("key", "k"), ("address", "")]),
            Change::Refused(Refusal::AddressLength(0))
        );
        assert_eq!(
            apply(&table, 0, &[("address", "x")]),
            Change::Refused(Refusal::Incomplete)
        );
        for i in 0..MAX_KEYS {
            let key = format!("k{i}");
            assert_eq!(
                apply(&table, 0, &[("key", &key), ("address", "x")]),
                Change::Subscribed
            );
        }
        assert_eq!(
            apply(&table, 0, &[("key", "one-too-many"), ("address", "x")]),
            Change::Refused(Refusal::TooManyKeys)
        );
        for i in 0..(MAX_NODES - MAX_KEYS) {
            let address = format!("n{i}");
            assert_eq!(
                apply(&table, 0, &[("key", "k0"), ("address", &address)]),
                Change::Subscribed
            );
        }
        assert_eq!(
            apply(&table, 0, &[("key", "k1"), ("address", "new")]),
            Change::Refused(Refusal::TooManyNodes)
        );
        // A refresh of a known node still passes.
        assert_eq!(
            apply(&table, 0, &[("key", "k1"), ("address", "x")]),
            Change::Subscribed
        );
    }
}
