//! The server's parsers: its ini configuration, and its connection handler driven
//! in-process with arbitrary bytes.

use std::io::{self, Cursor, Read, Write};
use std::path::Path;
use std::sync::{Arc, Mutex, OnceLock};

use uwsgi_protocol::{DecodeError, Packet};
use uwsgi_server::connection::{self, Peer};
use uwsgi_server::{HelloApp, Server, ServerConfig, Shared};

/// The `server_config` target: any text as an ini file. Configuration errors are fine;
/// panics are not, and an accepted configuration must also give its limits and state.
pub fn check_config(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    // Not what is fuzzed here, and not wanted in a fuzzer: nested `ini = FILE` reads
    // files of this machine, and a socket address naming a host asks the resolver (DNS).
    let leaves_the_process = text.lines().any(|line| {
        let (key, value) = line.split_once('=').unwrap_or((line, ""));
        let (key, value) = (key.trim(), value.trim());
        let resolves = matches!(
            key,
            "socket" | "s" | "uwsgi-socket" | "udp" | "stats" | "http-socket"
        ) && !(value.parse::<std::net::SocketAddr>().is_ok()
            || value.starts_with(':') && !value.contains(['%', '$'])
            || value.contains('/') && !value.contains(['%', '$']));
        key.ends_with("ini") || resolves
    });
    if leaves_the_process {
        return;
    }
    if let Ok(config) = ServerConfig::from_ini_text(&text, Path::new("fuzz.ini"), "uwsgi", &[]) {
        let limits = config.limits();
        assert_eq!(limits.max_datasize, config.buffer_size);
        let _ = config.state_config();
    }
}

/// A stream in memory: reads come from the input, writes are collected.
struct MemoryStream {
    input: Mutex<Cursor<Vec<u8>>>,
    output: Mutex<Vec<u8>>,
}

impl Read for &MemoryStream {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.input.lock().expect("not poisoned").read(buf)
    }
}

impl Write for &MemoryStream {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.output.lock().expect("not poisoned").write(buf)
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// One server's shared state for every run, with a cache so cache packets are served.
fn shared() -> &'static Arc<Shared> {
    static SHARED: OnceLock<Arc<Shared>> = OnceLock::new();
    SHARED.get_or_init(|| {
        let args: Vec<String> = [
            "--socket",
            "127.0.0.1:0",
            "--cache2",
            "name=main,items=32,blocksize=256",
            "--logto",
            "/dev/null",
            "--disable-logging",
        ]
        .iter()
        .map(|s| (*s).to_owned())
        .collect();
        let config = ServerConfig::from_sources(&args, &[]).expect("fuzz server config");
        Server::bind(config, Arc::new(HelloApp))
            .expect("fuzz server binds")
            .shared()
    })
}

/// The `server_connection` target: the bytes a peer sends on one connection. Never a
/// panic; an invalid packet gets no reply bytes; a ping gets the pong.
pub fn check_connection(data: &[u8]) {
    let shared = shared();
    let stream = MemoryStream {
        input: Mutex::new(Cursor::new(data.to_vec())),
        output: Mutex::new(Vec::new()),
    };
    let mut buffer = Vec::new();
    let result = connection::serve(&stream, Peer::Unix, shared, &mut buffer, &|_| Ok(()));
    let output = stream.output.into_inner().expect("not poisoned");
    match Packet::decode(data, &shared.limits) {
        Err(DecodeError::Invalid(_)) => {
            assert!(result.is_err(), "an invalid packet is an error");
            assert!(output.is_empty(), "an invalid packet gets no reply bytes");
        }
        Err(DecodeError::Incomplete { .. }) => {
            assert!(output.is_empty(), "a truncated packet gets no reply bytes");
        }
        Ok(decoded) => {
            if matches!(decoded.packet, Packet::Ping(_)) {
                assert_eq!(output, [100, 0, 0, 1], "ping gets the pong");
            }
        }
    }
}

/// The `server_http` target: the bytes a client sends on one `--http-socket`
/// connection, served in-process by the built-in app. Never a panic; every byte written
/// back is a response; a first head the parser refuses gets exactly the server's error
/// response for it, and one still incomplete gets nothing.
pub fn check_http(data: &[u8]) {
    use uwsgi_server::http::{self, request};
    let shared = shared();
    let stream = MemoryStream {
        input: Mutex::new(Cursor::new(data.to_vec())),
        output: Mutex::new(Vec::new()),
    };
    let context = request::Context::unix(Path::new("/fuzz.sock"));
    let stopping = std::sync::atomic::AtomicBool::new(false);
    let mut buffer = Vec::new();
    let _ = http::serve(
        &stream,
        &context,
        Peer::Unix,
        shared,
        &mut buffer,
        &|_| Ok(()),
        &stopping,
        None,
    );
    let output = stream
        .output
        .into_inner()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    assert!(
        output.is_empty() || output.starts_with(b"HTTP/1."),
        "output that is not a response: {:?}",
        String::from_utf8_lossy(&output[..output.len().min(200)])
    );
    match request::parse(data, shared.http.head_limit, &context) {
        Err(reject) => assert_eq!(
            output,
            http::error_response(reject.status),
            "a refused head gets its error response and nothing else"
        ),
        Ok(None) => assert!(output.is_empty(), "an incomplete head gets no bytes"),
        Ok(Some(_)) => assert!(!output.is_empty(), "a complete head gets a response"),
    }
}
