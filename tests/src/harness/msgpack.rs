//! MessagePack payloads (`uwsgi_protocol::msgpack`).

use std::collections::BTreeMap;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use uwsgi_protocol::msgpack::{self, MsgpackError};

/// A typed payload with the shapes a uwsgi job or RPC argument has: integers, text,
/// options, sequences, maps, enums of every variant form, bytes as a sequence.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Job {
    /// An unsigned integer.
    pub id: u32,
    /// Text.
    pub name: String,
    /// A sequence.
    pub tags: Vec<String>,
    /// An optional float (NaN possible: compared through its encoding).
    pub weight: Option<f64>,
    /// An enum.
    pub kind: Kind,
    /// A map.
    pub counters: BTreeMap<String, i64>,
    /// Raw bytes as a sequence of numbers.
    pub data: Vec<u8>,
}

/// Every enum variant form serde has.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Kind {
    /// Unit.
    Plain,
    /// Newtype.
    Tagged(i16),
    /// Tuple.
    Pair(u8, bool),
    /// Struct.
    Resize {
        /// Width.
        width: u16,
        /// Height.
        height: u16,
    },
}

/// `from_payload` on arbitrary bytes, into a dynamic value (`serde_json::Value`) and into
/// [`Job`]:
///
/// * what decodes re-encodes (`to_payload`, and `to_payload_compact`, identical when
///   there is no struct), decodes again to the same value, and re-encodes to the same
///   bytes (the encoding of a decoded value is canonical);
/// * `TrailingBytes { offset, len }` ends exactly at the input's end, and the bytes
///   before `offset` are exactly one valid value;
/// * a `Job` written as a map (named) or an array (compact) reads back the same.
pub fn check(data: &[u8]) {
    match msgpack::from_payload::<serde_json::Value>(data) {
        Ok(v) => {
            let Some(p) = encoded(msgpack::to_payload(&v)) else {
                return;
            };
            let v2: serde_json::Value =
                msgpack::from_payload(&p).expect("a re-encoded value decodes");
            assert_eq!(v2, v, "decode → encode → decode");
            assert_eq!(
                msgpack::to_payload(&v2).expect("encoded once"),
                p,
                "canonical"
            );
            assert_eq!(
                encoded(msgpack::to_payload_compact(&v)),
                Some(p),
                "no struct: compact = named"
            );
        }
        Err(MsgpackError::TrailingBytes { offset, len }) => {
            trailing::<serde_json::Value>(data, offset, len)
        }
        Err(_) => {}
    }

    match msgpack::from_payload::<Job>(data) {
        Ok(job) => {
            let Some(named) = encoded(msgpack::to_payload(&job)) else {
                return;
            };
            let Some(compact) = encoded(msgpack::to_payload_compact(&job)) else {
                return;
            };
            for (form, bytes) in [("named", &named), ("compact", &compact)] {
                let back: Job = msgpack::from_payload(bytes)
                    .unwrap_or_else(|e| panic!("{form} Job does not decode: {e}"));
                // Compared through the named encoding, so a NaN weight compares equal.
                assert_eq!(
                    msgpack::to_payload(&back).expect("encoded once"),
                    named,
                    "{form}: Job → msgpack → Job"
                );
            }
        }
        Err(MsgpackError::TrailingBytes { offset, len }) => trailing::<Job>(data, offset, len),
        Err(_) => {}
    }
}

/// The encoding, or `None` when it is refused as longer than 65535 bytes (a decoded
/// value may grow when re-encoded: bytes become a sequence of numbers).
fn encoded(result: Result<Vec<u8>, MsgpackError>) -> Option<Vec<u8>> {
    match result {
        Ok(bytes) => {
            assert!(bytes.len() <= msgpack::MAX_PAYLOAD);
            Some(bytes)
        }
        Err(MsgpackError::TooLarge(_)) => None,
        Err(e) => panic!("a decoded value must encode: {e}"),
    }
}

fn trailing<T: DeserializeOwned>(data: &[u8], offset: usize, len: usize) {
    assert!(offset >= 1, "a value takes at least one byte");
    assert_eq!(offset + len, data.len(), "TrailingBytes runs to the end");
    assert!(len >= 1);
    if let Err(e) = msgpack::from_payload::<T>(&data[..offset]) {
        panic!("the {offset} bytes before the trailing ones are not one value: {e}");
    }
}
