//! The server's shared application state: everything uWSGI keeps in shared memory for
//! all workers, reached by the network handlers (cache 111, RPC 173, signal 110,
//! spooler 17) and by the `uwsgi` Python module.
//!
//! | module | uWSGI | options |
//! |---|---|---|
//! | [`cache`] | cache2 (§6) | `--cache`, `--cache-blocksize`, `--cache2` |
//! | [`cache_sync`] | cache replication over UDP | `--cache-udp-node`, `--cache-udp-server` |
//! | [`queue`] | queue (§8.1) | `--queue`, `--queue-blocksize` |
//! | [`sharedarea`] | shared areas (§8.2) | `--sharedarea` |
//! | [`locks`] | user locks (§8.3) | `--locks` |
//! | [`rpc`] | RPC table (§3.4) | `--rpc-max` |
//! | [`signals`] | signal table and queue (§7.1, §8.5) | `--signal-bufsize` |
//! | [`timers`] | timers, crons, file monitors (§8.6) | — |
//! | [`spooler`] | spool directories (§7.5) | `--spooler`, `--spooler-ordered` |
//! | [`snmp`] | SNMP custom slots and community (§7.6) | `--snmp`, `--snmp-community` |
//!
//! Every structure is `Send + Sync` and locks internally: share a [`ServerState`] with an
//! `Arc`. None of them reads the clock: time is passed in (`now`, unix seconds, or
//! milliseconds for timers), so tests are deterministic; [`Clock`] is what callers use to
//! get it. The caches, the queue, the shared areas and the user locks live in shared
//! memory ([`shm`]) created when the state is built: build it before forking the workers
//! and they all share them, as uWSGI's workers do (docs/server-state.md, "Shared
//! memory").
//!
//! Errors are typed per module (thiserror) and documented with what uWSGI replies or
//! raises for each; docs/server-state.md has the whole picture.

pub mod cache;
pub mod cache_sync;
pub mod locks;
mod options;
pub mod queue;
pub mod rpc;
pub mod sampled_log;
pub mod sharedarea;
pub mod shm;
pub mod signals;
pub mod snmp;
pub mod spooler;
pub mod timers;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

pub use options::NumberError;

use cache::{CacheConfig, CacheConfigError, Caches};
use locks::UserLocks;
use queue::{Queue, QueueConfig, QueueConfigError};
use rpc::RpcRegistry;
use sharedarea::{SharedAreaConfig, SharedAreaConfigError, SharedAreas};
use signals::{SignalQueue, SignalTable};
use snmp::{Snmp, SnmpConfig, SnmpConfigError};
use spooler::{SpoolError, SpoolerConfig, Spoolers};
use timers::Schedules;

/// Where the current time comes from.
pub trait Clock: Send + Sync + std::fmt::Debug {
    /// Unix time in seconds (cache expiry, spooler `at`, queue timestamps, crons).
    fn now_secs(&self) -> u64;
    /// Milliseconds for timers; any fixed origin.
    fn now_millis(&self) -> u64;
}

/// The system's wall clock.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now_secs(&self) -> u64 {
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or(Duration::ZERO)
            .as_secs()
    }

    fn now_millis(&self) -> u64 {
        let since = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or(Duration::ZERO);
        u64::try_from(since.as_millis()).unwrap_or(u64::MAX)
    }
}

/// A clock moved by hand, for tests.
#[derive(Debug, Default)]
pub struct ManualClock {
    millis: AtomicU64,
}

impl ManualClock {
    /// A clock at `secs` unix seconds.
    pub fn at_secs(secs: u64) -> Self {
        ManualClock {
            millis: AtomicU64::new(secs.saturating_mul(1000)),
        }
    }

    /// Moves the clock forward.
    pub fn advance(&self, by: Duration) {
        let millis = u64::try_from(by.as_millis()).unwrap_or(u64::MAX);
        self.millis.fetch_add(millis, Ordering::SeqCst);
    }

    /// Sets the clock to `secs` unix seconds.
    pub fn set_secs(&self, secs: u64) {
        self.millis
            .store(secs.saturating_mul(1000), Ordering::SeqCst);
    }
}

impl Clock for ManualClock {
    fn now_secs(&self) -> u64 {
        self.millis.load(Ordering::SeqCst) / 1000
    }

    fn now_millis(&self) -> u64 {
        self.millis.load(Ordering::SeqCst)
    }
}

/// The options that shape the state, with uWSGI's names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StateConfig {
    /// `--cache` (as [`CacheConfig::legacy`]) and `--cache2`, in order; the first is the
    /// default cache.
    pub caches: Vec<CacheConfig>,
    /// `--queue` / `--queue-blocksize`.
    pub queue: Option<QueueConfig>,
    /// `--sharedarea`, in order (ids from 0).
    pub sharedareas: Vec<SharedAreaConfig>,
    /// `--locks N`: N + 1 user locks.
    pub locks: u32,
    /// `--rpc-max`.
    pub rpc_max: usize,
    /// Signals the master's queue holds (uWSGI: the signal socket's buffer).
    pub signal_queue_capacity: usize,
    /// `--spooler`, in order.
    pub spoolers: Vec<SpoolerConfig>,
    /// `--snmp` / `--snmp-community`: `None` without SNMP (no table, and the `snmp_*`
    /// Python functions do not exist).
    pub snmp: Option<SnmpConfig>,
}

impl Default for StateConfig {
    /// What uWSGI has without any of these options: no cache, no queue, no shared area,
    /// one lock, an empty RPC table of 64, the signal table, no spooler.
    fn default() -> Self {
        StateConfig {
            caches: Vec::new(),
            queue: None,
            sharedareas: Vec::new(),
            locks: 0,
            rpc_max: rpc::DEFAULT_MAX_FUNCTIONS,
            signal_queue_capacity: signals::DEFAULT_QUEUE_CAPACITY,
            spoolers: Vec::new(),
            snmp: None,
        }
    }
}

/// Why the state could not be built.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StateError {
    /// A cache setting.
    #[error(transparent)]
    Cache(#[from] CacheConfigError),
    /// The queue setting.
    #[error(transparent)]
    Queue(#[from] QueueConfigError),
    /// A shared area setting.
    #[error(transparent)]
    SharedArea(#[from] SharedAreaConfigError),
    /// A spooler directory.
    #[error(transparent)]
    Spooler(#[from] SpoolError),
    /// The SNMP table.
    #[error(transparent)]
    Snmp(#[from] SnmpConfigError),
}

/// Everything shared by the workers of one server.
#[derive(Debug)]
pub struct ServerState {
    caches: Caches,
    queue: Option<Queue>,
    sharedareas: SharedAreas,
    locks: UserLocks,
    rpc: RpcRegistry,
    signals: SignalTable,
    signal_queue: SignalQueue,
    schedules: Schedules,
    spoolers: Spoolers,
    snmp: Option<Snmp>,
    clock: Arc<dyn Clock>,
}

impl Default for ServerState {
    /// The state of a server started without options ([`StateConfig::default`]).
    fn default() -> Self {
        ServerState {
            caches: Caches::none(),
            queue: None,
            sharedareas: SharedAreas::none(),
            locks: UserLocks::default(),
            rpc: RpcRegistry::default(),
            signals: SignalTable::new(),
            signal_queue: SignalQueue::default(),
            schedules: Schedules::new(),
            spoolers: Spoolers::none(),
            snmp: None,
            clock: Arc::new(SystemClock),
        }
    }
}

impl ServerState {
    /// Builds the state for `config` (allocating the arenas and creating spool
    /// directories), on the system clock.
    pub fn new(config: StateConfig) -> Result<Self, StateError> {
        ServerState::with_clock(config, Arc::new(SystemClock))
    }

    /// Like [`ServerState::new`] with another clock.
    pub fn with_clock(config: StateConfig, clock: Arc<dyn Clock>) -> Result<Self, StateError> {
        Ok(ServerState {
            caches: Caches::new(config.caches)?,
            queue: config.queue.map(Queue::new).transpose()?,
            sharedareas: SharedAreas::new(config.sharedareas)?,
            locks: UserLocks::new(config.locks),
            rpc: RpcRegistry::new(config.rpc_max),
            signals: SignalTable::new(),
            signal_queue: SignalQueue::new(config.signal_queue_capacity),
            schedules: Schedules::new(),
            spoolers: Spoolers::new(config.spoolers)?,
            snmp: config.snmp.as_ref().map(Snmp::new).transpose()?,
            clock,
        })
    }

    /// The caches.
    pub fn caches(&self) -> &Caches {
        &self.caches
    }

    /// The queue, when `--queue` was given.
    pub fn queue(&self) -> Option<&Queue> {
        self.queue.as_ref()
    }

    /// The shared areas.
    pub fn sharedareas(&self) -> &SharedAreas {
        &self.sharedareas
    }

    /// The user locks.
    pub fn locks(&self) -> &UserLocks {
        &self.locks
    }

    /// The RPC functions.
    pub fn rpc(&self) -> &RpcRegistry {
        &self.rpc
    }

    /// The signal handlers.
    pub fn signals(&self) -> &SignalTable {
        &self.signals
    }

    /// The master's queue of raised signals.
    pub fn signal_queue(&self) -> &SignalQueue {
        &self.signal_queue
    }

    /// Timers, crons and file monitors.
    pub fn schedules(&self) -> &Schedules {
        &self.schedules
    }

    /// The spoolers.
    pub fn spoolers(&self) -> &Spoolers {
        &self.spoolers
    }

    /// The SNMP table, when `--snmp` or `--snmp-community` enabled the agent.
    pub fn snmp(&self) -> Option<&Snmp> {
        self.snmp.as_ref()
    }

    /// The clock the callers should read `now` from.
    pub fn clock(&self) -> &dyn Clock {
        self.clock.as_ref()
    }

    /// Unix seconds from [`ServerState::clock`].
    pub fn now(&self) -> u64 {
        self.clock.now_secs()
    }
}

// The whole state is shared between threads.
const _: () = {
    const fn shareable<T: Send + Sync>() {}
    shareable::<ServerState>();
    shareable::<cache::Cache>();
    shareable::<queue::Queue>();
    shareable::<spooler::Spooler>();
    shareable::<snmp::Snmp>();
};

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    #[test]
    fn default_state_is_uwsgi_without_options() {
        let state = ServerState::default();
        assert!(state.caches().is_empty());
        assert!(state.queue().is_none());
        assert!(state.sharedareas().is_empty());
        assert_eq!(state.locks().count(), 1);
        assert!(state.rpc().is_empty());
        assert_eq!(state.rpc().max_functions(), 64);
        assert!(state.spoolers().is_empty());
        assert!(state.signal_queue().is_empty());
        assert!(state.snmp().is_none());
        let built = ServerState::new(StateConfig::default()).unwrap();
        assert_eq!(built.locks().count(), 1);
        assert!(built.caches().is_empty());
    }

    #[test]
    fn state_from_options() {
        let spool = tempfile::tempdir().unwrap();
        let config = StateConfig {
            caches: vec![
                CacheConfig::legacy(10, Some(4096)),
                CacheConfig::from_cache2_option("name=second,items=5,blocksize=64").unwrap(),
            ],
            queue: Some(QueueConfig::new(10)),
            sharedareas: vec![SharedAreaConfig::pages(2)],
            locks: 2,
            rpc_max: 8,
            signal_queue_capacity: 4,
            spoolers: vec![SpoolerConfig::new(spool.path())],
            snmp: Some(SnmpConfig {
                community: Some(b"public".to_vec()),
            }),
        };
        let clock = Arc::new(ManualClock::at_secs(1000));
        let state = ServerState::with_clock(config, Arc::clone(&clock) as Arc<dyn Clock>).unwrap();
        assert_eq!(state.caches().default_cache().unwrap().name(), "default");
        assert_eq!(state.caches().by_name(b"second").unwrap().capacity(), 4);
        assert_eq!(state.queue().unwrap().size(), 10);
        assert_eq!(state.sharedareas().size(0), Ok(8192));
        assert_eq!(state.locks().count(), 3);
        assert_eq!(state.rpc().max_functions(), 8);
        assert_eq!(state.signal_queue().capacity(), 4);
        assert_eq!(state.spoolers().len(), 1);
        assert!(state.snmp().unwrap().community_matches(b"public"));
        // Time comes from the injected clock.
        assert_eq!(state.now(), 1000);
        let cache = state.caches().default_cache().unwrap();
        cache.set(b"k", b"v", 10, state.now()).unwrap();
        clock.advance(Duration::from_secs(10));
        assert_eq!(state.caches().sweep_expired(state.now()), 1);
        assert_eq!(state.clock().now_millis(), 1_010_000);
    }

    #[test]
    fn bad_options_are_reported_by_kind() {
        let config = StateConfig {
            queue: Some(QueueConfig {
                slots: 3,
                blocksize: 100,
            }),
            ..StateConfig::default()
        };
        assert!(matches!(
            ServerState::new(config),
            Err(StateError::Queue(_))
        ));
        let config = StateConfig {
            caches: vec![CacheConfig::new("a", 2), CacheConfig::new("a", 2)],
            ..StateConfig::default()
        };
        assert!(matches!(
            ServerState::new(config),
            Err(StateError::Cache(_))
        ));
        let config = StateConfig {
            sharedareas: vec![SharedAreaConfig::pages(0)],
            ..StateConfig::default()
        };
        assert!(matches!(
            ServerState::new(config),
            Err(StateError::SharedArea(_))
        ));
    }

    #[test]
    fn system_clock_is_plausible() {
        let clock = SystemClock;
        assert!(clock.now_secs() > 1_600_000_000);
        assert!(clock.now_millis() / 1000 >= clock.now_secs() - 1);
    }
}
