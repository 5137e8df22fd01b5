//! CPython's fork protocol through the `App` fork hooks, as the forking master will use
//! them: the Python host loads an application (with a Python thread running), the
//! process forks, and both the child (a new worker) and the parent keep serving.

#![cfg(feature = "python")]
#![allow(clippy::unwrap_used)]

use std::sync::Arc;

use uwsgi_protocol::packet::Request;
use uwsgi_protocol::{Modifier1, VarsBuilder};
use uwsgi_server::python::PythonApp;
use uwsgi_server::state::ServerState;
use uwsgi_server::{App, ServerConfig};

fn serve(app: &PythonApp) -> String {
    let mut vars = VarsBuilder::new();
    for (key, value) in [
        ("REQUEST_METHOD", "GET"),
        ("PATH_INFO", "/"),
        ("SERVER_PROTOCOL", "HTTP/1.1"),
        ("SERVER_NAME", "localhost"),
        ("SERVER_PORT", "80"),
    ] {
        vars.push(key, value).unwrap();
    }
    let request = Request::new(Modifier1::Wsgi, vars.as_vars());
    let mut out = Vec::new();
    let status = app.call(&request, &mut &b""[..], &mut out).unwrap();
    assert_eq!(status.code, 200);
    String::from_utf8(out).unwrap()
}

#[allow(unsafe_code)]
fn fork() -> i32 {
    // SAFETY: the child only runs Rust code that the fork protocol made safe for a
    // single-threaded child (the Python host resets the interpreter in start_worker),
    // and leaves with _exit.
    unsafe { libc::fork() }
}

#[allow(unsafe_code)]
fn exit_now(code: i32) -> ! {
    // SAFETY: _exit ends the child without running the parent's atexit handlers or
    // the test harness's destructors, which belong to the parent.
    unsafe { libc::_exit(code) }
}

fn wait(pid: i32) -> i32 {
    let mut status = 0;
    #[allow(unsafe_code)]
    // SAFETY: waits for our own child; `status` is a valid out pointer.
    let waited = unsafe { libc::waitpid(pid, &mut status, 0) };
    assert_eq!(waited, pid);
    assert!(
        libc::WIFEXITED(status),
        "child did not exit normally: {status}"
    );
    libc::WEXITSTATUS(status)
}

#[test]
fn workers_forked_from_a_loaded_interpreter_serve() {
    let file = format!("{}/tests/apps/forking.py", env!("CARGO_MANIFEST_DIR"));
    let args: Vec<String> = ["--socket", "127.0.0.1:0", "--wsgi-file", &file]
        .iter()
        .map(|s| (*s).to_owned())
        .collect();
    let config = ServerConfig::from_sources(&args, &[]).unwrap();
    let state = Arc::new(ServerState::new(config.state_config().unwrap()).unwrap());
    let app = PythonApp::new(&config).unwrap();
    app.init(&state).unwrap();
    app.start_worker(1, false).unwrap();
    let parent_pid = std::process::id();
    assert_eq!(
        serve(&app),
        format!(
            "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\r\npid={parent_pid} worker=1 ticker=alive"
        )
    );

    for worker in 2..=3 {
        // Let the Python thread run in between, so it may hold the GIL at fork time.
        std::thread::sleep(std::time::Duration::from_millis(20));
        app.before_fork();
        let pid = fork();
        assert!(pid >= 0, "fork failed");
        if pid == 0 {
            let code = match std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                app.start_worker(worker, true).unwrap();
                let reply = serve(&app);
                reply.ends_with(&format!(
                    "pid={} worker={worker} ticker=gone",
                    std::process::id()
                ))
            })) {
                Ok(true) => 0,
                Ok(false) => 2,
                Err(_) => 3,
            };
            exit_now(code);
        }
        app.after_fork_parent();
        assert_eq!(wait(pid), 0, "worker {worker} served from its own process");
        // The parent's interpreter is intact.
        assert!(serve(&app).ends_with(&format!("pid={parent_pid} worker=1 ticker=alive")));
    }
}
