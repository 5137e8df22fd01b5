//! The module embedded in a server (uwsgi-server's Python host).
//!
//! A server that starts CPython itself uses this in two steps:
//!
//! 1. [`prepare`], before the interpreter is initialised: registers `uwsgi` as a
//!    built-in module (CPython's inittab) and keeps the server's facts
//!    ([`EmbedConfig`]) for the module's globals;
//! 2. [`attach`], once the interpreter runs: installs an embedded
//!    [`Instance`](crate::instance::Instance) over the server's own
//!    [`ServerState`] and the server itself (a [`Host`]), imports the module and puts it
//!    in `sys.modules`, so that `import uwsgi` in application code gets it even when the
//!    standalone wheel is installed in the active environment.
//!
//! The server then reads the hooks the application sets on the module (`uwsgi.spooler`,
//! `uwsgi.post_fork_hook`, `uwsgi.atexit`, `uwsgi.after_req_hook`,
//! `uwsgi.applications`, `uwsgi.message_manager_marshal`) through [`Hooks`].

use std::sync::{Arc, Mutex, OnceLock};

use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyDict, PyList};
use uwsgi_protocol::marshal::Value;
use uwsgi_server_state::ServerState;
use uwsgi_server_state::spooler::{SpoolOutcome, SpoolTask};

use crate::globals::Globals;
use crate::instance::{self, Instance};

/// One worker as `uwsgi.workers()` describes it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct WorkerInfo {
    /// uWSGI's 1-based worker id.
    pub id: u32,
    /// The worker's process id.
    pub pid: u32,
    /// Requests it served.
    pub requests: u64,
    /// Bytes it sent.
    pub tx: u64,
    /// `b"busy"` while it serves a request, else `b"idle"`.
    pub busy: bool,
    /// When it was started (unix seconds).
    pub last_spawn: u64,
}

/// What the embedding server answers about itself. Every method is called from Python
/// threads (with the GIL held), so it must be quick and must not block.
pub trait Host: Send + Sync + std::fmt::Debug {
    /// `uwsgi.worker_id()`: the 1-based id of the worker running this code.
    fn worker_id(&self) -> u32;
    /// `uwsgi.masterpid()`: the master's pid, 0 without a master.
    fn masterpid(&self) -> u32;
    /// `uwsgi.total_requests()`: requests served by the whole instance.
    fn total_requests(&self) -> u64;
    /// `uwsgi.request_id()`: the number of the current request in this worker.
    fn request_id(&self) -> u64;
    /// `uwsgi.workers()`.
    fn workers(&self) -> Vec<WorkerInfo>;
    /// `uwsgi.reload()`: asks for a graceful reload; `false` when it cannot be done.
    fn reload(&self) -> bool;
    /// `uwsgi.stop()`: asks the instance to stop; `false` when it cannot be done.
    fn stop(&self) -> bool;
    /// `uwsgi.log(message)`: one line in the server log (no newline given).
    fn log(&self, line: &str);
    /// `uwsgi.log_this_request()`: log the current request even where request logging
    /// is off. The default does nothing (every request is logged).
    fn log_this_request(&self) {}
    /// `uwsgi.cl()`: the current request's `CONTENT_LENGTH`; `None` outside a request.
    fn content_length(&self) -> Option<u64> {
        None
    }
    /// `uwsgi.connection_fd()`: the current request's socket; `None` outside a request
    /// or when the connection has no descriptor.
    fn connection_fd(&self) -> Option<i32> {
        None
    }
    /// `uwsgi.disconnect()`: closes the current request's connection; `Some(closed)`
    /// inside a request, `None` outside one.
    fn disconnect(&self) -> Option<bool> {
        None
    }
    /// `uwsgi.set_logvar(key, value)` on the current request; `false` outside a
    /// request (the module then keeps the value in its process-wide table).
    fn set_logvar(&self, key: &[u8], value: &[u8]) -> bool {
        let _ = (key, value);
        false
    }
    /// `uwsgi.get_logvar(key)` on the current request: `Some(value or None)` inside a
    /// request, `None` outside one (the module then reads its process-wide table).
    fn get_logvar(&self, key: &[u8]) -> Option<Option<Vec<u8>>> {
        let _ = key;
        None
    }
    /// Which process of the instance runs this code, for uWSGI signals. The default is
    /// [`ProcessRole::Alone`]: one process, signals delivered in place.
    fn process_role(&self) -> ProcessRole {
        ProcessRole::Alone
    }
    /// The current request's I/O, for the module's request functions (`sendfile`,
    /// `route`, `add_var`, `chunked_read`, `websocket_*`, `grunt`, `send(data)`); `None` outside a
    /// request, and on a host without them.
    fn request(&self) -> Option<&dyn RequestIo> {
        None
    }
    /// `uwsgi.get_option(index)`: the server's option slot `index` (the slots the admin
    /// packet, modifier1 10, reads and writes); `None` when the host has no slots and
    /// the module keeps its own.
    fn option(&self, index: u8) -> Option<u32> {
        let _ = index;
        None
    }
    /// `uwsgi.set_option(index, value)` on the server's slots; `false` when the host has
    /// none (the module then keeps the value in its own table).
    fn set_option(&self, index: u8, value: u32) -> bool {
        let _ = (index, value);
        false
    }
    /// `uwsgi.set_warning_message(message)`: the server's ping warning (modifier1 100
    /// replies), seen by every worker; `false` when the host has no pings to answer
    /// (the module then keeps the message itself).
    fn set_warning_message(&self, message: &[u8]) -> bool {
        let _ = message;
        false
    }
    /// `uwsgi.mule_id()`: this process's 1-based mule id, 0 outside a mule.
    fn mule_id(&self) -> u32 {
        0
    }
    /// `uwsgi.mule_msg(message, target)`: `Ok(false)` when the queue is full. The
    /// default has no mules.
    fn mule_msg(&self, message: &[u8], target: MuleTarget<'_>) -> Result<bool, String> {
        let _ = (message, target);
        Err("no mule configured".to_owned())
    }
    /// `uwsgi.mule_get_msg()`: blocks (called with the GIL released) until a message
    /// for this mule arrives, or `timeout` passed (`Ok(None)`). The default is not a
    /// mule.
    fn mule_get_msg(
        &self,
        farms: bool,
        buffer_size: usize,
        timeout: Option<std::time::Duration>,
    ) -> Result<Option<Vec<u8>>, String> {
        let _ = (farms, buffer_size, timeout);
        Err("you can receive mule messages only in a mule !!!".to_owned())
    }
    /// `uwsgi.farm_get_msg()`: a message waiting in one of this mule's farms, without
    /// blocking.
    fn farm_get_msg(&self) -> Option<Vec<u8>> {
        None
    }
    /// `uwsgi.in_farm(name)`: whether this mule belongs to farm `name` (any farm when
    /// `None`).
    fn in_farm(&self, name: Option<&str>) -> bool {
        let _ = name;
        false
    }
    /// `uwsgi.listen_queue(id)`: the connections waiting to be accepted on listening
    /// socket `id` (0-based, in the order the sockets were given); `None` when there is
    /// no such socket.
    fn listen_queue(&self, id: usize) -> Option<u64> {
        let _ = id;
        None
    }
    /// `uwsgi.set_user_harakiri(seconds)`: arms (0 disarms) the watchdog that kills
    /// this process `seconds` from now. `Err` carries the line to log when it cannot be
    /// armed (no master, or a process the master does not watch this way).
    fn set_user_harakiri(&self, seconds: u64) -> Result<(), String> {
        let _ = seconds;
        Err("!!! unable to set user harakiri without the master process !!!".to_owned())
    }
    /// `uwsgi.accepting(flag)`: marks this worker as accepting requests (or not) in
    /// the server's scoreboard. The default keeps no scoreboard.
    fn set_accepting(&self, accepting: bool) {
        let _ = accepting;
    }
    /// `uwsgi.set_spooler_frequency(seconds)`: the running spoolers' pass interval;
    /// `false` when the host has no spooler to tell (the module then only keeps it).
    fn set_spooler_frequency(&self, seconds: u64) -> bool {
        let _ = seconds;
        false
    }
    /// `uwsgi.spooler_pids()`: the pid of every spooler process, `None` when the host
    /// runs its spoolers without processes of their own.
    fn spooler_pids(&self) -> Option<Vec<u32>> {
        None
    }
    /// `uwsgi.cluster_nodes()`: the addresses of the cluster nodes whose announcement
    /// is fresh. The default knows no cluster: none.
    fn cluster_nodes(&self) -> Vec<Vec<u8>> {
        Vec::new()
    }
    /// `uwsgi.cluster_best_node()`: the fresh node chosen least recently, which becomes
    /// the most recently chosen (round robin by time). The default knows no cluster.
    fn cluster_best_node(&self) -> Option<Vec<u8>> {
        None
    }
    /// `uwsgi.cluster_node_name(address)`: the hostname the fresh node `address`
    /// announced. The default knows no cluster.
    fn cluster_node_name(&self, address: &[u8]) -> Option<Vec<u8>> {
        let _ = address;
        None
    }
}

/// Which process runs the code, as uWSGI's signal table numbers them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProcessRole {
    /// No master: the server is one process (or the module runs standalone). It is
    /// worker 1 and raised signals run at once, in the calling thread.
    Alone,
    /// The master, before it forks (the application is loaded there): uWSGI's worker 0;
    /// what it registers is inherited by every process it forks and decides routing.
    Master,
    /// Forked worker N (1-based).
    Worker(u32),
    /// Forked mule N (1-based); worker 0 to the signal table.
    Mule(u32),
    /// A forked spooler; worker 0 to the signal table.
    Spooler,
}

/// What the module's request functions ask of the request being served (see
/// [`Host::request`]). Each gets the GIL and releases it around what may wait.
pub trait RequestIo {
    /// `uwsgi.sendfile`: sends the response head if not sent yet, then `len` bytes of
    /// `file` from `offset` (to its end when `len` is 0), now. Returns the bytes sent.
    fn sendfile(
        &self,
        py: Python<'_>,
        file: std::fs::File,
        offset: u64,
        len: u64,
    ) -> Result<u64, String>;
    /// `uwsgi.route(router, args)`: runs the routing action `router` with `args` on
    /// the request; uWSGI's return code (-1 for an unknown router or bad arguments).
    fn route(&self, py: Python<'_>, router: &str, args: &str) -> i64;
    /// `uwsgi.add_var(key, value)`: `false` when the vars would not fit a packet.
    fn add_var(&self, key: &[u8], value: &[u8]) -> bool;
    /// `uwsgi.chunked_read(timeout)`: the next chunk of a chunked body, `b""` at its
    /// end; `Ok(None)` only when `nonblocking` and no chunk is complete yet.
    fn chunked_read(
        &self,
        py: Python<'_>,
        timeout: i64,
        nonblocking: bool,
    ) -> Result<Option<Vec<u8>>, String>;
    /// `uwsgi.websocket_handshake(key, origin, proto)`: sends the 101 response.
    fn websocket_handshake(
        &self,
        py: Python<'_>,
        key: Option<&[u8]>,
        origin: Option<&[u8]>,
        proto: Option<&[u8]>,
    ) -> Result<(), String>;
    /// `uwsgi.websocket_recv()`: the next message (`b""` from `nonblocking` when none
    /// is complete).
    fn websocket_recv(&self, py: Python<'_>, nonblocking: bool) -> Result<Vec<u8>, String>;
    /// `uwsgi.websocket_send(message)` (text frame), or `_binary` (binary frame).
    fn websocket_send(&self, py: Python<'_>, message: &[u8], binary: bool) -> Result<(), String>;
    /// `uwsgi.send(data)`: writes `data` to the request's connection as it is (no
    /// response head, no framing), now; called with the GIL, which it releases while
    /// writing.
    fn send_raw(&self, py: Python<'_>, data: &[u8]) -> Result<(), String>;
    /// `uwsgi.grunt()`: forks the worker (`Ok(true)` in the child); `Ok(false)` in the
    /// parent, which lets go of the connection unless `keep_connection`. `Err` carries
    /// the line to log when grunts are off or the fork failed.
    fn grunt(&self, py: Python<'_>, keep_connection: bool) -> Result<bool, String>;
}

/// Where `uwsgi.mule_msg` sends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MuleTarget<'a> {
    /// No target (or 0): the queue every mule reads.
    AnyMule,
    /// Mule N as given (the host checks the range).
    Mule(i64),
    /// A farm by name.
    Farm(&'a str),
}

/// The server facts the module's globals show.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct EmbedConfig {
    /// `buffer_size`, `numproc`, `started_on`, `hostname`.
    pub globals: Option<Globals>,
    /// `uwsgi.opt`: the options as given (name without dashes, value; an option given
    /// several times becomes a list, a flag without value `True`).
    pub options: Vec<(String, String)>,
    /// `uwsgi.sockets`: the file descriptors of the listening sockets.
    pub sockets: Vec<i32>,
    /// `uwsgi.is_a_reload`.
    pub is_a_reload: bool,
    /// `uwsgi.magic_table`: uWSGI's `%x` magic variables (key without the `%`).
    pub magic_table: Vec<(String, String)>,
    /// `uwsgi.cores`: request slots per worker (`--threads`, or `--async` when more).
    pub cores: u32,
    /// `--async`: the server's async mode, in which `async_sleep` and `wait_fd_*` wait
    /// (without the GIL); without it they answer as uWSGI without async mode.
    pub async_mode: bool,
    /// `uwsgi.pidfile`: `--pidfile` as given; the global is absent without it.
    pub pidfile: Option<String>,
}

static CONFIG: OnceLock<EmbedConfig> = OnceLock::new();

/// Whether the module runs embedded in a server.
pub fn is_embedded() -> bool {
    CONFIG.get().is_some()
}

/// Embedded in a server without `--async`: the async functions answer as uWSGI's do
/// when no async mode is configured.
pub fn async_mode_off() -> bool {
    CONFIG.get().is_some_and(|config| !config.async_mode)
}

/// Step 1, before `Python::initialize`: registers `uwsgi` as a built-in module of the
/// interpreter about to start and keeps `config` for its globals. Only the first call
/// counts (an interpreter starts once per process).
pub fn prepare(config: EmbedConfig) {
    if CONFIG.set(config).is_ok() {
        use crate::uwsgi;
        pyo3::append_to_inittab!(uwsgi);
    }
}

/// Fills the module of an embedded interpreter (called by [`crate::uwsgi`] when
/// [`prepare`] ran): the same API as the standalone module, with the server's globals.
pub(crate) fn init_embedded(m: &Bound<'_, PyModule>) -> PyResult<bool> {
    let Some(config) = CONFIG.get() else {
        return Ok(false);
    };
    let globals = config.globals.clone().unwrap_or_else(Globals::standalone);
    crate::init(m, &globals)?;
    set_server_globals(m, config)?;
    Ok(true)
}

fn set_server_globals(m: &Bound<'_, PyModule>, config: &EmbedConfig) -> PyResult<()> {
    let py = m.py();
    let opt = PyDict::new(py);
    for (name, value) in &config.options {
        let value: Bound<'_, PyAny> = if value.is_empty() {
            pyo3::types::PyBool::new(py, true).to_owned().into_any()
        } else {
            PyBytes::new(py, value.as_bytes()).into_any()
        };
        match opt.get_item(name)? {
            None => opt.set_item(name, value)?,
            Some(existing) => match existing.cast::<PyList>() {
                Ok(list) => list.append(value)?,
                Err(_) => opt.set_item(name, PyList::new(py, [existing, value])?)?,
            },
        }
    }
    m.setattr("opt", opt)?;
    m.setattr("sockets", PyList::new(py, &config.sockets)?)?;
    m.setattr("is_a_reload", config.is_a_reload)?;
    m.setattr("cores", config.cores.max(1))?;
    // Keys and values are bytes, as uWSGI's Python 3 builds them (PyBytes both).
    let magic = PyDict::new(py);
    for (key, value) in &config.magic_table {
        magic.set_item(
            PyBytes::new(py, key.as_bytes()),
            PyBytes::new(py, value.as_bytes()),
        )?;
    }
    m.setattr("magic_table", magic)?;
    if let Some(pidfile) = &config.pidfile {
        m.setattr("pidfile", PyBytes::new(py, pidfile.as_bytes()))?;
    }
    // uWSGI sets `uwsgi.env` only while a request runs (the host does that) and
    // deletes it afterwards: outside a request the attribute does not exist.
    if m.hasattr("env")? {
        m.delattr("env")?;
    }
    Ok(())
}

/// Step 2, with the interpreter running: installs the embedded instance (the server's
/// `state`, `host` for the process facts), imports the built-in module and makes it
/// `sys.modules["uwsgi"]`. Call it before any application code is imported.
pub fn attach(py: Python<'_>, state: Arc<ServerState>, host: Arc<dyn Host>) -> PyResult<Hooks> {
    instance::install(Instance::embedded(state, host));
    let modules = py.import("sys")?.getattr("modules")?;
    // A standalone `uwsgi` imported earlier (say by a sitecustomize) is replaced.
    if modules.contains("uwsgi")? {
        modules.del_item("uwsgi")?;
    }
    let module = PyModule::import(py, "uwsgi")?;
    let builtin = module
        .getattr("__spec__")
        .and_then(|spec| spec.getattr("origin"))
        .and_then(|origin| origin.extract::<String>())
        .is_ok_and(|origin| origin == "built-in");
    if !builtin {
        // The inittab entry was not registered before the interpreter started: build the
        // module by hand so the application still gets the server's.
        let fresh = PyModule::new(py, "uwsgi")?;
        init_embedded(&fresh)?;
        modules.set_item("uwsgi", &fresh)?;
        return Ok(Hooks {
            module: fresh.unbind(),
        });
    }
    modules.set_item("uwsgi", &module)?;
    Ok(Hooks {
        module: module.unbind(),
    })
}

/// The embedded module, to read the hooks the application assigned to it.
#[derive(Debug)]
pub struct Hooks {
    module: Py<PyModule>,
}

/// Serialises the spooler: uWSGI's spooler runs one job at a time per spool directory,
/// and `i_am_the_spooler()` is one flag.
static SPOOLING: Mutex<()> = Mutex::new(());

impl Hooks {
    /// The module object.
    pub fn module<'py>(&self, py: Python<'py>) -> &Bound<'py, PyModule> {
        self.module.bind(py)
    }

    /// The attribute `name` of the module when it is set to something other than
    /// `None`.
    ///
    /// Read from the module's `__dict__`, where the application's assignments go: a
    /// missing hook (the usual case, asked after every request for `after_req_hook`)
    /// then costs a dict lookup rather than a formatted `AttributeError`. Only a module
    /// that defines `__getattr__` (PEP 562) is asked through `getattr`.
    pub fn hook<'py>(&self, py: Python<'py>, name: &str) -> Option<Bound<'py, PyAny>> {
        let module = self.module.bind(py);
        let dict = module.dict();
        let value = match dict.get_item(name) {
            Ok(Some(value)) => Some(value),
            Ok(None)
                if !dict
                    .contains(pyo3::intern!(py, "__getattr__"))
                    .unwrap_or(false) =>
            {
                None
            }
            _ => module.getattr(name).ok(),
        };
        value.filter(|value| !value.is_none())
    }

    /// Calls the hook `name` without arguments if the application set one (as uWSGI
    /// calls `post_fork_hook`, `atexit` and `after_req_hook`). A missing hook is `Ok`.
    pub fn call_hook(&self, py: Python<'_>, name: &str) -> PyResult<()> {
        match self.hook(py, name) {
            Some(hook) => hook.call0().map(drop),
            None => Ok(()),
        }
    }

    /// Runs one spool job through `uwsgi.spooler(env)`: its return value decides, as in
    /// uWSGI (`SPOOL_OK` removes the file, `SPOOL_IGNORE` passes, anything else retries).
    /// Without a spooler function the job is left alone (`Ignore`); an exception is
    /// printed and the job retried.
    pub fn spool(&self, py: Python<'_>, task: &SpoolTask) -> SpoolOutcome {
        let Some(function) = self.hook(py, "spooler") else {
            return SpoolOutcome::Ignore;
        };
        let _one = instance::lock(&SPOOLING);
        let current = instance::current();
        current
            .in_spooler
            .store(true, std::sync::atomic::Ordering::Relaxed);
        let outcome = crate::spooler::task_env(py, task).and_then(|env| function.call1((env,)));
        current
            .in_spooler
            .store(false, std::sync::atomic::Ordering::Relaxed);
        match outcome {
            Ok(code) => code
                .extract::<i64>()
                .map_or(SpoolOutcome::Retry, SpoolOutcome::from_code),
            Err(err) => {
                err.print(py);
                SpoolOutcome::Retry
            }
        }
    }

    /// Answers a marshalled message (modifier1 33) through
    /// `uwsgi.message_manager_marshal(obj, modifier2)`; `None` when the application set
    /// no handler, or the handler failed (printed) or returned `None`.
    pub fn marshal_message(&self, py: Python<'_>, value: &Value, modifier2: u8) -> Option<Value> {
        let handler = self.hook(py, "message_manager_marshal")?;
        let answer = crate::marshal::to_python(py, value)
            .and_then(|obj| handler.call1((obj, modifier2)))
            .and_then(|answer| {
                if answer.is_none() {
                    Ok(None)
                } else {
                    crate::marshal::to_value(&answer).map(Some)
                }
            });
        match answer {
            Ok(answer) => answer,
            Err(err) => {
                err.print(py);
                None
            }
        }
    }
}
