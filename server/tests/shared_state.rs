//! State shared by forked Python workers, through the real binary: what one worker
//! pushes on the queue (`--queue`) another pulls, a user lock (`--locks`) makes a
//! read-modify-write of a shared area (`--sharedarea`) atomic across processes, and
//! `uwsgi.reload()` / `uwsgi.stop()` from a request act on the master.

#![allow(clippy::unwrap_used)]

mod common;

use std::collections::HashSet;
use std::path::Path;
use std::time::Duration;

use common::binary::Instance;
use common::get_body as request;

fn app() -> String {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/apps/shared_state.py")
        .display()
        .to_string()
}

fn start(extra: &[&str]) -> Instance {
    let app = app();
    let mut args = vec![
        "--master",
        "--processes",
        "2",
        "--socket",
        "127.0.0.1:0",
        "--wsgi-file",
        &app,
    ];
    args.extend_from_slice(extra);
    let instance = Instance::start(&args);
    instance.wait_for_count("spawned uWSGI worker", 2, Duration::from_secs(20));
    instance
}

#[test]
fn queue_locks_and_shared_areas_span_the_worker_processes() {
    let instance = start(&["--queue", "10", "--sharedarea", "1", "--locks", "2"]);
    let addr = instance.addr.clone();

    // Pushes and pulls land on whichever worker accepts: the queue is one for all.
    for value in ["a", "b", "c"] {
        assert_eq!(request(&addr, &format!("/queue_push?v={value}")), "True");
    }
    let pulled: Vec<String> = (0..4).map(|_| request(&addr, "/queue_pull")).collect();
    assert_eq!(
        pulled,
        ["b'a'", "b'b'", "b'c'", "None"],
        "pull takes the oldest"
    );

    // Sixteen concurrent increments, each a locked read-sleep-write of the same long.
    let workers: Vec<_> = (0..16)
        .map(|_| {
            let addr = addr.clone();
            std::thread::spawn(move || request(&addr, "/increment"))
        })
        .collect();
    let served_by: HashSet<String> = workers.into_iter().map(|t| t.join().unwrap()).collect();
    assert_eq!(request(&addr, "/counter"), "16", "no increment lost");
    assert_eq!(
        served_by,
        HashSet::from(["1".to_owned(), "2".to_owned()]),
        "both worker processes took part"
    );
}

#[test]
fn reload_from_a_request_respawns_the_workers() {
    let instance = start(&[]);
    let before: HashSet<String> = (0..8).map(|_| request(&instance.addr, "/worker")).collect();
    assert_eq!(request(&instance.addr, "/reload"), "reloading");
    instance.wait_for_count("spawned uWSGI worker", 4, Duration::from_secs(20));
    let after = request(&instance.addr, "/worker");
    assert!(
        !before.contains(&after),
        "{after} was there before the reload: {before:?}"
    );
}

#[test]
fn stop_from_a_request_ends_the_server() {
    let mut instance = start(&[]);
    // SIGQUIT stops at once, as in uWSGI: the request that asked may be cut before its
    // answer goes out.
    let answer = request(&instance.addr, "/stop");
    assert!(answer == "stopping" || answer.is_empty(), "{answer:?}");
    let status = instance.wait_exit(Duration::from_secs(20));
    assert!(status.success(), "{status}");
}
