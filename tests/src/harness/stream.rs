//! The streaming decoder, fed the same bytes whole and in fuzzer-chosen chunkings.

use arbitrary::Unstructured;
use uwsgi_protocol::{DecodeError, Event, InvalidPacket, Limits, Packet, StreamDecoder};

use super::{LIMITS, model};

/// What a decoder made of a stream: each packet's bytes with its body (concatenated),
/// the error that stopped it, and what `finish()` said at the end.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Outcome {
    events: Vec<(Vec<u8>, Vec<u8>)>,
    error: Option<InvalidPacket>,
    finish: Result<(), DecodeError>,
}

/// The reference: the one-shot `Packet::decode` walked over the buffer, skipping each
/// packet's body.
fn oneshot(stream: &[u8], limits: &Limits) -> Outcome {
    let mut pos = 0;
    let mut events = Vec::new();
    let (error, finish) = loop {
        let rest = &stream[pos..];
        if rest.is_empty() {
            break (None, Ok(()));
        }
        match Packet::decode(rest, limits) {
            Ok(d) => {
                let available = rest.len() - d.consumed;
                let body = usize::try_from(d.body_len).map_or(available, |b| b.min(available));
                events.push((
                    rest[..d.consumed].to_vec(),
                    rest[d.consumed..d.consumed + body].to_vec(),
                ));
                pos += d.consumed + body;
                let missing = d.body_len - u64::try_from(body).expect("usize fits u64");
                if missing > 0 {
                    let needed = usize::try_from(missing).unwrap_or(usize::MAX);
                    break (None, Err(DecodeError::Incomplete { needed }));
                }
            }
            Err(DecodeError::Invalid(e)) => break (Some(e.clone()), Err(DecodeError::Invalid(e))),
            Err(incomplete) => break (None, Err(incomplete)),
        }
    };
    Outcome {
        events,
        error,
        finish,
    }
}

/// How bytes are handed to the decoder.
#[derive(Debug, Clone, Copy)]
enum Feed {
    /// `feed(chunk)`.
    Copy,
    /// `prepare(chunk + 3)`, fill, `commit(chunk + 3, chunk)`: a short socket read.
    InPlace,
}

/// Feeds `stream` in chunks of the given sizes (cycled) and drains every event after
/// each chunk, checking the event sequence as it goes: no packet while a body is due,
/// body chunks non-empty and never past the body, `last` exactly on the final chunk,
/// `body_remaining`, `buffered` and `is_idle` consistent with what was handed out
/// (consumed ≤ input); after `Invalid` every call repeats the error.
fn run(stream: &[u8], sizes: &[usize], feed: Feed, limits: &Limits) -> Outcome {
    let mut dec = StreamDecoder::new(*limits);
    let mut events: Vec<(Vec<u8>, Vec<u8>)> = Vec::new();
    let mut remaining: u64 = 0;
    let (mut fed, mut handed_out) = (0usize, 0usize);
    let mut error = None;
    let mut i = 0;
    'feeding: loop {
        loop {
            match dec.next_event() {
                Ok(Event::Packet(p)) => {
                    assert_eq!(
                        remaining, 0,
                        "a packet while {remaining} body bytes are due"
                    );
                    let bytes = p.to_vec();
                    handed_out += bytes.len();
                    remaining = p.body_len();
                    assert_eq!(dec.body_remaining(), remaining);
                    events.push((bytes, Vec::new()));
                }
                Ok(Event::Body { data, last }) => {
                    let len = u64::try_from(data.len()).expect("usize fits u64");
                    assert!(!data.is_empty(), "empty body chunk");
                    assert!(len <= remaining, "body chunk past the body");
                    remaining -= len;
                    assert_eq!(last, remaining == 0, "`last` marks the final chunk");
                    handed_out += data.len();
                    events
                        .last_mut()
                        .expect("a body follows a packet")
                        .1
                        .extend_from_slice(data);
                    assert_eq!(dec.body_remaining(), remaining);
                }
                Err(DecodeError::Incomplete { needed }) => {
                    assert!(needed >= 1);
                    break;
                }
                Err(DecodeError::Invalid(e)) => {
                    error = Some(e);
                    break 'feeding;
                }
            }
        }
        assert!(handed_out <= fed, "handed out more than was fed");
        assert_eq!(dec.buffered(), fed - handed_out, "buffered bytes");
        assert_eq!(
            dec.is_idle(),
            remaining == 0 && fed == handed_out,
            "is_idle"
        );
        if fed == stream.len() {
            break;
        }
        let n = sizes[i % sizes.len()].min(stream.len() - fed);
        i += 1;
        let chunk = &stream[fed..fed + n];
        match feed {
            Feed::Copy => dec.feed(chunk),
            Feed::InPlace => {
                let region = dec.prepare(n + 3);
                region[..n].copy_from_slice(chunk);
                dec.commit(n + 3, n);
            }
        }
        fed += n;
    }
    let finish = dec.finish();
    if let Some(e) = &error {
        let err = Err(DecodeError::Invalid(e.clone()));
        assert_eq!(finish, err, "finish after Invalid");
        assert_eq!(dec.next_event().map(|_| ()), err, "Invalid repeats");
        dec.feed(&[0x64, 0, 0, 0]);
        assert_eq!(
            dec.next_event().map(|_| ()),
            err,
            "Invalid repeats after feed"
        );
        assert!(!dec.is_idle());
    }
    Outcome {
        events,
        error,
        finish,
    }
}

/// Input layout: a flags byte (bits 0–1 pick the limits, bit 2 in-place feeding), a
/// count byte `k` (mod 16), `k` chunk sizes (a byte each, 0 = an empty feed), then the
/// stream. The streaming decoder fed the whole stream at once, in the chosen chunking,
/// and (for short streams) one byte at a time must all produce the same packets, bodies,
/// error and `finish()` as the one-shot decoder walked over the buffer. When the
/// stream is clean, every prefix is never `Invalid` and `finish()` is `Ok` exactly at
/// packet boundaries.
pub fn check(data: &[u8]) {
    let Some((&flags, rest)) = data.split_first() else {
        return;
    };
    let limits = LIMITS[usize::from(flags & 3) % LIMITS.len()];
    let feed = if flags & 4 == 0 {
        Feed::Copy
    } else {
        Feed::InPlace
    };
    let (k, rest) = match rest.split_first() {
        Some((&k, rest)) => (usize::from(k % 16).min(rest.len()), rest),
        None => (0, rest),
    };
    let (sizes, stream) = rest.split_at(k);
    let mut sizes: Vec<usize> = sizes.iter().map(|&s| usize::from(s)).collect();
    if sizes.iter().all(|&s| s == 0) {
        sizes.push(1);
    }

    let want = oneshot(stream, &limits);
    assert_eq!(
        run(stream, &[usize::MAX], Feed::Copy, &limits),
        want,
        "whole buffer"
    );
    assert_eq!(run(stream, &sizes, feed, &limits), want, "chunks {sizes:?}");
    if stream.len() <= 512 {
        assert_eq!(run(stream, &[1], Feed::Copy, &limits), want, "byte by byte");
    }

    if want.finish.is_ok() {
        let mut boundaries = vec![0];
        let mut pos = 0;
        for (packet, body) in &want.events {
            pos += packet.len() + body.len();
            boundaries.push(pos);
        }
        let mut u = Unstructured::new(data);
        for len in model::prefix_lengths(stream.len(), &mut u) {
            let got = run(&stream[..len], &[usize::MAX], Feed::Copy, &limits);
            assert_eq!(got.error, None, "prefix {len} of a valid stream is Invalid");
            assert_eq!(
                got.finish.is_ok(),
                boundaries.contains(&len),
                "prefix {len}: finish() {:?}",
                got.finish
            );
            let n = got.events.len();
            assert!(n <= want.events.len());
            if n > 0 {
                assert_eq!(got.events[..n - 1], want.events[..n - 1]);
                let (packet, body) = &got.events[n - 1];
                assert_eq!(*packet, want.events[n - 1].0);
                assert!(want.events[n - 1].1.starts_with(body));
            }
        }
    }
}
