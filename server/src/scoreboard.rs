//! The scoreboard: what every worker and spooler process reports about itself, in memory
//! shared by the master and all the processes it forks (uWSGI keeps the same table in
//! its shared `uwsgi.workers` array). The master reads it for `--stats`, `--harakiri`
//! and the SIGUSR1 report; the workers write it as they serve.
//!
//! Every cell is an `AtomicU64` in one [`SharedCounters`] mapping created before the
//! first fork, so it survives any worker's death and a respawned worker reuses its slot.
//! In the single-process (library) mode the same table is used by threads.
//!
//! Layout: a few global cells, then per worker [`WorkerField`]s followed by
//! [`CoreField`]s for each of its cores (threads), then per spooler process
//! [`SpoolerField`]s.

use std::io;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use crate::state::shm::SharedCounters;

/// Global cells.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(usize)]
enum Global {
    /// Application requests served by every worker (`total_requests`).
    TotalRequests,
    /// Signals routed by the master.
    Signals,
    /// Seconds between spooler passes (`--spooler-frequency`, changed at run time by
    /// `uwsgi.set_spooler_frequency`): here so that forked spoolers see a change made
    /// in a worker, as uWSGI keeps it in `uwsgi.shared`.
    SpoolerFrequency,
    /// Number of cells.
    Count,
}

/// Per-worker cells.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(usize)]
pub enum WorkerField {
    /// The worker's pid (0 when not running).
    Pid,
    /// Connections served, all lives of this worker slot.
    Requests,
    /// Connections served since the last (re)spawn (for `--max-requests`).
    DeltaRequests,
    /// Application requests served (the request log's first counter).
    AppRequests,
    /// Connections being served now.
    Busy,
    /// Total time spent serving, microseconds.
    RunningTimeUs,
    /// Bytes of application responses.
    Tx,
    /// Application calls that failed.
    Exceptions,
    /// Times the slot was spawned (1 after the first spawn).
    Respawns,
    /// Unix seconds of the last spawn.
    LastSpawn,
    /// Times the master killed it for `--harakiri`.
    HarakiriCount,
    /// uWSGI signals delivered to it.
    Signals,
    /// 1 while it accepts connections.
    Accepting,
    /// `--http-socket` connections parked (idle keep-alive) in its poller now.
    HttpParked,
    /// `uwsgi.set_user_harakiri(s)`: milliseconds since the epoch after which the
    /// master kills the worker; 0 when not armed. Disarmed after every request.
    UserHarakiri,
    /// Number of fields.
    Count,
}

/// Per-core (thread) cells.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(usize)]
pub enum CoreField {
    /// Connections served by this core.
    Requests,
    /// Milliseconds since the epoch when the current request started; 0 when idle.
    Started,
    /// Number of fields.
    Count,
}

/// Per-spooler-process cells.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(usize)]
pub enum SpoolerField {
    /// The spooler's pid (0 when not running).
    Pid,
    /// Times it was spawned.
    Respawns,
    /// 1 while it runs a job.
    Running,
    /// Jobs it finished (handler said done).
    Done,
    /// `uwsgi.set_user_harakiri(s)` in the spooler: milliseconds since the epoch after
    /// which the master kills it; 0 when not armed (uWSGI never disarms it by itself).
    UserHarakiri,
    /// Number of fields.
    Count,
}

/// The shared table.
#[derive(Debug)]
pub struct Scoreboard {
    cells: SharedCounters,
    workers: usize,
    cores: usize,
    spoolers: usize,
    mules: usize,
}

/// This process's spooler slot plus one (0 outside a forked spooler): set once after the
/// fork, so the embedded Python can find its own cells.
static MY_SPOOLER: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

/// Marks this process as the forked spooler of slot `index`.
pub fn become_spooler(index: usize) {
    MY_SPOOLER.store(index.saturating_add(1), Ordering::Relaxed);
}

/// The spooler slot of this process, if it is a forked spooler.
pub fn my_spooler() -> Option<usize> {
    MY_SPOOLER.load(Ordering::Relaxed).checked_sub(1)
}

/// Milliseconds since the epoch.
pub fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

impl Scoreboard {
    /// A zeroed table for `workers` workers of `cores` threads, `spoolers` spooler
    /// processes and `mules` mules. Create it before forking.
    pub fn new(
        workers: usize,
        cores: usize,
        spoolers: usize,
        mules: usize,
    ) -> io::Result<Scoreboard> {
        let workers = workers.max(1);
        let cores = cores.max(1);
        let stride = WorkerField::Count as usize + cores * CoreField::Count as usize;
        let count = Global::Count as usize
            + workers * stride
            + spoolers * SpoolerField::Count as usize
            + mules;
        Ok(Scoreboard {
            cells: SharedCounters::new(count)?,
            workers,
            cores,
            spoolers,
            mules,
        })
    }

    /// Number of worker slots.
    pub fn workers(&self) -> usize {
        self.workers
    }

    /// Cores (threads) per worker.
    pub fn cores(&self) -> usize {
        self.cores
    }

    /// Number of spooler process slots.
    pub fn spoolers(&self) -> usize {
        self.spoolers
    }

    fn stride(&self) -> usize {
        WorkerField::Count as usize + self.cores * CoreField::Count as usize
    }

    /// A worker's cell; `worker` is 0-based (uWSGI's id minus one). Out of range reads
    /// the last worker's cell rather than panicking.
    pub fn worker(&self, worker: usize, field: WorkerField) -> &AtomicU64 {
        let worker = worker.min(self.workers - 1);
        &self.cells[Global::Count as usize + worker * self.stride() + field as usize]
    }

    /// A core's cell.
    pub fn core(&self, worker: usize, core: usize, field: CoreField) -> &AtomicU64 {
        let worker = worker.min(self.workers - 1);
        let core = core.min(self.cores - 1);
        &self.cells[Global::Count as usize
            + worker * self.stride()
            + WorkerField::Count as usize
            + core * CoreField::Count as usize
            + field as usize]
    }

    /// A spooler process's cell (`index` counts every process of every spool directory).
    pub fn spooler(&self, index: usize, field: SpoolerField) -> Option<&AtomicU64> {
        (index < self.spoolers).then(|| {
            &self.cells[Global::Count as usize
                + self.workers * self.stride()
                + index * SpoolerField::Count as usize
                + field as usize]
        })
    }

    /// Mule `index`'s (0-based) user harakiri deadline: milliseconds since the epoch
    /// after which the master kills it, 0 when not armed (`uwsgi.set_user_harakiri` in
    /// a mule; uWSGI never disarms it by itself).
    pub fn mule_user_harakiri(&self, index: usize) -> Option<&AtomicU64> {
        (index < self.mules).then(|| {
            &self.cells[Global::Count as usize
                + self.workers * self.stride()
                + self.spoolers * SpoolerField::Count as usize
                + index]
        })
    }

    /// Reads a worker cell.
    pub fn get(&self, worker: usize, field: WorkerField) -> u64 {
        self.worker(worker, field).load(Ordering::Relaxed)
    }

    /// Application requests served by all workers.
    pub fn total_requests(&self) -> u64 {
        self.cells[Global::TotalRequests as usize].load(Ordering::Relaxed)
    }

    /// Counts one application request of `worker`; returns (the worker's count, the
    /// total), as the request log prints them.
    pub fn count_app_request(&self, worker: usize) -> (u64, u64) {
        let mine = self
            .worker(worker, WorkerField::AppRequests)
            .fetch_add(1, Ordering::Relaxed)
            + 1;
        let total = self.cells[Global::TotalRequests as usize].fetch_add(1, Ordering::Relaxed) + 1;
        (mine, total)
    }

    /// Seconds between spooler passes, as last set (0 before
    /// [`Scoreboard::set_spooler_frequency`] was ever called).
    pub fn spooler_frequency(&self) -> std::time::Duration {
        std::time::Duration::from_secs(
            self.cells[Global::SpoolerFrequency as usize].load(Ordering::Relaxed),
        )
    }

    /// Sets the seconds between spooler passes, for every process of the instance.
    pub fn set_spooler_frequency(&self, seconds: u64) {
        self.cells[Global::SpoolerFrequency as usize].store(seconds, Ordering::Relaxed);
    }

    /// Counts a signal routed by the master.
    pub fn count_signal(&self) {
        self.cells[Global::Signals as usize].fetch_add(1, Ordering::Relaxed);
    }

    /// Prepares `worker`'s slot for a new process: clears what belonged to the previous
    /// one (in-flight requests, harakiri clocks) and counts the spawn.
    pub fn reset_for_spawn(&self, worker: usize) {
        for field in [
            WorkerField::Pid,
            WorkerField::DeltaRequests,
            WorkerField::Busy,
            WorkerField::Accepting,
            WorkerField::HttpParked,
            WorkerField::UserHarakiri,
        ] {
            self.worker(worker, field).store(0, Ordering::Relaxed);
        }
        for core in 0..self.cores {
            self.core(worker, core, CoreField::Started)
                .store(0, Ordering::Relaxed);
        }
        self.worker(worker, WorkerField::Respawns)
            .fetch_add(1, Ordering::Relaxed);
        let now = now_ms() / 1000;
        self.worker(worker, WorkerField::LastSpawn)
            .store(now, Ordering::Relaxed);
    }

    /// Marks a connection started on (`worker`, `core`); the guard records it when
    /// dropped.
    pub fn begin(&self, worker: usize, core: usize) -> RequestGuard<'_> {
        self.worker(worker, WorkerField::Busy)
            .fetch_add(1, Ordering::Relaxed);
        self.core(worker, core, CoreField::Started)
            .store(now_ms().max(1), Ordering::Relaxed);
        RequestGuard {
            board: self,
            worker,
            core,
            started: Instant::now(),
        }
    }

    /// The oldest request in progress on `worker`: (core, started ms), if any.
    pub fn oldest_request(&self, worker: usize) -> Option<(usize, u64)> {
        (0..self.cores)
            .filter_map(|core| {
                let started = self
                    .core(worker, core, CoreField::Started)
                    .load(Ordering::Relaxed);
                (started != 0).then_some((core, started))
            })
            .min_by_key(|&(_, started)| started)
    }
}

/// Records one connection in the scoreboard when dropped.
#[derive(Debug)]
pub struct RequestGuard<'a> {
    board: &'a Scoreboard,
    worker: usize,
    core: usize,
    started: Instant,
}

impl RequestGuard<'_> {
    /// The connections this worker served since it was spawned, this one included.
    pub fn finish(self) -> u64 {
        let board = self.board;
        let worker = self.worker;
        drop(self);
        board.get(worker, WorkerField::DeltaRequests)
    }
}

impl Drop for RequestGuard<'_> {
    fn drop(&mut self) {
        let took = u64::try_from(self.started.elapsed().as_micros()).unwrap_or(u64::MAX);
        let board = self.board;
        board
            .core(self.worker, self.core, CoreField::Started)
            .store(0, Ordering::Relaxed);
        board
            .core(self.worker, self.core, CoreField::Requests)
            .fetch_add(1, Ordering::Relaxed);
        for field in [WorkerField::Requests, WorkerField::DeltaRequests] {
            board
                .worker(self.worker, field)
                .fetch_add(1, Ordering::Relaxed);
        }
        board
            .worker(self.worker, WorkerField::RunningTimeUs)
            .fetch_add(took, Ordering::Relaxed);
        board
            .worker(self.worker, WorkerField::Busy)
            .fetch_sub(1, Ordering::Relaxed);
        // uWSGI leaves user harakiri mode when a request ends (uwsgi_close_request).
        board
            .worker(self.worker, WorkerField::UserHarakiri)
            .store(0, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cells_do_not_overlap() {
        let board = Scoreboard::new(3, 2, 2, 2).unwrap();
        board
            .worker(2, WorkerField::Accepting)
            .store(7, Ordering::Relaxed);
        board
            .core(2, 1, CoreField::Started)
            .store(9, Ordering::Relaxed);
        board
            .spooler(0, SpoolerField::Pid)
            .unwrap()
            .store(11, Ordering::Relaxed);
        assert_eq!(board.get(2, WorkerField::Accepting), 7);
        assert_eq!(board.get(1, WorkerField::Accepting), 0);
        assert_eq!(
            board.core(2, 1, CoreField::Started).load(Ordering::Relaxed),
            9
        );
        assert_eq!(
            board
                .spooler(0, SpoolerField::Pid)
                .unwrap()
                .load(Ordering::Relaxed),
            11
        );
        assert!(board.spooler(2, SpoolerField::Pid).is_none());
        assert_eq!(board.total_requests(), 0);
    }

    #[test]
    fn a_request_is_recorded_and_the_clock_cleared() {
        let board = Scoreboard::new(2, 2, 0, 0).unwrap();
        let guard = board.begin(1, 1);
        assert_eq!(board.get(1, WorkerField::Busy), 1);
        let (core, started) = board.oldest_request(1).unwrap();
        assert_eq!(core, 1);
        assert!(started > 1_600_000_000_000);
        assert_eq!(guard.finish(), 1);
        assert_eq!(board.get(1, WorkerField::Busy), 0);
        assert_eq!(board.oldest_request(1), None);
        assert_eq!(board.get(1, WorkerField::Requests), 1);
        assert_eq!(board.count_app_request(1), (1, 1));
        board.reset_for_spawn(1);
        assert_eq!(board.get(1, WorkerField::DeltaRequests), 0);
        assert_eq!(board.get(1, WorkerField::Requests), 1);
        assert_eq!(board.get(1, WorkerField::Respawns), 1);
    }

    #[test]
    fn user_harakiri_ends_with_the_request_and_the_spooler_frequency_is_shared() {
        let board = Scoreboard::new(2, 1, 1, 1).unwrap();
        let guard = board.begin(1, 0);
        board
            .worker(1, WorkerField::UserHarakiri)
            .store(123, Ordering::Relaxed);
        drop(guard);
        assert_eq!(board.get(1, WorkerField::UserHarakiri), 0, "disarmed");
        board
            .worker(0, WorkerField::UserHarakiri)
            .store(5, Ordering::Relaxed);
        board.reset_for_spawn(0);
        assert_eq!(
            board.get(0, WorkerField::UserHarakiri),
            0,
            "a new process starts clean"
        );
        board
            .spooler(0, SpoolerField::UserHarakiri)
            .unwrap()
            .store(9, Ordering::Relaxed);
        board
            .mule_user_harakiri(0)
            .unwrap()
            .store(10, Ordering::Relaxed);
        assert!(board.mule_user_harakiri(1).is_none());
        assert_eq!(board.get(1, WorkerField::UserHarakiri), 0, "cells apart");
        assert_eq!(
            board
                .spooler(0, SpoolerField::UserHarakiri)
                .unwrap()
                .load(Ordering::Relaxed),
            9
        );
        board.set_spooler_frequency(7);
        assert_eq!(board.spooler_frequency(), std::time::Duration::from_secs(7));
    }
}
