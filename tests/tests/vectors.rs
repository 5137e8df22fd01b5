//! Golden vectors captured from real peers (see `tests/vectors/README.md`): every request
//! decodes as the capture says and re-encodes byte-exact; every uWSGI 2.0 reply decodes
//! against its request and re-encodes byte-exact where the bytes are a proper packet.

// Test helpers unwrap: a panic here is a failed test with its backtrace.
#![allow(clippy::unwrap_used)]

use uwsgi_protocol::packet::{CacheRequest, MagicCommand, Payload, Reply, RpcRequest};
use uwsgi_protocol::{
    DecodeError, Event, Header, InvalidPacket, Limits, Modifier1, Packet, StreamDecoder,
    VarsBuilder,
};
use uwsgi_tests::{Exchange, nginx_requests, uwsgi_replies};

fn var<'a>(packet: &Packet<'a>, key: &str) -> &'a [u8] {
    packet
        .vars()
        .and_then(|v| v.get(key))
        .unwrap_or_else(|| panic!("var {key} missing"))
}

/// Decodes a whole captured stream with the streaming decoder: packets and bodies.
fn stream(bytes: &[u8], limits: Limits) -> Vec<(Vec<u8>, Vec<u8>)> {
    let mut dec = StreamDecoder::new(limits);
    dec.feed(bytes);
    let mut out: Vec<(Vec<u8>, Vec<u8>)> = Vec::new();
    loop {
        match dec.next_event() {
            Ok(Event::Packet(p)) => out.push((p.to_vec(), Vec::new())),
            Ok(Event::Body { data, .. }) => out.last_mut().unwrap().1.extend_from_slice(data),
            Err(DecodeError::Incomplete { .. }) => break,
            Err(e) => panic!("stream decode failed: {e}"),
        }
    }
    dec.finish().unwrap();
    out
}

#[test]
fn nginx_requests_decode_and_reencode_byte_exact() {
    let vectors = nginx_requests();
    assert_eq!(vectors.len(), 7);
    for v in &vectors {
        let bytes = v.request();
        let decoded =
            Packet::decode(&bytes, &Limits::DEFAULT).unwrap_or_else(|e| panic!("{}: {e}", v.name));
        let Packet::Request(req) = decoded.packet else {
            panic!("{}: not a request: {:?}", v.name, decoded.packet)
        };
        // Re-encode from the decoded pairs through the builder: same bytes.
        let rebuilt = VarsBuilder::from_pairs(req.vars.iter()).unwrap();
        let mut again = Vec::new();
        uwsgi_protocol::packet::Request {
            vars: rebuilt.as_vars(),
            ..req
        }
        .encode(&mut again);
        let body = &bytes[decoded.consumed..];
        assert_eq!(
            decoded.body_len,
            body.len() as u64,
            "{}: body length",
            v.name
        );
        again.extend_from_slice(body);
        assert_eq!(again, bytes, "{}: re-encoding differs", v.name);
        // The stream decoder agrees with the one-shot decoder.
        let events = stream(&bytes, Limits::DEFAULT);
        assert_eq!(events.len(), 1, "{}", v.name);
        assert_eq!(events[0].0, bytes[..decoded.consumed].to_vec());
        assert_eq!(events[0].1, body.to_vec());
        // nginx always sends CONTENT_TYPE and CONTENT_LENGTH, empty without a body.
        assert!(req.vars.get("CONTENT_LENGTH").is_some(), "{}", v.name);
        assert_eq!(var(&decoded.packet, "HTTP_HOST"), b"127.0.0.1");
        assert_eq!(
            var(&decoded.packet, "HTTP_USER_AGENT"),
            b"capture-client/1.0"
        );
    }
}

fn nginx(name: &str) -> Exchange {
    nginx_requests()
        .into_iter()
        .find(|v| v.name == name)
        .unwrap()
}

#[test]
fn nginx_request_details() {
    let v = nginx("nginx_get_query");
    let bytes = v.request();
    let d = Packet::decode(&bytes, &Limits::DEFAULT).unwrap();
    assert_eq!(d.packet.header(), Header::new(Modifier1::Wsgi, 426, 0));
    assert_eq!(var(&d.packet, "QUERY_STRING"), b"x=1&y=two&empty=&z=%20sp");
    assert_eq!(
        var(&d.packet, "REQUEST_URI"),
        b"/path/to/page?x=1&y=two&empty=&z=%20sp"
    );
    assert_eq!(var(&d.packet, "PATH_INFO"), b"/path/to/page");
    assert_eq!(var(&d.packet, "REQUEST_METHOD"), b"GET");
    assert_eq!(var(&d.packet, "CONTENT_LENGTH"), b"");
    assert_eq!(var(&d.packet, "REMOTE_PORT"), b"42100");
    assert_eq!(d.body_len, 0);

    let v = nginx("nginx_post_small");
    let bytes = v.request();
    let d = Packet::decode(&bytes, &Limits::DEFAULT).unwrap();
    assert_eq!(var(&d.packet, "REQUEST_METHOD"), b"POST");
    assert_eq!(var(&d.packet, "HTTP_CONTENT_LENGTH"), b"5");
    assert_eq!(d.body_len, 5);
    assert_eq!(&bytes[d.consumed..], b"hello");

    let v = nginx("nginx_post_100k");
    let bytes = v.request();
    let d = Packet::decode(&bytes, &Limits::DEFAULT).unwrap();
    assert_eq!(d.consumed, 4 + 470);
    assert_eq!(d.body_len, 102_400);
    let body = &bytes[d.consumed..];
    assert!(
        body.iter()
            .enumerate()
            .all(|(i, &b)| b as usize == (7 * i + 3) % 256)
    );

    let v = nginx("nginx_many_headers");
    let bytes = v.request();
    let d = Packet::decode(&bytes, &Limits::DEFAULT).unwrap();
    let vars = d.packet.vars().unwrap();
    let dups: Vec<_> = vars.get_all(b"HTTP_X_DUP").collect();
    assert_eq!(dups.len(), 2, "a header sent twice stays twice");
    assert!(
        vars.iter().any(|(_, v)| v.len() == 2000),
        "the 2000-byte header value"
    );
    assert!(vars.get("HTTP_COOKIE").is_some());

    let v = nginx("nginx_head");
    let d_bytes = v.request();
    let d = Packet::decode(&d_bytes, &Limits::DEFAULT).unwrap();
    assert_eq!(var(&d.packet, "REQUEST_METHOD"), b"HEAD");

    let v = nginx("nginx_nonascii_path");
    let bytes = v.request();
    let d = Packet::decode(&bytes, &Limits::DEFAULT).unwrap();
    let path = std::str::from_utf8(var(&d.packet, "PATH_INFO")).unwrap();
    assert!(
        path.contains('é') && path.contains('☃'),
        "PATH_INFO is decoded UTF-8: {path}"
    );
    assert!(
        std::str::from_utf8(var(&d.packet, "REQUEST_URI"))
            .unwrap()
            .contains("%E2%98%83")
    );

    let v = nginx("nginx_modifiers_30_7");
    let bytes = v.request();
    let d = Packet::decode(&bytes, &Limits::DEFAULT).unwrap();
    let Packet::Request(req) = d.packet else {
        panic!()
    };
    assert_eq!(
        (req.modifier1, req.modifier2),
        (Modifier1::WsgiScriptName, 7)
    );
}

fn uwsgi(name: &str) -> Exchange {
    uwsgi_replies()
        .into_iter()
        .find(|v| v.name == name)
        .unwrap_or_else(|| panic!("no case {name}"))
}

/// Decodes a captured request with uWSGI's default limits.
fn request(v: &Exchange) -> Result<(Packet<'static>, usize, u64), DecodeError> {
    let bytes: &'static [u8] = Box::leak(v.request().into_boxed_slice());
    Packet::decode(bytes, &Limits::DEFAULT).map(|d| (d.packet, d.consumed, d.body_len))
}

fn reply(v: &Exchange, header: Header) -> Result<(Reply<'static>, usize), DecodeError> {
    let bytes: &'static [u8] = Box::leak(v.response().into_boxed_slice());
    let limits = Limits {
        max_datasize: u16::MAX,
        ..Limits::DEFAULT
    };
    Reply::decode(bytes, header, true, &limits)
}

#[test]
fn every_uwsgi_request_decodes_as_expected() {
    for v in uwsgi_replies() {
        let bytes = v.request();
        let result = request(&v);
        let expect_invalid: Option<InvalidPacket> = match v.name.as_str() {
            "malformed_key_length_past_end" => Some(InvalidPacket::KeyPastEnd {
                offset: 6,
                len: 80,
                end: 23,
            }),
            "malformed_value_length_past_end" => Some(InvalidPacket::ValuePastEnd {
                offset: 38,
                len: 255,
                end: 39,
            }),
            "malformed_truncated_vars_odd_byte" => {
                Some(InvalidPacket::TrailingBytes { offset: 39, len: 1 })
            }
            "malformed_pktsize_over_buffer" => Some(InvalidPacket::DatasizeTooLarge {
                datasize: 5000,
                max: 4096,
            }),
            "rpc_trailing_empty_arg" => Some(InvalidPacket::TrailingBytes { offset: 14, len: 2 }),
            _ => None,
        };
        if let Some(want) = expect_invalid {
            assert_eq!(result, Err(DecodeError::Invalid(want)), "{}", v.name);
            assert_eq!(
                v.response_kind, "closed",
                "{}: uWSGI closes on what we reject",
                v.name
            );
            continue;
        }
        if v.name.starts_with("malformed_size_larger_than_sent") {
            assert_eq!(
                result,
                Err(DecodeError::Incomplete { needed: 90 }),
                "{}",
                v.name
            );
            continue;
        }
        let (packet, consumed, body_len) = result.unwrap_or_else(|e| panic!("{}: {e}", v.name));
        // Header and block re-encode byte-exact; the body follows unchanged.
        assert_eq!(packet.to_vec(), bytes[..consumed].to_vec(), "{}", v.name);
        assert_eq!(
            usize::try_from(body_len).unwrap(),
            bytes.len() - consumed,
            "{}: body",
            v.name
        );
        let kind = packet.kind();
        let want_kind = match v.name.split('_').next().unwrap() {
            "wsgi" => "request",
            "spooler" => "spool",
            "unknown" => "marshal",
            other => other,
        };
        assert_eq!(kind, want_kind, "{}", v.name);
    }
}

#[test]
fn uwsgi_request_details() {
    let (p, _, _) = request(&uwsgi("rpc_hello_3_args")).unwrap();
    let Packet::Rpc(RpcRequest::Call(call)) = p else {
        panic!("{p:?}")
    };
    assert_eq!(call.function(), b"hello");
    assert_eq!(
        call.args().collect::<Vec<_>>(),
        vec![&b"a"[..], b"bb", b"ccc"]
    );
    assert!(call.wants_framed_reply());

    let (p, _, _) = request(&uwsgi("rpc_hello_raw_m2_1")).unwrap();
    let Packet::Rpc(RpcRequest::Call(call)) = p else {
        panic!("{p:?}")
    };
    assert!(!call.wants_framed_reply());

    let (p, _, _) = request(&uwsgi("rpc_hello_http_m2_2")).unwrap();
    let Packet::Rpc(RpcRequest::Http { vars }) = p else {
        panic!("{p:?}")
    };
    assert_eq!(vars.get("PATH_INFO"), Some(&b"/hello/a/b"[..]));

    let (p, _, _) = request(&uwsgi("cache_set_foo")).unwrap();
    let Packet::Cache(CacheRequest::Set(set)) = p else {
        panic!("{p:?}")
    };
    assert_eq!((set.key(), set.value()), (&b"foo"[..], &b"bar"[..]));

    let (p, _, _) = request(&uwsgi("cache_get_hit")).unwrap();
    assert_eq!(
        p,
        Packet::Cache(CacheRequest::Get {
            key: Payload::new(b"foo").unwrap()
        })
    );

    let (p, _, body) = request(&uwsgi("cache_magic_set")).unwrap();
    let Packet::Cache(CacheRequest::Magic(m)) = p else {
        panic!("{p:?}")
    };
    assert_eq!(
        (m.command(), m.key(), m.size(), body),
        (MagicCommand::Set, &b"mk"[..], 5, 5)
    );

    let (p, _, _) = request(&uwsgi("cache_dict_get")).unwrap();
    let Packet::Cache(CacheRequest::DictGet { modifier2: 4, vars }) = p else {
        panic!("{p:?}")
    };
    assert_eq!(vars.get("get"), Some(&b"foo"[..]));

    let (p, _, _) = request(&uwsgi("signal_17")).unwrap();
    let Packet::Signal(s) = p else {
        panic!("{p:?}")
    };
    assert_eq!(s.number, 17);

    let (p, _, _) = request(&uwsgi("spooler_enqueue")).unwrap();
    let Packet::Spool(job) = p else {
        panic!("{p:?}")
    };
    assert_eq!(job.vars.get("task"), Some(&b"t1"[..]));
    assert_eq!(job.vars.get("x"), Some(&b"1"[..]));

    let (p, _, body) = request(&uwsgi("wsgi_post_body")).unwrap();
    assert_eq!((p.kind(), body), ("request", 11));
}

#[test]
fn uwsgi_replies_decode_and_reencode() {
    for v in uwsgi_replies() {
        let Ok((packet, _, _)) = request(&v) else {
            continue;
        };
        let header = packet.header();
        let response = v.response();
        if !v.volatile_ranges.is_empty() {
            // uWSGI 2.0 writes 4 bytes of a heap address where the cache reply header
            // belongs (spec §6.1): not a packet; our decoder refuses it rather than guess.
            let got = reply(&v, header);
            assert!(
                matches!(
                    got,
                    Err(DecodeError::Invalid(InvalidPacket::UnexpectedReply { .. }))
                ),
                "{}: {got:?}",
                v.name
            );
            continue;
        }
        let (decoded, consumed) = reply(&v, header).unwrap_or_else(|e| panic!("{}: {e}", v.name));
        assert_eq!(consumed, response.len(), "{}: whole reply used", v.name);
        assert_eq!(
            decoded.to_vec(),
            response,
            "{}: reply re-encodes byte-exact",
            v.name
        );
        let want_kind = match v.response_kind.as_str() {
            "closed" => "closed",
            _ => match v.name.as_str() {
                "ping" => "pong",
                n if n.starts_with("wsgi_") => "http",
                "rpc_big_70000" => "rpc-big-result",
                n if n.starts_with("rpc_hello_raw") || n.starts_with("rpc_hello_http") => "raw",
                n if n.starts_with("rpc_") => "rpc-result",
                "cache_dict_get" => "raw",
                n if n.starts_with("cache_magic") => "cache-magic",
                n if n.starts_with("signal") || n.starts_with("spooler") => "response",
                other => panic!("unclassified case {other}"),
            },
        };
        assert_eq!(decoded.kind(), want_kind, "{}", v.name);
    }
}

#[test]
fn uwsgi_reply_details() {
    let v = uwsgi("rpc_hello_3_args");
    let (r, _) = reply(&v, request(&v).unwrap().0.header()).unwrap();
    assert_eq!(
        r,
        Reply::RpcResult(Payload::new(b"HELLO:a|bb|ccc").unwrap())
    );

    let v = uwsgi("rpc_big_70000");
    let (r, _) = reply(&v, request(&v).unwrap().0.header()).unwrap();
    let Reply::RpcBigResult { vars, data } = r else {
        panic!("{r:?}")
    };
    assert_eq!(vars.get("CONTENT_LENGTH"), Some(&b"70000"[..]));
    assert_eq!(data.len(), 70_000);
    assert!(data.iter().all(|&b| b == b'x'));

    let v = uwsgi("rpc_big_5000");
    let (r, _) = reply(&v, request(&v).unwrap().0.header()).unwrap();
    let Reply::RpcResult(data) = r else {
        panic!("{r:?}")
    };
    assert_eq!(data.len(), 5000);
    // With uWSGI's default 4096-byte limit the same reply is refused, not overflowed.
    let bytes = v.response();
    assert_eq!(
        Reply::decode(
            &bytes,
            request(&v).unwrap().0.header(),
            true,
            &Limits::DEFAULT
        ),
        Err(DecodeError::Invalid(InvalidPacket::DatasizeTooLarge {
            datasize: 5000,
            max: 4096
        }))
    );

    let v = uwsgi("cache_magic_get_hit");
    let (r, _) = reply(&v, request(&v).unwrap().0.header()).unwrap();
    let Reply::CacheMagic {
        reply: status,
        value,
    } = r
    else {
        panic!("{r:?}")
    };
    assert!(status.is_ok());
    assert_eq!((status.size(), value), (5, &b"VALUE"[..]));

    let v = uwsgi("rpc_hello_http_m2_2");
    let (r, _) = reply(&v, request(&v).unwrap().0.header()).unwrap();
    let Reply::Raw(http) = r else { panic!("{r:?}") };
    assert!(http.starts_with(b"HTTP/1.0 200 OK\r\n") && http.ends_with(b"HELLO:a|b"));

    let v = uwsgi("signal_17");
    let (r, _) = reply(&v, request(&v).unwrap().0.header()).unwrap();
    assert_eq!(r, Reply::ok());

    let v = uwsgi("cache_get_hit");
    assert!(v.response().ends_with(b"bar"));
}
