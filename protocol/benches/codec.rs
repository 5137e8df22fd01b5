//! Codec benchmarks: uwsgi decode against httparse on the same requests, encode, and the
//! stream decoder. Inputs are the nginx golden vectors in `tests/vectors/`.
//!
//! Run: `cargo bench -p uwsgi-protocol --bench codec -- --warm-up-time 1 --measurement-time 3`
//! and summarise with `python3 protocol/benches/report.py` (medians and ratios).
//! Results and the machine they were taken on: docs/benchmarks.md.

use std::hint::black_box;
use std::path::PathBuf;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use uwsgi_protocol::packet::Request;
use uwsgi_protocol::{Event, Header, Limits, Modifier1, Packet, StreamDecoder, Vars, VarsBuilder};

/// A server-like configuration: uWSGI's defaults with the largest block the format allows.
const LIMITS: Limits = Limits {
    max_datasize: u16::MAX,
    ..Limits::DEFAULT
};

/// One nginx vector: the uwsgi packet (header + block, no body) and the equivalent HTTP/1.1
/// request head (request line + headers + blank line, no body).
struct Vector {
    name: String,
    uwsgi: Vec<u8>,
    http: Vec<u8>,
    /// The whole capture, body included (for the stream decoder).
    stream: Vec<u8>,
    /// A uwsgi packet carrying only what the HTTP head carries (method, path, query,
    /// protocol, the `HTTP_*` vars and the content vars), without nginx's CGI extras.
    uwsgi_same_fields: Vec<u8>,
}

/// The uwsgi packet a front end would send if it forwarded only the HTTP head's fields.
fn same_fields_packet(vars: &Vars<'_>) -> Vec<u8> {
    let mut builder = VarsBuilder::new();
    for (key, value) in vars {
        let wanted = matches!(
            key,
            b"REQUEST_METHOD"
                | b"PATH_INFO"
                | b"QUERY_STRING"
                | b"SERVER_PROTOCOL"
                | b"CONTENT_LENGTH"
                | b"CONTENT_TYPE"
        ) || key.starts_with(b"HTTP_");
        if wanted {
            builder.push(key, value).expect("fits");
        }
    }
    Packet::Request(Request::new(Modifier1::Wsgi, builder.as_vars())).to_vec()
}

fn hex(s: &str) -> Vec<u8> {
    fn nibble(c: u8) -> u8 {
        match c {
            b'0'..=b'9' => c - b'0',
            b'a'..=b'f' => c - b'a' + 10,
            b'A'..=b'F' => c - b'A' + 10,
            _ => panic!("bad hex digit {c:?}"),
        }
    }
    s.as_bytes()
        .chunks_exact(2)
        .map(|p| (nibble(p[0]) << 4) | nibble(p[1]))
        .collect()
}

fn vectors_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../tests/vectors")
}

/// `HTTP_USER_AGENT` -> `User-Agent`.
fn header_name(var: &[u8]) -> String {
    let name = String::from_utf8_lossy(&var[b"HTTP_".len()..]).to_ascii_lowercase();
    name.split('_')
        .map(|word| {
            let mut chars = word.chars();
            chars.next().map_or_else(String::new, |first| {
                first.to_ascii_uppercase().to_string() + chars.as_str()
            })
        })
        .collect::<Vec<_>>()
        .join("-")
}

/// The HTTP/1.1 request head a client would have sent for these vars.
fn http_request(vars: &Vars<'_>) -> Vec<u8> {
    let method = vars.get("REQUEST_METHOD").expect("REQUEST_METHOD");
    let target = vars.get("REQUEST_URI").expect("REQUEST_URI");
    let mut out = Vec::new();
    out.extend_from_slice(method);
    out.push(b' ');
    out.extend_from_slice(target);
    out.extend_from_slice(b" HTTP/1.1\r\n");
    let mut has_content_type = false;
    let mut has_content_length = false;
    for (key, value) in vars {
        if let Some(rest) = key.strip_prefix(b"HTTP_") {
            has_content_type |= rest == b"CONTENT_TYPE";
            has_content_length |= rest == b"CONTENT_LENGTH";
            out.extend_from_slice(header_name(key).as_bytes());
            out.extend_from_slice(b": ");
            out.extend_from_slice(value);
            out.extend_from_slice(b"\r\n");
        }
    }
    // nginx forwards Content-Type/-Length as HTTP_CONTENT_*; add them only if it did not.
    for (var, name, present) in [
        ("CONTENT_TYPE", "Content-Type", has_content_type),
        ("CONTENT_LENGTH", "Content-Length", has_content_length),
    ] {
        match vars.get(var) {
            Some(value) if !value.is_empty() && !present => {
                out.extend_from_slice(name.as_bytes());
                out.extend_from_slice(b": ");
                out.extend_from_slice(value);
                out.extend_from_slice(b"\r\n");
            }
            _ => {}
        }
    }
    out.extend_from_slice(b"\r\n");
    out
}

fn load_vectors() -> Vec<Vector> {
    let path = vectors_dir().join("nginx-requests.jsonl");
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path:?}: {e}"));
    text.lines()
        .filter(|line| !line.trim().is_empty())
        .map(|line| {
            let record: serde_json::Value = serde_json::from_str(line).expect("json line");
            let name = record["name"].as_str().expect("name").to_owned();
            let stream = hex(record["request_hex"].as_str().expect("request_hex"));
            let header = Header::parse(&stream).expect("header");
            let uwsgi = stream[..header.packet_len()].to_vec();
            let decoded = Packet::decode(&uwsgi, &LIMITS).expect("vector decodes");
            let vars = decoded.packet.vars().expect("request vars");
            let http = http_request(&vars);
            let uwsgi_same_fields = same_fields_packet(&vars);
            Vector {
                name,
                uwsgi,
                http,
                stream,
                uwsgi_same_fields,
            }
        })
        .collect()
}

/// What a server does with a decoded request: walk every var, look up the four it needs.
#[inline(never)]
fn uwsgi_decode(bytes: &[u8]) -> usize {
    let decoded = Packet::decode(bytes, &LIMITS).expect("decodes");
    let Packet::Request(request) = decoded.packet else {
        unreachable!("nginx sends requests")
    };
    let vars = request.vars;
    let mut sum = vars.len();
    for (key, value) in &vars {
        sum += key.len() + value.len();
    }
    let wanted = vars.get_many([
        b"PATH_INFO".as_slice(),
        b"QUERY_STRING",
        b"REQUEST_METHOD",
        b"CONTENT_LENGTH",
    ]);
    for value in wanted {
        sum += value.map_or(0, <[u8]>::len);
    }
    sum + usize::try_from(decoded.body_len).unwrap_or(0)
}

/// Same work, done in a single pass over the pairs (last occurrence wins, like `get`).
#[inline(never)]
fn uwsgi_decode_one_pass(bytes: &[u8]) -> usize {
    let decoded = Packet::decode(bytes, &LIMITS).expect("decodes");
    let Packet::Request(request) = decoded.packet else {
        unreachable!("nginx sends requests")
    };
    let (mut path, mut query, mut method, mut length): (&[u8], &[u8], &[u8], &[u8]) =
        (b"", b"", b"", b"");
    let mut sum = request.vars.len();
    for (key, value) in &request.vars {
        sum += key.len() + value.len();
        match key {
            b"PATH_INFO" => path = value,
            b"QUERY_STRING" => query = value,
            b"REQUEST_METHOD" => method = value,
            b"CONTENT_LENGTH" => length = value,
            _ => {}
        }
    }
    sum + path.len()
        + query.len()
        + method.len()
        + length.len()
        + usize::try_from(decoded.body_len).unwrap_or(0)
}

/// Not the library: the same validation written with plain slice operations, picking up
/// CONTENT_LENGTH in the same pass. A floor for what `Packet::decode` could cost.
#[inline(never)]
fn floor_walk(bytes: &[u8]) -> usize {
    fn len_at(block: &[u8], pos: usize) -> Option<usize> {
        match block.get(pos..)? {
            [lo, hi, ..] => Some(usize::from(u16::from_le_bytes([*lo, *hi]))),
            _ => None,
        }
    }
    let datasize = len_at(bytes, 1).expect("header");
    let block = &bytes[Header::LEN..Header::LEN + datasize];
    let (mut pos, mut pairs, mut length): (usize, usize, &[u8]) = (0, 0, b"");
    while pos < block.len() {
        assert!(block.len() - pos >= 3, "trailing bytes");
        let key_len = len_at(block, pos).expect("key length");
        assert!(key_len > 0, "empty key");
        let key = block.get(pos + 2..pos + 2 + key_len).expect("key");
        let value_len = len_at(block, pos + 2 + key_len).expect("value length");
        let value_start = pos + 4 + key_len;
        let value = block
            .get(value_start..value_start + value_len)
            .expect("value");
        if key == b"CONTENT_LENGTH" {
            length = value;
        }
        pairs += 1;
        pos = value_start + value_len;
    }
    pairs + length.len()
}

/// The decode alone, nothing touched but the pair count and body length.
#[inline(never)]
fn uwsgi_decode_only(bytes: &[u8]) -> usize {
    let decoded = Packet::decode(bytes, &LIMITS).expect("decodes");
    decoded.packet.vars().map_or(0, |v| v.len()) + usize::try_from(decoded.body_len).unwrap_or(0)
}

/// What a server does with httparse: parse, walk every header, take method, path, query
/// and Content-Length.
#[inline(never)]
fn httparse_parse(bytes: &[u8]) -> usize {
    let mut headers = [httparse::EMPTY_HEADER; 64];
    let mut request = httparse::Request::new(&mut headers);
    let status = request.parse(bytes).expect("parses");
    assert!(status.is_complete());
    let mut sum = request.headers.len();
    let mut length = 0;
    for header in request.headers.iter() {
        sum += header.name.len() + header.value.len();
        if header.name.eq_ignore_ascii_case("content-length") {
            length = header.value.len();
        }
    }
    let target = request.path.unwrap_or("");
    let (path, query) = target.split_once('?').unwrap_or((target, ""));
    sum + path.len() + query.len() + request.method.map_or(0, str::len) + length
}

fn bench_decode(c: &mut Criterion, vectors: &[Vector]) {
    for v in vectors {
        // Sanity: both sides see the same request.
        assert_eq!(uwsgi_decode(&v.uwsgi), uwsgi_decode_one_pass(&v.uwsgi));
        httparse_parse(&v.http);
        let vars = Packet::decode(&v.uwsgi, &LIMITS)
            .expect("decodes")
            .packet
            .vars()
            .expect("vars");
        let mut headers = [httparse::EMPTY_HEADER; 64];
        let mut request = httparse::Request::new(&mut headers);
        assert!(request.parse(&v.http).expect("parses").is_complete());
        assert_eq!(
            request.headers.len(),
            vars.iter().filter(|(k, _)| k.starts_with(b"HTTP_")).count(),
            "{}: one header per HTTP_* var",
            v.name
        );
        assert_eq!(
            request.method.map(str::as_bytes),
            vars.get("REQUEST_METHOD")
        );

        let mut group = c.benchmark_group(format!("decode/{}", v.name));
        group.throughput(Throughput::Bytes(v.uwsgi.len() as u64));
        group.bench_function("uwsgi decode", |b| {
            b.iter(|| uwsgi_decode(black_box(&v.uwsgi)))
        });
        group.bench_function("uwsgi decode one-pass", |b| {
            b.iter(|| uwsgi_decode_one_pass(black_box(&v.uwsgi)))
        });
        group.bench_function("uwsgi decode only", |b| {
            b.iter(|| uwsgi_decode_only(black_box(&v.uwsgi)))
        });
        group.bench_function("floor walk (not the library)", |b| {
            b.iter(|| floor_walk(black_box(&v.uwsgi)))
        });
        group.throughput(Throughput::Bytes(v.uwsgi_same_fields.len() as u64));
        group.bench_function("uwsgi decode, same fields as HTTP", |b| {
            b.iter(|| uwsgi_decode(black_box(&v.uwsgi_same_fields)))
        });
        group.throughput(Throughput::Bytes(v.http.len() as u64));
        group.bench_function("httparse parse", |b| {
            b.iter(|| httparse_parse(black_box(&v.http)))
        });
        group.finish();
    }
}

fn bench_encode(c: &mut Criterion, vectors: &[Vector]) {
    let v = vectors
        .iter()
        .find(|v| v.name == "nginx_get_query")
        .expect("nginx_get_query vector");
    let decoded = Packet::decode(&v.uwsgi, &LIMITS).expect("decodes");
    let vars = decoded.packet.vars().expect("vars");
    let pairs: Vec<(Vec<u8>, Vec<u8>)> =
        vars.iter().map(|(k, v)| (k.to_vec(), v.to_vec())).collect();
    let encoded_len = decoded.packet.encoded_len();
    let mut out: Vec<u8> = Vec::with_capacity(4096);
    decoded.packet.encode(&mut out);
    assert_eq!(out, v.uwsgi, "re-encoding gives the captured bytes");

    let mut group = c.benchmark_group("encode/nginx_get_query");
    group.throughput(Throughput::Bytes(encoded_len as u64));
    // One builder reused across requests, as a client or proxy would: no allocation.
    let mut builder = VarsBuilder::with_capacity(512);
    group.bench_function("build vars + encode", |b| {
        b.iter(|| {
            builder.clear();
            for (key, value) in black_box(&pairs) {
                builder.push(key, value).expect("fits");
            }
            out.clear();
            Request::new(Modifier1::Wsgi, builder.as_vars()).encode(&mut out);
            black_box(out.len())
        })
    });
    group.bench_function("encode built packet", |b| {
        let packet = decoded.packet;
        b.iter(|| {
            out.clear();
            black_box(&packet).encode(&mut out);
            black_box(out.len())
        })
    });
    // Baseline: the same number of bytes copied with one memcpy.
    group.bench_function("memcpy baseline", |b| {
        b.iter(|| {
            out.clear();
            out.extend_from_slice(black_box(&v.uwsgi));
            black_box(out.len())
        })
    });
    group.finish();
}

fn bench_stream(c: &mut Criterion, vectors: &[Vector]) {
    let v = vectors
        .iter()
        .find(|v| v.name == "nginx_post_100k")
        .expect("nginx_post_100k vector");
    let mut decoder = StreamDecoder::new(LIMITS);
    // One request per iteration through a long-lived decoder, fed in 4 KiB reads.
    let run = |decoder: &mut StreamDecoder| -> usize {
        let mut body = 0;
        for chunk in v.stream.chunks(4096) {
            decoder.feed(chunk);
            loop {
                match decoder.next_event() {
                    Ok(Event::Packet(packet)) => body += packet.vars().map_or(0, |v| v.len()),
                    Ok(Event::Body { data, .. }) => body += data.len(),
                    Err(e) if e.is_incomplete() => break,
                    Err(e) => panic!("{e}"),
                }
            }
        }
        body
    };
    assert_eq!(run(&mut decoder), 18 + 102_400);
    assert!(decoder.is_idle());

    let mut group = c.benchmark_group("stream/nginx_post_100k");
    group.throughput(Throughput::Bytes(v.stream.len() as u64));
    group.bench_function("StreamDecoder 4 KiB chunks", |b| {
        b.iter(|| black_box(run(&mut decoder)))
    });
    group.finish();
}

fn benches(c: &mut Criterion) {
    let vectors = load_vectors();
    bench_decode(c, &vectors);
    bench_encode(c, &vectors);
    bench_stream(c, &vectors);
}

criterion_group!(codec, benches);
criterion_main!(codec);
