//! Replies: `Reply::decode(input, request, at_eof, limits)`.

use arbitrary::Unstructured;
use uwsgi_protocol::packet::{Expect, Reply, cache_op, rpc_mode};
use uwsgi_protocol::{DecodeError, Header, InvalidPacket, Limits, Modifier1};

use super::{LIMITS, model, tighter_or_equal};

type Decoded<'a> = Result<(Reply<'a>, usize), DecodeError>;

/// The reply kinds a request may get (docs/protocol.md §3, replies table), besides
/// `closed`.
fn allowed_kinds(request: Header) -> &'static [&'static str] {
    match Expect::for_request(request) {
        Expect::RawToEof | Expect::Nothing if request.modifier1.is_app_request() => &["http"],
        Expect::RawToEof | Expect::Nothing => &["raw"],
        Expect::Framed | Expect::FramedThenRawToEof => match request.modifier1 {
            Modifier1::Ping => &["pong"],
            Modifier1::Spooler | Modifier1::Signal => &["response"],
            Modifier1::Admin => &["admin-value", "response"],
            Modifier1::Marshal => &["marshal", "response"],
            Modifier1::Rpc if request.modifier2 == rpc_mode::FRAMED => {
                &["rpc-result", "rpc-big-result"]
            }
            Modifier1::Cache => match request.modifier2 {
                cache_op::GET => &["cache-value"],
                cache_op::MAGIC => &["cache-magic"],
                cache_op::GET_STREAM => &["cache-stream"],
                cache_op::DUMP => &["cache-dump"],
                _ => &[],
            },
            _ => &[],
        },
    }
}

/// The first 4 bytes are the request's header, the rest is what the server sent. For
/// every limit set and both values of `at_eof`:
///
/// * accepted: used ≤ input; the reply is of a kind the request can get; re-encoding is
///   byte-exact for the used bytes (every reply kind is canonical); decoding the used
///   bytes alone gives the same reply;
/// * a framed reply decoded before EOF is the same at EOF, is not affected by bytes
///   after it, and each strict prefix is `Incomplete` before EOF and `Truncated` (with
///   the same count) at EOF;
/// * `Incomplete` before EOF becomes a reply or `Truncated` at EOF, never another
///   error; `Invalid` before EOF is the same `Invalid` at EOF;
/// * looser limits accept what tighter limits accept.
pub fn check(data: &[u8]) {
    let Ok(request) = Header::parse(data) else {
        return;
    };
    let input = &data[Header::LEN..];
    let mut u = Unstructured::new(data);
    let mut results: Vec<(Decoded<'_>, Decoded<'_>)> = Vec::new();
    for limits in &LIMITS {
        let open = Reply::decode(input, request, false, limits);
        let closed = Reply::decode(input, request, true, limits);
        for (at_eof, result) in [(false, &open), (true, &closed)] {
            if let Ok((reply, used)) = result {
                accepted(input, request, at_eof, limits, reply, *used);
            }
        }
        match (&open, &closed) {
            (Ok(a), b) => {
                assert_eq!(
                    Ok(a),
                    b.as_ref(),
                    "a reply complete before EOF is the same at EOF"
                );
                let (reply, used) = a;
                framed(input, request, limits, reply, *used, &mut u);
            }
            (Err(DecodeError::Incomplete { needed }), b) => match b {
                Ok(_) => {}
                Err(DecodeError::Invalid(InvalidPacket::Truncated { needed: n })) => {
                    assert_eq!(n, needed, "Truncated carries what was missing")
                }
                other => panic!("Incomplete before EOF, {other:?} at EOF"),
            },
            (Err(DecodeError::Invalid(e)), b) => {
                assert_eq!(
                    b.as_ref(),
                    Err(&DecodeError::Invalid(e.clone())),
                    "Invalid is final"
                )
            }
        }
        if let Err(DecodeError::Incomplete { .. }) = closed {
            panic!("at EOF nothing is Incomplete");
        }
        results.push((open, closed));
    }
    for (a, ra) in LIMITS.iter().zip(&results) {
        for (b, rb) in LIMITS.iter().zip(&results) {
            if tighter_or_equal(a, b) {
                if ra.0.is_ok() {
                    assert_eq!(ra.0, rb.0, "looser limits accept what tighter ones do");
                }
                if ra.1.is_ok() {
                    assert_eq!(ra.1, rb.1, "looser limits accept what tighter ones do");
                }
            }
        }
    }
}

fn accepted(
    input: &[u8],
    request: Header,
    at_eof: bool,
    limits: &Limits,
    reply: &Reply<'_>,
    used: usize,
) {
    assert!(used <= input.len(), "used ≤ input");
    if input.is_empty() && at_eof {
        assert_eq!(*reply, Reply::Closed);
    } else {
        let kinds = allowed_kinds(request);
        assert!(
            kinds.contains(&reply.kind()),
            "a {} reply to request {request:?}",
            reply.kind()
        );
    }
    assert_eq!(
        reply.to_vec(),
        input[..used],
        "decode → encode is byte-exact"
    );
    assert_eq!(
        Reply::decode(&input[..used], request, at_eof, limits),
        Ok((*reply, used)),
        "the used bytes alone decode the same"
    );
}

/// A reply decoded before EOF: bytes after it are not looked at; strict prefixes are
/// `Incomplete` (bounded) before EOF and `Truncated` at EOF.
fn framed(
    input: &[u8],
    request: Header,
    limits: &Limits,
    reply: &Reply<'_>,
    used: usize,
    u: &mut Unstructured<'_>,
) {
    let longer = [&input[..used], b"\x64\x00\x00\x00\xff"].concat();
    assert_eq!(
        Reply::decode(&longer, request, false, limits),
        Ok((*reply, used)),
        "bytes after a framed reply are not looked at"
    );
    for len in model::prefix_lengths(used, u) {
        let prefix = &input[..len];
        let needed = match Reply::decode(prefix, request, false, limits) {
            Err(DecodeError::Incomplete { needed }) => needed,
            other => panic!("strict prefix {len} of a {used}-byte reply: {other:?}"),
        };
        assert!(
            needed >= 1 && len + needed <= used,
            "prefix {len}: needed {needed}"
        );
        let at_eof = Reply::decode(prefix, request, true, limits);
        if len == 0 {
            assert_eq!(at_eof, Ok((Reply::Closed, 0)));
        } else {
            assert_eq!(
                at_eof,
                Err(DecodeError::Invalid(InvalidPacket::Truncated { needed })),
                "prefix {len} at EOF"
            );
        }
    }
}
