//! nginx (Debian's, stock `uwsgi_params`) in front of a real Django project
//! (tests/peers/django_app.py) served by uwsgi-server — over TCP and over a unix socket —
//! and by real uWSGI 2.0, with the same requests sent to all three and the answers
//! compared (status, body, the headers Django sets): a template-rendered page, the
//! APPEND_SLASH redirect, a form through Django's CSRF token flow (and a POST without
//! the token refused), a JSON echo of a posted body, the `uwsgi` module's cache, Django's
//! 404 page and its 500 page for a view that raises (traceback in the log, the worker
//! still serving).
//!
//! Peers come from scripts/setup-peers.sh (nginx-light; Django in target/peers/apps-venv
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

fn peers_dir() -> String {
    root().join("tests/peers").display().to_string()
}

/// Whether the venv at `venv` can import Django; says what to run when it cannot.
fn has_django(venv: &Path) -> bool {
    let works = Command::new(venv.join("bin/python"))
        .args(["-c", "import django"])
        .stderr(std::process::Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !works {
        let skip = std::env::var("UWSGI_SKIP_PEERS").is_ok_and(|v| v == "1");
        eprintln!(
            "\n!! Django is not installed in {}: run scripts/setup-peers.sh. {}\n",
            venv.display(),
            if skip {
                "UWSGI_SKIP_PEERS=1: skipping this test."
            } else {
                "Set UWSGI_SKIP_PEERS=1 to skip."
            }
        );
        assert!(skip, "Django unavailable in {}", venv.display());
    }
    works
}

/// The headers Django's response and middleware set, as the client saw them.
const HEADERS: [&str; 8] = [
    "content-type",
    "content-length",
    "location",
    "vary",
    "x-frame-options",
    "x-content-type-options",
    "referrer-policy",
    "cross-origin-opener-policy",
];

/// One answer in a comparable form: status, the [`HEADERS`] present, and the body.
#[derive(Debug, PartialEq)]
struct Answer {
    status: u16,
    headers: Vec<(&'static str, String)>,
    body: String,
}

impl From<&HttpResponse> for Answer {
    fn from(response: &HttpResponse) -> Answer {
        Answer {
            status: response.status,
            headers: HEADERS
                .iter()
                .filter_map(|name| response.header(name).map(|v| (*name, v.to_owned())))
                .collect(),
            body: response.text(),
        }
    }
}

fn json(response: &HttpResponse) -> serde_json::Value {
    serde_json::from_slice(&response.body)
        .unwrap_or_else(|e| panic!("not JSON ({e}): {:?}", response.text()))
}

/// The value of `name="csrfmiddlewaretoken"` in the form page.
fn form_token(page: &str) -> String {
    let after = page
        .split("name=\"csrfmiddlewaretoken\" value=\"")
        .nth(1)
        .unwrap_or_else(|| panic!("no CSRF field in {page:?}"));
    after.split('"').next().unwrap().to_owned()
}

/// Everything one server answered, in a comparable form.
#[derive(Debug, PartialEq)]
struct Observed {
    page: Answer,
    redirect: Answer,
    /// The form page without its per-request token, and the cookie's attributes
    /// without its value and expiry date.
    form_page: (u16, String, Vec<String>),
    form_post: Answer,
    forbidden: u16,
    echo: Answer,
    cache: serde_json::Value,
    missing: Answer,
    error: Answer,
    after_error: u16,
}

/// Sends the scenario through nginx's `port` and checks each answer; `log` reads the
/// server's log (for the traceback of the failing request).
fn scenario(port: u16, log: &dyn Fn() -> String) -> Observed {
    let page = http(port, "GET", "/?b=2&a=1", &[("X-Test", "yes")], b"").unwrap();
    assert_eq!(page.status, 200, "{}", page.text());
    let text = page.text();
    assert!(
        text.contains("<h1>hello from django &amp; uwsgi</h1>"),
        "{text}"
    );
    assert!(
        text.contains("method=GET path=/?b=2&amp;a=1 scheme=http proto=HTTP/1.1"),
        "{text}"
    );
    assert!(text.contains("<li>a=1</li><li>b=2</li>"), "{text}");
    assert!(text.contains("x-test=yes script_name="), "{text}");
    assert_eq!(page.header("x-frame-options"), Some("DENY"));

    let redirect = http(port, "GET", "/hello", &[], b"").unwrap();
    assert_eq!(redirect.status, 301, "{}", redirect.text());
    assert_eq!(redirect.header("location"), Some("/hello/"));

    // Django's CSRF flow: the form page sets the cookie and carries the masked token.
    let form_page = http(port, "GET", "/form/", &[], b"").unwrap();
    assert_eq!(form_page.status, 200, "{}", form_page.text());
    let token = form_token(&form_page.text());
    let set_cookie = form_page
        .header("set-cookie")
        .unwrap_or_else(|| panic!("no CSRF cookie: {:?}", form_page.headers))
        .to_owned();
    let (cookie, attributes) = set_cookie.split_once(';').unwrap();
    assert!(cookie.starts_with("csrftoken="), "{set_cookie}");
    let form_post = http(
        port,
        "POST",
        "/form/",
        &[
            ("Content-Type", "application/x-www-form-urlencoded"),
            ("Cookie", cookie),
        ],
        format!("csrfmiddlewaretoken={token}&name=uwsgi+rs&lang=rust&empty=").as_bytes(),
    )
    .unwrap();
    assert_eq!(form_post.status, 200, "{}", form_post.text());
    assert_eq!(
        json(&form_post)["fields"],
        serde_json::json!({"csrfmiddlewaretoken": token, "name": "uwsgi rs", "lang": "rust", "empty": ""})
    );
    let forbidden = http(
        port,
        "POST",
        "/form/",
        &[("Content-Type", "application/x-www-form-urlencoded")],
        b"name=no+token",
    )
    .unwrap();
    assert_eq!(forbidden.status, 403, "{}", forbidden.text());
    // The token is random: compare the page around it, and the cookie's attributes.
    let form_page = (
        form_page.status,
        form_page.text().replace(&token, "TOKEN"),
        attributes
            .split(';')
            .map(str::trim)
            .filter(|a| !a.to_ascii_lowercase().starts_with("expires="))
            .map(str::to_owned)
            .collect(),
    );

    let echo = http(
        port,
        "POST",
        "/echo/",
        &[("Content-Type", "application/json")],
        "{\"name\": \"café\", \"n\": [1, 2, 3]}".as_bytes(),
    )
    .unwrap();
    assert_eq!(echo.status, 200, "{}", echo.text());
    assert_eq!(
        json(&echo),
        serde_json::json!({
            "length": 33,
            "content_type": "application/json",
            "json": {"name": "café", "n": [1, 2, 3]},
        })
    );

    let cache = http(port, "GET", "/cache/colour/?value=blue", &[], b"").unwrap();
    assert_eq!(cache.status, 200, "{}", cache.text());
    let cache = json(&cache);
    assert_eq!(cache["stored"], "blue");

    let missing = http(port, "GET", "/no/such/page/", &[], b"").unwrap();
    assert_eq!(missing.status, 404);
    assert!(missing.text().contains("<h1>Not Found</h1>"));

    let error = http(port, "GET", "/boom/", &[], b"").unwrap();
    assert_eq!(error.status, 500);
    assert!(
        error.text().contains("Server Error (500)"),
        "{}",
        error.text()
    );
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

    Observed {
        page: Answer::from(&page),
        redirect: Answer::from(&redirect),
        form_page,
        form_post: Answer {
            body: String::new(),
            ..Answer::from(&form_post)
        },
        forbidden: forbidden.status,
        echo: Answer::from(&echo),
        cache,
        missing: Answer::from(&missing),
        error: Answer::from(&error),
        after_error: after_error.status,
    }
}

#[test]
fn django_behind_nginx_answers_as_under_uwsgi() {
    let Some(nginx_bin) = nginx_peer::nginx_bin() else {
        return;
    };
    let Some(uwsgi_bin) = uwsgi_peer::uwsgi_bin() else {
        return;
    };
    let venvs = root().join("target/peers");
    if !has_django(&venvs.join("apps-venv")) || !has_django(&venvs.join("uwsgi-venv")) {
        return;
    }
    let dir = temp_dir("nginx-django");
    let app = ["--pythonpath", &peers_dir(), "--module", "django_app"];
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

    let ours_log = || ours.log();
    let theirs_log = || theirs.log();
    let over_unix = scenario(nginx.ports[0], &ours_log);
    let over_tcp = scenario(nginx.ports[1], &ours_log);
    let under_uwsgi = scenario(nginx.ports[2], &theirs_log);

    assert_eq!(over_unix, over_tcp);
    assert_eq!(over_unix, under_uwsgi, "uwsgi-rs and uWSGI 2.0 differ");
    assert!(
        !nginx.error_log().contains("upstream prematurely closed"),
        "{}",
        nginx.error_log()
    );
    let _ = fs::remove_dir_all(&dir);
}
