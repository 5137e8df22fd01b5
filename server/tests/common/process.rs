//! A server process run by the interop tests (nginx_flask.rs, nginx_django.rs): its
//! output in a log file, killed with its whole process group and reaped on drop.

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
