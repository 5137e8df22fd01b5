//! The server's background jobs, uWSGI's master duties: delivering queued signals,
//! running spool jobs, sweeping expired cache items and firing timers. Each is a thread
//! that wakes at least every [`TICK`] to notice a stop.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;

use crate::server::Shared;

/// Longest a background thread sleeps before checking for a stop.
const TICK: Duration = Duration::from_millis(200);
/// How often expired cache items are removed (uWSGI's `--cache-expire-freq` default).
const CACHE_SWEEP_EVERY: Duration = Duration::from_secs(3);
/// The worker id signal handlers run as: the workers are threads of one process here.
const WORKER: u32 = 1;

/// Starts every background job the configuration needs.
pub fn start(shared: &Arc<Shared>, stopping: &Arc<AtomicBool>) -> Vec<JoinHandle<()>> {
    let mut threads = Vec::new();
    let spawn = |job: Box<dyn FnOnce() + Send>| std::thread::spawn(job);

    // Signals raised over the network (110), by timers or by the app.
    {
        let (shared, stopping) = (Arc::clone(shared), Arc::clone(stopping));
        threads.push(spawn(Box::new(move || {
            while !stopping.load(Ordering::Relaxed) {
                let Some(signum) = shared.state.signal_queue().next(TICK) else {
                    continue;
                };
                if let Err(err) = shared.state.signals().deliver(signum, WORKER) {
                    shared.log(format_args!("error managing signal {signum}: {err}"));
                }
            }
        })));
    }

    // One thread per spool directory: a pass at every enqueue or every
    // --spooler-frequency seconds, whichever comes first. The frequency is read on
    // every tick: `uwsgi.set_spooler_frequency` changes it while the server runs.
    for spooler in shared.state.spoolers().iter() {
        let (shared, stopping, spooler) = (
            Arc::clone(shared),
            Arc::clone(stopping),
            Arc::clone(spooler),
        );
        threads.push(spawn(Box::new(move || {
            let mut seen = spooler.generation();
            let mut waited = Duration::ZERO;
            let mut run = true;
            while !stopping.load(Ordering::Relaxed) {
                if run {
                    let app = Arc::clone(&shared.app);
                    let mut handler = |task: &crate::state::spooler::SpoolTask| app.spool(task);
                    if let Err(err) = spooler.run_pending(shared.state.now(), &mut handler) {
                        shared.log(format_args!("spooler {}: {err}", spooler.dir().display()));
                    }
                    waited = Duration::ZERO;
                }
                let now_seen = spooler.wait_for_enqueue(seen, TICK);
                waited += TICK;
                run = now_seen != seen || waited >= shared.scoreboard.spooler_frequency();
                seen = now_seen;
            }
        })));
    }

    // Expired cache items; timers, crons and file monitors.
    {
        let (shared, stopping) = (Arc::clone(shared), Arc::clone(stopping));
        threads.push(spawn(Box::new(move || {
            let mut since_sweep = Duration::ZERO;
            let mut scheduler = crate::schedule::Scheduler::default();
            while !stopping.load(Ordering::Relaxed) {
                std::thread::sleep(Duration::from_millis(50));
                since_sweep += Duration::from_millis(50);
                if since_sweep >= CACHE_SWEEP_EVERY {
                    shared.state.caches().sweep_expired(shared.state.now());
                    since_sweep = Duration::ZERO;
                }
                for signum in scheduler.due(&shared.state) {
                    shared.state.signal_queue().raise(signum);
                }
            }
        })));
    }
    threads
}
