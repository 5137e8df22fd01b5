//! Properties of the codec over generated packets of every type:
//! encode → decode → encode is byte-exact, every strict prefix is Incomplete, any
//! chunking of a stream yields the same packets and bodies, and arbitrary bytes never
//! panic or over-consume.

// Test helpers unwrap: a panic here is a failed test with its backtrace.
#![allow(clippy::unwrap_used)]

use proptest::collection::vec;
use proptest::prelude::*;
use uwsgi_protocol::packet::{
    CacheMagic, CacheMagicReply, CacheSet, MagicCommand, Message, Payload, Reply, RpcCall,
    SyncDelete, SyncSet, cache_op, rpc_mode,
};
use uwsgi_protocol::{
    ArrayBuilder, DecodeError, Event, Header, Limits, Modifier1, Packet, StreamDecoder, VarsBuilder,
};

const LIMITS: Limits = Limits {
    max_datasize: u16::MAX,
    ..Limits::DEFAULT
};

fn key() -> impl Strategy<Value = Vec<u8>> {
    vec(any::<u8>(), 1..24)
}

fn value() -> impl Strategy<Value = Vec<u8>> {
    vec(any::<u8>(), 0..48)
}

fn pairs() -> impl Strategy<Value = Vec<(Vec<u8>, Vec<u8>)>> {
    vec((key(), value()), 0..12)
}

fn vars(pairs: &[(Vec<u8>, Vec<u8>)]) -> VarsBuilder {
    VarsBuilder::from_pairs(pairs.iter().map(|(k, v)| (k, v))).unwrap()
}

fn framed(m1: Modifier1, m2: u8, block: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    Header::new(m1, u16::try_from(block.len()).unwrap(), m2).encode(&mut out);
    out.extend_from_slice(block);
    out
}

/// A packet of some type as (header + block, body).
fn any_packet() -> impl Strategy<Value = (Vec<u8>, Vec<u8>)> {
    let app_slots = prop::sample::select(vec![0u8, 5, 6, 7, 8, 9, 11, 14, 15, 18, 19, 23, 30, 35]);
    prop_oneof![
        // Application request with an optional body.
        (app_slots, any::<u8>(), pairs(), vec(any::<u8>(), 0..64)).prop_map(
            |(m1, m2, pairs, body)| {
                let mut b = vars(&pairs);
                b.push("CONTENT_LENGTH", body.len().to_string()).unwrap();
                let request = uwsgi_protocol::packet::Request {
                    modifier1: Modifier1::from(m1),
                    modifier2: m2,
                    vars: b.as_vars(),
                };
                let mut out = Vec::new();
                request.encode(&mut out);
                (out, body)
            }
        ),
        any::<u8>().prop_map(|option| (framed(Modifier1::Admin, option, &[]), vec![])),
        (any::<u8>(), any::<u32>())
            .prop_map(|(option, v)| (framed(Modifier1::Admin, option, &v.to_le_bytes()), vec![])),
        pairs().prop_map(|p| (
            framed(Modifier1::Spooler, 0, vars(&p).as_vars().as_bytes()),
            vec![]
        )),
        (
            prop::sample::select(vec![33u8, 73, 74, 96, 98, 100, 101, 255]),
            any::<u8>(),
            value()
        )
            .prop_map(|(m1, m2, payload)| (framed(Modifier1::from(m1), m2, &payload), vec![])),
        (
            prop::sample::select(vec![95u8, 99, 224]),
            any::<u8>(),
            pairs()
        )
            .prop_map(|(m1, m2, p)| (
                framed(Modifier1::from(m1), m2, vars(&p).as_vars().as_bytes()),
                vec![]
            )),
        (any::<u8>(), value())
            .prop_map(|(n, payload)| (framed(Modifier1::Signal, n, &payload), vec![])),
        (any::<u8>(), value()).prop_map(|(m2, c)| (framed(Modifier1::Legion, m2, &c), vec![])),
        // Cache sub-commands.
        (prop::sample::select(vec![0u8, 2, 5, 6, 42]), value())
            .prop_map(|(m2, key)| (framed(Modifier1::Cache, m2, &key), vec![])),
        (key(), key()).prop_map(|(k, v)| {
            (
                framed(
                    Modifier1::Cache,
                    cache_op::SET,
                    &CacheSet::build(&k, &v).unwrap().into_block(),
                ),
                vec![],
            )
        }),
        (prop::sample::select(vec![3u8, 4]), pairs()).prop_map(|(m2, p)| (
            framed(Modifier1::Cache, m2, vars(&p).as_vars().as_bytes()),
            vec![]
        )),
        (value(), value(), any::<u64>()).prop_map(|(k, v, e)| {
            (
                framed(
                    Modifier1::Cache,
                    cache_op::SYNC_SET,
                    &SyncSet::build(&k, &v, e).unwrap(),
                ),
                vec![],
            )
        }),
        value().prop_map(|k| (
            framed(
                Modifier1::Cache,
                cache_op::SYNC_DELETE,
                &SyncDelete::build(&k).unwrap()
            ),
            vec![]
        )),
        (
            prop::sample::select(vec![
                MagicCommand::Get,
                MagicCommand::Exists,
                MagicCommand::Del,
                MagicCommand::Clear,
                MagicCommand::Set,
                MagicCommand::Update
            ]),
            key(),
            prop::option::of(key()),
            vec(any::<u8>(), 0..64),
            prop::option::of(0u64..1_000_000),
        )
            .prop_map(|(cmd, k, cache, value, expires)| {
                let carries = cmd.carries_value();
                let size = carries.then_some(value.len() as u64);
                let b = CacheMagic::build(cmd, &k, cache.as_deref(), size, expires).unwrap();
                let body = if carries { value } else { Vec::new() };
                (
                    framed(Modifier1::Cache, cache_op::MAGIC, b.as_vars().as_bytes()),
                    body,
                )
            }),
        // RPC.
        (
            prop::sample::select(vec![0u8, 1, 9]),
            key(),
            vec(key(), 0..8)
        )
            .prop_map(|(m2, f, args)| {
                let items = RpcCall::build(&f, &args).unwrap();
                (
                    framed(Modifier1::Rpc, m2, items.as_array().as_bytes()),
                    vec![],
                )
            }),
        pairs().prop_map(|p| (
            framed(
                Modifier1::Rpc,
                rpc_mode::HTTP,
                vars(&p).as_vars().as_bytes()
            ),
            vec![]
        )),
        // Unknown modifiers decode raw.
        (
            prop::sample::select(vec![1u8, 2, 3, 12, 40, 150, 200, 250]),
            any::<u8>(),
            value()
        )
            .prop_map(|(m1, m2, payload)| (framed(Modifier1::from(m1), m2, &payload), vec![])),
    ]
}

/// Decodes a stream fed in the given chunks: (packet bytes, body) per packet.
/// Each packet's bytes and its body.
type Decoded = Vec<(Vec<u8>, Vec<u8>)>;

fn drain(chunks: &[&[u8]]) -> (Decoded, Result<(), DecodeError>) {
    let mut dec = StreamDecoder::new(LIMITS);
    let mut out: Vec<(Vec<u8>, Vec<u8>)> = Vec::new();
    for chunk in chunks {
        dec.feed(chunk);
        loop {
            match dec.next_event() {
                Ok(Event::Packet(p)) => out.push((p.to_vec(), Vec::new())),
                Ok(Event::Body { data, .. }) => out.last_mut().unwrap().1.extend_from_slice(data),
                Err(DecodeError::Incomplete { .. }) => break,
                Err(e) => return (out, Err(e)),
            }
        }
    }
    let end = dec.finish();
    (out, end)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn encode_decode_encode_is_byte_exact((packet, body) in any_packet()) {
        let d = Packet::decode(&packet, &LIMITS).unwrap();
        prop_assert_eq!(d.consumed, packet.len());
        prop_assert_eq!(d.body_len, body.len() as u64);
        prop_assert_eq!(d.packet.encoded_len(), packet.len());
        let again = d.packet.to_vec();
        prop_assert_eq!(&again, &packet);
        let d2 = Packet::decode(&again, &LIMITS).unwrap();
        prop_assert_eq!(d2.packet, d.packet);
        // Bytes after the block are left alone.
        let mut with_tail = packet.clone();
        with_tail.extend_from_slice(&body);
        with_tail.extend_from_slice(b"\x64\x00\x00\x00");
        prop_assert_eq!(Packet::decode(&with_tail, &LIMITS).unwrap().consumed, packet.len());
    }

    #[test]
    fn every_strict_prefix_is_incomplete((packet, body) in any_packet()) {
        for len in 0..packet.len() {
            match Packet::decode(&packet[..len], &LIMITS) {
                Err(DecodeError::Incomplete { needed }) => prop_assert!(needed >= 1 && needed <= packet.len() - len),
                other => prop_assert!(false, "prefix {} of {}: {:?}", len, packet.len(), other),
            }
        }
        // The stream decoder sees a strict prefix of packet + body as unfinished, never invalid.
        let mut whole = packet.clone();
        whole.extend_from_slice(&body);
        for len in 1..whole.len() {
            let (_, end) = drain(&[&whole[..len]]);
            prop_assert!(matches!(end, Err(DecodeError::Incomplete { .. })), "prefix {}: {:?}", len, end);
        }
    }

    #[test]
    fn any_chunking_yields_the_same_packets(
        packets in vec(any_packet(), 1..5),
        cuts in vec(any::<prop::sample::Index>(), 0..12),
    ) {
        let mut stream = Vec::new();
        let mut want = Vec::new();
        for (packet, body) in &packets {
            stream.extend_from_slice(packet);
            stream.extend_from_slice(body);
            want.push((packet.clone(), body.clone()));
        }
        let mut points: Vec<usize> = cuts.iter().map(|c| c.index(stream.len() + 1)).collect();
        points.sort_unstable();
        points.dedup();
        let mut chunks: Vec<&[u8]> = Vec::new();
        let mut last = 0;
        for p in points {
            chunks.push(&stream[last..p]);
            last = p;
        }
        chunks.push(&stream[last..]);
        let (got, end) = drain(&chunks);
        prop_assert_eq!(end, Ok(()));
        prop_assert_eq!(&got, &want);
        // One byte at a time, too.
        let bytes: Vec<&[u8]> = stream.chunks(1).collect();
        let (got, end) = drain(&bytes);
        prop_assert_eq!(end, Ok(()));
        prop_assert_eq!(got, want);
    }

    #[test]
    fn arbitrary_bytes_never_panic_or_overconsume(input in vec(any::<u8>(), 0..600)) {
        for limits in [Limits::DEFAULT, LIMITS, Limits::PERMISSIVE] {
            if let Ok(d) = Packet::decode(&input, &limits) {
                prop_assert!(d.consumed <= input.len());
                prop_assert_eq!(d.packet.to_vec(), input[..d.consumed].to_vec());
            }
            let _ = Packet::decode_datagram(&input, &limits);
            if input.len() >= 4 {
                let header = Header::parse(&input).unwrap();
                for at_eof in [false, true] {
                    if let Ok((_, used)) = Reply::decode(&input, header, at_eof, &limits) {
                        prop_assert!(used <= input.len());
                    }
                }
            }
        }
        let (_, _) = drain(&[&input]);
    }

    #[test]
    fn replies_round_trip(
        warning in value(),
        status in any::<u8>(),
        result in vec(any::<u8>(), 0..2000),
        big in 65_536usize..70_000,
        magic_value in vec(any::<u8>(), 0..100),
        found in any::<bool>(),
    ) {
        let ping = Header::new(Modifier1::Ping, 0, 0);
        let signal = Header::new(Modifier1::Signal, 0, 17);
        let rpc = Header::new(Modifier1::Rpc, 10, 0);
        let magic = Header::new(Modifier1::Cache, 20, cache_op::MAGIC);
        let stream = Header::new(Modifier1::Cache, 3, cache_op::GET_STREAM);
        let big_data = vec![b'x'; big];
        let big_vars = VarsBuilder::new().with("CONTENT_LENGTH", big.to_string()).unwrap();
        let magic_vars = CacheMagicReply::build_ok(Some(magic_value.len() as u64), Some(1_795_529_469)).unwrap();
        let cases = [
            (ping, Reply::Pong(Message::new(1, Payload::new(&warning).unwrap()))),
            (signal, Reply::Response(Message::new(status, Payload::EMPTY))),
            (rpc, Reply::RpcResult(Payload::new(&result).unwrap())),
            (rpc, Reply::RpcBigResult { vars: big_vars.as_vars(), data: &big_data }),
            (magic, Reply::CacheMagic {
                reply: CacheMagicReply::from_vars(magic_vars.as_vars()).unwrap(),
                value: &magic_value,
            }),
            (stream, Reply::CacheStream { found, value: if found { &magic_value } else { &[] } }),
        ];
        for (request, reply) in cases {
            let bytes = reply.to_vec();
            prop_assert_eq!(reply.encoded_len(), bytes.len());
            let (decoded, used) = Reply::decode(&bytes, request, true, &LIMITS).unwrap();
            prop_assert_eq!(used, bytes.len());
            prop_assert_eq!(decoded, reply);
            // Framed replies do not need the connection to close.
            if !matches!(reply, Reply::CacheStream { .. }) {
                prop_assert_eq!(Reply::decode(&bytes, request, false, &LIMITS).unwrap().0, reply);
                for len in 0..bytes.len().min(64) {
                    prop_assert!(Reply::decode(&bytes[..len], request, false, &LIMITS).unwrap_err().is_incomplete());
                }
            }
        }
    }
}

#[test]
fn builders_make_what_the_spec_shows() {
    // spec §3.4
    let items = RpcCall::build(b"hello", ["a", "b"]).unwrap();
    let call = RpcCall::framed(items.as_array()).unwrap();
    let mut out = Vec::new();
    uwsgi_protocol::packet::RpcRequest::Call(call).encode(&mut out);
    assert_eq!(
        out,
        [
            &[0xad, 0x0d, 0x00, 0x00][..],
            b"\x05\x00hello\x01\x00a\x01\x00b"
        ]
        .concat()
    );
    // an empty array is not a call
    assert!(RpcCall::framed(ArrayBuilder::new().as_array()).is_err());
    // spec §7.2: pong with a warning
    let pong = Reply::Pong(Message::new(1, Payload::new(b"WARN!").unwrap()));
    assert_eq!(pong.to_vec(), b"\x64\x05\x00\x01WARN!");
    // spec §7.1 / §7.5: acknowledgements
    assert_eq!(Reply::ok().to_vec(), [0xff, 0, 0, 1]);
    assert_eq!(Reply::failed().to_vec(), [0xff, 0, 0, 0]);
    // spec §7.4: admin get reply
    assert_eq!(
        Reply::AdminValue {
            option: 0,
            value: 1
        }
        .to_vec(),
        [0x0a, 4, 0, 0, 1, 0, 0, 0]
    );
    // encoded_len is what encode writes, for the variants the property above does not build
    let vars = VarsBuilder::new().with("items", "1").unwrap();
    for reply in [
        Reply::Closed,
        Reply::AdminValue {
            option: 3,
            value: 7,
        },
        Reply::CacheValue(Message::new(0, Payload::new(b"value").unwrap())),
        Reply::CacheDump {
            vars: vars.as_vars(),
            image: b"image",
        },
        Reply::Marshal(Message::new(0, Payload::new(b"N").unwrap())),
        Reply::Http(b"HTTP/1.1 200 OK\r\n\r\n"),
        Reply::Raw(b"raw"),
    ] {
        assert_eq!(reply.encoded_len(), reply.to_vec().len(), "{reply:?}");
    }
    // spec §6.6: sync set
    let block = SyncSet::build(b"k", b"v", 1_795_529_469).unwrap();
    assert_eq!(block, b"\x01\x00k\x01\x00v\x0a\x001795529469");
    let packet = framed(Modifier1::Cache, cache_op::SYNC_SET, &block);
    let d = Packet::decode_datagram(&packet, &LIMITS).unwrap();
    let Packet::Cache(uwsgi_protocol::packet::CacheRequest::SyncSet(s)) = d else {
        panic!("{d:?}")
    };
    assert_eq!(
        (s.key(), s.value(), s.expires()),
        (&b"k"[..], &b"v"[..], 1_795_529_469)
    );
    // spec §7.7: a 2.0 subscription datagram
    let sub = VarsBuilder::from_pairs([
        ("key", "example.com"),
        ("address", "127.0.0.1:4031"),
        ("modifier1", "0"),
        ("modifier2", "0"),
    ])
    .unwrap();
    let dgram = framed(Modifier1::Subscription, 0, sub.as_vars().as_bytes());
    assert_eq!(&dgram[..4], &[0xe0, 0x47, 0x00, 0x00]);
    let Packet::Subscription(s) = Packet::decode_datagram(&dgram, &LIMITS).unwrap() else {
        panic!()
    };
    assert_eq!(s.vars.get("address"), Some(&b"127.0.0.1:4031"[..]));
    // a datagram whose datasize lies is refused
    assert!(Packet::decode_datagram(&dgram[..dgram.len() - 1], &LIMITS).is_err());
}
