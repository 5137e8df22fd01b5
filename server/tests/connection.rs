//! The server end to end over real loopback sockets: started on 127.0.0.1 port 0 and unix
//! sockets, talked to with raw bytes, replies compared byte for byte.

// Test helpers unwrap: a panic here is a failed test with its backtrace.
#![allow(clippy::unwrap_used)]

mod common;

use common::{exchange, framed, request_bytes, start};
use uwsgi_protocol::Modifier1;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

#[test]
fn ping_echo_and_unavailable_modifiers() {
    let server = start(&["--socket", "127.0.0.1:0", "--warning-message", "WARN!"]);
    let addr = &server.local_addrs()[0];
    // spec §7.2: the reply carries the warning message.
    assert_eq!(exchange(addr, &[100, 0, 0, 0]), b"\x64\x05\x00\x01WARN!");
    // spec §7.3: echo writes the block back without a header.
    assert_eq!(exchange(addr, b"\x65\x03\x00\x00abc"), b"abc");
    // spec §1.5: no handler → closed with no bytes.
    assert_eq!(exchange(addr, &[200, 0, 0, 0]), b"");
    assert_eq!(exchange(addr, &[255, 0, 0, 0]), b"");
}

#[test]
fn application_request_with_body_framed_by_content_length() {
    let server = start(&["--socket", "127.0.0.1:0", "--disable-logging"]);
    let addr = &server.local_addrs()[0];
    let pairs = [
        ("REQUEST_METHOD", "POST"),
        ("PATH_INFO", "/upload"),
        ("SERVER_PROTOCOL", "HTTP/1.1"),
        ("CONTENT_LENGTH", "5"),
    ];
    // The bytes after the 5-byte body look like a ping: they must never be answered.
    let mut bytes = request_bytes(&pairs, b"hello");
    bytes.extend_from_slice(&[100, 0, 0, 0]);
    let reply = String::from_utf8(exchange(addr, &bytes)).unwrap();
    assert!(reply.starts_with("HTTP/1.1 200 OK\r\n"), "{reply}");
    assert!(reply.ends_with("POST /upload (5 body bytes)\n"), "{reply}");
    assert!(
        !reply.contains("\x64\x00\x00\x01"),
        "the trailing bytes were answered"
    );
}

#[test]
fn unix_socket_with_mode_and_vacuum() {
    let dir = std::env::temp_dir().join(format!("uwsgi-server-unix-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("app.sock");
    let server = start(&[
        "--socket",
        path.to_str().unwrap(),
        "--chmod-socket=600",
        "--vacuum",
    ]);
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);
    let mut stream = std::os::unix::net::UnixStream::connect(&path).unwrap();
    stream.write_all(&[100, 0, 0, 0]).unwrap();
    let mut reply = Vec::new();
    stream.read_to_end(&mut reply).unwrap();
    assert_eq!(reply, [100, 0, 0, 1]);
    drop(server);
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn oversize_block_is_refused_before_reading_it() {
    let server = start(&["--socket", "127.0.0.1:0"]);
    let addr = &server.local_addrs()[0];
    // datasize 8192 > --buffer-size 4096: closed without reading the block (spec §1.4).
    let mut stream = TcpStream::connect(addr).unwrap();
    stream.write_all(&[0, 0x00, 0x20, 0]).unwrap();
    let mut reply = Vec::new();
    stream.read_to_end(&mut reply).unwrap();
    assert!(reply.is_empty());
}

#[test]
fn slow_peer_cannot_hold_a_worker_past_the_socket_timeout() {
    let server = start(&["--socket", "127.0.0.1:0", "--socket-timeout", "1"]);
    let addr = server.local_addrs()[0].clone();
    let started = Instant::now();
    let mut slow = TcpStream::connect(&addr).unwrap();
    // A header announcing 100 bytes, then a byte every 300 ms: each read is within the
    // timeout, but the whole packet is not.
    slow.write_all(&[0, 100, 0, 0]).unwrap();
    let mut closed = false;
    for _ in 0..20 {
        std::thread::sleep(Duration::from_millis(300));
        if slow.write_all(b"x").is_err() {
            closed = true;
            break;
        }
        slow.set_read_timeout(Some(Duration::from_millis(1)))
            .unwrap();
        let mut byte = [0u8; 1];
        if matches!(slow.read(&mut byte), Ok(0)) {
            closed = true;
            break;
        }
    }
    assert!(closed, "the server kept the trickling connection open");
    assert!(started.elapsed() < Duration::from_secs(4));
    // The only worker is free again.
    assert_eq!(exchange(&addr, &[100, 0, 0, 0]), [100, 0, 0, 1]);
}

#[test]
fn management_packets_follow_the_allow_list() {
    // Loopback is trusted by default; an allow-list without it refuses loopback peers.
    let server = start(&[
        "--socket",
        "127.0.0.1:0",
        "--management-allow-from",
        "10.0.0.0/8",
    ]);
    let addr = &server.local_addrs()[0];
    // A signal from 127.0.0.1 is refused: closed with no reply.
    assert_eq!(exchange(addr, &[110, 0, 0, 1]), b"");
    // Ping is not a management packet.
    assert_eq!(exchange(addr, &[100, 0, 0, 0]), [100, 0, 0, 1]);
}

#[test]
fn allowed_modifiers_close_everything_else() {
    let server = start(&["--socket", "127.0.0.1:0", "--allowed-modifiers", "0"]);
    let addr = &server.local_addrs()[0];
    assert_eq!(exchange(addr, &[100, 0, 0, 0]), b"");
    let reply = exchange(addr, &request_bytes(&[("PATH_INFO", "/")], b""));
    assert!(reply.starts_with(b"HTTP/1.0 200 OK"));
}

#[test]
fn marshal_message_round_trip_as_0_9_intended() {
    let server = start(&["--socket", "127.0.0.1:0"]);
    let addr = &server.local_addrs()[0];
    // spec §4.2 example: send_message(addr, 33, 7, (1, 'a')) with marshal version 1.
    let request =
        b"\x21\x10\x00\x07\x28\x02\x00\x00\x00\x69\x01\x00\x00\x00\x74\x01\x00\x00\x00\x61";
    let reply = exchange(addr, request);
    // The built-in app answers with the object it got: the request header with the
    // size replaced, then the object marshalled with version 1.
    assert_eq!(reply[0], 33);
    assert_eq!(reply[3], 7);
    let value = uwsgi_protocol::marshal::from_slice(&reply[4..]).unwrap();
    let sent = uwsgi_protocol::marshal::from_slice(&request[4..]).unwrap();
    assert_eq!(value, sent);
    // Invalid marshal: closed without reply.
    assert_eq!(exchange(addr, b"\x21\x01\x00\x00\xff"), b"");
}

#[test]
fn graceful_shutdown_finishes_the_request_in_hand() {
    let server = start(&[
        "--socket",
        "127.0.0.1:0",
        "--processes",
        "2",
        "--stats",
        "127.0.0.1:0",
        "--udp",
        "127.0.0.1:0",
    ]);
    let addr = server.local_addrs()[0].clone();
    // A request whose body is still arriving when the stop comes.
    let mut stream = TcpStream::connect(&addr).unwrap();
    stream
        .write_all(&request_bytes(
            &[("REQUEST_METHOD", "POST"), ("CONTENT_LENGTH", "4")],
            b"ab",
        ))
        .unwrap();
    std::thread::sleep(Duration::from_millis(100));
    let stopping = std::thread::spawn(move || server.shutdown());
    std::thread::sleep(Duration::from_millis(100));
    stream.write_all(b"cd").unwrap();
    let mut reply = Vec::new();
    stream.read_to_end(&mut reply).unwrap();
    assert!(reply.starts_with(b"HTTP/1.0 200 OK"), "{reply:?}");
    assert!(reply.ends_with(b"(4 body bytes)\n"));
    stopping.join().unwrap();
    // Nothing listens any more.
    assert!(TcpStream::connect(&addr).is_err());
}

#[test]
fn silent_peers_are_closed_after_the_socket_timeout_on_tcp_and_unix() {
    let dir = std::env::temp_dir().join(format!("uwsgi-server-silent-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("s.sock");
    let server = start(&[
        "--socket",
        "127.0.0.1:0",
        "--socket",
        path.to_str().unwrap(),
        "--socket-timeout",
        "1",
    ]);
    let started = Instant::now();
    let mut tcp = TcpStream::connect(&server.local_addrs()[0]).unwrap();
    let mut unix = std::os::unix::net::UnixStream::connect(&path).unwrap();
    let mut rest = Vec::new();
    tcp.read_to_end(&mut rest).unwrap();
    unix.read_to_end(&mut rest).unwrap();
    assert!(rest.is_empty());
    let took = started.elapsed();
    assert!(
        took >= Duration::from_millis(900) && took < Duration::from_secs(4),
        "{took:?}"
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

/// Sends `request` on a unix socket, half-closes, reads the reply until the close.
fn unix_exchange(path: &std::path::Path, request: &[u8]) -> Vec<u8> {
    let mut stream = std::os::unix::net::UnixStream::connect(path).unwrap();
    stream.write_all(request).unwrap();
    stream.shutdown(std::net::Shutdown::Write).unwrap();
    let mut reply = Vec::new();
    stream.read_to_end(&mut reply).unwrap();
    reply
}

#[test]
fn each_socket_can_have_its_own_access_rules() {
    let dir = tempfile::tempdir().unwrap();
    let public = dir.path().join("public.sock");
    let public_name = public.to_str().unwrap();
    // The unix socket only answers WSGI and ping; the TCP socket refuses management
    // packets even from loopback. Neither rule touches the other socket.
    let server = start(&[
        "--socket",
        public_name,
        "--socket",
        "127.0.0.1:0",
        "--socket-allowed-modifiers",
        &format!("{public_name}=0,100"),
        "--socket-management-allow-from",
        "127.0.0.1:0=10.0.0.0/8",
    ]);
    let tcp = server
        .local_addrs()
        .into_iter()
        .find(|a| a.starts_with("127.0.0.1:"))
        .unwrap();
    // Unix socket: ping and WSGI answered, a signal (110) closed unanswered.
    assert_eq!(unix_exchange(&public, &[100, 0, 0, 0]), [100, 0, 0, 1]);
    let page = unix_exchange(&public, &request_bytes(&[("PATH_INFO", "/")], b""));
    assert!(page.starts_with(b"HTTP/1.0 200 OK"));
    assert_eq!(unix_exchange(&public, &[110, 0, 0, 1]), b"");
    // TCP socket: every modifier, but a signal from 127.0.0.1 is refused there...
    assert_eq!(exchange(&tcp, &[110, 0, 0, 1]), b"");
    assert_eq!(exchange(&tcp, &[100, 0, 0, 0]), [100, 0, 0, 1]);
    // ...while an echo (not management) is answered.
    let echo = framed(Modifier1::Echo, 0, b"still here");
    assert_eq!(
        exchange(&tcp, &echo),
        b"still here",
        "echo answers the body"
    );
}

#[test]
fn a_policy_for_an_unknown_socket_is_a_startup_error() {
    let args: Vec<String> = [
        "--socket",
        "127.0.0.1:3031",
        "--socket-allowed-modifiers",
        "127.0.0.1:9999=0",
    ]
    .iter()
    .map(|s| (*s).to_owned())
    .collect();
    let err = uwsgi_server::ServerConfig::from_sources(&args, &[]).unwrap_err();
    assert!(err.to_string().contains("127.0.0.1:9999"), "{err}");
}

/// `--limit-post`: a body past the limit is refused before a byte of it is read (the
/// connection closes without a reply, as uWSGI's "Invalid (too big) CONTENT_LENGTH"),
/// one at the limit is served, and the refusal costs the next client nothing.
#[test]
fn limit_post_refuses_a_whole_body_past_it() {
    let server = start(&[
        "--socket",
        "127.0.0.1:0",
        "--limit-post",
        "1000",
        "--disable-logging",
    ]);
    let addr = &server.local_addrs()[0];
    let post = |len: usize| {
        let length = len.to_string();
        let pairs = [
            ("REQUEST_METHOD", "POST"),
            ("PATH_INFO", "/upload"),
            ("SERVER_PROTOCOL", "HTTP/1.1"),
            ("CONTENT_LENGTH", length.as_str()),
        ];
        let body = vec![b'x'; len];
        // The server may close (and reset) before the whole body is written: a failed
        // write or read is a refusal too, with no reply bytes.
        let mut stream = TcpStream::connect(addr).unwrap();
        stream
            .set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        let _ = stream.write_all(&request_bytes(&pairs, &body));
        let _ = stream.shutdown(std::net::Shutdown::Write);
        let mut reply = Vec::new();
        let _ = stream.read_to_end(&mut reply);
        String::from_utf8(reply).unwrap()
    };
    assert_eq!(post(1001), "", "refused");
    assert_eq!(post(100_000), "", "refused");
    let reply = post(1000);
    assert!(reply.starts_with("HTTP/1.1 200 OK\r\n"), "{reply}");
    assert!(
        reply.ends_with("POST /upload (1000 body bytes)\n"),
        "{reply}"
    );
}
