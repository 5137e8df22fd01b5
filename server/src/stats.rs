//! `--stats ADDR`: uWSGI's stats server. On every connection one JSON document is
//! written and the connection closed (spec §7.9), with the fields `uwsgitop` and
//! `uwsgi-cli stats` read: top level, sockets, workers (with their cores), caches,
//! spoolers and locks; and, only when they have entries, the subscription table and the
//! cluster nodes announced on `--udp` sockets.

use std::io::{self, Write};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde_json::{Value, json};

use crate::listen::Listener;
use crate::scoreboard::{CoreField, SpoolerField, WorkerField};
use crate::server::Shared;

/// Resident and virtual memory of process `pid` in bytes, from /proc (0 if unknown).
fn memory(pid: u64) -> (u64, u64) {
    if pid == 0 {
        return (0, 0);
    }
    let statm = std::fs::read_to_string(format!("/proc/{pid}/statm")).unwrap_or_default();
    let mut fields = statm
        .split_whitespace()
        .map(|f| f.parse::<u64>().unwrap_or(0));
    let pages_virtual = fields.next().unwrap_or(0);
    let pages_resident = fields.next().unwrap_or(0);
    (pages_resident * 4096, pages_virtual * 4096)
}

/// Unix seconds now.
pub fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// The stats document.
pub fn document(shared: &Shared, sockets: &[(String, i32)], started_at: u64) -> Value {
    let pid = std::process::id();
    let board = &shared.scoreboard;
    let workers: Vec<Value> = (0..board.workers())
        .map(|index| {
            let get = |field| board.get(index, field);
            let requests = get(WorkerField::Requests);
            let running = get(WorkerField::RunningTimeUs);
            let busy = get(WorkerField::Busy) > 0;
            let worker_pid = get(WorkerField::Pid);
            let (rss, vsz) = memory(worker_pid);
            let cores: Vec<Value> = (0..board.cores())
                .map(|core| {
                    let cell = |field| board.core(index, core, field).load(Ordering::Relaxed);
                    json!({"id": core, "requests": cell(CoreField::Requests), "static_requests": 0,
                           "routed_requests": 0, "offloaded_requests": 0, "write_errors": 0,
                           "read_errors": 0, "in_request": u8::from(cell(CoreField::Started) != 0)})
                })
                .collect();
            let status = if worker_pid == 0 {
                "cheap"
            } else if busy {
                "busy"
            } else {
                "idle"
            };
            json!({
                "id": index + 1,
                "pid": worker_pid,
                "accepting": get(WorkerField::Accepting),
                "http_parked": get(WorkerField::HttpParked),
                "requests": requests,
                "delta_requests": get(WorkerField::DeltaRequests),
                "exceptions": get(WorkerField::Exceptions),
                "harakiri_count": get(WorkerField::HarakiriCount),
                "signals": get(WorkerField::Signals),
                "signal_queue": 0,
                "status": status,
                "rss": rss,
                "vsz": vsz,
                "running_time": running,
                "last_spawn": match get(WorkerField::LastSpawn) { 0 => started_at, at => at },
                "respawn_count": get(WorkerField::Respawns),
                "tx": get(WorkerField::Tx),
                "avg_rt": running.checked_div(requests).unwrap_or(0),
                "apps": [{"id": 0, "modifier1": 0, "mountpoint": "", "startup_time": 0,
                          "requests": get(WorkerField::AppRequests),
                          "exceptions": get(WorkerField::Exceptions), "chdir": ""}],
                "cores": cores,
            })
        })
        .collect();
    let caches: Vec<Value> = shared
        .state
        .caches()
        .iter()
        .map(|cache| {
            let config = cache.config();
            let stats = cache.stats();
            let replication = cache.replicator().map(|r| r.stats()).unwrap_or_default();
            json!({
                "name": config.name,
                "hash": format!("{:?}", config.hash).to_ascii_lowercase(),
                "hashsize": config.hashsize,
                "keysize": config.keysize,
                "max_items": config.items,
                "blocks": config.blocks,
                "blocksize": config.blocksize,
                "items": stats.items,
                "hits": stats.hits,
                "miss": stats.misses,
                "full": stats.full,
                "last_modified_at": 0,
                "nodes": config.nodes,
                "sync_sent": replication.sent,
                "sync_failed": replication.failed,
                "sync_unsendable": replication.unsendable,
            })
        })
        .collect();
    let dirs = shared.state.spoolers().len().max(1);
    let per_dir = board.spoolers() / dirs;
    let spoolers: Vec<Value> = shared
        .state
        .spoolers()
        .iter()
        .enumerate()
        .map(|(dir, spooler)| {
            // Forked spooler processes report in the scoreboard; without a master the
            // spooler is a thread of this process.
            let cell = |process: usize, field| {
                board
                    .spooler(dir * per_dir + process, field)
                    .map_or(0, |c| c.load(Ordering::Relaxed))
            };
            let first_pid = (0..per_dir)
                .map(|p| cell(p, SpoolerField::Pid))
                .find(|&p| p != 0);
            json!({
                "dir": spooler.dir().display().to_string(),
                "pid": first_pid.unwrap_or(u64::from(pid)),
                "tasks": spooler.pending().map_or(0, |jobs| jobs.len()),
                "respawns": (0..per_dir).map(|p| cell(p, SpoolerField::Respawns)).sum::<u64>(),
                "running": u8::from((0..per_dir).any(|p| cell(p, SpoolerField::Running) != 0)),
            })
        })
        .collect();
    // Each listening socket's accept queue, as uWSGI reports it (0 for unix sockets,
    // whose queue the kernel does not publish).
    let backlogs: Vec<(&String, u64)> = sockets
        .iter()
        .map(|(name, fd)| (name, crate::listen::listen_queue(*fd)))
        .collect();
    let cwd = std::env::current_dir()
        .map(|d| d.display().to_string())
        .unwrap_or_default();
    let mut document = json!({
        "version": env!("CARGO_PKG_VERSION"),
        "listen_queue": backlogs.iter().map(|(_, queue)| queue).sum::<u64>(),
        "listen_queue_errors": 0,
        "signal_queue": shared.state.signal_queue().len(),
        "load": (0..board.workers()).map(|w| board.get(w, WorkerField::Busy)).sum::<u64>(),
        "total_requests": shared.total_requests(),
        "pid": pid,
        "uid": 0,
        "gid": 0,
        "cwd": cwd,
        "locks": [],
        "sockets": backlogs.iter().map(|(name, queue)| json!({
            "name": name, "proto": "uwsgi", "queue": queue, "max_queue": 0, "shared": 0, "can_offload": 0,
        })).collect::<Vec<_>>(),
        "workers": workers,
        "caches": caches,
        "spoolers": spoolers,
        "mules": shared.mules.stats(),
    });
    if let (Some(subscriptions), Some(object)) =
        (shared.subscriptions.stats(), document.as_object_mut())
    {
        object.insert("subscriptions".to_owned(), subscriptions);
    }
    if let (Some(nodes), Some(object)) =
        (shared.cluster.stats(unix_now()), document.as_object_mut())
    {
        object.insert("cluster_nodes".to_owned(), nodes);
    }
    document
}

/// Serves the stats document on `listener` until `stopping` is set.
pub fn serve(
    listener: &Listener,
    shared: &Arc<Shared>,
    sockets: &[(String, i32)],
    stopping: &AtomicBool,
) {
    let started_at = unix_now();
    while !stopping.load(Ordering::Relaxed) {
        if let Err(err) = answer_one(listener, shared, sockets, started_at) {
            shared.log(format_args!("stats: {err}"));
        }
    }
}

/// Accepts one stats connection and writes the document to it.
pub fn answer_one(
    listener: &Listener,
    shared: &Shared,
    sockets: &[(String, i32)],
    started_at: u64,
) -> io::Result<()> {
    let text = || {
        let document = document(shared, sockets, started_at);
        serde_json::to_vec_pretty(&document).unwrap_or_default()
    };
    match listener {
        Listener::Tcp(l) => l.accept().and_then(|(mut stream, _)| {
            stream.set_write_timeout(Some(Duration::from_secs(4)))?;
            stream.write_all(&text())
        }),
        Listener::Unix(l, _) => l.accept().and_then(|(mut stream, _)| {
            stream.set_write_timeout(Some(Duration::from_secs(4)))?;
            stream.write_all(&text())
        }),
    }
}
