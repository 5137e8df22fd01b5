//! A real uWSGI 2.0 for the client tests: found (or installed into a venv) once per test
//! process, started per test, killed when the guard drops — also when the test panics.
//!
//! * `UWSGI_BIN=/path/to/uwsgi` uses that binary and installs nothing.
//! * Otherwise `target/peers/uwsgi-venv` is created with `python3 -m venv` and
//!   `pip install pyuwsgi` the first time, and reused afterwards.
//! * If neither works the tests fail loudly, unless `UWSGI_SKIP_PEERS=1`.

use std::fs;
use std::io::Write;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::thread::sleep;
use std::time::{Duration, Instant};

use uwsgi_protocol::client::{Address, Client};

/// The uWSGI binary, or `None` when it is unavailable and `UWSGI_SKIP_PEERS=1`.
pub fn uwsgi_bin() -> Option<PathBuf> {
    static BIN: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    match BIN.get_or_init(find_or_install) {
        Ok(bin) => Some(bin.clone()),
        Err(why) => {
            let skip = std::env::var("UWSGI_SKIP_PEERS").is_ok_and(|v| v == "1");
            shout(&format!(
                "\n!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!\n\
                     !! real uWSGI 2.0 is not available: {why}\n\
                     !! install it with: python3 -m venv target/peers/uwsgi-venv && \
                     target/peers/uwsgi-venv/bin/pip install pyuwsgi\n\
                     !! or point UWSGI_BIN at a uwsgi binary. {}\n\
                     !!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!\n",
                if skip {
                    "UWSGI_SKIP_PEERS=1: skipping this test."
                } else {
                    "Set UWSGI_SKIP_PEERS=1 to skip."
                }
            ));
            assert!(skip, "real uWSGI unavailable: {why}");
            None
        }
    }
}

/// Writes straight to the process's stderr, past the test harness's output capture, so
/// the message shows even for a test that passes (as skipped).
fn shout(message: &str) {
    let _ = std::io::stderr().write_all(message.as_bytes());
}

fn find_or_install() -> Result<PathBuf, String> {
    if let Some(bin) = std::env::var_os("UWSGI_BIN") {
        return check(PathBuf::from(bin));
    }
    let peers = Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/peers");
    let venv = peers.join("uwsgi-venv");
    let bin = venv.join("bin/uwsgi");
    if let Ok(bin) = check(bin.clone()) {
        return Ok(bin);
    }
    fs::create_dir_all(&peers).map_err(|e| format!("{}: {e}", peers.display()))?;
    // Another test process may be installing: a directory is the lock.
    let lock = peers.join("uwsgi-venv.lock");
    let waited = Instant::now();
    while fs::create_dir(&lock).is_err() {
        if let Ok(bin) = check(bin.clone()) {
            return Ok(bin);
        }
        if waited.elapsed() > Duration::from_secs(300) {
            return Err(format!("{} held for 5 minutes; remove it", lock.display()));
        }
        sleep(Duration::from_millis(500));
    }
    shout(&format!("installing pyuwsgi into {} ...\n", venv.display()));
    let result = run(Command::new("python3").arg("-m").arg("venv").arg(&venv))
        .and_then(|()| {
            run(Command::new(venv.join("bin/pip")).args([
                "install",
                "--quiet",
                "--disable-pip-version-check",
                "pyuwsgi",
            ]))
        })
        .and_then(|()| check(bin));
    let _ = fs::remove_dir(&lock);
    result
}

fn run(command: &mut Command) -> Result<(), String> {
    let out = command.output().map_err(|e| format!("{command:?}: {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "{command:?} failed ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

/// `bin` if `bin --version` says 2.x.
fn check(bin: PathBuf) -> Result<PathBuf, String> {
    let out = Command::new(&bin)
        .arg("--version")
        .output()
        .map_err(|e| format!("{}: {e}", bin.display()))?;
    let version = String::from_utf8_lossy(&out.stdout).trim().to_owned();
    if out.status.success() && version.starts_with("2.") {
        Ok(bin)
    } else {
        Err(format!("{} --version said {version:?}", bin.display()))
    }
}

/// A running uWSGI (master + 1 worker + spooler) serving tests/support/app.py on a unix
/// socket and on a TCP port. Dropping it kills the whole process group.
pub struct Server {
    child: Child,
    dir: PathBuf,
    /// The unix socket.
    pub unix: Address,
    /// The TCP socket.
    pub tcp: Address,
}

impl Server {
    pub fn start(bin: &Path) -> Server {
        static COUNT: AtomicUsize = AtomicUsize::new(0);
        let dir = std::env::temp_dir().join(format!(
            "uwsgi-client-{}-{}",
            std::process::id(),
            COUNT.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = fs::remove_dir_all(&dir);
        for sub in ["spool", "marks"] {
            fs::create_dir_all(dir.join(sub)).expect("create the server's temp dir");
        }
        let socket = dir.join("uwsgi.sock");
        // uWSGI does not report a port-0 binding conveniently: take a free port and pass
        // it (the race with other processes is negligible on loopback).
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port")
            .port();
        let tcp = format!("127.0.0.1:{port}");
        let app = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/support/app.py");
        let child = Command::new(bin)
            .args(["--master", "--processes", "1", "--socket"])
            .arg(&socket)
            .args(["--socket", &tcp, "--wsgi-file"])
            .arg(app)
            .args(["--cache2", "name=default,items=100,blocksize=4096"])
            .arg("--spooler")
            .arg(dir.join("spool"))
            .args(["--spooler-frequency", "1", "--logto"])
            .arg(dir.join("uwsgi.log"))
            .env("CLIENT_TEST_MARKS", dir.join("marks"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .process_group(0)
            .spawn()
            .expect("spawn uwsgi");
        let mut server = Server {
            child,
            dir,
            unix: Address::Unix(socket),
            tcp: tcp.parse().expect("tcp address"),
        };
        server.wait_ready();
        server
    }

    fn wait_ready(&mut self) {
        let client = Client::new(self.unix.clone());
        let start = Instant::now();
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!("uwsgi exited early ({status}); log:\n{}", self.log());
            }
            if client.ping().is_ok() && Client::new(self.tcp.clone()).ping().is_ok() {
                return;
            }
            assert!(
                start.elapsed() < Duration::from_secs(20),
                "uwsgi not ready after 20 s; log:\n{}",
                self.log()
            );
            sleep(Duration::from_millis(50));
        }
    }

    /// The server log so far.
    pub fn log(&self) -> String {
        fs::read_to_string(self.dir.join("uwsgi.log")).unwrap_or_default()
    }

    /// Waits up to 5 s for the app to leave marker file `name`; its contents.
    pub fn wait_for_mark(&self, name: &str) -> Option<Vec<u8>> {
        let path = self.dir.join("marks").join(name);
        let start = Instant::now();
        while start.elapsed() < Duration::from_secs(5) {
            if let Ok(data) = fs::read(&path) {
                return Some(data);
            }
            sleep(Duration::from_millis(50));
        }
        None
    }

    fn kill_group(&self, signal: &str) {
        let _ = Command::new("kill")
            .args([signal, "--", &format!("-{}", self.child.id())])
            .stderr(Stdio::null())
            .status();
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        // SIGINT stops the master and every worker of the group at once.
        self.kill_group("-INT");
        let start = Instant::now();
        while !matches!(self.child.try_wait(), Ok(Some(_))) {
            if start.elapsed() > Duration::from_secs(5) {
                let _ = self.child.kill();
                let _ = self.child.wait();
                break;
            }
            sleep(Duration::from_millis(20));
        }
        // Anything of the group still alive (the group id outlives the master's pid).
        self.kill_group("-KILL");
        if std::thread::panicking() {
            eprintln!("---- uwsgi log ----\n{}\n-------------------", self.log());
        }
        let _ = fs::remove_dir_all(&self.dir);
    }
}
