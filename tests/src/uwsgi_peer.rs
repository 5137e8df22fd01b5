//! A real uWSGI 2.0 for interop tests: found (or installed into a venv) once per test
//! process, started per test, killed when the guard drops — also when the test panics.
//!
//! The server loads `tests/peers/uwsgi_app.py` (RPC functions `hello`, `big`, `empty`; a
//! handler for signal 17; a spooler function; a WSGI app) with a cache
//! (`--cache2 name=default,items=100,blocksize=4096`), a spooler and a stats server, and
//! listens on a unix socket in a temp directory and on a free TCP port of 127.0.0.1.
//!
//! This file only uses std, so that crates which cannot depend on `uwsgi-tests` (the
//! protocol crate's own tests) can include it with `#[path]`.
//!
//! * `UWSGI_BIN=/path/to/uwsgi` uses that binary and installs nothing.
//! * Otherwise `target/peers/uwsgi-venv` is created with `python3 -m venv` and
//!   `pip install pyuwsgi` the first time, and reused afterwards.
//! * If neither works the tests fail loudly, unless `UWSGI_SKIP_PEERS=1`.

use std::fs;
use std::io::{Read, Write};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::thread::sleep;
use std::time::{Duration, Instant};

use std::net::{SocketAddr, TcpStream};
use std::os::unix::net::UnixStream;

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
    let peers = workspace_root().join("target/peers");
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

/// The workspace root: every crate of the workspace sits one level below it.
fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// The test application, `tests/peers/uwsgi_app.py`.
pub fn app_path() -> PathBuf {
    workspace_root().join("tests/peers/uwsgi_app.py")
}

/// A free TCP port on 127.0.0.1 (bound, read and released: the race with other
/// processes is negligible on loopback, and uWSGI does not report a port-0 binding).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port()
}

/// How to start the server.
#[derive(Debug, Clone)]
pub struct Options {
    /// `--processes`.
    pub processes: usize,
    /// More command-line arguments, appended as given.
    pub extra_args: Vec<String>,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            processes: 1,
            extra_args: Vec::new(),
        }
    }
}

/// A running uWSGI (master, workers, spooler, stats server) serving
/// `tests/peers/uwsgi_app.py` on a unix socket and on a TCP port. Dropping it kills the
/// whole process group.
#[derive(Debug)]
pub struct Server {
    child: Child,
    dir: PathBuf,
    /// The unix socket.
    pub unix: PathBuf,
    /// The TCP socket.
    pub tcp: SocketAddr,
    /// The stats server (`--stats`, TCP).
    pub stats: SocketAddr,
}

/// Starts a server with the default [`Options`], or `None` where uWSGI is unavailable
/// and `UWSGI_SKIP_PEERS=1` (see [`uwsgi_bin`]).
pub fn start() -> Option<Server> {
    uwsgi_bin().map(|bin| Server::start(&bin))
}

impl Server {
    /// Starts `bin` with the default [`Options`].
    pub fn start(bin: &Path) -> Server {
        Server::start_with(bin, &Options::default())
    }

    /// Starts `bin` with `options` and waits until it answers pings on both sockets.
    pub fn start_with(bin: &Path, options: &Options) -> Server {
        static COUNT: AtomicUsize = AtomicUsize::new(0);
        let dir = std::env::temp_dir().join(format!(
            "uwsgi-peer-{}-{}",
            std::process::id(),
            COUNT.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = fs::remove_dir_all(&dir);
        for sub in ["spool", "marks"] {
            fs::create_dir_all(dir.join(sub)).expect("create the server's temp dir");
        }
        let socket = dir.join("uwsgi.sock");
        let tcp: SocketAddr = format!("127.0.0.1:{}", free_port())
            .parse()
            .expect("tcp address");
        let stats: SocketAddr = format!("127.0.0.1:{}", free_port())
            .parse()
            .expect("stats address");
        let child = Command::new(bin)
            .args(["--master", "--processes", &options.processes.to_string()])
            .arg("--socket")
            .arg(&socket)
            .args(["--socket", &tcp.to_string(), "--wsgi-file"])
            .arg(app_path())
            .args(["--cache2", "name=default,items=100,blocksize=4096"])
            .arg("--spooler")
            .arg(dir.join("spool"))
            .args(["--spooler-frequency", "1", "--stats", &stats.to_string()])
            .args(["--logto"])
            .arg(dir.join("uwsgi.log"))
            .args(&options.extra_args)
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
            unix: socket,
            tcp,
            stats,
        };
        server.wait_ready();
        server
    }

    /// The unix socket as the CLI writes it: `unix:/path`.
    pub fn unix_arg(&self) -> String {
        format!("unix:{}", self.unix.display())
    }

    /// The server's temp directory (socket, spool, marks, log).
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    fn wait_ready(&mut self) {
        let start = Instant::now();
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!("uwsgi exited early ({status}); log:\n{}", self.log());
            }
            let wait = Some(Duration::from_secs(2));
            let unix = UnixStream::connect(&self.unix)
                .ok()
                .filter(|s| s.set_read_timeout(wait).is_ok())
                .is_some_and(raw_ping);
            let tcp = TcpStream::connect(self.tcp)
                .ok()
                .filter(|s| s.set_read_timeout(wait).is_ok())
                .is_some_and(raw_ping);
            if unix && tcp && TcpStream::connect(self.stats).is_ok() {
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

/// Sends `64 0000 00` and expects a pong header back (std only, no client library).
fn raw_ping<S: Read + Write>(mut stream: S) -> bool {
    let mut reply = [0u8; 4];
    stream.write_all(&[0x64, 0, 0, 0]).is_ok()
        && stream.read_exact(&mut reply).is_ok()
        && reply[0] == 0x64
        && reply[3] == 1
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
