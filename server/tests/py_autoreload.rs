//! `--py-autoreload` through the real binary: a module file rewritten while the server
//! runs reloads the whole server (the master re-executes itself and the new workers
//! serve the new code); files left alone, or modules named by
//! `--py-auto-reload-ignore`, reload nothing.
//!
//! Every test writes its application into a fresh temporary directory; the
//! [`Instance`] guard kills and reaps the master and every child when dropped.

#![cfg(feature = "python")]
#![allow(clippy::unwrap_used)]

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::time::Duration;

use common::binary::Instance;

/// The WSGI file: it answers what the module `answer` (next to it) says.
const APP: &str = "\
import answer

def application(environ, start_response):
    text = answer.TEXT.encode()
    start_response('200 OK', [('Content-Type', 'text/plain'),
                              ('Content-Length', str(len(text)))])
    return [text]
";

const RELOAD_LINE: &str = "[uwsgi-python-reloader] module/file ";

/// One HTTP/1.1 request with `Connection: close`; the response body.
fn body(addr: &str) -> String {
    let mut stream = TcpStream::connect(addr).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    stream
        .write_all(b"GET / HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
        .unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    assert!(response.starts_with("HTTP/1.1 200"), "{response}");
    response.split_once("\r\n\r\n").unwrap().1.to_owned()
}

/// The app and its `answer` module in `dir`, answering `text`.
fn write_app(dir: &Path, text: &str) {
    std::fs::write(dir.join("app.py"), APP).unwrap();
    write_answer(dir, text);
}

fn write_answer(dir: &Path, text: &str) {
    std::fs::write(dir.join("answer.py"), format!("TEXT = {text:?}\n")).unwrap();
}

fn start(dir: &Path, extra: &[&str]) -> Instance {
    let app = dir.join("app.py").display().to_string();
    let path = dir.display().to_string();
    let mut args = vec![
        "--http-socket",
        "127.0.0.1:0",
        "--wsgi-file",
        &app,
        "--pythonpath",
        &path,
    ];
    args.extend_from_slice(extra);
    // No bytecode cache: a rewrite in the same second with the same size would
    // otherwise be served from the stale .pyc by the reloaded server.
    Instance::start_with_env(&args, &[("PYTHONDONTWRITEBYTECODE", "1".as_ref())])
}

#[test]
fn a_rewritten_module_reloads_the_server_with_the_new_code() {
    let dir = tempfile::tempdir().unwrap();
    write_app(dir.path(), "first answer");
    let instance = start(
        dir.path(),
        &["--master", "--processes", "2", "--py-autoreload", "1"],
    );
    instance.wait_for_count("Python auto-reloader enabled", 1, Duration::from_secs(10));
    assert_eq!(body(&instance.addr), "first answer");
    assert_eq!(instance.count(RELOAD_LINE), 0);

    write_answer(dir.path(), "second answer");
    instance.wait_for_count(RELOAD_LINE, 1, Duration::from_secs(10));
    let answer = dir.path().join("answer.py").display().to_string();
    let line = format!("{RELOAD_LINE}{answer} has been modified");
    instance.wait_for_count("reloaded (1 reloads)", 1, Duration::from_secs(10));
    // Both workers watch; either may have seen the change first, the master reloads once.
    let seen = instance.count(&line);
    assert!((1..=2).contains(&seen), "{:#?}", instance.log());
    assert_eq!(body(&instance.addr), "second answer");
    // The reloaded server watches again, from the new file's time.
    instance.wait_for_count("Python auto-reloader enabled", 2, Duration::from_secs(10));
    std::thread::sleep(Duration::from_millis(1500));
    assert_eq!(instance.count(RELOAD_LINE), seen, "{:#?}", instance.log());
    assert_eq!(instance.count("(2 reloads)"), 0, "{:#?}", instance.log());
}

#[test]
fn unchanged_or_ignored_modules_do_not_reload_and_the_option_implies_master() {
    let dir = tempfile::tempdir().unwrap();
    write_app(dir.path(), "same answer");
    // No --master: as in uWSGI, the option turns the master on.
    let instance = start(
        dir.path(),
        &[
            "--python-auto-reload",
            "1",
            "--py-auto-reload-ignore",
            "answer",
        ],
    );
    instance.wait_for_count("spawned uWSGI worker 1", 1, Duration::from_secs(10));
    instance.wait_for_count("Python auto-reloader enabled", 1, Duration::from_secs(10));
    assert_eq!(body(&instance.addr), "same answer");
    std::thread::sleep(Duration::from_secs(3));
    // An ignored module's file changing reloads nothing either.
    write_answer(dir.path(), "an ignored change");
    std::thread::sleep(Duration::from_millis(2500));
    assert_eq!(body(&instance.addr), "same answer");
    assert_eq!(instance.count(RELOAD_LINE), 0, "{:#?}", instance.log());
    assert_eq!(instance.count("reloads)"), 0, "{:#?}", instance.log());
}
