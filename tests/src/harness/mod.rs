//! Fuzz harnesses: one function per parser, each taking the fuzzer's bytes and checking
//! *properties* of `uwsgi-protocol` with `assert!`, not just that nothing crashes.
//!
//! The thin targets under `fuzz/fuzz_targets/` call these functions, and so does
//! `tests/tests/regressions.rs`, which replays every committed crash input
//! (`tests/regressions/<target>/`) and the seed corpus (`fuzz/seeds/<target>/`) in an
//! ordinary `cargo test`. See `docs/fuzzing.md`.
//!
//! A harness panics on purpose when a property fails: that panic is the fuzzer's
//! finding. The functions therefore use `assert!`, `panic!` and `expect` freely; none of
//! them is meant for production code paths.

pub mod array;
pub mod cache_dump;
pub mod cli;
pub mod header;
pub mod marshal;
pub mod msgpack;
pub mod packet;
pub mod reply;
pub mod server;
pub mod snmp;
pub mod stream;
pub mod vars;

mod model;

/// A harness: takes the fuzzer's bytes, panics when a property fails.
pub type Harness = fn(&[u8]);

/// Every fuzz target: its name (the file name under `fuzz/fuzz_targets/`, the folder
/// name under `fuzz/seeds/` and `tests/regressions/`) and its harness.
pub const TARGETS: &[(&str, Harness)] = &[
    ("header", header::check),
    ("vars", vars::check),
    ("array", array::check),
    ("packet", packet::check),
    ("datagram", packet::check_datagram),
    ("packet_roundtrip", packet::check_roundtrip),
    ("reply", reply::check),
    ("stream", stream::check),
    ("marshal", marshal::check),
    ("marshal_roundtrip", marshal::check_roundtrip),
    ("msgpack", msgpack::check),
    ("cli_decode", cli::check),
    ("server_config", server::check_config),
    ("server_connection", server::check_connection),
    ("server_http", server::check_http),
    ("snmp", snmp::check),
    ("cache_dump", cache_dump::check),
];

/// The harness of target `name`, if there is one.
pub fn target(name: &str) -> Option<Harness> {
    TARGETS.iter().find(|(n, _)| *n == name).map(|(_, f)| *f)
}

/// Limits every decoding harness tries: uWSGI's defaults, the widest the format allows,
/// and a tight set that makes every count and size limit reachable with small inputs.
pub const LIMITS: [uwsgi_protocol::Limits; 3] = [
    uwsgi_protocol::Limits::DEFAULT,
    uwsgi_protocol::Limits::PERMISSIVE,
    TIGHT,
];

/// Small limits, so the fuzzer reaches `TooManyVars`, `TooManyItems`, `BodyTooLarge` and
/// `DatasizeTooLarge` with short inputs.
pub const TIGHT: uwsgi_protocol::Limits = uwsgi_protocol::Limits {
    max_datasize: 64,
    max_vars: 3,
    max_array_items: 2,
    max_body: 100,
};

/// `true` when every limit of `a` is at most the same limit of `b` (anything `a`
/// accepts, `b` accepts too).
pub fn tighter_or_equal(a: &uwsgi_protocol::Limits, b: &uwsgi_protocol::Limits) -> bool {
    a.max_datasize <= b.max_datasize
        && a.max_vars <= b.max_vars
        && a.max_array_items <= b.max_array_items
        && a.max_body <= b.max_body
}

/// Common var names (also in `fuzz/uwsgi.dict`), used when generating vars so that
/// duplicate keys and the keys the packet decoders look up are frequent.
pub const COMMON_KEYS: &[&str] = &[
    "REQUEST_METHOD",
    "PATH_INFO",
    "QUERY_STRING",
    "CONTENT_LENGTH",
    "CONTENT_TYPE",
    "HTTP_HOST",
    "SERVER_PROTOCOL",
    "REMOTE_ADDR",
    "UWSGI_SCRIPT",
    "cmd",
    "key",
    "size",
    "expires",
    "cache",
    "status",
];
