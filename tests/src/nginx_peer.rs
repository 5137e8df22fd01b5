//! A real nginx (Debian's `nginx-light`) in front of uwsgi servers for interop tests:
//! one `server` block per upstream, each on its own free port of 127.0.0.1, passing
//! every request with `uwsgi_pass` and Debian's stock `uwsgi_params`. Started per test,
//! stopped when the guard drops (also when the test panics). Plus a minimal HTTP/1.1
//! client (one request per connection, chunked bodies decoded) to talk to it.
//!
//! This file only uses std, so test crates can include it with `#[path]`.
//!
//! * `NGINX_BIN=/path/to/nginx` picks the binary (default `/usr/sbin/nginx`).
//! * If nginx is missing the tests fail loudly, unless `UWSGI_SKIP_PEERS=1`
//!   (scripts/setup-peers.sh installs it).

use std::fs;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

/// Where Debian keeps the stock parameters file.
const UWSGI_PARAMS: &str = "/etc/nginx/uwsgi_params";

/// The nginx binary, or `None` when it is missing and `UWSGI_SKIP_PEERS=1`.
pub fn nginx_bin() -> Option<PathBuf> {
    let bin = std::env::var_os("NGINX_BIN").map_or_else(|| "/usr/sbin/nginx".into(), PathBuf::from);
    let works = Command::new(&bin)
        .arg("-v")
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if works && Path::new(UWSGI_PARAMS).exists() {
        return Some(bin);
    }
    let skip = std::env::var("UWSGI_SKIP_PEERS").is_ok_and(|v| v == "1");
    let _ = std::io::stderr().write_all(
        format!(
            "\n!! nginx is not available at {} (or {UWSGI_PARAMS} is missing): \
             apt-get install nginx-light, or run scripts/setup-peers.sh. {}\n",
            bin.display(),
            if skip {
                "UWSGI_SKIP_PEERS=1: skipping this test."
            } else {
                "Set UWSGI_SKIP_PEERS=1 to skip."
            }
        )
        .as_bytes(),
    );
    assert!(skip, "nginx unavailable");
    None
}

/// A running nginx; one port per upstream, in the order given.
#[derive(Debug)]
pub struct Nginx {
    child: Child,
    dir: PathBuf,
    /// The port in front of each upstream.
    pub ports: Vec<u16>,
}

impl Nginx {
    /// Starts nginx with one server block per upstream (`unix:/path` or `host:port`, as
    /// `uwsgi_pass` takes it), and waits until every port accepts connections.
    pub fn start(bin: &Path, upstreams: &[String]) -> Nginx {
        static COUNT: AtomicUsize = AtomicUsize::new(0);
        let dir = std::env::temp_dir().join(format!(
            "nginx-peer-{}-{}",
            std::process::id(),
            COUNT.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).expect("nginx temp dir");
        let ports: Vec<u16> = upstreams.iter().map(|_| free_port()).collect();
        let d = dir.display();
        let mut servers = String::new();
        for (port, upstream) in ports.iter().zip(upstreams) {
            servers.push_str(&format!(
                "    server {{\n        listen 127.0.0.1:{port};\n        location / {{\n            \
                 include {UWSGI_PARAMS};\n            uwsgi_pass {upstream};\n        }}\n    }}\n"
            ));
        }
        // `user root`: the tests run as root, and nginx's default user could not reach
        // the unix sockets and temp directories under the test's directory.
        let config = format!(
            "user root;\nworker_processes 1;\ndaemon off;\npid {d}/nginx.pid;\n\
             error_log {d}/error.log warn;\nevents {{ worker_connections 512; }}\n\
             http {{\n    access_log off;\n    client_max_body_size 64m;\n    \
             client_body_temp_path {d}/body;\n    proxy_temp_path {d}/proxy;\n    \
             fastcgi_temp_path {d}/fastcgi;\n    uwsgi_temp_path {d}/uwsgi;\n    \
             scgi_temp_path {d}/scgi;\n{servers}}}\n"
        );
        let conf = dir.join("nginx.conf");
        fs::write(&conf, config).expect("nginx.conf");
        let child = Command::new(bin)
            .process_group(0)
            .arg("-p")
            .arg(&dir)
            .arg("-c")
            .arg(&conf)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("starting nginx");
        let nginx = Nginx { child, dir, ports };
        let deadline = Instant::now() + Duration::from_secs(10);
        for port in &nginx.ports {
            while TcpStream::connect(("127.0.0.1", *port)).is_err() {
                assert!(
                    Instant::now() < deadline,
                    "nginx did not listen on {port}: {}",
                    nginx.error_log()
                );
                std::thread::sleep(Duration::from_millis(20));
            }
        }
        nginx
    }

    /// nginx's error log so far.
    pub fn error_log(&self) -> String {
        fs::read_to_string(self.dir.join("error.log")).unwrap_or_default()
    }
}

impl Drop for Nginx {
    fn drop(&mut self) {
        // SIGQUIT would wait for connections; the test is over: stop the master and its
        // worker now (they share the process group the master leads).
        let _ = Command::new("kill")
            .args(["-s", "KILL", "--", &format!("-{}", self.child.id())])
            .status();
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = fs::remove_dir_all(&self.dir);
    }
}

/// A free TCP port on 127.0.0.1 (bound, read and released).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port()
}

/// An HTTP response as the client saw it, body de-chunked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpResponse {
    /// Status code.
    pub status: u16,
    /// Header names lower-cased, in order.
    pub headers: Vec<(String, String)>,
    /// The body.
    pub body: Vec<u8>,
}

impl HttpResponse {
    /// The first header of that (lower-case) name.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    /// The body as text (lossy).
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// Sends one HTTP/1.1 request (`Connection: close`) to 127.0.0.1:`port` and reads the
/// whole response.
pub fn http(
    port: u16,
    method: &str,
    target: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> std::io::Result<HttpResponse> {
    let mut stream = TcpStream::connect(("127.0.0.1", port))?;
    stream.set_read_timeout(Some(Duration::from_secs(30)))?;
    let mut head =
        format!("{method} {target} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n");
    for (name, value) in headers {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    if !body.is_empty() || method == "POST" || method == "PUT" {
        head.push_str(&format!("Content-Length: {}\r\n", body.len()));
    }
    head.push_str("\r\n");
    stream.write_all(head.as_bytes())?;
    stream.write_all(body)?;
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw)?;
    parse_response(&raw)
}

fn invalid(why: &str) -> std::io::Error {
    std::io::Error::new(std::io::ErrorKind::InvalidData, why.to_owned())
}

/// Parses a complete HTTP/1.x response read until the connection closed.
pub fn parse_response(raw: &[u8]) -> std::io::Result<HttpResponse> {
    let end = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .ok_or_else(|| invalid("no end of response head"))?;
    let head = std::str::from_utf8(&raw[..end]).map_err(|_| invalid("head is not UTF-8"))?;
    let mut lines = head.split("\r\n");
    let status_line = lines.next().unwrap_or_default();
    let status = status_line
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| invalid("bad status line"))?;
    let headers: Vec<(String, String)> = lines
        .filter_map(|line| line.split_once(':'))
        .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_owned()))
        .collect();
    let rest = &raw[end + 4..];
    let chunked = headers
        .iter()
        .any(|(n, v)| n == "transfer-encoding" && v.eq_ignore_ascii_case("chunked"));
    let body = if chunked {
        dechunk(rest)?
    } else {
        rest.to_vec()
    };
    Ok(HttpResponse {
        status,
        headers,
        body,
    })
}

fn dechunk(mut rest: &[u8]) -> std::io::Result<Vec<u8>> {
    let mut body = Vec::new();
    loop {
        let line_end = rest
            .windows(2)
            .position(|w| w == b"\r\n")
            .ok_or_else(|| invalid("chunk size line"))?;
        let size_text =
            std::str::from_utf8(&rest[..line_end]).map_err(|_| invalid("chunk size"))?;
        let size_text = size_text.split(';').next().unwrap_or_default().trim();
        let size = usize::from_str_radix(size_text, 16).map_err(|_| invalid("chunk size"))?;
        rest = &rest[line_end + 2..];
        if size == 0 {
            return Ok(body);
        }
        if rest.len() < size + 2 {
            return Err(invalid("truncated chunk"));
        }
        body.extend_from_slice(&rest[..size]);
        rest = &rest[size + 2..];
    }
}
