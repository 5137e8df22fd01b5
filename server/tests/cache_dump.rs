//! The cache dump (modifier1 111, modifier2 6) and the start-up copy built on it
//! (`sync=` of `--cache2`, `--cache-sync`), between real processes on loopback: ours and
//! real uWSGI 2.0 (from target/peers/uwsgi-venv, set up by scripts/setup-peers.sh;
//! `UWSGI_SKIP_PEERS=1` skips those tests when it is missing).

#![allow(clippy::unwrap_used)]

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::binary::{BIN, Instance};
use uwsgi_protocol::cache_dump::{DumpGeometry, decode_reply};
use uwsgi_protocol::client::{Address, Client};

const PATIENCE: Duration = Duration::from_secs(10);
const CACHE: &str = "name=c,items=10,blocksize=64,keysize=32";

fn client(addr: &str) -> Client {
    Client::new(addr.parse::<Address>().unwrap())
}

fn get(addr: &str, key: &[u8]) -> Option<Vec<u8>> {
    client(addr).cache_named(b"c").get(key).unwrap()
}

/// Sends a dump request for cache `c` and reads the reply until close.
fn raw_dump(addr: &str) -> Vec<u8> {
    let mut stream = TcpStream::connect(addr).unwrap();
    stream.write_all(b"\x6f\x01\x00\x06c").unwrap();
    let mut reply = Vec::new();
    stream.read_to_end(&mut reply).unwrap();
    reply
}

/// Ours with the test cache and `extra` options, holding `items`.
fn ours_with(extra: &[&str], items: &[(&[u8], &[u8], u64)]) -> Instance {
    let cache = format!("{CACHE}{}", extra.first().copied().unwrap_or(""));
    let mut args = vec!["--socket", "127.0.0.1:0", "--cache2", &cache];
    args.extend_from_slice(&extra[extra.len().min(1)..]);
    let server = Instance::start(&args);
    for (key, value, expires) in items {
        assert!(
            client(&server.addr)
                .cache_named(b"c")
                .set(key, value, *expires)
                .unwrap()
        );
    }
    server
}

const ITEMS: [(&[u8], &[u8], u64); 3] = [
    (b"alpha", b"first value", 0),
    (b"beta", b"2", 3600),
    (b"a-key-of-32-bytes-long-exactly!!", &[0xff; 64], 0),
];

#[test]
fn our_dump_has_uwsgis_layout() {
    let ours = ours_with(&[""], &ITEMS);
    let reply = raw_dump(&ours.addr);
    let geometry = DumpGeometry::new(10, 64, 10, 32).unwrap();
    assert_eq!(reply.len(), 4 + 26 + geometry.image_len());
    assert_eq!(&reply[..4], b"\x6f\x1a\x00\x07");
    let (image, used) = decode_reply(&reply, geometry, 128).unwrap();
    assert_eq!(used, reply.len());
    let mut items: Vec<_> = image.items().map(|i| (i.key, i.value)).collect();
    items.sort();
    let mut want: Vec<_> = ITEMS.iter().map(|(k, v, _)| (*k, *v)).collect();
    want.sort();
    assert_eq!(items, want);
    let beta = image.items().find(|i| i.key == b"beta").unwrap();
    assert!(beta.expires > 1_700_000_000);
    // An unknown cache name: closed without a reply, as uWSGI.
    let mut stream = TcpStream::connect(&ours.addr).unwrap();
    stream.write_all(b"\x6f\x01\x00\x06x").unwrap();
    let mut nothing = Vec::new();
    stream.read_to_end(&mut nothing).unwrap();
    assert!(nothing.is_empty());
}

#[test]
fn ours_syncs_from_ours() {
    let origin = ours_with(&[""], &ITEMS);
    let sync = format!(",sync={}", origin.addr);
    let copy = ours_with(&[&sync], &[]);
    for (key, value, _) in ITEMS {
        assert_eq!(get(&copy.addr, key).as_deref(), Some(value));
    }
    assert!(
        copy.log()
            .iter()
            .any(|l| l.contains("[cache-sync] restored 3 items")),
        "{:?}",
        copy.log()
    );
    // The legacy option does the same for the --cache cache.
    let legacy_origin = Instance::start(&["--socket", "127.0.0.1:0", "--cache", "5"]);
    assert!(
        client(&legacy_origin.addr)
            .cache()
            .set(b"k", b"v", 0)
            .unwrap()
    );
    let legacy = Instance::start(&[
        "--socket",
        "127.0.0.1:0",
        "--cache",
        "5",
        "--cache-sync",
        &legacy_origin.addr,
    ]);
    assert_eq!(
        client(&legacy.addr).cache().get(b"k").unwrap().as_deref(),
        Some(&b"v"[..])
    );
}

/// Runs ours to completion (it must fail to start) and returns its stderr.
fn fails_to_start(args: &[&str]) -> String {
    let mut child = Command::new(BIN)
        .args(args)
        .env_remove("UWSGI_RS_FDS")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let started = Instant::now();
    while child.try_wait().unwrap().is_none() {
        if started.elapsed() > PATIENCE {
            let _ = child.kill();
            let _ = child.wait();
            panic!("{args:?} started");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let status = child.wait().unwrap();
    assert!(!status.success(), "{args:?} exited successfully");
    let mut stderr = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut stderr)
        .unwrap();
    stderr
}

#[test]
fn a_failed_or_mismatched_sync_stops_the_start_as_in_uwsgi() {
    // Nobody listens there.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let cache = format!("{CACHE},sync=127.0.0.1:{port}");
    let stderr = fails_to_start(&["--socket", "127.0.0.1:0", "--cache2", &cache]);
    assert!(stderr.contains("unable to connect"), "{stderr}");
    // A node whose cache has another number of items.
    let origin = Instance::start(&[
        "--socket",
        "127.0.0.1:0",
        "--cache2",
        "name=c,items=11,blocksize=64,keysize=32",
    ]);
    let cache = format!("{CACHE},sync={}", origin.addr);
    let stderr = fails_to_start(&["--socket", "127.0.0.1:0", "--cache2", &cache]);
    assert!(
        stderr.contains("cache dump has items 11, this cache has 10"),
        "{stderr}"
    );
    // Two nodes: the first fails, the second is used.
    let origin = ours_with(&[""], &ITEMS[..1]);
    let sync = format!(",sync=127.0.0.1:{port};{}", origin.addr);
    let copy = ours_with(&[&sync], &[]);
    assert_eq!(
        get(&copy.addr, b"alpha").as_deref(),
        Some(&b"first value"[..])
    );
    assert!(
        copy.log()
            .iter()
            .any(|l| l.contains("trying with the next sync node"))
    );
}

#[test]
fn a_dump_is_a_management_packet() {
    // Loopback is not in the allow-list: the dump is refused, closed without a reply.
    let ours = ours_with(&["", "--management-allow-from", "10.0.0.0/8"], &[]);
    assert!(raw_dump(&ours.addr).is_empty());
    ours.wait_for("the refusal", PATIENCE, |lines| {
        lines
            .iter()
            .any(|l| l.contains("refused management packet (modifier1 111)"))
    });
    // Per socket: a socket limited to modifier 0 closes it too, the other answers.
    let ours = Instance::start(&[
        "--socket",
        "127.0.0.1:0",
        "--socket",
        "127.0.0.1:0",
        "--cache2",
        CACHE,
    ]);
    let addrs = ours.addrs("listening on ");
    drop(ours);
    let (public, admin) = (addrs[0].clone(), addrs[1].clone());
    let rule = format!("{public}=0");
    let ours = Instance::start(&[
        "--socket",
        &public,
        "--socket",
        &admin,
        "--cache2",
        CACHE,
        "--socket-allowed-modifiers",
        &rule,
    ]);
    assert!(raw_dump(&public).is_empty());
    assert!(!raw_dump(&admin).is_empty());
    drop(ours);
}

// Interop with real uWSGI 2.0.

fn uwsgi_bin() -> Option<PathBuf> {
    let bin = Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/peers/uwsgi-venv/bin/uwsgi");
    if bin.exists() {
        return Some(bin);
    }
    assert!(
        std::env::var_os("UWSGI_SKIP_PEERS").is_some(),
        "{} is missing: run scripts/setup-peers.sh (or set UWSGI_SKIP_PEERS=1)",
        bin.display()
    );
    None
}

/// A real uWSGI, killed (with its workers) on drop.
struct Uwsgi {
    child: Child,
    addr: String,
}

impl Drop for Uwsgi {
    fn drop(&mut self) {
        for pid in common::binary::children_of(self.child.id()) {
            common::binary::signal_pid(pid, "KILL");
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn uwsgi(bin: &Path, cache: &str) -> Uwsgi {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let addr = format!("127.0.0.1:{port}");
    let child = Command::new(bin)
        .args(["--master", "--processes", "1", "--socket", &addr])
        .args(["--cache2", cache])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let theirs = Uwsgi { child, addr };
    let started = Instant::now();
    while client(&theirs.addr).ping().is_err() {
        assert!(started.elapsed() < PATIENCE, "uWSGI did not start");
        std::thread::sleep(Duration::from_millis(50));
    }
    theirs
}

#[test]
fn uwsgi_syncs_from_ours() {
    let Some(bin) = uwsgi_bin() else { return };
    let ours = ours_with(&[""], &ITEMS);
    let theirs = uwsgi(&bin, &format!("{CACHE},sync={}", ours.addr));
    for (key, value, _) in ITEMS {
        assert_eq!(get(&theirs.addr, key).as_deref(), Some(value), "{key:?}");
    }
    // uWSGI's chains were rebuilt from ours: a new key and a delete work there.
    assert!(
        client(&theirs.addr)
            .cache_named(b"c")
            .set(b"new", b"n", 0)
            .unwrap()
    );
    assert!(
        client(&theirs.addr)
            .cache_named(b"c")
            .del(b"alpha")
            .unwrap()
    );
    assert_eq!(get(&theirs.addr, b"alpha"), None);
    assert_eq!(get(&theirs.addr, b"beta").as_deref(), Some(&b"2"[..]));
}

#[test]
fn uwsgi_syncs_from_ours_in_bitmap_mode() {
    let Some(bin) = uwsgi_bin() else { return };
    let cache = "name=c,items=4,blocks=8,blocksize=8,keysize=8,bitmap=1";
    let ours = Instance::start(&["--socket", "127.0.0.1:0", "--cache2", cache]);
    let c = client(&ours.addr);
    assert!(
        c.cache_named(b"c")
            .set(b"long", b"0123456789abcdef0", 0)
            .unwrap()
    );
    assert!(c.cache_named(b"c").set(b"short", b"x", 0).unwrap());
    let theirs = uwsgi(&bin, &format!("{cache},sync={}", ours.addr));
    assert_eq!(
        get(&theirs.addr, b"long").as_deref(),
        Some(&b"0123456789abcdef0"[..])
    );
    assert_eq!(get(&theirs.addr, b"short").as_deref(), Some(&b"x"[..]));
}

#[test]
fn ours_syncs_from_uwsgi() {
    let Some(bin) = uwsgi_bin() else { return };
    let theirs = uwsgi(&bin, CACHE);
    for (key, value, expires) in ITEMS {
        assert!(
            client(&theirs.addr)
                .cache_named(b"c")
                .set(key, value, expires)
                .unwrap()
        );
    }
    let sync = format!(",sync={}", theirs.addr);
    let ours = ours_with(&[&sync], &[]);
    for (key, value, _) in ITEMS {
        assert_eq!(get(&ours.addr, key).as_deref(), Some(value), "{key:?}");
    }
    // A uWSGI with another blocksize: refused, as uWSGI refuses it.
    let other = uwsgi(&bin, "name=c,items=10,blocksize=128,keysize=32");
    let cache = format!("{CACHE},sync={}", other.addr);
    let stderr = fails_to_start(&["--socket", "127.0.0.1:0", "--cache2", &cache]);
    assert!(
        stderr.contains("cache dump has blocksize 128, this cache has 64"),
        "{stderr}"
    );
}
