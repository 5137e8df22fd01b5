//! The borrowed decode path allocates nothing: `Packet::decode`, `Reply::decode`, the vars
//! and array views, and `StreamDecoder::next_event` once bytes are buffered — on the golden
//! vectors, malformed ones (errors) included.
//!
//! A counting global allocator counts allocations per thread (tests run in parallel
//! threads); every measured section runs on the test's own thread and must add 0.

// A `GlobalAlloc` impl is unsafe by definition (its methods are `unsafe fn`s that forward
// raw pointers to `System`); nothing else in this file uses unsafe.
#![allow(unsafe_code)]

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::hint::black_box;
use std::path::PathBuf;

use uwsgi_protocol::packet::Reply;
use uwsgi_protocol::{DecodeError, Event, Header, Limits, Packet, StreamDecoder, Vars};

struct CountingAllocator;

thread_local! {
    // Const-initialised and without a destructor: safe to touch from inside the allocator.
    static ALLOCATIONS: Cell<u64> = const { Cell::new(0) };
}

fn count_one() {
    // `try_with`: the slot may already be gone while a thread is being torn down.
    let _ = ALLOCATIONS.try_with(|n| n.set(n.get() + 1));
}

// SAFETY: every method forwards its arguments unchanged to `System`, which upholds the
// `GlobalAlloc` contract; the counting touches only a thread-local `Cell`.
unsafe impl GlobalAlloc for CountingAllocator {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        count_one();
        // SAFETY: same layout the caller gave us.
        unsafe { System.alloc(layout) }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        count_one();
        // SAFETY: same layout the caller gave us.
        unsafe { System.alloc_zeroed(layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        count_one();
        // SAFETY: `ptr` was allocated by `System` (through us) with `layout`.
        unsafe { System.realloc(ptr, layout, new_size) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: `ptr` was allocated by `System` (through us) with `layout`.
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static GLOBAL: CountingAllocator = CountingAllocator;

/// Runs `f` and returns its result with the number of allocations (and reallocations) it
/// made on this thread.
fn allocations<R>(f: impl FnOnce() -> R) -> (R, u64) {
    let before = ALLOCATIONS.with(Cell::get);
    let result = f();
    let after = ALLOCATIONS.with(Cell::get);
    (result, after - before)
}

struct Record {
    name: String,
    request: Vec<u8>,
    response: Vec<u8>,
}

fn hex(s: &str) -> Vec<u8> {
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).expect("hex"))
        .collect()
}

fn load(file: &str) -> Vec<Record> {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../tests/vectors")
        .join(file);
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path:?}: {e}"));
    text.lines()
        .filter(|line| !line.trim().is_empty())
        .map(|line| {
            let record: serde_json::Value = serde_json::from_str(line).expect("json line");
            Record {
                name: record["name"].as_str().expect("name").to_owned(),
                request: hex(record["request_hex"].as_str().expect("request_hex")),
                response: record["response_hex"].as_str().map(hex).unwrap_or_default(),
            }
        })
        .collect()
}

/// What a server does with vars: walk them, look keys up every way the API offers.
fn touch_vars(vars: &Vars<'_>) -> usize {
    let mut sum = vars.len() + usize::from(vars.is_empty());
    for (key, value) in vars {
        sum += key.len() + value.len();
        sum += vars.get(key).map_or(0, <[u8]>::len);
        sum += vars.get_first(key).map_or(0, <[u8]>::len);
        sum += vars.get_all(key).count();
    }
    for key in [
        "PATH_INFO",
        "QUERY_STRING",
        "REQUEST_METHOD",
        "CONTENT_LENGTH",
        "NOT_THERE",
    ] {
        sum += vars.get(key).map_or(0, <[u8]>::len);
    }
    sum + vars.as_bytes().len()
}

/// Everything borrowed a decoded packet offers.
fn touch_packet(packet: &Packet<'_>) -> usize {
    let mut sum = packet.kind().len() + packet.encoded_len();
    sum += usize::from(packet.header().datasize);
    sum += usize::try_from(packet.body_len()).unwrap_or(usize::MAX);
    if let Some(vars) = packet.vars() {
        sum += touch_vars(&vars);
    }
    if let Some(items) = packet.items() {
        sum += items.len() + items.first().map_or(0, <[u8]>::len);
        for item in items {
            sum += item.len();
        }
    }
    if let Packet::Request(request) = packet {
        sum += usize::try_from(request.content_length()).unwrap_or(usize::MAX);
    }
    sum
}

/// Decodes `input` every borrowed way; returns how many decodes failed.
fn decode_everything(input: &[u8]) -> usize {
    let mut errors = 0;
    for limits in [Limits::DEFAULT, Limits::PERMISSIVE] {
        match Packet::decode(black_box(input), &limits) {
            Ok(decoded) => {
                black_box(touch_packet(&decoded.packet) + decoded.consumed);
            }
            Err(err) => {
                errors += 1;
                black_box(err.is_incomplete());
            }
        }
        match Packet::decode_datagram(black_box(input), &limits) {
            Ok(packet) => {
                black_box(touch_packet(&packet));
            }
            Err(err) => {
                errors += 1;
                black_box(err);
            }
        }
    }
    errors
}

fn touch_reply(reply: &Reply<'_>) -> usize {
    let mut sum = reply.kind().len();
    match reply {
        Reply::RpcBigResult { vars, data } => sum += touch_vars(vars) + data.len(),
        Reply::CacheDump { vars, image } => sum += touch_vars(vars) + image.len(),
        Reply::CacheMagic { reply, value } => {
            sum += reply.status().len() + value.len();
            sum += usize::try_from(reply.size()).unwrap_or(0);
            sum += usize::from(reply.is_ok()) + usize::from(reply.expires().is_some());
        }
        Reply::Http(bytes) | Reply::Raw(bytes) => sum += bytes.len(),
        Reply::CacheStream { value, .. } => sum += value.len(),
        _ => {}
    }
    sum
}

#[test]
fn the_counter_sees_allocations() {
    let (v, n) = allocations(|| black_box(Vec::<u8>::with_capacity(16)));
    drop(v);
    assert_eq!(n, 1);
    let (_, n) = allocations(|| black_box(String::from("x") + "y"));
    assert!(n >= 1);
    let (_, n) = allocations(|| black_box(1 + 1));
    assert_eq!(n, 0);
}

#[test]
fn nginx_requests_decode_without_allocating() {
    let records = load("nginx-requests.jsonl");
    assert_eq!(records.len(), 7);
    for record in &records {
        let (errors, n) = allocations(|| decode_everything(&record.request));
        assert_eq!(n, 0, "{}: {n} allocation(s)", record.name);
        // decode_datagram fails on all of them (a body follows or sizes differ) unless
        // the request has no body: either way decode itself must succeed twice.
        assert!(errors <= 2, "{}: {errors} failed decodes", record.name);
    }
}

#[test]
fn uwsgi_requests_decode_without_allocating_even_when_malformed() {
    let records = load("uwsgi-2.0-replies.jsonl");
    assert_eq!(records.len(), 37);
    let mut failed = Vec::new();
    for record in &records {
        let (errors, n) = allocations(|| decode_everything(&record.request));
        assert_eq!(n, 0, "{}: {n} allocation(s)", record.name);
        if errors > 0 {
            failed.push(record.name.as_str());
        }
    }
    // The error paths were exercised, not just the happy ones.
    for name in [
        "malformed_size_larger_than_sent_open",
        "malformed_key_length_past_end",
        "malformed_value_length_past_end",
        "malformed_truncated_vars_odd_byte",
        "malformed_pktsize_over_buffer",
        "rpc_trailing_empty_arg",
    ] {
        assert!(
            failed.contains(&name),
            "{name} was expected to fail: {failed:?}"
        );
    }
}

#[test]
fn uwsgi_replies_decode_without_allocating() {
    let records = load("uwsgi-2.0-replies.jsonl");
    let mut decoded = 0;
    for record in &records {
        let request = Header::parse(&record.request).expect("request header");
        let (ok, n) = allocations(|| {
            let mut ok = false;
            for limits in [Limits::DEFAULT, Limits::PERMISSIVE] {
                for at_eof in [true, false] {
                    match Reply::decode(black_box(&record.response), request, at_eof, &limits) {
                        Ok((reply, consumed)) => {
                            ok |= at_eof;
                            black_box(touch_reply(&reply) + consumed);
                        }
                        Err(err) => {
                            black_box(err);
                        }
                    }
                }
            }
            ok
        });
        assert_eq!(n, 0, "{}: {n} allocation(s)", record.name);
        decoded += usize::from(ok);
    }
    assert!(decoded > 20, "only {decoded} replies decoded");
}

/// Feeds `stream` in `chunk`-byte pieces (feeding may allocate) and drains the events
/// after each piece (must not). Returns the packets and body bytes seen.
fn drain_stream(name: &str, stream: &[u8], chunk: usize) -> (usize, usize) {
    let mut decoder = StreamDecoder::new(Limits::DEFAULT);
    let (mut packets, mut body) = (0, 0);
    for piece in stream.chunks(chunk) {
        decoder.feed(piece);
        let ((p, b), n) = allocations(|| {
            let (mut p, mut b) = (0, 0);
            loop {
                match decoder.next_event() {
                    Ok(Event::Packet(packet)) => {
                        p += 1;
                        black_box(touch_packet(&packet));
                    }
                    Ok(Event::Body { data, .. }) => b += data.len(),
                    Err(err) => {
                        black_box(&err);
                        break;
                    }
                }
            }
            black_box(decoder.finish().is_ok() && decoder.is_idle());
            (p, b)
        });
        assert_eq!(n, 0, "{name} ({chunk}-byte chunks): {n} allocation(s)");
        packets += p;
        body += b;
    }
    (packets, body)
}

#[test]
fn stream_decoder_events_do_not_allocate() {
    for record in load("nginx-requests.jsonl") {
        let body = record.request.len() - Header::parse(&record.request).expect("h").packet_len();
        for chunk in [1, 7, 4096, usize::MAX] {
            let seen = drain_stream(&record.name, &record.request, chunk);
            assert_eq!(seen, (1, body), "{} ({chunk})", record.name);
        }
    }
    for record in load("uwsgi-2.0-replies.jsonl") {
        for chunk in [3, usize::MAX] {
            drain_stream(&record.name, &record.request, chunk);
        }
    }
}

#[test]
fn a_poisoned_stream_does_not_allocate() {
    let records = load("uwsgi-2.0-replies.jsonl");
    let bad = records
        .iter()
        .find(|r| r.name == "malformed_key_length_past_end")
        .expect("vector");
    let mut decoder = StreamDecoder::new(Limits::DEFAULT);
    decoder.feed(&bad.request);
    let (results, n) = allocations(|| {
        let first = decoder.next_event().map(|_| ());
        let second = decoder.next_event().map(|_| ());
        let finish = decoder.finish();
        (first, second, finish)
    });
    assert_eq!(n, 0);
    assert!(matches!(results.0, Err(DecodeError::Invalid(_))));
    assert_eq!(results.0, results.1);
    assert_eq!(results.0, results.2);
}
