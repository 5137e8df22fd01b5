//! Helpers shared by the server's integration tests: start a server from uWSGI-style
//! arguments, and exchange raw bytes with it.

#![allow(dead_code, clippy::unwrap_used)]

/// Running the built binary (only for test crates that run it).
pub mod binary;

use std::io::{Read, Write};
use std::net::{Shutdown, TcpStream};
use std::sync::Arc;
use std::time::Duration;

use uwsgi_protocol::packet::Request;
use uwsgi_protocol::{Header, Modifier1, Packet, VarsBuilder};
use uwsgi_server::{HelloApp, Running, Server, ServerConfig};

/// A server bound (not started) from command-line style arguments.
pub fn bind(args: &[&str]) -> Server {
    let args: Vec<String> = args.iter().map(|s| (*s).to_owned()).collect();
    let config = ServerConfig::from_sources(&args, &[]).unwrap();
    Server::bind(config, Arc::new(HelloApp)).unwrap()
}

/// A running server from command-line style arguments, serving the example app.
pub fn start(args: &[&str]) -> Running {
    bind(args).start()
}

/// Sends `request`, half-closes, and reads the reply until the server closes.
pub fn exchange(addr: &str, request: &[u8]) -> Vec<u8> {
    let mut stream = TcpStream::connect(addr).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    stream.write_all(request).unwrap();
    stream.shutdown(Shutdown::Write).unwrap();
    let mut reply = Vec::new();
    stream.read_to_end(&mut reply).unwrap();
    reply
}

/// A packet of `modifier1`/`modifier2` around `block`.
pub fn framed(modifier1: Modifier1, modifier2: u8, block: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    Header::new(modifier1, u16::try_from(block.len()).unwrap(), modifier2).encode(&mut out);
    out.extend_from_slice(block);
    out
}

/// An application request (modifier1 0) with these vars, followed by `body`.
pub fn request_bytes(pairs: &[(&str, &str)], body: &[u8]) -> Vec<u8> {
    let mut vars = VarsBuilder::new();
    for (k, v) in pairs {
        vars.push(k, v).unwrap();
    }
    let mut out = Packet::Request(Request::new(Modifier1::Wsgi, vars.as_vars())).to_vec();
    out.extend_from_slice(body);
    out
}

/// A GET of `path_and_query` as nginx would pass it; the body of the reply (the whole
/// reply when it has no head).
pub fn get_body(addr: &str, path_and_query: &str) -> String {
    let (path, query) = path_and_query
        .split_once('?')
        .unwrap_or((path_and_query, ""));
    let packet = request_bytes(
        &[
            ("REQUEST_METHOD", "GET"),
            ("PATH_INFO", path),
            ("QUERY_STRING", query),
            ("REQUEST_URI", path_and_query),
            ("SERVER_PROTOCOL", "HTTP/1.1"),
        ],
        b"",
    );
    let reply = exchange(addr, &packet);
    let text = String::from_utf8_lossy(&reply).into_owned();
    text.split_once("\r\n\r\n")
        .map(|(_, body)| body.to_owned())
        .unwrap_or(text)
}
