//! The SNMP agent through the real binary (spec §7.6): `--snmp ADDR`, `--udp` sockets,
//! single-process and `--master` modes, exact reply bytes, silence for everything uWSGI
//! ignores, custom slots set from a worker (the example app's `snmp_set` RPC) read by
//! the agent, and `snmpget` (net-snmp) when it is installed.
//!
//! Every test starts its own `uwsgi-server` on port 0 and kills it (and its children)
//! when dropped.

#![allow(clippy::unwrap_used)]

mod common;

// The launcher of real uWSGI 2.0 from the `uwsgi-tests` crate, included by path (it only
// uses std; this crate cannot depend on `uwsgi-tests`).
#[allow(dead_code)]
#[path = "../../tests/src/uwsgi_peer.rs"]
mod uwsgi_peer;

use std::net::UdpSocket;
use std::process::Command;
use std::time::Duration;

use uwsgi_protocol::Packet;
use uwsgi_protocol::packet::{RpcCall, RpcRequest};
use uwsgi_protocol::snmp::{
    Oid, Rejected, SnmpValue, build_get_request, parse_get_request, parse_response,
};

use common::binary::Instance;

/// Spec §7.6 [V14]: request id 1, community `public`, custom slot 6.
const REQUEST: &str = "302902010004067075626c6963 a01c 020101 020100 020100 3011 300f 060b2b060104018292541102 06 0500";
/// Its answer when slot 6 is a gauge of 42.
const GAUGE_42: &str = "302d02010004067075626c6963 a220 020101 020100 020100 3015 3013 060b2b060104018292541102 06 4204 0000002a";

fn hex(text: &str) -> Vec<u8> {
    let digits: Vec<u8> = text.bytes().filter(u8::is_ascii_hexdigit).collect();
    digits
        .chunks(2)
        .map(|pair| u8::from_str_radix(std::str::from_utf8(pair).unwrap(), 16).unwrap())
        .collect()
}

/// Starts the binary and waits until the SNMP agent is announced.
fn start(args: &[&str]) -> Instance {
    let instance = Instance::start(args);
    instance.wait_for("the SNMP agent line", Duration::from_secs(10), |lines| {
        lines.iter().any(|l| l.contains("SNMP agent"))
    });
    instance
}

/// The `--snmp=ADDR` socket.
fn snmp_addr(instance: &Instance) -> String {
    instance.addrs("SNMP agent on ")[0].clone()
}

/// One RPC call to the example app on the uwsgi socket; its result.
fn rpc(instance: &Instance, function: &str, args: &[&str]) -> Vec<u8> {
    let items = RpcCall::build(function.as_bytes(), args).unwrap();
    let call = RpcCall::framed(items.as_array()).unwrap();
    let reply = common::exchange(
        &instance.addr,
        &Packet::Rpc(RpcRequest::Call(call)).to_vec(),
    );
    assert!(reply.len() >= 4, "no RPC reply: {reply:?}");
    reply[4..].to_vec()
}

/// One application request on the uwsgi socket.
fn request(instance: &Instance) {
    let reply = common::exchange(
        &instance.addr,
        &common::request_bytes(&[("REQUEST_METHOD", "GET"), ("PATH_INFO", "/")], b""),
    );
    assert!(reply.starts_with(b"HTTP/1.0 200"), "{reply:?}");
}

fn client() -> UdpSocket {
    UdpSocket::bind("127.0.0.1:0").unwrap()
}

/// Sends `datagram` to `addr` and returns the answer (panics after 5 s).
fn ask(addr: &str, datagram: &[u8]) -> Vec<u8> {
    let socket = client();
    socket
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    socket.send_to(datagram, addr).unwrap();
    let mut buffer = [0u8; 512];
    let (len, from) = socket
        .recv_from(&mut buffer)
        .unwrap_or_else(|e| panic!("no SNMP answer from {addr}: {e}"));
    assert_eq!(from.to_string(), addr);
    buffer[..len].to_vec()
}

/// Sends `datagram` and checks that nothing comes back within 300 ms.
fn silent(addr: &str, datagram: &[u8], what: &str) {
    let socket = client();
    socket
        .set_read_timeout(Some(Duration::from_millis(300)))
        .unwrap();
    socket.send_to(datagram, addr).unwrap();
    let mut buffer = [0u8; 512];
    if let Ok((len, _)) = socket.recv_from(&mut buffer) {
        panic!("{what}: answered {:02x?}", &buffer[..len]);
    }
}

/// The value the agent at `addr` answers for `oid` (community `public`).
fn get(addr: &str, oid: Oid<'_>) -> SnmpValue {
    let request = build_get_request(1, b"public", 0x1234, oid).unwrap();
    let answer = ask(addr, &request);
    let response = parse_response(&answer).unwrap();
    assert_eq!(response.request_id, [0x12, 0x34]);
    assert_eq!(response.community, b"public");
    response.value
}

#[test]
fn spec_example_single_process() {
    let server = start(&[
        "--socket",
        "127.0.0.1:0",
        "--snmp",
        "127.0.0.1:0",
        "--snmp-community",
        "public",
    ]);
    let snmp = snmp_addr(&server);
    // Unset slot: NULL, i.e. the request with only its PDU tag changed.
    let mut null = hex(REQUEST);
    null[13] = 0xa2;
    assert_eq!(ask(&snmp, &hex(REQUEST)), null);
    assert_eq!(rpc(&server, "snmp_set", &["gauge", "6", "42"]), b"True");
    assert_eq!(ask(&snmp, &hex(REQUEST)), hex(GAUGE_42));
    // A Counter64 grows every length by 8.
    assert_eq!(
        rpc(&server, "snmp_set", &["counter64", "6", "1234567890123"]),
        b"True"
    );
    let answer = ask(&snmp, &hex(REQUEST));
    assert_eq!(answer.len(), hex(REQUEST).len() + 8);
    assert!(answer.ends_with(&hex("46 08 0000011f71fb04cb")));
    assert_eq!(answer[1], 0x29 + 8);
    // Increments: 32-bit deltas, the type overwritten.
    assert_eq!(rpc(&server, "snmp_set", &["counter32", "7", "10"]), b"True");
    assert_eq!(
        rpc(&server, "snmp_set", &["incr_counter32", "7", "5"]),
        b"True"
    );
    assert_eq!(get(&snmp, Oid::Custom(7)), SnmpValue::Counter32(15));
    assert_eq!(
        rpc(&server, "snmp_set", &["decr_gauge", "7", "20"]),
        b"True"
    );
    assert_eq!(get(&snmp, Oid::Custom(7)), SnmpValue::Gauge(u32::MAX - 4));
    assert_eq!(
        rpc(&server, "snmp_set", &["incr_counter64", "7", "6"]),
        b"True"
    );
    assert_eq!(get(&snmp, Oid::Custom(7)), SnmpValue::Counter64(1));
    // Slot numbers outside 1..=100 are refused, as the Python functions refuse them.
    assert_eq!(rpc(&server, "snmp_set", &["gauge", "101", "1"]), b"None");
    assert_eq!(rpc(&server, "snmp_set", &["gauge", "0", "1"]), b"None");
    assert_eq!(get(&snmp, Oid::Custom(100)), SnmpValue::Null);
}

#[test]
fn request_counters() {
    let server = start(&[
        "--socket",
        "127.0.0.1:0",
        "--snmp=127.0.0.1:0",
        "--snmp-community",
        "public",
    ]);
    let snmp = snmp_addr(&server);
    assert_eq!(get(&snmp, Oid::Server(1)), SnmpValue::Counter64(0));
    for _ in 0..3 {
        request(&server);
    }
    assert_eq!(get(&snmp, Oid::Server(1)), SnmpValue::Counter64(3));
    // Worker 1 counts every connection it served.
    let SnmpValue::Counter64(worker) = get(&snmp, Oid::Server(31)) else {
        panic!("worker 1 is not a Counter64");
    };
    assert!(worker >= 3, "{worker}");
    // No worker 2, and the other server OIDs: NULL.
    for index in [2, 30, 32, 100] {
        assert_eq!(
            get(&snmp, Oid::Server(index)),
            SnmpValue::Null,
            "17.1.{index}"
        );
    }
}

#[test]
fn everything_else_gets_no_answer() {
    let server = start(&[
        "--socket",
        "127.0.0.1:0",
        "--snmp",
        "127.0.0.1:0",
        "--snmp-community",
        "public",
    ]);
    let snmp = snmp_addr(&server);
    let good = hex(REQUEST);
    let wrong_community = build_get_request(0, b"privat", 1, Oid::Custom(6)).unwrap();
    let mut too_long = build_get_request(0, &[b'p'; 72], 1, Oid::Custom(6)).unwrap();
    too_long.extend([0; 11]);
    let metric = {
        // 17.3.1.5: uWSGI 2.0's metrics subsystem, absent here.
        let mut bytes = good.clone();
        bytes[29] = 12;
        bytes[39] = 3;
        bytes[40] = 1;
        bytes.insert(41, 5);
        for at in [1, 14, 25, 27] {
            bytes[at] += 1;
        }
        bytes
    };
    let with = |at: usize, byte: u8| {
        let mut bytes = good.clone();
        bytes[at] = byte;
        bytes
    };
    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("wrong community", wrong_community),
        (
            "community prefix",
            build_get_request(0, b"publi", 1, Oid::Custom(6)).unwrap(),
        ),
        ("too long", too_long),
        ("empty", Vec::new()),
        ("one byte", vec![0x30]),
        ("truncated", good[..good.len() - 1].to_vec()),
        ("garbage", b"hello snmp agent".to_vec()),
        ("GetNextRequest", with(13, 0xa1)),
        ("version 3", with(4, 3)),
        ("error-status", with(20, 1)),
        ("foreign OID", with(32, 7)),
        ("17.3.Y", with(39, 3)),
        ("slot 0", with(40, 0)),
        ("slot 101", with(40, 101)),
        ("no NULL", with(41, 4)),
        ("metric OID", metric),
    ];
    for (what, datagram) in &cases {
        silent(&snmp, datagram, what);
    }
    // The agent and the server still answer.
    let mut null = good.clone();
    null[13] = 0xa2;
    assert_eq!(ask(&snmp, &good), null);
    request(&server);
    // Nothing was logged about the ignored datagrams.
    assert!(
        !server
            .log()
            .iter()
            .any(|l| l.to_lowercase().contains("snmp reply")),
        "{:?}",
        server.log()
    );
}

#[test]
fn master_mode_with_udp_socket() {
    let server = start(&[
        "--master",
        "--processes",
        "2",
        "--socket",
        "127.0.0.1:0",
        "--udp",
        "127.0.0.1:0",
        "--snmp",
        "127.0.0.1:0",
        "--snmp-community",
        "public",
    ]);
    let snmp = snmp_addr(&server);
    let udp = server.addrs("listening on ")[1].clone();
    // The slot is written by a worker process, read by the master's agent.
    assert_eq!(rpc(&server, "snmp_set", &["gauge", "6", "42"]), b"True");
    assert_eq!(ask(&snmp, &hex(REQUEST)), hex(GAUGE_42));
    assert_eq!(ask(&udp, &hex(REQUEST)), hex(GAUGE_42));
    for _ in 0..4 {
        request(&server);
    }
    assert_eq!(get(&udp, Oid::Server(1)), SnmpValue::Counter64(4));
    let per_worker: Vec<SnmpValue> = [31, 32].map(|i| get(&snmp, Oid::Server(i))).to_vec();
    let served: u64 = per_worker
        .iter()
        .map(|v| match v {
            SnmpValue::Counter64(n) => *n,
            other => panic!("worker counter is {other:?}"),
        })
        .sum();
    // Four requests and at least one RPC call.
    assert!(served >= 5, "{per_worker:?}");
    assert_eq!(get(&snmp, Oid::Server(33)), SnmpValue::Null);
    // Bad requests on the --udp socket are ignored too, and uwsgi datagrams still go to
    // the uwsgi decoder (logged, not answered).
    silent(
        &udp,
        &build_get_request(0, b"nope", 1, Oid::Custom(6)).unwrap(),
        "udp wrong community",
    );
    silent(&udp, b"\x30garbage", "udp garbage");
    assert_eq!(ask(&udp, &hex(REQUEST)), hex(GAUGE_42));
}

#[test]
fn no_community_means_no_answer() {
    // `--snmp` without an address: the agent answers on --udp sockets only; without a
    // community, not at all.
    let server = start(&["--socket", "127.0.0.1:0", "--udp", "127.0.0.1:0", "--snmp"]);
    let udp = server.addrs("listening on ")[1].clone();
    assert!(
        server
            .log()
            .iter()
            .any(|l| l.contains("SNMP agent enabled (on the --udp sockets)"))
    );
    assert!(server.log().iter().any(|l| l.contains("has no community")));
    silent(&udp, &hex(REQUEST), "no community configured");
    let any = build_get_request(0, b"x", 1, Oid::Server(1)).unwrap();
    silent(&udp, &any, "no community configured");
    request(&server);
}

#[test]
fn udp_socket_in_single_process_mode() {
    let server = start(&[
        "--socket",
        "127.0.0.1:0",
        "--udp",
        "127.0.0.1:0",
        "--snmp",
        "--snmp-community",
        "public",
    ]);
    let udp = server.addrs("listening on ")[1].clone();
    assert_eq!(rpc(&server, "snmp_set", &["gauge", "6", "42"]), b"True");
    assert_eq!(ask(&udp, &hex(REQUEST)), hex(GAUGE_42));
}

/// net-snmp's `snmpget` against the agent, when it is installed (Debian: `snmp`).
#[test]
fn snmpget_interop() {
    if Command::new("snmpget").arg("--version").output().is_err() {
        eprintln!(
            "\n*** SKIPPED snmpget_interop: `snmpget` is not installed (apt-get install snmp) ***\n"
        );
        return;
    }
    let server = start(&[
        "--socket",
        "127.0.0.1:0",
        "--snmp",
        "127.0.0.1:0",
        "--snmp-community",
        "public",
    ]);
    let snmp = snmp_addr(&server);
    assert_eq!(rpc(&server, "snmp_set", &["gauge", "6", "42"]), b"True");
    assert_eq!(rpc(&server, "snmp_set", &["counter32", "7", "7"]), b"True");
    assert_eq!(
        rpc(&server, "snmp_set", &["counter64", "5", "1234567890123"]),
        b"True"
    );
    request(&server);
    let snmpget = |version: &str, community: &str, oid: &str| {
        let output = Command::new("snmpget")
            .args([
                version,
                "-c",
                community,
                "-On",
                "-r",
                "0",
                "-t",
                "1",
                "-M",
                "/dev/null",
                &snmp,
                oid,
            ])
            .output()
            .unwrap();
        (
            output.status.success(),
            String::from_utf8_lossy(&output.stdout).trim().to_owned(),
        )
    };
    let base = ".1.3.6.1.4.1.35156.17";
    for (version, oid, expected) in [
        ("-v1", "2.6", "Gauge32: 42"),
        ("-v2c", "2.6", "Gauge32: 42"),
        ("-v1", "2.7", "Counter32: 7"),
        ("-v2c", "2.5", "Counter64: 1234567890123"),
        ("-v2c", "1.1", "Counter64: 1"),
    ] {
        let oid = format!("{base}.{oid}");
        let (ok, out) = snmpget(version, "public", &oid);
        assert!(ok, "snmpget {version} {oid}: {out}");
        assert_eq!(out, format!("{oid} = {expected}"), "{version} {oid}");
    }
    // An unset slot answers NULL.
    let (_, out) = snmpget("-v2c", "public", &format!("{base}.2.9"));
    assert!(out.contains("NULL") || out.contains("No Such"), "{out}");
    // A wrong community times out.
    let (ok, out) = snmpget("-v2c", "secret", &format!("{base}.2.6"));
    assert!(!ok && !out.contains("42"), "{out}");
}

#[test]
fn snmp_socket_survives_a_reload() {
    let server = start(&[
        "--master",
        "--socket",
        "127.0.0.1:0",
        "--snmp",
        "127.0.0.1:0",
        "--snmp-community",
        "public",
    ]);
    let snmp = snmp_addr(&server);
    assert_eq!(rpc(&server, "snmp_set", &["gauge", "6", "42"]), b"True");
    assert_eq!(ask(&snmp, &hex(REQUEST)), hex(GAUGE_42));
    server.signal("HUP");
    server.wait_for_count("reloaded (1 reloads)", 1, Duration::from_secs(10));
    // The same socket answers; the state was rebuilt, so the slot is unset again.
    let mut null = hex(REQUEST);
    null[13] = 0xa2;
    assert_eq!(ask(&snmp, &hex(REQUEST)), null);
    assert_eq!(server.addrs("SNMP agent on "), vec![snmp.clone(), snmp]);
}

/// Sends `datagram` then a sentinel request (custom slot 6, request-id `sentinel`) and
/// returns every answer that came before the sentinel's: the agent serves one socket in
/// order, so this tells "no answer" without waiting for a timeout.
fn answers_before_sentinel(
    socket: &UdpSocket,
    addr: &str,
    datagram: &[u8],
    sentinel: i32,
) -> Vec<Vec<u8>> {
    let probe = build_get_request(1, b"public", sentinel, Oid::Custom(6)).unwrap();
    socket.send_to(datagram, addr).unwrap();
    socket.send_to(&probe, addr).unwrap();
    let mut answers = Vec::new();
    let mut buffer = [0u8; 512];
    loop {
        let (len, _) = socket
            .recv_from(&mut buffer)
            .unwrap_or_else(|e| panic!("no sentinel answer from {addr}: {e}"));
        let answer = buffer[..len].to_vec();
        let id = sentinel.to_be_bytes();
        if parse_response(&answer).is_ok_and(|r| r.request_id == id) {
            return answers;
        }
        answers.push(answer);
    }
}

/// The same datagrams to real uWSGI 2.0 and to this server, same slots and requests:
/// the same answers, byte for byte, and the same silences.
#[test]
fn answers_like_real_uwsgi() {
    let Some(bin) = uwsgi_peer::uwsgi_bin() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("snmp_slots.py"),
        "import uwsgi\n\
         uwsgi.snmp_set_gauge(6, 42)\n\
         uwsgi.snmp_set_counter64(5, 1234567890123)\n\
         uwsgi.snmp_set_counter32(7, 7)\n\
         uwsgi.snmp_set_counter64(8, 1 << 33)\n\
         uwsgi.snmp_incr_counter32(8, 5)\n\
         uwsgi.snmp_decr_gauge(9, 1)\n",
    )
    .unwrap();
    let peer_snmp = format!("127.0.0.1:{}", uwsgi_peer::free_port());
    let peer_udp = format!("127.0.0.1:{}", uwsgi_peer::free_port());
    let peer = uwsgi_peer::Server::start_with(
        &bin,
        &uwsgi_peer::Options {
            processes: 2,
            extra_args: vec![
                format!("--snmp={peer_snmp}"),
                "--udp".into(),
                peer_udp.clone(),
                "--snmp-community".into(),
                "public".into(),
                "--pythonpath".into(),
                dir.path().display().to_string(),
                "--import".into(),
                "snmp_slots".into(),
            ],
        },
    );
    let ours = start(&[
        "--master",
        "--processes",
        "2",
        "--socket",
        "127.0.0.1:0",
        "--udp",
        "127.0.0.1:0",
        "--snmp",
        "127.0.0.1:0",
        "--snmp-community",
        "public",
    ]);
    for args in [
        ["gauge", "6", "42"],
        ["counter64", "5", "1234567890123"],
        ["counter32", "7", "7"],
        ["counter64", "8", "8589934592"],
        ["incr_counter32", "8", "5"],
        ["decr_gauge", "9", "1"],
    ] {
        assert_eq!(rpc(&ours, "snmp_set", &args), b"True");
    }
    let page = common::request_bytes(&[("REQUEST_METHOD", "GET"), ("PATH_INFO", "/")], b"");
    for _ in 0..3 {
        assert!(!common::exchange(&peer.tcp.to_string(), &page).is_empty());
        request(&ours);
    }
    // The agent's own socket, and the --udp socket (first byte 0x30) of each server.
    let pairs = [
        (peer_snmp, snmp_addr(&ours)),
        (peer_udp, ours.addrs("listening on ")[1].clone()),
    ];
    let (to_peer, to_ours) = (client(), client());
    for socket in [&to_peer, &to_ours] {
        socket
            .set_read_timeout(Some(Duration::from_secs(5)))
            .unwrap();
    }
    // The datagrams: well-formed requests for every interesting OID, communities and
    // request-ids, then every single-byte change of the spec's request.
    let mut datagrams = Vec::new();
    for version in [0, 1] {
        for community in [&b"public"[..], b"publi", b"publicc", b"PUBLIC"] {
            for id in [0, 1, -1, 0x7fff_ffff] {
                for (group, index) in [
                    (1, 1),
                    (1, 2),
                    (1, 30),
                    (1, 100),
                    (2, 1),
                    (2, 5),
                    (2, 6),
                    (2, 7),
                    (2, 8),
                    (2, 9),
                    (2, 100),
                ] {
                    let oid = if group == 1 {
                        Oid::Server(index)
                    } else {
                        Oid::Custom(index)
                    };
                    datagrams.push(build_get_request(version, community, id, oid).unwrap());
                }
            }
        }
    }
    let spec = hex(REQUEST);
    for at in 0..spec.len() {
        for byte in [
            0x00,
            0x01,
            0x02,
            0x05,
            0x0b,
            0x30,
            0x80,
            0xff,
            spec[at].wrapping_add(1),
            spec[at].wrapping_sub(1),
        ] {
            let mut datagram = spec.clone();
            datagram[at] = byte;
            datagrams.push(datagram);
        }
    }
    datagrams.push(spec[..spec.len() - 1].to_vec());
    datagrams.push(Vec::from(&b"\x30"[..]));
    let mut compared = 0;
    let mut answered = 0;
    for (n, datagram) in datagrams.iter().enumerate() {
        match parse_get_request(datagram) {
            // uWSGI reads past the datagram into its receive buffer: stale bytes decide.
            Err(Rejected::Truncated { .. }) => continue,
            // Per-worker counters: this server also counts the RPC calls made above.
            Ok(r) if matches!(r.oid, Oid::Server(31..)) => continue,
            _ => {}
        }
        let sentinel = 0x4000_0000 + i32::try_from(n).unwrap();
        for (theirs_at, ours_at) in &pairs {
            let theirs = answers_before_sentinel(&to_peer, theirs_at, datagram, sentinel);
            let mine = answers_before_sentinel(&to_ours, ours_at, datagram, sentinel);
            assert_eq!(mine, theirs, "datagram {n} to {ours_at}: {datagram:02x?}");
            compared += 1;
            answered += usize::from(!mine.is_empty());
        }
    }
    eprintln!("{compared} datagrams compared with uWSGI 2.0, {answered} of them answered");
    assert!(
        compared > 1000 && answered > 200,
        "{compared} compared, {answered} answered"
    );
}
