//! Cache, RPC, signals and the spooler end to end: raw request bytes from the spec's
//! transcripts in, reply bytes compared.

#![allow(clippy::unwrap_used)]

mod common;

use common::{bind, exchange, framed, start};

use std::io::Read;
use std::net::TcpStream;
use std::sync::Arc;
use std::time::{Duration, Instant};

use uwsgi_protocol::packet::{CacheMagic, MagicCommand};
use uwsgi_protocol::{ArrayBuilder, Modifier1, VarsBuilder};

fn rpc(addr: &str, modifier2: u8, items: &[&[u8]]) -> Vec<u8> {
    let mut array = ArrayBuilder::new();
    for item in items {
        array.push(item).unwrap();
    }
    exchange(
        addr,
        &framed(Modifier1::Rpc, modifier2, array.as_array().as_bytes()),
    )
}

fn magic(
    addr: &str,
    command: MagicCommand,
    key: &[u8],
    value: Option<&[u8]>,
    cache: Option<&[u8]>,
) -> Vec<u8> {
    let vars = CacheMagic::build(command, key, cache, value.map(|v| v.len() as u64), None).unwrap();
    let mut bytes = framed(Modifier1::Cache, 17, vars.as_vars().as_bytes());
    bytes.extend_from_slice(value.unwrap_or_default());
    exchange(addr, &bytes)
}

#[test]
fn rpc_framed_raw_big_http_and_unknown() {
    let server = bind(&["--socket", "127.0.0.1:0"]);
    let repeat = Arc::new(|args: &[&[u8]]| {
        let times: usize = std::str::from_utf8(args[0]).unwrap().parse().unwrap();
        Ok(vec![b'x'; times])
    });
    server
        .shared()
        .state
        .rpc()
        .register(b"repeat", 1, repeat)
        .unwrap();
    let server = server.start();
    let addr = &server.local_addrs()[0];
    // Framed: the request header echoed with the size replaced (spec §3.4).
    assert_eq!(
        rpc(addr, 0, &[b"hello", b"a", b"b"]),
        b"\xad\x0c\x00\x00Hello, a, b!"
    );
    // Raw (modifier2 1): the result only.
    assert_eq!(rpc(addr, 1, &[b"upper", b"abc"]), b"ABC");
    // Unknown function: closed without reply, as uWSGI 2.0.
    assert_eq!(rpc(addr, 0, &[b"nope"]), b"");
    // Empty block: closed.
    assert_eq!(exchange(addr, &[173, 0, 0, 0]), b"");
    // Big result: modifier2 5 with CONTENT_LENGTH, then the data.
    let reply = rpc(addr, 0, &[b"repeat", b"70000"]);
    assert_eq!(&reply[..4], b"\xad\x17\x00\x05");
    assert_eq!(&reply[4..27], b"\x0e\x00CONTENT_LENGTH\x05\x0070000");
    assert_eq!(reply.len(), 27 + 70_000);
    // HTTP form (modifier2 2): PATH_INFO=/function/args.
    let vars = VarsBuilder::from_pairs([("PATH_INFO", "/upper/shout")]).unwrap();
    let reply = exchange(addr, &framed(Modifier1::Rpc, 2, vars.as_vars().as_bytes()));
    assert_eq!(
        reply,
        b"HTTP/1.0 200 OK\r\nContent-Length: 5\r\nContent-Type: application/binary\r\n\r\nSHOUT"
    );
    let vars = VarsBuilder::from_pairs([("PATH_INFO", "/nope")]).unwrap();
    let reply = exchange(addr, &framed(Modifier1::Rpc, 2, vars.as_vars().as_bytes()));
    assert_eq!(reply, b"HTTP/1.0 404 Not Found\r\n\r\n");
}

#[test]
fn cache_classic_and_magic_interfaces() {
    let server = start(&[
        "--socket",
        "127.0.0.1:0",
        "--cache2",
        "name=main,items=10,blocksize=128",
        "--cache2",
        "name=other,items=4",
    ]);
    let addr = &server.local_addrs()[0];
    // m2 1 set (array [key, value]): no reply; m2 0 get: framed value (spec §6.1).
    let set = ArrayBuilder::new()
        .with("foo")
        .unwrap()
        .with("bar")
        .unwrap();
    assert_eq!(
        exchange(
            addr,
            &framed(Modifier1::Cache, 1, set.as_array().as_bytes())
        ),
        b""
    );
    assert_eq!(
        exchange(addr, &framed(Modifier1::Cache, 0, b"foo")),
        b"\x6f\x03\x00\x00bar"
    );
    assert_eq!(
        exchange(addr, &framed(Modifier1::Cache, 0, b"missing")),
        b""
    );
    // m2 5 get+stream.
    assert_eq!(
        exchange(addr, &framed(Modifier1::Cache, 5, b"foo")),
        b"\x6f\x00\x00\x01bar"
    );
    assert_eq!(
        exchange(addr, &framed(Modifier1::Cache, 5, b"nope")),
        b"\x6f\x00\x00\x00"
    );
    // Dictionary lookups (3/4): raw value, or 1.4's 404 page for a missing `get`.
    let vars = VarsBuilder::from_pairs([("get", "foo")]).unwrap();
    assert_eq!(
        exchange(
            addr,
            &framed(Modifier1::Cache, 3, vars.as_vars().as_bytes())
        ),
        b"bar"
    );
    let vars = VarsBuilder::from_pairs([("get", "nope")]).unwrap();
    assert_eq!(
        exchange(
            addr,
            &framed(Modifier1::Cache, 4, vars.as_vars().as_bytes())
        ),
        b"HTTP/1.0 404 Not Found\r\n\r\n<h1>Not Found</h1>"
    );
    // Magic interface (spec §6.2): get of the key set above.
    assert_eq!(
        magic(addr, MagicCommand::Get, b"foo", None, None),
        b"\x6f\x15\x00\x11\x06\x00status\x02\x00ok\x04\x00size\x01\x003bar"
    );
    let ok = b"\x6f\x0c\x00\x11\x06\x00status\x02\x00ok";
    // set on an existing key fails (nothing); update overwrites.
    assert_eq!(
        magic(addr, MagicCommand::Set, b"foo", Some(b"X"), None),
        b""
    );
    assert_eq!(
        magic(addr, MagicCommand::Update, b"foo", Some(b"VAL"), None),
        ok
    );
    assert_eq!(
        exchange(addr, &framed(Modifier1::Cache, 0, b"foo")),
        b"\x6f\x03\x00\x00VAL"
    );
    assert_eq!(magic(addr, MagicCommand::Exists, b"foo", None, None), ok);
    // Named caches are separate.
    assert_eq!(
        magic(addr, MagicCommand::Set, b"k", Some(b"v"), Some(b"other")),
        ok
    );
    assert_eq!(magic(addr, MagicCommand::Exists, b"k", None, None), b"");
    assert_eq!(
        magic(addr, MagicCommand::Exists, b"k", None, Some(b"other")),
        ok
    );
    assert_eq!(
        magic(addr, MagicCommand::Get, b"k", None, Some(b"unknown")),
        b""
    );
    // A value larger than the blocksize is refused before its body is read.
    assert_eq!(
        magic(addr, MagicCommand::Set, b"big", Some(&[b'z'; 200]), None),
        b""
    );
    // del, then clear.
    assert_eq!(magic(addr, MagicCommand::Del, b"foo", None, None), ok);
    assert_eq!(magic(addr, MagicCommand::Del, b"foo", None, None), b"");
    assert_eq!(
        magic(addr, MagicCommand::Clear, b"", None, Some(b"other")),
        ok
    );
    assert_eq!(
        magic(addr, MagicCommand::Exists, b"k", None, Some(b"other")),
        b""
    );
    // m2 2 delete: the whole block is the key.
    let set = ArrayBuilder::new().with("d").unwrap().with("1").unwrap();
    exchange(
        addr,
        &framed(Modifier1::Cache, 1, set.as_array().as_bytes()),
    );
    assert_eq!(exchange(addr, &framed(Modifier1::Cache, 2, b"d")), b"");
    assert_eq!(exchange(addr, &framed(Modifier1::Cache, 0, b"d")), b"");
}

#[test]
fn signals_are_acknowledged_and_delivered() {
    use std::sync::atomic::{AtomicUsize, Ordering};
    let server = bind(&["--socket", "127.0.0.1:0"]);
    let received = Arc::new(AtomicUsize::new(0));
    let counter = Arc::clone(&received);
    let handler = Arc::new(move |signum: u8| {
        assert_eq!(signum, 30);
        counter.fetch_add(1, Ordering::SeqCst);
        Ok(())
    });
    server
        .shared()
        .state
        .signals()
        .register(30, "workers", handler, 1)
        .unwrap();
    let server = server.start();
    let addr = &server.local_addrs()[0];
    // spec §7.1: ff 0000 01 whether registered or not.
    assert_eq!(exchange(addr, &[110, 0, 0, 30]), [255, 0, 0, 1]);
    assert_eq!(exchange(addr, &[110, 0, 0, 31]), [255, 0, 0, 1]);
    let started = Instant::now();
    while received.load(Ordering::SeqCst) == 0 {
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "signal 30 never delivered"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    assert_eq!(received.load(Ordering::SeqCst), 1);
}

#[test]
fn spool_requests_write_jobs_that_the_spooler_runs() {
    let dir = std::env::temp_dir().join(format!("uwsgi-server-spool-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let server = start(&[
        "--socket",
        "127.0.0.1:0",
        "--spooler",
        dir.to_str().unwrap(),
        "--spooler-frequency",
        "1",
    ]);
    let addr = &server.local_addrs()[0];
    let vars = VarsBuilder::from_pairs([("task", "resize"), ("id", "42")]).unwrap();
    assert_eq!(
        exchange(
            addr,
            &framed(Modifier1::Spooler, 0, vars.as_vars().as_bytes())
        ),
        [255, 0, 0, 1]
    );
    // The built-in app's spooler marks jobs done: the file disappears.
    let started = Instant::now();
    loop {
        let left = std::fs::read_dir(&dir)
            .unwrap()
            .filter(|e| {
                e.as_ref()
                    .unwrap()
                    .file_name()
                    .to_string_lossy()
                    .starts_with("uwsgi_spoolfile_on_")
            })
            .count();
        if left == 0 {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "the job was never run"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    std::fs::remove_dir_all(&dir).unwrap();
}

/// The `uwsgi_spoolfile_on_*` files directly in `dir`.
fn spool_files(dir: &std::path::Path) -> usize {
    std::fs::read_dir(dir).map_or(0, |entries| {
        entries
            .filter(|e| {
                e.as_ref()
                    .unwrap()
                    .file_name()
                    .to_string_lossy()
                    .starts_with("uwsgi_spoolfile_on_")
            })
            .count()
    })
}

#[test]
fn remote_priority_jobs_run_with_or_without_spooler_ordered() {
    for extra in [&[][..], &["--spooler-ordered"][..]] {
        let dir = std::env::temp_dir().join(format!(
            "uwsgi-server-spool-priority-{}-{}",
            std::process::id(),
            extra.len()
        ));
        std::fs::create_dir_all(&dir).unwrap();
        let mut args = vec![
            "--socket",
            "127.0.0.1:0",
            "--spooler",
            dir.to_str().unwrap(),
            "--spooler-frequency",
            "1",
        ];
        args.extend_from_slice(extra);
        let server = start(&args);
        let addr = &server.local_addrs()[0];
        // Due two seconds from now, so the file can be seen waiting in <dir>/3/ first.
        let at = (std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs()
            + 2)
        .to_string();
        let vars =
            VarsBuilder::from_pairs([("task", "urgent"), ("priority", "3"), ("at", &at)]).unwrap();
        assert_eq!(
            exchange(
                addr,
                &framed(Modifier1::Spooler, 0, vars.as_vars().as_bytes())
            ),
            [255, 0, 0, 1],
            "{extra:?}"
        );
        let priority_dir = dir.join("3");
        assert_eq!(
            spool_files(&priority_dir),
            1,
            "{extra:?}: queued in <dir>/3"
        );
        assert_eq!(spool_files(&dir), 0, "{extra:?}: not at the top level");
        let started = Instant::now();
        while spool_files(&priority_dir) > 0 {
            assert!(
                started.elapsed() < Duration::from_secs(10),
                "{extra:?}: the priority job was never run"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        drop(server);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}

#[test]
fn state_packets_without_configuration_are_closed_or_refused() {
    let server = start(&["--socket", "127.0.0.1:0"]);
    let addr = &server.local_addrs()[0];
    // No cache: closed without a byte, as uWSGI.
    assert_eq!(exchange(addr, &framed(Modifier1::Cache, 0, b"foo")), b"");
    // No spooler: the spool failure reply (spec §7.5).
    let vars = VarsBuilder::from_pairs([("a", "b")]).unwrap();
    assert_eq!(
        exchange(
            addr,
            &framed(Modifier1::Spooler, 0, vars.as_vars().as_bytes())
        ),
        [0xff, 0, 0, 0]
    );
}

#[test]
fn stats_server_writes_uwsgi_document() {
    let server = start(&[
        "--socket",
        "127.0.0.1:0",
        "--stats",
        "127.0.0.1:0",
        "--processes",
        "2",
        "--cache2",
        "name=main,items=10",
        "--disable-logging",
    ]);
    let addr = server.local_addrs()[0].clone();
    let get = {
        let vars =
            VarsBuilder::from_pairs([("REQUEST_METHOD", "GET"), ("PATH_INFO", "/")]).unwrap();
        framed(Modifier1::Wsgi, 0, vars.as_vars().as_bytes())
    };
    for _ in 0..3 {
        assert!(exchange(&addr, &get).starts_with(b"HTTP/1.0 200 OK"));
    }
    let stats_addr = server.stats_addr().unwrap();
    let mut stream = TcpStream::connect(&stats_addr).unwrap();
    let mut text = String::new();
    stream.read_to_string(&mut text).unwrap();
    let doc: serde_json::Value = serde_json::from_str(&text).unwrap();
    assert_eq!(doc["pid"], std::process::id());
    let workers = doc["workers"].as_array().unwrap();
    assert_eq!(workers.len(), 2);
    let requests: u64 = workers
        .iter()
        .map(|w| w["requests"].as_u64().unwrap())
        .sum();
    assert_eq!(requests, 3);
    let tx: u64 = workers.iter().map(|w| w["tx"].as_u64().unwrap()).sum();
    assert!(tx > 3 * 100, "tx {tx}");
    assert_eq!(doc["sockets"][0]["name"], addr.as_str());
    // The accept queue as the kernel reports it: empty, every connection was taken.
    assert_eq!(doc["sockets"][0]["queue"], 0);
    assert_eq!(doc["listen_queue"], 0);
    assert_eq!(doc["caches"][0]["name"], "main");
    assert_eq!(doc["caches"][0]["max_items"], 10);
    for key in [
        "version",
        "listen_queue",
        "signal_queue",
        "load",
        "cwd",
        "locks",
    ] {
        assert!(doc.get(key).is_some(), "missing {key}");
    }
}
