//! The in-process "server" of a standalone module: one [`ServerState`] (the server's own
//! caches, queue, shared areas, locks, RPC table, signal table, timers and spoolers) plus
//! the few things the Python API keeps per process (the last signal seen, log vars, the
//! ping warning, the spooler frequency).
//!
//! There is one current [`Instance`] per process. It is built on first use from
//! [`Settings::standalone`], and replaced whole by `uwsgi.testing.configure(...)` and
//! `uwsgi.testing.reset()` — nothing is mutated in place, so a test never sees another
//! test's data. Functions take the current instance with [`current`] (an `Arc` clone,
//! cheap) and keep it for the duration of the call.

use std::cell::RefCell;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, PoisonError, RwLock};
use std::time::{Duration, Instant, SystemTime};

use pyo3::prelude::*;
use uwsgi_server_state::cache::CacheConfig;
use uwsgi_server_state::queue::QueueConfig;
use uwsgi_server_state::sharedarea::SharedAreaConfig;
use uwsgi_server_state::signals::WorkerId;
use uwsgi_server_state::spooler::SpoolerConfig;
use uwsgi_server_state::{Clock, ManualClock, ServerState, StateConfig, SystemClock};

/// The worker id of the standalone process (`uwsgi.worker_id()`).
pub const WORKER_ID: WorkerId = 1;

/// The standalone default cache, as a `--cache2` option.
pub const DEFAULT_CACHE: &str = "name=default,items=1000,blocksize=65536";

/// The standalone default queue: 100 slots of 8192 bytes.
pub const DEFAULT_QUEUE_SLOTS: u64 = 100;

/// The standalone default: one shared area of one page.
pub const DEFAULT_SHAREDAREA_PAGES: u64 = 1;

/// uWSGI's default socket timeout, used by every network call without a `timeout`.
pub const DEFAULT_SOCKET_TIMEOUT: Duration = Duration::from_secs(4);

/// How often local cache calls sweep expired items (uWSGI's `--cache-expire-freq`).
pub const CACHE_SWEEP_EVERY: Duration = Duration::from_secs(3);

/// What a standalone instance is built from (`uwsgi.testing.configure` sets it).
#[derive(Debug, Clone, PartialEq)]
pub struct Settings {
    /// Caches, as `--cache2` option strings; the first is the default cache.
    pub caches: Vec<String>,
    /// `--queue` slots and `--queue-blocksize`, or no queue.
    pub queue: Option<QueueConfig>,
    /// Shared areas, in pages.
    pub sharedareas: Vec<u64>,
    /// `--locks`: locks beyond lock 0.
    pub locks: u32,
    /// `--rpc-max`.
    pub rpc_max: usize,
    /// Spool directories (created if missing).
    pub spoolers: Vec<PathBuf>,
    /// `--spooler-ordered`.
    pub spooler_ordered: bool,
    /// Timeout of network calls without their own.
    pub socket_timeout: Duration,
    /// `Some(t)`: a manual clock starting at unix time `t` (moved by
    /// `uwsgi.testing.advance_time`); `None`: the system clock.
    pub manual_clock: Option<u64>,
}

impl Settings {
    /// The defaults of a standalone module (docs/python.md, "Standalone defaults").
    pub fn standalone() -> Self {
        Settings {
            caches: vec![DEFAULT_CACHE.to_owned()],
            queue: Some(QueueConfig::new(DEFAULT_QUEUE_SLOTS)),
            sharedareas: vec![DEFAULT_SHAREDAREA_PAGES],
            locks: 0,
            rpc_max: uwsgi_server_state::rpc::DEFAULT_MAX_FUNCTIONS,
            spoolers: Vec::new(),
            spooler_ordered: false,
            socket_timeout: DEFAULT_SOCKET_TIMEOUT,
            manual_clock: None,
        }
    }

    /// The server state these settings describe.
    pub fn state_config(&self) -> Result<StateConfig, String> {
        let caches = self
            .caches
            .iter()
            .map(|option| CacheConfig::from_cache2_option(option).map_err(|e| e.to_string()))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(StateConfig {
            caches,
            queue: self.queue,
            sharedareas: self
                .sharedareas
                .iter()
                .map(|&pages| SharedAreaConfig::pages(pages))
                .collect(),
            locks: self.locks,
            rpc_max: self.rpc_max,
            spoolers: self
                .spoolers
                .iter()
                .map(|dir| SpoolerConfig {
                    ordered: self.spooler_ordered,
                    ..SpoolerConfig::new(dir)
                })
                .collect(),
            // Standalone, the SNMP table exists (the `snmp_*` functions keep their
            // values) but nothing answers SNMP requests: there is no agent.
            snmp: Some(uwsgi_server_state::snmp::SnmpConfig::default()),
            ..StateConfig::default()
        })
    }
}

/// The last signals seen, for `signal_wait` / `signal_received`.
#[derive(Debug, Default)]
struct SignalLog {
    /// How many signals were delivered so far.
    count: u64,
    /// The numbers delivered, newest last (at most 256 kept).
    recent: Vec<u8>,
}

/// One standalone "server": the state and the per-process extras.
#[derive(Debug)]
pub struct Instance {
    /// The server's shared state (an embedding server's own, or this process's).
    pub state: Arc<ServerState>,
    /// The embedding server, `None` for a standalone module.
    pub host: Option<Arc<dyn crate::embed::Host>>,
    /// What it was built from.
    pub settings: Settings,
    /// The manual clock, when the settings ask for one.
    pub manual_clock: Option<Arc<ManualClock>>,
    signal_log: Mutex<SignalLog>,
    signal_arrived: Condvar,
    /// `signal_received()`: the last number `signal_wait` returned for (-1: none).
    pub last_waited_signal: Mutex<i64>,
    /// `set_logvar` / `get_logvar` (no request: one table for the process).
    pub logvars: Mutex<Vec<(Vec<u8>, Vec<u8>)>>,
    /// Bytes written by `uwsgi.log` (`logsize()`).
    pub log_bytes: AtomicU64,
    /// `set_spooler_frequency` (seconds).
    pub spooler_frequency: AtomicU64,
    /// `set_warning_message`.
    pub warning_message: Mutex<Vec<u8>>,
    /// When local cache calls last swept expired items.
    last_sweep: Mutex<Instant>,
    /// File monitors: signal, path, and the modification time last seen (`None`: the
    /// file did not exist).
    pub file_stamps: Mutex<Vec<(u8, PathBuf, Option<SystemTime>)>>,
    /// Set while `uwsgi.testing.run_spooler` runs a job (`i_am_the_spooler()`).
    pub in_spooler: std::sync::atomic::AtomicBool,
}

impl Instance {
    /// Builds an instance from `settings` (creating spool directories).
    pub fn new(settings: Settings) -> Result<Self, String> {
        let config = settings.state_config()?;
        let (clock, manual_clock): (Arc<dyn Clock>, _) = match settings.manual_clock {
            Some(start) => {
                let manual = Arc::new(ManualClock::at_secs(start));
                (Arc::clone(&manual) as Arc<dyn Clock>, Some(manual))
            }
            None => (Arc::new(SystemClock), None),
        };
        let state = ServerState::with_clock(config, clock).map_err(|e| e.to_string())?;
        Ok(Self::build(Arc::new(state), None, settings, manual_clock))
    }

    /// The instance of a module embedded in a server: the server's own state, and
    /// the server answering the process and request facts.
    pub fn embedded(state: Arc<ServerState>, host: Arc<dyn crate::embed::Host>) -> Self {
        Self::build(state, Some(host), Settings::standalone(), None)
    }

    fn build(
        state: Arc<ServerState>,
        host: Option<Arc<dyn crate::embed::Host>>,
        settings: Settings,
        manual_clock: Option<Arc<ManualClock>>,
    ) -> Self {
        Instance {
            state,
            host,
            settings,
            manual_clock,
            signal_log: Mutex::new(SignalLog::default()),
            signal_arrived: Condvar::new(),
            last_waited_signal: Mutex::new(-1),
            logvars: Mutex::new(Vec::new()),
            log_bytes: AtomicU64::new(0),
            spooler_frequency: AtomicU64::new(30),
            warning_message: Mutex::new(Vec::new()),
            last_sweep: Mutex::new(Instant::now()),
            file_stamps: Mutex::new(Vec::new()),
            in_spooler: std::sync::atomic::AtomicBool::new(false),
        }
    }

    /// Unix seconds from the instance's clock.
    pub fn now(&self) -> u64 {
        self.state.now()
    }

    /// Removes expired cache items if the last sweep is older than
    /// [`CACHE_SWEEP_EVERY`] (the standalone stand-in for uWSGI's sweeper thread).
    pub fn maybe_sweep_caches(&self) {
        let mut last = lock(&self.last_sweep);
        if last.elapsed() >= CACHE_SWEEP_EVERY {
            *last = Instant::now();
            drop(last);
            self.state.caches().sweep_expired(self.now());
        }
    }

    /// Records a delivered signal and wakes `signal_wait`ers.
    pub fn note_signal(&self, signum: u8) {
        let mut log = lock(&self.signal_log);
        log.count += 1;
        log.recent.push(signum);
        if log.recent.len() > 256 {
            log.recent.remove(0);
        }
        drop(log);
        self.signal_arrived.notify_all();
    }

    /// How many signals were delivered so far.
    pub fn signal_count(&self) -> u64 {
        lock(&self.signal_log).count
    }

    /// Waits (without the GIL: call inside `detach`) for a signal delivered after the
    /// `seen`-th one — `wanted` only, if given. `None` on timeout.
    pub fn wait_signal(&self, seen: u64, wanted: Option<u8>, timeout: Duration) -> Option<u8> {
        let deadline = Instant::now().checked_add(timeout);
        let mut log = lock(&self.signal_log);
        let mut seen = seen;
        loop {
            if log.count > seen {
                // The signals delivered since `seen`, oldest first.
                let new = usize::try_from(log.count - seen).unwrap_or(usize::MAX);
                let start = log.recent.len().saturating_sub(new);
                let found = log.recent[start..]
                    .iter()
                    .copied()
                    .find(|n| wanted.is_none_or(|w| w == *n));
                if found.is_some() {
                    return found;
                }
                seen = log.count;
            }
            let left = match deadline {
                Some(deadline) => deadline.checked_duration_since(Instant::now())?,
                None => Duration::from_secs(3600),
            };
            if left.is_zero() {
                return None;
            }
            log = self
                .signal_arrived
                .wait_timeout(log, left)
                .unwrap_or_else(PoisonError::into_inner)
                .0;
        }
    }
}

/// Locks a mutex whose data stays consistent even if a holder panicked.
pub fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

static CURRENT: RwLock<Option<Arc<Instance>>> = RwLock::new(None);

/// How many times the instance was replaced.
static GENERATION: AtomicU64 = AtomicU64::new(0);

/// The current instance, built with the standalone settings on first use.
pub fn current() -> Arc<Instance> {
    if let Some(instance) = CURRENT
        .read()
        .unwrap_or_else(PoisonError::into_inner)
        .as_ref()
    {
        return Arc::clone(instance);
    }
    let mut slot = CURRENT.write().unwrap_or_else(PoisonError::into_inner);
    if let Some(instance) = slot.as_ref() {
        return Arc::clone(instance);
    }
    // The standalone settings have no spooler and valid sizes: building cannot fail
    // short of memory exhaustion, which would abort anyway.
    let instance = Arc::new(
        Instance::new(Settings::standalone())
            .unwrap_or_else(|why| panic!("the standalone defaults are invalid: {why}")),
    );
    *slot = Some(Arc::clone(&instance));
    instance
}

/// Replaces the current instance by a fresh one built from `settings`.
pub fn replace(settings: Settings) -> Result<Arc<Instance>, String> {
    let instance = Arc::new(Instance::new(settings)?);
    let old = CURRENT
        .write()
        .unwrap_or_else(PoisonError::into_inner)
        .replace(Arc::clone(&instance));
    GENERATION.fetch_add(1, Ordering::Relaxed);
    // The old state (and the Python handlers its closures hold) is dropped here, with
    // the GIL held by the caller.
    drop(old);
    Ok(instance)
}

/// Makes `instance` the current one (an embedding server does this once, before the
/// interpreter runs any application code).
pub fn install(instance: Instance) -> Arc<Instance> {
    let instance = Arc::new(instance);
    let old = CURRENT
        .write()
        .unwrap_or_else(PoisonError::into_inner)
        .replace(Arc::clone(&instance));
    GENERATION.fetch_add(1, Ordering::Relaxed);
    drop(old);
    instance
}

/// The embedding server, when the module runs inside one.
pub fn host() -> Option<Arc<dyn crate::embed::Host>> {
    current().host.clone()
}

/// How many times the instance was replaced (`uwsgi.testing.generation()`).
pub fn generation() -> u64 {
    GENERATION.load(Ordering::Relaxed)
}

thread_local! {
    /// A Python exception raised by a handler (RPC function, signal handler, spooler)
    /// that the server state called: the state only carries a message, so the original
    /// exception waits here to be re-raised by the Python function that started the
    /// call, on the same thread.
    static STASHED: RefCell<Option<PyErr>> = const { RefCell::new(None) };
}

/// Keeps `err` for [`take_stashed`]; returns its text for the state's error value.
pub fn stash(py: Python<'_>, err: PyErr) -> String {
    let text = match err.value(py).repr() {
        Ok(repr) => repr.to_string(),
        Err(_) => err.to_string(),
    };
    STASHED.with(|slot| *slot.borrow_mut() = Some(err));
    text
}

/// The exception stashed by a handler on this thread, if any.
pub fn take_stashed() -> Option<PyErr> {
    STASHED.with(|slot| slot.borrow_mut().take())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn standalone_settings_build() {
        let instance = Instance::new(Settings::standalone()).unwrap();
        let cache = instance.state.caches().default_cache().unwrap();
        assert_eq!(cache.name(), "default");
        assert_eq!(instance.state.queue().unwrap().size(), DEFAULT_QUEUE_SLOTS);
        assert_eq!(instance.state.sharedareas().size(0), Ok(4096));
        assert_eq!(instance.state.locks().count(), 1);
        assert!(instance.state.spoolers().is_empty());
    }

    #[test]
    fn bad_cache_options_are_reported() {
        let settings = Settings {
            caches: vec!["items=10".into()],
            ..Settings::standalone()
        };
        assert!(Instance::new(settings).unwrap_err().contains("name"));
    }

    #[test]
    fn manual_clock_and_signal_waits() {
        let settings = Settings {
            manual_clock: Some(1_000),
            ..Settings::standalone()
        };
        let instance = Instance::new(settings).unwrap();
        assert_eq!(instance.now(), 1_000);
        instance
            .manual_clock
            .as_ref()
            .unwrap()
            .advance(Duration::from_secs(5));
        assert_eq!(instance.now(), 1_005);
        let seen = instance.signal_count();
        instance.note_signal(3);
        instance.note_signal(9);
        assert_eq!(
            instance.wait_signal(seen, None, Duration::from_millis(1)),
            Some(3)
        );
        assert_eq!(
            instance.wait_signal(seen, Some(9), Duration::from_millis(1)),
            Some(9)
        );
        assert_eq!(
            instance.wait_signal(instance.signal_count(), None, Duration::from_millis(5)),
            None
        );
    }
}
