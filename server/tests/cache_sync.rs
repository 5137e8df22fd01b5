//! Cache replication over UDP (`--cache-udp-node` / `--cache-udp-server`, `nodes=` /
//! `udp=` of `--cache2`) between real processes on loopback: writes made on one server
//! over the network (modifier1 111, the magic interface) show up on the other.
//!
//! Every server is a `uwsgi-server` binary (or, for the interop tests, a real uWSGI 2.0
//! from target/peers/uwsgi-venv, set up by scripts/setup-peers.sh; `UWSGI_SKIP_PEERS=1`
//! skips them when it is missing). Each process is killed and reaped when its guard is
//! dropped, whatever the outcome.

#![allow(clippy::unwrap_used)]

use std::io::{BufRead, BufReader};
use std::net::{TcpStream, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use uwsgi_protocol::client::{Address, Client};

const BIN: &str = env!("CARGO_BIN_EXE_uwsgi-server");
/// How long a replicated write may take to show up.
const PATIENCE: Duration = Duration::from_secs(10);

/// A running process whose stderr is collected; killed (with its children) on drop.
struct Process {
    child: Child,
    lines: Arc<Mutex<Vec<String>>>,
}

impl Process {
    fn spawn(mut command: Command) -> Process {
        let mut child = command
            .env_remove("UWSGI_RS_FDS")
            .env_remove("UWSGI_RELOADS")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let stderr = child.stderr.take().unwrap();
        let lines = Arc::new(Mutex::new(Vec::new()));
        let sink = Arc::clone(&lines);
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                sink.lock().unwrap().push(line);
            }
        });
        Process { child, lines }
    }

    /// One of ours, waiting until `listening` sockets are announced.
    fn ours(args: &[&str], listening: usize) -> Process {
        let mut command = Command::new(BIN);
        command.args(args);
        let process = Process::spawn(command);
        process.wait_for(&format!("{listening} listening lines"), |lines| {
            lines.iter().filter(|l| l.contains("listening on")).count() >= listening
        });
        process
    }

    fn log(&self) -> Vec<String> {
        self.lines.lock().unwrap().clone()
    }

    fn wait_for(&self, what: &str, done: impl Fn(&[String]) -> bool) {
        let started = Instant::now();
        loop {
            if done(&self.lines.lock().unwrap()) {
                return;
            }
            assert!(
                started.elapsed() < PATIENCE,
                "timed out waiting for {what}; log:\n{}",
                self.log().join("\n")
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// The address after `prefix` on the first line that has it.
    fn address_after(&self, prefix: &str) -> String {
        self.log()
            .iter()
            .find_map(|l| l.split(prefix).nth(1).map(|a| a.trim().to_owned()))
            .unwrap_or_else(|| panic!("no {prefix:?} line; log:\n{}", self.log().join("\n")))
    }

    /// The `--socket` address (the first listening line).
    fn socket(&self) -> String {
        self.address_after("listening on ")
    }

    /// The cache sync address (`udp server for cache "…" running on ADDR`).
    fn sync_addr(&self) -> String {
        self.address_after(" running on ")
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        for pid in children_of(self.child.id()) {
            let _ = Command::new("kill")
                .args(["-KILL", &pid.to_string()])
                .stderr(Stdio::null())
                .status();
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The pids whose parent is `parent`, from /proc.
fn children_of(parent: u32) -> Vec<u32> {
    let mut found = Vec::new();
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return found;
    };
    for entry in entries.flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
            continue;
        };
        let ppid = stat
            .rsplit_once(')')
            .and_then(|(_, rest)| rest.split_whitespace().nth(1))
            .and_then(|p| p.parse::<u32>().ok());
        if ppid == Some(parent) {
            found.push(pid);
        }
    }
    found
}

fn client(addr: &str) -> Client {
    Client::new(addr.parse::<Address>().unwrap())
}

/// Waits until `key` reads `expected` (`None`: is gone) on the server at `addr`.
fn eventually(addr: &str, key: &[u8], expected: Option<&[u8]>) {
    let client = client(addr);
    let started = Instant::now();
    loop {
        let value = client.cache().get(key).unwrap();
        if value.as_deref() == expected {
            return;
        }
        assert!(
            started.elapsed() < PATIENCE,
            "{}: {:?} is {:?}, expected {:?}",
            addr,
            String::from_utf8_lossy(key),
            value.as_deref().map(String::from_utf8_lossy),
            expected.map(String::from_utf8_lossy)
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A node: ours with `--cache` and `--cache-udp-server` on an ephemeral port.
fn ours_node(extra: &[&str]) -> Process {
    let mut args = vec![
        "--socket",
        "127.0.0.1:0",
        "--cache",
        "100",
        "--cache-blocksize",
        "4096",
        "--cache-udp-server",
        "127.0.0.1:0",
    ];
    args.extend_from_slice(extra);
    // The stream socket, then the sync socket.
    Process::ours(&args, 2)
}

/// An origin replicating its `--cache` cache to `node`.
fn ours_origin(node: &str, extra: &[&str]) -> Process {
    let mut args = vec![
        "--socket",
        "127.0.0.1:0",
        "--cache",
        "100",
        "--cache-blocksize",
        "4096",
        "--cache-udp-node",
        node,
    ];
    args.extend_from_slice(extra);
    Process::ours(&args, 1)
}

#[test]
fn writes_on_the_origin_show_up_on_the_node() {
    let b = ours_node(&[]);
    let a = ours_origin(&b.sync_addr(), &[]);
    let (a_addr, b_addr) = (a.socket(), b.socket());
    let origin = client(&a_addr);
    assert!(a.log().iter().any(|l| l.contains("added udp node")));

    // set
    assert!(origin.cache().set(b"colour", b"blue", 0).unwrap());
    eventually(&b_addr, b"colour", Some(b"blue"));
    // update
    assert!(origin.cache().update(b"colour", b"green", 0).unwrap());
    eventually(&b_addr, b"colour", Some(b"green"));
    // a refused write (the key exists) is not replicated
    assert!(!origin.cache().set(b"colour", b"red", 0).unwrap());
    // delete (uWSGI's own nodes drop replicated deletes; ours apply them)
    assert!(origin.cache().update(b"other", b"x", 0).unwrap());
    eventually(&b_addr, b"other", Some(b"x"));
    assert!(origin.cache().del(b"colour").unwrap());
    eventually(&b_addr, b"colour", None);
    assert_eq!(client(&a_addr).cache().get(b"colour").unwrap(), None);
    // Writes on the node stay there: it has no nodes.
    assert!(client(&b_addr).cache().set(b"local", b"b", 0).unwrap());
    std::thread::sleep(Duration::from_millis(200));
    assert_eq!(origin.cache().get(b"local").unwrap(), None);
    assert_eq!(origin.cache().get(b"colour").unwrap(), None);
    assert_eq!(
        client(&b_addr).cache().get(b"other").unwrap().as_deref(),
        Some(&b"x"[..])
    );
}

#[test]
fn replicated_expiry_is_absolute() {
    let b = ours_node(&[]);
    let a = ours_origin(&b.sync_addr(), &[]);
    let origin = client(&a.socket());
    assert!(origin.cache().set(b"short", b"lived", 1000).unwrap());
    eventually(&b.socket(), b"short", Some(b"lived"));
    // The magic `get` does not return the expiry; the stats server's cache items do
    // not either, so the expiry is checked through a node that sweeps: an item set to
    // expire in 1 second disappears from both.
    assert!(origin.cache().set(b"gone", b"soon", 1).unwrap());
    eventually(&b.socket(), b"gone", Some(b"soon"));
    eventually(&b.socket(), b"gone", None);
    eventually(&a.socket(), b"gone", None);
    // The long-lived one is still there on both.
    assert_eq!(
        client(&b.socket())
            .cache()
            .get(b"short")
            .unwrap()
            .as_deref(),
        Some(&b"lived"[..])
    );
}

#[test]
fn junk_datagrams_are_dropped_and_the_node_keeps_serving() {
    let b = ours_node(&[]);
    let sync = b.sync_addr();
    let sender = UdpSocket::bind("127.0.0.1:0").unwrap();
    let junk: [&[u8]; 6] = [
        b"",
        b"\x6f",
        b"hello world",
        // A cache get, not a sync command.
        b"\x6f\x01\x00\x00k",
        // A set whose value length runs past the datagram.
        b"\x6f\x09\x00\x0a\x01\x00k\x09\x00v\x01\x000",
        // A set whose expiry is not a number.
        b"\x6f\x0a\x00\x0a\x01\x00k\x02\x00v1\x01\x00x",
    ];
    for datagram in junk {
        sender.send_to(datagram, &sync).unwrap();
    }
    // A big datagram of zeros.
    sender.send_to(&[0u8; 60_000], &sync).unwrap();
    // Then a good one: applied, so everything before it was read and dropped.
    let mut good = vec![0x6f, 0, 0, 10, 1, 0, b'k', 2, 0, b'o', b'k', 1, 0, b'0'];
    good[1] = u8::try_from(good.len() - 4).unwrap();
    sender.send_to(&good, &sync).unwrap();
    eventually(&b.socket(), b"k", Some(b"ok"));
    assert!(
        b.log().iter().any(|l| l.contains("not applied")),
        "{:?}",
        b.log()
    );
    // Still serving the network cache and pings.
    let node = client(&b.socket());
    assert!(node.cache().set(b"after", b"junk", 0).unwrap());
    assert_eq!(
        node.cache().get(b"after").unwrap().as_deref(),
        Some(&b"junk"[..])
    );
    assert!(node.ping().is_ok());
    assert!(b.log().iter().all(|l| !l.contains("panicked")));
}

#[test]
fn peers_outside_the_allow_list_are_refused() {
    // Only 10.0.0.0/8 may replicate to this node: loopback is refused.
    let b = ours_node(&["--management-allow-from", "10.0.0.0/8"]);
    let a = ours_origin(&b.sync_addr(), &[]);
    let origin = client(&a.socket());
    assert!(origin.cache().set(b"denied", b"x", 0).unwrap());
    b.wait_for("the refusal", |lines| {
        lines
            .iter()
            .any(|l| l.contains("refused cache sync datagram"))
    });
    // (The node's own clients are refused writes too: reads still work.)
    assert_eq!(client(&b.socket()).cache().get(b"denied").unwrap(), None);
}

/// Opens a connection and sends nothing: the worker that accepts it is busy (one
/// thread) until it is closed or the socket timeout passes.
fn stall(addr: &str) -> TcpStream {
    let stream = TcpStream::connect(addr).unwrap();
    std::thread::sleep(Duration::from_millis(300));
    stream
}

#[test]
fn every_worker_of_a_master_replicates() {
    let b = ours_node(&[]);
    let a = ours_origin(
        &b.sync_addr(),
        &[
            "--master",
            "--processes",
            "2",
            "--socket-timeout",
            "30",
            "--stats",
            "127.0.0.1:0",
        ],
    );
    let (a_addr, b_addr) = (a.socket(), b.socket());
    // Wait for a worker to answer.
    let started = Instant::now();
    while client(&a_addr).ping().is_err() {
        assert!(started.elapsed() < PATIENCE, "no worker answers");
        std::thread::sleep(Duration::from_millis(50));
    }
    // Worker X holds `first`, so worker Y serves the first write; Y then holds
    // `second`, and X, freed, serves the second write.
    let first = stall(&a_addr);
    assert!(client(&a_addr).cache().set(b"one", b"1", 0).unwrap());
    let second = stall(&a_addr);
    drop(first);
    assert!(client(&a_addr).cache().set(b"two", b"2", 0).unwrap());
    drop(second);
    eventually(&b_addr, b"one", Some(b"1"));
    eventually(&b_addr, b"two", Some(b"2"));
    // And many more, from whichever worker takes them.
    for i in 0..40 {
        let key = format!("key{i}");
        assert!(
            client(&a_addr)
                .cache()
                .update(key.as_bytes(), key.as_bytes(), 0)
                .unwrap()
        );
    }
    for i in 0..40 {
        let key = format!("key{i}");
        eventually(&b_addr, key.as_bytes(), Some(key.as_bytes()));
    }
    // The master's stats add up the sends of both workers (shared counters): 42 writes
    // to one node.
    a.wait_for("the stats line", |lines| {
        lines.iter().any(|l| l.contains("stats server on"))
    });
    let mut stream = TcpStream::connect(a.address_after("stats server on ")).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let mut text = String::new();
    std::io::Read::read_to_string(&mut stream, &mut text).unwrap();
    let doc: serde_json::Value = serde_json::from_str(&text).unwrap();
    let cache = &doc["caches"][0];
    assert_eq!(cache["sync_sent"], 42, "{cache}");
    assert_eq!(cache["sync_failed"], 0, "{cache}");
    assert_eq!(cache["nodes"][0], b.sync_addr().as_str(), "{cache}");
    let requests: Vec<u64> = doc["workers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|w| w["requests"].as_u64().unwrap())
        .collect();
    assert_eq!(requests.len(), 2);
    assert!(requests.iter().all(|&r| r > 0), "{requests:?}");
}

#[test]
fn cache2_nodes_and_udp_keys_replicate_a_named_cache() {
    let b = Process::ours(
        &[
            "--socket",
            "127.0.0.1:0",
            "--cache2",
            "name=first,items=10,blocksize=64",
            "--cache2",
            "name=named,items=10,blocksize=64,udp=127.0.0.1:0",
        ],
        2,
    );
    let sync = b.sync_addr();
    assert!(
        b.log()
            .iter()
            .any(|l| l.contains("udp server for cache \"named\"")),
        "{:?}",
        b.log()
    );
    let node_option = format!("name=named,items=10,blocksize=64,nodes={sync}");
    let a = Process::ours(
        &[
            "--socket",
            "127.0.0.1:0",
            "--cache2",
            "name=first,items=10,blocksize=64",
            "--cache2",
            &node_option,
        ],
        1,
    );
    let origin = client(&a.socket());
    assert!(origin.cache_named(b"named").set(b"k", b"v", 0).unwrap());
    let node = client(&b.socket());
    let started = Instant::now();
    while node.cache_named(b"named").get(b"k").unwrap().is_none() {
        assert!(started.elapsed() < PATIENCE, "not replicated");
        std::thread::sleep(Duration::from_millis(20));
    }
    // Into the named cache only, and the origin's other cache does not replicate.
    assert!(origin.cache().set(b"unsynced", b"x", 0).unwrap());
    std::thread::sleep(Duration::from_millis(200));
    assert_eq!(node.cache().get(b"k").unwrap(), None);
    assert_eq!(node.cache().get(b"unsynced").unwrap(), None);
}

#[test]
fn options_without_their_cache_or_with_bad_addresses_are_refused() {
    for (args, needle) in [
        (
            &["--cache-udp-node", "127.0.0.1:9"][..],
            "belong to the --cache cache",
        ),
        (
            &["--cache", "10", "--cache-udp-node", "nowhere"][..],
            "HOST:PORT",
        ),
        (
            &["--cache", "10", "--cache-udp-server", "not an address"][..],
            "cache-udp-server",
        ),
        (
            &["--cache2", "name=x,items=10,nodes=nowhere"][..],
            "invalid cache udp node",
        ),
        (
            &["--cache2", "name=x,items=10,udp=nowhere"][..],
            "udp address nowhere",
        ),
    ] {
        let out = Command::new(BIN)
            .args(["--socket", "127.0.0.1:0"])
            .args(args)
            .output()
            .unwrap();
        assert!(!out.status.success(), "{args:?} started");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains(needle), "{args:?}: {stderr}");
    }
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

fn free_port() -> u16 {
    let tcp = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = tcp.local_addr().unwrap().port();
    // The same number must be free for UDP too (the sync address).
    drop(UdpSocket::bind(("127.0.0.1", port)).unwrap());
    port
}

/// A real uWSGI with a `--cache` cache and `extra` options; its socket address.
fn uwsgi(bin: &Path, extra: &[&str]) -> (Process, String) {
    let socket = format!("127.0.0.1:{}", free_port());
    let mut command = Command::new(bin);
    command
        .args(["--master", "--processes", "1", "--socket", &socket])
        .args(["--cache", "100", "--cache-blocksize", "4096"])
        .args(extra);
    let process = Process::spawn(command);
    let started = Instant::now();
    while client(&socket).ping().is_err() {
        assert!(
            started.elapsed() < PATIENCE,
            "uWSGI did not start; log:\n{}",
            process.log().join("\n")
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    (process, socket)
}

#[test]
fn uwsgi_receives_what_we_replicate() {
    let Some(bin) = uwsgi_bin() else { return };
    let sync = format!("127.0.0.1:{}", free_port());
    let (theirs, their_socket) = uwsgi(&bin, &["--cache-udp-server", &sync]);
    theirs.wait_for("uWSGI's udp server", |lines| {
        lines.iter().any(|l| l.contains("udp server for cache"))
    });
    let a = ours_origin(&sync, &[]);
    let origin = client(&a.socket());
    assert!(origin.cache().set(b"from-rust", b"hello", 0).unwrap());
    eventually(&their_socket, b"from-rust", Some(b"hello"));
    assert!(origin.cache().update(b"from-rust", b"again", 300).unwrap());
    eventually(&their_socket, b"from-rust", Some(b"again"));
    // uWSGI 2.0 drops every replicated delete (its length check): the key stays there.
    assert!(origin.cache().del(b"from-rust").unwrap());
    assert!(origin.cache().set(b"marker", b"m", 0).unwrap());
    eventually(&their_socket, b"marker", Some(b"m"));
    assert_eq!(
        client(&their_socket)
            .cache()
            .get(b"from-rust")
            .unwrap()
            .as_deref(),
        Some(&b"again"[..])
    );
}

#[test]
fn we_receive_what_uwsgi_replicates() {
    let Some(bin) = uwsgi_bin() else { return };
    let b = ours_node(&[]);
    let (_theirs, their_socket) = uwsgi(&bin, &["--cache-udp-node", &b.sync_addr()]);
    let origin = client(&their_socket);
    assert!(origin.cache().set(b"from-c", b"hello", 0).unwrap());
    eventually(&b.socket(), b"from-c", Some(b"hello"));
    assert!(origin.cache().update(b"from-c", b"again", 300).unwrap());
    eventually(&b.socket(), b"from-c", Some(b"again"));
    // uWSGI sends deletes well-formed; we apply them.
    assert!(origin.cache().del(b"from-c").unwrap());
    eventually(&b.socket(), b"from-c", None);
}

/// `uwsgi.cache_set` from a Python application (the `uwsgi` module writes through the
/// same caches) replicates like a network write.
#[cfg(feature = "python")]
#[test]
fn python_cache_writes_replicate() {
    use uwsgi_protocol::VarsBuilder;

    let b = ours_node(&[]);
    let app = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/apps/main.py");
    let nodes = format!(
        "name=default,items=100,blocksize=4096,nodes={}",
        b.sync_addr()
    );
    let state = tempfile::tempdir().unwrap();
    let mut command = Command::new(BIN);
    command
        .args(["--socket", "127.0.0.1:0", "--wsgi-file"])
        .arg(&app)
        .args(["--cache2", &nodes])
        .env("TEST_STATE_DIR", state.path());
    let a = Process::spawn(command);
    a.wait_for("the listening line", |lines| {
        lines.iter().any(|l| l.contains("listening on"))
    });
    let mut vars = VarsBuilder::new();
    for (key, value) in [
        ("REQUEST_METHOD", "GET"),
        ("REQUEST_URI", "/cache_set?key=snake&value=python"),
        ("PATH_INFO", "/cache_set"),
        ("QUERY_STRING", "key=snake&value=python"),
        ("SERVER_PROTOCOL", "HTTP/1.1"),
        ("SERVER_NAME", "test.local"),
        ("SERVER_PORT", "80"),
        ("REMOTE_ADDR", "127.0.0.1"),
    ] {
        vars.push(key, value).unwrap();
    }
    let response = client(&a.socket()).request(vars.as_vars(), b"").unwrap();
    assert!(
        response.starts_with(b"HTTP/1.1 200"),
        "{}",
        String::from_utf8_lossy(&response)
    );
    eventually(&b.socket(), b"snake", Some(b"python"));
}

/// A master's reload passes the sync socket on: replication still arrives after it.
#[test]
fn the_sync_socket_survives_a_reload() {
    let b = ours_node(&["--master", "--processes", "1"]);
    let sync = b.sync_addr();
    let a = ours_origin(&sync, &[]);
    let origin = client(&a.socket());
    assert!(origin.cache().set(b"before", b"1", 0).unwrap());
    eventually(&b.socket(), b"before", Some(b"1"));
    let status = Command::new("kill")
        .args(["-HUP", &b.child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    b.wait_for("the reload", |lines| {
        lines.iter().filter(|l| l.contains(" running on ")).count() >= 2
    });
    // The same address again, and writes still arrive (retried: the new image may
    // still be starting when the first datagram is sent).
    assert_eq!(
        b.log()
            .iter()
            .filter_map(|l| l.split(" running on ").nth(1))
            .map(str::trim)
            .collect::<std::collections::BTreeSet<_>>()
            .len(),
        1
    );
    let started = Instant::now();
    let node = client(&b.socket());
    let mut attempt = 0u32;
    loop {
        attempt += 1;
        let key = format!("after{attempt}");
        assert!(origin.cache().set(key.as_bytes(), b"2", 0).unwrap());
        std::thread::sleep(Duration::from_millis(100));
        if node.cache().get(key.as_bytes()).ok().flatten().as_deref() == Some(&b"2"[..]) {
            break;
        }
        assert!(
            started.elapsed() < PATIENCE,
            "nothing replicated after the reload; log:\n{}",
            b.log().join("\n")
        );
    }
}

fn stats_of(process: &Process) -> serde_json::Value {
    process.wait_for("the stats line", |lines| {
        lines.iter().any(|l| l.contains("stats server on"))
    });
    let mut stream = TcpStream::connect(process.address_after("stats server on ")).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let mut text = String::new();
    std::io::Read::read_to_string(&mut stream, &mut text).unwrap();
    serde_json::from_str(&text).unwrap()
}

/// Two servers that are each other's node: a write goes across once and stops there
/// (received in the master's loop).
#[test]
fn two_servers_naming_each_other_do_not_loop() {
    let (a_sync, b_sync) = (
        format!("127.0.0.1:{}", free_port()),
        format!("127.0.0.1:{}", free_port()),
    );
    let peer = |own: &str, other: &str| {
        Process::ours(
            &[
                "--socket",
                "127.0.0.1:0",
                "--cache",
                "100",
                "--cache-blocksize",
                "4096",
                "--cache-udp-server",
                own,
                "--cache-udp-node",
                other,
                "--stats",
                "127.0.0.1:0",
                // (The binary announces the stats address with a master.)
                "--master",
            ],
            2,
        )
    };
    let a = peer(&a_sync, &b_sync);
    let b = peer(&b_sync, &a_sync);
    assert!(client(&a.socket()).cache().set(b"from-a", b"1", 0).unwrap());
    eventually(&b.socket(), b"from-a", Some(b"1"));
    assert!(client(&b.socket()).cache().set(b"from-b", b"2", 0).unwrap());
    eventually(&a.socket(), b"from-b", Some(b"2"));
    assert!(client(&a.socket()).cache().del(b"from-b").unwrap());
    eventually(&b.socket(), b"from-b", None);
    // Give an echo time to arrive, then count: each server sent only its own writes.
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(stats_of(&a)["caches"][0]["sync_sent"], 2);
    assert_eq!(stats_of(&b)["caches"][0]["sync_sent"], 1);
    assert_eq!(
        client(&a.socket())
            .cache()
            .get(b"from-a")
            .unwrap()
            .as_deref(),
        Some(&b"1"[..])
    );
}
