//! Typed packets: `Packet::decode` (stream framing), `Packet::decode_datagram`, and
//! packets built with the crate's builders.

use arbitrary::Unstructured;
use uwsgi_protocol::packet::{
    Admin, CacheMagic, CacheRequest, CacheSet, Decoded, Legion, MagicCommand, Message, Payload,
    RawPacket, Request, RpcCall, RpcRequest, Signal, SyncDelete, SyncSet, VarsMessage,
};
use uwsgi_protocol::{
    ArrayBuilder, DecodeError, EncodeError, Event, Field, Header, InvalidPacket, Limits, Modifier1,
    Packet, StreamDecoder, VarsBuilder,
};

use super::{LIMITS, model, tighter_or_equal};

/// The packet kind `Packet::decode` must give a modifier1 (docs/protocol.md §3).
pub(crate) fn expected_kind(m1: u8) -> &'static str {
    if Modifier1::from(m1).is_app_request() {
        return "request";
    }
    match m1 {
        10 => "admin",
        17 => "spool",
        33 => "marshal",
        73 => "cluster-announce",
        74 => "multicast",
        95 => "cluster-node",
        96 => "cluster-log",
        98 => "cluster-reload",
        99 => "cluster-config",
        100 => "ping",
        101 => "echo",
        109 => "legion",
        110 => "signal",
        111 => "cache",
        173 => "rpc",
        224 => "subscription",
        255 => "response",
        _ => "raw",
    }
}

/// `Packet::decode` on arbitrary bytes, under every limit set in [`LIMITS`]:
///
/// * accepted: consumed = header + datasize ≤ input; decode → encode is byte-exact for
///   the consumed bytes (every packet kind keeps its block, so the format is canonical
///   here); the kind follows modifier1; the body length is the one documented and within
///   the limit; decoding the re-encoding gives the same result, with or without trailing
///   bytes; the datagram decoder agrees; every strict prefix is `Incomplete` with a
///   `needed` that does not overshoot;
/// * `Incomplete`: the packet really is short, stays `Incomplete` while bytes are still
///   missing, and is decided once they are there;
/// * `Invalid`: final whatever follows; offsets lie inside the packet; the datasize
///   limit is checked on the header;
/// * prefixes: a prefix of an incomplete input is incomplete, a prefix of an invalid
///   one incomplete or the same error;
/// * looser limits accept everything tighter limits accept, with the same result.
pub fn check(data: &[u8]) {
    let mut u = Unstructured::new(data);
    let results: Vec<_> = LIMITS.iter().map(|l| Packet::decode(data, l)).collect();
    for (limits, result) in LIMITS.iter().zip(&results) {
        match result {
            Ok(d) => accepted(data, d, limits, &mut u),
            Err(DecodeError::Incomplete { needed }) => incomplete(data, *needed, limits),
            Err(DecodeError::Invalid(e)) => invalid(data, e, limits),
        }
        prefixes(data, result, limits, &mut u);
    }
    for (a, ra) in LIMITS.iter().zip(&results) {
        for (b, rb) in LIMITS.iter().zip(&results) {
            if tighter_or_equal(a, b) && !matches!(ra, Err(DecodeError::Invalid(_))) {
                assert_eq!(ra, rb, "limits {b:?} must accept what {a:?} accepts");
            }
        }
    }
}

fn accepted(data: &[u8], d: &Decoded<'_>, limits: &Limits, u: &mut Unstructured<'_>) {
    let header = Header::parse(data).expect("an accepted packet has a header");
    assert_eq!(d.consumed, header.packet_len(), "consumed = header + block");
    assert!(d.consumed <= data.len(), "consumed ≤ input");
    assert!(header.datasize <= limits.max_datasize);
    let packet = d.packet;
    let block = &data[Header::LEN..d.consumed];
    assert_eq!(
        packet.kind(),
        expected_kind(data[0]),
        "kind of modifier1 {}",
        data[0]
    );

    let bytes = packet.to_vec();
    assert_eq!(bytes, data[..d.consumed], "decode → encode is byte-exact");
    assert_eq!(packet.encoded_len(), d.consumed);
    assert_eq!(packet.header(), header);

    assert_eq!(
        d.body_len,
        packet.body_len(),
        "Decoded::body_len = Packet::body_len"
    );
    assert!(d.body_len <= limits.max_body, "body limit");
    if header.modifier1.is_app_request() {
        assert_eq!(
            d.body_len,
            model::request_body_len(block),
            "body = last CONTENT_LENGTH, read as uWSGI reads it"
        );
    }
    if let Some(vars) = packet.vars() {
        assert_eq!(vars.as_bytes(), block);
    }
    if let Some(items) = packet.items() {
        assert_eq!(items.as_bytes(), block);
    }

    assert_eq!(
        Packet::decode(&bytes, limits),
        Ok(*d),
        "decode → encode → decode"
    );
    let mut longer = bytes.clone();
    longer.extend_from_slice(&[0xff, 0, 0x64, 0, 0, 0, 7]);
    assert_eq!(
        Packet::decode(&longer, limits),
        Ok(*d),
        "bytes after the block are not looked at"
    );
    assert_eq!(
        Packet::decode_datagram(&bytes, limits),
        Ok(packet),
        "the datagram decoder agrees on a whole packet"
    );

    for len in model::prefix_lengths(d.consumed, u) {
        match Packet::decode(&data[..len], limits) {
            Err(DecodeError::Incomplete { needed }) => assert!(
                needed >= 1 && len + needed <= d.consumed,
                "prefix {len} of {}: needed {needed} overshoots",
                d.consumed
            ),
            other => panic!(
                "strict prefix {len} of an accepted {}-byte packet: {other:?}",
                d.consumed
            ),
        }
    }
}

fn incomplete(data: &[u8], needed: usize, limits: &Limits) {
    assert!(needed >= 1, "Incomplete needs at least one byte");
    let Ok(header) = Header::parse(data) else {
        assert!(
            needed <= Header::LEN - data.len(),
            "header: needed {needed}"
        );
        return;
    };
    let total = header.packet_len();
    assert!(
        data.len() < total,
        "Incomplete although the whole block is there"
    );
    assert!(data.len() + needed <= total, "needed {needed} overshoots");
    // Incomplete stays Incomplete while bytes are missing, whatever they are...
    let mut longer = data.to_vec();
    longer.resize(total - 1, 0x00);
    assert!(
        matches!(
            Packet::decode(&longer, limits),
            Err(DecodeError::Incomplete { .. })
        ),
        "one byte short must still be Incomplete"
    );
    // ...and is decided once the block is complete.
    longer.push(0x00);
    assert!(
        !matches!(
            Packet::decode(&longer, limits),
            Err(DecodeError::Incomplete { .. })
        ),
        "a complete block must be decided"
    );
}

fn invalid(data: &[u8], e: &InvalidPacket, limits: &Limits) {
    let header = Header::parse(data).expect("a header is never invalid by itself");
    for offset in model::offsets(e) {
        assert!(
            offset <= header.packet_len(),
            "{e:?} points past the packet"
        );
    }
    if header.datasize > limits.max_datasize {
        assert_eq!(
            *e,
            InvalidPacket::DatasizeTooLarge {
                datasize: header.datasize,
                max: limits.max_datasize
            },
            "the datasize limit is checked on the header"
        );
    } else {
        assert!(data.len() >= header.packet_len(), "invalid before complete");
        assert_eq!(
            Packet::decode(&data[..header.packet_len()], limits),
            Err(DecodeError::Invalid(e.clone()))
        );
    }
    for tail in [&[0u8; 5][..], &[0xff; 3], b"\x64\x00\x00\x00"] {
        let longer = [data, tail].concat();
        assert_eq!(
            Packet::decode(&longer, limits),
            Err(DecodeError::Invalid(e.clone())),
            "Invalid is final whatever follows"
        );
    }
}

/// Prefix closure: what a prefix of `data` decodes to, given what `data` decodes to.
fn prefixes(
    data: &[u8],
    full: &Result<Decoded<'_>, DecodeError>,
    limits: &Limits,
    u: &mut Unstructured<'_>,
) {
    for len in model::prefix_lengths(data.len(), u) {
        let prefix = Packet::decode(&data[..len], limits);
        match (full, &prefix) {
            (Ok(d), Ok(p)) => assert!(len >= d.consumed && p == d, "prefix {len}"),
            (Ok(d), Err(DecodeError::Incomplete { .. })) => assert!(len < d.consumed),
            (_, Err(DecodeError::Incomplete { .. })) => {}
            (Err(DecodeError::Invalid(e)), Err(DecodeError::Invalid(p))) => {
                assert_eq!(p, e, "prefix {len}: a different error than the whole input")
            }
            (full, prefix) => {
                panic!("prefix {len}: {prefix:?} but the whole input gives {full:?}")
            }
        }
    }
}

/// `Packet::decode_datagram`: never `Incomplete`; fewer than 4 bytes or a datasize
/// other than the bytes present (except Legion) is refused; an accepted datagram
/// re-encodes to exactly its bytes and decodes again to the same packet, and the stream
/// decoder agrees with it (up to the body limit, which datagrams do not have).
pub fn check_datagram(data: &[u8]) {
    let results: Vec<_> = LIMITS
        .iter()
        .map(|l| Packet::decode_datagram(data, l))
        .collect();
    for (limits, result) in LIMITS.iter().zip(&results) {
        let Ok(header) = Header::parse(data) else {
            assert_eq!(
                *result,
                Err(DecodeError::Invalid(InvalidPacket::TrailingBytes {
                    offset: 0,
                    len: data.len()
                }))
            );
            continue;
        };
        let legion = header.modifier1 == Modifier1::Legion;
        let exact = usize::from(header.datasize) == data.len() - Header::LEN;
        match result {
            Ok(p) => {
                assert!(legion || exact, "datasize must match the datagram");
                assert_eq!(p.kind(), expected_kind(data[0]));
                assert_eq!(p.to_vec(), data, "datagram → encode is byte-exact");
                assert_eq!(p.header(), header);
                assert_eq!(Packet::decode_datagram(&p.to_vec(), limits), Ok(*p));
            }
            Err(DecodeError::Incomplete { .. }) => panic!("a datagram is never Incomplete"),
            Err(DecodeError::Invalid(e)) => {
                assert!(!legion || data.len() - Header::LEN > 65535, "{e:?}");
                if !exact {
                    assert_eq!(
                        *e,
                        InvalidPacket::DatagramSize {
                            datasize: header.datasize,
                            actual: data.len() - Header::LEN
                        }
                    );
                }
            }
        }
        if exact && !legion {
            match (Packet::decode(data, limits), result) {
                (Ok(d), Ok(p)) => {
                    assert_eq!(d.packet, *p);
                    assert_eq!(d.consumed, data.len());
                }
                (Err(DecodeError::Invalid(InvalidPacket::BodyTooLarge { .. })), Ok(_)) => {}
                (Err(DecodeError::Invalid(a)), Err(DecodeError::Invalid(b))) => assert_eq!(a, *b),
                (stream, dgram) => panic!("stream decode {stream:?}, datagram {dgram:?}"),
            }
        }
    }
    for (a, ra) in LIMITS.iter().zip(&results) {
        for (b, rb) in LIMITS.iter().zip(&results) {
            if tighter_or_equal(a, b) && ra.is_ok() {
                assert_eq!(ra, rb, "limits {b:?} must accept what {a:?} accepts");
            }
        }
    }
}

/// A packet described by its parts, with the blocks its builders made.
#[derive(Debug)]
enum Spec {
    Request {
        m1: u8,
        m2: u8,
        vars: VarsBuilder,
    },
    AdminGet(u8),
    AdminSet(u8, u32),
    VarsMessage {
        m1: u8,
        m2: u8,
        vars: VarsBuilder,
    },
    Message {
        m1: u8,
        m2: u8,
        payload: Vec<u8>,
    },
    Legion {
        m2: u8,
        plaintext_len: u16,
        ciphertext: Vec<u8>,
    },
    Signal {
        number: u8,
        payload: Vec<u8>,
    },
    CacheKey {
        m2: u8,
        key: Vec<u8>,
    },
    CacheSet {
        key: Vec<u8>,
        value: Vec<u8>,
        items: ArrayBuilder,
    },
    CacheDict {
        m2: u8,
        vars: VarsBuilder,
    },
    SyncSet {
        key: Vec<u8>,
        value: Vec<u8>,
        expires: u64,
        block: Vec<u8>,
    },
    SyncDelete {
        key: Vec<u8>,
        block: Vec<u8>,
    },
    Magic {
        command: MagicCommand,
        key: Vec<u8>,
        cache: Option<Vec<u8>>,
        size: Option<u64>,
        expires: Option<u64>,
        vars: VarsBuilder,
    },
    CacheOther {
        m2: u8,
        payload: Vec<u8>,
    },
    RpcCall {
        raw: bool,
        function: Vec<u8>,
        args: Vec<Vec<u8>>,
        items: ArrayBuilder,
    },
    RpcHttp {
        vars: VarsBuilder,
    },
    RpcXml {
        vars: VarsBuilder,
    },
    Raw {
        m1: u8,
        m2: u8,
        payload: Vec<u8>,
    },
}

/// Pairs from the fuzzer, the refused ones dropped, optionally ending with a
/// `CONTENT_LENGTH` that is a proper decimal.
fn vars(u: &mut Unstructured<'_>, content_length: bool) -> arbitrary::Result<VarsBuilder> {
    let mut b = VarsBuilder::new();
    for (k, v) in model::pairs(u)? {
        let _ = b.push(k, v);
    }
    if content_length && u.arbitrary()? {
        let n = u.int_in_range(0..=100_000u64)?;
        let _ = b.push("CONTENT_LENGTH", n.to_string());
    }
    Ok(b)
}

/// A payload of at most 65535 bytes, or `None` after checking that `Payload::new`
/// refuses a longer one.
fn payload(u: &mut Unstructured<'_>) -> arbitrary::Result<Option<Vec<u8>>> {
    let bytes = model::bytes(u)?;
    match Payload::new(&bytes) {
        Ok(_) => Ok(Some(bytes)),
        Err(e) => {
            assert_eq!(
                e,
                EncodeError::TooLarge {
                    what: Field::Payload,
                    len: bytes.len(),
                    max: 65535
                }
            );
            Ok(None)
        }
    }
}

const APP_SLOTS: &[u8] = &[
    0, 5, 6, 7, 8, 9, 11, 14, 15, 18, 19, 23, 24, 25, 27, 28, 30, 35,
];
const CACHE_OPS: &[u8] = &[0, 1, 2, 3, 4, 5, 6, 10, 11, 17];
const COMMANDS: &[MagicCommand] = &[
    MagicCommand::Get,
    MagicCommand::Exists,
    MagicCommand::Del,
    MagicCommand::Clear,
    MagicCommand::Set,
    MagicCommand::Update,
];

impl Spec {
    /// A packet of some kind from the fuzzer's bytes; `None` when a builder refused
    /// the generated parts (each refusal is itself checked by the builder harnesses).
    fn generate(u: &mut Unstructured<'_>) -> arbitrary::Result<Option<Spec>> {
        let m2: u8 = u.arbitrary()?;
        Ok(Some(match u.int_in_range(0..=17u8)? {
            0 => Spec::Request {
                m1: *u.choose(APP_SLOTS)?,
                m2,
                vars: vars(u, true)?,
            },
            1 => Spec::AdminGet(m2),
            2 => Spec::AdminSet(m2, u.arbitrary()?),
            3 => Spec::VarsMessage {
                m1: *u.choose(&[17u8, 95, 99, 224])?,
                m2,
                vars: vars(u, false)?,
            },
            4 => {
                let Some(payload) = payload(u)? else {
                    return Ok(None);
                };
                Spec::Message {
                    m1: *u.choose(&[33u8, 73, 74, 96, 98, 100, 101, 255])?,
                    m2,
                    payload,
                }
            }
            5 => {
                let Some(ciphertext) = payload(u)? else {
                    return Ok(None);
                };
                let plaintext_len = if u.arbitrary()? {
                    u.arbitrary()?
                } else {
                    u16::try_from(ciphertext.len()).unwrap_or(u16::MAX)
                };
                Spec::Legion {
                    m2,
                    plaintext_len,
                    ciphertext,
                }
            }
            6 => {
                let Some(payload) = payload(u)? else {
                    return Ok(None);
                };
                Spec::Signal {
                    number: m2,
                    payload,
                }
            }
            7 => {
                let Some(key) = payload(u)? else {
                    return Ok(None);
                };
                Spec::CacheKey {
                    m2: *u.choose(&[0u8, 2, 5, 6])?,
                    key,
                }
            }
            8 => {
                let (key, value) = (model::bytes(u)?, model::bytes(u)?);
                let Ok(mut items) = CacheSet::build(&key, &value) else {
                    return Ok(None);
                };
                for _ in 0..u.int_in_range(0..=2)? {
                    let _ = items.push(model::bytes(u)?);
                }
                Spec::CacheSet { key, value, items }
            }
            9 => Spec::CacheDict {
                m2: *u.choose(&[3u8, 4])?,
                vars: vars(u, false)?,
            },
            10 => {
                let (key, value, expires) = (model::bytes(u)?, model::bytes(u)?, u.arbitrary()?);
                let Ok(block) = SyncSet::build(&key, &value, expires) else {
                    return Ok(None);
                };
                Spec::SyncSet {
                    key,
                    value,
                    expires,
                    block,
                }
            }
            11 => {
                let key = model::bytes(u)?;
                let Ok(block) = SyncDelete::build(&key) else {
                    return Ok(None);
                };
                Spec::SyncDelete { key, block }
            }
            12 => {
                let command = *u.choose(COMMANDS)?;
                let key = model::bytes(u)?;
                let cache = if u.arbitrary()? {
                    Some(model::bytes(u)?)
                } else {
                    None
                };
                let size = if command.carries_value() || u.arbitrary()? {
                    Some(u.int_in_range(0..=100_000u64)?)
                } else {
                    None
                };
                let expires: Option<u64> = u.arbitrary()?;
                let Ok(vars) = CacheMagic::build(command, &key, cache.as_deref(), size, expires)
                else {
                    return Ok(None);
                };
                Spec::Magic {
                    command,
                    key,
                    cache,
                    size,
                    expires,
                    vars,
                }
            }
            13 => {
                let Some(payload) = payload(u)? else {
                    return Ok(None);
                };
                let m2 = if CACHE_OPS.contains(&m2) { 42 } else { m2 };
                Spec::CacheOther { m2, payload }
            }
            14 => {
                let function = model::bytes(u)?;
                let mut args = Vec::new();
                for _ in 0..u.int_in_range(0..=6)? {
                    args.push(model::bytes(u)?);
                }
                let Ok(items) = RpcCall::build(&function, &args) else {
                    return Ok(None);
                };
                Spec::RpcCall {
                    raw: u.arbitrary()?,
                    function,
                    args,
                    items,
                }
            }
            15 => Spec::RpcHttp {
                vars: vars(u, false)?,
            },
            16 => Spec::RpcXml {
                vars: vars(u, true)?,
            },
            _ => {
                let Some(payload) = payload(u)? else {
                    return Ok(None);
                };
                let m1: u8 = u.arbitrary()?;
                let m1 = if expected_kind(m1) == "raw" { m1 } else { 200 };
                Spec::Raw { m1, m2, payload }
            }
        }))
    }

    /// The packet, built from the parts with the crate's constructors.
    fn packet(&self) -> Packet<'_> {
        fn pl(b: &[u8]) -> Payload<'_> {
            Payload::new(b).expect("checked when generated")
        }
        match self {
            Spec::Request { m1, m2, vars } => Packet::Request(Request {
                modifier1: Modifier1::from(*m1),
                modifier2: *m2,
                vars: vars.as_vars(),
            }),
            Spec::AdminGet(option) => Packet::Admin(Admin::Get { option: *option }),
            Spec::AdminSet(option, value) => Packet::Admin(Admin::Set {
                option: *option,
                value: *value,
            }),
            Spec::VarsMessage { m1, m2, vars } => {
                let msg = VarsMessage::new(*m2, vars.as_vars());
                match m1 {
                    17 => Packet::Spool(msg),
                    95 => Packet::ClusterNode(msg),
                    99 => Packet::ClusterConfig(msg),
                    _ => Packet::Subscription(msg),
                }
            }
            Spec::Message { m1, m2, payload } => {
                let msg = Message::new(*m2, pl(payload));
                match m1 {
                    33 => Packet::Marshal(msg),
                    73 => Packet::ClusterAnnounce(msg),
                    74 => Packet::Multicast(msg),
                    96 => Packet::ClusterLog(msg),
                    98 => Packet::ClusterReload(msg),
                    100 => Packet::Ping(msg),
                    101 => Packet::Echo(msg),
                    _ => Packet::Response(msg),
                }
            }
            Spec::Legion {
                m2,
                plaintext_len,
                ciphertext,
            } => Packet::Legion(Legion {
                modifier2: *m2,
                plaintext_len: *plaintext_len,
                ciphertext: pl(ciphertext),
            }),
            Spec::Signal { number, payload } => Packet::Signal(Signal {
                number: *number,
                payload: pl(payload),
            }),
            Spec::CacheKey { m2, key } => Packet::Cache(match m2 {
                0 => CacheRequest::Get { key: pl(key) },
                2 => CacheRequest::Delete { key: pl(key) },
                5 => CacheRequest::GetStream { key: pl(key) },
                _ => CacheRequest::Dump { cache: pl(key) },
            }),
            Spec::CacheSet { items, .. } => Packet::Cache(CacheRequest::Set(
                CacheSet::from_array(items.as_array()).expect("built with key and value"),
            )),
            Spec::CacheDict { m2, vars } => Packet::Cache(CacheRequest::DictGet {
                modifier2: *m2,
                vars: vars.as_vars(),
            }),
            Spec::SyncSet { block, .. } => Packet::Cache(CacheRequest::SyncSet(
                SyncSet::from_block(block).expect("a built sync set parses"),
            )),
            Spec::SyncDelete { block, .. } => Packet::Cache(CacheRequest::SyncDelete(
                SyncDelete::from_block(block).expect("a built sync delete parses"),
            )),
            Spec::Magic { vars, .. } => Packet::Cache(CacheRequest::Magic(
                CacheMagic::from_vars(vars.as_vars()).expect("built magic vars parse"),
            )),
            Spec::CacheOther { m2, payload } => Packet::Cache(CacheRequest::Other {
                modifier2: *m2,
                payload: pl(payload),
            }),
            Spec::RpcCall { raw, items, .. } => {
                let call = if *raw {
                    RpcCall::raw(items.as_array())
                } else {
                    RpcCall::framed(items.as_array())
                };
                Packet::Rpc(RpcRequest::Call(call.expect("built with a function name")))
            }
            Spec::RpcHttp { vars } => Packet::Rpc(RpcRequest::Http {
                vars: vars.as_vars(),
            }),
            Spec::RpcXml { vars } => Packet::Rpc(RpcRequest::XmlRpc {
                vars: vars.as_vars(),
            }),
            Spec::Raw { m1, m2, payload } => Packet::Raw(RawPacket {
                modifier1: Modifier1::from(*m1),
                modifier2: *m2,
                payload: pl(payload),
            }),
        }
    }

    /// The body length the documentation gives this packet.
    fn body_len(&self) -> u64 {
        match self {
            Spec::Request { vars, .. } | Spec::RpcXml { vars } => {
                model::request_body_len(vars.as_vars().as_bytes())
            }
            Spec::Magic { command, size, .. } if command.carries_value() => {
                size.expect("set and update carry a size")
            }
            _ => 0,
        }
    }

    /// Whether the stream framing can carry it (a Legion datasize is the plaintext
    /// length, so only a Legion whose ciphertext has that length frames on a stream).
    fn frames_on_stream(&self) -> bool {
        match self {
            Spec::Legion {
                plaintext_len,
                ciphertext,
                ..
            } => usize::from(*plaintext_len) == ciphertext.len(),
            _ => true,
        }
    }

    /// The typed accessors of the decoded packet return the parts it was built from.
    fn check_accessors(&self, p: &Packet<'_>) {
        match (self, p) {
            (Spec::CacheSet { key, value, .. }, Packet::Cache(CacheRequest::Set(set))) => {
                assert_eq!((set.key(), set.value()), (&key[..], &value[..]));
            }
            (
                Spec::SyncSet {
                    key,
                    value,
                    expires,
                    ..
                },
                Packet::Cache(CacheRequest::SyncSet(s)),
            ) => {
                assert_eq!(
                    (s.key(), s.value(), s.expires()),
                    (&key[..], &value[..], *expires)
                );
            }
            (Spec::SyncDelete { key, .. }, Packet::Cache(CacheRequest::SyncDelete(s))) => {
                assert_eq!(s.key(), &key[..]);
            }
            (
                Spec::Magic {
                    command,
                    key,
                    cache,
                    size,
                    expires,
                    ..
                },
                Packet::Cache(CacheRequest::Magic(m)),
            ) => {
                assert_eq!(m.command(), *command);
                assert_eq!(m.key(), &key[..]);
                assert_eq!(m.cache(), cache.as_deref());
                assert_eq!(m.size(), size.unwrap_or(0));
                assert_eq!(m.expires(), *expires);
                let value_len = if command.carries_value() { m.size() } else { 0 };
                assert_eq!(m.value_len(), value_len);
            }
            (
                Spec::RpcCall {
                    raw,
                    function,
                    args,
                    ..
                },
                Packet::Rpc(RpcRequest::Call(call)),
            ) => {
                assert_eq!(call.function(), &function[..]);
                let want: Vec<&[u8]> = args.iter().map(Vec::as_slice).collect();
                assert_eq!(call.args().collect::<Vec<_>>(), want);
                assert_eq!(call.wants_framed_reply(), !raw);
                assert_eq!(call.items().len(), args.len() + 1);
            }
            (
                Spec::AdminSet(option, value),
                Packet::Admin(Admin::Set {
                    option: o,
                    value: v,
                }),
            ) => {
                assert_eq!((o, v), (option, value));
            }
            (Spec::Signal { number, .. }, Packet::Signal(s)) => assert_eq!(s.number, *number),
            (Spec::Request { m1, m2, .. }, Packet::Request(r)) => {
                assert_eq!((r.modifier1.value(), r.modifier2), (*m1, *m2));
                assert_eq!(r.content_length(), self.body_len());
            }
            _ => {}
        }
    }
}

/// Packets of every kind built with the crate's builders and constructors: encode →
/// decode gives the same packet (and the same typed accessors), with the body length
/// the documentation gives; the datagram decoder agrees; strict prefixes are
/// `Incomplete`; the streaming decoder, fed packet and body, yields the packet and
/// the body.
pub fn check_roundtrip(data: &[u8]) {
    let mut u = Unstructured::new(data);
    let Ok(Some(spec)) = Spec::generate(&mut u) else {
        return;
    };
    let packet = spec.packet();
    let limits = Limits::PERMISSIVE;
    let bytes = packet.to_vec();
    assert_eq!(bytes.len(), packet.encoded_len());
    let header = packet.header();
    assert_eq!(Header::parse(&bytes), Ok(header));
    assert_eq!(packet.kind(), expected_kind(header.modifier1.value()));
    let body_len = spec.body_len();
    assert_eq!(packet.body_len(), body_len);
    spec.check_accessors(&packet);

    assert_eq!(
        Packet::decode_datagram(&bytes, &limits),
        Ok(packet),
        "built → datagram → decode"
    );
    if !spec.frames_on_stream() {
        return;
    }
    let d = Packet::decode(&bytes, &limits).expect("a built packet decodes");
    assert_eq!(d.packet, packet, "built → encode → decode");
    assert_eq!(d.consumed, bytes.len());
    assert_eq!(d.body_len, body_len);
    spec.check_accessors(&d.packet);
    assert_eq!(d.packet.to_vec(), bytes);
    for len in model::prefix_lengths(bytes.len(), &mut u) {
        assert!(
            matches!(
                Packet::decode(&bytes[..len], &limits),
                Err(DecodeError::Incomplete { .. })
            ),
            "strict prefix {len} of a built packet"
        );
    }

    // On a stream, with its body, followed by a ping.
    // Bodies of any length stream in chunks; building one here is only worth it small.
    let body_len = match usize::try_from(body_len) {
        Ok(n) if n <= 200_000 => n,
        _ => return,
    };
    let body: Vec<u8> = (0..body_len)
        .map(|i| u8::try_from(i % 251).unwrap_or(0))
        .collect();
    let mut dec = StreamDecoder::new(limits);
    dec.feed(&bytes);
    dec.feed(&body);
    dec.feed(&[0x64, 0, 0, 0]);
    match dec.next_event() {
        Ok(Event::Packet(p)) => assert_eq!(p, packet),
        other => panic!("stream: {other:?}"),
    }
    let mut got = Vec::new();
    while got.len() < body.len() {
        match dec.next_event() {
            Ok(Event::Body { data, last }) => {
                got.extend_from_slice(data);
                assert_eq!(last, got.len() == body.len());
            }
            other => panic!("stream body: {other:?}"),
        }
    }
    assert_eq!(got, body);
    assert!(matches!(
        dec.next_event(),
        Ok(Event::Packet(Packet::Ping(_)))
    ));
    assert!(dec.is_idle());
    assert_eq!(dec.finish(), Ok(()));
}
