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
