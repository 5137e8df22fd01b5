//! uWSGI signals in the forked process model (`--master`, workers, mules, a farm, a
//! spooler), through the real binary and the embedded Python module: which processes
//! run a handler, for every target, whether the signal is raised by `uwsgi.signal(n)`
//! in a worker, by a modifier1 110 packet, by a timer or by a file monitor added after
//! the fork.
//!
//! The app (tests/apps/signals.py) records every delivery as a file
//! `<signum>-<pid>-<ns>` in a temporary directory; the tests compare the pids with the
//! ones the stats server reports.

#![cfg(feature = "python")]
#![allow(clippy::unwrap_used)]

mod common;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use common::binary::Instance;
use common::get_body as request;

/// A fresh directory for one test's records, removed on drop.
struct OutDir(PathBuf);

impl Drop for OutDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn out_dir(test: &str) -> OutDir {
    let dir = std::env::temp_dir().join(format!("uwsgi-rs-signals-{test}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(dir.join("records")).unwrap();
    std::fs::create_dir_all(dir.join("spool")).unwrap();
    OutDir(dir)
}

/// The processes that ran signal `num`: (pid, registrant), one entry per delivery.
fn deliveries(dir: &Path, num: u8) -> Vec<(u64, String)> {
    let prefix = format!("{num}-");
    let mut found: Vec<(u64, String)> = std::fs::read_dir(dir)
        .unwrap()
        .flatten()
        .filter_map(|e| {
            let name = e.file_name().to_string_lossy().into_owned();
            if !name.starts_with(&prefix) || name.ends_with(".tmp") {
                return None;
            }
            let pid = name.split('-').nth(1)?.parse().ok()?;
            Some((pid, std::fs::read_to_string(e.path()).ok()?))
        })
        .collect();
    found.sort();
    found
}

fn record(dir: &Path, name: &str) -> Option<String> {
    std::fs::read_to_string(dir.join(name)).ok()
}

/// The pids of the instance's processes, by role.
struct Pids {
    workers: Vec<u64>,
    mules: Vec<u64>,
    spooler: u64,
}

fn pids(instance: &Instance) -> Pids {
    let doc = instance.stats();
    let list = |key: &str| -> Vec<u64> {
        doc[key]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| p["pid"].as_u64().unwrap())
            .collect()
    };
    Pids {
        workers: list("workers"),
        mules: list("mules"),
        spooler: list("spoolers")[0],
    }
}

fn start(dir: &OutDir, watched: Option<&Path>) -> Instance {
    let file = format!("{}/tests/apps/signals.py", env!("CARGO_MANIFEST_DIR"));
    let spool = dir.0.join("spool").display().to_string();
    let args = [
        "--master",
        "--processes",
        "3",
        "--mules",
        "2",
        "--farm",
        "pair:2",
        "--spooler",
        spool.as_str(),
        "--socket",
        "127.0.0.1:0",
        "--stats",
        "127.0.0.1:0",
        "--wsgi-file",
        file.as_str(),
    ];
    let records = dir.0.join("records");
    let mut env = vec![("SIGNAL_OUT", records.as_os_str())];
    if let Some(watched) = watched {
        env.push(("SIGNAL_WATCHED", watched.as_os_str()));
    }
    let instance = Instance::start_with_env(&args, &env);
    // Every child ran its post-fork hook: 3 workers, 2 mules, the spooler.
    let started = Instant::now();
    loop {
        let hooks = std::fs::read_dir(&records)
            .unwrap()
            .flatten()
            .filter(|e| e.file_name().to_string_lossy().starts_with("hook-"))
            .filter(|e| !e.file_name().to_string_lossy().ends_with(".tmp"))
            .count();
        if hooks >= 6 {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(15),
            "the children did not start; log:\n{}",
            instance.log().join("\n")
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    instance
}

/// Waits until signal `num` was delivered `n` times, then a little longer to catch
/// extra deliveries; returns the pids that ran it, sorted.
fn delivered(instance: &Instance, dir: &Path, num: u8, n: usize) -> Vec<u64> {
    let started = Instant::now();
    while deliveries(dir, num).len() < n {
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "signal {num}: {} of {n} deliveries; log:\n{}",
            deliveries(dir, num).len(),
            instance.log().join("\n")
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    std::thread::sleep(Duration::from_millis(300));
    let mut pids: Vec<u64> = deliveries(dir, num).into_iter().map(|(p, _)| p).collect();
    pids.sort_unstable();
    pids
}

fn sorted(mut pids: Vec<u64>) -> Vec<u64> {
    pids.sort_unstable();
    pids
}

#[test]
fn signals_reach_exactly_their_targets() {
    let dir = out_dir("targets");
    let records = dir.0.join("records");
    let instance = start(&dir, None);
    let pids = pids(&instance);
    assert_eq!(pids.workers.len(), 3);
    assert_eq!(pids.mules.len(), 2);

    // Registered at import time, in the master (worker 0); raised in a worker.
    let raise = |num: u8| {
        let reply = request(&instance.addr, &format!("/raise?num={num}"));
        assert!(reply.starts_with("None "), "{reply}");
    };
    raise(20);
    assert_eq!(delivered(&instance, &records, 20, 3), pids.workers);
    raise(28);
    assert_eq!(delivered(&instance, &records, 28, 3), pids.workers);
    raise(21);
    let one = delivered(&instance, &records, 21, 1);
    assert_eq!(one.len(), 1);
    assert!(pids.workers.contains(&one[0]));
    raise(22);
    assert_eq!(delivered(&instance, &records, 22, 1), [pids.workers[1]]);
    raise(23);
    assert_eq!(
        delivered(&instance, &records, 23, 2),
        sorted(pids.mules.clone())
    );
    raise(25);
    assert_eq!(delivered(&instance, &records, 25, 1), [pids.mules[0]]);
    raise(26);
    assert_eq!(delivered(&instance, &records, 26, 1), [pids.mules[1]]);
    raise(27);
    assert_eq!(delivered(&instance, &records, 27, 1), [pids.mules[1]]);
    raise(24);
    assert_eq!(delivered(&instance, &records, 24, 1), [pids.spooler]);
    for num in [20, 21, 22, 23, 24, 25, 26, 27, 28] {
        assert!(
            deliveries(&records, num).iter().all(|(_, r)| r == "master"),
            "{num}"
        );
    }

    // Registered after the fork by every worker: the master has no registration, so
    // the signal goes to one worker, which runs its own handler (uWSGI 2.0).
    raise(30);
    assert_eq!(delivered(&instance, &records, 30, 1).len(), 1);
    let ran = deliveries(&records, 30);
    let (pid, who) = &ran[0];
    let index = pids.workers.iter().position(|p| p == pid).unwrap();
    assert_eq!(who, &format!("worker{}", index + 1));

    // The same signals over the network (modifier1 110) route the same way.
    let packet = common::framed(uwsgi_protocol::Modifier1::Signal, 20, b"");
    assert_eq!(common::exchange(&instance.addr, &packet), [0xff, 0, 0, 1]);
    assert_eq!(
        delivered(&instance, &records, 20, 6),
        sorted([pids.workers.clone(), pids.workers.clone()].concat())
    );
    let packet = common::framed(uwsgi_protocol::Modifier1::Signal, 22, b"");
    assert_eq!(common::exchange(&instance.addr, &packet), [0xff, 0, 0, 1]);
    assert_eq!(
        delivered(&instance, &records, 22, 2),
        [pids.workers[1], pids.workers[1]]
    );

    // Unregistered: acknowledged, then logged by the worker that got it.
    raise(99);
    instance.wait_for_count(
        "error managing signal 99 on worker",
        1,
        Duration::from_secs(10),
    );

    // Who registered what, as uWSGI logs it; mules and the spooler may not register.
    assert_eq!(
        instance.count("signum 20 registered (wid: 0 modifier1: 0 target: workers)"),
        1
    );
    for worker in 1..=3 {
        assert_eq!(
            instance.count(&format!("signum 30 registered (wid: {worker} ")),
            1,
            "{worker}"
        );
    }
    let hooks: BTreeSet<String> = std::fs::read_dir(&records)
        .unwrap()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().starts_with("hook-"))
        .map(|e| std::fs::read_to_string(e.path()).unwrap())
        .collect();
    let expected: BTreeSet<String> = [
        "worker1 ok",
        "worker2 ok",
        "worker3 ok",
        "mule1 ValueError: unable to register signal",
        "mule2 ValueError: unable to register signal",
        "spooler ValueError: unable to register signal",
    ]
    .iter()
    .map(|s| (*s).to_owned())
    .collect();
    assert_eq!(hooks, expected);
    assert_eq!(
        record(&records, "registered-import").as_deref(),
        Some("True")
    );
    assert_eq!(request(&instance.addr, "/registered?num=30"), "True");
    assert_eq!(request(&instance.addr, "/registered?num=98"), "None");
}

#[test]
fn timers_and_file_monitors_added_after_the_fork_fire() {
    let dir = out_dir("timers");
    let records = dir.0.join("records");
    let watched = dir.0.join("watched");
    std::fs::write(&watched, "0").unwrap();
    let instance = start(&dir, Some(&watched));
    let pids = pids(&instance);

    // Worker 1 added a 1-second timer for 33 (target "workers", registered at import):
    // the master runs it and every worker gets the signal, more than once.
    let started = Instant::now();
    loop {
        let ran: BTreeSet<u64> = deliveries(&records, 33)
            .into_iter()
            .map(|(p, _)| p)
            .collect();
        if ran.len() == 3 && deliveries(&records, 33).len() >= 6 {
            assert_eq!(ran, pids.workers.iter().copied().collect());
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "timer deliveries: {:?}; log:\n{}",
            deliveries(&records, 33),
            instance.log().join("\n")
        );
        std::thread::sleep(Duration::from_millis(50));
    }

    // Worker 2 added a file monitor for 34 (target worker1): touching the file raises it.
    assert!(deliveries(&records, 34).is_empty());
    let started = Instant::now();
    let mut generation = 0;
    while deliveries(&records, 34).is_empty() {
        generation += 1;
        std::fs::write(&watched, generation.to_string()).unwrap();
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "no file monitor delivery; log:\n{}",
            instance.log().join("\n")
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    assert_eq!(deliveries(&records, 34)[0].0, pids.workers[0]);
}

#[test]
fn without_a_master_file_monitors_and_timers_fire_too() {
    let dir = out_dir("single");
    let records = dir.0.join("records");
    let watched = dir.0.join("watched");
    std::fs::write(&watched, "0").unwrap();
    let app = dir.0.join("app.py");
    std::fs::write(
        &app,
        "import os, time, uwsgi\n\
         def ran(num):\n\
         \x20   path = os.path.join(os.environ['SIGNAL_OUT'], '%d-%d-%d' % (num, os.getpid(), time.monotonic_ns()))\n\
         \x20   open(path, 'w').write('single')\n\
         uwsgi.register_signal(40, 'worker', ran)\n\
         uwsgi.register_signal(41, 'worker', ran)\n\
         uwsgi.add_file_monitor(40, os.environ['SIGNAL_WATCHED'])\n\
         uwsgi.add_timer(41, 1)\n\
         def application(environ, start_response):\n\
         \x20   start_response('200 OK', [])\n\
         \x20   return [b'ok']\n",
    )
    .unwrap();
    let app = app.display().to_string();
    let instance = Instance::start_with_env(
        &["--socket", "127.0.0.1:0", "--wsgi-file", &app],
        &[
            ("SIGNAL_OUT", records.as_os_str()),
            ("SIGNAL_WATCHED", watched.as_os_str()),
        ],
    );
    // The timer: twice within a few seconds, in the server's own process.
    let started = Instant::now();
    while deliveries(&records, 41).len() < 2 {
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "timer deliveries: {:?}; log:\n{}",
            deliveries(&records, 41),
            instance.log().join("\n")
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    // Nothing touched the file yet.
    assert!(deliveries(&records, 40).is_empty());
    let mut generation = 0;
    while deliveries(&records, 40).is_empty() {
        generation += 1;
        std::fs::write(&watched, generation.to_string()).unwrap();
        assert!(
            started.elapsed() < Duration::from_secs(15),
            "no file monitor delivery; log:\n{}",
            instance.log().join("\n")
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    let pid = u64::from(instance.pid());
    assert!(deliveries(&records, 40).iter().all(|(p, _)| *p == pid));
    assert!(deliveries(&records, 41).iter().all(|(p, _)| *p == pid));
}
