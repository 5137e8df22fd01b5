//! The cheapest server the uwsgi protocol allows: the yardstick of scripts/bench_floor.py.
//!
//! Each thread blocks in `accept`, reads one packet (header and the block its size
//! announces), writes a reply prepared at start-up for the packet's modifier1 and
//! closes: `accept4`, `read`, `write`, `close` and nothing else. It validates nothing,
//! holds no state and has no timeouts, so it is not a server to deploy; it measures what
//! the kernel's per-connection work alone costs, which no real server can go below.
//!
//! Replies (the shapes `uwsgi-cli bench` checks):
//! ping (100) an empty pong, RPC (173) a 13-byte framed result, cache (111) a magic
//! `status=ok` reply with a 100-byte value, anything else a 13-byte HTTP/1.1 200.
//!
//! ```sh
//! cargo run --release -p uwsgi-tests --example floor_server -- 127.0.0.1:3031 /tmp/floor.sock 2
//! ```

use std::io::{self, Read, Write};
use std::net::TcpListener;
use std::os::unix::net::UnixListener;
use std::sync::Arc;
use std::thread;

use uwsgi_protocol::packet::{CacheMagicReply, Message, Payload, Reply};

/// Errors of the start-up only; the serving loop drops a failed connection and goes on.
type StartResult<T> = Result<T, Box<dyn std::error::Error>>;

/// The replies, by the request's modifier1.
#[derive(Debug)]
struct Replies {
    pong: Vec<u8>,
    rpc: Vec<u8>,
    cache: Vec<u8>,
    http: Vec<u8>,
}

impl Replies {
    fn new() -> StartResult<Self> {
        let value = [b'v'; 100];
        let magic_vars = CacheMagicReply::build_ok(Some(value.len() as u64), None)?;
        let magic = CacheMagicReply::from_vars(magic_vars.as_vars())?;
        Ok(Self {
            pong: Reply::Pong(Message::new(1, Payload::EMPTY)).to_vec(),
            rpc: Reply::RpcResult(Payload::new(b"Hello, bench!")?).to_vec(),
            cache: Reply::CacheMagic {
                reply: magic,
                value: &value,
            }
            .to_vec(),
            http: b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 13\r\n\r\nHello, World!"
                .to_vec(),
        })
    }

    fn for_modifier1(&self, modifier1: u8) -> &[u8] {
        match modifier1 {
            100 => &self.pong,
            173 => &self.rpc,
            111 => &self.cache,
            _ => &self.http,
        }
    }
}

/// Reads one packet's header and block; returns its modifier1, or `None` when the peer
/// closed early. The block is read and dropped.
fn read_packet(stream: &mut impl Read, buf: &mut [u8]) -> io::Result<Option<u8>> {
    let mut have = 0;
    loop {
        let n = stream.read(&mut buf[have..])?;
        if n == 0 {
            return Ok(None);
        }
        have += n;
        if have >= 4 {
            let size = usize::from(u16::from_le_bytes([buf[1], buf[2]]));
            // A block larger than the buffer is still consumed, a buffer at a time.
            while have < 4 + size {
                let want = (4 + size - have).min(buf.len());
                let n = stream.read(&mut buf[..want])?;
                if n == 0 {
                    return Ok(None);
                }
                have += n;
            }
            return Ok(Some(buf[0]));
        }
        if have == buf.len() {
            return Ok(None);
        }
    }
}

fn serve<S: Read + Write>(mut stream: S, replies: &Replies, buf: &mut [u8]) {
    // A failed connection is the client's business; the next one is served as usual.
    if let Ok(Some(modifier1)) = read_packet(&mut stream, buf) {
        let _ = stream.write_all(replies.for_modifier1(modifier1));
    }
}

fn accept_loop<S: Read + Write>(incoming: impl Iterator<Item = io::Result<S>>, replies: &Replies) {
    let mut buf = vec![0u8; 4096];
    for stream in incoming.flatten() {
        serve(stream, replies, &mut buf);
    }
}

fn main() -> StartResult<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [tcp, unix, threads] = args.as_slice() else {
        return Err("usage: floor_server TCP_ADDR UNIX_PATH THREADS".into());
    };
    let threads: usize = threads.parse()?;
    let replies = Arc::new(Replies::new()?);
    let tcp = Arc::new(TcpListener::bind(tcp)?);
    let _ = std::fs::remove_file(unix);
    let unix = Arc::new(UnixListener::bind(unix)?);
    eprintln!(
        "floor_server: tcp {} unix {:?}, {threads} thread(s) per socket",
        tcp.local_addr()?,
        unix.local_addr()?
    );
    let mut handles = Vec::new();
    for _ in 0..threads {
        let (tcp, for_tcp) = (Arc::clone(&tcp), Arc::clone(&replies));
        handles.push(thread::spawn(move || {
            accept_loop(tcp.incoming(), &for_tcp);
        }));
        let (unix, for_unix) = (Arc::clone(&unix), Arc::clone(&replies));
        handles.push(thread::spawn(move || {
            accept_loop(unix.incoming(), &for_unix);
        }));
    }
    for handle in handles {
        let _ = handle.join();
    }
    Ok(())
}
