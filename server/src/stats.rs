//! `--stats ADDR`: uWSGI's stats server. On every connection one JSON document is
//! written and the connection closed (spec §7.9), with the fields `uwsgitop` and
//! `uwsgi-cli stats` read: top level, sockets, workers (with their cores), caches,
//! spoolers and locks.

use std::io::{self, Write};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde_json::{Value, json};

use crate::listen::Listener;
use crate::server::Shared;

/// Counters of one worker (every thread with this worker id adds to them).
#[derive(Debug, Default)]
pub struct WorkerCounters {
    /// Requests served.
    pub requests: AtomicU64,
    /// Requests in progress now.
    pub busy: AtomicU64,
    /// Total time spent serving, in microseconds.
    pub running_time_us: AtomicU64,
    /// Bytes of application responses written.
    pub tx: AtomicU64,
}

impl WorkerCounters {
    /// Marks a request started; the returned guard records it when dropped.
    pub fn begin(&self) -> RequestGuard<'_> {
        self.busy.fetch_add(1, Ordering::Relaxed);
        RequestGuard {
            counters: self,
            started: Instant::now(),
        }
    }
}

/// Records one request in its worker's counters when dropped.
#[derive(Debug)]
pub struct RequestGuard<'a> {
    counters: &'a WorkerCounters,
    started: Instant,
}

impl Drop for RequestGuard<'_> {
    fn drop(&mut self) {
        let took = u64::try_from(self.started.elapsed().as_micros()).unwrap_or(u64::MAX);
        self.counters.busy.fetch_sub(1, Ordering::Relaxed);
        self.counters.requests.fetch_add(1, Ordering::Relaxed);
        self.counters
            .running_time_us
            .fetch_add(took, Ordering::Relaxed);
    }
}

thread_local! {
    /// The worker id (0-based) of the current worker thread, for byte accounting.
    static CURRENT_WORKER: std::cell::Cell<Option<usize>> = const { std::cell::Cell::new(None) };
}

/// Marks the calling thread as worker `index`.
pub fn set_current_worker(index: usize) {
    CURRENT_WORKER.with(|current| current.set(Some(index)));
}

/// The calling thread's worker index (0-based), if it is a worker.
pub fn current_worker() -> Option<usize> {
    CURRENT_WORKER.with(std::cell::Cell::get)
}

/// Adds `bytes` to the calling worker's `tx` counter.
pub fn add_tx(shared: &Shared, bytes: usize) {
    if let Some(counters) = CURRENT_WORKER
        .with(std::cell::Cell::get)
        .and_then(|index| shared.workers.get(index))
    {
        counters.tx.fetch_add(bytes as u64, Ordering::Relaxed);
    }
}

/// Resident and virtual memory of this process in bytes, from /proc (0 if unknown).
fn memory() -> (u64, u64) {
    let statm = std::fs::read_to_string("/proc/self/statm").unwrap_or_default();
    let mut fields = statm
        .split_whitespace()
        .map(|f| f.parse::<u64>().unwrap_or(0));
    let pages_virtual = fields.next().unwrap_or(0);
    let pages_resident = fields.next().unwrap_or(0);
    (pages_resident * 4096, pages_virtual * 4096)
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// The stats document.
pub fn document(shared: &Shared, sockets: &[String], started_at: u64) -> Value {
    let pid = std::process::id();
    let (rss, vsz) = memory();
    let workers: Vec<Value> = shared
        .workers
        .iter()
        .enumerate()
        .map(|(index, counters)| {
            let requests = counters.requests.load(Ordering::Relaxed);
            let running = counters.running_time_us.load(Ordering::Relaxed);
            let busy = counters.busy.load(Ordering::Relaxed) > 0;
            json!({
                "id": index + 1,
                "pid": pid,
                "accepting": 1,
                "requests": requests,
                "delta_requests": requests,
                "exceptions": 0,
                "harakiri_count": 0,
                "signals": 0,
                "signal_queue": 0,
                "status": if busy { "busy" } else { "idle" },
                "rss": rss,
                "vsz": vsz,
                "running_time": running,
                "last_spawn": started_at,
                "respawn_count": 1,
                "tx": counters.tx.load(Ordering::Relaxed),
                "avg_rt": running.checked_div(requests).unwrap_or(0),
                "apps": [{"id": 0, "modifier1": 0, "mountpoint": "", "startup_time": 0,
                          "requests": requests, "exceptions": 0, "chdir": ""}],
                "cores": [{"id": 0, "requests": requests, "static_requests": 0,
                           "routed_requests": 0, "offloaded_requests": 0,
                           "in_request": u8::from(busy)}],
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
            })
        })
        .collect();
    let spoolers: Vec<Value> = shared
        .state
        .spoolers()
        .iter()
        .map(|spooler| {
            json!({
                "dir": spooler.dir().display().to_string(),
                "pid": pid,
                "tasks": spooler.pending().map_or(0, |jobs| jobs.len()),
                "respawns": 0,
                "running": 0,
            })
        })
        .collect();
    let cwd = std::env::current_dir()
        .map(|d| d.display().to_string())
        .unwrap_or_default();
    json!({
        "version": env!("CARGO_PKG_VERSION"),
        "listen_queue": 0,
        "listen_queue_errors": 0,
        "signal_queue": shared.state.signal_queue().len(),
        "load": shared.workers.iter().map(|w| w.busy.load(Ordering::Relaxed)).sum::<u64>(),
        "pid": pid,
        "uid": 0,
        "gid": 0,
        "cwd": cwd,
        "locks": [],
        "sockets": sockets.iter().map(|name| json!({
            "name": name, "proto": "uwsgi", "queue": 0, "max_queue": 0, "shared": 0, "can_offload": 0,
        })).collect::<Vec<_>>(),
        "workers": workers,
        "caches": caches,
        "spoolers": spoolers,
    })
}

/// Serves the stats document on `listener` until `stopping` is set.
pub fn serve(listener: &Listener, shared: &Arc<Shared>, sockets: &[String], stopping: &AtomicBool) {
    let started_at = unix_now();
    while !stopping.load(Ordering::Relaxed) {
        let text = || {
            let document = document(shared, sockets, started_at);
            serde_json::to_vec_pretty(&document).unwrap_or_default()
        };
        let result: io::Result<()> = match listener {
            Listener::Tcp(l) => l.accept().and_then(|(mut stream, _)| {
                stream.set_write_timeout(Some(Duration::from_secs(4)))?;
                stream.write_all(&text())
            }),
            Listener::Unix(l, _) => l.accept().and_then(|(mut stream, _)| {
                stream.set_write_timeout(Some(Duration::from_secs(4)))?;
                stream.write_all(&text())
            }),
        };
        if let Err(err) = result {
            shared.log(format_args!("stats: {err}"));
        }
    }
}
