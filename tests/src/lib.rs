//! Shared support for the uwsgi-rs test suites: the golden vectors captured from real
//! nginx, uWSGI 2.0 and CPython (see `vectors/README.md`), and small helpers.

pub mod harness;

use std::path::PathBuf;

use serde::Deserialize;

pub mod nginx_peer;
pub mod uwsgi_peer;

/// One captured exchange from `nginx-requests.jsonl` or `uwsgi-2.0-replies.jsonl`.
#[derive(Debug, Clone, Deserialize)]
pub struct Exchange {
    /// Case name.
    pub name: String,
    /// What was sent and why.
    pub description: String,
    /// Every byte the client sent, hex.
    pub request_hex: String,
    /// Every byte received before the connection ended, hex; `None` when nothing came.
    pub response_hex: Option<String>,
    /// `reply`, `closed` or `no-reply-timeout`.
    pub response_kind: String,
    /// `[start, end)` byte ranges of the response that change from run to run.
    #[serde(default)]
    pub volatile_ranges: Vec<[usize; 2]>,
}

impl Exchange {
    /// The request bytes.
    pub fn request(&self) -> Vec<u8> {
        hex(&self.request_hex)
    }

    /// The response bytes (empty when nothing came back).
    pub fn response(&self) -> Vec<u8> {
        self.response_hex.as_deref().map(hex).unwrap_or_default()
    }
}

/// One `marshal.dumps(value, version)` capture from CPython.
#[derive(Debug, Clone, Deserialize)]
pub struct MarshalCase {
    /// Case name.
    pub name: String,
    /// Marshal version 0–4.
    pub version: u8,
    /// `repr()` of the value.
    pub python_repr: String,
    /// The dumped bytes, hex.
    pub hex: String,
}

/// Folder holding the vector files.
pub fn vectors_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("vectors")
}

fn load<T: for<'de> Deserialize<'de>>(file: &str) -> Vec<T> {
    let path = vectors_dir().join(file);
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
    text.lines()
        .filter(|l| !l.trim().is_empty())
        .enumerate()
        .map(|(i, line)| {
            serde_json::from_str(line).unwrap_or_else(|e| panic!("{file} line {}: {e}", i + 1))
        })
        .collect()
}

/// The nginx → upstream captures.
pub fn nginx_requests() -> Vec<Exchange> {
    load("nginx-requests.jsonl")
}

/// The uWSGI 2.0 request/reply captures, in file order.
pub fn uwsgi_replies() -> Vec<Exchange> {
    load("uwsgi-2.0-replies.jsonl")
}

/// The CPython marshal captures.
pub fn marshal_cases() -> Vec<MarshalCase> {
    load("marshal.jsonl")
}

/// Decodes hex text, ignoring whitespace. Panics on malformed hex (test data only).
pub fn hex(text: &str) -> Vec<u8> {
    let digits: Vec<u8> = text.bytes().filter(|b| !b.is_ascii_whitespace()).collect();
    assert!(digits.len() % 2 == 0, "odd number of hex digits");
    digits
        .chunks(2)
        .map(|pair| {
            let s = std::str::from_utf8(pair).expect("hex is ascii");
            u8::from_str_radix(s, 16).unwrap_or_else(|_| panic!("bad hex {s:?}"))
        })
        .collect()
}

/// Encodes bytes as lowercase hex.
pub fn to_hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
