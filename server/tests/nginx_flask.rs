//! nginx (Debian's, stock `uwsgi_params`) in front of a real Flask application served by
//! uwsgi-server — over TCP and over a unix socket — and by real uWSGI 2.0, with the same
//! requests sent to all three and the answers compared: a page, the environ, a form, a
//! 10 MB upload, a streamed response, a 404, an application exception (500, traceback
//! in the log, the worker still serving) and the `uwsgi` module's cache.
//!
//! Peers come from scripts/setup-peers.sh (nginx-light; Flask in target/peers/apps-venv
//! and, with pyuwsgi, in target/peers/uwsgi-venv). `UWSGI_SKIP_PEERS=1` skips.

#![allow(clippy::unwrap_used)]

#[path = "../../tests/src/nginx_peer.rs"]
mod nginx_peer;
#[path = "common/process.rs"]
mod process;
#[path = "../../tests/src/uwsgi_peer.rs"]
#[allow(dead_code)]
mod uwsgi_peer;

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use nginx_peer::{HttpResponse, Nginx, free_port, http};
use process::{start_ours, start_uwsgi, temp_dir};

const BIN: &str = env!("CARGO_BIN_EXE_uwsgi-server");

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn flask_app() -> PathBuf {
    root().join("tests/peers/flask_app.py")
}

/// 10 MB that are not all the same byte.
fn upload_body() -> Vec<u8> {
    (0..10 * 1024 * 1024u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13).to_le_bytes()[0])
        .collect()
}

fn sha256_hex(data: &[u8]) -> String {
    let dir = temp_dir("sha-input");
    let file = dir.join("data");
    fs::write(&file, data).unwrap();
    let out = Command::new("sha256sum").arg(&file).output().unwrap();
    let _ = fs::remove_dir_all(&dir);
    String::from_utf8(out.stdout)
        .unwrap()
        .split(' ')
        .next()
        .unwrap()
        .to_owned()
}

fn json(response: &HttpResponse) -> serde_json::Value {
    serde_json::from_slice(&response.body)
        .unwrap_or_else(|e| panic!("not JSON ({e}): {:?}", response.text()))
}

/// Everything one server answered, in a comparable form.
#[derive(Debug, PartialEq)]
struct Observed {
    index: (u16, String, Option<String>),
    environ: serde_json::Value,
    form: serde_json::Value,
    upload: serde_json::Value,
    stream: (u16, String),
    missing: u16,
    error: u16,
    after_error: u16,
    cache: serde_json::Value,
}

/// Sends the scenario through nginx's `port` and checks each answer; `log` reads the
/// server's log (for the traceback of the failing request).
fn scenario(port: u16, upload: &[u8], log: &dyn Fn() -> String) -> Observed {
    let index = http(port, "GET", "/", &[], b"").unwrap();
    assert_eq!(index.status, 200, "{}", index.text());
    assert_eq!(index.text(), "hello from flask\n");

    let environ = http(port, "GET", "/environ?x=1&y=two", &[("X-Test", "yes")], b"").unwrap();
    assert_eq!(environ.status, 200, "{}", environ.text());
    let environ = json(&environ);
    let vars = &environ["vars"];
    assert_eq!(vars["REQUEST_METHOD"], "GET");
    assert_eq!(vars["PATH_INFO"], "/environ");
    assert_eq!(vars["QUERY_STRING"], "x=1&y=two");
    assert_eq!(vars["SERVER_PROTOCOL"], "HTTP/1.1");
    assert_eq!(vars["SCRIPT_NAME"], "");
    assert_eq!(vars["HTTP_X_TEST"], "yes");
    assert_eq!(vars["wsgi.url_scheme"], "http");
    assert_eq!(environ["version"], serde_json::json!([1, 0]));
    assert_eq!(environ["args"], serde_json::json!({"x": "1", "y": "two"}));

    let form = http(
        port,
        "POST",
        "/form",
        &[("Content-Type", "application/x-www-form-urlencoded")],
        b"name=uwsgi+rs&lang=rust&empty=",
    )
    .unwrap();
    assert_eq!(form.status, 200, "{}", form.text());
    let form = json(&form);
    assert_eq!(
        form["fields"],
        serde_json::json!({"name": "uwsgi rs", "lang": "rust", "empty": ""})
    );

    let uploaded = http(
        port,
        "POST",
        "/upload",
        &[("Content-Type", "application/octet-stream")],
        upload,
    )
    .unwrap();
    assert_eq!(uploaded.status, 200, "{}", uploaded.text());
    let uploaded = json(&uploaded);
    assert_eq!(uploaded["size"], upload.len());

    let stream = http(port, "GET", "/stream?n=200", &[], b"").unwrap();
    assert_eq!(stream.status, 200);
    let expected: String = (0..200).map(|i| format!("chunk {i}\n")).collect();
    assert_eq!(stream.text(), expected);

    let missing = http(port, "GET", "/no/such/page", &[], b"").unwrap();
    assert_eq!(missing.status, 404);

    let error = http(port, "GET", "/boom", &[], b"").unwrap();
    assert_eq!(error.status, 500);
    let deadline = Instant::now() + Duration::from_secs(5);
    while !log().contains("RuntimeError: boom") {
        assert!(
            Instant::now() < deadline,
            "no traceback in the log:\n{}",
            log()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let after_error = http(port, "GET", "/", &[], b"").unwrap();
    assert_eq!(after_error.status, 200);

    let cache = http(port, "GET", "/cache/colour?value=blue", &[], b"").unwrap();
    assert_eq!(cache.status, 200, "{}", cache.text());
    let cache = json(&cache);
    assert_eq!(cache["stored"], "blue");

    Observed {
        index: (
            index.status,
            index.text(),
            index.header("content-type").map(str::to_owned),
        ),
        environ,
        form,
        upload: uploaded,
        stream: (stream.status, stream.text()),
        missing: missing.status,
        error: error.status,
        after_error: after_error.status,
        cache,
    }
}

#[test]
fn flask_behind_nginx_answers_as_under_uwsgi() {
    let Some(nginx_bin) = nginx_peer::nginx_bin() else {
        return;
    };
    let Some(uwsgi_bin) = uwsgi_peer::uwsgi_bin() else {
        return;
    };
    let dir = temp_dir("nginx-flask");
    let file = flask_app();
    let app = ["--wsgi-file", file.to_str().unwrap()];
    let venv = root().join("target/peers/apps-venv");
    let ours_port = free_port();
    let (ours, ours_unix) = start_ours(BIN, &dir, &app, &venv, ours_port);
    let (theirs, theirs_unix) = start_uwsgi(&uwsgi_bin, &dir, &app);
    let nginx = Nginx::start(
        &nginx_bin,
        &[
            format!("unix:{}", ours_unix.display()),
            format!("127.0.0.1:{ours_port}"),
            format!("unix:{}", theirs_unix.display()),
        ],
    );
    let upload = upload_body();
    let digest = sha256_hex(&upload);

    let ours_log = || ours.log();
    let theirs_log = || theirs.log();
    let over_unix = scenario(nginx.ports[0], &upload, &ours_log);
    let over_tcp = scenario(nginx.ports[1], &upload, &ours_log);
    let under_uwsgi = scenario(nginx.ports[2], &upload, &theirs_log);

    assert_eq!(over_unix.upload["sha256"], digest.as_str());
    assert_eq!(over_unix, over_tcp);
    assert_eq!(over_unix, under_uwsgi, "uwsgi-rs and uWSGI 2.0 differ");
    assert!(
        !nginx.error_log().contains("upstream prematurely closed"),
        "{}",
        nginx.error_log()
    );
    let _ = fs::remove_dir_all(&dir);
}
