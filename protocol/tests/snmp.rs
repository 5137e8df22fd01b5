//! Properties of the SNMP codec: any bytes are answered or refused without a panic;
//! built requests parse back; every accepted request's response is the request patched
//! as uWSGI patches it, and reads back with `parse_response` when the request is
//! canonical.

// Test helpers unwrap: a panic here is a failed test with its backtrace.
#![allow(clippy::unwrap_used)]

use proptest::collection::vec;
use proptest::prelude::*;
use uwsgi_protocol::snmp::{
    GetRequest, Oid, SnmpValue, UWSGI_OID_BASE, build_get_request, parse_get_request,
    parse_response, tag,
};

fn value() -> impl Strategy<Value = SnmpValue> {
    prop_oneof![
        Just(SnmpValue::Null),
        any::<u32>().prop_map(SnmpValue::Counter32),
        any::<u32>().prop_map(SnmpValue::Gauge),
        any::<u64>().prop_map(SnmpValue::Counter64),
    ]
}

fn oid() -> impl Strategy<Value = (u8, u8)> {
    (1u8..=2, 1u8..=100)
}

/// The byte-level relation between a request and its response (spec §7.6).
fn check_patch(request: &GetRequest<'_>, value: SnmpValue) {
    let bytes = request.as_bytes();
    let response = request.response(value);
    let content = value.content();
    assert_eq!(response.len(), bytes.len() + content.len());
    let keep = bytes.len() - 2;
    assert_eq!(
        &response[keep..keep + 2],
        &[value.tag(), u8::try_from(content.len()).unwrap()]
    );
    assert_eq!(&response[keep + 2..], content.as_slice());
    let changed: Vec<usize> = (0..keep).filter(|&i| response[i] != bytes[i]).collect();
    // The PDU tag always changes; the length bytes only when the value has content.
    assert!(
        changed
            .iter()
            .any(|&i| bytes[i] == tag::GET_REQUEST && response[i] == tag::GET_RESPONSE)
    );
    assert!(changed.len() <= 5, "{changed:?}");
    if content.is_empty() {
        assert_eq!(changed.len(), 1);
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 1024, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn any_bytes_never_panic(bytes in vec(any::<u8>(), 0..140)) {
        if let Ok(request) = parse_get_request(&bytes) {
            prop_assert!(bytes.len() <= 119);
            prop_assert!((1..=72).contains(&request.community.len()));
            prop_assert!(request.version <= 2);
            for v in [SnmpValue::Null, SnmpValue::Gauge(1), SnmpValue::Counter64(2)] {
                check_patch(&request, v);
            }
        }
        let _ = parse_response(&bytes);
    }

    #[test]
    fn built_requests_parse_and_responses_read_back(
        version in 0u8..=2,
        community in vec(any::<u8>(), 1..=72),
        id in any::<i32>(),
        (group, index) in oid(),
        value in value(),
    ) {
        let oid = if group == 1 { Oid::Server(index) } else { Oid::Custom(index) };
        let bytes = build_get_request(version, &community, id, oid).unwrap();
        let request = parse_get_request(&bytes).unwrap();
        prop_assert_eq!(request.version, u32::from(version));
        prop_assert_eq!(request.community, community.as_slice());
        prop_assert_eq!(request.oid, oid);
        prop_assert!(request.is_canonical());
        check_patch(&request, value);
        let response = request.response(value);
        let parsed = parse_response(&response).unwrap();
        prop_assert_eq!(parsed.version, u32::from(version));
        prop_assert_eq!(parsed.community, community.as_slice());
        prop_assert_eq!(parsed.request_id, request.request_id);
        prop_assert_eq!(&parsed.oid[..9], UWSGI_OID_BASE.as_slice());
        let suffix = [group, index];
        prop_assert_eq!(&parsed.oid[9..], suffix.as_slice());
        prop_assert_eq!(parsed.value, value);
    }

    /// One byte of a valid request changed: whatever is accepted still answers with a
    /// well-patched response.
    #[test]
    fn mutated_requests(
        community in vec(any::<u8>(), 1..=72),
        (group, index) in oid(),
        at in any::<prop::sample::Index>(),
        byte in any::<u8>(),
        value in value(),
    ) {
        let oid = if group == 1 { Oid::Server(index) } else { Oid::Custom(index) };
        let mut bytes = build_get_request(1, &community, 7, oid).unwrap();
        let at = at.index(bytes.len());
        bytes[at] = byte;
        if let Ok(request) = parse_get_request(&bytes) {
            check_patch(&request, value);
            if request.is_canonical() {
                prop_assert_eq!(parse_response(&request.response(value)).unwrap().value, value);
            }
        }
    }

    /// Every strict prefix of a request is refused (a datagram is never "incomplete").
    #[test]
    fn prefixes_are_refused(community in vec(any::<u8>(), 1..=72), (group, index) in oid()) {
        let oid = if group == 1 { Oid::Server(index) } else { Oid::Custom(index) };
        let bytes = build_get_request(0, &community, 1, oid).unwrap();
        for cut in 0..bytes.len() {
            prop_assert!(parse_get_request(&bytes[..cut]).is_err());
        }
    }
}
