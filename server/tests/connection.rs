//! The connection handler over real loopback sockets.

// Test helpers unwrap: a panic here is a failed test with its backtrace.
#![allow(clippy::unwrap_used)]

use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::thread;

use uwsgi_server::{Config, ServeError, serve};

/// Serves `connections` connections on 127.0.0.1:0 and returns the address and the
/// outcomes.
fn server(
    connections: usize,
    config: Config,
) -> (
    std::net::SocketAddr,
    thread::JoinHandle<Vec<Result<usize, ServeError>>>,
) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let handle = thread::spawn(move || {
        (0..connections)
            .map(|_| {
                let (mut stream, _) = listener.accept().unwrap();
                stream
                    .set_read_timeout(Some(config.socket_timeout))
                    .unwrap();
                serve(&mut stream, &config)
            })
            .collect()
    });
    (addr, handle)
}

fn exchange(addr: std::net::SocketAddr, request: &[u8]) -> Vec<u8> {
    let mut stream = TcpStream::connect(addr).unwrap();
    stream.write_all(request).unwrap();
    stream.shutdown(Shutdown::Write).unwrap();
    let mut reply = Vec::new();
    let _ = stream.read_to_end(&mut reply);
    reply
}

#[test]
fn ping_echo_and_bad_input_over_tcp() {
    let config = Config {
        warning_message: b"WARN!".to_vec(),
        ..Config::default()
    };
    let (addr, handle) = server(5, config);
    // spec §7.2: a ping after set_warning_message('WARN!')
    assert_eq!(exchange(addr, &[0x64, 0, 0, 0]), b"\x64\x05\x00\x01WARN!");
    // echo answers the block raw
    assert_eq!(exchange(addr, b"\x65\x07\x00\x00echo-me"), b"echo-me");
    // a key length past the block end: closed, nothing sent
    assert_eq!(
        exchange(addr, &[0x00, 0x03, 0x00, 0x00, 0x50, 0x00, 0x52]),
        b""
    );
    // an unknown modifier: closed, nothing sent
    assert_eq!(exchange(addr, &[0x21, 0x00, 0x00, 0x00]), b"");
    // a header cut short
    assert_eq!(exchange(addr, &[0x64, 0x00]), b"");
    let outcomes = handle.join().unwrap();
    assert!(matches!(outcomes[0], Ok(9)));
    assert!(matches!(outcomes[1], Ok(7)));
    assert!(matches!(outcomes[2], Err(ServeError::Invalid(_))));
    assert!(matches!(outcomes[3], Err(ServeError::Unavailable(33))));
    assert!(matches!(
        outcomes[4],
        Err(ServeError::Truncated { needed: 2 })
    ));
}

#[test]
fn oversize_block_is_refused_before_reading_it() {
    let (addr, handle) = server(1, Config::default());
    let mut request = vec![0x00, 0x88, 0x13, 0x00];
    request.extend(std::iter::repeat_n(0u8, 16));
    assert_eq!(exchange(addr, &request), b"");
    let outcomes = handle.join().unwrap();
    assert!(
        matches!(&outcomes[0], Err(ServeError::Invalid(e)) if e.to_string().contains("5000")),
        "{outcomes:?}"
    );
}

#[test]
fn silent_peer_times_out() {
    let config = Config {
        socket_timeout: std::time::Duration::from_millis(200),
        ..Config::default()
    };
    let (addr, handle) = server(1, config);
    let mut stream = TcpStream::connect(addr).unwrap();
    stream.write_all(&[0x64]).unwrap();
    let outcomes = handle.join().unwrap();
    assert!(
        matches!(&outcomes[0], Err(ServeError::Io(_))),
        "{outcomes:?}"
    );
}
