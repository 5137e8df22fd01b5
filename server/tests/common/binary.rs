//! A `uwsgi-server` binary run by a test: its stderr lines collected, helpers to wait for
//! log lines and read the announced addresses, and a guard that kills and reaps the
//! master and every child when dropped, whatever the outcome, so no process outlives a
//! test.

use std::io::{BufRead, BufReader, Read};
use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// The server binary under test.
pub const BIN: &str = env!("CARGO_BIN_EXE_uwsgi-server");

/// A running master and its children; killed and reaped on drop.
pub struct Instance {
    child: Child,
    lines: Arc<Mutex<Vec<String>>>,
    /// The first address announced with "listening on".
    pub addr: String,
    /// The stats server, when `--stats` was given.
    pub stats: Option<String>,
}

impl Instance {
    pub fn start(args: &[&str]) -> Instance {
        Instance::start_with_env(args, &[])
    }

    /// [`Instance::start`] with these environment variables added.
    pub fn start_with_env(args: &[&str], env: &[(&str, &std::ffi::OsStr)]) -> Instance {
        let mut child = Command::new(BIN)
            .args(args)
            .envs(env.iter().copied())
            .env_remove("UWSGI_RS_FDS")
            .env_remove("UWSGI_RELOADS")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let stderr = child.stderr.take().unwrap();
        let lines = Arc::new(Mutex::new(Vec::new()));
        let sink = Arc::clone(&lines);
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                sink.lock().unwrap().push(line);
            }
        });
        let mut instance = Instance {
            child,
            lines,
            addr: String::new(),
            stats: None,
        };
        instance.wait_for("the listening line", Duration::from_secs(10), |lines| {
            lines.iter().any(|l| l.contains("listening on"))
        });
        let text = instance.lines.lock().unwrap().clone();
        let after = |prefix: &str| {
            text.iter()
                .find_map(|l| l.split(prefix).nth(1).map(|a| a.trim().to_owned()))
        };
        instance.addr = after("listening on ").unwrap();
        if args.contains(&"--stats") {
            instance.wait_for("the stats line", Duration::from_secs(10), |lines| {
                lines.iter().any(|l| l.contains("stats server on"))
            });
            let text = instance.lines.lock().unwrap().clone();
            instance.stats = text.iter().find_map(|l| {
                l.split("stats server on ")
                    .nth(1)
                    .map(|a| a.trim().to_owned())
            });
        }
        instance
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn log(&self) -> Vec<String> {
        self.lines.lock().unwrap().clone()
    }

    /// Every address announced after `prefix` in the log, in order.
    pub fn addrs(&self, prefix: &str) -> Vec<String> {
        self.log()
            .iter()
            .filter_map(|l| l.split(prefix).nth(1).map(|a| a.trim().to_owned()))
            .collect()
    }

    pub fn count(&self, needle: &str) -> usize {
        self.log().iter().filter(|l| l.contains(needle)).count()
    }

    /// Waits until `done` holds for the log lines; panics with the log after `limit`.
    pub fn wait_for(&self, what: &str, limit: Duration, done: impl Fn(&[String]) -> bool) {
        let started = Instant::now();
        loop {
            if done(&self.lines.lock().unwrap()) {
                return;
            }
            assert!(
                started.elapsed() < limit,
                "timed out waiting for {what}; log:\n{}",
                self.log().join("\n")
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn wait_for_count(&self, needle: &str, n: usize, limit: Duration) {
        self.wait_for(&format!("{n} x {needle:?}"), limit, |lines| {
            lines.iter().filter(|l| l.contains(needle)).count() >= n
        });
    }

    pub fn stats(&self) -> serde_json::Value {
        let mut stream = TcpStream::connect(self.stats.as_deref().unwrap()).unwrap();
        stream
            .set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        let mut text = String::new();
        stream.read_to_string(&mut text).unwrap();
        serde_json::from_str(&text).unwrap()
    }

    pub fn worker_pids(&self) -> Vec<u64> {
        self.stats()["workers"]
            .as_array()
            .unwrap()
            .iter()
            .map(|w| w["pid"].as_u64().unwrap())
            .collect()
    }

    pub fn signal(&self, signal: &str) {
        signal_pid(self.pid(), signal);
    }

    /// Waits for the master to exit; its exit status.
    pub fn wait_exit(&mut self, limit: Duration) -> std::process::ExitStatus {
        let started = Instant::now();
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            assert!(
                started.elapsed() < limit,
                "the master did not exit; log:\n{}",
                self.log().join("\n")
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Instance {
    fn drop(&mut self) {
        // The children die with the master (parent-death signal), but are killed
        // here too in case the master is already gone.
        let children = children_of(self.child.id());
        let _ = self.child.kill();
        let _ = self.child.wait();
        for pid in children {
            signal_pid(pid, "KILL");
        }
    }
}

pub fn signal_pid(pid: u32, signal: &str) {
    let status = Command::new("kill")
        .args([&format!("-{signal}"), &pid.to_string()])
        .stderr(Stdio::null())
        .status()
        .unwrap();
    let _ = status;
}

/// The pids whose parent is `parent`, from /proc.
pub fn children_of(parent: u32) -> Vec<u32> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
            continue;
        };
        // pid (comm) state ppid ...: comm may hold spaces, so split after the last ')'.
        let Some(rest) = stat.rsplit_once(')').map(|(_, rest)| rest) else {
            continue;
        };
        let ppid = rest
            .split_whitespace()
            .nth(1)
            .and_then(|p| p.parse::<u32>().ok());
        if ppid == Some(parent) {
            found.push(pid);
        }
    }
    found
}
