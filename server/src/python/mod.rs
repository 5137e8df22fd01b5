//! The Python WSGI host: an embedded CPython (pyo3) running WSGI applications (PEP
//! 3333) behind the uwsgi protocol, with uwsgi-rs's `uwsgi` module built in, so that an
//! application written for uWSGI runs unchanged.
//!
//! * [`interpreter`]: starting CPython and loading the applications;
//! * [`environ`]: the WSGI environ of a request;
//! * [`input`]: the `wsgi.input` stream;
//! * [`response`]: `start_response`, `write()`, sending the result;
//! * [`file_wrapper`]: `wsgi.file_wrapper` (sent with `sendfile(2)`);
//! * [`log`]: the server log and `wsgi.errors`;
//! * [`fork`]: CPython's fork protocol for a forking master;
//! * [`thread_state`]: one Python thread state per worker thread, kept between requests;
//! * [`autoreload`]: `--py-autoreload`, reloading the server when a module file changes.
//!
//! Requests run on the server's worker threads: each takes the GIL for the Python
//! parts only and releases it around every socket read and write, so `--threads N`
//! serves N requests at once wherever the applications wait.

mod autoreload;
mod current;
mod environ;
mod file_wrapper;
mod fork;
mod input;
mod interpreter;
mod log;
mod request_io;
mod response;
mod thread_state;
mod websocket;

use std::cell::Cell;
use std::io::{self, Read};
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, OnceLock, RwLock};

use pyo3::prelude::*;
use pyo3::types::PyBytes;
use std::time::Duration;
use uwsgi_protocol::marshal::Value;
use uwsgi_protocol::packet::Request;
use uwsgi_pymod::embed::{self, EmbedConfig, Hooks, Host, MuleTarget, ProcessRole, WorkerInfo};

/// A mule's exit code when its app or script failed (the master respawns it).
const FAILED_MULE_CODE: i32 = 22;

use crate::app::{App, Output, Status};
use crate::config::{PythonConfig, ServerConfig};
use crate::state::ServerState;
use crate::state::spooler::{SpoolOutcome, SpoolTask};

use crate::scoreboard::WorkerField;
use interpreter::Mounted;
use log::Log;
use response::{Failure, Responder};

thread_local! {
    /// The number of the request this thread is serving (`uwsgi.request_id()`).
    static REQUEST_ID: Cell<u64> = const { Cell::new(0) };
    /// The request this thread is serving: its `CONTENT_LENGTH` and socket
    /// (`uwsgi.cl()`, `uwsgi.connection_fd()`); `None` between requests.
    static CURRENT: Cell<Option<(u64, Option<i32>)>> = const { Cell::new(None) };
    /// The current request's own handle on its connection (`write()`,
    /// `uwsgi.disconnect()`); `None` between requests.
    static CONNECTION: std::cell::RefCell<Option<crate::app::SharedConnection>> =
        const { std::cell::RefCell::new(None) };
    /// The current request's log variables (`uwsgi.set_logvar`).
    static LOGVARS: std::cell::RefCell<Vec<(Vec<u8>, Vec<u8>)>> =
        const { std::cell::RefCell::new(Vec::new()) };
    /// `uwsgi.log_this_request()` was called during the current request.
    static LOG_THIS: Cell<bool> = const { Cell::new(false) };
}

/// Counters shared by the app and the [`Host`] the `uwsgi` module asks.
#[derive(Debug, Default)]
struct Counters {
    requests: AtomicU64,
    tx: AtomicU64,
    busy: AtomicU32,
    worker_id: AtomicU32,
    /// The supervising master's pid in a forked worker; 0 without a master.
    master_pid: AtomicU32,
    /// The running server (its scoreboard covers every worker process), once built.
    server: OnceLock<std::sync::Weak<crate::server::Shared>>,
}

impl Counters {
    fn server(&self) -> Option<Arc<crate::server::Shared>> {
        self.server.get().and_then(std::sync::Weak::upgrade)
    }
}

/// The server as the embedded `uwsgi` module sees it.
#[derive(Debug)]
struct PythonHost {
    counters: Arc<Counters>,
    /// `--master`: the application loads in a master that forks the workers.
    master: bool,
    log: Arc<Log>,
    started_on: u64,
    /// `--grunt`.
    grunt: bool,
    /// `--websockets-max-size` (KiB; 0 for uWSGI's default).
    websockets_max_size: u64,
    /// `--socket-timeout`, for `uwsgi.route` to another node.
    socket_timeout: Duration,
    /// `--buffer-size`: the largest vars block (`uwsgi.add_var`).
    buffer_size: u16,
    /// The listening sockets (a grunt closes them).
    listen_fds: Vec<i32>,
}

/// A user harakiri deadline `seconds` from now, in the scoreboard's milliseconds since
/// the epoch; 0 (disarmed) for 0 seconds.
fn harakiri_deadline(seconds: u64) -> u64 {
    match seconds {
        0 => 0,
        _ => crate::scoreboard::now_ms().saturating_add(seconds.saturating_mul(1000)),
    }
}

/// uWSGI's line for `set_user_harakiri` in a server without a master.
fn no_master_harakiri() -> String {
    "!!! unable to set user harakiri without the master process !!!".to_owned()
}

impl PythonHost {
    /// The role with the worker id the scoreboard knows it by: a server without a
    /// master is worker 1 of its own scoreboard.
    fn process_role_for_board(&self) -> ProcessRole {
        match self.process_role() {
            ProcessRole::Alone => ProcessRole::Worker(1),
            role => role,
        }
    }

    fn master(&self) -> Option<rustix::process::Pid> {
        let pid = self.counters.master_pid.load(Ordering::Relaxed);
        i32::try_from(pid)
            .ok()
            .and_then(rustix::process::Pid::from_raw)
    }
}

impl Host for PythonHost {
    /// Forked mules and spoolers are worker 0, as in uWSGI; otherwise at least 1.
    fn worker_id(&self) -> u32 {
        match self.process_role() {
            ProcessRole::Mule(_) | ProcessRole::Spooler => 0,
            _ => self.counters.worker_id.load(Ordering::Relaxed).max(1),
        }
    }

    fn mule_id(&self) -> u32 {
        u32::try_from(crate::mules::Mules::my_id()).unwrap_or(u32::MAX)
    }

    fn process_role(&self) -> ProcessRole {
        let mule = self.mule_id();
        if mule > 0 {
            return ProcessRole::Mule(mule);
        }
        if self.counters.master_pid.load(Ordering::Relaxed) != 0 {
            // Forked by the master: workers count from 1, the spooler starts as 0.
            return match self.counters.worker_id.load(Ordering::Relaxed) {
                0 => ProcessRole::Spooler,
                id => ProcessRole::Worker(id),
            };
        }
        if self.master {
            ProcessRole::Master
        } else {
            ProcessRole::Alone
        }
    }

    fn mule_msg(&self, message: &[u8], target: MuleTarget<'_>) -> Result<bool, String> {
        let Some(shared) = self.counters.server() else {
            return Err("no mule configured".to_owned());
        };
        let target = match target {
            MuleTarget::AnyMule => crate::mules::Target::AnyMule,
            MuleTarget::Mule(id) => crate::mules::Target::Mule(usize::try_from(id).unwrap_or(0)),
            MuleTarget::Farm(name) => crate::mules::Target::Farm(name),
        };
        shared.mules.send(message, target)
    }

    fn mule_get_msg(
        &self,
        farms: bool,
        buffer_size: usize,
        timeout: Option<Duration>,
    ) -> Result<Option<Vec<u8>>, String> {
        match self.counters.server() {
            Some(shared) => shared.mules.receive(farms, buffer_size, timeout),
            None => Err("you can receive mule messages only in a mule !!!".to_owned()),
        }
    }

    fn option(&self, index: u8) -> Option<u32> {
        Some(self.counters.server()?.admin.get(index))
    }

    fn set_option(&self, index: u8, value: u32) -> bool {
        match self.counters.server() {
            Some(shared) => {
                shared.admin.set(index, value);
                true
            }
            None => false,
        }
    }

    fn set_warning_message(&self, message: &[u8]) -> bool {
        match self.counters.server() {
            Some(shared) => {
                shared.set_warning_message(message);
                true
            }
            None => false,
        }
    }

    fn farm_get_msg(&self) -> Option<Vec<u8>> {
        self.counters.server()?.mules.farm_message()
    }

    fn in_farm(&self, name: Option<&str>) -> bool {
        let me = crate::mules::Mules::my_id();
        let Some(shared) = self.counters.server() else {
            return false;
        };
        let farms = shared.mules.farms_of(me);
        match name {
            None => !farms.is_empty(),
            Some(name) => farms.contains(&name),
        }
    }

    /// The master's pid in a forked worker (`--master`); 0 when this process serves
    /// alone, as uWSGI without a master.
    fn masterpid(&self) -> u32 {
        self.counters.master_pid.load(Ordering::Relaxed)
    }

    /// Requests of every worker process: the master's scoreboard when there is one.
    fn total_requests(&self) -> u64 {
        match self.counters.server() {
            Some(shared) => shared.scoreboard.total_requests(),
            None => self.counters.requests.load(Ordering::Relaxed),
        }
    }

    fn request_id(&self) -> u64 {
        REQUEST_ID.with(Cell::get)
    }

    fn workers(&self) -> Vec<WorkerInfo> {
        if let Some(shared) = self.counters.server() {
            let board = &shared.scoreboard;
            return (0..board.workers())
                .map(|index| {
                    let get = |field| board.get(index, field);
                    WorkerInfo {
                        id: u32::try_from(index + 1).unwrap_or(u32::MAX),
                        pid: u32::try_from(get(WorkerField::Pid)).unwrap_or(0),
                        requests: get(WorkerField::Requests),
                        tx: get(WorkerField::Tx),
                        busy: get(WorkerField::Busy) > 0,
                        last_spawn: get(WorkerField::LastSpawn),
                    }
                })
                .collect();
        }
        vec![WorkerInfo {
            id: self.worker_id(),
            pid: std::process::id(),
            requests: self.counters.requests.load(Ordering::Relaxed),
            tx: self.counters.tx.load(Ordering::Relaxed),
            busy: self.counters.busy.load(Ordering::Relaxed) > 0,
            last_spawn: self.started_on,
        }]
    }

    /// SIGHUP to the master: its graceful reload (workers finish their requests, the
    /// master re-executes itself keeping the sockets). Without a master there is nothing
    /// to reload: logged, and `None` for Python, as uWSGI's failed `kill`.
    fn reload(&self) -> bool {
        match self.master() {
            Some(master) => {
                rustix::process::kill_process(master, rustix::process::Signal::HUP).is_ok()
            }
            None => {
                self.log
                    .write("uwsgi.reload(): this server runs without --master: nothing to reload");
                false
            }
        }
    }

    /// SIGQUIT to the master (uWSGI's `uwsgi.stop()`); without a master, SIGTERM to this
    /// process: the graceful stop `uwsgi-server` performs.
    fn stop(&self) -> bool {
        let (pid, signal) = match self.master() {
            Some(master) => (master, rustix::process::Signal::QUIT),
            None => (rustix::process::getpid(), rustix::process::Signal::TERM),
        };
        rustix::process::kill_process(pid, signal).is_ok()
    }

    fn log(&self, line: &str) {
        self.log.write(line);
    }

    fn request(&self) -> Option<&dyn embed::RequestIo> {
        CURRENT.with(Cell::get)?;
        Some(self)
    }

    fn content_length(&self) -> Option<u64> {
        CURRENT.with(Cell::get).map(|(length, _)| length)
    }

    fn connection_fd(&self) -> Option<i32> {
        CURRENT.with(Cell::get).and_then(|(_, fd)| fd)
    }

    fn log_this_request(&self) {
        if CURRENT.with(Cell::get).is_some() {
            LOG_THIS.with(|flag| flag.set(true));
        }
    }

    fn set_logvar(&self, key: &[u8], value: &[u8]) -> bool {
        if CURRENT.with(Cell::get).is_none() {
            return false;
        }
        LOGVARS.with(|vars| {
            let mut vars = vars.borrow_mut();
            match vars.iter_mut().find(|(k, _)| k == key) {
                Some(slot) => slot.1 = value.to_vec(),
                None => vars.push((key.to_vec(), value.to_vec())),
            }
        });
        true
    }

    fn get_logvar(&self, key: &[u8]) -> Option<Option<Vec<u8>>> {
        CURRENT.with(Cell::get)?;
        Some(LOGVARS.with(|vars| {
            vars.borrow()
                .iter()
                .find(|(k, _)| k == key)
                .map(|(_, v)| v.clone())
        }))
    }

    fn listen_queue(&self, id: usize) -> Option<u64> {
        self.listen_fds
            .get(id)
            .map(|&fd| crate::listen::listen_queue(fd))
    }

    /// A forked worker arms its slot of the scoreboard, which the master checks every
    /// second (uWSGI's `workers[id].user_harakiri`); the slot is disarmed when a
    /// request ends. Without a master nobody would kill the process: uWSGI's message.
    fn set_user_harakiri(&self, seconds: u64) -> Result<(), String> {
        match self.process_role() {
            ProcessRole::Worker(id) => {
                let shared = self.counters.server().ok_or_else(no_master_harakiri)?;
                let deadline = harakiri_deadline(seconds);
                let index = usize::try_from(id.saturating_sub(1)).unwrap_or(0);
                shared
                    .scoreboard
                    .worker(index, WorkerField::UserHarakiri)
                    .store(deadline, Ordering::Relaxed);
                Ok(())
            }
            // Code run while the master loads the app: uWSGI arms the master's own slot
            // (worker 0), which its checks never look at.
            ProcessRole::Master => Ok(()),
            ProcessRole::Alone => Err(no_master_harakiri()),
            // Mules and forked spoolers have cells of their own, which the master
            // checks too (uWSGI keeps their user_harakiri apart as well).
            ProcessRole::Mule(id) => {
                let shared = self.counters.server().ok_or_else(no_master_harakiri)?;
                let index = usize::try_from(id.saturating_sub(1)).unwrap_or(usize::MAX);
                let cell = shared.scoreboard.mule_user_harakiri(index);
                cell.map(|cell| cell.store(harakiri_deadline(seconds), Ordering::Relaxed))
                    .ok_or_else(no_master_harakiri)
            }
            ProcessRole::Spooler => {
                let shared = self.counters.server().ok_or_else(no_master_harakiri)?;
                let cell = crate::scoreboard::my_spooler().and_then(|index| {
                    shared
                        .scoreboard
                        .spooler(index, crate::scoreboard::SpoolerField::UserHarakiri)
                });
                cell.map(|cell| cell.store(harakiri_deadline(seconds), Ordering::Relaxed))
                    .ok_or_else(no_master_harakiri)
            }
        }
    }

    fn set_accepting(&self, accepting: bool) {
        if let (ProcessRole::Worker(id), Some(shared)) =
            (self.process_role_for_board(), self.counters.server())
        {
            let index = usize::try_from(id.saturating_sub(1)).unwrap_or(0);
            shared
                .scoreboard
                .worker(index, WorkerField::Accepting)
                .store(u64::from(accepting), Ordering::Relaxed);
        }
    }

    /// Every process of every spooler reads the frequency from the scoreboard.
    fn set_spooler_frequency(&self, seconds: u64) -> bool {
        match self.counters.server() {
            Some(shared) => {
                shared.scoreboard.set_spooler_frequency(seconds);
                true
            }
            None => false,
        }
    }

    /// The forked spoolers' pids from the scoreboard (0 for one not running now);
    /// without a master the spoolers are threads of this process, so its pid, as the
    /// stats server reports them.
    fn spooler_pids(&self) -> Option<Vec<u32>> {
        let shared = self.counters.server()?;
        let board = &shared.scoreboard;
        // Only a master forks spoolers.
        if !self.master || board.spoolers() == 0 {
            let me = std::process::id();
            return Some(vec![me; shared.state.spoolers().len()]);
        }
        Some(
            (0..board.spoolers())
                .map(|index| {
                    board
                        .spooler(index, crate::scoreboard::SpoolerField::Pid)
                        .map_or(0, |cell| {
                            u32::try_from(cell.load(Ordering::Relaxed)).unwrap_or(0)
                        })
                })
                .collect(),
        )
    }

    /// The cluster table is in memory shared by every process (the one reading the
    /// `--udp` sockets fills it), so any worker sees every announced node.
    fn cluster_nodes(&self) -> Vec<Vec<u8>> {
        self.counters.server().map_or_else(Vec::new, |shared| {
            shared
                .cluster
                .fresh(crate::stats::unix_now())
                .into_iter()
                .map(|node| node.address)
                .collect()
        })
    }

    fn cluster_best_node(&self) -> Option<Vec<u8>> {
        let now_ms = crate::handlers::cluster::now_millis();
        self.counters
            .server()?
            .cluster
            .best(crate::stats::unix_now(), now_ms)
    }

    fn cluster_node_name(&self, address: &[u8]) -> Option<Vec<u8>> {
        self.counters
            .server()?
            .cluster
            .hostname(address, crate::stats::unix_now())
    }

    /// Shuts the connection down (the client sees the end of the response at once);
    /// whatever the application sends afterwards is dropped.
    fn disconnect(&self) -> Option<bool> {
        CURRENT.with(Cell::get)?;
        response::set_disconnected(true);
        let connection = CONNECTION.with(|slot| slot.borrow().clone());
        Some(connection.is_some_and(|connection| {
            socket2::SockRef::from(&connection.as_fd())
                .shutdown(std::net::Shutdown::Both)
                .is_ok()
        }))
    }
}

/// What exists once the interpreter runs.
#[derive(Debug)]
struct Loaded {
    hooks: Hooks,
    apps: RwLock<Vec<Mounted>>,
}

/// A WSGI application host (the `App` that `--wsgi-file`, `--module` and `--mount`
/// select).
#[derive(Debug)]
pub struct PythonApp {
    config: PythonConfig,
    socket_timeout: Duration,
    buffer_size: u16,
    embed: EmbedConfig,
    fixed: environ::Fixed,
    memory_limit: u64,
    post_buffering: Option<u64>,
    /// One request thread per process (`--threads 1`).
    single_thread: bool,
    log: Arc<Log>,
    counters: Arc<Counters>,
    /// `--master` (see [`PythonHost`]).
    master: bool,
    started_on: u64,
    loaded: OnceLock<Loaded>,
    apps_loaded: AtomicBool,
    sockets: OnceLock<Vec<i32>>,
}

fn text(err: &PyErr) -> String {
    err.to_string()
}

impl PythonApp {
    /// A host for the Python options of `config` (the interpreter starts in
    /// [`App::init`]).
    pub fn new(config: &ServerConfig) -> io::Result<PythonApp> {
        let started_on = uwsgi_pymod::globals::unix_now();
        let log = Arc::new(Log::open(config.logto.as_deref())?);
        let hostname = uwsgi_pymod::globals::hostname();
        let globals = uwsgi_pymod::globals::Globals {
            buffer_size: config.buffer_size,
            numproc: u32::try_from(config.processes).unwrap_or(u32::MAX),
            started_on,
            hostname: hostname.clone(),
        };
        let magic_table = config
            .magic_table()
            .into_iter()
            .map(|(key, value)| (key.to_string(), value))
            .collect();
        // A flag given bare (`--master`) is `True` in `uwsgi.opt`, as in uWSGI, where
        // such an option has no value; the configuration spells it "true".
        let options = config
            .settings
            .iter()
            .map(|(name, value)| {
                let bare_flag = value == "true"
                    && crate::config::options::find(name)
                        .is_some_and(|spec| spec.arity == crate::config::options::Arity::Flag);
                let value = if bare_flag {
                    String::new()
                } else {
                    value.clone()
                };
                (name.clone(), value)
            })
            .collect();
        let embed = EmbedConfig {
            globals: Some(globals),
            options,
            sockets: Vec::new(),
            is_a_reload: crate::master::reloads() > 0,
            magic_table,
            cores: u32::try_from(config.cores()).unwrap_or(u32::MAX),
            async_mode: config.async_cores > 0,
            pidfile: config
                .pidfile
                .as_ref()
                .map(|path| path.display().to_string()),
        };
        let post_buffering = (config.post_buffering > 0).then_some(config.post_buffering as u64);
        let memory_limit = post_buffering.unwrap_or(input::EAGER_LIMIT);
        Ok(PythonApp {
            config: config.python.clone(),
            socket_timeout: config.socket_timeout,
            buffer_size: config.buffer_size,
            embed,
            fixed: environ::Fixed {
                multithread: config.cores() > 1,
                multiprocess: config.processes > 1,
                node: hostname,
            },
            memory_limit,
            post_buffering,
            single_thread: config.cores() <= 1,
            log,
            counters: Arc::new(Counters::default()),
            master: config.master,
            started_on,
            loaded: OnceLock::new(),
            apps_loaded: AtomicBool::new(false),
            sockets: OnceLock::new(),
        })
    }

    fn start_interpreter(&self, state: &Arc<ServerState>) -> Result<(), String> {
        if let Some(dir) = &self.config.chdir {
            std::env::set_current_dir(dir)
                .map_err(|e| format!("--chdir {}: {e}", dir.display()))?;
        }
        let mut embed = self.embed.clone();
        embed.sockets = self.sockets.get().cloned().unwrap_or_default();
        embed::prepare(embed);
        Python::initialize();
        let host = Arc::new(PythonHost {
            counters: Arc::clone(&self.counters),
            master: self.master,
            log: Arc::clone(&self.log),
            started_on: self.started_on,
            grunt: self.config.grunt,
            websockets_max_size: self.config.websockets_max_size,
            socket_timeout: self.socket_timeout,
            buffer_size: self.buffer_size,
            listen_fds: self.sockets.get().cloned().unwrap_or_default(),
        });
        Python::attach(|py| {
            let hooks = embed::attach(py, Arc::clone(state), host).map_err(|e| text(&e))?;
            let module = hooks.module(py);
            pyo3::wrap_pyfunction!(current::start_response, module)
                .and_then(|function| module.setattr("start_response", function))
                .map_err(|e| text(&e))?;
            interpreter::configure(py, &self.config).map_err(|e| {
                self.log.exception(py, "Python setup failed", &e);
                text(&e)
            })?;
            let version = Python::version_str().replace('\n', " ");
            self.log.write(&format!("Python version: {version}"));
            let _ = self.loaded.set(Loaded {
                hooks,
                apps: RwLock::new(Vec::new()),
            });
            Ok(())
        })
    }

    fn load_apps(&self) -> Result<(), String> {
        let Some(loaded) = self.loaded.get() else {
            return Err("the Python interpreter did not start".to_owned());
        };
        if self.apps_loaded.swap(true, Ordering::SeqCst) {
            return Ok(());
        }
        let apps = Python::attach(|py| {
            interpreter::load_apps(py, &self.config, loaded.hooks.module(py), &self.log)
        });
        if apps.is_empty() {
            if self.config.need_app {
                return Err("no Python application could be loaded (--need-app)".to_owned());
            }
            if self.config.wsgi_file.is_some()
                || self.config.module.is_some()
                || !self.config.mounts.is_empty()
            {
                self.log
                    .write("*** no app loaded. going in full dynamic mode: requests get 500 ***");
            }
        }
        // `uwsgi.applist`: the mountpoints, in loading order (app ids).
        let mountpoints: Vec<String> = apps.iter().map(|app| app.mountpoint.clone()).collect();
        Python::attach(|py| {
            if let Err(err) = loaded.hooks.module(py).setattr("applist", mountpoints) {
                self.log.exception(py, "cannot set uwsgi.applist", &err);
            }
        });
        if let Ok(mut slot) = loaded.apps.write() {
            *slot = apps;
        }
        Ok(())
    }

    /// The app for a request: the one mounted at its `SCRIPT_NAME` (or `UWSGI_APPID`),
    /// else the first one loaded (uWSGI's default app).
    fn select(&self, py: Python<'_>, request: &Request<'_>) -> Option<Py<PyAny>> {
        let loaded = self.loaded.get()?;
        let apps = loaded.apps.read().ok()?;
        let wanted = request
            .vars
            .get("UWSGI_APPID")
            .or_else(|| request.vars.get("SCRIPT_NAME"))
            .unwrap_or_default();
        apps.iter()
            .find(|app| app.mountpoint.as_bytes() == wanted)
            .or_else(|| apps.first())
            .map(|app| app.callable.clone_ref(py))
    }

    fn serve(
        &self,
        py: Python<'_>,
        request: &Request<'_>,
        body: input::Source,
        out: &mut dyn Output,
    ) -> io::Result<Status> {
        let protocol = request.vars.get("SERVER_PROTOCOL").unwrap_or_default();
        let connection = CONNECTION.with(|slot| slot.borrow().clone());
        let mut responder = Responder::new(out, protocol, connection, self.single_thread);
        let Some(app) = self.select(py, request) else {
            self.log
                .write("--- no python application found, check your startup logs for errors ---");
            responder.internal_error(py)?;
            return Ok(responder.finish());
        };
        let outcome = self.run(py, request, body, app.bind(py), &mut responder);
        current::end();
        if self.single_thread
            && let Some(loaded) = self.loaded.get()
        {
            // As uWSGI (uwsgi_python_destroy_env_holy): no `uwsgi.env` between requests.
            let module = loaded.hooks.module(py);
            if module.hasattr("env").unwrap_or(false) {
                let _ = module.delattr("env");
            }
        }
        environ::end_request(py);
        let status = match outcome {
            Ok(()) => responder.finish(),
            Err(Failure::Io(err)) => {
                responder.finish();
                return Err(err);
            }
            Err(Failure::App(err)) => {
                let uri = request.vars.get("REQUEST_URI").unwrap_or_default();
                self.log.exception(
                    py,
                    &format!(
                        "exception in the WSGI application ({})",
                        String::from_utf8_lossy(uri)
                    ),
                    &err,
                );
                if !responder.sent() {
                    responder.internal_error(py)?;
                }
                responder.finish()
            }
            Err(Failure::BadHead(why)) => {
                self.log
                    .write(&format!("refused the application's response head: {why}"));
                if !responder.sent() {
                    responder.internal_error(py)?;
                }
                responder.finish()
            }
        };
        if let Some(loaded) = self.loaded.get()
            && let Err(err) = loaded.hooks.call_hook(py, "after_req_hook")
        {
            self.log.exception(py, "uwsgi.after_req_hook failed", &err);
        }
        Ok(status)
    }

    fn run(
        &self,
        py: Python<'_>,
        request: &Request<'_>,
        body: input::Source,
        app: &Bound<'_, PyAny>,
        responder: &mut Responder<'_>,
    ) -> Result<(), Failure> {
        // uwsgi.core: the worker thread's index (uWSGI's core id within the worker).
        let (_, core) = crate::server::current_worker();
        let input = Bound::new(py, input::Input::new(body))?;
        current::set_input(input.clone().unbind());
        let input = input.into_any();
        let environ = environ::build(py, request, &self.fixed, core, &self.log, &input)?;
        let start_response = Bound::new(py, responder.start_response())?;
        current::set_start_response(start_response.clone().into_any().unbind());
        // `uwsgi.env`: the request's environ while it runs, in one-thread mode only —
        // with threads one module attribute cannot name every running request, so
        // uWSGI does not set it (serve() removes it again).
        if self.single_thread
            && let Some(loaded) = self.loaded.get()
        {
            loaded.hooks.module(py).setattr("env", &environ)?;
        }
        let result = app.call1((environ, start_response))?;
        responder.consume(py, &result)
    }
}

impl App for PythonApp {
    fn sockets_bound(&self, fds: &[i32]) {
        let _ = self.sockets.set(fds.to_vec());
    }

    fn init(&self, state: &Arc<ServerState>) -> Result<(), String> {
        self.start_interpreter(state)?;
        if !self.config.lazy_apps {
            self.load_apps()?;
        }
        Ok(())
    }

    fn spool(&self, task: &SpoolTask) -> SpoolOutcome {
        match self.loaded.get() {
            Some(loaded) => {
                thread_state::keep();
                Python::attach(|py| loaded.hooks.spool(py, task))
            }
            None => SpoolOutcome::Ignore,
        }
    }

    fn marshal_message(&self, value: Value, modifier2: u8) -> Option<Value> {
        let loaded = self.loaded.get()?;
        Python::attach(|py| loaded.hooks.marshal_message(py, &value, modifier2))
    }

    fn before_fork(&self) {
        if self.loaded.get().is_some() {
            fork::before();
        }
    }

    fn after_fork_parent(&self) {
        if self.loaded.get().is_some() {
            fork::parent();
        }
    }

    fn attach_server(&self, shared: &Arc<crate::server::Shared>) {
        let _ = self.counters.server.set(Arc::downgrade(shared));
    }

    fn start_worker(&self, worker_id: usize, forked: bool) -> Result<(), String> {
        if forked && self.loaded.get().is_some() {
            fork::child();
        }
        self.counters.worker_id.store(
            u32::try_from(worker_id).unwrap_or(u32::MAX),
            Ordering::Relaxed,
        );
        if forked {
            let master = rustix::process::getppid().map_or(0, |pid| pid.as_raw_nonzero().get());
            self.counters
                .master_pid
                .store(master.unsigned_abs(), Ordering::Relaxed);
        }
        self.load_apps()?;
        if let Some(loaded) = self.loaded.get() {
            Python::attach(|py| {
                loaded.hooks.call_hook(py, "post_fork_hook").map_err(|e| {
                    self.log.exception(py, "uwsgi.post_fork_hook failed", &e);
                    text(&e)
                })
            })?;
        }
        // The module watcher runs in the workers only (not in mules), as in uWSGI.
        if forked
            && worker_id > 0
            && !self.config.autoreload.is_zero()
            && self.loaded.get().is_some()
            && let Some(master) = rustix::process::getppid()
        {
            let started = autoreload::start(
                self.config.autoreload,
                self.config.autoreload_ignore.clone(),
                master,
                worker_id == 1,
                Arc::clone(&self.log),
            );
            if let Err(err) = started {
                self.log
                    .write(&format!("cannot start the Python auto-reloader: {err}"));
            }
        }
        Ok(())
    }

    fn run_mule(
        &self,
        mule_id: usize,
        script: Option<&std::path::Path>,
        mules: &crate::mules::Mules,
    ) -> i32 {
        // A mule is not a worker: uWSGI numbers it worker 0, like the master.
        if let Err(err) = self.start_worker(0, true) {
            self.log
                .write(&format!("mule {mule_id}: application start failed: {err}"));
            return FAILED_MULE_CODE;
        }
        if let Some(script) = script {
            // uWSGI runs the file as the mule's main program; when it returns, the mule
            // ends and the master respawns it.
            let ran = Python::attach(|py| -> PyResult<()> {
                let runpy = py.import("runpy")?;
                runpy.call_method1(
                    "run_path",
                    (script.to_string_lossy().into_owned(), py.None(), "__main__"),
                )?;
                Ok(())
            });
            if let Err(err) = ran {
                Python::attach(|py| {
                    self.log
                        .exception(py, &format!("mule {mule_id}: {}", script.display()), &err);
                });
                return FAILED_MULE_CODE;
            }
            self.stop_worker();
            return 0;
        }
        // The message loop: every message goes to `uwsgi.mule_msg_hook(message)`.
        loop {
            let message = match mules.receive(true, crate::mules::MAX_MESSAGE, None) {
                Ok(Some(message)) => message,
                Ok(None) => continue,
                Err(err) => {
                    self.log.write(&format!("mule {mule_id}: {err}"));
                    return FAILED_MULE_CODE;
                }
            };
            let Some(loaded) = self.loaded.get() else {
                continue;
            };
            Python::attach(|py| match loaded.hooks.hook(py, "mule_msg_hook") {
                Some(hook) => {
                    if let Err(err) = hook.call1((PyBytes::new(py, &message),)) {
                        self.log.exception(py, "uwsgi.mule_msg_hook failed", &err);
                    }
                }
                None => self.log.write(&format!(
                    "*** mule {mule_id}: message of {} bytes with no uwsgi.mule_msg_hook ***",
                    message.len()
                )),
            });
        }
    }

    fn start_thread(&self) {
        thread_state::keep();
    }

    fn stop_worker(&self) {
        if let Some(loaded) = self.loaded.get() {
            Python::attach(|py| {
                if let Err(err) = loaded.hooks.call_hook(py, "atexit") {
                    self.log.exception(py, "uwsgi.atexit failed", &err);
                }
            });
        }
    }

    fn call(
        &self,
        request: &Request<'_>,
        body: &mut (dyn Read + Send),
        out: &mut dyn Output,
    ) -> io::Result<Status> {
        let length = request
            .vars
            .get("CONTENT_LENGTH")
            .and_then(|v| std::str::from_utf8(v).ok()?.trim().parse::<u64>().ok())
            .unwrap_or(0);
        // Python's per-thread data (`threading.local`) lasts from request to request.
        thread_state::keep();
        let id = self.counters.requests.fetch_add(1, Ordering::Relaxed) + 1;
        REQUEST_ID.with(|slot| slot.set(id));
        CURRENT.with(|slot| slot.set(Some((length, out.raw_fd()))));
        let connection = out.try_clone_connection();
        CONNECTION.with(|slot| *slot.borrow_mut() = connection);
        response::set_disconnected(false);
        LOGVARS.with(|vars| vars.borrow_mut().clear());
        LOG_THIS.with(|flag| flag.set(false));
        current::begin(
            &request.vars,
            u8::from(request.modifier1),
            request.modifier2,
        );
        websocket::reset();
        self.counters.busy.fetch_add(1, Ordering::Relaxed);
        let result = if self.post_buffering.is_none() && length > input::EAGER_LIMIT {
            // A large body is streamed: a helper thread owns the body reader for the
            // time of the call and answers the application's reads.
            let (source, stop, pump) = input::stream();
            std::thread::scope(|scope| {
                scope.spawn(move || pump.run(body));
                let _stop = stop;
                Python::attach(|py| self.serve(py, request, source, out))
            })
        } else {
            // Small bodies, and every body with --post-buffering, are read first,
            // without the GIL.
            input::collect(body, length, self.memory_limit)
                .and_then(|source| Python::attach(|py| self.serve(py, request, source, out)))
        };
        self.counters.busy.fetch_sub(1, Ordering::Relaxed);
        CURRENT.with(|slot| slot.set(None));
        websocket::reset();
        request_io::reap_grunts();
        // The request's handle goes here (the Responder dropped its own in `finish`).
        CONNECTION.with(|slot| slot.borrow_mut().take());
        if let Ok(status) = &result {
            self.counters.tx.fetch_add(
                (status.head_bytes + status.body_bytes) as u64,
                Ordering::Relaxed,
            );
        }
        result
    }

    fn take_log_extras(&self) -> crate::app::LogExtras {
        crate::app::LogExtras {
            logvars: LOGVARS.with(|vars| std::mem::take(&mut *vars.borrow_mut())),
            vars: current::take_added(),
            log_this: LOG_THIS.with(|flag| flag.replace(false)),
        }
    }
}
