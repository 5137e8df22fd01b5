//! `--http-socket` end to end: a real server on 127.0.0.1 port 0 and on unix sockets,
//! talked to with raw bytes (and curl when the machine has it).

#![allow(clippy::unwrap_used)]

mod common;

use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{Shutdown, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use uwsgi_protocol::packet::Request;
use uwsgi_server::app::{Output, Status, write_head};
use uwsgi_server::{App, Running, Server, ServerConfig};

/// An app that answers with its vars and what it read of the body. `GET /nolength`
/// answers without Content-Length; `/noread` reads no body; `/half` reads 3 bytes.
#[derive(Debug)]
struct Inspect;

impl App for Inspect {
    fn call(
        &self,
        request: &Request<'_>,
        body: &mut (dyn Read + Send),
        out: &mut dyn Output,
    ) -> io::Result<Status> {
        let path = request.vars.get("PATH_INFO").unwrap_or_default().to_vec();
        let mut received = Vec::new();
        match path.as_slice() {
            b"/noread" => {}
            b"/half" => {
                let mut three = [0u8; 3];
                body.read_exact(&mut three)?;
                received.extend_from_slice(&three);
            }
            _ => {
                body.read_to_end(&mut received)?;
            }
        }
        let mut text = String::new();
        for (k, v) in request.vars.iter() {
            text.push_str(&format!(
                "{}={}\n",
                String::from_utf8_lossy(k),
                String::from_utf8_lossy(v)
            ));
        }
        let sum = received
            .iter()
            .fold(0u32, |s, b| s.wrapping_mul(31).wrapping_add(u32::from(*b)));
        text.push_str(&format!("body-len={}\nbody-sum={sum}\n", received.len()));
        let protocol = request.vars.get("SERVER_PROTOCOL").unwrap_or_default();
        let length = text.len().to_string();
        let head_bytes = if path == b"/nolength" {
            write_head(out, protocol, "200 OK", &[("X-Kind", b"nolength")])?
        } else {
            write_head(
                out,
                protocol,
                "200 OK",
                &[("Content-Length", length.as_bytes())],
            )?
        };
        // Written in three pieces, to exercise the framer.
        let (a, rest) = text.as_bytes().split_at(text.len() / 3);
        out.write_all(a)?;
        out.write_all(b"")?;
        out.write_all(rest)?;
        Ok(Status {
            code: 200,
            headers: 1,
            head_bytes,
            body_bytes: text.len(),
        })
    }
}

fn start_with(args: &[&str], app: Arc<dyn App>) -> Running {
    let args: Vec<String> = args.iter().map(|s| (*s).to_owned()).collect();
    let config = ServerConfig::from_sources(&args, &[]).unwrap();
    Server::bind(config, app).unwrap().start()
}

fn inspect(args: &[&str]) -> Running {
    start_with(args, Arc::new(Inspect))
}

/// One parsed response.
#[derive(Debug)]
struct Response {
    status: u16,
    head: String,
    body: Vec<u8>,
}

impl Response {
    fn header(&self, name: &str) -> Option<String> {
        self.head.lines().skip(1).find_map(|line| {
            let (n, v) = line.split_once(':')?;
            n.eq_ignore_ascii_case(name).then(|| v.trim().to_owned())
        })
    }

    fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    fn var(&self, name: &str) -> Option<String> {
        self.text()
            .lines()
            .find_map(|l| l.strip_prefix(&format!("{name}=")).map(str::to_owned))
    }
}

/// Reads one response (a `HEAD` response has no body).
fn read_response(reader: &mut impl BufRead, head_request: bool) -> io::Result<Response> {
    let mut head = String::new();
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line)? == 0 {
            return Err(io::Error::new(io::ErrorKind::UnexpectedEof, "closed"));
        }
        head.push_str(&line);
        if line == "\r\n" {
            break;
        }
    }
    let status = head
        .get(9..12)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidData, head.clone()))?;
    let mut response = Response {
        status,
        head,
        body: Vec::new(),
    };
    if head_request || status == 100 {
        return Ok(response);
    }
    if let Some(length) = response.header("Content-Length") {
        let mut body = vec![0; length.parse().unwrap()];
        reader.read_exact(&mut body)?;
        response.body = body;
    } else if response.header("Transfer-Encoding").as_deref() == Some("chunked") {
        loop {
            let mut line = String::new();
            reader.read_line(&mut line)?;
            let size = usize::from_str_radix(line.trim_end(), 16).unwrap();
            let mut chunk = vec![0; size + 2];
            reader.read_exact(&mut chunk)?;
            assert!(chunk.ends_with(b"\r\n"));
            if size == 0 {
                break;
            }
            response.body.extend_from_slice(&chunk[..size]);
        }
    } else {
        reader.read_to_end(&mut response.body)?;
    }
    Ok(response)
}

fn connect(addr: &str) -> (TcpStream, BufReader<TcpStream>) {
    let stream = TcpStream::connect(addr).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let reader = BufReader::new(stream.try_clone().unwrap());
    (stream, reader)
}

/// Sends `bytes` on a new connection and reads one response.
fn once(addr: &str, bytes: &[u8]) -> Response {
    let (mut stream, mut reader) = connect(addr);
    stream.write_all(bytes).unwrap();
    read_response(&mut reader, bytes.starts_with(b"HEAD")).unwrap()
}

/// Whether the server closed the connection (EOF) within `within`.
fn closed(reader: &mut BufReader<TcpStream>, within: Duration) -> bool {
    reader.get_ref().set_read_timeout(Some(within)).unwrap();
    let mut rest = Vec::new();
    reader.read_to_end(&mut rest).is_ok() && rest.is_empty()
}

#[test]
fn get_builds_the_vars_nginx_would_send() {
    let server = inspect(&["--http-socket", "127.0.0.1:0", "--disable-logging"]);
    let addr = server.http_addrs()[0].clone();
    let port = addr.rsplit(':').next().unwrap().to_owned();
    let r = once(
        &addr,
        b"GET /a%20b/./c/../d?x=1&y=%2F HTTP/1.1\r\nHost: example.org\r\nX-Token: 1\r\nx-token: 2\r\nCookie: a=1\r\nCookie: b=2\r\nX_Forged: 1\r\nContent-Type: text/x\r\n\r\n",
    );
    assert_eq!(r.status, 200);
    let expect = [
        ("REQUEST_METHOD", "GET"),
        ("REQUEST_URI", "/a%20b/./c/../d?x=1&y=%2F"),
        ("PATH_INFO", "/a b/d"),
        ("QUERY_STRING", "x=1&y=%2F"),
        ("SERVER_PROTOCOL", "HTTP/1.1"),
        ("REQUEST_SCHEME", "http"),
        ("SCRIPT_NAME", ""),
        ("SERVER_ADDR", "127.0.0.1"),
        ("SERVER_PORT", port.as_str()),
        ("REMOTE_ADDR", "127.0.0.1"),
        ("HTTP_HOST", "example.org"),
        ("HTTP_X_TOKEN", "1, 2"),
        ("HTTP_COOKIE", "a=1; b=2"),
        ("CONTENT_TYPE", "text/x"),
        ("body-len", "0"),
    ];
    for (name, value) in expect {
        assert_eq!(
            r.var(name).as_deref(),
            Some(value),
            "{name} in\n{}",
            r.text()
        );
    }
    assert!(r.var("REMOTE_PORT").unwrap().parse::<u16>().unwrap() > 0);
    assert!(!r.var("SERVER_NAME").unwrap().is_empty());
    for absent in [
        "CONTENT_LENGTH",
        "HTTP_X_FORGED",
        "HTTP_CONTENT_TYPE",
        "HTTPS",
    ] {
        assert_eq!(r.var(absent), None, "{absent}");
    }
}

#[test]
fn head_get_and_post_with_the_example_app() {
    let server = common::start(&["--http-socket", "127.0.0.1:0", "--disable-logging"]);
    let addr = server.http_addrs()[0].clone();
    let (mut stream, mut reader) = connect(&addr);
    stream
        .write_all(b"HEAD /x HTTP/1.1\r\nHost: a\r\n\r\n")
        .unwrap();
    let head = read_response(&mut reader, true).unwrap();
    assert_eq!(head.status, 200);
    // The HEAD response announced a length but sent no body: the next response
    // starts right after its head.
    assert!(
        head.header("Content-Length")
            .unwrap()
            .parse::<usize>()
            .unwrap()
            > 0
    );
    stream
        .write_all(b"POST /upload HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\nhello")
        .unwrap();
    let post = read_response(&mut reader, false).unwrap();
    assert_eq!(post.status, 200);
    assert!(
        post.text().ends_with("POST /upload (5 body bytes)\n"),
        "{}",
        post.text()
    );
    stream
        .write_all(b"GET /last HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n")
        .unwrap();
    let get = read_response(&mut reader, false).unwrap();
    assert!(get.text().ends_with("GET /last (0 body bytes)\n"));
    assert_eq!(get.header("Connection").as_deref(), Some("close"));
    assert!(closed(&mut reader, Duration::from_secs(2)));
}

#[test]
fn ten_megabyte_body_and_chunked_uploads() {
    let server = inspect(&["--http-socket", "127.0.0.1:0", "--disable-logging"]);
    let addr = server.http_addrs()[0].clone();
    let body: Vec<u8> = (0..10 * 1024 * 1024u32).map(|i| (i % 251) as u8).collect();
    let sum = body
        .iter()
        .fold(0u32, |s, b| s.wrapping_mul(31).wrapping_add(u32::from(*b)));
    let (mut stream, mut reader) = connect(&addr);
    let writer = {
        let mut stream = stream.try_clone().unwrap();
        let body = body.clone();
        std::thread::spawn(move || {
            stream
                .write_all(
                    format!(
                        "POST /big HTTP/1.1\r\nHost: a\r\nContent-Length: {}\r\n\r\n",
                        body.len()
                    )
                    .as_bytes(),
                )
                .unwrap();
            stream.write_all(&body).unwrap();
        })
    };
    let r = read_response(&mut reader, false).unwrap();
    writer.join().unwrap();
    assert_eq!(r.var("body-len").unwrap(), body.len().to_string());
    assert_eq!(r.var("body-sum").unwrap(), sum.to_string());
    assert_eq!(r.var("CONTENT_LENGTH").unwrap(), body.len().to_string());

    // Chunked, in odd pieces, with an extension and a trailer, 3 MiB so it spills to
    // a temporary file; then a small one on the same connection.
    let mut chunked =
        b"POST /chunked HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n".to_vec();
    let mut expected = Vec::new();
    for (i, piece) in body[..3 * 1024 * 1024].chunks(70_001).enumerate() {
        chunked.extend_from_slice(format!("{:X}", piece.len()).as_bytes());
        if i == 1 {
            chunked.extend_from_slice(b";name=value");
        }
        chunked.extend_from_slice(b"\r\n");
        chunked.extend_from_slice(piece);
        chunked.extend_from_slice(b"\r\n");
        expected.extend_from_slice(piece);
    }
    chunked.extend_from_slice(b"0\r\nX-Trailer: yes\r\n\r\n");
    let writer = {
        let mut stream = stream.try_clone().unwrap();
        std::thread::spawn(move || {
            for part in chunked.chunks(9_973) {
                stream.write_all(part).unwrap();
            }
        })
    };
    let r = read_response(&mut reader, false).unwrap();
    writer.join().unwrap();
    let sum = expected
        .iter()
        .fold(0u32, |s, b| s.wrapping_mul(31).wrapping_add(u32::from(*b)));
    assert_eq!(r.var("body-len").unwrap(), expected.len().to_string());
    assert_eq!(r.var("body-sum").unwrap(), sum.to_string());
    assert_eq!(r.var("CONTENT_LENGTH").unwrap(), expected.len().to_string());
    assert_eq!(r.var("HTTP_TRANSFER_ENCODING"), None);
    stream
        .write_all(b"POST /small HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n")
        .unwrap();
    let r = read_response(&mut reader, false).unwrap();
    assert_eq!(r.var("body-len").unwrap(), "5");
    assert_eq!(r.var("PATH_INFO").unwrap(), "/small");
}

#[test]
fn keep_alive_and_pipelining() {
    let server = inspect(&["--http-socket", "127.0.0.1:0", "--disable-logging"]);
    let addr = server.http_addrs()[0].clone();
    let (mut stream, mut reader) = connect(&addr);
    for i in 0..5 {
        stream
            .write_all(format!("GET /k{i} HTTP/1.1\r\nHost: a\r\n\r\n").as_bytes())
            .unwrap();
        let r = read_response(&mut reader, false).unwrap();
        assert_eq!(r.var("PATH_INFO").unwrap(), format!("/k{i}"));
        assert_eq!(r.header("Connection"), None);
    }
    // Three requests in one write, one with a body that looks like a request, one
    // whose body the app does not read, then a chunked response.
    let smuggled = "GET /smuggled HTTP/1.1\r\nHost: a\r\n\r\n";
    let pipeline = format!(
        "POST /p1 HTTP/1.1\r\nHost: a\r\nContent-Length: {}\r\n\r\n{smuggled}\
         POST /noread HTTP/1.1\r\nHost: a\r\nContent-Length: {}\r\n\r\n{smuggled}\
         GET /nolength HTTP/1.1\r\nHost: a\r\n\r\n\
         HEAD /p4 HTTP/1.1\r\nHost: a\r\n\r\n\
         GET /p5 HTTP/1.1\r\nHost: a\r\n\r\n",
        smuggled.len(),
        smuggled.len()
    );
    stream.write_all(pipeline.as_bytes()).unwrap();
    let r1 = read_response(&mut reader, false).unwrap();
    assert_eq!(r1.var("PATH_INFO").unwrap(), "/p1");
    assert_eq!(r1.var("body-len").unwrap(), smuggled.len().to_string());
    let r2 = read_response(&mut reader, false).unwrap();
    assert_eq!(r2.var("PATH_INFO").unwrap(), "/noread");
    assert_eq!(r2.var("body-len").unwrap(), "0");
    let r3 = read_response(&mut reader, false).unwrap();
    assert_eq!(r3.header("Transfer-Encoding").as_deref(), Some("chunked"));
    assert_eq!(r3.var("PATH_INFO").unwrap(), "/nolength");
    let r4 = read_response(&mut reader, true).unwrap();
    assert_eq!(r4.status, 200);
    let r5 = read_response(&mut reader, false).unwrap();
    assert_eq!(r5.var("PATH_INFO").unwrap(), "/p5");
    // Nothing else: the bodies were never taken for requests.
    stream.shutdown(Shutdown::Write).unwrap();
    let mut rest = Vec::new();
    reader.read_to_end(&mut rest).unwrap();
    assert!(rest.is_empty(), "{}", String::from_utf8_lossy(&rest));
}

#[test]
fn http_1_0_closes_unless_it_asks_for_keep_alive() {
    let server = inspect(&["--http-socket", "127.0.0.1:0", "--disable-logging"]);
    let addr = server.http_addrs()[0].clone();
    // No length from the app on HTTP/1.0: the body ends with the connection.
    let (mut stream, mut reader) = connect(&addr);
    stream.write_all(b"GET /nolength HTTP/1.0\r\n\r\n").unwrap();
    let r = read_response(&mut reader, false).unwrap();
    assert!(r.head.starts_with("HTTP/1.0 200 OK"));
    assert_eq!(r.header("Connection").as_deref(), Some("close"));
    assert_eq!(r.var("SERVER_PROTOCOL").unwrap(), "HTTP/1.0");
    // With a length and no keep-alive request: closed after the response.
    let (mut stream, mut reader) = connect(&addr);
    stream.write_all(b"GET /a HTTP/1.0\r\n\r\n").unwrap();
    let r = read_response(&mut reader, false).unwrap();
    assert_eq!(r.header("Connection").as_deref(), Some("close"));
    assert!(closed(&mut reader, Duration::from_secs(2)));
    // Keep-alive asked and granted.
    let (mut stream, mut reader) = connect(&addr);
    for _ in 0..2 {
        stream
            .write_all(b"GET /b HTTP/1.0\r\nConnection: keep-alive\r\n\r\n")
            .unwrap();
        let r = read_response(&mut reader, false).unwrap();
        assert_eq!(r.header("Connection").as_deref(), Some("keep-alive"));
    }
}

#[test]
fn expect_100_continue() {
    let server = inspect(&["--http-socket", "127.0.0.1:0", "--disable-logging"]);
    let addr = server.http_addrs()[0].clone();
    let (mut stream, mut reader) = connect(&addr);
    stream
        .write_all(
            b"PUT /up HTTP/1.1\r\nHost: a\r\nContent-Length: 4\r\nExpect: 100-continue\r\n\r\n",
        )
        .unwrap();
    let interim = read_response(&mut reader, false).unwrap();
    assert_eq!(interim.status, 100);
    stream.write_all(b"data").unwrap();
    let r = read_response(&mut reader, false).unwrap();
    assert_eq!(r.var("body-len").unwrap(), "4");
    // Chunked with Expect: 100 Continue comes before the body is read.
    stream
        .write_all(b"POST /c HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nExpect: 100-continue\r\n\r\n")
        .unwrap();
    assert_eq!(read_response(&mut reader, false).unwrap().status, 100);
    stream.write_all(b"2\r\nok\r\n0\r\n\r\n").unwrap();
    assert_eq!(
        read_response(&mut reader, false)
            .unwrap()
            .var("body-len")
            .unwrap(),
        "2"
    );
    // An app that answers without reading: no 100, and the connection closes since
    // the client still holds the body.
    stream
        .write_all(
            b"PUT /noread HTTP/1.1\r\nHost: a\r\nContent-Length: 4\r\nExpect: 100-continue\r\n\r\n",
        )
        .unwrap();
    let r = read_response(&mut reader, false).unwrap();
    assert_eq!(r.status, 200);
    assert_eq!(r.header("Connection").as_deref(), Some("close"));
}

#[test]
fn limits_unread_bodies_and_idle_timeout() {
    let server = inspect(&[
        "--http-socket",
        "127.0.0.1:0",
        "--limit-post",
        "1000",
        "--http-keepalive",
        "1",
        "--disable-logging",
        "--logto",
        "/dev/null",
    ]);
    let addr = server.http_addrs()[0].clone();
    let r = once(
        &addr,
        b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 1001\r\n\r\n",
    );
    assert_eq!(r.status, 413);
    let r = once(
        &addr,
        b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n3E9\r\n",
    );
    assert_eq!(r.status, 413);
    // An unread body within the drain limit is skipped; the connection stays.
    let (mut stream, mut reader) = connect(&addr);
    let body = "x".repeat(900);
    stream
        .write_all(format!("POST /half HTTP/1.1\r\nHost: a\r\nContent-Length: 900\r\n\r\n{body}GET /after HTTP/1.1\r\nHost: a\r\n\r\n").as_bytes())
        .unwrap();
    assert_eq!(
        read_response(&mut reader, false)
            .unwrap()
            .var("body-len")
            .unwrap(),
        "3"
    );
    assert_eq!(
        read_response(&mut reader, false)
            .unwrap()
            .var("PATH_INFO")
            .unwrap(),
        "/after"
    );
    // Idle for longer than --http-keepalive: closed.
    let started = Instant::now();
    assert!(closed(&mut reader, Duration::from_secs(5)));
    let idle = started.elapsed();
    assert!(
        idle >= Duration::from_millis(800) && idle < Duration::from_secs(3),
        "{idle:?}"
    );

    // --http-keepalive 0: every response closes, as uWSGI's --http-socket does.
    let server = inspect(&[
        "--http-socket",
        "127.0.0.1:0",
        "--http-keepalive",
        "0",
        "--disable-logging",
    ]);
    let (mut stream, mut reader) = connect(&server.http_addrs()[0]);
    stream
        .write_all(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n")
        .unwrap();
    let r = read_response(&mut reader, false).unwrap();
    assert_eq!(r.header("Connection").as_deref(), Some("close"));
    assert!(closed(&mut reader, Duration::from_secs(2)));
}

#[test]
fn unix_http_socket_and_uwsgi_socket_side_by_side() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("http.sock");
    let server = common::start(&[
        "--socket",
        "127.0.0.1:0",
        "--http-socket",
        path.to_str().unwrap(),
        "--http-socket",
        "127.0.0.1:0",
        "--disable-logging",
        "--logto",
        "/dev/null",
    ]);
    let addrs = server.local_addrs();
    assert_eq!(
        server.http_addrs(),
        vec![addrs[1].clone(), addrs[2].clone()]
    );
    // HTTP over the unix socket, twice on one connection.
    let stream = std::os::unix::net::UnixStream::connect(&path).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let mut reader = BufReader::new(stream.try_clone().unwrap());
    let mut writer = stream;
    for i in 0..2 {
        writer
            .write_all(format!("GET /unix{i} HTTP/1.1\r\nHost: a\r\n\r\n").as_bytes())
            .unwrap();
        let r = read_response(&mut reader, false).unwrap();
        assert!(
            r.text()
                .ends_with(&format!("GET /unix{i} (0 body bytes)\n"))
        );
    }
    // uwsgi on --socket at the same time.
    let reply = common::exchange(
        &addrs[0],
        &common::request_bytes(&[("REQUEST_METHOD", "GET"), ("PATH_INFO", "/uwsgi")], b""),
    );
    assert!(reply.starts_with(b"HTTP/1.0 200 OK"));
    assert!(reply.ends_with(b"GET /uwsgi (0 body bytes)\n"));
    // And HTTP on TCP.
    let r = once(&addrs[2], b"GET /tcp HTTP/1.1\r\nHost: a\r\n\r\n");
    assert!(r.text().ends_with("GET /tcp (0 body bytes)\n"));
    // HTTP sent to the uwsgi socket is not HTTP there: closed without a reply.
    assert!(common::exchange(&addrs[0], b"GET / HTTP/1.1\r\nHost: a\r\n\r\n").is_empty());
}

#[test]
fn unserved_modifier_is_503() {
    let server = common::start(&[
        "--http-socket",
        "127.0.0.1:0",
        "--http-socket-modifier1",
        "5",
        "--logto",
        "/dev/null",
    ]);
    let r = once(
        &server.http_addrs()[0],
        b"GET / HTTP/1.1\r\nHost: a\r\n\r\n",
    );
    assert_eq!(r.status, 503);
    let server = common::start(&[
        "--http-socket",
        "127.0.0.1:0",
        "--http-socket-modifier1",
        "30",
        "--disable-logging",
    ]);
    let r = once(
        &server.http_addrs()[0],
        b"GET / HTTP/1.1\r\nHost: a\r\n\r\n",
    );
    assert_eq!(r.status, 200);
}

#[test]
fn curl_talks_to_it() {
    if std::process::Command::new("curl")
        .arg("--version")
        .output()
        .is_err()
    {
        eprintln!("SKIPPED: curl is not installed on this machine");
        return;
    }
    let server = common::start(&["--http-socket", "127.0.0.1:0", "--disable-logging"]);
    let addr = server.http_addrs()[0].clone();
    let run = |args: &[&str]| {
        let out = std::process::Command::new("curl")
            .args(["-sS", "--max-time", "10"])
            .args(args)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        (
            String::from_utf8(out.stdout).unwrap(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    // Two URLs: curl reuses the connection.
    let (out, err) = run(&[
        "-v",
        &format!("http://{addr}/one"),
        &format!("http://{addr}/two"),
    ]);
    assert!(
        out.contains("GET /one (0 body bytes)") && out.contains("GET /two (0 body bytes)"),
        "{out}"
    );
    assert!(
        err.contains("Re-using existing connection") || err.contains("Reusing existing connection"),
        "{err}"
    );
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("big");
    std::fs::write(&file, "z".repeat(200_000)).unwrap();
    let (out, _) = run(&[
        "--data-binary",
        &format!("@{}", file.display()),
        &format!("http://{addr}/post"),
    ]);
    assert!(out.contains("POST /post (200000 body bytes)"), "{out}");
    let (out, _) = run(&[
        "-H",
        "Transfer-Encoding: chunked",
        "--data-binary",
        "chunked body",
        &format!("http://{addr}/chunked"),
    ]);
    assert!(out.contains("POST /chunked (12 body bytes)"), "{out}");
    let (out, _) = run(&["-I", &format!("http://{addr}/head")]);
    assert!(out.starts_with("HTTP/1.1 200 OK"), "{out}");
    let (out, _) = run(&["--http1.0", &format!("http://{addr}/old")]);
    assert!(out.contains("GET /old"), "{out}");
}

/// Sends `bytes`, half-closes, and returns everything until the server closes.
fn send(addr: &str, bytes: &[u8]) -> Option<Vec<u8>> {
    let mut stream = TcpStream::connect(addr).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let _ = stream.write_all(bytes);
    let _ = stream.shutdown(Shutdown::Write);
    let mut reply = Vec::new();
    match stream.read_to_end(&mut reply) {
        Ok(_) => Some(reply),
        Err(e) if e.kind() == io::ErrorKind::ConnectionReset => Some(reply),
        Err(_) => None,
    }
}

fn junk(seed: u64, len: usize) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x.to_le_bytes()[3]
        })
        .collect()
}

fn malformed_cases() -> Vec<(String, Vec<u8>)> {
    let h = "Host: a\r\n";
    let mut cases: Vec<(String, String)> = vec![
        ("no URI".into(), "GET\r\n\r\n".into()),
        ("HTTP/0.9".into(), "GET /\r\n\r\n".into()),
        ("extra token".into(), format!("GET / HTTP/1.1 x\r\n{h}\r\n")),
        ("double space".into(), format!("GET  / HTTP/1.1\r\n{h}\r\n")),
        ("HTTP/2.0".into(), format!("GET / HTTP/2.0\r\n{h}\r\n")),
        ("HTTP/1.2".into(), format!("GET / HTTP/1.2\r\n{h}\r\n")),
        ("HTTPS/1.1".into(), format!("GET / HTTPS/1.1\r\n{h}\r\n")),
        (
            "lowercase version".into(),
            format!("GET / http/1.1\r\n{h}\r\n"),
        ),
        ("bad method".into(), format!("G@T / HTTP/1.1\r\n{h}\r\n")),
        ("NUL in URI".into(), format!("GET /\0 HTTP/1.1\r\n{h}\r\n")),
        (
            "DEL in URI".into(),
            format!("GET /\x7f HTTP/1.1\r\n{h}\r\n"),
        ),
        ("tab in URI".into(), format!("GET /\ta HTTP/1.1\r\n{h}\r\n")),
        (
            "space in URI".into(),
            format!("GET /a b HTTP/1.1\r\n{h}\r\n"),
        ),
        (
            "relative target".into(),
            format!("GET relative HTTP/1.1\r\n{h}\r\n"),
        ),
        (
            "asterisk on GET".into(),
            format!("GET * HTTP/1.1\r\n{h}\r\n"),
        ),
        (
            "CONNECT".into(),
            format!("CONNECT example.com:443 HTTP/1.1\r\n{h}\r\n"),
        ),
        (
            "dot-dot".into(),
            format!("GET /../../etc/passwd HTTP/1.1\r\n{h}\r\n"),
        ),
        (
            "encoded dot-dot".into(),
            format!("GET /%2e%2e/%2E%2E/x HTTP/1.1\r\n{h}\r\n"),
        ),
        ("bad escape".into(), format!("GET /%zz HTTP/1.1\r\n{h}\r\n")),
        ("short escape".into(), format!("GET /% HTTP/1.1\r\n{h}\r\n")),
        (
            "encoded NUL".into(),
            format!("GET /%00 HTTP/1.1\r\n{h}\r\n"),
        ),
        ("bare CR".into(), format!("GET / HTTP/1.1\r{h}\r\n")),
        ("bare LF".into(), "GET / HTTP/1.1\nHost: a\n\n".into()),
        (
            "LF then CRLF".into(),
            "GET / HTTP/1.1\nHost: a\r\n\r\n".into(),
        ),
        (
            "long URI".into(),
            format!("GET /{} HTTP/1.1\r\n{h}\r\n", "u".repeat(5000)),
        ),
        ("no Host".into(), "GET / HTTP/1.1\r\n\r\n".into()),
        (
            "two Hosts".into(),
            "GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n".into(),
        ),
        (
            "Host with space".into(),
            "GET / HTTP/1.1\r\nHost: a b\r\n\r\n".into(),
        ),
        (
            "Host with slash".into(),
            "GET / HTTP/1.1\r\nHost: a/b\r\n\r\n".into(),
        ),
        (
            "Host with @".into(),
            "GET / HTTP/1.1\r\nHost: u@a\r\n\r\n".into(),
        ),
        (
            "header without colon".into(),
            "GET / HTTP/1.1\r\nHost a\r\n\r\n".into(),
        ),
        (
            "space before first header".into(),
            "GET / HTTP/1.1\r\n Host: a\r\n\r\n".into(),
        ),
        (
            "space before colon".into(),
            "GET / HTTP/1.1\r\nHost : a\r\n\r\n".into(),
        ),
        (
            "obs-fold".into(),
            format!("GET / HTTP/1.1\r\n{h}X: a\r\n b\r\n\r\n"),
        ),
        (
            "obs-fold with tab".into(),
            format!("GET / HTTP/1.1\r\n{h}X: a\r\n\tb\r\n\r\n"),
        ),
        (
            "NUL in value".into(),
            format!("GET / HTTP/1.1\r\n{h}X: a\0b\r\n\r\n"),
        ),
        (
            "DEL in value".into(),
            format!("GET / HTTP/1.1\r\n{h}X: a\x7fb\r\n\r\n"),
        ),
        (
            "CR in value".into(),
            format!("GET / HTTP/1.1\r\n{h}X: a\rb\r\n\r\n"),
        ),
        (
            "bad header name".into(),
            format!("GET / HTTP/1.1\r\n{h}X(y): 1\r\n\r\n"),
        ),
        (
            "empty header name".into(),
            format!("GET / HTTP/1.1\r\n{h}: x\r\n\r\n"),
        ),
        (
            "101 headers".into(),
            format!("GET / HTTP/1.1\r\n{h}{}\r\n", "X: 1\r\n".repeat(100)),
        ),
        (
            "huge header".into(),
            format!("GET / HTTP/1.1\r\n{h}X: {}\r\n\r\n", "v".repeat(5000)),
        ),
        (
            "huge head".into(),
            format!(
                "GET / HTTP/1.1\r\n{h}{}\r\n",
                "Xy: 0123456789012345678901234567890123456789\r\n".repeat(95)
            ),
        ),
        (
            "CL and TE".into(),
            format!(
                "POST / HTTP/1.1\r\n{h}Content-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\nGET /smuggled HTTP/1.1\r\n{h}\r\n"
            ),
        ),
        (
            "TE and CL".into(),
            format!(
                "POST / HTTP/1.1\r\n{h}Transfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n0\r\n\r\nGET /smuggled HTTP/1.1\r\n{h}\r\n"
            ),
        ),
        (
            "differing CL".into(),
            format!(
                "POST / HTTP/1.1\r\n{h}Content-Length: 0\r\nContent-Length: 40\r\n\r\nGET /smuggled HTTP/1.1\r\n{h}\r\n"
            ),
        ),
        (
            "CL list differs".into(),
            format!("POST / HTTP/1.1\r\n{h}Content-Length: 5, 6\r\n\r\nhello"),
        ),
        (
            "negative CL".into(),
            format!("POST / HTTP/1.1\r\n{h}Content-Length: -1\r\n\r\n"),
        ),
        (
            "plus CL".into(),
            format!("POST / HTTP/1.1\r\n{h}Content-Length: +5\r\n\r\nhello"),
        ),
        (
            "hex CL".into(),
            format!("POST / HTTP/1.1\r\n{h}Content-Length: 0x5\r\n\r\nhello"),
        ),
        (
            "huge CL".into(),
            format!("POST / HTTP/1.1\r\n{h}Content-Length: 99999999999999999999\r\n\r\n"),
        ),
        (
            "empty CL".into(),
            format!("POST / HTTP/1.1\r\n{h}Content-Length:\r\n\r\n"),
        ),
        (
            "CL with space".into(),
            format!("POST / HTTP/1.1\r\n{h}Content-Length: 1 2\r\n\r\n"),
        ),
        (
            "CL over limit".into(),
            format!("POST / HTTP/1.1\r\n{h}Content-Length: 1048577\r\n\r\n"),
        ),
        (
            "TE chunked twice".into(),
            format!("POST / HTTP/1.1\r\n{h}Transfer-Encoding: chunked, chunked\r\n\r\n0\r\n\r\n"),
        ),
        (
            "TE xchunked".into(),
            format!("POST / HTTP/1.1\r\n{h}Transfer-Encoding: xchunked\r\n\r\n0\r\n\r\n"),
        ),
        (
            "TE then identity".into(),
            format!(
                "POST / HTTP/1.1\r\n{h}Transfer-Encoding: chunked\r\nTransfer-Encoding: identity\r\n\r\n0\r\n\r\n"
            ),
        ),
        (
            "TE gzip".into(),
            format!("POST / HTTP/1.1\r\n{h}Transfer-Encoding: gzip\r\n\r\n"),
        ),
        (
            "TE gzip, chunked".into(),
            format!("POST / HTTP/1.1\r\n{h}Transfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n"),
        ),
        (
            "TE empty".into(),
            format!("POST / HTTP/1.1\r\n{h}Transfer-Encoding:\r\n\r\n"),
        ),
        (
            "TE space before colon".into(),
            format!("POST / HTTP/1.1\r\n{h}Transfer-Encoding : chunked\r\n\r\n0\r\n\r\n"),
        ),
        (
            "TE on HTTP/1.0".into(),
            "POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n".into(),
        ),
        (
            "chunk size zz".into(),
            format!("POST / HTTP/1.1\r\n{h}Transfer-Encoding: chunked\r\n\r\nzz\r\n"),
        ),
        (
            "chunk size 17 digits".into(),
            format!(
                "POST / HTTP/1.1\r\n{h}Transfer-Encoding: chunked\r\n\r\n10000000000000000\r\n"
            ),
        ),
        (
            "empty chunk size".into(),
            format!(
                "POST / HTTP/1.1\r\n{h}Transfer-Encoding: chunked\r\n\r\n\r\nGET /smuggled HTTP/1.1\r\n{h}\r\n"
            ),
        ),
        (
            "chunk size with space".into(),
            format!(
                "POST / HTTP/1.1\r\n{h}Transfer-Encoding: chunked\r\n\r\n5 \r\nhello\r\n0\r\n\r\n"
            ),
        ),
        (
            "negative chunk".into(),
            format!("POST / HTTP/1.1\r\n{h}Transfer-Encoding: chunked\r\n\r\n-1\r\n"),
        ),
        (
            "chunk bare LF".into(),
            format!("POST / HTTP/1.1\r\n{h}Transfer-Encoding: chunked\r\n\r\n5\nhello\n0\n\n"),
        ),
        (
            "chunk longer than size".into(),
            format!(
                "POST / HTTP/1.1\r\n{h}Transfer-Encoding: chunked\r\n\r\n3\r\nhello\r\n0\r\n\r\n"
            ),
        ),
        (
            "chunk over limit".into(),
            format!("POST / HTTP/1.1\r\n{h}Transfer-Encoding: chunked\r\n\r\n200000\r\n"),
        ),
        (
            "bad trailer".into(),
            format!(
                "POST / HTTP/1.1\r\n{h}Transfer-Encoding: chunked\r\n\r\n0\r\nno colon\r\n\r\n"
            ),
        ),
        (
            "huge chunk extension".into(),
            format!(
                "POST / HTTP/1.1\r\n{h}Transfer-Encoding: chunked\r\n\r\n1;{}\r\na\r\n0\r\n\r\n",
                "e".repeat(5000)
            ),
        ),
        (
            "control in extension".into(),
            format!(
                "POST / HTTP/1.1\r\n{h}Transfer-Encoding: chunked\r\n\r\n1;a\x01b\r\na\r\n0\r\n\r\n"
            ),
        ),
        (
            "odd Expect".into(),
            format!("POST / HTTP/1.1\r\n{h}Expect: 200-ok\r\nContent-Length: 1\r\n\r\na"),
        ),
        (
            "two Expects".into(),
            format!(
                "POST / HTTP/1.1\r\n{h}Expect: 100-continue\r\nExpect: 100-continue\r\nContent-Length: 1\r\n\r\na"
            ),
        ),
        (
            "truncated body".into(),
            format!("POST / HTTP/1.1\r\n{h}Content-Length: 50\r\n\r\nshort"),
        ),
        (
            "TLS hello".into(),
            "\x16\x03\x01\x02\x00\x01\x00\x01\x7c\x03\x03".into(),
        ),
    ];
    cases.push((
        "uwsgi packet".into(),
        String::from_utf8_lossy(&[0, 5, 0, 0, 1, 0, b'a', 0, 0]).into_owned(),
    ));
    let mut cases: Vec<(String, Vec<u8>)> = cases
        .into_iter()
        .map(|(n, b)| (n, b.into_bytes()))
        .collect();
    cases.push((
        "raw 8-bit URI".into(),
        b"GET /\xff\xfe HTTP/1.1\r\nHost: a\r\n\r\n".to_vec(),
    ));
    for seed in 0..20u64 {
        let len = usize::try_from(1 + seed * 97 % 3000).unwrap();
        cases.push((format!("junk seed {seed}"), junk(seed, len)));
    }
    cases
}

#[test]
fn malformed_input_never_disturbs_a_healthy_client() {
    let server = common::start(&[
        "--http-socket",
        "127.0.0.1:0",
        "--processes",
        "4",
        "--socket-timeout",
        "1",
        "--limit-post",
        "1048576",
        "--disable-logging",
        "--logto",
        "/dev/null",
    ]);
    let addr = server.http_addrs()[0].clone();
    let done = Arc::new(AtomicBool::new(false));
    let ok = Arc::new(AtomicUsize::new(0));
    let failed = Arc::new(AtomicUsize::new(0));
    let healthy = {
        let (addr, done, ok, failed) = (
            addr.clone(),
            Arc::clone(&done),
            Arc::clone(&ok),
            Arc::clone(&failed),
        );
        std::thread::spawn(move || {
            while !done.load(Ordering::Relaxed) {
                // Three requests on one connection, the last one closing it; like any
                // client, a new connection when the server says it closes.
                let (mut stream, mut reader) = connect(&addr);
                let mut good = true;
                for (i, request) in [
                    "GET /healthy HTTP/1.1\r\nHost: a\r\n\r\n",
                    "POST /healthy HTTP/1.1\r\nHost: a\r\nContent-Length: 2\r\n\r\nhi",
                    "GET /healthy HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n",
                ]
                .iter()
                .enumerate()
                {
                    let response = stream
                        .write_all(request.as_bytes())
                        .and_then(|()| read_response(&mut reader, false));
                    good &= response.as_ref().is_ok_and(|r| {
                        r.status == 200
                            && r.text().ends_with(&format!(
                                "/healthy ({} body bytes)\n",
                                if i == 1 { 2 } else { 0 }
                            ))
                    });
                    if response.is_ok_and(|r| r.header("Connection").as_deref() == Some("close")) {
                        (stream, reader) = connect(&addr);
                    }
                }
                if good {
                    ok.fetch_add(1, Ordering::Relaxed);
                } else {
                    failed.fetch_add(1, Ordering::Relaxed);
                }
            }
        })
    };
    // Slowloris: heads trickled a byte at a time are closed after --socket-timeout.
    let slow: Vec<_> = (0..3)
        .map(|_| {
            let addr = addr.clone();
            std::thread::spawn(move || {
                let started = Instant::now();
                let mut stream = TcpStream::connect(&addr).unwrap();
                for byte in b"GET / HTTP/1.1\r\nHost: a\r\nX-Slow: 1234567890\r\n" {
                    std::thread::sleep(Duration::from_millis(200));
                    if stream.write_all(&[*byte]).is_err() {
                        break;
                    }
                }
                stream
                    .set_read_timeout(Some(Duration::from_secs(5)))
                    .unwrap();
                let mut rest = Vec::new();
                let _ = stream.read_to_end(&mut rest);
                (started.elapsed(), rest)
            })
        })
        .collect();
    let cases = malformed_cases();
    assert!(cases.len() >= 60, "{} cases", cases.len());
    for (name, bytes) in &cases {
        let reply = send(&addr, bytes).unwrap_or_else(|| panic!("{name}: the server hung"));
        let text = String::from_utf8_lossy(&reply);
        assert!(
            reply.is_empty() || text.starts_with("HTTP/1.1 4") || text.starts_with("HTTP/1.1 5"),
            "{name}: {text}"
        );
        assert!(!text.contains("200 OK"), "{name}: {text}");
        assert!(!text.contains("smuggled"), "{name}: {text}");
        if !reply.is_empty() {
            assert!(text.contains("Connection: close"), "{name}: {text}");
        }
    }
    let must_answer = [
        "CL and TE",
        "TE and CL",
        "differing CL",
        "bare LF",
        "obs-fold",
        "101 headers",
        "huge header",
        "no Host",
        "empty chunk size",
        "CL over limit",
        "chunk over limit",
    ];
    for name in must_answer {
        let (_, bytes) = cases.iter().find(|(n, _)| n == name).unwrap();
        let reply = send(&addr, bytes).unwrap();
        let status = &reply[9..12];
        let expected: &[u8] = match name {
            "101 headers" | "huge header" => b"431",
            "CL over limit" | "chunk over limit" => b"413",
            _ => b"400",
        };
        assert_eq!(
            status,
            expected,
            "{name}: {}",
            String::from_utf8_lossy(&reply)
        );
    }
    for handle in slow {
        let (took, rest) = handle.join().unwrap();
        assert!(
            took < Duration::from_secs(6),
            "a slowloris connection lasted {took:?}"
        );
        assert!(
            rest.is_empty() || rest.starts_with(b"HTTP/1.1 408"),
            "{}",
            String::from_utf8_lossy(&rest)
        );
    }
    done.store(true, Ordering::Relaxed);
    healthy.join().unwrap();
    let good = ok.load(Ordering::Relaxed);
    assert_eq!(
        failed.load(Ordering::Relaxed),
        0,
        "healthy failures (with {good} successes)"
    );
    assert!(good > 0);
    // Still alive.
    let r = once(&addr, b"GET /end HTTP/1.1\r\nHost: a\r\n\r\n");
    assert_eq!(r.status, 200);
}

#[test]
fn an_idle_connection_holds_no_worker() {
    // One worker thread, a long keep-alive and socket timeout: if an idle connection held
    // the thread, the second client would wait 30 s for the first connection to go.
    let server = common::start(&[
        "--http-socket",
        "127.0.0.1:0",
        "--http-keepalive",
        "30",
        "--socket-timeout",
        "30",
        "--disable-logging",
    ]);
    let addr = server.http_addrs()[0].clone();
    let (mut idle, mut idle_reader) = connect(&addr);
    idle.write_all(b"GET /first HTTP/1.1\r\nHost: a\r\n\r\n")
        .unwrap();
    assert_eq!(read_response(&mut idle_reader, false).unwrap().status, 200);
    // The first connection now idles in keep-alive; a second client arrives.
    let started = Instant::now();
    let r = once(&addr, b"GET /second HTTP/1.1\r\nHost: a\r\n\r\n");
    assert_eq!(r.status, 200);
    assert_eq!(r.header("Connection"), None, "kept open: {}", r.head);
    let waited = started.elapsed();
    assert!(waited < Duration::from_secs(2), "waited {waited:?}");
    // The idle connection was kept, not closed to free the worker: it carries another
    // request.
    idle.write_all(b"GET /again HTTP/1.1\r\nHost: a\r\n\r\n")
        .unwrap();
    let r = read_response(&mut idle_reader, false).unwrap();
    assert_eq!(r.status, 200);
    assert_eq!(r.header("Connection"), None);

    // Two connections open at once, served alternately on one thread, both kept.
    let (mut first, mut first_reader) = connect(&addr);
    let (mut second, mut second_reader) = connect(&addr);
    for i in 0..5 {
        for (stream, reader) in [
            (&mut first, &mut first_reader),
            (&mut second, &mut second_reader),
        ] {
            stream
                .write_all(format!("GET /{i} HTTP/1.1\r\nHost: a\r\n\r\n").as_bytes())
                .unwrap();
            let r = read_response(reader, false).unwrap();
            assert_eq!(r.status, 200);
            assert_eq!(r.header("Connection"), None, "{}", r.head);
        }
    }

    // A connection that never sends anything (a browser's preconnect) delays no one.
    let (_silent, _silent_reader) = connect(&addr);
    std::thread::sleep(Duration::from_millis(100));
    let started = Instant::now();
    let r = once(&addr, b"GET /third HTTP/1.1\r\nHost: a\r\n\r\n");
    assert_eq!(r.status, 200);
    let waited = started.elapsed();
    assert!(waited < Duration::from_secs(1), "waited {waited:?}");
    // Every connection of this test, each accepted once; the open ones parked.
    let connections = server.http_connections();
    assert_eq!(connections.accepted, 6, "{connections:?}");
    assert!(connections.parked >= 4, "{connections:?}");
}

#[test]
fn graceful_stop_closes_idle_keep_alive_connections() {
    let server = common::start(&[
        "--http-socket",
        "127.0.0.1:0",
        "--http-keepalive",
        "60",
        "--processes",
        "2",
        "--disable-logging",
    ]);
    let addr = server.http_addrs()[0].clone();
    let (mut stream, mut reader) = connect(&addr);
    stream
        .write_all(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n")
        .unwrap();
    assert_eq!(read_response(&mut reader, false).unwrap().status, 200);
    let started = Instant::now();
    server.shutdown();
    let took = started.elapsed();
    eprintln!("stopped in {took:?}");
    assert!(took < Duration::from_secs(3), "{took:?}");
    assert!(closed(&mut reader, Duration::from_secs(2)));
    assert!(TcpStream::connect(&addr).is_err());
}

#[test]
fn a_request_arriving_a_byte_at_a_time_is_served() {
    let server = inspect(&["--http-socket", "127.0.0.1:0", "--disable-logging"]);
    let (mut stream, mut reader) = connect(&server.http_addrs()[0]);
    stream.set_nodelay(true).unwrap();
    let request = b"POST /slow?q=1 HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\n\r\nabc\
                    POST /c HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n2;x=y\r\nhi\r\n0\r\nT: 1\r\n\r\n";
    for byte in request {
        stream.write_all(&[*byte]).unwrap();
        std::thread::sleep(Duration::from_micros(300));
    }
    let r = read_response(&mut reader, false).unwrap();
    assert_eq!(r.var("PATH_INFO").as_deref(), Some("/slow"));
    assert_eq!(r.var("body-len").as_deref(), Some("3"));
    let r = read_response(&mut reader, false).unwrap();
    assert_eq!(r.var("PATH_INFO").as_deref(), Some("/c"));
    assert_eq!(r.var("body-len").as_deref(), Some("2"));
}

#[test]
fn ipv6_http_socket() {
    if std::net::TcpListener::bind("[::1]:0").is_err() {
        eprintln!("SKIPPED: no IPv6 loopback on this machine");
        return;
    }
    let server = inspect(&["--http-socket", "[::1]:0", "--disable-logging"]);
    let addr = server.http_addrs()[0].clone();
    assert!(addr.starts_with("[::1]:"), "{addr}");
    let r = once(&addr, b"GET /v6 HTTP/1.1\r\nHost: [::1]\r\n\r\n");
    assert_eq!(r.var("REMOTE_ADDR").as_deref(), Some("::1"));
    assert_eq!(r.var("SERVER_ADDR").as_deref(), Some("::1"));
    assert_eq!(r.var("HTTP_HOST").as_deref(), Some("[::1]"));
}

#[test]
fn an_http_socket_can_refuse_what_its_own_policy_excludes() {
    // The HTTP socket may only carry modifier1 0; a policy without it answers 503,
    // while the other HTTP socket keeps serving.
    let dir = tempfile::tempdir().unwrap();
    let closed = dir.path().join("closed.sock");
    let open = dir.path().join("open.sock");
    let server = inspect(&[
        "--http-socket",
        closed.to_str().unwrap(),
        "--http-socket",
        open.to_str().unwrap(),
        "--socket-allowed-modifiers",
        &format!("{}=100", closed.display()),
    ]);
    let ask = |path: &std::path::Path| {
        let mut stream = std::os::unix::net::UnixStream::connect(path).unwrap();
        stream
            .write_all(b"GET / HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
            .unwrap();
        let mut response = String::new();
        stream.read_to_string(&mut response).unwrap();
        response
    };
    assert!(ask(&closed).starts_with("HTTP/1.1 503"), "{}", ask(&closed));
    assert!(ask(&open).starts_with("HTTP/1.1 200"), "{}", ask(&open));
    drop(server);
}
