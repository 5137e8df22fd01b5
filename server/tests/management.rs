//! Management services end to end, against the real binary: the admin packet
//! (modifier1 10), subscriptions (224) and their stats, the cache-full log line, and
//! multicast on a `--udp` socket.

#![allow(clippy::unwrap_used)]

mod common;

use std::time::Duration;

use common::binary::Instance;
use common::{exchange, framed, get_body};
use uwsgi_protocol::Modifier1;

fn admin_get(addr: &str, option: u8) -> Vec<u8> {
    exchange(addr, &framed(Modifier1::Admin, option, b""))
}

fn admin_set(addr: &str, option: u8, value: u32) -> Vec<u8> {
    exchange(
        addr,
        &framed(Modifier1::Admin, option, &value.to_le_bytes()),
    )
}

fn value_reply(option: u8, value: u32) -> Vec<u8> {
    let mut reply = vec![10, 4, 0, option];
    reply.extend_from_slice(&value.to_le_bytes());
    reply
}

#[test]
fn admin_reads_and_writes_shared_option_slots() {
    let server = Instance::start(&[
        "--master",
        "--processes",
        "2",
        "--socket",
        "127.0.0.1:0",
        "--max-requests",
        "7000",
        "--socket-timeout",
        "9",
    ]);
    let addr = server.addr.as_str();
    // Seeded from the configuration (1.x slot numbers).
    assert_eq!(admin_get(addr, 0), value_reply(0, 1), "logging on");
    assert_eq!(admin_get(addr, 1), value_reply(1, 7000), "max requests");
    assert_eq!(admin_get(addr, 2), value_reply(2, 9), "socket timeout");
    assert_eq!(admin_get(addr, 200), value_reply(200, 0), "an unused slot");

    // Logging is on: the request is logged.
    get_body(addr, "/before");
    server.wait_for_count("GET /before", 1, Duration::from_secs(10));

    // A write is acknowledged, logged, and seen by every worker (shared memory).
    assert_eq!(admin_set(addr, 200, 0xdead_beef), [0xff, 0, 0, 1]);
    assert_eq!(admin_set(addr, 0, 0), [0xff, 0, 0, 1]);
    server.wait_for_count("setting option 0 to 0", 1, Duration::from_secs(10));
    for _ in 0..6 {
        assert_eq!(admin_get(addr, 200), value_reply(200, 0xdead_beef));
        assert_eq!(admin_get(addr, 0), value_reply(0, 0));
    }
    // Slot 0 is live: requests are no longer logged, in whichever worker serves them.
    for _ in 0..6 {
        get_body(addr, "/after");
    }
    // A final logged request proves the log has caught up with the unlogged ones.
    assert_eq!(admin_set(addr, 0, 1), [0xff, 0, 0, 1]);
    get_body(addr, "/again");
    server.wait_for_count("GET /again", 1, Duration::from_secs(10));
    assert_eq!(server.count("GET /after"), 0, "{:#?}", server.log());

    // Any block other than 0 or 4 bytes is invalid: closed, nothing written.
    assert_eq!(exchange(addr, &framed(Modifier1::Admin, 0, b"abc")), b"");
    assert_eq!(exchange(addr, &framed(Modifier1::Admin, 0, b"abcde")), b"");
    assert_eq!(admin_get(addr, 0), value_reply(0, 1));
}

#[test]
fn admin_is_refused_to_untrusted_peers() {
    // 127.0.0.1 is not in the allow list, so it is an untrusted peer here.
    let server = Instance::start(&[
        "--socket",
        "127.0.0.1:0",
        "--management-allow-from",
        "10.1.2.3",
    ]);
    let addr = server.addr.as_str();
    assert_eq!(admin_get(addr, 0), b"");
    assert_eq!(admin_set(addr, 0, 0), b"");
    server.wait_for_count("refused management packet", 2, Duration::from_secs(10));
    // Nothing changed: request logging is still on.
    get_body(addr, "/still-logged");
    server.wait_for_count("GET /still-logged", 1, Duration::from_secs(10));
}

fn subscription(modifier2: u8, pairs: &[(&str, &str)]) -> Vec<u8> {
    let vars = uwsgi_protocol::VarsBuilder::from_pairs(pairs.iter().copied()).unwrap();
    framed(
        Modifier1::Subscription,
        modifier2,
        vars.as_vars().as_bytes(),
    )
}

/// The stats document's `subscriptions`, once `done` holds for it.
fn subscriptions_when(
    server: &Instance,
    what: &str,
    done: impl Fn(Option<&serde_json::Value>) -> bool,
) -> Option<serde_json::Value> {
    let started = std::time::Instant::now();
    loop {
        let stats = server.stats();
        let subscriptions = stats.get("subscriptions").cloned();
        if done(subscriptions.as_ref()) {
            return subscriptions;
        }
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "timed out waiting for {what}: {stats:#}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn subscriptions_over_udp_follow_modifier2_and_show_in_stats() {
    let server = Instance::start(&[
        "--master",
        "--socket",
        "127.0.0.1:0",
        "--udp",
        "127.0.0.1:0",
        "--stats",
        "127.0.0.1:0",
    ]);
    let udp = server.addrs("listening on ")[1].clone();
    let sender = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    // No subscriptions yet: no array, as uWSGI.
    assert!(server.stats().get("subscriptions").is_none());

    let node = |address: &'static str| {
        vec![
            ("key", "app.example"),
            ("address", address),
            ("modifier1", "0"),
            ("modifier2", "0"),
            ("cores", "4"),
            ("load", "1"),
            ("weight", "0"),
        ]
    };
    sender
        .send_to(&subscription(0, &node("127.0.0.1:4031")), &udp)
        .unwrap();
    sender
        .send_to(&subscription(0, &node("127.0.0.1:4032")), &udp)
        .unwrap();
    let table = subscriptions_when(&server, "two nodes", |s| {
        s.and_then(|s| s[0]["nodes"].as_array())
            .is_some_and(|n| n.len() == 2)
    })
    .unwrap();
    assert_eq!(table.as_array().unwrap().len(), 1);
    assert_eq!(table[0]["key"], "app.example");
    let first = &table[0]["nodes"][0];
    assert_eq!(first["name"], "127.0.0.1:4031");
    assert_eq!(first["cores"], 4);
    assert_eq!(first["load"], 1);
    assert_eq!(first["weight"], 1, "weight 0 reads 1, as uWSGI");
    assert!(first["last_check"].as_u64().unwrap() > 1_600_000_000);

    // modifier2 1 (what uWSGI sends at shutdown) unsubscribes: no extra var needed.
    sender
        .send_to(
            &subscription(1, &[("key", "app.example"), ("address", "127.0.0.1:4031")]),
            &udp,
        )
        .unwrap();
    let table = subscriptions_when(&server, "one node left", |s| {
        s.and_then(|s| s[0]["nodes"].as_array())
            .is_some_and(|n| n.len() == 1)
    })
    .unwrap();
    assert_eq!(table[0]["nodes"][0]["name"], "127.0.0.1:4032");

    // A key over 255 bytes is refused and logged (uWSGI overflows its slot with it).
    let long = "k".repeat(300);
    sender
        .send_to(
            &subscription(0, &[("key", &long), ("address", "127.0.0.1:1")]),
            &udp,
        )
        .unwrap();
    server.wait_for_count(
        "subscription refused: key of 300 bytes",
        1,
        Duration::from_secs(10),
    );

    // Over a stream socket a subscription is closed unanswered and changes nothing.
    assert_eq!(
        exchange(&server.addr, &subscription(0, &node("127.0.0.1:4099"))),
        b""
    );
    // The last unsubscribe empties the table: the array goes away.
    sender
        .send_to(
            &subscription(7, &[("key", "app.example"), ("address", "127.0.0.1:4032")]),
            &udp,
        )
        .unwrap();
    subscriptions_when(&server, "an empty table", |s| s.is_none());
}

/// A magic-interface cache set (modifier2 17) of `key` = `value`.
fn cache_set(addr: &str, key: &[u8], value: &[u8]) -> Vec<u8> {
    use uwsgi_protocol::packet::{CacheMagic, MagicCommand};
    let vars =
        CacheMagic::build(MagicCommand::Set, key, None, Some(value.len() as u64), None).unwrap();
    let mut bytes = framed(Modifier1::Cache, 17, vars.as_vars().as_bytes());
    bytes.extend_from_slice(value);
    exchange(addr, &bytes)
}

#[test]
fn full_cache_is_logged_rate_limited_and_too_big_is_not_full() {
    let server = Instance::start(&[
        "--master",
        "--socket",
        "127.0.0.1:0",
        "--cache2",
        "name=tiny,items=3,blocksize=64,keysize=64",
        "--stats",
        "127.0.0.1:0",
    ]);
    let addr = server.addr.as_str();
    let full = |server: &Instance| server.stats()["caches"][0]["full"].as_u64().unwrap();

    // Fill it: the sets are answered until there is no room.
    let mut stored = 0;
    while !cache_set(addr, format!("k{stored}").as_bytes(), b"v").is_empty() {
        stored += 1;
        assert!(stored < 10, "a 3-item cache took {stored} items");
    }
    assert!(stored >= 1);
    server.wait_for_count("is FULL !!!", 1, Duration::from_secs(10));
    let first = server
        .log()
        .into_iter()
        .find(|l| l.contains("is FULL"))
        .unwrap();
    assert!(
        first.contains("*** DANGER cache \"tiny\" is FULL !!! ***"),
        "{first}"
    );

    // A flood of refused sets: every one counted, but at most one line a second per
    // process (two processes here: the master sweeps, one worker serves).
    let started = std::time::Instant::now();
    for i in 0..300 {
        assert_eq!(cache_set(addr, format!("flood{i}").as_bytes(), b"v"), b"");
    }
    let seconds = started.elapsed().as_secs();
    assert_eq!(full(&server), 301);
    let lines = server.count("is FULL !!!");
    assert!(
        lines <= 2 + usize::try_from(seconds).unwrap(),
        "{lines} lines in {seconds} s"
    );

    // A key over keysize or a value over the blocksize is refused, but the cache is
    // not "full": not counted, not logged as such.
    let before = server.count("is FULL !!!");
    assert_eq!(cache_set(addr, &[b'k'; 65], b"v"), b"");
    assert_eq!(cache_set(addr, b"big", &[b'v'; 65]), b"");
    assert_eq!(full(&server), 301);
    assert_eq!(server.count("is FULL !!!"), before);
}

#[test]
fn udp_socket_joins_a_multicast_group_on_loopback() {
    // A group of the organisation-local scope, joined on the loopback interface, and a
    // sender with TTL 0 through loopback: no datagram leaves the host.
    let group = std::net::Ipv4Addr::new(239, 255, 77, 13);
    let server = Instance::start(&[
        "--master",
        "--socket",
        "127.0.0.1:0",
        "--udp",
        &format!("{group}:0"),
        "--multicast-interface",
        "127.0.0.1",
        "--multicast-ttl",
        "0",
        // uWSGI's number form (it used to be refused here).
        "--multicast-loop",
        "1",
        "--stats",
        "127.0.0.1:0",
    ]);
    let bound = server.addrs("listening on ")[1].clone();
    let port: u16 = bound.rsplit(':').next().unwrap().parse().unwrap();
    let sender = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::DGRAM, None).unwrap();
    sender
        .bind(&std::net::SocketAddr::from(([127, 0, 0, 1], 0)).into())
        .unwrap();
    sender
        .set_multicast_if_v4(&std::net::Ipv4Addr::LOCALHOST)
        .unwrap();
    sender.set_multicast_ttl_v4(0).unwrap();
    sender.set_multicast_loop_v4(true).unwrap();
    let packet = subscription(
        0,
        &[("key", "multicast.example"), ("address", "127.0.0.1:4040")],
    );
    let to = std::net::SocketAddr::from((group, port));
    // Datagrams may be lost: send until the node shows up.
    let started = std::time::Instant::now();
    loop {
        sender.send_to(&packet, &to.into()).unwrap();
        std::thread::sleep(Duration::from_millis(100));
        let stats = server.stats();
        if let Some(table) = stats.get("subscriptions") {
            assert_eq!(table[0]["key"], "multicast.example");
            assert_eq!(table[0]["nodes"][0]["name"], "127.0.0.1:4040");
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "the group datagram never arrived: {stats:#}\n{:#?}",
            server.log()
        );
    }
}

#[cfg(feature = "python")]
#[test]
fn python_get_and_set_option_share_the_admin_slots() {
    let app = format!("{}/tests/apps/options.py", env!("CARGO_MANIFEST_DIR"));
    let server = Instance::start(&[
        "--wsgi-file",
        &app,
        "--master",
        "--processes",
        "2",
        "--socket",
        "127.0.0.1:0",
        "--max-requests",
        "555",
    ]);
    let addr = server.addr.as_str();
    // Seeded slots read the same from Python.
    assert_eq!(get_body(addr, "/get?i=1"), "555");
    // Written over the network, read from Python in whichever worker.
    assert_eq!(admin_set(addr, 42, 77), [0xff, 0, 0, 1]);
    for _ in 0..4 {
        assert_eq!(get_body(addr, "/get?i=42"), "77");
    }
    // Written from Python, read over the network.
    assert_eq!(get_body(addr, "/set?i=43&v=5"), "5");
    assert_eq!(admin_get(addr, 43), value_reply(43, 5));
}
