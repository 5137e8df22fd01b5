//! The process model through the real binary: a master forking worker and spooler
//! processes, respawn, reload, max-requests, harakiri, stop, stats.
//!
//! Every test starts its own `uwsgi-server` on 127.0.0.1:0 (or a unix socket) and the
//! [`Instance`] guard kills and reaps the master and every child when it is dropped,
//! whatever the outcome, so no process outlives a test.

#![allow(clippy::unwrap_used)]

mod common;

use std::collections::BTreeSet;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use uwsgi_protocol::packet::VarsMessage;
use uwsgi_protocol::{Packet, VarsBuilder};

use common::binary::{Instance, children_of, signal_pid};

fn alive(pid: u64) -> bool {
    Path::new(&format!("/proc/{pid}")).exists()
        && !std::fs::read_to_string(format!("/proc/{pid}/stat"))
            .unwrap_or_default()
            .rsplit_once(')')
            .is_some_and(|(_, rest)| rest.trim_start().starts_with('Z'))
}

fn get(path: &str) -> Vec<u8> {
    common::request_bytes(
        &[
            ("REQUEST_METHOD", "GET"),
            ("PATH_INFO", path),
            ("REQUEST_URI", path),
            ("SERVER_PROTOCOL", "HTTP/1.1"),
        ],
        b"",
    )
}

/// One request; the whole reply, or why it failed.
/// Starts a request for `path` on a thread and gives it 300 ms to reach a worker: the
/// request in hand when a test then signals the master.
fn in_flight(instance: &Instance, path: &str) -> std::thread::JoinHandle<Result<Vec<u8>, String>> {
    let (addr, request) = (instance.addr.clone(), get(path));
    let handle = std::thread::spawn(move || try_request(&addr, &request));
    std::thread::sleep(Duration::from_millis(300));
    handle
}

fn try_request(addr: &str, request: &[u8]) -> Result<Vec<u8>, String> {
    let mut stream = TcpStream::connect(addr).map_err(|e| format!("connect: {e}"))?;
    stream
        .set_read_timeout(Some(Duration::from_secs(20)))
        .map_err(|e| e.to_string())?;
    stream
        .write_all(request)
        .map_err(|e| format!("write: {e}"))?;
    let mut reply = Vec::new();
    stream
        .read_to_end(&mut reply)
        .map_err(|e| format!("read: {e}"))?;
    if reply.starts_with(b"HTTP/1.1 200 OK") {
        Ok(reply)
    } else {
        Err(format!(
            "unexpected reply: {:?}",
            String::from_utf8_lossy(&reply[..reply.len().min(60)])
        ))
    }
}

/// Clients requesting in a loop until stopped.
struct Load {
    stop: Arc<AtomicBool>,
    ok: Arc<AtomicU64>,
    failures: Arc<Mutex<Vec<String>>>,
    threads: Vec<JoinHandle<()>>,
}

impl Load {
    fn start(addr: &str, clients: usize) -> Load {
        let stop = Arc::new(AtomicBool::new(false));
        let ok = Arc::new(AtomicU64::new(0));
        let failures = Arc::new(Mutex::new(Vec::new()));
        let threads = (0..clients)
            .map(|_| {
                let (addr, stop, ok, failures) = (
                    addr.to_owned(),
                    Arc::clone(&stop),
                    Arc::clone(&ok),
                    Arc::clone(&failures),
                );
                std::thread::spawn(move || {
                    let request = get("/load");
                    while !stop.load(Ordering::Relaxed) {
                        match try_request(&addr, &request) {
                            Ok(_) => {
                                ok.fetch_add(1, Ordering::Relaxed);
                            }
                            Err(err) => failures.lock().unwrap().push(err),
                        }
                    }
                })
            })
            .collect();
        Load {
            stop,
            ok,
            failures,
            threads,
        }
    }

    fn served(&self) -> u64 {
        self.ok.load(Ordering::Relaxed)
    }

    /// Waits until `more` further requests succeeded.
    fn wait_served(&self, more: u64, limit: Duration) {
        let target = self.served() + more;
        let started = Instant::now();
        while self.served() < target {
            assert!(
                started.elapsed() < limit,
                "load stalled at {}",
                self.served()
            );
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    fn finish(self) -> (u64, Vec<String>) {
        self.stop.store(true, Ordering::Relaxed);
        for thread in self.threads {
            thread.join().unwrap();
        }
        let failures = self.failures.lock().unwrap().clone();
        (self.ok.load(Ordering::Relaxed), failures)
    }
}

#[test]
fn workers_are_processes_and_stats_has_uwsgi_shape() {
    let instance = Instance::start(&[
        "--master",
        "--processes",
        "3",
        "--threads",
        "2",
        "--socket",
        "127.0.0.1:0",
        "--stats",
        "127.0.0.1:0",
    ]);
    instance.wait_for_count("spawned uWSGI worker", 3, Duration::from_secs(10));
    for _ in 0..30 {
        try_request(&instance.addr, &get("/")).unwrap();
    }
    let doc = instance.stats();
    assert_eq!(doc["pid"].as_u64().unwrap(), u64::from(instance.pid()));
    let workers = doc["workers"].as_array().unwrap();
    assert_eq!(workers.len(), 3);
    let pids: BTreeSet<u64> = workers.iter().map(|w| w["pid"].as_u64().unwrap()).collect();
    assert_eq!(pids.len(), 3, "three distinct worker pids");
    let children: BTreeSet<u64> = children_of(instance.pid())
        .into_iter()
        .map(u64::from)
        .collect();
    assert_eq!(pids, children, "the workers are the master's children");
    assert!(!pids.contains(&u64::from(instance.pid())));
    for (index, worker) in workers.iter().enumerate() {
        assert_eq!(worker["id"].as_u64().unwrap(), index as u64 + 1);
        assert_eq!(worker["status"], "idle");
        assert_eq!(worker["accepting"], 1);
        assert_eq!(worker["respawn_count"], 1);
        assert_eq!(worker["cores"].as_array().unwrap().len(), 2);
        assert!(worker["rss"].as_u64().unwrap() > 0);
        for key in [
            "requests",
            "delta_requests",
            "exceptions",
            "harakiri_count",
            "signals",
            "running_time",
            "avg_rt",
            "tx",
            "last_spawn",
            "vsz",
            "apps",
        ] {
            assert!(worker.get(key).is_some(), "worker field {key}");
        }
    }
    let app_requests: u64 = workers
        .iter()
        .map(|w| w["apps"][0]["requests"].as_u64().unwrap())
        .sum();
    assert_eq!(app_requests, 30);
    assert_eq!(doc["total_requests"], 30);
    let served: u64 = workers
        .iter()
        .map(|w| w["requests"].as_u64().unwrap())
        .sum();
    assert!(served >= 30);
    for key in [
        "version",
        "listen_queue",
        "signal_queue",
        "load",
        "cwd",
        "locks",
        "sockets",
        "caches",
        "spoolers",
    ] {
        assert!(doc.get(key).is_some(), "missing {key}");
    }
    assert_eq!(doc["sockets"][0]["name"], instance.addr.as_str());
    // The request log line carries the worker's pid and the shared request counter.
    let log = instance.log();
    let lines: Vec<&String> = log.iter().filter(|l| l.starts_with("[pid: ")).collect();
    assert_eq!(lines.len(), 30);
    for line in &lines {
        let pid: u64 = line["[pid: ".len()..]
            .split('|')
            .next()
            .unwrap()
            .parse()
            .unwrap();
        assert!(pids.contains(&pid), "{line}");
    }
    assert!(
        log.iter()
            .any(|l| l.contains("|req: ") && l.contains("/30]"))
    );
}

#[test]
fn a_worker_killed_under_load_is_respawned_and_only_its_request_fails() {
    let instance = Instance::start(&[
        "--master",
        "--processes",
        "2",
        "--socket",
        "127.0.0.1:0",
        "--stats",
        "127.0.0.1:0",
    ]);
    instance.wait_for_count("spawned uWSGI worker", 2, Duration::from_secs(10));
    let before = instance.worker_pids();
    let load = Load::start(&instance.addr, 4);
    load.wait_served(200, Duration::from_secs(20));
    signal_pid(u32::try_from(before[0]).unwrap(), "KILL");
    instance.wait_for_count("Respawned uWSGI worker 1", 1, Duration::from_secs(10));
    load.wait_served(200, Duration::from_secs(20));
    let (served, failures) = load.finish();
    // One thread per worker: at most the one request it had in hand is lost.
    assert!(failures.len() <= 1, "{failures:?}");
    assert!(served >= 400);
    let log = instance.log().join("\n");
    assert!(
        log.contains(&format!(
            "DAMN ! worker 1 (pid: {}) died, killed by signal 9",
            before[0]
        )),
        "{log}"
    );
    let after = instance.worker_pids();
    assert_ne!(after[0], before[0]);
    assert_eq!(after[1], before[1]);
    assert!(alive(after[0]) && !alive(before[0]));
    assert_eq!(instance.stats()["workers"][0]["respawn_count"], 2);
}

#[test]
fn sighup_reloads_under_load_without_a_failed_request() {
    let instance = Instance::start(&[
        "--master",
        "--processes",
        "2",
        "--threads",
        "2",
        "--socket",
        "127.0.0.1:0",
        "--stats",
        "127.0.0.1:0",
    ]);
    instance.wait_for_count("spawned uWSGI worker", 2, Duration::from_secs(10));
    let before = instance.worker_pids();
    let load = Load::start(&instance.addr, 4);
    load.wait_served(200, Duration::from_secs(20));
    instance.signal("HUP");
    instance.wait_for_count("reloaded (1 reloads)", 1, Duration::from_secs(20));
    instance.wait_for_count("spawned uWSGI worker", 4, Duration::from_secs(10));
    load.wait_served(200, Duration::from_secs(20));
    // A second reload in a row.
    instance.signal("HUP");
    instance.wait_for_count("reloaded (2 reloads)", 1, Duration::from_secs(20));
    instance.wait_for_count("spawned uWSGI worker", 6, Duration::from_secs(10));
    load.wait_served(200, Duration::from_secs(20));
    let (served, failures) = load.finish();
    assert!(
        failures.is_empty(),
        "{} failed: {failures:?}",
        failures.len()
    );
    assert!(served >= 600);
    let after = instance.worker_pids();
    assert!(
        after.iter().all(|pid| !before.contains(pid)),
        "{before:?} {after:?}"
    );
    assert!(before.iter().all(|&pid| !alive(pid)));
    // Same master process, re-executed.
    assert_eq!(
        instance.stats()["pid"].as_u64().unwrap(),
        u64::from(instance.pid())
    );
    assert_eq!(instance.count("binary reloading uWSGI..."), 2);
}

#[test]
fn max_requests_recycles_the_worker() {
    let instance = Instance::start(&[
        "--master",
        "--processes",
        "1",
        "--max-requests",
        "5",
        "--socket",
        "127.0.0.1:0",
        "--stats",
        "127.0.0.1:0",
    ]);
    instance.wait_for_count("spawned uWSGI worker", 1, Duration::from_secs(10));
    let first = instance.worker_pids()[0];
    for _ in 0..12 {
        try_request(&instance.addr, &get("/")).unwrap();
    }
    instance.wait_for_count("Respawned uWSGI worker 1", 2, Duration::from_secs(10));
    assert!(instance.count("The work of process") >= 2);
    assert!(instance.count("worker 1 killed successfully") >= 2);
    let doc = instance.stats();
    assert!(doc["workers"][0]["respawn_count"].as_u64().unwrap() >= 3);
    assert_ne!(doc["workers"][0]["pid"].as_u64().unwrap(), first);
    assert!(doc["workers"][0]["delta_requests"].as_u64().unwrap() < 5);
    // Every request of the 12 was served: 5 + 5 + 2 across three processes.
    assert_eq!(doc["total_requests"], 12);
}

#[test]
fn harakiri_kills_the_stuck_worker_while_the_others_serve() {
    let instance = Instance::start(&[
        "--master",
        "--processes",
        "2",
        "--harakiri",
        "1",
        "--harakiri-verbose",
        "--socket",
        "127.0.0.1:0",
        "--stats",
        "127.0.0.1:0",
    ]);
    instance.wait_for_count("spawned uWSGI worker", 2, Duration::from_secs(10));
    let addr = instance.addr.clone();
    let started = Instant::now();
    let stuck = std::thread::spawn(move || try_request(&addr, &get("/sleep/30000")));
    // The other worker keeps serving meanwhile.
    let mut served = 0;
    while instance.count("HARAKIRI ON WORKER") == 0 {
        try_request(&instance.addr, &get("/")).unwrap();
        served += 1;
        assert!(started.elapsed() < Duration::from_secs(10), "no harakiri");
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(served > 10);
    let outcome = stuck.join().unwrap();
    assert!(outcome.is_err(), "the stuck request was cut off");
    assert!(started.elapsed() < Duration::from_secs(5));
    instance.wait_for("the respawn", Duration::from_secs(10), |lines| {
        lines.iter().any(|l| l.contains("Respawned uWSGI worker"))
    });
    let log = instance.log().join("\n");
    assert!(log.contains("killed by signal 9"), "{log}");
    assert!(log.contains("HARAKIRI: --- uWSGI worker"), "{log}");
    let doc = instance.stats();
    let harakiri: u64 = doc["workers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|w| w["harakiri_count"].as_u64().unwrap())
        .sum();
    assert_eq!(harakiri, 1);
    try_request(&instance.addr, &get("/")).unwrap();
}

#[test]
fn die_on_term_stops_gracefully_and_vacuums() {
    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("app.sock");
    let pidfile = dir.path().join("master.pid");
    let mut instance = Instance::start(&[
        "--master",
        "--die-on-term",
        "--vacuum",
        "--processes",
        "2",
        "--socket",
        socket.to_str().unwrap(),
        "--pidfile",
        pidfile.to_str().unwrap(),
    ]);
    instance.wait_for_count("spawned uWSGI worker", 2, Duration::from_secs(10));
    assert_eq!(
        std::fs::read_to_string(&pidfile).unwrap().trim(),
        instance.pid().to_string()
    );
    let path = socket.clone();
    let slow = std::thread::spawn(move || {
        let mut stream = std::os::unix::net::UnixStream::connect(&path).unwrap();
        stream.write_all(&get("/sleep/1000")).unwrap();
        let mut reply = Vec::new();
        stream.read_to_end(&mut reply).unwrap();
        reply
    });
    std::thread::sleep(Duration::from_millis(300));
    instance.signal("TERM");
    let reply = slow.join().unwrap();
    assert!(
        reply.starts_with(b"HTTP/1.1 200 OK"),
        "the in-flight request finished"
    );
    let status = instance.wait_exit(Duration::from_secs(10));
    assert!(status.success(), "{status}");
    assert!(!socket.exists(), "--vacuum removed the socket");
    assert!(!pidfile.exists(), "--vacuum removed the pidfile");
    assert_eq!(instance.count("goodbye to uWSGI."), 1);
    assert!(children_of(instance.pid()).is_empty());
}

#[test]
fn sigint_stops_at_once() {
    stops_at_once_on("INT");
}

/// uWSGI 2.0 gives SIGQUIT SIGINT's meaning.
#[test]
fn sigquit_stops_at_once() {
    stops_at_once_on("QUIT");
}

/// Under `--die-on-term` SIGQUIT takes SIGTERM's old meaning: a brutal reload.
#[test]
fn sigquit_with_die_on_term_is_a_brutal_reload() {
    let instance = Instance::start(&[
        "--master",
        "--processes",
        "2",
        "--die-on-term",
        "--socket",
        "127.0.0.1:0",
        "--stats",
        "127.0.0.1:0",
    ]);
    instance.wait_for_count("spawned uWSGI worker", 2, Duration::from_secs(10));
    let before = instance.worker_pids();
    instance.signal("QUIT");
    instance.wait_for_count("...brutally killing workers...", 1, Duration::from_secs(5));
    instance.wait_for_count("spawned uWSGI worker", 4, Duration::from_secs(10));
    let after = instance.worker_pids();
    assert!(
        after.iter().all(|pid| !before.contains(pid)),
        "{before:?} {after:?}"
    );
    try_request(&instance.addr, &get("/")).unwrap();
}

/// SIGTERM asks for a graceful stop under `--die-on-term`.
#[test]
fn sigterm_with_die_on_term_stops_gracefully() {
    let mut instance = Instance::start(&[
        "--master",
        "--processes",
        "2",
        "--die-on-term",
        "--socket",
        "127.0.0.1:0",
    ]);
    instance.wait_for_count("spawned uWSGI worker", 2, Duration::from_secs(10));
    let slow = in_flight(&instance, "/sleep/1500");
    instance.signal("TERM");
    let status = instance.wait_exit(Duration::from_secs(10));
    assert!(status.success(), "{status}");
    let reply = slow
        .join()
        .unwrap()
        .expect("the request in hand is finished");
    assert!(reply.starts_with(b"HTTP/1.1 200"), "{reply:?}");
}

/// Sends `signal` to a master serving a slow request: the server exits within seconds,
/// cutting the request, and leaves no worker behind.
fn stops_at_once_on(signal: &str) {
    let mut instance =
        Instance::start(&["--master", "--processes", "2", "--socket", "127.0.0.1:0"]);
    instance.wait_for_count("spawned uWSGI worker", 2, Duration::from_secs(10));
    let workers = children_of(instance.pid());
    assert_eq!(workers.len(), 2);
    let slow = in_flight(&instance, "/sleep/20000");
    let started = Instant::now();
    instance.signal(signal);
    let status = instance.wait_exit(Duration::from_secs(5));
    assert!(status.success(), "{status}");
    assert!(started.elapsed() < Duration::from_secs(3));
    assert!(
        slow.join().unwrap().is_err(),
        "the in-flight request was cut"
    );
    for pid in workers {
        assert!(!alive(u64::from(pid)));
    }
}

fn spool_packet(pairs: &[(&str, &str)]) -> Vec<u8> {
    let vars = VarsBuilder::from_pairs(pairs.iter().copied()).unwrap();
    Packet::Spool(VarsMessage::new(0, vars.as_vars())).to_vec()
}

fn jobs_left(dir: &Path) -> usize {
    std::fs::read_dir(dir)
        .unwrap()
        .flatten()
        .filter(|e| {
            e.file_name()
                .to_string_lossy()
                .starts_with("uwsgi_spoolfile_on_")
        })
        .count()
}

#[test]
fn a_spooler_killed_mid_job_loses_nothing_and_repeats_no_finished_job() {
    let dir = tempfile::tempdir().unwrap();
    let spool: PathBuf = dir.path().join("spool");
    let instance = Instance::start(&[
        "--master",
        "--processes",
        "1",
        "--spooler",
        spool.to_str().unwrap(),
        "--spooler-processes",
        "2",
        "--socket",
        "127.0.0.1:0",
        "--stats",
        "127.0.0.1:0",
    ]);
    instance.wait_for_count("spawned the uWSGI spooler", 2, Duration::from_secs(10));
    const JOBS: usize = 24;
    for n in 0..JOBS {
        let reply = common::exchange(
            &instance.addr,
            &spool_packet(&[("n", &n.to_string()), ("sleep_ms", "150")]),
        );
        assert_eq!(reply, [0xff, 0, 0, 1]);
    }
    // Kill one spooler while it runs a job.
    instance.wait_for_count("spooler: job", 4, Duration::from_secs(20));
    let spooler_pid = instance.stats()["spoolers"][0]["pid"].as_u64().unwrap();
    signal_pid(u32::try_from(spooler_pid).unwrap(), "KILL");
    instance.wait_for_count("OOOPS the spooler", 1, Duration::from_secs(10));
    let started = Instant::now();
    while jobs_left(&spool) > 0 {
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "{} jobs left; log:\n{}",
            jobs_left(&spool),
            instance.log().join("\n")
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let log = instance.log();
    let mut runs = vec![0usize; JOBS];
    for line in log.iter().filter(|l| l.starts_with("spooler: job ")) {
        let n: usize = line
            .split("(n=")
            .nth(1)
            .and_then(|rest| rest.split(' ').next())
            .unwrap()
            .parse()
            .unwrap();
        runs[n] += 1;
    }
    assert!(
        runs.iter().all(|&r| r == 1),
        "every job finished exactly once: {runs:?}"
    );
    let doc = instance.stats();
    assert!(doc["spoolers"][0]["respawns"].as_u64().unwrap() >= 3);
    assert_eq!(doc["spoolers"][0]["tasks"], 0);
}

#[test]
fn signals_raised_in_a_worker_reach_their_target_processes() {
    let dir = tempfile::tempdir().unwrap();
    let instance = Instance::start(&[
        "--master",
        "--processes",
        "3",
        "--spooler",
        dir.path().join("spool").to_str().unwrap(),
        "--socket",
        "127.0.0.1:0",
        "--stats",
        "127.0.0.1:0",
    ]);
    instance.wait_for_count("spawned uWSGI worker", 3, Duration::from_secs(10));
    instance.wait_for_count("spawned the uWSGI spooler", 1, Duration::from_secs(10));
    let workers: BTreeSet<u64> = instance.worker_pids().into_iter().collect();
    let spooler = instance.stats()["spoolers"][0]["pid"].as_u64().unwrap();
    // Raised over the network, so by whichever worker takes the connection; that
    // worker hands it to the master, which routes it.
    assert_eq!(
        common::exchange(&instance.addr, &[110, 0, 0, 127]),
        [255, 0, 0, 1]
    );
    instance.wait_for_count("hello: signal 127", 3, Duration::from_secs(10));
    assert_eq!(
        common::exchange(&instance.addr, &[110, 0, 0, 126]),
        [255, 0, 0, 1]
    );
    instance.wait_for_count("hello: signal 126", 1, Duration::from_secs(10));
    assert_eq!(
        common::exchange(&instance.addr, &[110, 0, 0, 125]),
        [255, 0, 0, 1]
    );
    instance.wait_for_count("hello: signal 125", 1, Duration::from_secs(10));
    std::thread::sleep(Duration::from_millis(300));
    let pids_for = |signum: u8| -> Vec<u64> {
        instance
            .log()
            .iter()
            .filter_map(|l| l.strip_prefix(&format!("hello: signal {signum} in process ")))
            .map(|pid| pid.trim().parse().unwrap())
            .collect()
    };
    let all: BTreeSet<u64> = pids_for(127).into_iter().collect();
    assert_eq!(all, workers, "every worker ran the 'workers' signal once");
    assert_eq!(pids_for(127).len(), 3);
    let one = pids_for(126);
    assert_eq!(one.len(), 1);
    assert!(workers.contains(&one[0]));
    assert_eq!(pids_for(125), vec![spooler]);
    let delivered: u64 = instance.stats()["workers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|w| w["signals"].as_u64().unwrap())
        .sum();
    assert_eq!(delivered, 4);
}

#[test]
fn reload_mercy_kills_a_worker_that_will_not_finish() {
    let instance = Instance::start(&[
        "--master",
        "--processes",
        "1",
        "--reload-mercy",
        "1",
        "--socket",
        "127.0.0.1:0",
        "--stats",
        "127.0.0.1:0",
    ]);
    instance.wait_for_count("spawned uWSGI worker", 1, Duration::from_secs(10));
    let slow = in_flight(&instance, "/sleep/20000");
    let started = Instant::now();
    instance.signal("HUP");
    instance.wait_for_count("NO MERCY", 1, Duration::from_secs(5));
    instance.wait_for_count("reloaded (1 reloads)", 1, Duration::from_secs(10));
    assert!(started.elapsed() < Duration::from_secs(5));
    assert!(
        slow.join().unwrap().is_err(),
        "the request outlived the mercy"
    );
    try_request(&instance.addr, &get("/")).unwrap();
}

#[test]
fn worker_reload_mercy_ends_a_recycling_worker_stuck_on_a_request() {
    let instance = Instance::start(&[
        "--master",
        "--processes",
        "1",
        "--threads",
        "2",
        "--max-requests",
        "1",
        "--worker-reload-mercy",
        "1",
        "--socket",
        "127.0.0.1:0",
        "--stats",
        "127.0.0.1:0",
    ]);
    instance.wait_for_count("spawned uWSGI worker", 1, Duration::from_secs(10));
    let slow = in_flight(&instance, "/sleep/20000");
    // The second thread serves this one and reaches --max-requests: the worker stops
    // accepting, but its other thread is stuck.
    try_request(&instance.addr, &get("/")).unwrap();
    instance.wait_for_count("NO MERCY", 1, Duration::from_secs(6));
    instance.wait_for_count("Respawned uWSGI worker 1", 1, Duration::from_secs(5));
    assert!(slow.join().unwrap().is_err());
    try_request(&instance.addr, &get("/")).unwrap();
}

#[test]
fn logto_collects_every_process_and_sigusr1_reports_stats() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("server.log");
    let instance = Instance::start(&[
        "--master",
        "--processes",
        "2",
        "--logto",
        log.to_str().unwrap(),
        "--socket",
        "127.0.0.1:0",
        "--stats",
        "127.0.0.1:0",
    ]);
    let started = Instant::now();
    while !std::fs::read_to_string(&log)
        .unwrap_or_default()
        .contains("spawned uWSGI worker 2")
    {
        assert!(started.elapsed() < Duration::from_secs(10));
        std::thread::sleep(Duration::from_millis(20));
    }
    let pids: BTreeSet<u64> = instance.worker_pids().into_iter().collect();
    for _ in 0..40 {
        try_request(&instance.addr, &get("/logged")).unwrap();
    }
    instance.signal("USR2");
    instance.signal("USR1");
    let started = Instant::now();
    loop {
        let text = std::fs::read_to_string(&log).unwrap();
        // USR2 and USR1 each give a report (USR2 must not kill the master).
        if text
            .matches("*** Stats: 40 requests, 2 workers ***")
            .count()
            == 2
            && text.matches("requests: ").count() == 4
        {
            let lines: Vec<&str> = text.lines().filter(|l| l.starts_with("[pid: ")).collect();
            assert_eq!(lines.len(), 40, "{text}");
            let seen: BTreeSet<u64> = lines
                .iter()
                .map(|l| {
                    l["[pid: ".len()..]
                        .split('|')
                        .next()
                        .unwrap()
                        .parse()
                        .unwrap()
                })
                .collect();
            assert!(seen.is_subset(&pids));
            assert!(lines.iter().all(|l| l.contains("GET /logged => generated")));
            break;
        }
        assert!(started.elapsed() < Duration::from_secs(10), "{text}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn a_sighup_sent_during_the_reload_exec_is_not_lost() {
    let instance = Instance::start(&["--master", "--processes", "1", "--socket", "127.0.0.1:0"]);
    instance.wait_for_count("spawned uWSGI worker", 1, Duration::from_secs(10));
    instance.signal("HUP");
    instance.wait_for_count("binary reloading uWSGI...", 1, Duration::from_secs(10));
    // Between the old image's exec and the new one's handlers: blocked, then delivered.
    instance.signal("HUP");
    instance.wait_for_count("reloaded (2 reloads)", 1, Duration::from_secs(10));
    instance.wait_for(
        "a worker of the third image",
        Duration::from_secs(10),
        |lines| {
            let reloaded = lines
                .iter()
                .position(|l| l.contains("reloaded (2 reloads)"));
            let spawned = lines
                .iter()
                .rposition(|l| l.contains("spawned uWSGI worker"));
            matches!((reloaded, spawned), (Some(r), Some(s)) if s > r)
        },
    );
    try_request(&instance.addr, &get("/")).unwrap();
}

#[test]
fn sigterm_without_die_on_term_is_a_brutal_reload() {
    let dir = tempfile::tempdir().unwrap();
    let pidfile2 = dir.path().join("second.pid");
    let instance = Instance::start(&[
        "--master",
        "--processes",
        "2",
        "--pidfile2",
        pidfile2.to_str().unwrap(),
        "--warning-message",
        "from every worker",
        "--socket",
        "127.0.0.1:0",
        "--stats",
        "127.0.0.1:0",
    ]);
    instance.wait_for_count("spawned uWSGI worker", 2, Duration::from_secs(10));
    assert_eq!(
        std::fs::read_to_string(&pidfile2).unwrap().trim(),
        instance.pid().to_string()
    );
    let before = instance.worker_pids();
    let slow = in_flight(&instance, "/sleep/20000");
    instance.signal("TERM");
    instance.wait_for_count("...brutally killing workers...", 1, Duration::from_secs(5));
    instance.wait_for_count("reloaded (1 reloads)", 1, Duration::from_secs(10));
    instance.wait_for_count("spawned uWSGI worker", 4, Duration::from_secs(10));
    assert!(
        slow.join().unwrap().is_err(),
        "a brutal reload cuts requests in hand"
    );
    let after = instance.worker_pids();
    assert!(after.iter().all(|pid| !before.contains(pid)));
    // The master kept its pid; its pidfile was not rewritten on the reload.
    assert_eq!(
        instance.stats()["pid"].as_u64().unwrap(),
        u64::from(instance.pid())
    );
    // The ping warning lives in shared memory: every worker answers with it.
    for _ in 0..10 {
        let reply = common::exchange(&instance.addr, &[100, 0, 0, 0]);
        assert_eq!(&reply[..4], &[100, 17, 0, 1]);
        assert_eq!(&reply[4..], b"from every worker");
    }
}

fn unix_request(path: &Path, request: &[u8]) -> Result<Vec<u8>, String> {
    let mut stream =
        std::os::unix::net::UnixStream::connect(path).map_err(|e| format!("connect: {e}"))?;
    stream
        .set_read_timeout(Some(Duration::from_secs(20)))
        .map_err(|e| e.to_string())?;
    stream
        .write_all(request)
        .map_err(|e| format!("write: {e}"))?;
    let mut reply = Vec::new();
    stream
        .read_to_end(&mut reply)
        .map_err(|e| format!("read: {e}"))?;
    if reply.starts_with(b"HTTP/1.1 200 OK") {
        Ok(reply)
    } else {
        Err(format!("unexpected reply of {} bytes", reply.len()))
    }
}

#[test]
fn threads_of_a_worker_serve_concurrently_and_a_unix_socket_survives_reloads() {
    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("app.sock");
    let instance = Instance::start(&[
        "--master",
        "--vacuum",
        "--processes",
        "1",
        "--threads",
        "3",
        "--socket",
        socket.to_str().unwrap(),
        "--stats",
        "127.0.0.1:0",
    ]);
    instance.wait_for_count("spawned uWSGI worker 1 (pid:", 1, Duration::from_secs(10));
    let started = Instant::now();
    let slow: Vec<_> = (0..3)
        .map(|_| {
            let socket = socket.clone();
            std::thread::spawn(move || unix_request(&socket, &get("/sleep/700")))
        })
        .collect();
    std::thread::sleep(Duration::from_millis(300));
    let doc = instance.stats();
    let busy_cores = doc["workers"][0]["cores"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["in_request"] == 1)
        .count();
    assert_eq!(busy_cores, 3, "{doc}");
    assert_eq!(doc["workers"][0]["status"], "busy");
    for request in slow {
        request.join().unwrap().unwrap();
    }
    assert!(
        started.elapsed() < Duration::from_millis(1900),
        "three 700 ms requests ran side by side: {:?}",
        started.elapsed()
    );
    // A reload keeps the unix socket (same file, same listening socket).
    let inode = |p: &Path| std::os::unix::fs::MetadataExt::ino(&std::fs::metadata(p).unwrap());
    let before = inode(&socket);
    instance.signal("HUP");
    instance.wait_for_count("reloaded (1 reloads)", 1, Duration::from_secs(10));
    unix_request(&socket, &get("/")).unwrap();
    assert_eq!(inode(&socket), before);
}

/// One HTTP/1.1 request with `Connection: close`; the whole response.
fn http_get(addr: &str, path: &str) -> Result<String, String> {
    let mut stream = TcpStream::connect(addr).map_err(|e| e.to_string())?;
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .map_err(|e| e.to_string())?;
    stream
        .write_all(
            format!("GET {path} HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n").as_bytes(),
        )
        .map_err(|e| e.to_string())?;
    let mut response = String::new();
    stream
        .read_to_string(&mut response)
        .map_err(|e| e.to_string())?;
    Ok(response)
}

#[test]
fn forked_workers_serve_the_http_socket_across_a_reload() {
    let instance = Instance::start(&[
        "--master",
        "--processes",
        "2",
        "--http-socket",
        "127.0.0.1:0",
        "--stats",
        "127.0.0.1:0",
    ]);
    instance.wait_for_count("spawned uWSGI worker", 2, Duration::from_secs(10));
    let addr = instance.addr.clone();
    for _ in 0..20 {
        let response = http_get(&addr, "/before").unwrap();
        assert!(response.starts_with("HTTP/1.1 200"), "{response}");
    }
    let served: u64 = instance.stats()["workers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|w| w["requests"].as_u64().unwrap())
        .sum();
    assert_eq!(
        served, 20,
        "every HTTP request counted once on the scoreboard"
    );
    instance.signal("HUP");
    instance.wait_for_count("reloaded (1 reloads)", 1, Duration::from_secs(20));
    instance.wait_for_count("spawned uWSGI worker", 4, Duration::from_secs(10));
    // The same listening socket, inherited across the re-exec.
    let response = http_get(&addr, "/after").unwrap();
    assert!(response.starts_with("HTTP/1.1 200"), "{response}");
}
