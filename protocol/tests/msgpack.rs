//! MessagePack payload helpers: round trips, the 16-bit size limit, byte equality with
//! rmp-serde's own encoders.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use uwsgi_protocol::msgpack::{self, MAX_PAYLOAD, Msgpack, MsgpackError};
use uwsgi_protocol::{EncodeError, Field};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
enum Priority {
    Low,
    High(u8),
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Job {
    id: u32,
    name: String,
    args: Vec<String>,
    priority: Priority,
    meta: BTreeMap<String, i64>,
    timeout: Option<f64>,
}

fn job() -> Job {
    Job {
        id: 42,
        name: "thumbnail".into(),
        args: vec!["a.png".into(), "b.png".into()],
        priority: Priority::High(3),
        meta: BTreeMap::from([("retries".to_owned(), 2), ("user".to_owned(), -1)]),
        timeout: Some(1.5),
    }
}

#[test]
fn named_payload_round_trip_and_bytes() {
    let job = job();
    let payload = msgpack::to_payload(&job).unwrap();
    assert_eq!(payload, rmp_serde::to_vec_named(&job).unwrap());
    // A six-entry map whose first key is "id": what Python's msgpack.unpackb turns
    // into a dict.
    assert_eq!(payload[0], 0x86);
    assert_eq!(&payload[1..4], b"\xa2id");
    assert_eq!(msgpack::from_payload::<Job>(&payload).unwrap(), job);
}

#[test]
fn compact_payload_round_trip_and_bytes() {
    let job = job();
    let payload = msgpack::to_payload_compact(&job).unwrap();
    assert_eq!(payload, rmp_serde::to_vec(&job).unwrap());
    assert_eq!(payload[0], 0x96); // a six-item array
    assert!(payload.len() < msgpack::to_payload(&job).unwrap().len());
    // from_payload reads both forms.
    assert_eq!(msgpack::from_payload::<Job>(&payload).unwrap(), job);
}

#[test]
fn wrapper_type() {
    let payload = Msgpack(job()).to_payload().unwrap();
    assert_eq!(payload, msgpack::to_payload(&job()).unwrap());
    assert_eq!(
        Msgpack::<Job>::from_payload(&payload).unwrap(),
        Msgpack(job())
    );
    assert_eq!(
        Msgpack(job()).to_payload_compact().unwrap(),
        msgpack::to_payload_compact(&job()).unwrap()
    );
}

#[test]
fn payloads_are_limited_to_16_bits() {
    // A str of 65532 bytes encodes as str16: 3 header bytes + 65532 = 65535. Fits.
    let fits = "a".repeat(MAX_PAYLOAD - 3);
    let payload = msgpack::to_payload(&fits).unwrap();
    assert_eq!(payload.len(), MAX_PAYLOAD);
    assert_eq!(msgpack::from_payload::<String>(&payload).unwrap(), fits);

    // One byte more is refused with the crate's typed error.
    let too_big = "a".repeat(MAX_PAYLOAD - 2);
    let err = msgpack::to_payload(&too_big).unwrap_err();
    match err {
        MsgpackError::TooLarge(e) => assert_eq!(
            e,
            EncodeError::TooLarge {
                what: Field::Payload,
                len: MAX_PAYLOAD + 1,
                max: MAX_PAYLOAD,
            }
        ),
        other => panic!("unexpected {other:?}"),
    }
    let big = vec![7u32; 70_000]; // one byte each
    assert!(matches!(
        msgpack::to_payload_compact(&big),
        Err(MsgpackError::TooLarge(EncodeError::TooLarge {
            what: Field::Payload,
            max: 65535,
            ..
        }))
    ));
}

#[test]
fn decode_errors_are_typed() {
    let payload = msgpack::to_payload(&job()).unwrap();
    // Truncated.
    assert!(matches!(
        msgpack::from_payload::<Job>(&payload[..payload.len() - 1]),
        Err(MsgpackError::Decode(_))
    ));
    // Wrong type.
    assert!(matches!(
        msgpack::from_payload::<u8>(&payload),
        Err(MsgpackError::Decode(_))
    ));
    // Exactly one value per payload.
    let mut two = payload.clone();
    two.extend_from_slice(&[0xc0, 0xc0]);
    match msgpack::from_payload::<Job>(&two) {
        Err(MsgpackError::TrailingBytes { offset, len }) => {
            assert_eq!((offset, len), (payload.len(), 2));
        }
        other => panic!("unexpected {other:?}"),
    }
    // Arbitrary bytes never panic.
    for seed in 0u32..2000 {
        let bytes: Vec<u8> = (0..(seed % 40))
            .map(|i| (seed.wrapping_mul(2_654_435_761).wrapping_add(i * 97) >> 7).to_le_bytes()[0])
            .collect();
        let _ = msgpack::from_payload::<Job>(&bytes);
        let _ = msgpack::from_payload::<Vec<String>>(&bytes);
    }
}
