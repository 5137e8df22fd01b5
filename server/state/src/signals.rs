//! uWSGI signals (spec §7.1, §8.5): 256 numbered events, each with a handler and a
//! target saying which process runs it; raised locally (`uwsgi.signal(n)`), over the
//! network (modifier1 110), by timers, crons and file monitors ([`super::timers`]).
//!
//! # The path of a signal
//!
//! 1. **Raise** — [`SignalQueue::raise`] puts the number in the master's queue (uWSGI
//!    writes one byte to the master's signal socket). The network handler answers with
//!    [`RaiseOutcome::reply`]: `ff 0000 01` when queued, `ff 0000 00` when the queue is
//!    full. Registration is **not** checked at this point: an unregistered signal is
//!    queued and acknowledged like any other (§7.1, verified on uWSGI 1.4).
//! 2. **Route** — the master takes numbers off the queue ([`SignalQueue::next`]) and asks
//!    [`SignalTable::route`] where each goes: the target of the master's registration,
//!    or "any worker" when the master has none (uWSGI's empty receiver) — including a
//!    number only a worker registered after the fork.
//! 3. **Deliver** — the receiving process calls [`SignalTable::deliver`], which runs the
//!    handler registered by that process, or else the one the master registered (workers
//!    inherit the master's table when forked). No handler: [`SignalError::NotRegistered`]
//!    (uWSGI logs "error managing signal"). Mules and spoolers deliver as [`MASTER`]:
//!    uWSGI numbers them worker 0 and they run the master's registrations.
//!
//! # Registration (2.0)
//!
//! `register_signal(num, target, handler)`: the target is at most 63 bytes; any string is
//! accepted — an unknown target only shows when the signal fires ([`SignalTarget::Unsupported`]).
//! Each process has its own table: a worker may re-register a number (replacing its own
//! handler), the master may not ([`SignalError::AlreadyRegistered`]). 1.4 refused any
//! re-registration; uWSGI also requires a master process to register at all, which is for
//! the caller to check.
//!
//! # Limits
//!
//! | what | limit |
//! |---|---|
//! | signal numbers | 0..=255 |
//! | target | ≤ 63 bytes |
//! | queued signals | [`DEFAULT_QUEUE_CAPACITY`] unless configured (uWSGI: the socket buffer, `--signal-bufsize`) |

use std::collections::{HashMap, VecDeque};
use std::fmt;
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError, RwLock};
use std::time::{Duration, Instant};

/// Longest target string.
pub const MAX_TARGET_LEN: usize = 63;
/// Default capacity of the signal queue: one byte per signal in a 64 KiB buffer.
pub const DEFAULT_QUEUE_CAPACITY: usize = 65536;
/// Worker id of the master process (uWSGI's `mywid` 0); workers count from 1.
pub const MASTER: WorkerId = 0;

/// A process id in uWSGI's numbering: 0 is the master, 1.. the workers.
pub type WorkerId = u32;

/// Which process(es) a signal goes to, parsed from uWSGI's target strings.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum SignalTarget {
    /// `""`, `worker`, `worker0`: the first available worker.
    AnyWorker,
    /// `workers`: every worker.
    AllWorkers,
    /// `active-workers`: every running worker that is neither cheaped nor suspended.
    ActiveWorkers,
    /// `workerN`, N ≥ 1: that worker.
    Worker(u32),
    /// `spooler`: the spooler(s).
    Spooler,
    /// `mule`, `mule0`: the first available mule.
    AnyMule,
    /// `mules`: every mule.
    AllMules,
    /// `muleN`, N ≥ 1: that mule.
    Mule(u32),
    /// `farmN`: the farm numbered N (from 1).
    Farm(u32),
    /// `farm_<name>`: the farm called name.
    FarmNamed(String),
    /// `subscribed`: accepted and ignored.
    Subscribed,
    /// Anything else (including the documented but unimplemented `cluster`): logged as
    /// unsupported when the signal fires.
    Unsupported(String),
}

impl SignalTarget {
    /// Parses a target as uWSGI's router reads it. Never fails: unknown strings become
    /// [`SignalTarget::Unsupported`] (the length limit is checked at registration).
    pub fn parse(target: &str) -> Self {
        let number = |digits: &str| -> Option<u32> {
            if digits.is_empty() {
                return Some(0);
            }
            if !digits.bytes().all(|b| b.is_ascii_digit()) {
                return None;
            }
            digits.parse().ok()
        };
        match target {
            "" | "worker" => return SignalTarget::AnyWorker,
            "workers" => return SignalTarget::AllWorkers,
            "active-workers" => return SignalTarget::ActiveWorkers,
            "subscribed" => return SignalTarget::Subscribed,
            "spooler" => return SignalTarget::Spooler,
            "mules" => return SignalTarget::AllMules,
            _ => {}
        }
        let unsupported = || SignalTarget::Unsupported(target.to_owned());
        if let Some(digits) = target.strip_prefix("worker") {
            return match number(digits) {
                Some(0) => SignalTarget::AnyWorker,
                Some(n) => SignalTarget::Worker(n),
                None => unsupported(),
            };
        }
        if let Some(digits) = target.strip_prefix("mule") {
            return match number(digits) {
                Some(0) => SignalTarget::AnyMule,
                Some(n) => SignalTarget::Mule(n),
                None => unsupported(),
            };
        }
        if let Some(name) = target.strip_prefix("farm_") {
            return SignalTarget::FarmNamed(name.to_owned());
        }
        if let Some(digits) = target.strip_prefix("farm") {
            // uWSGI refuses farm 0 (and anything that is not a number reads as 0).
            return match number(digits) {
                Some(n) if n > 0 && !digits.is_empty() => SignalTarget::Farm(n),
                _ => unsupported(),
            };
        }
        unsupported()
    }
}

impl fmt::Display for SignalTarget {
    /// The canonical uWSGI spelling.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SignalTarget::AnyWorker => f.write_str("worker"),
            SignalTarget::AllWorkers => f.write_str("workers"),
            SignalTarget::ActiveWorkers => f.write_str("active-workers"),
            SignalTarget::Worker(n) => write!(f, "worker{n}"),
            SignalTarget::Spooler => f.write_str("spooler"),
            SignalTarget::AnyMule => f.write_str("mule"),
            SignalTarget::AllMules => f.write_str("mules"),
            SignalTarget::Mule(n) => write!(f, "mule{n}"),
            SignalTarget::Farm(n) => write!(f, "farm{n}"),
            SignalTarget::FarmNamed(name) => write!(f, "farm_{name}"),
            SignalTarget::Subscribed => f.write_str("subscribed"),
            SignalTarget::Unsupported(raw) => f.write_str(raw),
        }
    }
}

/// A handler failure, e.g. the Python exception's text.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct HandlerFailure(pub String);

/// What runs when a signal is delivered: `handler(signum)`.
pub trait SignalHandler: Send + Sync {
    /// Handles signal `signum`.
    fn handle(&self, signum: u8) -> Result<(), HandlerFailure>;
}

impl<F> SignalHandler for F
where
    F: Fn(u8) -> Result<(), HandlerFailure> + Send + Sync,
{
    fn handle(&self, signum: u8) -> Result<(), HandlerFailure> {
        self(signum)
    }
}

/// Why registering or delivering a signal failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SignalError {
    /// A target string longer than 63 bytes.
    #[error("signal target of {len} bytes is longer than {MAX_TARGET_LEN}")]
    TargetTooLong {
        /// Target length.
        len: usize,
    },
    /// The master registering a number it registered already.
    #[error("you cannot re-register signal {signum} as the master")]
    AlreadyRegistered {
        /// Signal number.
        signum: u8,
    },
    /// No handler for this number in the delivering process (nor inherited).
    #[error("no handler registered for signal {signum}")]
    NotRegistered {
        /// Signal number.
        signum: u8,
    },
    /// The handler failed.
    #[error("error managing signal {signum}: {failure}")]
    HandlerFailed {
        /// Signal number.
        signum: u8,
        /// What the handler reported.
        failure: HandlerFailure,
    },
}

/// One registration.
#[derive(Clone)]
pub struct SignalEntry {
    /// Where the signal is routed (only the master's registration routes).
    pub target: SignalTarget,
    /// Who registered it.
    pub registered_by: WorkerId,
    /// What runs.
    pub handler: Arc<dyn SignalHandler>,
}

impl fmt::Debug for SignalEntry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SignalEntry")
            .field("target", &self.target)
            .field("registered_by", &self.registered_by)
            .finish_non_exhaustive()
    }
}

/// The handlers of every process, by (process, signal number).
#[derive(Debug, Default)]
pub struct SignalTable {
    entries: RwLock<HashMap<(WorkerId, u8), SignalEntry>>,
}

impl SignalTable {
    /// An empty table.
    pub fn new() -> Self {
        SignalTable::default()
    }

    /// `register_signal(signum, target, handler)` from process `registrant`.
    pub fn register(
        &self,
        signum: u8,
        target: &str,
        handler: Arc<dyn SignalHandler>,
        registrant: WorkerId,
    ) -> Result<(), SignalError> {
        if target.len() > MAX_TARGET_LEN {
            return Err(SignalError::TargetTooLong { len: target.len() });
        }
        let mut entries = self.entries.write().unwrap_or_else(PoisonError::into_inner);
        if registrant == MASTER && entries.contains_key(&(MASTER, signum)) {
            return Err(SignalError::AlreadyRegistered { signum });
        }
        entries.insert(
            (registrant, signum),
            SignalEntry {
                target: SignalTarget::parse(target),
                registered_by: registrant,
                handler,
            },
        );
        Ok(())
    }

    /// The registration process `worker` would run: its own, else the master's.
    pub fn entry(&self, signum: u8, worker: WorkerId) -> Option<SignalEntry> {
        let entries = self.entries.read().unwrap_or_else(PoisonError::into_inner);
        entries
            .get(&(worker, signum))
            .or_else(|| entries.get(&(MASTER, signum)))
            .cloned()
    }

    /// `signal_registered(signum)` as seen from process `worker`.
    pub fn is_registered(&self, signum: u8, worker: WorkerId) -> bool {
        self.entry(signum, worker).is_some()
    }

    /// Where the master sends `signum`: the target of **its own** registration, or
    /// [`SignalTarget::AnyWorker`] when it has none. As in uWSGI 2.0 (`uwsgi_route_signal`
    /// reads the master's row of the table), a registration a worker made after the fork
    /// does not route: its signal goes to any worker, and runs only where that worker
    /// holds a handler.
    pub fn route(&self, signum: u8) -> SignalTarget {
        let entries = self.entries.read().unwrap_or_else(PoisonError::into_inner);
        entries
            .get(&(MASTER, signum))
            .map_or(SignalTarget::AnyWorker, |entry| entry.target.clone())
    }

    /// Runs the handler of `signum` in process `worker` (no lock is held meanwhile).
    pub fn deliver(&self, signum: u8, worker: WorkerId) -> Result<(), SignalError> {
        let entry = self
            .entry(signum, worker)
            .ok_or(SignalError::NotRegistered { signum })?;
        entry
            .handler
            .handle(signum)
            .map_err(|failure| SignalError::HandlerFailed { signum, failure })
    }

    /// The numbers with a registration by anyone, ascending.
    pub fn registered(&self) -> Vec<u8> {
        let entries = self.entries.read().unwrap_or_else(PoisonError::into_inner);
        let mut numbers: Vec<u8> = entries.keys().map(|&(_, signum)| signum).collect();
        numbers.sort_unstable();
        numbers.dedup();
        numbers
    }
}

/// What became of a raised signal; the network handler's reply (§7.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RaiseOutcome {
    /// Queued for the master (registered or not).
    Queued,
    /// The queue was full; the signal is lost.
    QueueFull,
}

impl RaiseOutcome {
    /// The modifier2 of the `ff 0000 SS` reply: 1 queued, 0 full.
    pub fn status(self) -> u8 {
        match self {
            RaiseOutcome::Queued => 1,
            RaiseOutcome::QueueFull => 0,
        }
    }

    /// The whole reply: a modifier1-255 header with datasize 0.
    pub fn reply(self) -> [u8; 4] {
        [0xff, 0x00, 0x00, self.status()]
    }
}

/// Where a worker process sends the signals it raises: the master's signal socket.
pub type SignalForwarder = Box<dyn Fn(u8) -> RaiseOutcome + Send + Sync>;

/// The master's queue of raised signals (uWSGI's signal socket), bounded.
///
/// In a forked worker process the queue is set to forward ([`SignalQueue::forward_to`]):
/// [`SignalQueue::raise`] then hands the number to the master (which routes it to the
/// target process) instead of queueing it in the worker's own memory.
pub struct SignalQueue {
    capacity: usize,
    queue: Mutex<VecDeque<u8>>,
    available: Condvar,
    forward: std::sync::OnceLock<SignalForwarder>,
}

impl fmt::Debug for SignalQueue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SignalQueue")
            .field("capacity", &self.capacity)
            .field("len", &self.len())
            .field("forwarding", &self.forward.get().is_some())
            .finish()
    }
}

impl Default for SignalQueue {
    fn default() -> Self {
        SignalQueue::new(DEFAULT_QUEUE_CAPACITY)
    }
}

impl SignalQueue {
    /// A queue holding at most `capacity` signals.
    pub fn new(capacity: usize) -> Self {
        SignalQueue {
            capacity,
            queue: Mutex::new(VecDeque::new()),
            available: Condvar::new(),
            forward: std::sync::OnceLock::new(),
        }
    }

    /// From now on, [`SignalQueue::raise`] calls `forward` instead of queueing (a forked
    /// worker sends its signals to the master). Set once; a second call is ignored and
    /// returns `false`.
    pub fn forward_to(&self, forward: SignalForwarder) -> bool {
        self.forward.set(forward).is_ok()
    }

    /// Queues `signum` here even in a forwarding process (the master's own intake).
    pub fn raise_local(&self, signum: u8) -> RaiseOutcome {
        let mut queue = self.queue();
        if queue.len() >= self.capacity {
            return RaiseOutcome::QueueFull;
        }
        queue.push_back(signum);
        drop(queue);
        self.available.notify_one();
        RaiseOutcome::Queued
    }

    fn queue(&self) -> MutexGuard<'_, VecDeque<u8>> {
        self.queue.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Queues `signum` for the master (`uwsgi.signal(n)`, modifier1 110).
    pub fn raise(&self, signum: u8) -> RaiseOutcome {
        match self.forward.get() {
            Some(forward) => forward(signum),
            None => self.raise_local(signum),
        }
    }

    /// The oldest raised signal, without waiting.
    pub fn try_next(&self) -> Option<u8> {
        self.queue().pop_front()
    }

    /// The oldest raised signal, waiting up to `timeout` for one.
    pub fn next(&self, timeout: Duration) -> Option<u8> {
        let deadline = Instant::now().checked_add(timeout);
        let mut queue = self.queue();
        loop {
            if let Some(signum) = queue.pop_front() {
                return Some(signum);
            }
            let now = Instant::now();
            let left = match deadline {
                Some(deadline) if deadline > now => deadline - now,
                Some(_) => return None,
                None => Duration::from_secs(3600),
            };
            queue = self
                .available
                .wait_timeout(queue, left)
                .unwrap_or_else(PoisonError::into_inner)
                .0;
        }
    }

    /// Signals waiting.
    pub fn len(&self) -> usize {
        self.queue().len()
    }

    /// `true` when nothing waits.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The capacity.
    pub fn capacity(&self) -> usize {
        self.capacity
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    fn counting() -> (Arc<AtomicUsize>, Arc<dyn SignalHandler>) {
        let count = Arc::new(AtomicUsize::new(0));
        let seen = Arc::clone(&count);
        let handler = move |_signum: u8| -> Result<(), HandlerFailure> {
            seen.fetch_add(1, Ordering::SeqCst);
            Ok(())
        };
        (count, Arc::new(handler))
    }

    #[test]
    fn targets_parse_as_uwsgi_routes_them() {
        // §8.5 target list; 2.0 core/signal.c uwsgi_route_signal.
        let cases: &[(&str, SignalTarget)] = &[
            ("", SignalTarget::AnyWorker),
            ("worker", SignalTarget::AnyWorker),
            ("worker0", SignalTarget::AnyWorker),
            ("workers", SignalTarget::AllWorkers),
            ("active-workers", SignalTarget::ActiveWorkers),
            ("worker3", SignalTarget::Worker(3)),
            ("spooler", SignalTarget::Spooler),
            ("mule", SignalTarget::AnyMule),
            ("mule0", SignalTarget::AnyMule),
            ("mules", SignalTarget::AllMules),
            ("mule2", SignalTarget::Mule(2)),
            ("farm1", SignalTarget::Farm(1)),
            ("farm_images", SignalTarget::FarmNamed("images".into())),
            ("subscribed", SignalTarget::Subscribed),
            ("cluster", SignalTarget::Unsupported("cluster".into())),
            ("farm0", SignalTarget::Unsupported("farm0".into())),
            ("farm", SignalTarget::Unsupported("farm".into())),
            ("workerX", SignalTarget::Unsupported("workerX".into())),
            ("Workers", SignalTarget::Unsupported("Workers".into())),
        ];
        for (text, target) in cases {
            assert_eq!(&SignalTarget::parse(text), target, "{text:?}");
        }
    }

    #[test]
    fn targets_display_canonically_and_round_trip() {
        for text in [
            "worker",
            "workers",
            "active-workers",
            "worker7",
            "spooler",
            "mule",
            "mules",
            "mule4",
            "farm2",
            "farm_x",
            "subscribed",
            "cluster",
        ] {
            let target = SignalTarget::parse(text);
            assert_eq!(target.to_string(), text);
            assert_eq!(SignalTarget::parse(&target.to_string()), target);
        }
    }

    #[test]
    fn register_route_deliver() {
        let table = SignalTable::new();
        let (count, handler) = counting();
        assert!(!table.is_registered(17, MASTER));
        table.register(17, "workers", handler, MASTER).unwrap();
        assert!(table.is_registered(17, MASTER));
        // Workers inherit the master's registration.
        assert!(table.is_registered(17, 3));
        assert_eq!(table.route(17), SignalTarget::AllWorkers);
        table.deliver(17, 1).unwrap();
        table.deliver(17, 2).unwrap();
        assert_eq!(count.load(Ordering::SeqCst), 2);
        assert_eq!(table.registered(), vec![17]);
    }

    #[test]
    fn unregistered_signals_route_to_any_worker_and_fail_there() {
        // §7.1: registration is not checked when raising; the worker later logs
        // "error managing signal".
        let table = SignalTable::new();
        assert_eq!(table.route(30), SignalTarget::AnyWorker);
        assert_eq!(
            table.deliver(30, 1),
            Err(SignalError::NotRegistered { signum: 30 })
        );
    }

    #[test]
    fn master_cannot_re_register_but_workers_can() {
        // 2.0 core/signal.c: "you cannot re-register a signal as the master".
        let table = SignalTable::new();
        let (_, first) = counting();
        let (second_count, second) = counting();
        table.register(5, "", Arc::clone(&first), MASTER).unwrap();
        assert_eq!(
            table.register(5, "", Arc::clone(&first), MASTER),
            Err(SignalError::AlreadyRegistered { signum: 5 })
        );
        table.register(6, "", Arc::clone(&first), 2).unwrap();
        table.register(6, "", Arc::clone(&second), 2).unwrap();
        table.deliver(6, 2).unwrap();
        assert_eq!(second_count.load(Ordering::SeqCst), 1);
        // A worker's own registration is not seen by the others, nor routes.
        assert!(!table.is_registered(6, 1));
        assert_eq!(table.route(6), SignalTarget::AnyWorker);
        // A worker overriding the master's handler runs its own.
        table.register(5, "mules", second, 3).unwrap();
        table.deliver(5, 3).unwrap();
        assert_eq!(second_count.load(Ordering::SeqCst), 2);
        assert_eq!(table.route(5), SignalTarget::AnyWorker);
    }

    #[test]
    fn only_the_masters_registration_routes() {
        // 2.0 core/signal.c: uwsgi_route_signal reads row `mywid * 256 + sig`, and the
        // master's mywid is 0; uwsgi/uwsgi#783 shows the consequence.
        let table = SignalTable::new();
        let (mine, handler) = counting();
        table
            .register(40, "workers", Arc::clone(&handler), 2)
            .unwrap();
        assert_eq!(table.route(40), SignalTarget::AnyWorker);
        table.deliver(40, 2).unwrap();
        assert_eq!(mine.load(Ordering::SeqCst), 1);
        assert_eq!(
            table.deliver(40, MASTER),
            Err(SignalError::NotRegistered { signum: 40 })
        );
        table.register(40, "mules", handler, MASTER).unwrap();
        assert_eq!(table.route(40), SignalTarget::AllMules);
        // A mule delivers as the master.
        table.deliver(40, MASTER).unwrap();
        assert_eq!(mine.load(Ordering::SeqCst), 2);
    }

    #[test]
    fn target_length_limit() {
        // §8.5: "Target string ≤ 63 chars".
        let table = SignalTable::new();
        let (_, handler) = counting();
        table
            .register(1, &"x".repeat(63), Arc::clone(&handler), MASTER)
            .unwrap();
        assert_eq!(
            table.register(2, &"x".repeat(64), handler, MASTER),
            Err(SignalError::TargetTooLong { len: 64 })
        );
    }

    #[test]
    fn handler_failures_are_reported() {
        let table = SignalTable::new();
        let failing = |_: u8| -> Result<(), HandlerFailure> { Err(HandlerFailure("boom".into())) };
        table.register(9, "", Arc::new(failing), MASTER).unwrap();
        assert_eq!(
            table.deliver(9, 1),
            Err(SignalError::HandlerFailed {
                signum: 9,
                failure: HandlerFailure("boom".into())
            })
        );
    }

    #[test]
    fn network_replies_follow_7_1() {
        // §7.1: `ff 0000 01` queued, `ff 0000 00` when the queue is full; unregistered
        // signals are acknowledged too.
        let queue = SignalQueue::new(2);
        assert_eq!(queue.raise(17).reply(), [0xff, 0, 0, 1]);
        assert_eq!(queue.raise(200).reply(), [0xff, 0, 0, 1]);
        assert_eq!(queue.raise(1), RaiseOutcome::QueueFull);
        assert_eq!(queue.raise(1).reply(), [0xff, 0, 0, 0]);
        assert_eq!(queue.len(), 2);
        assert_eq!(queue.try_next(), Some(17));
        assert_eq!(queue.try_next(), Some(200));
        assert_eq!(queue.try_next(), None);
        assert_eq!(queue.next(Duration::from_millis(5)), None);
    }

    #[test]
    fn a_forwarding_queue_hands_signals_on() {
        let sent = Arc::new(Mutex::new(Vec::new()));
        let queue = SignalQueue::new(1);
        let log = Arc::clone(&sent);
        assert!(queue.forward_to(Box::new(move |signum| {
            log.lock()
                .unwrap_or_else(PoisonError::into_inner)
                .push(signum);
            RaiseOutcome::Queued
        })));
        assert!(!queue.forward_to(Box::new(|_| RaiseOutcome::QueueFull)));
        assert_eq!(queue.raise(3), RaiseOutcome::Queued);
        assert_eq!(queue.raise(4), RaiseOutcome::Queued);
        assert!(queue.is_empty());
        assert_eq!(
            *sent.lock().unwrap_or_else(PoisonError::into_inner),
            vec![3, 4]
        );
        assert_eq!(queue.raise_local(5), RaiseOutcome::Queued);
        assert_eq!(queue.raise_local(6), RaiseOutcome::QueueFull);
        assert_eq!(queue.try_next(), Some(5));
    }

    #[test]
    fn the_master_can_wait_for_signals() {
        let queue = Arc::new(SignalQueue::default());
        let raiser = {
            let queue = Arc::clone(&queue);
            std::thread::spawn(move || {
                std::thread::sleep(Duration::from_millis(20));
                queue.raise(42)
            })
        };
        assert_eq!(queue.next(Duration::from_secs(10)), Some(42));
        assert_eq!(raiser.join().unwrap(), RaiseOutcome::Queued);
    }

    #[test]
    fn concurrent_raises_are_all_queued() {
        let queue = Arc::new(SignalQueue::default());
        let threads: Vec<_> = (0..4u8)
            .map(|t| {
                let queue = Arc::clone(&queue);
                std::thread::spawn(move || {
                    for _ in 0..500 {
                        assert_eq!(queue.raise(t), RaiseOutcome::Queued);
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        let mut counts = [0usize; 4];
        while let Some(signum) = queue.try_next() {
            counts[usize::from(signum)] += 1;
        }
        assert_eq!(counts, [500; 4]);
    }
}
