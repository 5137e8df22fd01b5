//! Mules and farms through the real binary: a master forking mules after its workers,
//! messages from the workers (`uwsgi.mule_msg`, `farm_msg`) read by `mule_msg_hook` or
//! by a mule script with `mule_get_msg`, uWSGI signals to mules, respawn, stats.
//!
//! The Python apps (tests/apps/mules.py, tests/apps/mule_script.py) record what every
//! mule receives as one file per message in a temporary directory. The [`Instance`]
//! guard kills and reaps the master and every child on drop.

#![allow(clippy::unwrap_used)]

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use common::binary::{BIN, Instance, signal_pid};
use common::get_body as request;

/// Starts the binary with `MULE_OUT` (where the test apps record what they saw).
fn start_recording(args: &[&str], out: &Path) -> Instance {
    Instance::start_with_env(args, &[("MULE_OUT", out.as_os_str())])
}

fn alive(pid: u64) -> bool {
    Path::new(&format!("/proc/{pid}")).exists()
        && !std::fs::read_to_string(format!("/proc/{pid}/stat"))
            .unwrap_or_default()
            .rsplit_once(')')
            .is_some_and(|(_, rest)| rest.trim_start().starts_with('Z'))
}

fn app(name: &str) -> String {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/apps")
        .join(name)
        .display()
        .to_string()
}

/// A fresh directory for the records of one test, removed on drop.
struct OutDir(PathBuf);

impl std::ops::Deref for OutDir {
    type Target = Path;
    fn deref(&self) -> &Path {
        &self.0
    }
}

impl Drop for OutDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn out_dir(test: &str) -> OutDir {
    let dir = std::env::temp_dir().join(format!("uwsgi-rs-mules-{test}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    OutDir(dir)
}

/// The contents of the records whose name starts with `prefix`, sorted.
fn records(dir: &Path, prefix: &str) -> Vec<String> {
    let mut found: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .flatten()
        .filter(|e| {
            let name = e.file_name().to_string_lossy().into_owned();
            name.starts_with(prefix) && !name.ends_with(".tmp")
        })
        .map(|e| String::from_utf8_lossy(&std::fs::read(e.path()).unwrap()).into_owned())
        .collect();
    found.sort();
    found
}

/// Waits until `n` records start with `prefix`; panics with the log after 10 s.
fn wait_records(instance: &Instance, dir: &Path, prefix: &str, n: usize) -> Vec<String> {
    let started = Instant::now();
    loop {
        let found = records(dir, prefix);
        if found.len() >= n {
            return found;
        }
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "timed out waiting for {n} {prefix} records (have {found:?}); log:\n{}",
            instance.log().join("\n")
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn start(dir: &Path, extra: &[&str]) -> Instance {
    let file = app("mules.py");
    let mut args = vec![
        "--master",
        "--processes",
        "2",
        "--socket",
        "127.0.0.1:0",
        "--stats",
        "127.0.0.1:0",
        "--wsgi-file",
        file.as_str(),
    ];
    args.extend_from_slice(extra);
    let instance = start_recording(&args, dir);
    let mules = args
        .iter()
        .filter(|a| a.starts_with("--mule"))
        .count()
        .max(1);
    instance.wait_for_count("spawned uWSGI mule", mules, Duration::from_secs(10));
    instance
}

#[test]
fn a_worker_message_reaches_the_mule_hook() {
    let dir = out_dir("hook");
    let instance = start(&dir, &["--mule", "--mule"]);
    assert_eq!(request(&instance.addr, "/send?target=1&msg=hello"), "True");
    assert_eq!(request(&instance.addr, "/send?target=2&msg=second"), "True");
    assert_eq!(wait_records(&instance, &dir, "hook1-", 1), ["hello nofarm"]);
    assert_eq!(
        wait_records(&instance, &dir, "hook2-", 1),
        ["second nofarm"]
    );
    // No target: the queue every mule reads.
    assert_eq!(request(&instance.addr, "/send?msg=anyone"), "True");
    let started = Instant::now();
    while records(&dir, "hook").len() < 3 {
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "{:?}",
            instance.log()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let all = records(&dir, "hook");
    assert_eq!(all.iter().filter(|r| *r == "anyone nofarm").count(), 1);
    // Workers are not mules.
    assert_eq!(request(&instance.addr, "/ids"), "0 None");
    assert!(
        request(&instance.addr, "/send?target=3&msg=x")
            .starts_with("UwsgiValueError: invalid mule number"),
    );
}

#[test]
fn a_mule_script_reads_with_mule_get_msg() {
    let dir = out_dir("script");
    let script = app("mule_script.py");
    let instance = start(&dir, &["--mule", script.as_str()]);
    assert_eq!(request(&instance.addr, "/send?target=1&msg=one"), "True");
    assert_eq!(request(&instance.addr, "/send?target=1&msg=two"), "True");
    let got = wait_records(&instance, &dir, "script1-", 2);
    assert_eq!(got, ["one", "two"]);
    assert_eq!(
        request(&instance.addr, "/send?target=1&msg=timeout"),
        "True"
    );
    let got = wait_records(&instance, &dir, "script1-", 3);
    assert!(got.contains(&"None".to_owned()), "{got:?}");
}

#[test]
fn a_farm_message_is_handled_once_by_one_of_its_mules() {
    let dir = out_dir("farm");
    let instance = start(&dir, &["--mules", "3", "--farm", "pair:1,2"]);
    for i in 0..20 {
        assert_eq!(
            request(&instance.addr, &format!("/farm?name=pair&msg=m{i}")),
            "True"
        );
    }
    let started = Instant::now();
    while records(&dir, "hook").len() < 20 {
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "{:?}",
            instance.log()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    std::thread::sleep(Duration::from_millis(300));
    let mut all = records(&dir, "hook");
    assert_eq!(all.len(), 20, "each message once: {all:?}");
    assert!(
        records(&dir, "hook3-").is_empty(),
        "mule 3 is not in the farm"
    );
    all.dedup();
    assert_eq!(all.len(), 20);
    assert!(all.iter().all(|r| r.ends_with(" farm")));
    assert!(
        request(&instance.addr, "/farm?name=nope&msg=x")
            .starts_with("UwsgiValueError: unknown farm"),
    );
    let doc = instance.stats();
    let farms = &doc["mules"][0]["farms"];
    assert_eq!(farms, &serde_json::json!(["pair"]));
}

#[test]
fn a_killed_mule_is_respawned_and_stats_list_mules() {
    let dir = out_dir("respawn");
    let instance = start(&dir, &["--mule", "--mule"]);
    let doc = instance.stats();
    let mules = doc["mules"].as_array().unwrap();
    assert_eq!(mules.len(), 2);
    assert_eq!(mules[0]["id"], 1);
    assert_eq!(mules[1]["id"], 2);
    let pid = mules[0]["pid"].as_u64().unwrap();
    assert!(pid > 0 && alive(pid));
    signal_pid(u32::try_from(pid).unwrap(), "KILL");
    instance.wait_for_count("respawned uWSGI mule 1", 1, Duration::from_secs(10));
    let doc = instance.stats();
    let new_pid = doc["mules"][0]["pid"].as_u64().unwrap();
    assert!(new_pid > 0 && new_pid != pid && alive(new_pid));
    assert_eq!(doc["mules"][0]["respawns"], 1);
    // The respawned mule still reads its queue.
    assert_eq!(request(&instance.addr, "/send?target=1&msg=again"), "True");
    assert_eq!(wait_records(&instance, &dir, "hook1-", 1), ["again nofarm"]);
}

#[test]
fn a_signal_to_mules_runs_in_every_mule() {
    let dir = out_dir("signal");
    let instance = start(&dir, &["--mules", "2"]);
    // A signal packet (modifier1 110) raises it in the master, which routes it.
    let packet = common::framed(uwsgi_protocol::Modifier1::Signal, 17, b"");
    common::exchange(&instance.addr, &packet);
    let started = Instant::now();
    while records(&dir, "signal1-").is_empty() || records(&dir, "signal2-").is_empty() {
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "{:?}",
            instance.log()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    std::thread::sleep(Duration::from_millis(200));
    assert_eq!(
        records(&dir, "signal"),
        ["17", "17"],
        "only the mules ran it"
    );
    assert_eq!(records(&dir, "signal1-").len(), 1);
    assert_eq!(records(&dir, "signal2-").len(), 1);
    let doc = instance.stats();
    assert_eq!(doc["mules"][0]["signals"], 1);
}

#[test]
fn a_message_over_the_limit_is_refused_with_a_clear_error() {
    let dir = out_dir("big");
    let instance = start(&dir, &["--mule"]);
    let reply = request(&instance.addr, "/big");
    assert_eq!(
        reply,
        "UwsgiValueError: mule message too large: 65537 bytes, the limit is 65536"
    );
}

#[test]
fn stopping_the_master_leaves_no_mule() {
    let dir = out_dir("stop");
    let mut instance = start(&dir, &["--mules", "2"]);
    let pids: Vec<u64> = instance.stats()["mules"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["pid"].as_u64().unwrap())
        .collect();
    instance.signal("INT");
    instance.wait_exit(Duration::from_secs(10));
    let started = Instant::now();
    while pids.iter().any(|&p| alive(p)) {
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "mules outlived the master"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn a_reload_forks_new_mules_that_still_take_messages() {
    let dir = out_dir("reload");
    let instance = start(&dir, &["--mule"]);
    let old = instance.stats()["mules"][0]["pid"].as_u64().unwrap();
    instance.signal("HUP");
    instance.wait_for_count("spawned uWSGI mule 1", 2, Duration::from_secs(20));
    instance.wait_for_count("listening on", 2, Duration::from_secs(20));
    let started = Instant::now();
    while alive(old) {
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "the old mule outlived the reload"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(request(&instance.addr, "/send?target=1&msg=after"), "True");
    assert_eq!(wait_records(&instance, &dir, "hook1-", 1), ["after nofarm"]);
}

#[test]
fn a_farm_naming_a_missing_mule_is_refused_at_startup() {
    let output = Command::new(BIN)
        .args(["--socket", "127.0.0.1:0", "--mule", "--farm", "f:1,2"])
        .env_remove("UWSGI_RS_FDS")
        .env_remove("UWSGI_RELOADS")
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("farm f: there is no mule 2"), "{stderr}");
    let output = Command::new(BIN)
        .args(["--socket", "127.0.0.1:0", "--mule", "--farm", "nocolon"])
        .output()
        .unwrap();
    assert!(!output.status.success());
    assert!(String::from_utf8_lossy(&output.stderr).contains("NAME:MULE"));
}
