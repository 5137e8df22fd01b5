//! The Python WSGI host, end to end: the built `uwsgi-server` binary hosts the test
//! applications of tests/apps/ and is spoken to over the uwsgi protocol, as nginx and
//! uWSGI's clients do.

#![cfg(feature = "python")]
#![allow(clippy::unwrap_used)]

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use uwsgi_protocol::client::{Address, Client, HttpResponse};
use uwsgi_protocol::marshal::{self, Value};
use uwsgi_protocol::packet::Request;
use uwsgi_protocol::{Modifier1, Packet, VarsBuilder};

const BIN: &str = env!("CARGO_BIN_EXE_uwsgi-server");

fn app(name: &str) -> String {
    format!("{}/tests/apps/{name}", env!("CARGO_MANIFEST_DIR"))
}

/// A running `uwsgi-server` with its log file and a scratch directory the test apps
/// write to (`TEST_STATE_DIR`).
struct PyServer {
    child: Child,
    addr: String,
    dir: tempfile::TempDir,
}

impl PyServer {
    fn start(args: &[&str]) -> PyServer {
        Self::try_start(args).unwrap_or_else(|err| panic!("server did not start: {err}"))
    }

    /// Starts the server; `Err(stderr)` when it exits instead of listening.
    fn try_start(args: &[&str]) -> Result<PyServer, String> {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("log");
        let mut child = Command::new(BIN)
            .args(["--socket", "127.0.0.1:0", "--logto"])
            .arg(&log)
            .args(args)
            .env("TEST_STATE_DIR", dir.path())
            .stderr(Stdio::piped())
            .stdout(Stdio::null())
            .spawn()
            .unwrap();
        let Some(stderr) = child.stderr.take() else {
            let _ = child.kill();
            let _ = child.wait();
            return Err("no stderr pipe".to_owned());
        };
        let mut stderr = BufReader::new(stderr);
        let mut seen = String::new();
        loop {
            let mut line = String::new();
            if stderr.read_line(&mut line).unwrap_or(0) == 0 {
                let _ = child.wait();
                return Err(seen);
            }
            if let Some(addr) = line.trim().strip_prefix("uwsgi-server: listening on ") {
                let addr = addr.to_owned();
                // Keep draining stderr so the server never blocks on a full pipe.
                std::thread::spawn(move || {
                    let mut sink = String::new();
                    let _ = stderr.read_to_string(&mut sink);
                });
                return Ok(PyServer { child, addr, dir });
            }
            seen.push_str(&line);
        }
    }

    fn state(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("log")).unwrap_or_default()
    }

    fn client(&self) -> Client {
        Client::new(self.addr.parse::<Address>().unwrap())
    }

    /// Sends an application request with `modifier1`, the usual vars plus `extra`, and
    /// `body`; returns the raw response.
    fn raw(
        &self,
        modifier1: Modifier1,
        method: &str,
        uri: &str,
        extra: &[(&str, &[u8])],
        body: &[u8],
    ) -> Vec<u8> {
        let (path, query) = uri.split_once('?').unwrap_or((uri, ""));
        let mut vars = VarsBuilder::new();
        let length = body.len().to_string();
        let mut pairs: Vec<(&str, &[u8])> = vec![
            ("REQUEST_METHOD", method.as_bytes()),
            ("REQUEST_URI", uri.as_bytes()),
            ("PATH_INFO", path.as_bytes()),
            ("QUERY_STRING", query.as_bytes()),
            ("SERVER_PROTOCOL", b"HTTP/1.1"),
            ("SERVER_NAME", b"test.local"),
            ("SERVER_PORT", b"80"),
            ("REMOTE_ADDR", b"127.0.0.1"),
            ("HTTP_HOST", b"test.local"),
        ];
        if !body.is_empty() {
            pairs.push(("CONTENT_LENGTH", length.as_bytes()));
            pairs.push(("CONTENT_TYPE", b"application/x-www-form-urlencoded"));
        }
        for (key, value) in extra {
            pairs.retain(|(k, _)| k != key);
            pairs.push((key, value));
        }
        for (key, value) in pairs {
            vars.push(key, value).unwrap();
        }
        let mut packet = Packet::Request(Request::new(modifier1, vars.as_vars())).to_vec();
        packet.extend_from_slice(body);
        let mut stream = TcpStream::connect(&self.addr).unwrap();
        stream
            .set_read_timeout(Some(Duration::from_secs(30)))
            .unwrap();
        // The body may be large: write it from another thread while reading.
        let mut writer = stream.try_clone().unwrap();
        let sender = std::thread::spawn(move || {
            let _ = writer.write_all(&packet);
        });
        let mut reply = Vec::new();
        stream.read_to_end(&mut reply).unwrap();
        sender.join().unwrap();
        reply
    }

    fn request(&self, method: &str, uri: &str, extra: &[(&str, &[u8])], body: &[u8]) -> Response {
        Response::parse(&self.raw(Modifier1::Wsgi, method, uri, extra, body))
    }

    fn get(&self, uri: &str) -> Response {
        self.request("GET", uri, &[], b"")
    }
}

impl Drop for PyServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// An owned, parsed response.
#[derive(Debug)]
struct Response {
    status: u16,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Response {
    fn parse(raw: &[u8]) -> Response {
        let http = HttpResponse::parse(raw)
            .unwrap_or_else(|| panic!("not an HTTP response: {:?}", String::from_utf8_lossy(raw)));
        Response {
            status: http.status,
            headers: http
                .headers
                .iter()
                .map(|(n, v)| ((*n).to_owned(), (*v).to_owned()))
                .collect(),
            body: http.body.to_vec(),
        }
    }

    fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.text()))
    }
}

/// Waits up to 10 s for `path` to exist and returns its contents.
fn wait_for_file(path: &Path) -> String {
    let started = Instant::now();
    loop {
        if let Ok(text) = std::fs::read_to_string(path)
            && !text.is_empty()
        {
            return text;
        }
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "{} never appeared",
            path.display()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn main_app(extra: &[&str]) -> PyServer {
    let file = app("main.py");
    let mut args = vec!["--wsgi-file", file.as_str()];
    args.extend_from_slice(extra);
    PyServer::start(&args)
}

#[test]
fn environ_follows_pep_3333_and_uwsgi() {
    let server = main_app(&[]);
    let response = server.request(
        "GET",
        "/environ?a=1",
        &[("HTTP_X_LATIN", b"caf\xe9"), ("SCRIPT_NAME", b"")],
        b"",
    );
    assert_eq!(response.status, 200);
    let env = response.json();
    assert_eq!(env["environ.type"], "dict");
    assert_eq!(env["REQUEST_METHOD"], "GET");
    assert_eq!(env["PATH_INFO"], "/environ");
    assert_eq!(env["QUERY_STRING"], "a=1");
    assert_eq!(env["SCRIPT_NAME"], "");
    assert_eq!(env["SERVER_NAME"], "test.local");
    assert_eq!(env["HTTP_X_LATIN"], "caf\u{e9}", "vars are latin-1 str");
    assert_eq!(env["wsgi.version"], serde_json::json!([1, 0]));
    assert_eq!(env["wsgi.url_scheme"], "http");
    assert_eq!(env["wsgi.multithread"], false);
    assert_eq!(env["wsgi.multiprocess"], false);
    assert_eq!(env["wsgi.run_once"], false);
    assert_eq!(env["wsgi.input.type"], "Input");
    assert_eq!(env["wsgi.file_wrapper"]["type"], "type");
    assert_eq!(env["wsgi.errors"]["type"], "ErrorStream");
    assert_eq!(
        env["uwsgi.version"]["bytes"],
        env!("CARGO_PKG_VERSION"),
        "uwsgi.version is bytes"
    );
    assert!(
        env["uwsgi.node"]["bytes"]
            .as_str()
            .is_some_and(|n| !n.is_empty())
    );
    assert_eq!(env["uwsgi.core"], 0);

    // The scheme: HTTPS=on, then UWSGI_SCHEME over everything.
    let env = server
        .request("GET", "/environ", &[("HTTPS", b"on")], b"")
        .json();
    assert_eq!(env["wsgi.url_scheme"], "https");
    let env = server
        .request(
            "GET",
            "/environ",
            &[("HTTPS", b"on"), ("UWSGI_SCHEME", b"ftp")],
            b"",
        )
        .json();
    assert_eq!(env["wsgi.url_scheme"], "ftp");

    // modifier1 30 strips SCRIPT_NAME from PATH_INFO; modifier1 0 does not.
    let extra: [(&str, &[u8]); 2] = [
        ("SCRIPT_NAME", b"/prefix"),
        ("PATH_INFO", b"/prefix/environ"),
    ];
    let raw = server.raw(
        Modifier1::WsgiScriptName,
        "GET",
        "/prefix/environ",
        &extra,
        b"",
    );
    let stripped = Response::parse(&raw).json();
    assert_eq!(stripped["PATH_INFO"], "/environ");
    assert_eq!(stripped["SCRIPT_NAME"], "/prefix");
    let raw = server.raw(Modifier1::Wsgi, "GET", "/prefix/environ", &extra, b"");
    assert_eq!(Response::parse(&raw).status, 404, "PATH_INFO kept whole");
}

impl PyServer {
    /// Sends exactly `vars` (duplicates and order as given) with modifier1 0.
    fn send_vars(&self, vars: &[(&str, &[u8])]) -> Response {
        let mut builder = VarsBuilder::new();
        for (key, value) in vars {
            builder.push(key, value).unwrap();
        }
        let packet = Packet::Request(Request::new(Modifier1::Wsgi, builder.as_vars())).to_vec();
        let mut stream = TcpStream::connect(&self.addr).unwrap();
        stream
            .set_read_timeout(Some(Duration::from_secs(30)))
            .unwrap();
        stream.write_all(&packet).unwrap();
        let mut reply = Vec::new();
        stream.read_to_end(&mut reply).unwrap();
        Response::parse(&reply)
    }
}

/// The environ a fresh build gives for `vars`, in order (`uwsgi.node` as `node`).
fn expected_environ(vars: &[(&str, &[u8])], node: &serde_json::Value) -> serde_json::Value {
    use serde_json::{Value, json};
    let latin1 = |v: &[u8]| Value::String(v.iter().map(|&b| char::from(b)).collect());
    let mut items: Vec<(String, Value)> = Vec::new();
    for (key, value) in vars {
        match items.iter_mut().find(|(k, _)| k == key) {
            Some(item) => item.1 = latin1(value),
            None => items.push(((*key).to_owned(), latin1(value))),
        }
    }
    let get = |name: &str| vars.iter().rev().find(|(k, _)| *k == name).map(|(_, v)| *v);
    for name in ["PATH_INFO", "SCRIPT_NAME"] {
        if get(name).is_none() {
            items.push((name.to_owned(), json!("")));
        }
    }
    let scheme = match (get("UWSGI_SCHEME"), get("HTTPS"), get("REQUEST_SCHEME")) {
        (Some(s), _, _) if !s.is_empty() => latin1(s),
        (_, Some(b"on" | b"1"), _) => json!("https"),
        (_, _, Some(s)) if !s.is_empty() => latin1(s),
        _ => json!("http"),
    };
    items.extend([
        ("wsgi.version".to_owned(), json!([1, 0])),
        ("wsgi.url_scheme".to_owned(), scheme),
        ("wsgi.multithread".to_owned(), json!(false)),
        ("wsgi.multiprocess".to_owned(), json!(false)),
        ("wsgi.run_once".to_owned(), json!(false)),
        (
            "uwsgi.version".to_owned(),
            json!({"bytes": env!("CARGO_PKG_VERSION")}),
        ),
        ("uwsgi.node".to_owned(), node.clone()),
        ("uwsgi.core".to_owned(), json!(0)),
        ("wsgi.input".to_owned(), json!({"type": "Input"})),
        ("wsgi.errors".to_owned(), json!({"type": "ErrorStream"})),
        ("wsgi.file_wrapper".to_owned(), json!({"type": "type"})),
    ]);
    Value::Array(items.into_iter().map(|(k, v)| json!([k, v])).collect())
}

/// A worker thread keeps the previous request's environ as the template of the next
/// one: whatever the sequence of requests, each environ is exactly (items and order)
/// what a fresh build gives, and what an application does to its environ stays there.
#[test]
fn consecutive_requests_each_get_their_own_environ() {
    let server = main_app(&[]);
    let long_a = "a".repeat(300);
    let long_b = "b".repeat(300);
    let base = |query: &'static str, long: &str, scheme: &'static str| -> Vec<(String, Vec<u8>)> {
        vec![
            ("REQUEST_METHOD".into(), b"GET".to_vec()),
            ("PATH_INFO".into(), b"/environ_items".to_vec()),
            ("QUERY_STRING".into(), query.as_bytes().to_vec()),
            ("SERVER_NAME".into(), b"test.local".to_vec()),
            ("SERVER_PROTOCOL".into(), b"HTTP/1.1".to_vec()),
            ("HTTP_X_LONG".into(), long.as_bytes().to_vec()),
            ("UWSGI_SCHEME".into(), scheme.as_bytes().to_vec()),
        ]
    };
    let mut sequence = vec![
        base("q=1", &long_a, "https"),
        // The same names: values changed, kept ones, long ones, the scheme.
        base("q=2", &long_b, ""),
        base("q=2", &long_b, ""),
        base("q=2", "short", "ftp"),
        base("q=3", &long_a, "ftp"),
    ];
    // Latin-1 bytes, and a var more.
    let mut latin = base("q=4", "caf\u{e9}", "");
    latin[5].1 = b"caf\xe9".to_vec();
    latin.push(("HTTPS".into(), b"on".to_vec()));
    sequence.push(latin.clone());
    sequence.push(latin);
    // Two vars of one name: one item, the last value, at the first place; twice, so
    // the second request follows one with the same names.
    for last in ["two", "three", "three"] {
        let mut dup = base("q=5", "x", "");
        dup.insert(3, ("HTTP_X_DUP".into(), b"one".to_vec()));
        dup.push(("HTTP_X_DUP".into(), last.as_bytes().to_vec()));
        sequence.push(dup);
    }
    // No SCRIPT_NAME, then one; fewer vars; more vars.
    sequence.push(base("q=6", "x", ""));
    let mut with_script = base("q=6", "x", "");
    with_script.push(("SCRIPT_NAME".into(), b"".to_vec()));
    sequence.push(with_script);
    let mut fewer = base("q=7", "x", "");
    fewer.truncate(3);
    sequence.push(fewer.clone());
    sequence.push(fewer);
    sequence.push(base("q=8", "x", ""));

    let mut node = serde_json::Value::Null;
    for (round, vars) in sequence.iter().enumerate() {
        let vars: Vec<(&str, &[u8])> = vars
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_slice()))
            .collect();
        // The application mutates its environ before every other request.
        if round % 2 == 1 {
            let mut mutate = vars.clone();
            mutate[1].1 = b"/environ_mutate";
            assert_eq!(
                server.send_vars(&mutate).text(),
                "mutated",
                "round {round}: {}",
                server.log()
            );
        }
        let response = server.send_vars(&vars);
        assert_eq!(response.status, 200, "round {round}: {}", server.log());
        let environ = response.json();
        if round == 0 {
            node = environ
                .as_array()
                .unwrap()
                .iter()
                .find(|item| item[0] == "uwsgi.node")
                .unwrap()[1]
                .clone();
        }
        assert_eq!(environ, expected_environ(&vars, &node), "round {round}");
    }
}

/// `wsgi.errors` is the worker thread's for all its requests: what a request leaves
/// unfinished on it reaches the log when that request ends.
#[test]
fn unfinished_error_lines_reach_the_log_at_the_end_of_the_request() {
    let server = main_app(&[]);
    for n in ["first", "second"] {
        let response = server.get(&format!("/errors_partial?{n}"));
        assert_eq!(response.text(), "wrote");
        let started = Instant::now();
        while !server.log().contains(&format!("partial line from {n}\n")) {
            assert!(
                started.elapsed() < Duration::from_secs(10),
                "{}",
                server.log()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

#[test]
fn wsgiref_validator_accepts_the_server() {
    let server = main_app(&[]);
    let response = server.request("POST", "/validate", &[], b"payload=1");
    assert_eq!(
        response.status,
        200,
        "{}\n{}",
        response.text(),
        server.log()
    );
    assert_eq!(response.text(), "validated:payload=1");
    let log = server.log();
    assert!(
        log.contains("validated request"),
        "wsgi.errors reaches the log: {log}"
    );
    assert!(!log.contains("Traceback"), "{log}");
    // GET without a body, through the validator too.
    let response = server.get("/validate");
    assert_eq!(response.status, 200, "{}", server.log());
    assert_eq!(response.text(), "validated:");
}

#[test]
fn get_and_post_forms() {
    let server = main_app(&[]);
    let response = server.get("/form?name=ada&lang=rust&lang=py");
    assert_eq!(
        response.json(),
        serde_json::json!({"lang": ["rust", "py"], "name": ["ada"]})
    );
    let response = server.request("POST", "/form", &[], b"name=grace&x=%C3%A9");
    assert_eq!(
        response.json(),
        serde_json::json!({"name": ["grace"], "x": ["\u{e9}"]})
    );
}

/// 10 MB of lines of varied lengths, some longer than `readline(1000)`'s limit.
fn upload_body() -> Vec<u8> {
    let mut body = Vec::with_capacity(10 << 20);
    let mut n: u32 = 0;
    while body.len() < 10 << 20 {
        n = n.wrapping_mul(1_103_515_245).wrapping_add(12345);
        let len = (n >> 8) % 2500;
        for i in 0..len {
            body.push(b'a' + u8::try_from((i + n) % 26).unwrap());
        }
        body.push(b'\n');
    }
    body.truncate(10 << 20);
    body
}

/// Pieces `readline(limit)` splits `body` into.
fn line_pieces(body: &[u8], limit: Option<usize>) -> usize {
    let mut pieces = 0;
    for line in body.split_inclusive(|b| *b == b'\n') {
        pieces += match limit {
            Some(limit) => line.len().div_ceil(limit),
            None => 1,
        };
    }
    pieces
}

#[test]
fn ten_megabyte_upload_by_every_read_method() {
    let server = main_app(&[]);
    let body = upload_body();
    let total = body.len();
    let checksum: u64 = body.iter().map(|b| u64::from(*b)).sum();
    let expect = |mode: &str, pieces: usize| {
        let response = server.request("POST", &format!("/upload?mode={mode}"), &[], &body);
        assert_eq!(response.status, 200, "{mode}: {}", server.log());
        assert_eq!(
            response.text(),
            format!("{total} {checksum} {pieces}"),
            "mode {mode}"
        );
    };
    expect("read", total.div_ceil(65536));
    expect("readall", 1);
    expect("readline", line_pieces(&body, Some(1000)));
    expect("iter", line_pieces(&body, None));
    expect("readlines", line_pieces(&body, None));
}

#[test]
fn large_bodies_are_streamed_to_the_application() {
    // The application reads 10 bytes of a 10 MB body and answers while most of the
    // body has not been sent: the server hands the body over as it arrives.
    let server = main_app(&[]);
    let mut vars = VarsBuilder::new();
    for (key, value) in [
        ("REQUEST_METHOD", "POST"),
        ("PATH_INFO", "/peek"),
        ("QUERY_STRING", "n=10"),
        ("SERVER_PROTOCOL", "HTTP/1.1"),
        ("SERVER_NAME", "test.local"),
        ("SERVER_PORT", "80"),
        ("CONTENT_LENGTH", "10000000"),
    ] {
        vars.push(key, value).unwrap();
    }
    let mut packet = Packet::Request(Request::new(Modifier1::Wsgi, vars.as_vars())).to_vec();
    packet.extend_from_slice(&[b'q'; 200_000]);
    let mut stream = TcpStream::connect(&server.addr).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(3)))
        .unwrap();
    stream.write_all(&packet).unwrap();
    let started = Instant::now();
    let mut reply = Vec::new();
    // The server closes after the response (the unread body is dropped).
    let _ = stream.read_to_end(&mut reply);
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "the answer waited for the body"
    );
    let response = Response::parse(&reply);
    assert_eq!(response.text(), "peeked:qqqqqqqqqq");
}

#[test]
fn post_buffering_keeps_small_bodies_in_memory_and_large_ones_on_disk() {
    let server = main_app(&["--post-buffering", "4096"]);
    for size in [100usize, 4096, 4097, 300_000] {
        let body = vec![b'z'; size];
        let response = server.request("POST", "/upload?mode=readall", &[], &body);
        assert_eq!(
            response.text(),
            format!("{size} {} 1", size * usize::from(b'z')),
            "size {size}"
        );
    }
}

#[test]
fn python_thread_state_lasts_between_requests() {
    // One worker thread: threading.local() data survives from request to request, as
    // on a uWSGI core.
    let server = main_app(&[]);
    let first = server.get("/thread_local").text();
    let second = server.get("/thread_local").text();
    let third = server.get("/thread_local").text();
    let (count, ident) = first.split_once(' ').unwrap();
    assert_eq!(count, "1");
    assert_eq!(second, format!("2 {ident}"));
    assert_eq!(third, format!("3 {ident}"));
}

#[test]
fn streaming_generator_and_write_callable() {
    let server = main_app(&[]);
    let response = server.get("/stream");
    assert_eq!(response.status, 200);
    assert_eq!(response.text(), "chunk0;chunk1;chunk2;chunk3;chunk4;");
    let response = server.get("/write");
    assert_eq!(response.status, 200);
    assert_eq!(response.header("Content-Type"), Some("text/plain"));
    assert_eq!(response.text(), "written-1;written-2;returned");
}

#[test]
fn write_sends_at_once() {
    let server = main_app(&[]);
    let mut vars = VarsBuilder::new();
    for (key, value) in [
        ("REQUEST_METHOD", "GET"),
        ("PATH_INFO", "/write_slow"),
        ("SERVER_PROTOCOL", "HTTP/1.1"),
        ("SERVER_NAME", "test.local"),
        ("SERVER_PORT", "80"),
    ] {
        vars.push(key, value).unwrap();
    }
    let packet = Packet::Request(Request::new(Modifier1::Wsgi, vars.as_vars())).to_vec();
    let mut stream = TcpStream::connect(&server.addr).unwrap();
    stream.write_all(&packet).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    let started = Instant::now();
    let mut early = Vec::new();
    let mut buf = [0u8; 4096];
    while !early.ends_with(b"early;") {
        let n = stream.read(&mut buf).unwrap();
        assert!(n > 0, "closed early: {:?}", String::from_utf8_lossy(&early));
        early.extend_from_slice(&buf[..n]);
    }
    assert!(
        started.elapsed() < Duration::from_millis(1200),
        "write() waited for the application: {:?}",
        started.elapsed()
    );
    let mut rest = Vec::new();
    stream.read_to_end(&mut rest).unwrap();
    early.extend_from_slice(&rest);
    let response = Response::parse(&early);
    assert_eq!(response.status, 200);
    assert_eq!(response.text(), "early;late");
    assert!(
        server.log().contains("generated 10 bytes"),
        "{}",
        server.log()
    );
    // exc_info after write() sent the head re-raises.
    assert_eq!(server.get("/exc_info_write").text(), "sent;re-raised");
}

#[test]
fn disconnect_ends_the_response_and_the_app_goes_on() {
    let server = main_app(&["--cache2", "name=default,items=100"]);
    let started = Instant::now();
    let raw = server.raw(Modifier1::Wsgi, "GET", "/disconnect", &[], b"");
    assert!(
        started.elapsed() < Duration::from_millis(900),
        "the connection stayed open: {:?}",
        started.elapsed()
    );
    let response = Response::parse(&raw);
    assert_eq!(response.text(), "accepted");
    // The application finished its work after the client was gone.
    let cache = server.client();
    let begun = Instant::now();
    while cache.cache().get(b"after_disconnect").unwrap().is_none() {
        assert!(begun.elapsed() < Duration::from_secs(5), "{}", server.log());
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(!server.log().contains("Traceback"), "{}", server.log());
    // The worker serves the next request normally.
    assert_eq!(server.get("/stream").status, 200);
}

#[test]
fn exc_info_rules() {
    let server = main_app(&[]);
    // Before anything was sent, start_response(..., exc_info) replaces the head.
    let response = server.get("/exc_info");
    assert_eq!(response.status, 503);
    assert_eq!(response.header("X-Replaced"), Some("1"));
    assert_eq!(response.text(), "replaced");
    // After the head went out, it re-raises: the response stops, the error is logged.
    let raw = server.raw(Modifier1::Wsgi, "GET", "/exc_info_late", &[], b"");
    let response = Response::parse(&raw);
    assert_eq!(response.status, 200);
    assert_eq!(response.text(), "first;");
    let log = server.log();
    assert!(log.contains("KeyError: 'too late'"), "{log}");
    // A second start_response without exc_info is refused.
    assert_eq!(
        server.get("/double_start").text(),
        "refused second start_response"
    );
}

#[test]
fn close_is_called_on_success_and_on_error() {
    let server = main_app(&["--cache2", "name=default,items=100"]);
    let response = server.get("/close?key=ok");
    assert_eq!(response.text(), "ab");
    assert_eq!(server.get("/cache_get?key=ok").text(), "closed");

    let response = server.get("/close_error?key=failed");
    assert_eq!(response.status, 500);
    assert_eq!(server.get("/cache_get?key=failed").text(), "closed");
    assert!(
        server
            .log()
            .contains("RuntimeError: failure while iterating")
    );
}

#[test]
fn file_wrapper_sends_the_file() {
    let server = main_app(&[]);
    let data: Vec<u8> = (0..3_000_000u32).map(|i| (i % 251) as u8).collect();
    let path = server.state("big.bin");
    std::fs::write(&path, &data).unwrap();
    let uri = format!("/file?name={}", path.display());
    let response = server.get(&uri);
    assert_eq!(response.status, 200);
    assert_eq!(
        response.header("Content-Type"),
        Some("application/octet-stream")
    );
    assert_eq!(response.body.len(), data.len());
    assert!(response.body == data, "the file arrives intact");
    assert!(
        server.log().contains("generated 3000000 bytes"),
        "{}",
        server.log()
    );
}

#[test]
fn not_found_errors_and_the_worker_survives() {
    let server = main_app(&[]);
    let response = server.get("/nowhere");
    assert_eq!(response.status, 404);
    assert_eq!(response.text(), "no such page: /nowhere");

    let response = server.get("/raise");
    assert_eq!(response.status, 500);
    let log = server.log();
    assert!(log.contains("Traceback (most recent call last)"), "{log}");
    assert!(
        log.contains("RuntimeError: the application failed on purpose"),
        "{log}"
    );

    let response = server.get("/not_bytes");
    assert_eq!(response.status, 500);
    assert!(server.log().contains("must be bytes"), "{}", server.log());

    // A refused block after others: those went out, with the head; no 500 then.
    let response = server.get("/not_bytes_after");
    assert_eq!(response.status, 200);
    assert_eq!(response.text(), "sent;also sent;");
    // Only empty blocks before it: nothing went out, so the answer is a 500.
    let response = server.get("/not_bytes_after_empty");
    assert_eq!(response.status, 500);

    // The same worker serves the next request.
    assert_eq!(server.get("/stream").status, 200);
}

#[test]
fn header_injection_is_refused() {
    let server = main_app(&[]);
    let raw = server.raw(Modifier1::Wsgi, "GET", "/bad_header", &[], b"");
    let response = Response::parse(&raw);
    assert_eq!(response.status, 500);
    assert!(!String::from_utf8_lossy(&raw).contains("evil"));
    assert!(
        server
            .log()
            .contains("refused the application's response head"),
        "{}",
        server.log()
    );
}

#[test]
fn threads_serve_slow_requests_at_once() {
    let time_two = |server: &PyServer| {
        let started = Instant::now();
        std::thread::scope(|scope| {
            let a = scope.spawn(|| server.get("/sleep?s=1"));
            let b = scope.spawn(|| server.get("/sleep?s=1"));
            assert_eq!(a.join().unwrap().text(), "slept");
            assert_eq!(b.join().unwrap().text(), "slept");
        });
        started.elapsed()
    };
    let threaded = main_app(&["--threads", "2"]);
    let env = threaded.get("/environ").json();
    assert_eq!(env["wsgi.multithread"], true);
    let took = time_two(&threaded);
    assert!(
        took < Duration::from_millis(1800),
        "two threads took {took:?}"
    );

    let single = main_app(&[]);
    let took = time_two(&single);
    assert!(
        took >= Duration::from_millis(2000),
        "one thread took {took:?}"
    );
}

#[test]
fn mount_selects_the_app_by_script_name() {
    let mount_a = format!("/a={}", app("mount_a.py"));
    let mount_b = format!("/b={}", app("mount_b.py"));
    let server = PyServer::start(&["--mount", &mount_a, "--mount", &mount_b]);
    let get = |script: &[u8], path: &[u8]| {
        let extra: [(&str, &[u8]); 2] = [("SCRIPT_NAME", script), ("PATH_INFO", path)];
        let raw = server.raw(Modifier1::WsgiScriptName, "GET", "/", &extra, b"");
        Response::parse(&raw).text()
    };
    assert_eq!(get(b"/b", b"/b/x"), "app B script=/b path=/x");
    assert_eq!(get(b"/a", b"/a/y"), "app A script=/a path=/y");
    // No match: the first app loaded (uWSGI's default app).
    assert_eq!(get(b"", b"/z"), "app A script= path=/z");
}

#[test]
fn need_app_stops_startup_and_its_absence_answers_500() {
    let file = app("no_callable.py");
    let err = PyServer::try_start(&["--wsgi-file", &file, "--need-app"])
        .err()
        .expect("the server must not start");
    assert!(err.contains("need-app"), "{err}");

    let server = PyServer::start(&["--wsgi-file", &file]);
    let response = server.get("/");
    assert_eq!(response.status, 500);
    let log = server.log();
    assert!(
        log.contains("unable to find \"application\" callable"),
        "{log}"
    );
    assert!(log.contains("no python application found"), "{log}");
}

/// RPC functions run in the worker thread's one Python thread state, as requests do:
/// `threading.local` data lasts from call to call (each thread counts 1, 2, 3…), also on
/// threads that never served a WSGI request.
#[test]
fn rpc_functions_keep_their_thread_state() {
    let server = main_app(&["--threads", "2"]);
    let client = server.client();
    let mut calls_by_thread: HashMap<String, Vec<u32>> = HashMap::new();
    for _ in 0..8 {
        let answer = client
            .rpc("calls_on_this_thread", [""; 0])
            .unwrap()
            .unwrap();
        let answer = String::from_utf8(answer).unwrap();
        let (thread, count) = answer.split_once(':').unwrap();
        calls_by_thread
            .entry(thread.to_owned())
            .or_default()
            .push(count.parse().unwrap());
    }
    for counts in calls_by_thread.values() {
        let expected: Vec<u32> = (1..=u32::try_from(counts.len()).unwrap()).collect();
        assert_eq!(counts, &expected, "{calls_by_thread:?}");
    }
}

#[test]
fn embedded_uwsgi_module_is_the_servers() {
    let server = main_app(&[
        "--cache2",
        "name=default,items=100",
        "--buffer-size",
        "8192",
        "--env",
        "GREETING=hi",
        "--enable-threads",
    ]);
    // The module is the built-in one, with the server's values.
    let info = server.get("/uwsgi").json();
    assert_eq!(
        info["module_file"],
        serde_json::Value::Null,
        "built in, not a file"
    );
    assert_eq!(info["numproc"], 1);
    assert_eq!(info["worker_id"], 1);
    assert_eq!(info["masterpid"], 0);
    assert_eq!(info["buffer_size"], 8192);
    assert_eq!(info["cores"], 1);
    assert_eq!(info["sockets"], 1);
    assert_eq!(info["workers"], 1);
    assert_eq!(info["applist"], serde_json::json!([""]));
    assert_eq!(info["is_a_reload"], false);
    assert_eq!(info["queue_size"], 0);
    assert_eq!(info["magic_h"], info["hostname"]);
    assert!(
        info["testing_reset"]
            .as_str()
            .unwrap()
            .contains("only work standalone"),
        "{}",
        info["testing_reset"]
    );
    assert_eq!(info["version"], env!("CARGO_PKG_VERSION"));
    // Requests are counted when they end (as uWSGI counts them when it closes a
    // request): the one asking is not in the total yet.
    assert_eq!(info["total_requests"], 0);
    assert_eq!(info["request_id"], 1);
    assert_eq!(info["opt"]["wsgi-file"]["bytes"], app("main.py"));
    assert_eq!(info["opt"]["buffer-size"]["bytes"], "8192");
    assert_eq!(info["opt"]["enable-threads"], true, "a bare flag is True");
    assert!(
        info["rpc_list"]
            .as_array()
            .unwrap()
            .iter()
            .any(|n| n == "hello_py")
    );
    assert_eq!(
        server.get("/uwsgi").json()["total_requests"],
        1,
        "the first request, ended"
    );

    // set_warning_message in the app: every ping answers it (modifier1 100).
    assert_eq!(server.client().ping().unwrap(), None);
    assert_eq!(server.get("/warning?m=disk%20almost%20full").text(), "set");
    assert_eq!(
        server.client().ping().unwrap().as_deref(),
        Some("disk almost full")
    );

    // Log variables belong to the request that set them.
    assert_eq!(server.get("/logvar?v=ada").text(), "None b'ada'");
    assert_eq!(server.get("/logvar?v=bob").text(), "None b'bob'");

    // Request-local facts: the body length and the connection's socket.
    let response = server.request("POST", "/request_facts", &[], b"12345");
    assert_eq!(response.text(), "cl=5 peer=127.0.0.1", "{}", server.log());

    // cache_set in the app, read over the network (modifier1 111).
    assert_eq!(
        server.get("/cache_set?key=k&value=from-python").text(),
        "set"
    );
    let client = server.client();
    assert_eq!(
        client.cache().get(b"k").unwrap(),
        Some(b"from-python".to_vec())
    );
    // after_req_hook ran after the requests.
    assert_eq!(
        client.cache().get(b"after_req").unwrap(),
        Some(b"yes".to_vec())
    );

    // register_rpc in the app, called over the network (modifier1 173).
    assert_eq!(
        client.rpc("hello_py", ["a", "b"]).unwrap(),
        Some(b"py:a|b".to_vec())
    );

    // message_manager_marshal answers a marshalled message (modifier1 33).
    let message = Value::List(vec![Value::Int(7), Value::Str("x".to_owned())]);
    let payload = marshal::to_vec(&message, 1).unwrap();
    let reply = client.send(Modifier1::from(33u8), 5, &payload).unwrap();
    let bytes = reply.as_bytes();
    assert_eq!(bytes[0], 33, "a modifier1 33 reply");
    let answer = marshal::from_slice(&bytes[4..]).unwrap();
    assert_eq!(
        answer,
        Value::Dict(vec![
            (Value::Str("got".to_owned()), message),
            (Value::Str("modifier2".to_owned()), Value::Int(5)),
        ])
    );

    // uwsgi.signal from the app runs the handler it registered.
    assert_eq!(server.get("/signal").text(), "signalled");
    assert_eq!(wait_for_file(&server.state("signal")), "17");
}

#[test]
fn spooler_runs_the_python_function() {
    let spool = tempfile::tempdir().unwrap();
    let dir = spool.path().to_str().unwrap().to_owned();
    let server = main_app(&["--spooler", &dir]);
    let info = server.get("/uwsgi").json();
    assert_eq!(info["spoolers"], serde_json::json!([dir]));
    assert_eq!(server.get("/spool?payload=job-42").text(), "spooled");
    assert_eq!(wait_for_file(&server.state("spooled")), "job-42");
    // SPOOL_OK: the job file is removed.
    let started = Instant::now();
    while std::fs::read_dir(&dir).unwrap().next().is_some() {
        assert!(started.elapsed() < Duration::from_secs(10), "job file left");
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn hooks_and_the_applications_table() {
    let server = PyServer::start(&["--wsgi-file", &app("hooks.py")]);
    assert_eq!(wait_for_file(&server.state("post_fork")), "worker 1");
    assert_eq!(server.get("/").text(), "first app");
    let extra: [(&str, &[u8]); 1] = [("SCRIPT_NAME", b"/second")];
    let raw = server.raw(Modifier1::Wsgi, "GET", "/", &extra, b"");
    assert_eq!(Response::parse(&raw).text(), "second app");
    // SIGTERM: a graceful stop runs uwsgi.atexit.
    let status = Command::new("kill")
        .args(["-TERM", &server.child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    assert_eq!(wait_for_file(&server.state("atexit")), "bye");
}

#[test]
fn module_option_and_python_path() {
    let apps = app("");
    let server = PyServer::start(&["--pythonpath", &apps, "--module", "mount_b:application"]);
    assert_eq!(server.get("/q").text(), "app B script= path=/q");
    let server = PyServer::start(&[
        "--chdir",
        &apps,
        "--wsgi",
        "mount_a",
        "--callable",
        "application",
    ]);
    assert_eq!(server.get("/r").text(), "app A script= path=/r");
}

#[test]
fn embeds_the_python_it_was_built_for() {
    let server = main_app(&[]);
    let info = server.get("/python").json();
    let version = info["version"].as_str().unwrap().to_owned();
    assert!(version.starts_with("3."), "{version}");
    // scripts/python-matrix.sh says which CPython each build must run.
    if let Ok(expected) = std::env::var("EXPECT_PYTHON_VERSION") {
        assert_eq!(version, expected, "prefix {}", info["prefix"]);
    }
    // The current directory is importable, as in uWSGI.
    assert_eq!(info["path"][0], "");
}

#[test]
fn virtualenv_site_packages_come_first() {
    let venv = tempfile::tempdir().unwrap();
    let info = main_app(&[]).get("/python").json();
    let version = info["version"].as_str().unwrap();
    let minor: Vec<&str> = version.split('.').take(2).collect();
    let site = venv
        .path()
        .join("lib")
        .join(format!("python{}", minor.join(".")))
        .join("site-packages");
    std::fs::create_dir_all(&site).unwrap();
    std::fs::write(
        site.join("venv_marker.py"),
        "def application(environ, start_response):\n    start_response('200 OK', [])\n    return [b'from the venv']\n",
    )
    .unwrap();
    // A standalone `uwsgi` installed in the virtualenv must not shadow the server's.
    std::fs::write(
        site.join("uwsgi.py"),
        "raise ImportError('the standalone uwsgi module was imported')\n",
    )
    .unwrap();
    let home = venv.path().to_str().unwrap();
    let server = PyServer::start(&["--home", home, "--module", "venv_marker"]);
    assert_eq!(server.get("/").text(), "from the venv");
    let server = main_app(&["--home", home]);
    let info = server.get("/uwsgi").json();
    assert_eq!(
        info["module_file"],
        serde_json::Value::Null,
        "{}",
        server.log()
    );
    let python = server.get("/python").json();
    assert_eq!(python["prefix"], home);
    // --pythonpath with a virtualenv: still first, and the current directory still in
    // (the virtualenv puts a new list in sys.path; both once went into the old one).
    let server = main_app(&["--home", home, "--pythonpath", "/pp-marker"]);
    let python = server.get("/python").json();
    assert_eq!(python["path"][0], "/pp-marker", "{}", python["path"]);
    assert_eq!(python["path"][1], "", "{}", python["path"]);
    let err = PyServer::try_start(&["--home", "/nonexistent-venv", "--module", "x"])
        .err()
        .expect("a missing virtualenv stops startup");
    assert!(err.contains("nonexistent-venv"), "{err}");
}

#[test]
fn forked_python_workers_share_the_servers_state() {
    let server = main_app(&[
        "--master",
        "--processes",
        "2",
        "--cache2",
        "name=default,items=100",
    ]);
    let master = server.child.id();
    // Several connections at once, so both workers take some.
    let answers: Vec<serde_json::Value> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..8)
            .map(|_| scope.spawn(|| server.get("/uwsgi").json()))
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    for info in &answers {
        assert_eq!(info["numproc"], 2);
        assert_eq!(info["masterpid"], master, "the master forked this worker");
        assert_eq!(info["workers"], 2, "uwsgi.workers() lists every process");
        let id = info["worker_id"].as_u64().unwrap();
        assert!((1..=2).contains(&id), "{id}");
    }
    // A value cached by whichever worker serves one request is read by the others.
    assert_eq!(
        server.get("/cache_set?key=shared&value=across").text(),
        "set"
    );
    for _ in 0..6 {
        assert_eq!(server.get("/cache_get?key=shared").text(), "across");
    }
}

#[test]
fn snmp_slots_set_by_python_are_answered_by_the_agent() {
    use uwsgi_protocol::snmp::{Oid, SnmpValue, build_get_request, parse_response};
    let agent = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let agent_addr = agent.local_addr().unwrap().to_string();
    drop(agent);
    let server = main_app(&[
        "--master",
        "--processes",
        "2",
        &format!("--snmp={agent_addr}"),
        "--snmp-community",
        "public",
    ]);
    assert_eq!(server.get("/snmp_gauge?slot=7&value=42").text(), "True");
    assert_eq!(server.get("/snmp_gauge?slot=101&value=1").text(), "None");
    let client = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    client
        .set_read_timeout(Some(std::time::Duration::from_secs(5)))
        .unwrap();
    let request = build_get_request(1, b"public", 9, Oid::Custom(7)).unwrap();
    client.send_to(&request, &agent_addr).unwrap();
    let mut buffer = [0u8; 512];
    let (len, _) = client.recv_from(&mut buffer).unwrap();
    let response = parse_response(&buffer[..len]).unwrap();
    assert_eq!(response.value, SnmpValue::Gauge(42));

    // The community set from Python is the one the agent answers to from then on.
    assert_eq!(server.get("/snmp_community?name=secret").text(), "True");
    let request = build_get_request(1, b"secret", 10, Oid::Custom(7)).unwrap();
    client.send_to(&request, &agent_addr).unwrap();
    let (len, _) = client.recv_from(&mut buffer).unwrap();
    let response = parse_response(&buffer[..len]).unwrap();
    assert_eq!(response.community, b"secret");
    assert_eq!(response.value, SnmpValue::Gauge(42));
}

#[test]
fn snmp_functions_store_nothing_and_answer_none_without_the_agent() {
    let server = main_app(&[]);
    assert_eq!(server.get("/snmp_community?name=secret").text(), "None");
    assert_eq!(server.get("/snmp_gauge?slot=7&value=42").text(), "None");
}

#[test]
fn async_functions_answer_as_uwsgi_without_async_mode_and_wait_with_it() {
    let file = app("async_calls.py");
    let server = PyServer::start(&["--wsgi-file", &file]);
    assert_eq!(
        server.get("/").text(),
        "sleep=b'' waited=0\nwait=OSError: unable to fd FD to the event queue\nsuspend=True\ncores=1"
    );
    assert!(
        server.log().contains("ASYNC call without async mode !!!"),
        "{}",
        server.log()
    );

    let server = PyServer::start(&["--wsgi-file", &file, "--async", "4"]);
    assert_eq!(
        server.get("/").text(),
        "sleep=b'' waited=1\nwait=b''\nsuspend=True\ncores=4"
    );
    assert!(!server.log().contains("ASYNC call without async mode"));
}

// ---- The embedded module's process-level API (tests/apps/embedded_api.py) ----

fn api_app(extra: &[&str]) -> PyServer {
    let file = app("embedded_api.py");
    let mut args = vec!["--wsgi-file", file.as_str()];
    args.extend_from_slice(extra);
    PyServer::start(&args)
}

/// GETs `uri` until `done` accepts the JSON answer (up to `limit`); the last answer.
fn poll_json(
    server: &PyServer,
    uri: &str,
    limit: Duration,
    done: impl Fn(&serde_json::Value) -> bool,
) -> serde_json::Value {
    let started = Instant::now();
    loop {
        let answer = server.get(uri).json();
        if done(&answer) || started.elapsed() > limit {
            return answer;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn embedded_sharedarea_memoryview_writes_reach_the_other_worker() {
    let server = api_app(&["--master", "--processes", "2", "--sharedarea", "1"]);
    let wrote = server.get("/mv_write?hello").json();
    assert_eq!(wrote["len"], 4096, "the view covers the whole area");
    assert_eq!(wrote["readonly"], false);
    let writer = wrote["worker"].clone();
    // Requests land on either worker: ask until the other one answers.
    let read = poll_json(&server, "/mv_read", Duration::from_secs(20), |answer| {
        answer["worker"] != writer
    });
    assert_ne!(read["worker"], writer, "the other worker never answered");
    assert_eq!(
        read["data"], "hello",
        "sharedarea_read in the other process"
    );
    assert_eq!(read["view"], "hello", "a memoryview in the other process");
}

#[test]
fn embedded_listen_queue_counts_connections_waiting_on_the_socket() {
    // One worker thread: while it runs the app nobody accepts, so the app's own
    // connections wait in the socket's backlog.
    let server = api_app(&[]);
    let port = server.addr.rsplit_once(':').unwrap().1.to_owned();
    let answer = server.get(&format!("/listen_queue?{port}")).json();
    assert_eq!(answer["queued"], 3, "{answer}");
    assert_eq!(answer["default"], 3, "socket 0 is the default");
    assert_eq!(answer["missing"], "unable to find socket 7");
}

#[test]
fn embedded_user_harakiri_kills_the_worker_and_the_master_respawns_it() {
    let server = api_app(&["--master", "--processes", "1"]);
    let first = server.get("/pid").json()["pid"].clone();
    // Disarmed before it expires: the request finishes.
    assert_eq!(server.get("/harakiri_disarmed").json()["survived"], true);
    // Armed and left armed at the end of the request: the end disarms it.
    server.get("/harakiri_armed_and_left");
    std::thread::sleep(Duration::from_millis(2500));
    assert_eq!(
        server.get("/pid").json()["pid"],
        first,
        "killed after its request"
    );
    // Armed for 1 s, then stuck: the master kills the worker (the client sees the
    // connection close without a response) well before the 15 s sleep ends.
    let started = Instant::now();
    let raw = server.raw(Modifier1::Wsgi, "GET", "/harakiri", &[], b"");
    assert!(raw.is_empty(), "{}", String::from_utf8_lossy(&raw));
    assert!(started.elapsed() < Duration::from_secs(10));
    let respawned = poll_json(&server, "/pid", Duration::from_secs(10), |answer| {
        answer["pid"] != first
    });
    assert_ne!(respawned["pid"], first, "the worker was not replaced");
    assert!(
        server
            .log()
            .contains("HARAKIRI (user) triggered by worker 1"),
        "{}",
        server.log()
    );
}

#[test]
fn embedded_user_harakiri_without_master_logs_uwsgis_refusal() {
    let server = api_app(&[]);
    assert_eq!(server.get("/harakiri_disarmed").json()["survived"], true);
    assert!(
        server
            .log()
            .contains("unable to set user harakiri without the master process"),
        "{}",
        server.log()
    );
}

#[test]
fn embedded_spooler_pids_and_frequency_with_forked_spoolers() {
    let dir = tempfile::tempdir().unwrap();
    let spool = dir.path().join("spool");
    std::fs::create_dir(&spool).unwrap();
    let server = api_app(&["--master", "--spooler", spool.to_str().unwrap()]);
    let answer = poll_json(&server, "/spooler", Duration::from_secs(10), |answer| {
        answer["pid"] != 0
    });
    let pid = answer["pid"].as_u64().unwrap();
    assert_ne!(pid, 0, "{answer}");
    assert_ne!(pid, answer["me"].as_u64().unwrap(), "a process of its own");
    assert_eq!(answer["pids"], serde_json::json!([pid]));
    assert_eq!(answer["frequency"], true);
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    let ppid = stat
        .rsplit_once(')')
        .unwrap()
        .1
        .split_whitespace()
        .nth(1)
        .unwrap();
    assert_eq!(ppid, server.child.id().to_string(), "forked by the master");
    retried_within_seconds(&server);
}

#[test]
fn embedded_spooler_threads_report_the_server_pid_and_take_the_frequency() {
    let dir = tempfile::tempdir().unwrap();
    let spool = dir.path().join("spool");
    std::fs::create_dir(&spool).unwrap();
    let server = api_app(&["--spooler", spool.to_str().unwrap()]);
    let answer = server.get("/spooler").json();
    let me = u64::from(server.child.id());
    assert_eq!(
        answer["pid"], me,
        "spooler threads run in the server process"
    );
    assert_eq!(answer["pids"], serde_json::json!([me]));
    retried_within_seconds(&server);
}

/// Spools the app's job that asks for one retry and waits for its second attempt: with
/// the default 30 s frequency it would come half a minute later; after the app's
/// `set_spooler_frequency(1)`, within seconds.
fn retried_within_seconds(server: &PyServer) {
    server.get("/spool");
    let attempts = server.state("attempts");
    let started = Instant::now();
    while std::fs::read_to_string(&attempts)
        .unwrap_or_default()
        .lines()
        .count()
        < 2
    {
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "the spooler did not retry at the new frequency"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn embedded_accepting_takes_an_optional_flag() {
    let server = api_app(&["--master"]);
    assert_eq!(
        server.get("/accepting").json(),
        serde_json::json!([null, null, null])
    );
}

#[test]
fn embedded_env_and_start_response_belong_to_the_running_request() {
    let server = api_app(&[]);
    let response = server.get("/env");
    assert_eq!(response.status, 202, "sent through uwsgi.start_response");
    assert_eq!(response.header("X-Via"), Some("uwsgi.start_response"));
    let answer = response.json();
    assert_eq!(answer["env_is_environ"], true);
    assert_eq!(
        answer["env_at_import"], false,
        "no uwsgi.env outside a request"
    );
    // A second request gets its own.
    assert_eq!(server.get("/env").json()["env_is_environ"], true);
}

#[test]
fn embedded_magic_table_and_pidfile_come_from_the_config_file() {
    let dir = tempfile::tempdir().unwrap();
    let dir_path = std::path::absolute(dir.path()).unwrap();
    let ini = dir_path.join("site.ini");
    std::fs::write(
        &ini,
        format!(
            "[uwsgi]\nwsgi-file = {}\npidfile = %d%n.pid\n",
            app("embedded_api.py")
        ),
    )
    .unwrap();
    let server = PyServer::start(&["--ini", ini.to_str().unwrap()]);
    let answer = server.get("/globals").json();
    let magic = &answer["magic"];
    assert_eq!(answer["key_types"], serde_json::json!(["bytes"]));
    assert_eq!(
        magic["d"],
        format!("{}/", dir_path.display()),
        "the ini's directory"
    );
    assert_eq!(magic["p"], ini.display().to_string());
    assert_eq!(magic["s"], "site.ini");
    assert_eq!(magic["n"], "site");
    assert_eq!(magic["e"], "ini");
    assert_eq!(
        magic["c"],
        dir_path.file_name().unwrap().to_string_lossy().as_ref()
    );
    assert_eq!(
        magic["0"],
        dir_path
            .components()
            .nth(1)
            .unwrap()
            .as_os_str()
            .to_string_lossy()
            .as_ref()
    );
    assert_eq!(magic["V"], env!("CARGO_PKG_VERSION"));
    assert!(magic["v"].is_string() && magic["h"].is_string() && magic["t"].is_string());
    assert_eq!(
        answer["pidfile"],
        dir_path.join("site.pid").display().to_string()
    );

    // Without a config file there is no `d` (uWSGI's `v` is the start directory) and
    // no `uwsgi.pidfile` without --pidfile.
    let plain = api_app(&[]).get("/globals").json();
    assert!(plain["magic"].get("d").is_none(), "{plain}");
    assert!(plain["magic"]["v"].is_string());
    assert_eq!(plain["pidfile"], serde_json::Value::Null);
}

#[test]
fn embedded_names_of_absent_subsystems_answer_as_uwsgi() {
    let server = api_app(&[]);
    let answer = server.get("/absent_subsystems").json();
    // uWSGI 2.0 without --enable-metrics: metric_get reads 0, updates return None.
    assert_eq!(answer["metric_get"], 0);
    assert_eq!(
        answer["updates"],
        serde_json::json!(vec![serde_json::Value::Null; 7])
    );
    assert_eq!(
        answer["updates_default"],
        serde_json::json!(vec![serde_json::Value::Null; 7])
    );
    // No legion: not the lord, no scrolls.
    assert_eq!(answer["i_am_the_lord"], false);
    assert_eq!(answer["lord_scroll"], serde_json::Value::Null);
    assert_eq!(answer["scrolls"], serde_json::Value::Null);
    // No async wake-up descriptor in a request outside an async loop.
    assert_eq!(answer["ready_fd"], -1);
    assert_eq!(answer["async_send_message"], serde_json::Value::Null);
}

/// Waits up to 15 s for `name` in the state dir to list `count` distinct pids.
fn wait_for_pids(server: &PyServer, name: &str, count: usize) -> Vec<String> {
    let started = Instant::now();
    loop {
        let text = std::fs::read_to_string(server.state(name)).unwrap_or_default();
        let pids: Vec<String> = text.lines().map(str::to_owned).collect();
        if pids.len() >= count || started.elapsed() > Duration::from_secs(15) {
            return pids;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn embedded_user_harakiri_kills_stuck_mules_and_spoolers() {
    let dir = tempfile::tempdir().unwrap();
    let spool = dir.path().join("spool");
    std::fs::create_dir(&spool).unwrap();
    let mule = app("mule_harakiri.py");
    let server = api_app(&[
        "--master",
        "--mule",
        mule.as_str(),
        "--spooler",
        spool.to_str().unwrap(),
    ]);
    // The mule arms 1 s and hangs: killed and respawned, it runs again.
    let pids = wait_for_pids(&server, "mule_pids", 2);
    assert!(
        pids.len() >= 2 && pids[0] != pids[1],
        "{pids:?}\n{}",
        server.log()
    );
    assert!(
        server.log().contains("*** HARAKIRI ON MULE 1 (pid: "),
        "{}",
        server.log()
    );
    // The spooler runs a job that does the same.
    server.get("/spool_harakiri");
    let pids = wait_for_pids(&server, "spooler_pids", 2);
    assert!(
        pids.len() >= 2 && pids[0] != pids[1],
        "{pids:?}\n{}",
        server.log()
    );
    assert!(
        server.log().contains("*** HARAKIRI ON THE SPOOLER (pid: "),
        "{}",
        server.log()
    );
}
