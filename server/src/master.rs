//! uWSGI's process model: a master that binds the sockets, builds the shared state,
//! loads the application once, then forks the worker processes and the spooler
//! processes and supervises them.
//!
//! * **Workers**: `--processes` N processes, each running `--threads` T threads per
//!   listening socket; every thread blocks in `accept` on the inherited listening socket
//!   and serves one connection at a time (the kernel gives each connection to one
//!   waiting thread). A worker that dies is respawned; `--max-requests` recycles one
//!   gracefully; `--harakiri` kills one stuck on a request.
//! * **Spoolers**: `--spooler-processes` processes per `--spooler` directory, each
//!   running the spool jobs; respawned when they die. A job file is locked while it runs
//!   and removed only after the handler said it is done.
//! * **The master** never serves a request. One thread, one `poll` loop: reaping and
//!   respawning children, the harakiri check, the stats server, UDP sockets (`--udp` and
//!   the cache sync addresses), routing uWSGI signals to the target processes, timers,
//!   crons and the cache sweeper. Having no other thread, it forks from a process that
//!   holds no lock.
//!
//! Signals, as uWSGI 2.0 defines them for the master:
//!
//! | signal | master |
//! |---|---|
//! | SIGHUP | graceful reload: workers finish their requests, then the master re-executes itself with the listening sockets inherited |
//! | SIGTERM | brutal reload (workers stop at once); with `--die-on-term`, graceful shutdown |
//! | SIGINT | immediate shutdown |
//! | SIGQUIT | immediate shutdown; with `--die-on-term`, brutal reload |
//! | SIGUSR1, SIGUSR2 | a stats report in the log (uWSGI: statistics, worker status) |
//!
//! A reload keeps the listening sockets open the whole time (their file descriptors are
//! passed to the new image through `UWSGI_RS_FDS`), so connections arriving meanwhile
//! wait in the listen backlog instead of being refused; `UWSGI_RELOADS` counts the
//! reloads, as in uWSGI ([`reloads`]).

use std::collections::HashMap;
use std::ffi::OsString;
use std::io::{self, Write};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd, RawFd};
use std::os::unix::net::UnixDatagram;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use rustix::event::{PollFd, PollFlags};
use rustix::process::{Pid, Signal, WaitOptions};
use signal_hook::consts::{SIGHUP, SIGINT, SIGQUIT, SIGTERM, SIGUSR1, SIGUSR2};
use signal_hook::iterator::Signals;

use crate::app::App;
use crate::config::ServerConfig;
use crate::listen::Listener;
use crate::scoreboard::{SpoolerField, WorkerField, now_ms};
use crate::server::{Protocol, Seat, Server, Shared, Sockets, UdpRole};
use crate::state::signals::{MASTER, RaiseOutcome, SignalTarget};
use crate::state::spooler::{SpoolOutcome, SpoolTask};
use crate::state::timers::ScheduleRequest;

/// The environment variable carrying the inherited sockets across a reload.
pub const FDS_ENV: &str = "UWSGI_RS_FDS";
/// The environment variable counting reloads (uWSGI's name).
pub const RELOADS_ENV: &str = "UWSGI_RELOADS";

/// How long the master's `poll` sleeps at most.
const TICK: Duration = Duration::from_millis(50);
/// How often expired cache items are removed (uWSGI's `--cache-expire-freq` default).
const CACHE_SWEEP_EVERY: Duration = Duration::from_secs(3);
/// A process that dies sooner than this after its spawn is respawned only after a
/// pause, so a worker that cannot start does not make the master spin.
const MIN_LIFETIME: Duration = Duration::from_secs(1);
/// uWSGI's exit code for a worker whose application failed to load.
const FAILED_APP_CODE: i32 = 22;
/// uWSGI's exit code for a worker ended at once (SIGTERM/SIGINT to a worker).
const END_CODE: i32 = 30;

/// How many times this master re-executed itself (`UWSGI_RELOADS`); `uwsgi.is_a_reload`
/// is `reloads() > 0`.
pub fn reloads() -> u32 {
    std::env::var(RELOADS_ENV)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

/// The signals the master (and, before it forks, the whole server) listens to.
pub const SIGNALS: [i32; 6] = [SIGHUP, SIGTERM, SIGINT, SIGQUIT, SIGUSR1, SIGUSR2];

/// Unblocks [`SIGNALS`], which a reloading master blocks across its re-exec; call it
/// once the handlers are installed.
pub fn unblock_signals() {
    sys::block_signals(&SIGNALS, false);
}

/// Binds the sockets (or takes them over from the previous image on a reload), builds
/// the state and loads the app, for [`run`].
pub fn prepare(config: ServerConfig, app: Arc<dyn App>) -> io::Result<Server> {
    // `<pid>:<fd>,<fd>,...`, written by our previous image (see `Master::reexec`); exec
    // keeps the pid, so the list is ours only when the pid is this process's: the
    // variable stays in the environment (removing it is unsafe once threads may exist)
    // and any other process that inherits it ignores it.
    let me = std::process::id().to_string();
    let inherited = std::env::var(FDS_ENV).ok().and_then(|value| {
        let (pid, list) = value.split_once(':')?;
        (pid == me).then(|| list.to_owned())
    });
    let sockets = match inherited {
        Some(list) => inherit(&config, &list)?,
        None => Sockets::bind(&config)?,
    };
    Server::build(config, app, sockets)
}

/// Rebuilds the sockets from the descriptors listed in `UWSGI_RS_FDS`, in the order
/// [`reexec`] wrote them: stream sockets (`--socket`, then `--http-socket`), UDP sockets,
/// the stats socket, then the SNMP socket.
fn inherit(config: &ServerConfig, list: &str) -> io::Result<Sockets> {
    let fds: Vec<RawFd> = list
        .split(',')
        .filter(|f| !f.is_empty())
        .map(|f| f.parse::<RawFd>())
        .collect::<Result<_, _>>()
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, format!("{FDS_ENV}={list}")))?;
    let expected = config.sockets.len()
        + config.http_sockets.len()
        + crate::server::udp_bindings(config)?.len()
        + usize::from(config.stats.is_some())
        + usize::from(config.snmp_addr.is_some());
    if fds.len() != expected {
        // The configuration changed across the reload: bind afresh instead.
        for fd in fds {
            drop(sys::adopt_fd(fd)?);
        }
        return Sockets::bind(config);
    }
    let mut fds = fds.into_iter();
    let mut next = || -> io::Result<OwnedFd> {
        let fd = fds
            .next()
            .ok_or_else(|| io::Error::other("inherited socket list too short"))?;
        sys::adopt_fd(fd)
    };
    let mut listeners = Vec::new();
    let mut protocols = Vec::new();
    let stream_sockets = (config.sockets.iter().map(|a| (a, Protocol::Uwsgi)))
        .chain(config.http_sockets.iter().map(|a| (a, Protocol::Http)));
    for (addr, protocol) in stream_sockets {
        protocols.push(protocol);
        let fd = next()?;
        listeners.push(Arc::new(match addr {
            crate::listen::ListenAddr::Tcp(_) => Listener::Tcp(std::net::TcpListener::from(fd)),
            crate::listen::ListenAddr::Unix(path) => {
                Listener::Unix(std::os::unix::net::UnixListener::from(fd), path.clone())
            }
        }));
    }
    let mut udp = Vec::new();
    let mut udp_roles = Vec::new();
    for (_, role) in crate::server::udp_bindings(config)? {
        udp.push(Arc::new(std::net::UdpSocket::from(next()?)));
        udp_roles.push(role);
    }
    let stats = match &config.stats {
        Some(crate::listen::ListenAddr::Tcp(_)) => Some(Arc::new(Listener::Tcp(
            std::net::TcpListener::from(next()?),
        ))),
        Some(crate::listen::ListenAddr::Unix(path)) => Some(Arc::new(Listener::Unix(
            std::os::unix::net::UnixListener::from(next()?),
            path.clone(),
        ))),
        None => None,
    };
    let snmp = match config.snmp_addr {
        Some(_) => Some(Arc::new(std::net::UdpSocket::from(next()?))),
        None => None,
    };
    Ok(Sockets {
        listeners,
        protocols,
        udp,
        udp_roles,
        stats,
        snmp,
    })
}

/// How the master's run ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exit {
    /// Shut down (SIGINT, SIGQUIT, SIGTERM with `--die-on-term`).
    Stopped,
}

/// What a child process is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Role {
    /// Worker, 0-based.
    Worker(usize),
    /// Spooler process, 0-based over every directory's processes.
    Spooler(usize),
    /// Mule, 0-based (uWSGI's mule id is this plus one).
    Mule(usize),
}

/// One supervised process slot.
#[derive(Debug)]
struct Slot {
    pid: Option<Pid>,
    /// The master's end of the slot's signal channel (uWSGI signals to deliver).
    signals: Option<UnixDatagram>,
    spawned_at: Instant,
    /// Not respawned before this.
    next_spawn: Instant,
    /// When the worker stopped accepting on its own (recycling), for the mercy check.
    recycling_since: Option<Instant>,
    /// Whether the master asked it to stop (its death is then expected).
    cursed: bool,
    /// How many times it was forked.
    spawns: u64,
}

impl Slot {
    fn new() -> Slot {
        let now = Instant::now();
        Slot {
            pid: None,
            signals: None,
            spawned_at: now,
            next_spawn: now,
            recycling_since: None,
            cursed: false,
            spawns: 0,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    Running,
    /// Waiting for the children to exit, then re-executing.
    Reloading {
        deadline: Instant,
    },
    /// Waiting for the children to exit, then leaving.
    Stopping {
        deadline: Instant,
    },
}

/// The master process.
struct Master {
    server: Server,
    shared: Arc<Shared>,
    signals: Option<Signals>,
    workers: Vec<Slot>,
    spoolers: Vec<Slot>,
    mules: Vec<Slot>,
    pids: HashMap<i32, Role>,
    /// Raised signals from every child arrive here (uWSGI's master signal socket).
    intake: UnixDatagram,
    /// The children's end of `intake`.
    intake_tx: UnixDatagram,
    phase: Phase,
    next_any_worker: usize,
    /// The last modification seen of every file monitor's path (`None`: missing).
    scheduler: crate::schedule::Scheduler,
    started_at: u64,
    program: PathBuf,
    args: Vec<OsString>,
    socket_names: Vec<(String, i32)>,
}

impl std::fmt::Debug for Master {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Master")
            .field("phase", &self.phase)
            .field("workers", &self.workers.len())
            .finish_non_exhaustive()
    }
}

/// Runs the master until it shuts down; a reload re-executes the program and so never
/// returns. `signals` must already watch [`SIGNALS`] (installed before anything was
/// announced, so no early signal hits the default action).
pub fn run(server: Server, signals: Signals) -> io::Result<Exit> {
    let shared = server.shared();
    let config = server.config().clone();
    let first_start = reloads() == 0;
    if first_start {
        server.write_pidfiles()?;
    }
    let (intake, intake_tx) = UnixDatagram::pair()?;
    intake.set_nonblocking(true)?;
    intake_tx.set_nonblocking(true)?;
    for udp in server.udp_sockets().iter().chain(server.snmp_socket()) {
        udp.set_nonblocking(true)?;
    }
    let spooler_slots = shared.scoreboard.spoolers();
    let mut args = std::env::args_os();
    let argv0 = args.next().unwrap_or_default();
    let program = std::env::current_exe().unwrap_or_else(|_| PathBuf::from(argv0));
    // Name and descriptor of each listening socket, for the stats (its accept queue).
    let socket_names = server
        .listeners()
        .iter()
        .map(|l| (l.local_addr(), std::os::fd::AsRawFd::as_raw_fd(&l.as_fd())))
        .collect();
    let mut master = Master {
        workers: (0..config.processes.max(1)).map(|_| Slot::new()).collect(),
        spoolers: (0..spooler_slots).map(|_| Slot::new()).collect(),
        mules: (0..shared.mules.count()).map(|_| Slot::new()).collect(),
        server,
        shared,
        signals: Some(signals),
        pids: HashMap::new(),
        intake,
        intake_tx,
        phase: Phase::Running,
        next_any_worker: 0,
        scheduler: crate::schedule::Scheduler::default(),
        started_at: crate::stats::unix_now(),
        program,
        args: args.collect(),
        socket_names,
    };
    master.log(format_args!(
        "uwsgi-rs master (pid: {}) {}",
        std::process::id(),
        if first_start {
            "started".to_owned()
        } else {
            format!("reloaded ({} reloads)", reloads())
        }
    ));
    master.main_loop()
}

impl Master {
    fn log(&self, line: std::fmt::Arguments<'_>) {
        self.shared.log(line);
    }

    fn config(&self) -> &ServerConfig {
        self.server.config()
    }

    fn main_loop(&mut self) -> io::Result<Exit> {
        let mut last_second = Instant::now();
        let mut last_sweep = Instant::now();
        loop {
            self.wait_for_events();
            let pending: Vec<i32> = self
                .signals
                .as_mut()
                .map(|s| s.pending().collect())
                .unwrap_or_default();
            for signal in pending {
                self.on_signal(signal);
            }
            self.reap();
            match self.phase {
                Phase::Running => {
                    self.spawn_missing();
                }
                Phase::Reloading { deadline } | Phase::Stopping { deadline } => {
                    if self.pids.is_empty() {
                        if matches!(self.phase, Phase::Reloading { .. }) {
                            return Err(self.reexec());
                        }
                        self.server.cleanup(true);
                        self.log(format_args!("goodbye to uWSGI."));
                        return Ok(Exit::Stopped);
                    }
                    if Instant::now() >= deadline {
                        self.no_mercy();
                    }
                }
            }
            if last_second.elapsed() >= Duration::from_secs(1) {
                last_second = Instant::now();
                self.check_harakiri();
                self.check_recycling();
            }
            self.drain_signals();
            for signum in self.scheduler.due(&self.shared.state) {
                self.route(signum);
            }
            let now = self.shared.state.now();
            if last_sweep.elapsed() >= CACHE_SWEEP_EVERY {
                last_sweep = Instant::now();
                self.shared.state.caches().sweep_expired(now);
            }
        }
    }

    /// Sleeps in `poll` until the stats socket, a UDP socket or the signal intake has
    /// something, or a tick passes; serves the stats and UDP sockets.
    fn wait_for_events(&mut self) {
        let stats = self.server.stats_listener().cloned();
        let udp: Vec<_> = (self.server.udp_sockets().iter())
            .zip(self.server.udp_roles().iter().cloned())
            .map(|(s, role)| (Arc::clone(s), role))
            .chain(
                self.server
                    .snmp_socket()
                    .map(|s| (Arc::clone(s), UdpRole::Snmp)),
            )
            .collect();
        let mut fds: Vec<PollFd<'_>> = Vec::with_capacity(2 + udp.len());
        fds.push(PollFd::new(&self.intake, PollFlags::IN));
        if let Some(stats) = &stats {
            fds.push(PollFd::from_borrowed_fd(stats.as_fd(), PollFlags::IN));
        }
        for (socket, _) in &udp {
            fds.push(PollFd::new(socket.as_ref(), PollFlags::IN));
        }
        let timeout = rustix::time::Timespec {
            tv_sec: 0,
            tv_nsec: i64::from(TICK.subsec_nanos()),
        };
        if rustix::event::poll(&mut fds, Some(&timeout)).is_err() {
            return;
        }
        let ready: Vec<bool> = fds.iter().map(|fd| !fd.revents().is_empty()).collect();
        drop(fds);
        if let Some(stats) = &stats
            && ready.get(1).copied().unwrap_or(false)
            && let Err(err) =
                crate::stats::answer_one(stats, &self.shared, &self.socket_names, self.started_at)
        {
            self.log(format_args!("stats: {err}"));
        }
        let first_udp = 1 + usize::from(stats.is_some());
        for (index, (socket, role)) in udp.iter().enumerate() {
            if ready.get(first_udp + index).copied().unwrap_or(false) {
                crate::server::answer_datagrams(socket, role, &self.shared);
            }
        }
    }

    fn on_signal(&mut self, signal: i32) {
        let die_on_term = self.config().die_on_term;
        match signal {
            SIGHUP => {
                self.log(format_args!("...gracefully killing workers..."));
                self.begin_reload(true);
            }
            SIGTERM if die_on_term => {
                self.log(format_args!(
                    "SIGTERM received: shutting down gracefully..."
                ));
                self.begin_stop(true);
            }
            SIGTERM => {
                self.log(format_args!("...brutally killing workers..."));
                self.begin_reload(false);
            }
            SIGQUIT if die_on_term => {
                self.log(format_args!("...brutally killing workers..."));
                self.begin_reload(false);
            }
            SIGINT | SIGQUIT => {
                self.log(format_args!("SIGINT/SIGQUIT received...killing workers..."));
                self.begin_stop(false);
            }
            // uWSGI: SIGUSR1 prints statistics, SIGUSR2 the workers' status; one report
            // here covers both.
            SIGUSR1 | SIGUSR2 => self.log_stats(),
            _ => {}
        }
    }

    /// Asks every child to stop: gracefully (SIGHUP: finish the request in hand) or
    /// at once (SIGINT).
    fn curse_all(&mut self, graceful: bool) {
        let worker_signal = if graceful { Signal::HUP } else { Signal::INT };
        // Spoolers always get SIGHUP first: they stop after the job in hand, which is
        // never lost either way (its file stays until the handler says done).
        let spooler_signal = if graceful { Signal::HUP } else { Signal::INT };
        for slot in &mut self.workers {
            if let Some(pid) = slot.pid {
                slot.cursed = true;
                let _ = rustix::process::kill_process(pid, worker_signal);
            }
        }
        for slot in &mut self.spoolers {
            if let Some(pid) = slot.pid {
                slot.cursed = true;
                let _ = rustix::process::kill_process(pid, spooler_signal);
            }
        }
        // Mules hold no request: uWSGI kills them outright on reload and shutdown.
        for slot in &mut self.mules {
            if let Some(pid) = slot.pid {
                slot.cursed = true;
                let _ = rustix::process::kill_process(pid, Signal::KILL);
            }
        }
    }

    fn begin_reload(&mut self, graceful: bool) {
        if self.phase != Phase::Running {
            return;
        }
        self.phase = Phase::Reloading {
            deadline: Instant::now() + self.config().reload_mercy,
        };
        self.curse_all(graceful);
    }

    fn begin_stop(&mut self, graceful: bool) {
        if let Phase::Stopping { .. } = self.phase {
            // A second stop signal while stopping gracefully: stop at once.
            if !graceful {
                self.curse_all(false);
            }
            return;
        }
        self.phase = Phase::Stopping {
            deadline: Instant::now() + self.config().reload_mercy,
        };
        self.curse_all(graceful);
    }

    /// The reload mercy is over: SIGKILL whatever is left.
    fn no_mercy(&mut self) {
        for (&pid, role) in &self.pids {
            self.shared.log(format_args!(
                "{role:?} (pid: {pid}) is taking too much time to die...NO MERCY !!!"
            ));
            if let Some(pid) = Pid::from_raw(pid) {
                let _ = rustix::process::kill_process(pid, Signal::KILL);
            }
        }
    }

    /// Collects every child that ended, logs how, and frees its slot.
    fn reap(&mut self) {
        loop {
            let (pid, status) = match rustix::process::waitpid(None, WaitOptions::NOHANG) {
                Ok(Some(found)) => found,
                Ok(None) | Err(_) => return,
            };
            let raw = pid.as_raw_nonzero().get();
            let Some(role) = self.pids.remove(&raw) else {
                continue;
            };
            let signal = status.terminating_signal();
            let code = status.exit_status();
            match role {
                Role::Worker(index) => {
                    let id = index + 1;
                    let slot = &mut self.workers[index];
                    let expected = std::mem::take(&mut slot.cursed);
                    slot.pid = None;
                    slot.signals = None;
                    slot.recycling_since = None;
                    // A worker that ended abnormally right after its spawn is respawned
                    // after a pause; one recycled normally (exit code 0) at once.
                    if code != Some(0) && slot.spawned_at.elapsed() < MIN_LIFETIME {
                        slot.next_spawn = Instant::now() + MIN_LIFETIME;
                    }
                    self.shared
                        .scoreboard
                        .worker(index, WorkerField::Pid)
                        .store(0, Ordering::Relaxed);
                    self.shared
                        .scoreboard
                        .worker(index, WorkerField::Accepting)
                        .store(0, Ordering::Relaxed);
                    match (signal, code) {
                        (Some(signal), _) if expected => self.log(format_args!(
                            "worker {id} (pid: {raw}) stopped by signal {signal}"
                        )),
                        (None, Some(0)) => {
                            self.log(format_args!("worker {id} killed successfully (pid: {raw})"));
                        }
                        (None, code) if expected => self.log(format_args!(
                            "worker {id} (pid: {raw}) stopped (exit code {})",
                            code.unwrap_or(-1)
                        )),
                        (Some(signal), _) => self.log(format_args!(
                            "DAMN ! worker {id} (pid: {raw}) died, killed by signal {signal} :( trying respawn ..."
                        )),
                        (None, Some(FAILED_APP_CODE)) => self.log(format_args!(
                            "OOPS ! failed loading app in worker {id} (pid {raw}) :( trying again..."
                        )),
                        (None, code) => self.log(format_args!(
                            "DAMN ! worker {id} (pid: {raw}) died, exit code {} :( trying respawn ...",
                            code.unwrap_or(-1)
                        )),
                    }
                }
                Role::Spooler(index) => {
                    let slot = &mut self.spoolers[index];
                    let expected = std::mem::take(&mut slot.cursed);
                    slot.pid = None;
                    slot.signals = None;
                    if code != Some(0) && slot.spawned_at.elapsed() < MIN_LIFETIME {
                        slot.next_spawn = Instant::now() + MIN_LIFETIME;
                    }
                    if let Some(cell) = self.shared.scoreboard.spooler(index, SpoolerField::Pid) {
                        cell.store(0, Ordering::Relaxed);
                    }
                    if let Some(cell) = self.shared.scoreboard.spooler(index, SpoolerField::Running)
                    {
                        cell.store(0, Ordering::Relaxed);
                    }
                    if expected {
                        self.log(format_args!("spooler (pid: {raw}) annihilated"));
                    } else {
                        match signal {
                            Some(signal) => self.log(format_args!(
                                "OOOPS the spooler (pid: {raw}) is no more (killed by signal {signal})...trying respawn..."
                            )),
                            None => self.log(format_args!(
                                "OOOPS the spooler (pid: {raw}) is no more (exit code {})...trying respawn...",
                                code.unwrap_or(-1)
                            )),
                        }
                    }
                }
                Role::Mule(index) => {
                    let id = index + 1;
                    self.shared.mules.set_pid(index, 0, false);
                    let slot = &mut self.mules[index];
                    let expected = std::mem::take(&mut slot.cursed);
                    slot.pid = None;
                    slot.signals = None;
                    if slot.spawned_at.elapsed() < MIN_LIFETIME {
                        slot.next_spawn = Instant::now() + MIN_LIFETIME;
                    }
                    if expected {
                        self.log(format_args!("mule {id} (pid: {raw}) killed"));
                    } else {
                        match signal {
                            Some(signal) => self.log(format_args!(
                                "OOOPS mule {id} (pid: {raw}) crippled (killed by signal {signal})...trying respawn ..."
                            )),
                            None => self.log(format_args!(
                                "OOOPS mule {id} (pid: {raw}) crippled (exit code {})...trying respawn ...",
                                code.unwrap_or(-1)
                            )),
                        }
                    }
                }
            }
        }
    }

    fn spawn_missing(&mut self) {
        let now = Instant::now();
        for index in 0..self.workers.len() {
            let slot = &self.workers[index];
            if slot.pid.is_none() && now >= slot.next_spawn {
                self.spawn(Role::Worker(index));
            }
        }
        for index in 0..self.spoolers.len() {
            let slot = &self.spoolers[index];
            if slot.pid.is_none() && now >= slot.next_spawn {
                self.spawn(Role::Spooler(index));
            }
        }
        for index in 0..self.mules.len() {
            let slot = &self.mules[index];
            if slot.pid.is_none() && now >= slot.next_spawn {
                self.spawn(Role::Mule(index));
            }
        }
    }

    /// Forks one child for `role`. The master has no other thread, so the child starts
    /// with no lock held by anyone.
    fn spawn(&mut self, role: Role) {
        let (mine, theirs) = match UnixDatagram::pair() {
            Ok(pair) => pair,
            Err(err) => {
                self.log(format_args!("cannot create a signal channel: {err}"));
                return;
            }
        };
        if let Err(err) = mine.set_nonblocking(true) {
            self.log(format_args!("cannot create a signal channel: {err}"));
            return;
        }
        let respawn = match role {
            Role::Worker(index) => {
                let board = &self.shared.scoreboard;
                let respawn = board.get(index, WorkerField::Respawns) > 0;
                board.reset_for_spawn(index);
                respawn
            }
            Role::Spooler(index) => {
                if let Some(cell) = self
                    .shared
                    .scoreboard
                    .spooler(index, SpoolerField::Respawns)
                {
                    cell.fetch_add(1, Ordering::Relaxed);
                }
                false
            }
            Role::Mule(index) => self.mules[index].spawns > 0,
        };
        let app = Arc::clone(&self.shared.app);
        let master_pid = rustix::process::getpid();
        app.before_fork();
        let forked = sys::fork();
        match forked {
            Ok(sys::Forked::Child) => {
                drop(mine);
                let code = match role {
                    Role::Worker(index) => self.worker_main(index, theirs, master_pid),
                    Role::Spooler(index) => self.spooler_main(index, theirs, master_pid),
                    Role::Mule(index) => self.mule_main(index, theirs, master_pid),
                };
                let _ = io::stderr().flush();
                std::process::exit(code);
            }
            Ok(sys::Forked::Parent(pid)) => {
                app.after_fork_parent();
                let raw = pid.as_raw_nonzero().get();
                self.pids.insert(raw, role);
                let slot = match role {
                    Role::Worker(index) => &mut self.workers[index],
                    Role::Spooler(index) => &mut self.spoolers[index],
                    Role::Mule(index) => &mut self.mules[index],
                };
                slot.pid = Some(pid);
                slot.spawns += 1;
                slot.signals = Some(mine);
                slot.spawned_at = Instant::now();
                slot.cursed = false;
                slot.recycling_since = None;
                match role {
                    Role::Worker(index) => {
                        self.shared
                            .scoreboard
                            .worker(index, WorkerField::Pid)
                            .store(u64::from(raw.unsigned_abs()), Ordering::Relaxed);
                        if respawn {
                            self.log(format_args!(
                                "Respawned uWSGI worker {} (new pid: {raw})",
                                index + 1
                            ));
                        } else {
                            self.log(format_args!(
                                "spawned uWSGI worker {} (pid: {raw}, cores: {})",
                                index + 1,
                                self.config().cores()
                            ));
                        }
                    }
                    Role::Spooler(index) => {
                        if let Some(cell) = self.shared.scoreboard.spooler(index, SpoolerField::Pid)
                        {
                            cell.store(u64::from(raw.unsigned_abs()), Ordering::Relaxed);
                        }
                        let dir = self.spooler_dir(index);
                        self.log(format_args!(
                            "spawned the uWSGI spooler on dir {dir} with pid {raw}"
                        ));
                    }
                    Role::Mule(index) => {
                        let id = index + 1;
                        (self.shared.mules).set_pid(index, u64::from(raw.unsigned_abs()), respawn);
                        if respawn {
                            self.log(format_args!("respawned uWSGI mule {id} (new pid: {raw})"));
                        } else {
                            self.log(format_args!("spawned uWSGI mule {id} (pid: {raw})"));
                        }
                    }
                }
            }
            Err(err) => {
                app.after_fork_parent();
                self.log(format_args!("fork() failed: {err}"));
                let slot = match role {
                    Role::Worker(index) => &mut self.workers[index],
                    Role::Spooler(index) => &mut self.spoolers[index],
                    Role::Mule(index) => &mut self.mules[index],
                };
                slot.next_spawn = Instant::now() + MIN_LIFETIME;
            }
        }
    }

    fn spooler_dir(&self, index: usize) -> String {
        let per_dir = self.config().spooler_processes.max(1);
        self.shared
            .state
            .spoolers()
            .iter()
            .nth(index / per_dir)
            .map(|s| s.dir().display().to_string())
            .unwrap_or_default()
    }

    /// `--harakiri`: a worker whose oldest request started too long ago is killed; so is
    /// one whose user harakiri (`uwsgi.set_user_harakiri`) expired, with or without
    /// `--harakiri`, as uWSGI's master checks both.
    fn check_harakiri(&mut self) {
        if self.phase != Phase::Running {
            return;
        }
        let limit = self.config().harakiri;
        let limit_ms =
            (!limit.is_zero()).then(|| u64::try_from(limit.as_millis()).unwrap_or(u64::MAX));
        let now = now_ms();
        for index in 0..self.workers.len() {
            let Some(pid) = self.workers[index].pid else {
                continue;
            };
            let board = &self.shared.scoreboard;
            let user_deadline = board.get(index, WorkerField::UserHarakiri);
            let oldest = board.oldest_request(index);
            let expired = limit_ms.and_then(|limit_ms| {
                oldest.filter(|&(_, started)| now.saturating_sub(started) > limit_ms)
            });
            let (core, started) = if let Some(expired) = expired {
                expired
            } else if user_deadline != 0 && now > user_deadline {
                // Disarmed here so that the respawned worker does not inherit it (the
                // spawn clears it too) and the kill is not repeated on every tick.
                board
                    .worker(index, WorkerField::UserHarakiri)
                    .store(0, Ordering::Relaxed);
                let (core, started) = oldest.unwrap_or((0, now));
                self.log(format_args!(
                    "HARAKIRI (user) triggered by worker {} core {core} !!!",
                    index + 1
                ));
                (core, started)
            } else {
                continue;
            };
            let board = &self.shared.scoreboard;
            let tries = board
                .worker(index, WorkerField::HarakiriCount)
                .fetch_add(1, Ordering::Relaxed)
                + 1;
            let raw = pid.as_raw_nonzero().get();
            self.log(format_args!(
                "*** HARAKIRI ON WORKER {} (pid: {raw}, try: {tries}) ***",
                index + 1
            ));
            if self.config().harakiri_verbose {
                for (what, file) in [("syscall", "syscall"), ("wchan", "wchan")] {
                    if let Ok(text) = std::fs::read_to_string(format!("/proc/{raw}/{file}")) {
                        self.log(format_args!("HARAKIRI: -- {what}> {}", text.trim()));
                    }
                }
                self.log(format_args!(
                    "HARAKIRI: --- uWSGI worker {} core {core} (pid: {raw}) WAS managing a request for {} ms ---",
                    index + 1,
                    now.saturating_sub(started)
                ));
            }
            // The master expects no death notice of its own: the reaper logs it.
            let _ = rustix::process::kill_process(pid, Signal::KILL);
        }
        self.check_user_harakiri_of_spoolers_and_mules(now);
    }

    /// The user harakiri of spoolers and mules (`uwsgi.set_user_harakiri` there): an
    /// expired one kills the process, which the reaper respawns, as uWSGI's
    /// `uwsgi_master_check_spoolers_deadline` / `_mules_deadline`. Disarmed when it
    /// fires, so that the new process starts without it.
    fn check_user_harakiri_of_spoolers_and_mules(&self, now: u64) {
        let board = &self.shared.scoreboard;
        let expired = |cell: Option<&AtomicU64>| {
            cell.filter(|cell| {
                let deadline = cell.load(Ordering::Relaxed);
                deadline != 0 && now > deadline
            })
            .inspect(|cell| cell.store(0, Ordering::Relaxed))
            .is_some()
        };
        for (index, slot) in self.spoolers.iter().enumerate() {
            if let Some(pid) = slot.pid
                && expired(board.spooler(index, SpoolerField::UserHarakiri))
            {
                let raw = pid.as_raw_nonzero().get();
                self.log(format_args!("*** HARAKIRI ON THE SPOOLER (pid: {raw}) ***"));
                let _ = rustix::process::kill_process(pid, Signal::KILL);
            }
        }
        for (index, slot) in self.mules.iter().enumerate() {
            if let Some(pid) = slot.pid
                && expired(board.mule_user_harakiri(index))
            {
                let raw = pid.as_raw_nonzero().get();
                self.log(format_args!(
                    "*** HARAKIRI ON MULE {} (pid: {raw}) ***",
                    index + 1
                ));
                let _ = rustix::process::kill_process(pid, Signal::KILL);
            }
        }
    }

    /// `--worker-reload-mercy`: a worker recycling itself (max-requests) that takes too
    /// long to finish is killed.
    fn check_recycling(&mut self) {
        if self.phase != Phase::Running {
            return;
        }
        let mercy = self.config().worker_reload_mercy;
        for index in 0..self.workers.len() {
            let Some(pid) = self.workers[index].pid else {
                continue;
            };
            let accepting = self.shared.scoreboard.get(index, WorkerField::Accepting) != 0;
            let slot = &mut self.workers[index];
            if accepting || slot.spawned_at.elapsed() < MIN_LIFETIME {
                slot.recycling_since = None;
                continue;
            }
            let since = *slot.recycling_since.get_or_insert_with(Instant::now);
            if since.elapsed() > mercy {
                let raw = pid.as_raw_nonzero().get();
                self.shared.log(format_args!(
                    "worker {} (pid: {raw}) is taking too much time to die...NO MERCY !!!",
                    index + 1
                ));
                let _ = rustix::process::kill_process(pid, Signal::KILL);
            }
        }
    }

    /// Takes what the children sent off the intake socket — raised signals (one byte)
    /// and timer, cron and file monitor registrations ([`ScheduleRequest`]) — and the
    /// signals the master raised itself, and routes each signal.
    fn drain_signals(&mut self) {
        let mut buffer = [0u8; 512];
        while let Ok(len) = self.intake.recv(&mut buffer) {
            match &buffer[..len] {
                [signum] => {
                    self.shared.state.signal_queue().raise_local(*signum);
                }
                message => match ScheduleRequest::decode(message) {
                    Some(request) => {
                        let now_ms = self.shared.state.clock().now_millis();
                        if let Err(err) = self.shared.state.schedules().apply(&request, now_ms) {
                            self.log(format_args!("cannot register {request:?}: {err}"));
                        }
                    }
                    None if len == 0 => break,
                    None => self.log(format_args!(
                        "ignoring a {len}-byte message on the signal intake"
                    )),
                },
            }
        }
        while let Some(signum) = self.shared.state.signal_queue().try_next() {
            self.route(signum);
        }
    }

    /// Sends `signum` to the processes its registration targets.
    fn route(&mut self, signum: u8) {
        self.shared.scoreboard.count_signal();
        let live: Vec<usize> = (0..self.workers.len())
            .filter(|&i| self.workers[i].pid.is_some())
            .collect();
        #[derive(Clone, Copy)]
        enum Kind {
            Worker,
            Spooler,
            Mule,
        }
        let targets: Vec<(Kind, usize)> = match self.shared.state.signals().route(signum) {
            SignalTarget::AnyWorker => {
                if live.is_empty() {
                    Vec::new()
                } else {
                    self.next_any_worker = (self.next_any_worker + 1) % live.len();
                    vec![(Kind::Worker, live[self.next_any_worker])]
                }
            }
            SignalTarget::AllWorkers | SignalTarget::ActiveWorkers => {
                live.iter().map(|&i| (Kind::Worker, i)).collect()
            }
            SignalTarget::Worker(n) => {
                let index = usize::try_from(n).unwrap_or(usize::MAX) - 1;
                if live.contains(&index) {
                    vec![(Kind::Worker, index)]
                } else {
                    self.log(format_args!("signal {signum}: worker{n} is not running"));
                    Vec::new()
                }
            }
            SignalTarget::Spooler => (0..self.spoolers.len())
                .filter(|&i| self.spoolers[i].pid.is_some())
                .map(|i| (Kind::Spooler, i))
                .collect(),
            SignalTarget::AllMules => (0..self.mules.len())
                .filter(|&i| self.mules[i].pid.is_some())
                .map(|i| (Kind::Mule, i))
                .collect(),
            SignalTarget::AnyMule => (0..self.mules.len())
                .find(|&i| self.mules[i].pid.is_some())
                .map(|i| (Kind::Mule, i))
                .into_iter()
                .collect(),
            SignalTarget::Mule(n) => {
                let index = usize::try_from(n).unwrap_or(usize::MAX).wrapping_sub(1);
                if self.mules.get(index).is_some_and(|slot| slot.pid.is_some()) {
                    vec![(Kind::Mule, index)]
                } else {
                    self.log(format_args!("signal {signum}: mule{n} is not running"));
                    Vec::new()
                }
            }
            // A farm has one signal pipe in uWSGI, read by whichever of its mules is
            // free: one mule gets the signal.
            target @ (SignalTarget::Farm(_) | SignalTarget::FarmNamed(_)) => {
                let members = match &target {
                    SignalTarget::Farm(n) => usize::try_from(*n)
                        .ok()
                        .and_then(|n| self.shared.mules.farm_members_by_number(n)),
                    SignalTarget::FarmNamed(name) => self.shared.mules.farm_members(name),
                    _ => None,
                };
                match members {
                    None => {
                        self.log(format_args!("invalid signal target: {target}"));
                        Vec::new()
                    }
                    Some(members) => members
                        .iter()
                        .map(|id| id.wrapping_sub(1))
                        .find(|&i| self.mules.get(i).is_some_and(|slot| slot.pid.is_some()))
                        .map(|i| (Kind::Mule, i))
                        .into_iter()
                        .collect(),
                }
            }
            // uWSGI accepts it and sends nothing.
            SignalTarget::Subscribed => Vec::new(),
            other => {
                self.log(format_args!("^^^ UNSUPPORTED SIGNAL TARGET: {other} ^^^"));
                Vec::new()
            }
        };
        for (kind, index) in targets {
            let slot = match kind {
                Kind::Worker => &self.workers[index],
                Kind::Spooler => &self.spoolers[index],
                Kind::Mule => {
                    self.shared.mules.count_signal(index);
                    &self.mules[index]
                }
            };
            if let Some(channel) = &slot.signals
                && let Err(err) = channel.send(&[signum])
            {
                self.shared
                    .log(format_args!("cannot deliver signal {signum}: {err}"));
            }
        }
    }

    /// SIGUSR1: uWSGI prints its stats; here one line per worker.
    fn log_stats(&self) {
        let board = &self.shared.scoreboard;
        self.log(format_args!(
            "*** Stats: {} requests, {} workers ***",
            board.total_requests(),
            board.workers()
        ));
        for index in 0..board.workers() {
            let requests = board.get(index, WorkerField::Requests);
            let running = board.get(index, WorkerField::RunningTimeUs);
            self.log(format_args!(
                "worker {} (pid: {}) requests: {requests} avg_rt: {} us exceptions: {} respawns: {} harakiri: {} status: {}",
                index + 1,
                board.get(index, WorkerField::Pid),
                running.checked_div(requests).unwrap_or(0),
                board.get(index, WorkerField::Exceptions),
                board.get(index, WorkerField::Respawns),
                board.get(index, WorkerField::HarakiriCount),
                if board.get(index, WorkerField::Busy) > 0 { "busy" } else { "idle" },
            ));
        }
    }

    /// Replaces this process image with a fresh one of the same program and arguments,
    /// passing the listening sockets on. Returns only on failure.
    fn reexec(&mut self) -> io::Error {
        let mut fds: Vec<BorrowedFd<'_>> = Vec::new();
        for listener in self.server.listeners() {
            fds.push(listener.as_fd());
        }
        for udp in self.server.udp_sockets() {
            fds.push(udp.as_fd());
        }
        if let Some(stats) = self.server.stats_listener() {
            fds.push(stats.as_fd());
        }
        if let Some(snmp) = self.server.snmp_socket() {
            fds.push(snmp.as_fd());
        }
        let mut list = Vec::new();
        for fd in &fds {
            if let Err(err) = rustix::io::fcntl_setfd(fd, rustix::io::FdFlags::empty()) {
                return err.into();
            }
            list.push(fd.as_raw_fd().to_string());
        }
        // The UDP sockets were made non-blocking for the poll loop; the stats listener
        // and the stream listeners were never touched.
        for udp in self
            .server
            .udp_sockets()
            .iter()
            .chain(self.server.snmp_socket())
        {
            let _ = udp.set_nonblocking(false);
        }
        self.log(format_args!("binary reloading uWSGI..."));
        // Blocked across the exec (the mask survives it) and unblocked by the new image
        // once its handlers are in place: a signal sent meanwhile waits instead of
        // hitting the default action.
        let mut env: Vec<(OsString, OsString)> = std::env::vars_os()
            .filter(|(k, _)| k != FDS_ENV && k != RELOADS_ENV)
            .collect();
        env.push((
            FDS_ENV.into(),
            format!("{}:{}", std::process::id(), list.join(",")).into(),
        ));
        env.push((RELOADS_ENV.into(), (reloads() + 1).to_string().into()));
        sys::block_signals(&SIGNALS, true);
        // `std::process::Command::exec` would unblock every signal just before the
        // exec; the direct call keeps the mask.
        let err = sys::execve(&self.program, &self.args, &env);
        sys::block_signals(&SIGNALS, false);
        self.log(format_args!(
            "cannot re-execute {}: {err}",
            self.program.display()
        ));
        err
    }

    /// The forked worker `index`: serves until told to stop, returns its exit code.
    fn worker_main(&mut self, index: usize, channel: UnixDatagram, master: Pid) -> i32 {
        let id = index + 1;
        let shared = Arc::clone(&self.shared);
        let Some(signals) = self.child_setup(master) else {
            return END_CODE;
        };
        if let Err(err) = shared.app.start_worker(id, true) {
            shared.log(format_args!("worker {id}: application start failed: {err}"));
            return FAILED_APP_CODE;
        }
        let me = u64::from(std::process::id());
        shared
            .scoreboard
            .worker(index, WorkerField::Pid)
            .store(me, Ordering::Relaxed);
        self.start_signal_thread(channel, u32::try_from(id).unwrap_or(u32::MAX), Some(index));
        if let Err(err) = sys::install_wake_handler() {
            shared.log(format_args!("worker {id}: {err}"));
            return END_CODE;
        }
        let stopping = Arc::new(AtomicBool::new(false));
        let threads_per_listener = self.config().cores().max(1);
        let max_requests = self.config().max_requests;
        // The HTTP listeners' poller: this process's own, made after the fork.
        let poller = match self.server.http_poller(index) {
            Ok(poller) => poller.map(Arc::new),
            Err(err) => {
                shared.log(format_args!("worker {id}: http poller: {err}"));
                return END_CODE;
            }
        };
        let mut threads = Vec::new();
        let listeners = self.server.listeners().iter().zip(self.server.protocols());
        for (listener, protocol) in listeners {
            let protocol = *protocol;
            for core in 0..threads_per_listener {
                let in_accept = Arc::new(AtomicBool::new(false));
                let seat = Seat {
                    worker: index,
                    core,
                    max_requests,
                    in_accept: Some(Arc::clone(&in_accept)),
                };
                let (listener, thread_shared, thread_stopping) = (
                    Arc::clone(listener),
                    Arc::clone(&shared),
                    Arc::clone(&stopping),
                );
                let thread_poller = match protocol {
                    Protocol::Uwsgi => None,
                    Protocol::Http => poller.clone(),
                };
                let handle = std::thread::Builder::new()
                    .name(format!("worker{id}-core{core}"))
                    .spawn(move || match thread_poller {
                        Some(poller) => {
                            crate::http::park::run(&poller, &seat, &thread_shared, &thread_stopping)
                        }
                        None => {
                            crate::server::worker(seat, &listener, &thread_shared, &thread_stopping)
                        }
                    });
                match handle {
                    Ok(handle) => threads.push((handle, in_accept)),
                    Err(err) => {
                        shared.log(format_args!("worker {id}: cannot start a thread: {err}"));
                        return END_CODE;
                    }
                }
            }
        }
        shared
            .scoreboard
            .worker(index, WorkerField::Accepting)
            .store(1, Ordering::Relaxed);
        let mut signals = signals;
        loop {
            for signal in signals.pending() {
                match signal {
                    SIGHUP => {
                        shared.log(format_args!(
                            "Gracefully killing worker {id} (pid: {me})..."
                        ));
                        stopping.store(true, Ordering::SeqCst);
                    }
                    SIGTERM | SIGINT | SIGQUIT => {
                        let _ = io::stderr().flush();
                        std::process::exit(END_CODE);
                    }
                    _ => {}
                }
            }
            if stopping.load(Ordering::SeqCst) {
                shared
                    .scoreboard
                    .worker(index, WorkerField::Accepting)
                    .store(0, Ordering::Relaxed);
                // Wake the HTTP threads waiting on the poller; interrupt the threads
                // still waiting in accept, repeated until they are all out, since one
                // may enter accept just after a wake-up.
                if let Some(poller) = &poller {
                    poller.wake_all();
                }
                for (thread, in_accept) in &threads {
                    if !thread.is_finished() && in_accept.load(Ordering::SeqCst) {
                        sys::wake_thread(thread);
                    }
                }
                if threads.iter().all(|(thread, _)| thread.is_finished()) {
                    break;
                }
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        for (thread, _) in threads {
            let _ = thread.join();
        }
        // Idle keep-alive connections are closed cleanly (requests in flight are done).
        if let Some(poller) = &poller {
            poller.close_all();
        }
        shared.app.stop_worker();
        shared.log(format_args!("...The work of process {me} is done. Seeya!"));
        0
    }

    /// The forked spooler process `index`: runs jobs until told to stop.
    fn spooler_main(&mut self, index: usize, channel: UnixDatagram, master: Pid) -> i32 {
        let shared = Arc::clone(&self.shared);
        let Some(mut signals) = self.child_setup(master) else {
            return END_CODE;
        };
        crate::scoreboard::become_spooler(index);
        // A spooler is not a worker: uWSGI numbers it 0, like the master.
        if let Err(err) = shared.app.start_worker(0, true) {
            shared.log(format_args!("spooler: application start failed: {err}"));
            return FAILED_APP_CODE;
        }
        if let Some(cell) = shared.scoreboard.spooler(index, SpoolerField::Pid) {
            cell.store(u64::from(std::process::id()), Ordering::Relaxed);
        }
        self.start_signal_thread(channel, MASTER, None);
        let per_dir = self.config().spooler_processes.max(1);
        let Some(spooler) = shared.state.spoolers().iter().nth(index / per_dir).cloned() else {
            return 0;
        };
        let stopping = Arc::new(AtomicBool::new(false));
        let mut last_run: Option<Instant> = None;
        let mut last_seen = None;
        loop {
            for signal in signals.pending() {
                match signal {
                    SIGHUP | SIGTERM => stopping.store(true, Ordering::SeqCst),
                    SIGINT | SIGQUIT => return END_CODE,
                    _ => {}
                }
            }
            if stopping.load(Ordering::SeqCst) {
                break;
            }
            // A new job renames a file into the directory, which changes its mtime: a
            // cheap wake-up across processes (uWSGI signals the spooler instead).
            let seen = directory_stamp(spooler.dir());
            // Read on every turn: `uwsgi.set_spooler_frequency` in any process changes it.
            let frequency = shared.scoreboard.spooler_frequency();
            let due = last_run.is_none_or(|t| t.elapsed() >= frequency) || seen != last_seen;
            if due {
                last_seen = seen;
                last_run = Some(Instant::now());
                let running = shared.scoreboard.spooler(index, SpoolerField::Running);
                let done = shared.scoreboard.spooler(index, SpoolerField::Done);
                let app = Arc::clone(&shared.app);
                let stop = Arc::clone(&stopping);
                let mut handler = |task: &SpoolTask| {
                    // Told to stop mid-pass: leave the remaining jobs for the next spooler.
                    if stop.load(Ordering::SeqCst) {
                        return SpoolOutcome::Retry;
                    }
                    if let Some(cell) = running {
                        cell.store(1, Ordering::Relaxed);
                    }
                    let outcome = app.spool(task);
                    if let Some(cell) = running {
                        cell.store(0, Ordering::Relaxed);
                    }
                    if outcome == SpoolOutcome::Done
                        && let Some(cell) = done
                    {
                        cell.fetch_add(1, Ordering::Relaxed);
                    }
                    outcome
                };
                if let Err(err) = spooler.run_pending(shared.state.now(), &mut handler) {
                    shared.log(format_args!("spooler {}: {err}", spooler.dir().display()));
                }
                // Stop signals that came during the pass.
                for signal in signals.pending() {
                    match signal {
                        SIGHUP | SIGTERM => stopping.store(true, Ordering::SeqCst),
                        SIGINT | SIGQUIT => return END_CODE,
                        _ => {}
                    }
                }
                if stopping.load(Ordering::SeqCst) {
                    break;
                }
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        shared.app.stop_worker();
        0
    }

    /// The forked mule `index`: the app runs its script or its message loop; uWSGI
    /// signals routed here run on the signal thread meanwhile.
    fn mule_main(&mut self, index: usize, channel: UnixDatagram, master: Pid) -> i32 {
        let shared = Arc::clone(&self.shared);
        let Some(signals) = self.child_setup(master) else {
            return END_CODE;
        };
        let id = index + 1;
        crate::mules::Mules::become_mule(id);
        self.start_mule_signal_thread(channel, id);
        let code = shared
            .app
            .run_mule(id, shared.mules.script(id), &shared.mules);
        drop(signals);
        code
    }

    /// In a freshly forked child: die with the master, take over signal handling from
    /// it, and send raised uWSGI signals to the master. `None` if the master is gone.
    fn child_setup(&mut self, master: Pid) -> Option<Signals> {
        let _ = rustix::process::set_parent_process_death_signal(Some(Signal::KILL));
        // The master may have died before the line above took effect.
        if rustix::process::getppid() != Some(master) {
            return None;
        }
        // The child's own handlers first, then drop the master's copy (registering
        // twice is fine; there is never a moment with the default action).
        let signals = Signals::new(SIGNALS).ok()?;
        drop(self.signals.take());
        let intake = self.intake_tx.try_clone().ok()?;
        let registrations = self.intake_tx.try_clone().ok()?;
        self.shared
            .state
            .signal_queue()
            .forward_to(Box::new(move |signum| match intake.send(&[signum]) {
                Ok(_) => RaiseOutcome::Queued,
                Err(_) => RaiseOutcome::QueueFull,
            }));
        // Timers and the like registered here run in the master, as in uWSGI.
        self.shared
            .state
            .schedules()
            .forward_to(Box::new(move |request| {
                registrations.send(&request.encode()).is_ok()
            }));
        // Drop what only the master uses: the other children's signal channels.
        for slot in (self.workers.iter_mut())
            .chain(self.spoolers.iter_mut())
            .chain(self.mules.iter_mut())
        {
            slot.signals = None;
        }
        Some(signals)
    }

    /// A mule's signal thread: a mule is worker 0 to uWSGI, it runs the master's
    /// registrations.
    fn start_mule_signal_thread(&self, channel: UnixDatagram, id: usize) {
        let shared = Arc::clone(&self.shared);
        let spawned = std::thread::Builder::new()
            .name("signals".to_owned())
            .spawn(move || {
                let mut byte = [0u8; 1];
                while let Ok(1) = channel.recv(&mut byte) {
                    let signum = byte[0];
                    if let Err(err) = shared.state.signals().deliver(signum, MASTER) {
                        shared.log(format_args!(
                            "error managing signal {signum} on mule {id}: {err}"
                        ));
                    }
                }
            });
        if let Err(err) = spawned {
            self.shared
                .log(format_args!("cannot start the signal thread: {err}"));
        }
    }

    /// A thread that runs the handlers of the uWSGI signals the master routes here.
    fn start_signal_thread(&self, channel: UnixDatagram, id: u32, worker: Option<usize>) {
        let shared = Arc::clone(&self.shared);
        let spawned = std::thread::Builder::new()
            .name("signals".to_owned())
            .spawn(move || {
                let mut byte = [0u8; 1];
                while let Ok(1) = channel.recv(&mut byte) {
                    let signum = byte[0];
                    if let Some(worker) = worker {
                        shared
                            .scoreboard
                            .worker(worker, WorkerField::Signals)
                            .fetch_add(1, Ordering::Relaxed);
                    }
                    if let Err(err) = shared.state.signals().deliver(signum, id) {
                        // uWSGI: "error managing signal N on worker W" (spooler: its pid).
                        let who = match worker {
                            Some(_) => format!("worker {id}"),
                            None => format!("spooler {}", std::process::id()),
                        };
                        shared.log(format_args!(
                            "error managing signal {signum} on {who}: {err}"
                        ));
                    }
                }
            });
        if let Err(err) = spawned {
            self.shared
                .log(format_args!("cannot start the signal thread: {err}"));
        }
    }
}

/// The directory's modification time in nanoseconds, `None` if unreadable.
fn directory_stamp(dir: &std::path::Path) -> Option<(i64, i64)> {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata(dir)
        .ok()
        .map(|m| (m.mtime(), m.mtime_nsec()))
}

/// `fork(2)` for a worker that forks itself in the middle of a request
/// (`uwsgi.grunt()`): `None` in the child, the child's pid in the parent. The caller
/// (the Python host) holds the interpreter's fork locks around it.
#[cfg(feature = "python")]
pub(crate) fn fork_process() -> io::Result<Option<rustix::process::Pid>> {
    match sys::fork()? {
        sys::Forked::Child => Ok(None),
        sys::Forked::Parent(pid) => Ok(Some(pid)),
    }
}

/// The few system calls without a safe wrapper, each in its own small function.
mod sys {
    use std::io;
    use std::os::fd::{FromRawFd, OwnedFd, RawFd};

    use rustix::process::Pid;

    /// Which side of a fork this is.
    pub(super) enum Forked {
        Child,
        Parent(Pid),
    }

    /// fork(2).
    #[allow(unsafe_code)]
    pub(super) fn fork() -> io::Result<Forked> {
        // SAFETY: the master calls this from its main thread and starts no other thread
        // of its own, so no lock of the server (nor the allocator's, which glibc resets
        // at fork anyway) can be held by a thread that does not exist in the child. An
        // application that starts threads in `init` must make them fork-safe in
        // `before_fork` (the Python host takes the interpreter's fork locks there). The
        // child runs ordinary Rust code and ends with `process::exit`, never returning
        // into the master's loop.
        let pid = unsafe { libc::fork() };
        match pid {
            -1 => Err(io::Error::last_os_error()),
            0 => Ok(Forked::Child),
            pid => Pid::from_raw(pid)
                .map(Forked::Parent)
                .ok_or_else(|| io::Error::other("fork returned an invalid pid")),
        }
    }

    extern "C" fn wake_up(_: libc::c_int) {}

    /// Installs a do-nothing SIGWINCH handler **without** `SA_RESTART` (uWSGI uses
    /// SIGWINCH to "wake up a worker blocked in a syscall" too): a thread blocked in
    /// `accept` that receives it gets `EINTR` and looks at its stop flag.
    #[allow(unsafe_code)]
    pub(super) fn install_wake_handler() -> io::Result<()> {
        // SAFETY: `sigaction` is plain old data, valid when zeroed (empty mask, no
        // flags); the handler is an `extern "C"` function that does nothing, which is
        // async-signal-safe.
        let result = unsafe {
            let mut action: libc::sigaction = std::mem::zeroed();
            action.sa_sigaction = wake_up as extern "C" fn(libc::c_int) as usize;
            libc::sigemptyset(&mut action.sa_mask);
            libc::sigaction(libc::SIGWINCH, &action, std::ptr::null_mut())
        };
        if result == 0 {
            Ok(())
        } else {
            Err(io::Error::last_os_error())
        }
    }

    /// Sends SIGWINCH to one thread of this process.
    #[allow(unsafe_code)]
    pub(super) fn wake_thread(thread: &std::thread::JoinHandle<()>) {
        use std::os::unix::thread::JoinHandleExt;
        let id = thread.as_pthread_t();
        // SAFETY: `id` belongs to a thread of this process that has not been joined
        // (we hold its JoinHandle), so the pthread_t is valid even if it has exited.
        let _ = unsafe { libc::pthread_kill(id, libc::SIGWINCH) };
    }

    /// Blocks or unblocks `signals` for the calling thread (the master's only one).
    #[allow(unsafe_code)]
    pub(super) fn block_signals(signals: &[i32], block: bool) {
        // SAFETY: `set` is initialised by sigemptyset before use; pthread_sigmask only
        // reads it and changes this thread's mask.
        unsafe {
            let mut set: libc::sigset_t = std::mem::zeroed();
            libc::sigemptyset(&mut set);
            for &signal in signals {
                libc::sigaddset(&mut set, signal);
            }
            let how = if block {
                libc::SIG_BLOCK
            } else {
                libc::SIG_UNBLOCK
            };
            libc::pthread_sigmask(how, &set, std::ptr::null_mut());
        }
    }

    /// execve(2) of `program` with `args` (after argv[0]) and `env`, keeping the signal
    /// mask and the descriptors without close-on-exec. Returns only on failure.
    #[allow(unsafe_code)]
    pub(super) fn execve(
        program: &std::path::Path,
        args: &[std::ffi::OsString],
        env: &[(std::ffi::OsString, std::ffi::OsString)],
    ) -> io::Error {
        use std::ffi::CString;
        use std::os::unix::ffi::OsStrExt;
        let c = |bytes: &[u8]| CString::new(bytes).map_err(|_| io::ErrorKind::InvalidInput);
        let built = (|| -> Result<(CString, Vec<CString>, Vec<CString>), io::ErrorKind> {
            let path = c(program.as_os_str().as_bytes())?;
            let mut argv = vec![path.clone()];
            for arg in args {
                argv.push(c(arg.as_bytes())?);
            }
            let mut envp = Vec::new();
            for (key, value) in env {
                let mut pair = key.as_bytes().to_vec();
                pair.push(b'=');
                pair.extend_from_slice(value.as_bytes());
                envp.push(c(&pair)?);
            }
            Ok((path, argv, envp))
        })();
        let (path, argv, envp) = match built {
            Ok(built) => built,
            Err(kind) => {
                return io::Error::new(kind, "a NUL byte in the command line or environment");
            }
        };
        let argv_ptrs: Vec<*const libc::c_char> = argv
            .iter()
            .map(|a| a.as_ptr())
            .chain(std::iter::once(std::ptr::null()))
            .collect();
        let envp_ptrs: Vec<*const libc::c_char> = envp
            .iter()
            .map(|e| e.as_ptr())
            .chain(std::iter::once(std::ptr::null()))
            .collect();
        // SAFETY: `path`, and every pointer in the two NULL-terminated arrays, point to
        // NUL-terminated strings owned by `path`, `argv` and `envp`, which outlive the
        // call; execve only reads them.
        unsafe { libc::execve(path.as_ptr(), argv_ptrs.as_ptr(), envp_ptrs.as_ptr()) };
        io::Error::last_os_error()
    }

    /// Takes ownership of a descriptor inherited across `exec` from our previous image.
    #[allow(unsafe_code)]
    pub(super) fn adopt_fd(fd: RawFd) -> io::Result<OwnedFd> {
        if fd < 3 {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("inherited descriptor {fd} is not a socket"),
            ));
        }
        // SAFETY: `fd` comes from the list our previous image passed (one entry per
        // socket), it is adopted once, and nothing else in this process owns it; it is
        // checked to be open below before use (an invalid fd fails that call).
        let owned = unsafe { OwnedFd::from_raw_fd(fd) };
        rustix::io::fcntl_getfd(&owned)?;
        rustix::io::fcntl_setfd(&owned, rustix::io::FdFlags::CLOEXEC)?;
        Ok(owned)
    }
}
