//! A server process run by the interop tests (nginx_flask.rs, nginx_django.rs): its
//! output in a log file, killed with its whole process group and reaped on drop; and the
//! two servers those tests compare, uwsgi-server and real uWSGI 2.0, started on the same
//! application with the same settings.

use std::fs;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A server process whose stdout and stderr go to `log`; killed (the whole process
/// group) and reaped on drop.
pub struct Process {
    child: Child,
    log: PathBuf,
}

impl Process {
    pub fn spawn(mut command: Command, log: PathBuf) -> Process {
        use std::os::unix::process::CommandExt;
        let out = fs::File::create(&log).unwrap();
        command
            .stdin(Stdio::null())
            .stdout(out.try_clone().unwrap())
            .stderr(out)
            .process_group(0);
        Process {
            child: command.spawn().unwrap(),
            log,
        }
    }

    pub fn log(&self) -> String {
        fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Waits until `unix` accepts connections.
    pub fn wait_for(&mut self, unix: &Path) {
        let deadline = Instant::now() + Duration::from_secs(30);
        while UnixStream::connect(unix).is_err() {
            if let Some(status) = self.child.try_wait().unwrap() {
                panic!("server exited ({status}):\n{}", self.log());
            }
            assert!(
                Instant::now() < deadline,
                "server not ready:\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        let pgid = self.child.id().to_string();
        let _ = Command::new("kill")
            .args(["-s", "KILL", "--", &format!("-{pgid}")])
            .status();
        let _ = self.child.wait();
    }
}

pub fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("{name}-{}", std::process::id()));
    let _ = fs::remove_dir_all(&dir);
    fs::create_dir_all(&dir).unwrap();
    dir
}

/// The settings both servers get: one worker with two threads and uWSGI's default cache.
const SHARED_ARGS: [&str; 6] = [
    "--cache2",
    "name=default,items=100,blocksize=4096",
    "--processes",
    "1",
    "--threads",
    "2",
];

/// uwsgi-server (`bin`) hosting the application `app` names (`--wsgi-file F`, or
/// `--pythonpath D --module M`) in the virtualenv `venv`, on a unix socket in `dir` and
/// on TCP `port`; returns the process and the socket path.
pub fn start_ours(
    bin: &str,
    dir: &Path,
    app: &[&str],
    venv: &Path,
    port: u16,
) -> (Process, PathBuf) {
    let unix = dir.join("ours.sock");
    let mut command = Command::new(bin);
    command
        .args(["--socket", unix.to_str().unwrap()])
        .args(["--socket", &format!("127.0.0.1:{port}")])
        .args(app)
        .args(["--virtualenv", venv.to_str().unwrap()])
        .args(SHARED_ARGS);
    let mut process = Process::spawn(command, dir.join("ours.log"));
    process.wait_for(&unix);
    (process, unix)
}

/// Real uWSGI 2.0 (`bin`, from its own venv, so with its own `uwsgi` module) hosting
/// the same application on a unix socket in `dir`.
pub fn start_uwsgi(bin: &Path, dir: &Path, app: &[&str]) -> (Process, PathBuf) {
    let unix = dir.join("uwsgi.sock");
    let mut command = Command::new(bin);
    command
        .args(["--socket", unix.to_str().unwrap()])
        .args(app)
        .arg("--master")
        .args(SHARED_ARGS);
    let mut process = Process::spawn(command, dir.join("uwsgi.log"));
    process.wait_for(&unix);
    (process, unix)
}
