//! The `uwsgi` module's request functions through the real binary
//! (tests/apps/request_functions.py): `sendfile` over the uwsgi protocol and HTTP,
//! `route` to a second instance relaying its response byte for byte (with a var added
//! by `add_var`), `chunked_read` of a chunked HTTP upload, websockets (RFC 6455) over
//! `--http-socket` and over `--socket` with a hand-written client, and `grunt` with
//! `--master`; the raw connection functions (`send(data)`, `recv` and friends on
//! `connection_fd()`).

#![allow(clippy::unwrap_used)]

mod common;
#[path = "../../tests/src/uwsgi_peer.rs"]
#[allow(dead_code)]
mod uwsgi_peer;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use common::binary::Instance;

fn app() -> String {
    format!(
        "{}/tests/apps/request_functions.py",
        env!("CARGO_MANIFEST_DIR")
    )
}

fn start(extra: &[&str]) -> Instance {
    let app = app();
    let mut args = vec!["--wsgi-file", app.as_str()];
    args.extend_from_slice(extra);
    Instance::start(&args)
}

fn uwsgi_request(addr: &str, vars: &[(&str, &str)], body: &[u8]) -> Vec<u8> {
    common::exchange(addr, &common::request_bytes(vars, body))
}

fn get_vars<'a>(path: &'a str, query: &'a str) -> Vec<(&'a str, &'a str)> {
    vec![
        ("REQUEST_METHOD", "GET"),
        ("PATH_INFO", path),
        ("QUERY_STRING", query),
        ("SERVER_PROTOCOL", "HTTP/1.1"),
        ("SERVER_NAME", "test"),
        ("SERVER_PORT", "80"),
    ]
}

/// One HTTP/1.1 request with `Connection: close`; the whole reply.
fn http(addr: &str, request: &[u8]) -> Vec<u8> {
    let mut stream = TcpStream::connect(addr).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    stream.write_all(request).unwrap();
    let mut reply = Vec::new();
    stream.read_to_end(&mut reply).unwrap();
    reply
}

fn split_head(reply: &[u8]) -> (String, Vec<u8>) {
    let end = reply.windows(4).position(|w| w == b"\r\n\r\n").unwrap() + 4;
    (
        String::from_utf8_lossy(&reply[..end]).into_owned(),
        reply[end..].to_vec(),
    )
}

fn file_of(len: usize) -> (tempfile::NamedTempFile, Vec<u8>) {
    let data: Vec<u8> = (0..len).map(|i| u8::try_from(i % 251).unwrap()).collect();
    let mut file = tempfile::NamedTempFile::new().unwrap();
    file.write_all(&data).unwrap();
    (file, data)
}

#[test]
fn sendfile_sends_the_head_then_the_file_over_uwsgi_and_http() {
    let (file, data) = file_of(1_500_000);
    let query = format!("{}&{}", file.path().display(), data.len());

    let server = start(&["--socket", "127.0.0.1:0"]);
    let reply = uwsgi_request(&server.addr, &get_vars("/sendfile", &query), b"");
    let (head, body) = split_head(&reply);
    assert!(head.starts_with("HTTP/1.1 200 OK\r\n"), "{head}");
    assert!(head.contains("Content-Length: 1500000"), "{head}");
    assert!(
        body == data,
        "the file arrives intact ({} bytes)",
        body.len()
    );
    let reply = uwsgi_request(&server.addr, &get_vars("/sendfile_missing", ""), b"");
    assert!(
        reply.ends_with(b"None"),
        "{}",
        String::from_utf8_lossy(&reply)
    );
    drop(server);

    let server = start(&["--http-socket", "127.0.0.1:0"]);
    let request = format!("GET /sendfile?{query} HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n");
    let (head, body) = split_head(&http(&server.addr, request.as_bytes()));
    assert!(head.starts_with("HTTP/1.1 200 OK\r\n"), "{head}");
    assert!(
        body == data,
        "the file arrives intact over HTTP ({} bytes)",
        body.len()
    );
}

#[test]
fn route_forwards_to_another_node_and_relays_its_response_byte_for_byte() {
    let node = start(&["--socket", "127.0.0.1:0"]);
    let front = start(&["--socket", "127.0.0.1:0"]);
    let vars = [
        ("REQUEST_METHOD", "POST"),
        ("PATH_INFO", "/route"),
        ("QUERY_STRING", node.addr.as_str()),
        ("SERVER_PROTOCOL", "HTTP/1.1"),
        ("CONTENT_LENGTH", "5"),
    ];
    let relayed = uwsgi_request(&front.addr, &vars, b"hello");
    // What the node answers to the same request, sent to it directly with the var the
    // front added.
    let mut direct_vars = vars.to_vec();
    direct_vars.push(("X_ROUTED_BY", "front"));
    let direct = uwsgi_request(&node.addr, &direct_vars, b"hello");
    assert!(
        direct.ends_with(b"POST /route routed_by=front offload=b'' body=hello"),
        "{}",
        String::from_utf8_lossy(&direct)
    );
    assert!(direct.starts_with(b"HTTP/1.1 201 Created\r\n"));
    assert_eq!(
        String::from_utf8_lossy(&relayed),
        String::from_utf8_lossy(&direct)
    );

    let reply = uwsgi_request(&front.addr, &get_vars("/route_unknown", ""), b"");
    assert!(
        reply.ends_with(b"[-1, -1]"),
        "{}",
        String::from_utf8_lossy(&reply)
    );
    // The log line is read from the server's stderr by another thread: wait for it.
    front.wait_for_count("invalid route syntax: nocommas", 1, Duration::from_secs(5));
    assert_eq!(front.count("invalid route syntax: nocommas"), 1);
}

/// `route` to real uWSGI 2.0 (the peer app, on its unix socket): the front's response
/// is byte for byte what uWSGI answers to the same request with the added var.
#[test]
fn route_forwards_to_real_uwsgi_over_a_unix_socket() {
    let Some(node) = uwsgi_peer::start() else {
        return;
    };
    let front = start(&["--socket", "127.0.0.1:0"]);
    let unix = node.unix.display().to_string();
    let vars = [
        ("REQUEST_METHOD", "POST"),
        ("PATH_INFO", "/route_extra"),
        ("QUERY_STRING", unix.as_str()),
        ("SERVER_PROTOCOL", "HTTP/1.1"),
        ("CONTENT_LENGTH", "5"),
    ];
    let relayed = uwsgi_request(&front.addr, &vars, b"hello");
    let mut direct_vars = vars.to_vec();
    direct_vars.push(("X_EXTRA", "routed"));
    let mut direct = std::os::unix::net::UnixStream::connect(&node.unix).unwrap();
    direct
        .write_all(&common::request_bytes(&direct_vars, b"hello"))
        .unwrap();
    let mut answer = Vec::new();
    direct.read_to_end(&mut answer).unwrap();
    let text = String::from_utf8_lossy(&answer);
    assert!(text.starts_with("HTTP/1.1 200 OK\r\n"), "{text}");
    assert!(
        text.contains("POST /route_extra 5\nQUERY_STRING=") && text.contains("X_EXTRA=routed\n"),
        "{text}"
    );
    assert_eq!(String::from_utf8_lossy(&relayed), text);
}

#[test]
fn chunked_read_returns_the_chunks_of_a_chunked_upload() {
    let server = start(&["--http-socket", "127.0.0.1:0"]);
    let request = b"POST /chunked HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\
Transfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n1\r\n \r\n5\r\nworld\r\n0\r\n\r\n";
    let (head, body) = split_head(&http(&server.addr, request));
    assert!(head.starts_with("HTTP/1.1 200 OK\r\n"), "{head}");
    let body = String::from_utf8_lossy(&body).into_owned();
    // The HTTP/1.1 reply is chunked by the server in turn.
    assert!(body.contains("11 bytes: hello world"), "{body}");
}

/// `chunked_read_nb` and `chunked_read(timeout)` on a streamed body: the non-blocking
/// read answers `None` while the client pauses, the timed one raises after its timeout,
/// and no byte is lost around them.
#[test]
fn chunked_read_nb_and_timeout_follow_the_client() {
    let server = start(&["--socket", "127.0.0.1:0", "--socket-timeout", "30"]);
    let total = 100_000usize;
    let length = total.to_string();
    let vars = [
        ("REQUEST_METHOD", "POST"),
        ("PATH_INFO", "/chunked_wait"),
        ("SERVER_PROTOCOL", "HTTP/1.1"),
        ("CONTENT_LENGTH", length.as_str()),
    ];
    let body = vec![b'x'; total];
    let packet = common::request_bytes(&vars, &body);
    let head_len = packet.len() - total;
    let mut stream = TcpStream::connect(&server.addr).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    stream.write_all(&packet[..head_len + 1000]).unwrap();
    std::thread::sleep(Duration::from_secs(3));
    stream.write_all(&packet[head_len + 1000..]).unwrap();
    let mut reply = Vec::new();
    stream.read_to_end(&mut reply).unwrap();
    let reply = String::from_utf8_lossy(&reply);
    assert!(
        reply.ends_with("first=1000 pause=None timeout=True total=100000"),
        "{reply}"
    );
}

/// A client frame: masked, as RFC 6455 requires of clients.
fn client_frame(opcode: u8, fin: bool, payload: &[u8]) -> Vec<u8> {
    let mask = [0xa1, 0x5b, 0x03, 0xee];
    let mut out = vec![if fin { 0x80 } else { 0 } | opcode];
    if payload.len() < 126 {
        out.push(0x80 | u8::try_from(payload.len()).unwrap());
    } else {
        out.push(0x80 | 126);
        out.extend_from_slice(&u16::try_from(payload.len()).unwrap().to_be_bytes());
    }
    out.extend_from_slice(&mask);
    out.extend(payload.iter().enumerate().map(|(i, b)| b ^ mask[i % 4]));
    out
}

/// Reads one (unmasked) server frame: opcode and payload.
fn server_frame(stream: &mut TcpStream) -> (u8, Vec<u8>) {
    let mut head = [0u8; 2];
    stream.read_exact(&mut head).unwrap();
    assert_eq!(head[0] & 0x80, 0x80, "server frames are final");
    assert_eq!(head[1] & 0x80, 0, "server frames are not masked");
    let len = match head[1] & 0x7f {
        126 => {
            let mut b = [0u8; 2];
            stream.read_exact(&mut b).unwrap();
            usize::from(u16::from_be_bytes(b))
        }
        n => usize::from(n),
    };
    let mut payload = vec![0u8; len];
    stream.read_exact(&mut payload).unwrap();
    (head[0] & 0x0f, payload)
}

/// Reads the 101 head off `stream`.
fn read_101(stream: &mut TcpStream) -> String {
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        stream.read_exact(&mut byte).unwrap();
        head.push(byte[0]);
    }
    String::from_utf8(head).unwrap()
}

fn exercise_websocket(stream: &mut TcpStream, head: &str) {
    assert!(
        head.contains(" 101 Web Socket Protocol Handshake\r\n"),
        "{head}"
    );
    assert!(head.contains("Upgrade: WebSocket\r\n"), "{head}");
    assert!(
        head.contains("Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n"),
        "{head}"
    );
    stream.write_all(&client_frame(0x1, true, b"hi")).unwrap();
    assert_eq!(server_frame(stream), (0x1, b"echo: hi".to_vec()));
    // A fragmented message with a ping between its fragments: the pong (echoing the
    // ping's payload) comes first, then the joined message.
    let mut bytes = client_frame(0x1, false, b"Hel");
    bytes.extend(client_frame(0x9, true, b"are you there"));
    bytes.extend(client_frame(0x0, false, b"l"));
    bytes.extend(client_frame(0x0, true, b"o"));
    stream.write_all(&bytes).unwrap();
    assert_eq!(server_frame(stream), (0xA, b"are you there".to_vec()));
    assert_eq!(server_frame(stream), (0x1, b"echo: Hello".to_vec()));
    let long = vec![b'x'; 300];
    stream.write_all(&client_frame(0x2, true, &long)).unwrap();
    let (opcode, payload) = server_frame(stream);
    assert_eq!(opcode, 0x1);
    assert_eq!(payload.len(), 306);
    stream
        .write_all(&client_frame(0x1, true, b"binary please"))
        .unwrap();
    assert_eq!(server_frame(stream), (0x2, vec![0, 1, 2]));
    // Nothing waiting: `websocket_recv_nb` returns b"", and, as uWSGI, its first idle
    // round pings the client.
    stream.write_all(&client_frame(0x1, true, b"nb")).unwrap();
    assert_eq!(server_frame(stream), (0x9, Vec::new()));
    assert_eq!(server_frame(stream), (0x1, b"b''".to_vec()));
    stream.write_all(&client_frame(0xA, true, b"")).unwrap();
}

#[test]
fn websockets_over_the_http_socket() {
    let server = start(&["--http-socket", "127.0.0.1:0", "--websockets-max-size", "1"]);
    let handshake = b"GET /ws HTTP/1.1\r\nHost: t\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n";

    // Messages, then a close: answered with a close, and the connection ends.
    let mut stream = TcpStream::connect(&server.addr).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    stream.write_all(handshake).unwrap();
    let head = read_101(&mut stream);
    assert!(head.starts_with("HTTP/1.1 101 "), "{head}");
    exercise_websocket(&mut stream, &head);
    stream.write_all(&client_frame(0x8, true, b"")).unwrap();
    assert_eq!(server_frame(&mut stream), (0x8, Vec::new()));
    let mut rest = Vec::new();
    stream.read_to_end(&mut rest).unwrap();
    assert!(
        rest.is_empty(),
        "nothing after the close, not kept alive: {rest:?}"
    );

    // A frame over --websockets-max-size (1 KiB) ends the session.
    let mut stream = TcpStream::connect(&server.addr).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    stream.write_all(handshake).unwrap();
    read_101(&mut stream);
    stream
        .write_all(&client_frame(0x2, true, &[7u8; 2000]))
        .unwrap();
    let mut rest = Vec::new();
    stream.read_to_end(&mut rest).unwrap();
    assert!(rest.is_empty(), "{rest:?}");
    server.wait_for("the size error", Duration::from_secs(5), |lines| {
        lines
            .iter()
            .any(|l| l.contains("over --websockets-max-size (1024 bytes)"))
    });
}

#[test]
fn websockets_over_the_uwsgi_socket() {
    let server = start(&["--socket", "127.0.0.1:0"]);
    let mut vars = get_vars("/ws", "");
    vars.extend([
        ("HTTP_UPGRADE", "websocket"),
        ("HTTP_CONNECTION", "Upgrade"),
        ("HTTP_SEC_WEBSOCKET_KEY", "dGhlIHNhbXBsZSBub25jZQ=="),
        ("HTTP_ORIGIN", "http://example.com"),
    ]);
    let mut stream = TcpStream::connect(&server.addr).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    stream
        .write_all(&common::request_bytes(&vars, b""))
        .unwrap();
    let head = read_101(&mut stream);
    assert!(head.starts_with("HTTP/1.1 101 "), "{head}");
    assert!(
        head.contains("Sec-WebSocket-Origin: http://example.com\r\n"),
        "{head}"
    );
    exercise_websocket(&mut stream, &head);
    stream.write_all(&client_frame(0x8, true, b"")).unwrap();
    assert_eq!(server_frame(&mut stream), (0x8, Vec::new()));
}

#[test]
fn grunt_forks_a_worker_that_finishes_the_request() {
    let server = start(&["--socket", "127.0.0.1:0", "--master", "--grunt"]);
    let reply = uwsgi_request(&server.addr, &get_vars("/grunt", ""), b"");
    let text = String::from_utf8_lossy(&reply).into_owned();
    let tail = text
        .split("from the grunt ")
        .nth(1)
        .unwrap_or_else(|| panic!("{text}"));
    let (grunt, worker) = tail.split_once(" (worker was ").unwrap();
    let worker = worker.trim_end_matches(')');
    assert_ne!(grunt, worker, "the grunt is another process");
    server.wait_for_count("spawning a grunt from worker 1", 1, Duration::from_secs(5));
    assert_eq!(server.count("spawning a grunt from worker 1"), 1);
    // The worker goes on serving; the grunt exited and was reaped, not respawned as a
    // dead worker.
    let reply = uwsgi_request(&server.addr, &get_vars("/nothing", ""), b"");
    assert!(reply.ends_with(b"not found"));
    std::thread::sleep(Duration::from_millis(300));
    let grunt_pid: u32 = grunt.parse().unwrap();
    let gone = !std::path::Path::new(&format!("/proc/{grunt_pid}")).exists();
    assert!(gone, "the grunt was reaped");
    assert_eq!(server.count("respawn"), 0, "{:?}", server.log());

    let server = start(&["--socket", "127.0.0.1:0"]);
    let reply = uwsgi_request(&server.addr, &get_vars("/grunt", ""), b"");
    assert!(reply.ends_with(b"from the worker"));
    // The log line is read from the server's stderr by another thread: wait for it.
    server.wait_for_count("grunt support is disabled !!!", 1, Duration::from_secs(5));
    assert_eq!(server.count("grunt support is disabled !!!"), 1);
}

/// Reads from `stream` until `want` arrived (and returns everything read).
fn read_until(stream: &mut TcpStream, want: &[u8]) -> Vec<u8> {
    let mut got = Vec::new();
    let mut buf = [0u8; 1024];
    while !got.windows(want.len()).any(|w| w == want) {
        let n = stream.read(&mut buf).unwrap();
        assert!(n > 0, "closed before {want:?}: {got:?}");
        got.extend_from_slice(&buf[..n]);
    }
    got
}

#[test]
fn send_writes_to_the_request_socket_and_recv_reads_any_descriptor() {
    let server = start(&["--socket", "127.0.0.1:0"]);
    let mut stream = TcpStream::connect(&server.addr).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    stream
        .write_all(&common::request_bytes(&get_vars("/raw", ""), b""))
        .unwrap();
    // uwsgi.send(data): the bytes as they are, before any response head.
    assert_eq!(read_until(&mut stream, b"ready\n"), b"ready\n");
    // recv_block(connection_fd()) reads what the client sends next; send(fd, data).
    stream.write_all(b"ping").unwrap();
    assert_eq!(read_until(&mut stream, b"got ping\n"), b"got ping\n");
    stream.write_all(b"junk\x00hello\xff").unwrap();
    assert_eq!(read_until(&mut stream, b"frame hello\n"), b"frame hello\n");
    stream.write_all(b"tail").unwrap();
    let mut reply = Vec::new();
    stream.read_to_end(&mut reply).unwrap();
    let (head, body) = split_head(&reply);
    assert!(head.starts_with("HTTP/1.1 200 OK\r\n"), "{head}");
    assert_eq!(
        String::from_utf8_lossy(&body),
        "rest=b'tail' connected=True waited=timeout"
    );

    // Outside a request (another thread), uWSGI's SystemError.
    let reply = uwsgi_request(&server.addr, &get_vars("/raw_outside", ""), b"");
    assert!(
        reply.ends_with(b"['you can call uwsgi api function only from the main callable']"),
        "{}",
        String::from_utf8_lossy(&reply)
    );
}
