//! Configuration and request vars through the real binary: an `--ini` file using the
//! `%d`/`%n` magic variables together with a `UWSGI_*` environment variable, and the
//! magic vars a peer could send (`UWSGI_FILE`, `UWSGI_SCRIPT`, `UWSGI_CHDIR`, …), which
//! must stay ordinary vars.

#![cfg(feature = "python")]
#![allow(clippy::unwrap_used)]

mod common;

use std::io::Read;
use std::os::unix::net::UnixStream;
use std::path::PathBuf;
use std::time::Duration;

use common::binary::Instance;
use common::{exchange, framed, request_bytes};
use uwsgi_protocol::Modifier1;

fn fresh_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("uwsgi-rs-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

#[test]
fn ini_file_with_magic_variables_and_an_environment_option() {
    let dir = fresh_dir("ini");
    let ini = dir.join("shop.ini");
    // %d is the file's directory (with a trailing slash), %n its name without ".ini".
    std::fs::write(
        &ini,
        "[uwsgi]\n\
         socket = 127.0.0.1:0\n\
         master = true\n\
         stats = %d%n-stats.sock\n\
         cache2 = name=%n,items=10\n",
    )
    .unwrap();
    // An option only the environment gives, as uWSGI reads UWSGI_<NAME>.
    let server = Instance::start_with_env(
        &["--ini", ini.to_str().unwrap()],
        &[("UWSGI_MAX_REQUESTS", std::ffi::OsStr::new("4321"))],
    );
    // The stats socket is where %d%n put it, and the cache is named after the file.
    let stats_path = dir.join("shop-stats.sock");
    let mut text = String::new();
    let started = std::time::Instant::now();
    let mut stream = loop {
        match UnixStream::connect(&stats_path) {
            Ok(stream) => break stream,
            Err(err) => {
                assert!(
                    started.elapsed() < Duration::from_secs(10),
                    "{}: {err}\n{:#?}",
                    stats_path.display(),
                    server.log()
                );
                std::thread::sleep(Duration::from_millis(50));
            }
        }
    };
    stream.read_to_string(&mut text).unwrap();
    let stats: serde_json::Value = serde_json::from_str(&text).unwrap();
    assert_eq!(stats["caches"][0]["name"], "shop");
    // UWSGI_MAX_REQUESTS reached the configuration: the admin slot 1 reads it.
    let mut expected = vec![10, 4, 0, 1];
    expected.extend_from_slice(&4321u32.to_le_bytes());
    assert_eq!(
        exchange(&server.addr, &framed(Modifier1::Admin, 1, b"")),
        expected
    );
    drop(server);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn magic_vars_from_a_peer_are_inert() {
    let dir = fresh_dir("magic-vars");
    // What a peer would like to run: importing it leaves a marker file.
    let marker = dir.join("imported");
    std::fs::write(
        dir.join("evil.py"),
        format!(
            "open({:?}, 'w').write('x')\n\
             def application(environ, start_response):\n\
             \x20   start_response('200 OK', [])\n\
             \x20   return [b'evil']\n",
            marker.to_str().unwrap()
        ),
    )
    .unwrap();
    let app = format!("{}/tests/apps/inert.py", env!("CARGO_MANIFEST_DIR"));
    let server = Instance::start(&["--wsgi-file", &app, "--socket", "127.0.0.1:0"]);
    let dir_text = dir.to_str().unwrap();
    let evil_file = dir.join("evil.py");
    let magic = [
        ("UWSGI_FILE", evil_file.to_str().unwrap()),
        ("UWSGI_SCRIPT", "evil"),
        ("UWSGI_MODULE", "evil"),
        ("UWSGI_CALLABLE", "application"),
        ("UWSGI_CHDIR", dir_text),
        ("UWSGI_PYHOME", dir_text),
        ("UWSGI_APPID", "evil"),
    ];
    let mut vars = vec![
        ("REQUEST_METHOD", "GET"),
        ("PATH_INFO", "/"),
        ("QUERY_STRING", ""),
        ("SERVER_PROTOCOL", "HTTP/1.1"),
        ("SERVER_NAME", "test.local"),
        ("SERVER_PORT", "80"),
    ];
    vars.extend_from_slice(&magic);
    let cwd_before = {
        let reply = exchange(&server.addr, &request_bytes(&vars[..6], b""));
        body_json(&reply)["cwd"].clone()
    };
    for _ in 0..3 {
        let reply = exchange(&server.addr, &request_bytes(&vars, b""));
        let answer = body_json(&reply);
        // Served by the configured application, in the same directory, nothing imported.
        assert_eq!(answer["app"], "inert");
        assert_eq!(answer["cwd"], cwd_before);
        assert_eq!(answer["evil_imported"], false);
        // The vars reach the application as ordinary environ entries.
        for (name, value) in magic {
            assert_eq!(answer["vars"][name], value, "{name}");
        }
    }
    assert!(
        !marker.exists(),
        "a peer's UWSGI_FILE/UWSGI_SCRIPT was imported"
    );
    drop(server);
    let _ = std::fs::remove_dir_all(&dir);
}

/// The JSON body of a raw HTTP reply.
fn body_json(reply: &[u8]) -> serde_json::Value {
    let text = String::from_utf8_lossy(reply);
    let (head, body) = text.split_once("\r\n\r\n").unwrap();
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    serde_json::from_str(body).unwrap()
}
