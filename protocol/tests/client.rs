//! The blocking client against a real uWSGI 2.0 and against in-test responders.
//!
//! `cargo test -p uwsgi-protocol --features client`; see tests/src/uwsgi_peer.rs (shared
//! with the other crates' interop tests) for how uWSGI is found (`UWSGI_BIN`, a venv with
//! pyuwsgi, `UWSGI_SKIP_PEERS=1`).
#![cfg(feature = "client")]
#![allow(clippy::unwrap_used)]

// The launcher of the `uwsgi-tests` crate, included by path: it only uses std, and this
// crate cannot depend on `uwsgi-tests` (which depends on it).
#[allow(dead_code)]
#[path = "../../tests/src/uwsgi_peer.rs"]
mod uwsgi_peer;

use std::io::{Read, Write};
use std::net::{Ipv4Addr, TcpListener, UdpSocket};
use std::os::unix::net::{UnixDatagram, UnixListener};
use std::path::PathBuf;
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

use uwsgi_peer::{Server, uwsgi_bin};
use uwsgi_protocol::client::{
    Address, Client, DatagramListener, DatagramOptions, Error, HttpResponse, ListenOptions, Phase,
    Timeouts, send_multi,
};
use uwsgi_protocol::packet::{Request, rpc_mode};
use uwsgi_protocol::{
    ArrayBuilder, DecodeError, Header, InvalidPacket, Modifier1, Packet, Reply, VarsBuilder,
};

fn start_uwsgi() -> Option<Server> {
    uwsgi_bin().map(|bin| Server::start(&bin))
}

// ---------------------------------------------------------------------------------------
// Real uWSGI 2.0
// ---------------------------------------------------------------------------------------

#[test]
fn uwsgi_rpc() {
    let Some(server) = start_uwsgi() else { return };
    let client = Client::new(Address::unix(&server.unix));

    assert_eq!(
        client.rpc("hello", ["a", "b"]).unwrap(),
        Some(b"HELLO:a|b".to_vec())
    );
    assert_eq!(
        client.rpc("hello", Vec::<&[u8]>::new()).unwrap(),
        Some(b"HELLO:".to_vec())
    );
    // 65535 still fits the plain framed reply; 70000 takes 2.0's `ad LLLL 05` path.
    for n in [65535usize, 70000] {
        let result = client.rpc("big", [n.to_string()]).unwrap().unwrap();
        assert_eq!(result.len(), n);
        assert!(result.iter().all(|&b| b == b'x'));
    }
    // uWSGI 2.0 closes without a reply for an empty result and an unknown function.
    assert_eq!(client.rpc("empty", Vec::<&[u8]>::new()).unwrap(), None);
    assert_eq!(client.rpc("no-such-function", ["x"]).unwrap(), None);

    // A big result over the cap is refused, not buffered.
    let capped = client.clone().with_max_reply(10_000);
    assert!(matches!(
        capped.rpc("big", ["70000"]),
        Err(Error::ReplyTooLarge { limit: 10_000, .. })
    ));

    // The same over TCP.
    let tcp = Client::new(Address::from(server.tcp));
    assert_eq!(
        tcp.rpc("hello", ["tcp"]).unwrap(),
        Some(b"HELLO:tcp".to_vec())
    );

    // `send`: raw packets, replies read as `Expect::for_request` says.
    let items = ArrayBuilder::from_items(["hello", "raw"]).unwrap();
    let raw = client
        .send(173u8, rpc_mode::RAW, items.as_array().as_bytes())
        .unwrap();
    assert_eq!(raw.reply(), Reply::Raw(b"HELLO:raw"));
    let framed = client
        .send(173u8, rpc_mode::FRAMED, items.as_array().as_bytes())
        .unwrap();
    assert_eq!(framed.as_bytes(), b"\xad\x09\x00\x00HELLO:raw");
    let pong = client.send(100u8, 0, b"").unwrap();
    assert_eq!(pong.as_bytes(), [0x64, 0, 0, 1]);
    assert!(matches!(pong.reply(), Reply::Pong(_)));
    // Modifier 33 has no handler in 2.0: the connection just closes.
    let closed = client.send(33u8, 0, b"x").unwrap();
    assert!(closed.is_closed());
    assert_eq!(closed.reply(), Reply::Closed);
}

#[test]
fn uwsgi_cache() {
    let Some(server) = start_uwsgi() else { return };
    let client = Client::new(Address::unix(&server.unix));
    let cache = client.cache();

    assert!(cache.set(b"foo", b"bar", 0).unwrap());
    assert!(
        !cache.set(b"foo", b"other", 0).unwrap(),
        "set must not overwrite"
    );
    assert_eq!(cache.get(b"foo").unwrap(), Some(b"bar".to_vec()));
    assert!(cache.exists(b"foo").unwrap());
    assert!(cache.update(b"foo", b"baz", 0).unwrap());
    assert_eq!(cache.get(b"foo").unwrap(), Some(b"baz".to_vec()));
    assert!(cache.update(b"fresh", b"via update", 100).unwrap());
    assert_eq!(cache.get(b"fresh").unwrap(), Some(b"via update".to_vec()));

    assert_eq!(cache.get(b"missing").unwrap(), None);
    assert!(!cache.exists(b"missing").unwrap());
    assert!(cache.del(b"foo").unwrap());
    assert!(!cache.del(b"foo").unwrap(), "second del finds nothing");
    assert_eq!(cache.get(b"foo").unwrap(), None);

    // A 4000-byte value fits the 4096-byte blocks; 5000 does not and is refused.
    let value = vec![b'v'; 4000];
    assert!(cache.set(b"big", &value, 0).unwrap());
    assert_eq!(cache.get(b"big").unwrap(), Some(value));
    assert!(!cache.set(b"too-big", &[b'v'; 5000], 0).unwrap());

    assert!(cache.set(b"a", b"1", 0).unwrap());
    assert!(cache.clear().unwrap());
    assert_eq!(cache.get(b"a").unwrap(), None);
    assert_eq!(cache.get(b"big").unwrap(), None);

    // Unknown cache name: nothing, like every failure.
    let other = client.cache_named(b"nope");
    assert!(!other.set(b"k", b"v", 0).unwrap());
    assert_eq!(other.get(b"k").unwrap(), None);
    // The default cache by its name.
    assert!(client.cache_named(b"default").set(b"k", b"v", 0).unwrap());
    assert_eq!(cache.get(b"k").unwrap(), Some(b"v".to_vec()));
}

#[test]
fn uwsgi_requests_ping_signal_spool() {
    let Some(server) = start_uwsgi() else { return };
    let client = Client::new(Address::unix(&server.unix));

    assert_eq!(client.ping().unwrap(), None);

    let get = VarsBuilder::from_pairs([
        ("REQUEST_METHOD", "GET"),
        ("PATH_INFO", "/hello"),
        ("SERVER_PROTOCOL", "HTTP/1.1"),
    ])
    .unwrap();
    let raw = client.request(get.as_vars(), b"").unwrap();
    let http = HttpResponse::parse(&raw).unwrap();
    assert_eq!(
        (http.version, http.status, http.reason),
        ("HTTP/1.1", 200, "OK")
    );
    assert_eq!(http.header("content-type"), Some("text/plain"));
    assert_eq!(http.body, b"GET /hello 0\n");

    let body = b"hello world";
    let post = VarsBuilder::from_pairs([
        ("REQUEST_METHOD", "POST"),
        ("PATH_INFO", "/submit"),
        ("CONTENT_LENGTH", "11"),
    ])
    .unwrap();
    let raw = Client::new(Address::from(server.tcp))
        .request(post.as_vars(), body)
        .unwrap();
    let http = HttpResponse::parse(&raw).unwrap();
    assert_eq!(
        http.version, "HTTP/1.0",
        "2.0's default without SERVER_PROTOCOL"
    );
    assert_eq!(http.header("X-Body-Len"), Some("11"));
    assert_eq!(http.body, b"POST /submit 11\nhello world");

    // The app sets a warning message on /warn; ping reports it.
    let warn = VarsBuilder::from_pairs([("PATH_INFO", "/warn")]).unwrap();
    client.request(warn.as_vars(), b"").unwrap();
    assert_eq!(client.ping().unwrap().as_deref(), Some("WARN!"));

    client.signal(17).unwrap();
    assert_eq!(
        server.wait_for_mark("signal-17").as_deref(),
        Some(&b"ok"[..])
    );
    // uWSGI queues signals without a handler too.
    client.signal(99).unwrap();

    let job = VarsBuilder::from_pairs([("job", "one"), ("payload", "spooled bytes")]).unwrap();
    client.spool(job.as_vars()).unwrap();
    assert_eq!(
        server.wait_for_mark("spool-one").as_deref(),
        Some(&b"spooled bytes"[..]),
        "the spooler ran the job"
    );
}

#[test]
fn uwsgi_multi_forward_stats() {
    let Some(server) = start_uwsgi() else { return };
    let unix = Client::new(Address::unix(&server.unix));
    let tcp = Client::new(Address::from(server.tcp));

    let replies = send_multi(
        &[unix.clone(), tcp.clone()],
        100u8,
        0,
        b"",
        Duration::from_secs(3),
    )
    .unwrap();
    assert_eq!(replies.len(), 2);
    assert_eq!(replies[0].address, *unix.address());
    for node in &replies {
        let reply = node.result.as_ref().unwrap();
        assert!(matches!(reply.reply(), Reply::Pong(_)), "{node:?}");
        assert!(node.elapsed < Duration::from_secs(3));
    }

    // forward: header, vars and the announced body go out as they are; bytes after the
    // body stay in the source.
    let vars = VarsBuilder::from_pairs([
        ("REQUEST_METHOD", "POST"),
        ("PATH_INFO", "/fwd"),
        ("CONTENT_LENGTH", "4"),
    ])
    .unwrap();
    let mut packet = Packet::Request(Request::new(Modifier1::Wsgi, vars.as_vars())).to_vec();
    packet.extend_from_slice(b"bodyNEXT");
    let mut source = std::io::Cursor::new(packet);
    let reply = tcp.forward(&mut source).unwrap();
    let http = HttpResponse::parse(reply.as_bytes()).unwrap();
    assert_eq!(http.body, b"POST /fwd 4\nbody");
    let mut rest = Vec::new();
    source.read_to_end(&mut rest).unwrap();
    assert_eq!(rest, b"NEXT");
    let pong = unix.forward(&mut &[0x64u8, 0, 0, 0][..]).unwrap();
    assert!(matches!(pong.reply(), Reply::Pong(_)));
    // A source that ends inside the block: checked before connecting.
    let err = tcp.forward(&mut &b"\x64\x05\x00\x00ab"[..]).unwrap_err();
    assert!(
        matches!(
            err,
            Error::InvalidRequest(DecodeError::Incomplete { needed: 3 })
        ),
        "{err:?}"
    );

    // stats: the JSON document the stats server writes on connect.
    let doc = Client::new(Address::from(server.stats)).stats().unwrap();
    let doc = String::from_utf8(doc).unwrap();
    assert!(doc.starts_with('{') && doc.contains("\"workers\""), "{doc}");
}

// ---------------------------------------------------------------------------------------
// In-test responders
// ---------------------------------------------------------------------------------------

/// Reads one request (header and block) from `stream`.
fn read_request(stream: &mut impl Read) -> Vec<u8> {
    let mut request = vec![0; 4];
    stream.read_exact(&mut request).unwrap();
    let header = Header::parse(&request).unwrap();
    request.resize(header.packet_len(), 0);
    stream.read_exact(&mut request[4..]).unwrap();
    request
}

/// A TCP responder on 127.0.0.1 for one connection: reads the request, then `respond`.
/// The handle yields the request bytes.
fn tcp_responder(
    respond: impl FnOnce(&mut std::net::TcpStream) + Send + 'static,
) -> (Address, thread::JoinHandle<Vec<u8>>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let address = Address::from(listener.local_addr().unwrap());
    let handle = thread::spawn(move || {
        let (mut stream, _) = listener.accept().unwrap();
        let request = read_request(&mut stream);
        respond(&mut stream);
        request
    });
    (address, handle)
}

fn quick() -> Timeouts {
    Timeouts::uniform(Duration::from_millis(300))
}

fn temp_path(name: &str) -> PathBuf {
    let path = std::env::temp_dir().join(format!("uwsgi-client-{}-{name}", std::process::id()));
    let _ = std::fs::remove_file(&path);
    path
}

#[test]
fn read_timeout_when_the_server_stays_silent() {
    let (done, wait) = mpsc::channel::<()>();
    let (address, _) = tcp_responder(move |_| {
        let _ = wait.recv_timeout(Duration::from_secs(5));
    });
    let client = Client::new(address).with_timeouts(quick());
    let start = Instant::now();
    let err = client.ping().unwrap_err();
    let elapsed = start.elapsed();
    assert!(
        matches!(
            err,
            Error::Timeout {
                phase: Phase::Read,
                ..
            }
        ),
        "{err:?}"
    );
    assert!(err.is_timeout());
    assert!(
        elapsed >= Duration::from_millis(250) && elapsed < Duration::from_secs(2),
        "{elapsed:?}"
    );
    drop(done);
}

#[test]
fn host_names_are_resolved_within_the_connect_timeout() {
    // A name goes through the bounded resolver (a helper thread) and still connects:
    // `localhost` may list ::1 first, which refuses, then 127.0.0.1.
    let (address, handle) = tcp_responder(|stream| {
        stream.write_all(&[100, 0, 0, 0]).unwrap();
    });
    let Address::Tcp { port, .. } = address else {
        unreachable!("a TCP responder")
    };
    let client = Client::new(Address::tcp("localhost", port)).with_timeouts(quick());
    assert_eq!(client.ping().unwrap(), None);
    assert_eq!(handle.join().unwrap(), [100, 0, 0, 0]);
}

#[test]
fn connection_refused_is_an_io_error() {
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let address: Address = format!("127.0.0.1:{port}").parse().unwrap();
    let err = Client::new(address.clone()).ping().unwrap_err();
    match &err {
        Error::Io { source, .. } => {
            assert_eq!(source.kind(), std::io::ErrorKind::ConnectionRefused)
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(err.address(), Some(&address));
    assert!(err.to_string().starts_with(&format!("127.0.0.1:{port}: ")));
}

#[test]
fn reply_cap() {
    let vars = VarsBuilder::from_pairs([("PATH_INFO", "/")]).unwrap();
    // Exactly the cap fits; one byte more does not.
    for (size, fits) in [(4096, true), (4097, false), (100_000, false)] {
        let (address, _) = tcp_responder(move |s| {
            let _ = s.write_all(&vec![b'H'; size]);
        });
        let result = Client::new(address)
            .with_max_reply(4096)
            .request(vars.as_vars(), b"");
        match result {
            Ok(bytes) => assert!(fits && bytes.len() == size, "{size}"),
            Err(Error::ReplyTooLarge { limit: 4096, .. }) => assert!(!fits, "{size}"),
            Err(other) => panic!("{size}: {other:?}"),
        }
    }

    // An RPC big result announcing 1 GB fails at once, without waiting for the data.
    let (done, wait) = mpsc::channel::<()>();
    let (address, _) = tcp_responder(move |s| {
        let announce = VarsBuilder::from_pairs([("CONTENT_LENGTH", "1000000000")]).unwrap();
        let reply = Reply::RpcBigResult {
            vars: announce.as_vars(),
            data: b"",
        };
        s.write_all(&reply.to_vec()).unwrap();
        let _ = wait.recv_timeout(Duration::from_secs(5));
    });
    let start = Instant::now();
    let err = Client::new(address).rpc("big", ["1"]).unwrap_err();
    assert!(matches!(err, Error::ReplyTooLarge { .. }), "{err:?}");
    assert!(start.elapsed() < Duration::from_secs(2));
    drop(done);
}

#[test]
fn garbage_and_truncated_replies_are_protocol_errors() {
    let (address, _) = tcp_responder(|s| s.write_all(b"garbage!").unwrap());
    let err = Client::new(address).ping().unwrap_err();
    assert!(
        matches!(
            err,
            Error::Protocol {
                source: DecodeError::Invalid(InvalidPacket::UnexpectedReply { .. }),
                ..
            }
        ),
        "{err:?}"
    );

    // A ping reply announcing 10 bytes, 3 sent, then close.
    let (address, _) = tcp_responder(|s| s.write_all(b"\x64\x0a\x00\x01abc").unwrap());
    let err = Client::new(address).ping().unwrap_err();
    assert!(
        matches!(
            err,
            Error::Protocol {
                source: DecodeError::Invalid(InvalidPacket::Truncated { needed: 7 }),
                ..
            }
        ),
        "{err:?}"
    );

    // A signal answered with a failure status; a signal answered by a close.
    let (address, _) = tcp_responder(|s| s.write_all(&Reply::failed().to_vec()).unwrap());
    let err = Client::new(address).signal(1).unwrap_err();
    assert!(
        matches!(
            err,
            Error::Rejected {
                what: "signal",
                status: 0,
                ..
            }
        ),
        "{err:?}"
    );
    let (address, _) = tcp_responder(|_| {});
    let err = Client::new(address).signal(1).unwrap_err();
    assert!(matches!(err, Error::NoReply { .. }), "{err:?}");
}

#[test]
fn body_must_match_content_length() {
    // Checked before connecting: this address has no listener.
    let client = Client::new("127.0.0.1:9".parse().unwrap());
    let vars = VarsBuilder::from_pairs([("CONTENT_LENGTH", "5")]).unwrap();
    assert!(matches!(
        client.request(vars.as_vars(), b"abc"),
        Err(Error::BodyLength {
            declared: 5,
            actual: 3
        })
    ));
    assert!(matches!(
        client.request(VarsBuilder::new().as_vars(), b"abc"),
        Err(Error::BodyLength {
            declared: 0,
            actual: 3
        })
    ));
}

/// Answers one ping on a unix listener with warning `warning`.
fn unix_ping_responder(
    listener: UnixListener,
    warning: &'static [u8],
) -> thread::JoinHandle<Vec<u8>> {
    thread::spawn(move || {
        let (mut stream, _) = listener.accept().unwrap();
        let request = read_request(&mut stream);
        let pong = Reply::Pong(uwsgi_protocol::packet::Message::new(
            1,
            uwsgi_protocol::packet::Payload::new(warning).unwrap(),
        ));
        stream.write_all(&pong.to_vec()).unwrap();
        request
    })
}

#[test]
fn unix_stream_sockets() {
    let path = temp_path("stream.sock");
    let listener = UnixListener::bind(&path).unwrap();
    let handle = unix_ping_responder(listener, b"careful");
    let address: Address = format!("unix:{}", path.display()).parse().unwrap();
    let warning = Client::new(address).with_timeouts(quick()).ping().unwrap();
    assert_eq!(warning.as_deref(), Some("careful"));
    assert_eq!(handle.join().unwrap(), [0x64, 0, 0, 0]);
    let _ = std::fs::remove_file(&path);
}

#[cfg(target_os = "linux")]
#[test]
fn abstract_unix_sockets() {
    use std::os::linux::net::SocketAddrExt;
    let name = format!("uwsgi-client-test-{}", std::process::id());
    let addr = std::os::unix::net::SocketAddr::from_abstract_name(&name).unwrap();
    let listener = UnixListener::bind_addr(&addr).unwrap();
    let handle = unix_ping_responder(listener, b"");
    let address: Address = format!("@{name}").parse().unwrap();
    assert_eq!(Client::new(address).ping().unwrap(), None);
    handle.join().unwrap();
}

#[test]
fn ipv6_loopback() {
    let listener = match TcpListener::bind("[::1]:0") {
        Ok(listener) => listener,
        Err(e) => {
            eprintln!("SKIPPED ipv6_loopback: cannot bind [::1] here ({e})");
            return;
        }
    };
    let port = listener.local_addr().unwrap().port();
    let handle = thread::spawn(move || {
        let (mut stream, _) = listener.accept().unwrap();
        read_request(&mut stream);
        stream.write_all(&Reply::ok().to_vec()).unwrap();
    });
    let address: Address = format!("[::1]:{port}").parse().unwrap();
    assert_eq!(address.to_string(), format!("[::1]:{port}"));
    Client::new(address).signal(3).unwrap();
    handle.join().unwrap();
}

/// The bytes of a modifier1 74 datagram carrying "hello".
const HELLO_DATAGRAM: &[u8] = b"\x4a\x05\x00\x00hello";

#[test]
fn udp_datagram_is_byte_exact() {
    let receiver = UdpSocket::bind("127.0.0.1:0").unwrap();
    receiver
        .set_read_timeout(Some(Duration::from_secs(2)))
        .unwrap();
    let client = Client::new(Address::from(receiver.local_addr().unwrap()));
    client
        .send_datagram(74u8, 0, b"hello", &DatagramOptions::default())
        .unwrap();
    let mut buf = [0u8; 64];
    let (n, _) = receiver.recv_from(&mut buf).unwrap();
    assert_eq!(&buf[..n], HELLO_DATAGRAM);
}

#[test]
fn udp_multicast_on_loopback() {
    let group = Ipv4Addr::new(239, 255, 42, 17);
    let receiver = UdpSocket::bind("0.0.0.0:0").unwrap();
    if let Err(e) = receiver.join_multicast_v4(&group, &Ipv4Addr::LOCALHOST) {
        eprintln!("SKIPPED udp_multicast_on_loopback: cannot join {group} on lo ({e})");
        return;
    }
    receiver
        .set_read_timeout(Some(Duration::from_secs(2)))
        .unwrap();
    let port = receiver.local_addr().unwrap().port();
    let client = Client::new(format!("{group}:{port}").parse().unwrap());
    let options = DatagramOptions {
        multicast_ttl: Some(1),
        multicast_loop: Some(true),
        multicast_interface: Some(Ipv4Addr::LOCALHOST),
        broadcast: false,
    };
    client.send_datagram(74u8, 0, b"hello", &options).unwrap();
    let mut buf = [0u8; 64];
    let (n, _) = receiver
        .recv_from(&mut buf)
        .expect("the looped-back multicast datagram");
    assert_eq!(&buf[..n], HELLO_DATAGRAM);
}

#[test]
fn unix_datagram() {
    let path = temp_path("dgram.sock");
    let receiver = UnixDatagram::bind(&path).unwrap();
    receiver
        .set_read_timeout(Some(Duration::from_secs(2)))
        .unwrap();
    Client::new(Address::unix(&path))
        .send_datagram(74u8, 0, b"hello", &DatagramOptions::default())
        .unwrap();
    let mut buf = [0u8; 64];
    let n = receiver.recv(&mut buf).unwrap();
    assert_eq!(&buf[..n], HELLO_DATAGRAM);
    let _ = std::fs::remove_file(&path);
}

#[test]
fn multi_overall_timeout_bounds_a_silent_node() {
    let (done, wait) = mpsc::channel::<()>();
    let (silent, _) = tcp_responder(move |_| {
        let _ = wait.recv_timeout(Duration::from_secs(10));
    });
    let refused = Address::from(
        TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap(),
    );
    let nodes = [Client::new(silent), Client::new(refused)];
    let start = Instant::now();
    let replies = send_multi(&nodes, 100u8, 0, b"", Duration::from_millis(300)).unwrap();
    assert!(
        start.elapsed() < Duration::from_secs(2),
        "{:?}",
        start.elapsed()
    );
    assert!(
        matches!(
            replies[0].result,
            Err(Error::Timeout {
                phase: Phase::Read,
                ..
            })
        ),
        "{:?}",
        replies[0]
    );
    assert!(replies[0].elapsed >= Duration::from_millis(250));
    assert!(matches!(replies[1].result, Err(Error::Io { .. })));
    drop(done);
}

#[test]
fn datagram_listener_round_trip() {
    let mut listener =
        DatagramListener::bind(&"127.0.0.1:0".parse().unwrap(), &ListenOptions::default()).unwrap();
    let local = listener.local_address();
    assert_ne!(local.to_string(), "127.0.0.1:0");
    Client::new(local)
        .send_datagram(74u8, 0, b"hello", &DatagramOptions::default())
        .unwrap();
    let got = listener.recv(Some(Duration::from_secs(2))).unwrap();
    assert_eq!(got.bytes, HELLO_DATAGRAM);
    assert!(got.source.unwrap().starts_with("127.0.0.1:"));
    let err = listener.recv(Some(Duration::from_millis(50))).unwrap_err();
    assert!(err.is_timeout(), "{err:?}");

    // A unix datagram path.
    let path = temp_path("listen.sock");
    let mut listener =
        DatagramListener::bind(&Address::unix(&path), &ListenOptions::default()).unwrap();
    Client::new(Address::unix(&path))
        .send_datagram(74u8, 0, b"hello", &DatagramOptions::default())
        .unwrap();
    assert_eq!(
        listener.recv(Some(Duration::from_secs(2))).unwrap().bytes,
        HELLO_DATAGRAM
    );
    let _ = std::fs::remove_file(&path);
}
