//! What raises uWSGI signals on time: the timers, crons and file monitors the application
//! registered (`add_timer`, `add_cron`, `add_file_monitor`, …). One [`Scheduler`] runs in
//! the process that routes signals: the master, or the background thread of a server
//! without one.

use std::collections::HashMap;
use std::path::PathBuf;
use std::time::SystemTime;

use crate::state::ServerState;
use crate::state::timers::CivilTime;

/// Checks the registered schedules; remembers the file monitors' last modification times.
#[derive(Debug, Default)]
pub(crate) struct Scheduler {
    watched: HashMap<PathBuf, Option<SystemTime>>,
}

impl Scheduler {
    /// The signals due now, in order: timers, then crons (matched against the local time,
    /// as uWSGI does), then the file monitors whose file changed since the last look (a
    /// path is first looked at when this learns of it; uWSGI watches with inotify).
    pub(crate) fn due(&mut self, state: &ServerState) -> Vec<u8> {
        let schedules = state.schedules();
        let mut due = schedules.due_timers(state.clock().now_millis());
        let now = state.now();
        let unix = i64::try_from(now).unwrap_or(0);
        let civil = CivilTime::from_unix(unix, utc_offset(unix));
        due.extend(schedules.due_crons(now, &civil));
        for monitor in schedules.file_monitors() {
            let stamp = std::fs::metadata(&monitor.path)
                .and_then(|m| m.modified())
                .ok();
            match self.watched.insert(monitor.path.clone(), stamp) {
                Some(seen) if seen != stamp => due.push(monitor.signum),
                _ => {}
            }
        }
        due
    }
}

/// The local time's offset from UTC at `unix_secs`, in seconds (0 if unknown).
#[allow(unsafe_code)]
fn utc_offset(unix_secs: i64) -> i64 {
    // time_t is 64 bits on the Linux targets this builds for.
    let time: libc::time_t = unix_secs;
    // SAFETY: `tm` is plain old data, valid when zeroed; localtime_r only writes it and
    // reads `time`, both owned here (the reentrant variant keeps no static).
    unsafe {
        let mut tm: libc::tm = std::mem::zeroed();
        if libc::localtime_r(&time, &mut tm).is_null() {
            return 0;
        }
        tm.tm_gmtoff
    }
}
