//! The request log through the real binary: `--logformat` lines over `--socket` and
//! `--http-socket` (request vars, response sizes, the application's log variables and
//! added vars), the filters under `--disable-logging`, and hostile values (CR/LF, 60 KB
//! vars, a 100 KB log variable) that must neither forge lines nor grow one unbounded.

#![cfg(feature = "python")]
#![allow(clippy::unwrap_used)]

mod common;
#[path = "common/process.rs"]
#[allow(dead_code)]
mod process;
#[path = "../../tests/src/uwsgi_peer.rs"]
#[allow(dead_code)]
mod uwsgi_peer;

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use common::binary::Instance;
use common::{exchange, framed};
use uwsgi_protocol::{Modifier1, VarsBuilder};

fn app() -> String {
    format!("{}/tests/apps/request_log.py", env!("CARGO_MANIFEST_DIR"))
}

fn start(extra: &[&str]) -> Instance {
    let app = app();
    let mut args = vec!["--socket", "127.0.0.1:0", "--wsgi-file", &app];
    args.extend_from_slice(extra);
    Instance::start(&args)
}

/// The vars block of a request for `uri` with the usual CGI vars plus `extra`.
fn block(uri: &str, extra: &[(&str, &[u8])]) -> Vec<u8> {
    let (path, query) = uri.split_once('?').unwrap_or((uri, ""));
    let mut vars = VarsBuilder::new();
    let base: [(&str, &[u8]); 7] = [
        ("REQUEST_METHOD", b"GET"),
        ("REQUEST_URI", uri.as_bytes()),
        ("PATH_INFO", path.as_bytes()),
        ("QUERY_STRING", query.as_bytes()),
        ("SERVER_PROTOCOL", b"HTTP/1.1"),
        ("SERVER_NAME", b"example.test"),
        ("SERVER_PORT", b"80"),
    ];
    for (k, v) in base.iter().chain(extra) {
        vars.push(k, v).unwrap();
    }
    vars.as_vars().as_bytes().to_vec()
}

/// The lines of `server`'s log that start with `prefix`, once there are `n`.
fn lines(server: &Instance, prefix: &str, n: usize) -> Vec<String> {
    server.wait_for(
        &format!("{n} lines starting with {prefix:?}"),
        Duration::from_secs(10),
        |lines| lines.iter().filter(|l| l.starts_with(prefix)).count() >= n,
    );
    let found: Vec<String> = (server.log().into_iter())
        .filter(|l| l.starts_with(prefix))
        .collect();
    assert_eq!(found.len(), n, "{found:#?}");
    found
}

/// The response's head size and header count.
fn head_of(response: &[u8]) -> (usize, usize) {
    let end = response
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("a response head")
        + 4;
    let headers = response[..end].windows(2).filter(|w| *w == b"\r\n").count() - 2;
    (end, headers)
}

const FORMAT: &str = "RL|%(addr)|%(user)|%(host)|%(method) %(uri) %(proto)|%(status)|%(rsize)|%(hsize)|%(size)|%(headers)|%(cl)|%(referer)|%(uagent)|%(var.HTTP_X_FORWARDED_FOR)|%(var.X_ADDED)|%(who)|%(empty)|%(unset)|%(modifier1)|%(modifier2)|%(pktsize)|%(vars)|%(switches)|%(core)|%(wid)|%(ioerr)|%(pid)";

#[test]
fn logformat_over_the_uwsgi_protocol() {
    let server = start(&["--logformat", FORMAT]);
    let uri = HELLO;
    let vars = hello_block();
    let response = exchange(&server.addr, &framed(Modifier1::Wsgi, 7, &vars));
    assert!(response.starts_with(b"HTTP/1.1 201 Created\r\n"));
    let (hsize, headers) = head_of(&response);
    // X_ADDED=yes, appended by uwsgi.add_var, counts in the size and the vars.
    let pktsize = vars.len() + 4 + "X_ADDED".len() + 3;
    let expected = format!(
        "RL|10.1.2.3|bob|example.test|GET {uri} HTTP/1.1|201|5|{hsize}|{}|{headers}|0|http://ref.test/|probe/1.0|203.0.113.9|yes|alice|-|-|0|7|{pktsize}|{}|1|0|1|0|{}",
        hsize + 5,
        2 * (14 + 1),
        server.pid()
    );
    assert_eq!(lines(&server, "RL|", 1), [expected]);
}

const HELLO: &str = "/hello?status=201+Created&lv=who%3Dalice&lv=empty%3D&addvar=yes&size=5";

fn hello_block() -> Vec<u8> {
    block(
        HELLO,
        &[
            ("REMOTE_ADDR", b"10.1.2.3"),
            ("REMOTE_USER", b"bob"),
            ("HTTP_HOST", b"example.test"),
            ("HTTP_USER_AGENT", b"probe/1.0"),
            ("HTTP_REFERER", b"http://ref.test/"),
            ("HTTP_X_FORWARDED_FOR", b"203.0.113.9"),
            ("CONTENT_LENGTH", b"0"),
        ],
    )
}

/// The line starting with `prefix` that `server` (real uWSGI or ours, on a unix socket
/// in `dir`, with `args`) logs for the hello request.
fn logged_by(server: &Path, dir: &Path, name: &str, args: &[&str], prefix: &str) -> String {
    let socket = dir.join(format!("{name}.sock"));
    let app = app();
    let mut command = std::process::Command::new(server);
    command
        .args(["--socket", socket.to_str().unwrap(), "--wsgi-file", &app])
        .args(args);
    let mut process = process::Process::spawn(command, dir.join(format!("{name}.log")));
    process.wait_for(&socket);
    let mut stream = UnixStream::connect(&socket).unwrap();
    stream
        .write_all(&framed(Modifier1::Wsgi, 7, &hello_block()))
        .unwrap();
    stream.shutdown(std::net::Shutdown::Write).unwrap();
    let mut response = Vec::new();
    stream.read_to_end(&mut response).unwrap();
    assert!(response.starts_with(b"HTTP/1.1 201 Created\r\n"));
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if let Some(line) = process.log().lines().find(|l| l.starts_with(prefix)) {
            return line.to_owned();
        }
        assert!(
            Instant::now() < deadline,
            "no {prefix:?} line:\n{}",
            process.log()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// The same request to real uWSGI 2.0 and to uwsgi-server: the same `--logformat` line
/// for every deterministic variable, and the same default line but for the pid, the
/// date and the time taken.
#[test]
fn lines_match_real_uwsgi() {
    let Some(uwsgi) = uwsgi_peer::uwsgi_bin() else {
        return;
    };
    let ours = Path::new(common::binary::BIN);
    let dir = process::temp_dir("uwsgi-rs-request-log");
    let theirs = logged_by(
        &uwsgi,
        &dir,
        "uwsgi-format",
        &["--logformat", COMPARED],
        "RL|",
    );
    assert_eq!(
        logged_by(ours, &dir, "ours-format", &["--logformat", COMPARED], "RL|"),
        theirs
    );

    let mask = |line: String| -> String {
        let (pid, rest) = line.split_once('|').unwrap();
        assert!(pid.starts_with("[pid: "), "{line}");
        let (head, rest) = rest.split_once(" [").unwrap();
        let (date, rest) = rest.split_once("] ").unwrap();
        assert_eq!(date.len(), 24, "{line}");
        let (before, after) = rest.split_once(" bytes in ").unwrap();
        let (_, after) = after.split_once(' ').unwrap();
        format!("{head} [DATE] {before} bytes in N {after}")
    };
    let theirs = mask(logged_by(&uwsgi, &dir, "uwsgi-default", &[], "[pid: "));
    assert_eq!(
        mask(logged_by(ours, &dir, "ours-default", &[], "[pid: ")),
        theirs
    );
    let _ = std::fs::remove_dir_all(&dir);
}

/// [`FORMAT`] without `%(pid)`.
const COMPARED: &str = "RL|%(addr)|%(user)|%(host)|%(method) %(uri) %(proto)|%(status)|%(rsize)|%(hsize)|%(size)|%(headers)|%(cl)|%(referer)|%(uagent)|%(var.HTTP_X_FORWARDED_FOR)|%(var.X_ADDED)|%(who)|%(empty)|%(unset)|%(modifier1)|%(modifier2)|%(pktsize)|%(vars)|%(switches)|%(core)|%(wid)|%(ioerr)";

#[test]
fn logformat_over_http_with_times_and_x_forwarded_for() {
    let app = app();
    let format = "H|%(addr)|%(method) %(uri) %(proto)|%(host)|%(uagent)|%(referer)|%(status)|%(rsize)|%(who)|%(modifier1)|T|%(msecs)|%(micros)|%(secs)|%(time)|%(tmsecs)|%(tmicros)|%(epoch)|%(ctime)|%(ltime)|%(rss)|%(rssM)|%(vsz)|%(vszM)";
    let server = Instance::start(&[
        "--http-socket",
        "127.0.0.1:0",
        "--wsgi-file",
        &app,
        "--logformat",
        format,
        "--log-x-forwarded-for",
    ]);
    let before = SystemTime::now().duration_since(UNIX_EPOCH).unwrap();
    let request = "GET /page?lv=who%3Dcarol&size=3&sleep=20 HTTP/1.1\r\nHost: web.test\r\nUser-Agent: curl/8\r\nReferer: http://from.test/\r\nX-Forwarded-For: 198.51.100.7\r\nConnection: close\r\n\r\n";
    let response = exchange(&server.addr, request.as_bytes());
    assert!(response.starts_with(b"HTTP/1.1 200 OK\r\n"), "{response:?}");
    let after = SystemTime::now().duration_since(UNIX_EPOCH).unwrap();
    let line = lines(&server, "H|", 1).remove(0);
    let (fixed, times) = line.split_once("|T|").unwrap();
    assert_eq!(
        fixed,
        "H|198.51.100.7|GET /page?lv=who%3Dcarol&size=3&sleep=20 HTTP/1.1|web.test|curl/8|http://from.test/|200|3|carol|0"
    );
    let t: Vec<&str> = times.split('|').collect();
    assert_eq!(t.len(), 13, "{t:?}");
    let n = |i: usize| {
        t[i].parse::<u64>()
            .unwrap_or_else(|_| panic!("{}: {t:?}", t[i]))
    };
    let (msecs, micros) = (n(0), n(1));
    assert!(micros >= 20_000 && msecs == micros / 1000, "{t:?}");
    let secs: f64 = t[2].parse().unwrap();
    assert!((secs * 1e6 - micros as f64).abs() < 2.0, "{t:?}");
    assert!(before.as_secs() <= n(3) && n(3) <= after.as_secs(), "{t:?}");
    assert_eq!(n(4) / 1000, n(3));
    assert_eq!(n(5) / 1000, n(4));
    assert!(n(6) >= n(3) && n(6) <= after.as_secs() + 1);
    // `Thu Jan  1 00:00:00 1970` and `01/Jan/1970:00:00:00 +0000`.
    assert_eq!(t[7].len(), 24, "{t:?}");
    assert_eq!(&t[7][20..], &t[8][7..11], "{t:?}");
    assert_eq!(t[8].len(), 26, "{t:?}");
    assert_eq!(&t[7][4..7], &t[8][3..6], "{t:?}");
    assert!(n(9) > 0 && n(10) == n(9) / 1024 / 1024, "{t:?}");
    assert!(n(11) >= n(9) && n(12) == n(11) / 1024 / 1024, "{t:?}");
}

#[test]
fn filters_pick_requests_under_disable_logging() {
    let server = start(&[
        "--disable-logging",
        "--log-4xx",
        "--log-slow",
        "300",
        "--log-big",
        "5000",
        "--log-zero",
        "--logformat",
        "F %(uri) %(status)",
    ]);
    for uri in [
        "/a?size=10",
        "/b?status=404+Not+Found",
        "/c?status=500+Oops",
        "/d?size=0",
        "/e?size=6000",
        "/e?size=4999",
        "/f?sleep=350",
        "/g?status=302+Found",
        "/h?logthis=1",
        "/z?status=404+Not+Found",
    ] {
        exchange(&server.addr, &framed(Modifier1::Wsgi, 0, &block(uri, &[])));
    }
    assert_eq!(
        lines(&server, "F ", 6),
        [
            "F /b?status=404+Not+Found 404",
            "F /d?size=0 200",
            "F /e?size=6000 200",
            "F /f?sleep=350 200",
            "F /h?logthis=1 200",
            "F /z?status=404+Not+Found 404",
        ]
    );

    // The default line, with --log-5xx and --log-micros.
    let server = start(&["--disable-logging", "--log-5xx", "--log-micros"]);
    for uri in ["/a", "/c?status=500+Oops", "/b?status=404+Not+Found"] {
        exchange(&server.addr, &framed(Modifier1::Wsgi, 0, &block(uri, &[])));
    }
    let logged = lines(&server, "[pid: ", 1).remove(0);
    assert!(
        logged.contains("] GET /c?status=500+Oops => generated 6 bytes in ")
            && logged.contains(" micros (HTTP/1.1 500) 2 headers in "),
        "{logged}"
    );
}

#[test]
fn hostile_values_neither_forge_lines_nor_grow_one() {
    let server = start(&[
        "--buffer-size",
        "65535",
        "--logformat",
        "E %(uri) %(evil) %(uagent) %(big)",
    ]);
    let agent = vec![b'u'; 60_000];
    let vars = block(
        "/h?biglv=1",
        &[
            ("REQUEST_URI", b"/h\r\n[pid: 1|app: 0|req: 1/1] forged"),
            ("HTTP_USER_AGENT", &agent),
        ],
    );
    let response = exchange(&server.addr, &framed(Modifier1::Wsgi, 0, &vars));
    assert!(response.starts_with(b"HTTP/1.1 200 OK"));
    let line = lines(&server, "E ", 1).remove(0);
    assert!(
        line.starts_with(
            "E /h\\x0d\\x0a[pid: 1|app: 0|req: 1/1] forged a\\x0d\\x0a[pid: 1|app: 0|req: 1/1] forged uuu"
        ),
        "{}",
        &line[..200]
    );
    // 8192 bytes with the newline the reader took off; the 100 KB logvar is cut.
    assert_eq!(line.len(), 8191);
    assert!(line.ends_with("uuu"));
    assert_eq!(server.count("forged"), 1);
    assert!(server.log().iter().all(|l| !l.starts_with("[pid: 1|")));
}
