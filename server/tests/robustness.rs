//! Malformed input while a healthy client keeps working: every bad connection is closed
//! or answered as uWSGI would, the healthy client sees zero failures, and the server
//! never stops. More than 200 cases, all over real loopback sockets.

#![allow(clippy::unwrap_used)]

use std::io::{Read, Write};
use std::net::{Shutdown, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use uwsgi_protocol::packet::Request;
use uwsgi_protocol::{Modifier1, Packet, VarsBuilder};
use uwsgi_server::{HelloApp, Server, ServerConfig};

/// Sends `bytes`, half-closes, and returns what came back before the server closed.
/// `None` if the server neither answered nor closed within 10 s (a hang).
fn send(addr: &str, bytes: &[u8]) -> Option<Vec<u8>> {
    let mut stream = TcpStream::connect(addr).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    // The server may close before reading everything (oversize header): that is fine.
    let _ = stream.write_all(bytes);
    let _ = stream.shutdown(Shutdown::Write);
    let mut reply = Vec::new();
    match stream.read_to_end(&mut reply) {
        Ok(_) => Some(reply),
        Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => Some(reply),
        Err(_) => None,
    }
}

fn request(pairs: &[(&str, &str)]) -> Vec<u8> {
    let mut vars = VarsBuilder::new();
    for (k, v) in pairs {
        vars.push(k, v).unwrap();
    }
    Packet::Request(Request::new(Modifier1::Wsgi, vars.as_vars())).to_vec()
}

/// Deterministic junk (xorshift), so a failure can be replayed.
fn junk(seed: u64, len: usize) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x.to_le_bytes()[3]
        })
        .collect()
}

#[test]
fn malformed_input_never_disturbs_a_healthy_client() {
    let args: Vec<String> = [
        "--socket",
        "127.0.0.1:0",
        "--processes",
        "4",
        "--socket-timeout",
        "1",
        "--limit-post",
        "1048576",
        "--disable-logging",
        "--logto",
        "/dev/null",
    ]
    .iter()
    .map(|s| (*s).to_owned())
    .collect();
    let config = ServerConfig::from_sources(&args, &[]).unwrap();
    let server = Server::bind(config, Arc::new(HelloApp)).unwrap().start();
    let addr = server.local_addrs()[0].clone();

    // The healthy client: pings and GETs in a loop until the bad traffic is over.
    let done = Arc::new(AtomicBool::new(false));
    let healthy_ok = Arc::new(AtomicUsize::new(0));
    let healthy_failed = Arc::new(AtomicUsize::new(0));
    let healthy = {
        let (addr, done, ok, failed) = (
            addr.clone(),
            Arc::clone(&done),
            Arc::clone(&healthy_ok),
            Arc::clone(&healthy_failed),
        );
        std::thread::spawn(move || {
            let get = request(&[("REQUEST_METHOD", "GET"), ("PATH_INFO", "/healthy")]);
            while !done.load(Ordering::Relaxed) {
                let ping = send(&addr, &[100, 0, 0, 0]);
                let page = send(&addr, &get);
                let good = ping.as_deref() == Some(&[100, 0, 0, 1][..])
                    && page.is_some_and(|p| p.starts_with(b"HTTP/1.0 200 OK"));
                if good {
                    ok.fetch_add(1, Ordering::Relaxed)
                } else {
                    failed.fetch_add(1, Ordering::Relaxed)
                };
            }
        })
    };

    let mut cases: Vec<(String, Vec<u8>)> = Vec::new();
    // Truncated headers.
    for len in 1..=3 {
        cases.push((format!("truncated header of {len} byte(s)"), vec![0; len]));
    }
    // Datasize past the end of what is sent.
    for (datasize, sent) in [(10u16, 0usize), (10, 9), (100, 50), (4096, 4095), (300, 1)] {
        let mut bytes = vec![0, 0, 0, 0];
        bytes[1..3].copy_from_slice(&datasize.to_le_bytes());
        bytes.extend(std::iter::repeat_n(b'a', sent));
        cases.push((format!("datasize {datasize} with {sent} bytes"), bytes));
    }
    // Datasize over --buffer-size.
    for datasize in [4097u16, 8192, 65535] {
        let mut bytes = vec![0, 0, 0, 0];
        bytes[1..3].copy_from_slice(&datasize.to_le_bytes());
        cases.push((format!("datasize {datasize} over the buffer size"), bytes));
    }
    // Var lengths past the block, empty keys, trailing bytes.
    for block in [
        &b"\x05\x00ab"[..],
        b"\x02\x00ab\x05\x00xy",
        b"\x00\x00\x01\x00x",
        b"\x01\x00a\x01\x00b\x00",
        b"\x01\x00a\x01",
        b"\xff\xffabc",
        b"\x01\x00a\xff\xff",
    ] {
        let mut bytes = vec![0, 0, 0, 0];
        bytes[1..3].copy_from_slice(&u16::try_from(block.len()).unwrap().to_le_bytes());
        bytes.extend_from_slice(block);
        cases.push((format!("bad vars {block:02x?}"), bytes));
    }
    // Huge or lying CONTENT_LENGTH.
    for length in [
        "99999999999999999999999",
        "1048577",
        "18446744073709551615",
        "100",
    ] {
        cases.push((
            format!("CONTENT_LENGTH {length} with a short body"),
            request(&[("REQUEST_METHOD", "POST"), ("CONTENT_LENGTH", length)]),
        ));
    }
    // Too many vars.
    let many: Vec<(String, String)> = (0..200)
        .map(|i| (format!("K{i}"), "v".to_owned()))
        .collect();
    let many: Vec<(&str, &str)> = many.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    cases.push(("200 vars".to_owned(), request(&many)));
    // Every modifier1 with an empty block and with a junk block.
    for m1 in 0..=255u8 {
        cases.push((format!("modifier1 {m1}, empty"), vec![m1, 0, 0, 0]));
    }
    for m1 in [10u8, 17, 33, 73, 74, 95, 110, 111, 173, 224] {
        for m2 in [0u8, 1, 2, 5, 17, 200] {
            let mut bytes = vec![m1, 8, 0, m2];
            bytes.extend(junk(u64::from(m1) * 256 + u64::from(m2), 8));
            cases.push((format!("modifier1 {m1} modifier2 {m2}, junk block"), bytes));
        }
    }
    // Binary junk of every size.
    for seed in 0..60u64 {
        let len = usize::try_from(seed * 37 % 700).unwrap();
        cases.push((format!("junk seed {seed} ({len} bytes)"), junk(seed, len)));
    }
    assert!(cases.len() >= 200, "{} cases", cases.len());

    // Slowloris peers, in parallel with everything else.
    let slow: Vec<_> = (0..3)
        .map(|_| {
            let addr = addr.clone();
            std::thread::spawn(move || {
                let mut stream = TcpStream::connect(&addr).unwrap();
                let _ = stream.write_all(&[0, 200, 0, 0]);
                for _ in 0..10 {
                    std::thread::sleep(Duration::from_millis(250));
                    if stream.write_all(b"x").is_err() {
                        return true;
                    }
                }
                stream
                    .set_read_timeout(Some(Duration::from_secs(5)))
                    .unwrap();
                let mut rest = Vec::new();
                matches!(stream.read_to_end(&mut rest), Ok(0) | Err(_))
            })
        })
        .collect();

    for (name, bytes) in &cases {
        let reply = send(&addr, bytes).unwrap_or_else(|| panic!("{name}: the server hung"));
        let m1 = bytes.first().copied().unwrap_or(0);
        let invalid = [
            "truncated",
            "datasize",
            "bad vars",
            "CONTENT_LENGTH",
            "200 vars",
        ];
        if invalid.iter().any(|prefix| name.starts_with(prefix)) {
            assert!(
                reply.is_empty(),
                "{name}: an invalid request got {reply:02x?}"
            );
        }
        if name == "modifier1 10, empty" {
            // An admin read of option slot 0 (logging), from a loopback peer: its value,
            // 0 under --disable-logging.
            assert_eq!(reply, [10, 4, 0, 0, 0, 0, 0, 0], "{name}");
            continue;
        }
        if name == "modifier1 17, empty" {
            // A spool request with no spooler configured: the failure reply (spec §7.5).
            assert_eq!(reply, [255, 0, 0, 0], "{name}");
            continue;
        }
        let answered_kinds = [0u8, 30, 33, 100, 101, 110];
        if !answered_kinds.contains(&m1) || bytes.len() < 4 {
            // Management and state modifiers without a valid request, unknown ones and
            // anything invalid: closed with nothing, as uWSGI does.
            if !answered_kinds.contains(&m1) {
                assert!(reply.is_empty(), "{name}: unexpected reply {reply:02x?}");
            }
        }
    }
    for handle in slow {
        assert!(
            handle.join().unwrap(),
            "a slowloris connection was kept open"
        );
    }
    done.store(true, Ordering::Relaxed);
    healthy.join().unwrap();
    let ok = healthy_ok.load(Ordering::Relaxed);
    assert_eq!(
        healthy_failed.load(Ordering::Relaxed),
        0,
        "healthy failures (with {ok} successes)"
    );
    assert!(ok > 0);
    // Still alive.
    assert_eq!(send(&addr, &[100, 0, 0, 0]).unwrap(), [100, 0, 0, 1]);
}
