//! The 0.9.9–1.4 cluster packets on a `--udp` socket, against the real binary: 95
//! announcements fill a bounded node table (stats, expiry), 73 and 74 are logged, 99 is
//! answered with the options to allowed peers only, and the workers' `uwsgi.cluster_*`
//! functions see the table the master fills.

#![allow(clippy::unwrap_used)]

mod common;

use std::net::UdpSocket;
use std::path::Path;
use std::time::{Duration, Instant};

use common::binary::Instance;
use common::{framed, get_body};
use uwsgi_protocol::{Limits, Modifier1, Packet, VarsBuilder};

fn announcement(pairs: &[(&str, &str)]) -> Vec<u8> {
    let vars = VarsBuilder::from_pairs(pairs.iter().copied()).unwrap();
    framed(Modifier1::ClusterNode, 0, vars.as_vars().as_bytes())
}

fn node(address: &str, hostname: &str) -> Vec<u8> {
    announcement(&[
        ("hostname", hostname),
        ("address", address),
        ("workers", "4"),
        ("requests", "0"),
    ])
}

/// The `--udp` address (announced after the `--socket` one).
fn udp_addr(server: &Instance) -> String {
    server.addrs("listening on ")[1].clone()
}

/// The stats document's `cluster_nodes` once `done` holds for it.
fn nodes_when(
    server: &Instance,
    what: &str,
    limit: Duration,
    done: impl Fn(Option<&serde_json::Value>) -> bool,
) -> Option<serde_json::Value> {
    let started = Instant::now();
    loop {
        let stats = server.stats();
        let nodes = stats.get("cluster_nodes").cloned();
        if done(nodes.as_ref()) {
            return nodes;
        }
        assert!(
            started.elapsed() < limit,
            "timed out waiting for {what}: {stats:#}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn count(nodes: Option<&serde_json::Value>) -> usize {
    nodes.and_then(|n| n.as_array()).map_or(0, Vec::len)
}

#[test]
fn announcements_fill_a_bounded_table_that_expires() {
    let server = Instance::start(&[
        "--master",
        "--socket",
        "127.0.0.1:0",
        "--udp",
        "127.0.0.1:0",
        "--stats",
        "127.0.0.1:0",
    ]);
    let udp = udp_addr(&server);
    let sender = UdpSocket::bind("127.0.0.1:0").unwrap();
    // No node yet: no array.
    assert!(server.stats().get("cluster_nodes").is_none());

    sender
        .send_to(&node("10.0.0.1:3031", "alpha"), &udp)
        .unwrap();
    let nodes = nodes_when(&server, "one node", Duration::from_secs(10), |n| {
        count(n) == 1
    })
    .unwrap();
    assert_eq!(nodes[0]["address"], "10.0.0.1:3031");
    assert_eq!(nodes[0]["hostname"], "alpha");
    assert_eq!(nodes[0]["workers"], 4);
    assert_eq!(nodes[0]["requests"], 0);

    // 100 nodes at most: the 101st is refused and logged; a known node still refreshes.
    for i in 2..=101 {
        sender
            .send_to(&node(&format!("10.0.0.{i}:3031"), "beta"), &udp)
            .unwrap();
        // Keep the socket's receive buffer from overflowing.
        std::thread::sleep(Duration::from_millis(2));
    }
    server.wait_for_count(
        "cluster node announcement refused: table full (100 nodes)",
        1,
        Duration::from_secs(10),
    );
    let nodes = nodes_when(&server, "100 nodes", Duration::from_secs(10), |n| {
        count(n) == 100
    })
    .unwrap();
    assert!(
        !nodes
            .as_array()
            .unwrap()
            .iter()
            .any(|n| n["address"] == "10.0.0.101:3031")
    );

    // Not re-announced for 30 s: every node is dropped, and the array with them.
    nodes_when(
        &server,
        "the nodes to expire",
        Duration::from_secs(45),
        |n| n.is_none(),
    );
}

#[test]
fn announce_and_custom_messages_are_logged_and_config_requests_answered() {
    let server = Instance::start(&["--socket", "127.0.0.1:0", "--udp", "127.0.0.1:0"]);
    let udp = udp_addr(&server);
    let sender = UdpSocket::bind("127.0.0.1:0").unwrap();
    sender
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();

    // 73: the announced hostname, control bytes escaped.
    sender
        .send_to(&framed(Modifier1::ClusterAnnounce, 0, b"node-a\n"), &udp)
        .unwrap();
    server.wait_for_count(
        "new node available: node-a\\x0a",
        1,
        Duration::from_secs(10),
    );
    // 74: 1.4's generic UDP logger line, the raw datagram with its header.
    sender
        .send_to(&framed(Modifier1::Multicast, 0, b"hello\nworld"), &udp)
        .unwrap();
    let port = sender.local_addr().unwrap().port();
    server.wait_for_count(
        &format!("[udp:127.0.0.1:{port}] J\\x0b\\x00\\x00hello\\x0aworld"),
        1,
        Duration::from_secs(10),
    );

    // 95 with vars that do not parse (a key of length 0), then one without an address:
    // both logged, neither recorded.
    sender
        .send_to(
            &framed(Modifier1::ClusterNode, 0, &[0, 0, 1, 0, b'x']),
            &udp,
        )
        .unwrap();
    server.wait_for_count("invalid datagram from", 1, Duration::from_secs(10));
    sender
        .send_to(&announcement(&[("hostname", "gamma")]), &udp)
        .unwrap();
    server.wait_for_count(
        "cluster node announcement refused: no address or no hostname",
        1,
        Duration::from_secs(10),
    );

    // 99 modifier2 0 from loopback: the options, in one datagram to the sender.
    sender
        .send_to(&framed(Modifier1::ClusterConfig, 0, b""), &udp)
        .unwrap();
    let mut buffer = vec![0u8; 65_536];
    let (len, from) = sender.recv_from(&mut buffer).unwrap();
    assert_eq!(from.to_string(), udp);
    let packet = Packet::decode_datagram(&buffer[..len], &Limits::default()).unwrap();
    let Packet::ClusterConfig(reply) = packet else {
        panic!("not a configuration reply: {packet:?}");
    };
    assert_eq!(reply.modifier2, 1);
    assert_eq!(reply.vars.get("socket"), Some(b"127.0.0.1:0".as_slice()));
    assert_eq!(reply.vars.get("udp"), Some(b"127.0.0.1:0".as_slice()));
    assert_eq!(reply.vars.len(), 2);
}

#[test]
fn refused_peers_get_no_configuration_and_add_no_node() {
    let server = Instance::start(&[
        "--master",
        "--socket",
        "127.0.0.1:0",
        "--udp",
        "127.0.0.1:0",
        "--stats",
        "127.0.0.1:0",
        "--management-allow-from",
        "10.0.0.0/8",
    ]);
    let udp = udp_addr(&server);
    let sender = UdpSocket::bind("127.0.0.1:0").unwrap();
    sender
        .set_read_timeout(Some(Duration::from_millis(1500)))
        .unwrap();
    sender
        .send_to(&framed(Modifier1::ClusterConfig, 0, b""), &udp)
        .unwrap();
    server.wait_for_count(
        "refused management datagram (modifier1 99)",
        1,
        Duration::from_secs(10),
    );
    let mut buffer = [0u8; 4096];
    assert!(
        sender.recv_from(&mut buffer).is_err(),
        "a refused peer got a reply"
    );

    sender
        .send_to(&node("10.0.0.1:3031", "alpha"), &udp)
        .unwrap();
    server.wait_for_count(
        "refused management datagram (modifier1 95)",
        1,
        Duration::from_secs(10),
    );
    assert!(server.stats().get("cluster_nodes").is_none());
}

#[test]
fn workers_see_the_nodes_the_master_records() {
    let app = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/apps/cluster.py")
        .display()
        .to_string();
    let server = Instance::start(&[
        "--master",
        "--processes",
        "2",
        "--socket",
        "127.0.0.1:0",
        "--udp",
        "127.0.0.1:0",
        "--wsgi-file",
        &app,
    ]);
    server.wait_for_count("spawned uWSGI worker", 2, Duration::from_secs(20));
    let addr = server.addr.clone();
    assert_eq!(get_body(&addr, "/nodes"), "[]");
    assert_eq!(get_body(&addr, "/best"), "null");
    assert_eq!(get_body(&addr, "/own_name"), "true");

    let udp = udp_addr(&server);
    let sender = UdpSocket::bind("127.0.0.1:0").unwrap();
    sender
        .send_to(&node("10.0.0.1:3031", "alpha"), &udp)
        .unwrap();
    sender
        .send_to(&node("10.0.0.2:3031", "beta"), &udp)
        .unwrap();
    let started = Instant::now();
    // Every worker (whichever accepts) sees both nodes.
    while get_body(&addr, "/nodes") != r#"["10.0.0.1:3031", "10.0.0.2:3031"]"# {
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "the workers never saw the nodes"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    for _ in 0..4 {
        assert_eq!(
            get_body(&addr, "/nodes"),
            r#"["10.0.0.1:3031", "10.0.0.2:3031"]"#
        );
    }
    // Round robin by time, across the workers: the table is shared.
    let chosen: Vec<String> = (0..4).map(|_| get_body(&addr, "/best")).collect();
    assert_eq!(
        chosen,
        [
            r#""10.0.0.1:3031""#,
            r#""10.0.0.2:3031""#,
            r#""10.0.0.1:3031""#,
            r#""10.0.0.2:3031""#
        ]
    );
    assert_eq!(get_body(&addr, "/name?addr=10.0.0.2:3031"), r#""beta""#);
    assert_eq!(get_body(&addr, "/name?addr=10.9.9.9:1"), "null");
}
