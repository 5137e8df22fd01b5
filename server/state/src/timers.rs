//! What raises signals on its own (spec §8.6): timers, red-black-tree timers, cron
//! entries and file monitors, registered by `uwsgi.add_timer`, `add_ms_timer`,
//! `add_rb_timer`, `add_cron` and `add_file_monitor`, and checked by the master.
//!
//! This module holds the registrations and computes which signals are **due** at a
//! given time; the caller passes the clock in (milliseconds of a monotonic clock for
//! timers, unix seconds plus the broken-down local time for crons), raises what is due
//! through [`super::signals::SignalQueue`], and watches the files itself.
//!
//! # Semantics (uWSGI 2.0, `core/signal.c`, `core/cron.c`, `core/master_utils.c`)
//!
//! * **Timer** (`add_timer(sig, secs)`, `add_ms_timer(sig, ms)`): a kernel interval
//!   timer. First due one interval after registration, then at fixed rate; if the master
//!   was late and several intervals passed, the signal is raised once (a timerfd read
//!   reports all expirations in one event, and uWSGI raises one signal per event).
//! * **RB timer** (`add_rb_timer(sig, secs, iterations=0)`): re-armed relative to when
//!   it fired; stops after `iterations` firings (0 = forever).
//! * **Cron** (`add_cron(sig, minute, hour, day, month, weekday)`): fields are matched
//!   against the local time; -1 matches anything and -N matches values divisible by N;
//!   weekday 0 (and 7) is Sunday; when both day and weekday are ≥ 0 they are OR-ed. A
//!   cron fires at most once per 60 seconds.
//! * **File monitor** (`add_file_monitor(sig, path)`): path shorter than 255 bytes.
//!
//! # Registered in a forked child
//!
//! uWSGI keeps these tables in shared memory, so `add_timer` called in a worker (or a
//! mule, or the spooler) after the fork reaches the master, which runs them. Here each
//! process has its own [`Schedules`]; a forked child sets a forwarder
//! ([`Schedules::forward_to`]) and every registration it makes is also sent to the master
//! as a [`ScheduleRequest`] (one datagram on the master's signal intake), which the
//! master [applies](Schedules::apply) to its own tables. The child keeps its copy, so the
//! limits it checks count what it inherited plus what it added.
//!
//! # Limits
//!
//! 64 of each kind ([`MAX_TIMERS`], [`MAX_RB_TIMERS`], [`MAX_CRONS`],
//! [`MAX_FILE_MONITORS`]); more is an error, as in uWSGI (`ValueError` in Python).
//!
//! # Differences from uWSGI
//!
//! A zero interval is refused (a zero timerfd interval never fires; a zero rb timer would
//! fire on every master cycle).

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard, OnceLock, PoisonError};

/// Most kernel timers (`add_timer`, `add_ms_timer`).
pub const MAX_TIMERS: usize = 64;
/// Most rb timers.
pub const MAX_RB_TIMERS: usize = 64;
/// Most cron entries.
pub const MAX_CRONS: usize = 64;
/// Most file monitors.
pub const MAX_FILE_MONITORS: usize = 64;
/// Longest monitored path, in bytes.
pub const MAX_MONITOR_PATH: usize = 254;
/// A cron entry fires at most once per this many seconds.
pub const CRON_MIN_GAP_SECS: u64 = 60;

/// Why a registration was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TimerError {
    /// 64 of this kind are registered already.
    #[error("you can register max {max} {kind}")]
    TooMany {
        /// "timers", "rb_timers", "crons" or "file monitors".
        kind: &'static str,
        /// The limit.
        max: usize,
    },
    /// An interval of 0.
    #[error("a timer interval must be at least 1")]
    ZeroInterval,
    /// A path of 255 bytes or more.
    #[error("invalid filename length: {len} bytes (at most {MAX_MONITOR_PATH})")]
    PathTooLong {
        /// Path length.
        len: usize,
    },
    /// A forked child could not hand the registration to the master.
    #[error("the master did not take the registration")]
    MasterUnreachable,
}

/// The local time, broken down as cron needs it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CivilTime {
    /// 0..=59.
    pub minute: i32,
    /// 0..=23.
    pub hour: i32,
    /// Day of the month, 1..=31.
    pub day: i32,
    /// 1..=12.
    pub month: i32,
    /// 0..=6, 0 = Sunday.
    pub weekday: i32,
}

impl CivilTime {
    /// Breaks down `unix_secs` shifted by `utc_offset_secs` (the local offset, which the
    /// caller knows; 0 for UTC). Proleptic Gregorian calendar.
    pub fn from_unix(unix_secs: i64, utc_offset_secs: i64) -> Self {
        let local = unix_secs.saturating_add(utc_offset_secs);
        let days = local.div_euclid(86_400);
        let secs_of_day = local.rem_euclid(86_400);
        // Days to civil date (H. Hinnant's algorithm), in i64 throughout.
        // Only the day within the 400-year era matters: the year is not needed.
        let day_of_era = (days + 719_468).rem_euclid(146_097);
        let year_of_era =
            (day_of_era - day_of_era / 1460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
        let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
        let mp = (5 * day_of_year + 2) / 153;
        let day = day_of_year - (153 * mp + 2) / 5 + 1;
        let month = if mp < 10 { mp + 3 } else { mp - 9 };
        let narrow = |n: i64| i32::try_from(n).unwrap_or(0);
        CivilTime {
            minute: narrow(secs_of_day / 60 % 60),
            hour: narrow(secs_of_day / 3600),
            day: narrow(day),
            month: narrow(month),
            // 1970-01-01 was a Thursday.
            weekday: narrow((days + 4).rem_euclid(7)),
        }
    }
}

/// The five fields of `add_cron`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CronSpec {
    /// Minute, or -1 any, -N every N.
    pub minute: i32,
    /// Hour, or -1 any, -N every N.
    pub hour: i32,
    /// Day of month, or -1 any, -N every N.
    pub day: i32,
    /// Month (1..=12), or -1 any, -N every N.
    pub month: i32,
    /// Weekday (0 or 7 = Sunday), or -1 any, -N every N.
    pub weekday: i32,
}

impl CronSpec {
    /// Whether `time` matches, exactly as `uwsgi_cron_task_needs_execution`.
    pub fn matches(&self, time: &CivilTime) -> bool {
        // A negative field -N matches values divisible by N (so -1 matches anything);
        // a non-negative one must be equal.
        let field = |wanted: i32, actual: i32| -> bool {
            if wanted < 0 {
                actual.rem_euclid(i32::try_from(wanted.unsigned_abs()).unwrap_or(i32::MAX)) == 0
            } else {
                wanted == actual
            }
        };
        let weekday = if self.weekday == 7 { 0 } else { self.weekday };
        let common = field(self.minute, time.minute)
            && field(self.hour, time.hour)
            && field(self.month, time.month);
        if self.day >= 0 && weekday >= 0 {
            common && (time.day == self.day || time.weekday == weekday)
        } else {
            common && field(self.day, time.day) && field(weekday, time.weekday)
        }
    }
}

/// A kernel interval timer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timer {
    /// Signal raised.
    pub signum: u8,
    /// Interval in milliseconds.
    pub interval_ms: u64,
    /// When it is next due.
    pub next_due_ms: u64,
}

/// A user-space timer with an optional number of iterations.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RbTimer {
    /// Signal raised.
    pub signum: u8,
    /// Interval in milliseconds.
    pub interval_ms: u64,
    /// Firings before it stops; 0 = forever.
    pub iterations: u64,
    /// Firings so far.
    pub fired: u64,
    /// When it is next due.
    pub next_due_ms: u64,
}

/// A cron entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CronEntry {
    /// Signal raised.
    pub signum: u8,
    /// When it fires.
    pub spec: CronSpec,
    /// Unix time of the last firing.
    pub last_run: Option<u64>,
}

/// A watched path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileMonitor {
    /// Signal raised when the path changes.
    pub signum: u8,
    /// The path.
    pub path: PathBuf,
}

/// A registration a forked child hands to the master (see the module docs).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ScheduleRequest {
    /// `add_timer` / `add_ms_timer`: interval in milliseconds.
    Timer {
        /// Signal raised.
        signum: u8,
        /// Interval in milliseconds.
        interval_ms: u64,
    },
    /// `add_rb_timer`.
    RbTimer {
        /// Signal raised.
        signum: u8,
        /// Interval in seconds.
        secs: u64,
        /// Firings before it stops; 0 = forever.
        iterations: u64,
    },
    /// `add_cron`.
    Cron {
        /// Signal raised.
        signum: u8,
        /// When it fires.
        spec: CronSpec,
    },
    /// `add_file_monitor`.
    FileMonitor {
        /// Signal raised.
        signum: u8,
        /// The path (raw bytes).
        path: PathBuf,
    },
}

const TAG_TIMER: u8 = b'T';
const TAG_RB_TIMER: u8 = b'R';
const TAG_CRON: u8 = b'C';
const TAG_FILE_MONITOR: u8 = b'F';

impl ScheduleRequest {
    /// The datagram: a tag byte, the signal number, then the fields little-endian (a
    /// file monitor's path as its raw bytes). Always at least 2 bytes long, so it can
    /// share a channel with 1-byte raised signals.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(32);
        match self {
            ScheduleRequest::Timer {
                signum,
                interval_ms,
            } => {
                out.extend([TAG_TIMER, *signum]);
                out.extend(interval_ms.to_le_bytes());
            }
            ScheduleRequest::RbTimer {
                signum,
                secs,
                iterations,
            } => {
                out.extend([TAG_RB_TIMER, *signum]);
                out.extend(secs.to_le_bytes());
                out.extend(iterations.to_le_bytes());
            }
            ScheduleRequest::Cron { signum, spec } => {
                out.extend([TAG_CRON, *signum]);
                for field in [spec.minute, spec.hour, spec.day, spec.month, spec.weekday] {
                    out.extend(field.to_le_bytes());
                }
            }
            ScheduleRequest::FileMonitor { signum, path } => {
                use std::os::unix::ffi::OsStrExt;
                out.extend([TAG_FILE_MONITOR, *signum]);
                out.extend(path.as_os_str().as_bytes());
            }
        }
        out
    }

    /// Reads what [`ScheduleRequest::encode`] wrote; `None` for anything else.
    pub fn decode(bytes: &[u8]) -> Option<Self> {
        use std::os::unix::ffi::OsStrExt;
        let (&tag, rest) = bytes.split_first()?;
        let (&signum, rest) = rest.split_first()?;
        let u64_at = |i: usize| -> Option<u64> {
            Some(u64::from_le_bytes(
                rest.get(i * 8..i * 8 + 8)?.try_into().ok()?,
            ))
        };
        let i32_at = |i: usize| -> Option<i32> {
            Some(i32::from_le_bytes(
                rest.get(i * 4..i * 4 + 4)?.try_into().ok()?,
            ))
        };
        match tag {
            TAG_TIMER if rest.len() == 8 => Some(ScheduleRequest::Timer {
                signum,
                interval_ms: u64_at(0)?,
            }),
            TAG_RB_TIMER if rest.len() == 16 => Some(ScheduleRequest::RbTimer {
                signum,
                secs: u64_at(0)?,
                iterations: u64_at(1)?,
            }),
            TAG_CRON if rest.len() == 20 => Some(ScheduleRequest::Cron {
                signum,
                spec: CronSpec {
                    minute: i32_at(0)?,
                    hour: i32_at(1)?,
                    day: i32_at(2)?,
                    month: i32_at(3)?,
                    weekday: i32_at(4)?,
                },
            }),
            TAG_FILE_MONITOR if !rest.is_empty() => Some(ScheduleRequest::FileMonitor {
                signum,
                path: PathBuf::from(std::ffi::OsStr::from_bytes(rest)),
            }),
            _ => None,
        }
    }
}

/// Where a forked child sends its registrations: `false` when the master did not get it.
pub type ScheduleForwarder = Box<dyn Fn(&ScheduleRequest) -> bool + Send + Sync>;

#[derive(Debug, Default)]
struct Registrations {
    timers: Vec<Timer>,
    rb_timers: Vec<RbTimer>,
    crons: Vec<CronEntry>,
    file_monitors: Vec<FileMonitor>,
}

/// All timers, crons and file monitors of a server. Thread-safe.
#[derive(Default)]
pub struct Schedules {
    inner: Mutex<Registrations>,
    forward: OnceLock<ScheduleForwarder>,
}

impl fmt::Debug for Schedules {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Schedules")
            .field("inner", &*self.inner())
            .field("forwarding", &self.forward.get().is_some())
            .finish()
    }
}

fn room(len: usize, max: usize, kind: &'static str) -> Result<(), TimerError> {
    if len >= max {
        Err(TimerError::TooMany { kind, max })
    } else {
        Ok(())
    }
}

impl Schedules {
    /// Nothing registered.
    pub fn new() -> Self {
        Schedules::default()
    }

    fn inner(&self) -> MutexGuard<'_, Registrations> {
        // Registrations are plain values pushed whole: never half-updated.
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// From now on every registration is also handed to `forward` (a forked child sends
    /// it to the master). Set once; a second call is ignored and returns `false`.
    pub fn forward_to(&self, forward: ScheduleForwarder) -> bool {
        self.forward.set(forward).is_ok()
    }

    /// Whether registrations are forwarded (this is a forked child).
    pub fn is_forwarding(&self) -> bool {
        self.forward.get().is_some()
    }

    fn forward(&self, request: ScheduleRequest) -> Result<(), TimerError> {
        match self.forward.get() {
            Some(forward) if !forward(&request) => Err(TimerError::MasterUnreachable),
            _ => Ok(()),
        }
    }

    /// Registers what a child forwarded, as of `now_ms` (the master's clock).
    pub fn apply(&self, request: &ScheduleRequest, now_ms: u64) -> Result<(), TimerError> {
        match request {
            ScheduleRequest::Timer {
                signum,
                interval_ms,
            } => self.add_ms_timer(*signum, *interval_ms, now_ms),
            ScheduleRequest::RbTimer {
                signum,
                secs,
                iterations,
            } => self.add_rb_timer(*signum, *secs, *iterations, now_ms),
            ScheduleRequest::Cron { signum, spec } => self.add_cron(*signum, *spec),
            ScheduleRequest::FileMonitor { signum, path } => self.add_file_monitor(*signum, path),
        }
    }

    /// `add_timer(signum, secs)`, registered at `now_ms`.
    pub fn add_timer(&self, signum: u8, secs: u64, now_ms: u64) -> Result<(), TimerError> {
        self.add_ms_timer(signum, secs.saturating_mul(1000), now_ms)
    }

    /// `add_ms_timer(signum, ms)` (2.0), registered at `now_ms`.
    pub fn add_ms_timer(&self, signum: u8, ms: u64, now_ms: u64) -> Result<(), TimerError> {
        if ms == 0 {
            return Err(TimerError::ZeroInterval);
        }
        let mut inner = self.inner();
        room(inner.timers.len(), MAX_TIMERS, "timers")?;
        inner.timers.push(Timer {
            signum,
            interval_ms: ms,
            next_due_ms: now_ms.saturating_add(ms),
        });
        drop(inner);
        self.forward(ScheduleRequest::Timer {
            signum,
            interval_ms: ms,
        })
    }

    /// `add_rb_timer(signum, secs, iterations)`, registered at `now_ms`.
    pub fn add_rb_timer(
        &self,
        signum: u8,
        secs: u64,
        iterations: u64,
        now_ms: u64,
    ) -> Result<(), TimerError> {
        if secs == 0 {
            return Err(TimerError::ZeroInterval);
        }
        let mut inner = self.inner();
        room(inner.rb_timers.len(), MAX_RB_TIMERS, "rb_timers")?;
        let interval_ms = secs.saturating_mul(1000);
        inner.rb_timers.push(RbTimer {
            signum,
            interval_ms,
            iterations,
            fired: 0,
            next_due_ms: now_ms.saturating_add(interval_ms),
        });
        drop(inner);
        self.forward(ScheduleRequest::RbTimer {
            signum,
            secs,
            iterations,
        })
    }

    /// `add_cron(signum, minute, hour, day, month, weekday)`.
    pub fn add_cron(&self, signum: u8, spec: CronSpec) -> Result<(), TimerError> {
        let mut inner = self.inner();
        room(inner.crons.len(), MAX_CRONS, "crons")?;
        inner.crons.push(CronEntry {
            signum,
            spec,
            last_run: None,
        });
        drop(inner);
        self.forward(ScheduleRequest::Cron { signum, spec })
    }

    /// Removes the first cron entry raising `signum` (uWSGI's `uwsgi_signal_del_cron`).
    pub fn del_cron(&self, signum: u8) -> bool {
        let mut inner = self.inner();
        match inner.crons.iter().position(|cron| cron.signum == signum) {
            Some(index) => {
                inner.crons.remove(index);
                true
            }
            None => false,
        }
    }

    /// `add_file_monitor(signum, path)`.
    pub fn add_file_monitor(&self, signum: u8, path: &Path) -> Result<(), TimerError> {
        let len = path.as_os_str().len();
        if len > MAX_MONITOR_PATH {
            return Err(TimerError::PathTooLong { len });
        }
        let mut inner = self.inner();
        room(
            inner.file_monitors.len(),
            MAX_FILE_MONITORS,
            "file monitors",
        )?;
        inner.file_monitors.push(FileMonitor {
            signum,
            path: path.to_owned(),
        });
        drop(inner);
        self.forward(ScheduleRequest::FileMonitor {
            signum,
            path: path.to_owned(),
        })
    }

    /// Signals of the timers and rb timers due at `now_ms`, in registration order
    /// (timers first); each due timer is re-armed (finished rb timers are dropped).
    pub fn due_timers(&self, now_ms: u64) -> Vec<u8> {
        let mut inner = self.inner();
        let mut due = Vec::new();
        for timer in &mut inner.timers {
            if timer.next_due_ms <= now_ms {
                due.push(timer.signum);
                // Fixed rate: the next multiple of the interval after now.
                let late = now_ms - timer.next_due_ms;
                let skipped = late / timer.interval_ms + 1;
                timer.next_due_ms = timer
                    .next_due_ms
                    .saturating_add(skipped.saturating_mul(timer.interval_ms));
            }
        }
        inner.rb_timers.retain_mut(|timer| {
            if timer.next_due_ms > now_ms {
                return true;
            }
            due.push(timer.signum);
            timer.fired += 1;
            timer.next_due_ms = now_ms.saturating_add(timer.interval_ms);
            timer.iterations == 0 || timer.fired < timer.iterations
        });
        due
    }

    /// Signals of the cron entries due at unix time `now_secs`, whose local time is
    /// `time`, in registration order.
    pub fn due_crons(&self, now_secs: u64, time: &CivilTime) -> Vec<u8> {
        let mut inner = self.inner();
        let mut due = Vec::new();
        for cron in &mut inner.crons {
            if !cron.spec.matches(time) {
                continue;
            }
            let rested = cron
                .last_run
                .is_none_or(|last| now_secs.saturating_sub(last) >= CRON_MIN_GAP_SECS);
            if rested {
                due.push(cron.signum);
                cron.last_run = Some(now_secs);
            }
        }
        due
    }

    /// The earliest time a timer or rb timer is due, for the master's sleep.
    pub fn next_timer_due(&self) -> Option<u64> {
        let inner = self.inner();
        inner
            .timers
            .iter()
            .map(|t| t.next_due_ms)
            .chain(inner.rb_timers.iter().map(|t| t.next_due_ms))
            .min()
    }

    /// The registered timers.
    pub fn timers(&self) -> Vec<Timer> {
        self.inner().timers.clone()
    }

    /// The registered rb timers still running.
    pub fn rb_timers(&self) -> Vec<RbTimer> {
        self.inner().rb_timers.clone()
    }

    /// The registered crons.
    pub fn crons(&self) -> Vec<CronEntry> {
        self.inner().crons.clone()
    }

    /// The registered file monitors.
    pub fn file_monitors(&self) -> Vec<FileMonitor> {
        self.inner().file_monitors.clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(minute: i32, hour: i32, day: i32, month: i32, weekday: i32) -> CivilTime {
        CivilTime {
            minute,
            hour,
            day,
            month,
            weekday,
        }
    }

    fn spec(minute: i32, hour: i32, day: i32, month: i32, weekday: i32) -> CronSpec {
        CronSpec {
            minute,
            hour,
            day,
            month,
            weekday,
        }
    }

    #[test]
    fn civil_time_from_unix() {
        // 1970-01-01 00:00 was a Thursday.
        assert_eq!(CivilTime::from_unix(0, 0), at(0, 0, 1, 1, 4));
        // 2024-02-29 13:45:10 UTC, a Thursday.
        assert_eq!(CivilTime::from_unix(1_709_214_310, 0), at(45, 13, 29, 2, 4));
        // The same instant at UTC+2.
        assert_eq!(
            CivilTime::from_unix(1_709_214_310, 7200),
            at(45, 15, 29, 2, 4)
        );
        // 2000-03-01 00:00 UTC, a Wednesday.
        assert_eq!(CivilTime::from_unix(951_868_800, 0), at(0, 0, 1, 3, 3));
        // Before the epoch: 1969-12-31 23:59, a Wednesday.
        assert_eq!(CivilTime::from_unix(-60, 0), at(59, 23, 31, 12, 3));
        // Extremes do not panic.
        let _ = CivilTime::from_unix(i64::MAX, i64::MAX);
        let _ = CivilTime::from_unix(i64::MIN, i64::MIN);
    }

    #[test]
    fn cron_fields_match_like_uwsgi() {
        // §8.6: -1 = any, -N = every N.
        let t = at(30, 12, 15, 6, 3);
        assert!(spec(-1, -1, -1, -1, -1).matches(&t));
        assert!(spec(30, 12, -1, -1, -1).matches(&t));
        assert!(!spec(31, 12, -1, -1, -1).matches(&t));
        assert!(spec(-15, -6, -1, -3, -1).matches(&t));
        assert!(!spec(-7, -1, -1, -1, -1).matches(&t));
        assert!(spec(-1, -1, 15, 6, -1).matches(&t));
        assert!(!spec(-1, -1, 15, 7, -1).matches(&t));
    }

    #[test]
    fn cron_day_and_weekday_are_ored_only_when_both_set() {
        // §8.6: "day and weekday are OR-ed only when both are ≥ 0".
        let wednesday_15th = at(0, 0, 15, 6, 3);
        let wednesday_16th = at(0, 0, 16, 6, 3);
        let thursday_15th = at(0, 0, 15, 6, 4);
        let both = spec(0, 0, 15, -1, 3);
        assert!(both.matches(&wednesday_15th));
        assert!(both.matches(&wednesday_16th));
        assert!(both.matches(&thursday_15th));
        assert!(!both.matches(&at(0, 0, 16, 6, 4)));
        let day_only = spec(0, 0, 15, -1, -1);
        assert!(day_only.matches(&thursday_15th));
        assert!(!day_only.matches(&wednesday_16th));
        let weekday_only = spec(0, 0, -1, -1, 3);
        assert!(weekday_only.matches(&wednesday_16th));
        assert!(!weekday_only.matches(&thursday_15th));
    }

    #[test]
    fn cron_weekday_zero_and_seven_are_sunday() {
        // §8.6 DOCS≠CODE: weekday 0 = Sunday (6 is Saturday); 7 is accepted as Sunday.
        let sunday = at(0, 0, 2, 6, 0);
        let saturday = at(0, 0, 1, 6, 6);
        assert!(spec(0, 0, -1, -1, 0).matches(&sunday));
        assert!(spec(0, 0, -1, -1, 7).matches(&sunday));
        assert!(spec(0, 0, -1, -1, 6).matches(&saturday));
        assert!(!spec(0, 0, -1, -1, 6).matches(&sunday));
    }

    #[test]
    fn cron_fires_at_most_once_per_minute() {
        let schedules = Schedules::new();
        schedules.add_cron(10, spec(-1, -1, -1, -1, -1)).unwrap();
        schedules.add_cron(11, spec(5, -1, -1, -1, -1)).unwrap();
        let minute_zero = at(0, 0, 1, 1, 4);
        assert_eq!(schedules.due_crons(0, &minute_zero), vec![10]);
        assert!(schedules.due_crons(30, &minute_zero).is_empty());
        assert_eq!(schedules.due_crons(60, &at(1, 0, 1, 1, 4)), vec![10]);
        assert_eq!(schedules.due_crons(300, &at(5, 0, 1, 1, 4)), vec![10, 11]);
        assert!(schedules.del_cron(10));
        assert!(!schedules.del_cron(10));
        assert_eq!(schedules.due_crons(1000, &at(5, 1, 1, 1, 4)), vec![11]);
    }

    #[test]
    fn timers_fire_at_fixed_rate_and_coalesce_missed_intervals() {
        let schedules = Schedules::new();
        schedules.add_timer(1, 2, 0).unwrap();
        schedules.add_ms_timer(2, 500, 0).unwrap();
        assert_eq!(schedules.next_timer_due(), Some(500));
        assert!(schedules.due_timers(499).is_empty());
        assert_eq!(schedules.due_timers(500), vec![2]);
        assert_eq!(schedules.due_timers(2000), vec![1, 2]);
        // The master was late by several intervals: one signal each, schedule kept.
        assert_eq!(schedules.due_timers(5700), vec![1, 2]);
        let timers = schedules.timers();
        assert_eq!(timers[0].next_due_ms, 6000);
        assert_eq!(timers[1].next_due_ms, 6000);
    }

    #[test]
    fn rb_timers_rearm_from_firing_and_stop_after_iterations() {
        let schedules = Schedules::new();
        schedules.add_rb_timer(3, 1, 2, 0).unwrap();
        schedules.add_rb_timer(4, 1, 0, 0).unwrap();
        assert_eq!(schedules.due_timers(1500), vec![3, 4]);
        // Re-armed relative to the firing time, not the schedule.
        assert!(schedules.due_timers(2000).is_empty());
        assert_eq!(schedules.due_timers(2500), vec![3, 4]);
        assert_eq!(schedules.rb_timers().len(), 1);
        assert_eq!(schedules.due_timers(10_000), vec![4]);
    }

    #[test]
    fn limits_are_64_each() {
        // §8.6: "max 64; ValueError on overflow".
        let schedules = Schedules::new();
        for i in 0..64u8 {
            schedules.add_timer(i, 1, 0).unwrap();
            schedules.add_rb_timer(i, 1, 0, 0).unwrap();
            schedules.add_cron(i, spec(-1, -1, -1, -1, -1)).unwrap();
            schedules.add_file_monitor(i, Path::new("/tmp/x")).unwrap();
        }
        assert_eq!(
            schedules.add_timer(0, 1, 0),
            Err(TimerError::TooMany {
                kind: "timers",
                max: 64
            })
        );
        assert!(schedules.add_rb_timer(0, 1, 0, 0).is_err());
        assert!(schedules.add_cron(0, spec(-1, -1, -1, -1, -1)).is_err());
        assert!(schedules.add_file_monitor(0, Path::new("/tmp/y")).is_err());
    }

    #[test]
    fn file_monitor_paths_are_shorter_than_255() {
        // §8.6: "path < 255 chars".
        let schedules = Schedules::new();
        schedules
            .add_file_monitor(1, Path::new(&"a".repeat(254)))
            .unwrap();
        assert_eq!(
            schedules.add_file_monitor(1, Path::new(&"a".repeat(255))),
            Err(TimerError::PathTooLong { len: 255 })
        );
        assert_eq!(schedules.file_monitors()[0].signum, 1);
    }

    #[test]
    fn zero_intervals_are_refused() {
        let schedules = Schedules::new();
        assert_eq!(schedules.add_timer(1, 0, 0), Err(TimerError::ZeroInterval));
        assert_eq!(
            schedules.add_ms_timer(1, 0, 0),
            Err(TimerError::ZeroInterval)
        );
        assert_eq!(
            schedules.add_rb_timer(1, 0, 0, 0),
            Err(TimerError::ZeroInterval)
        );
    }

    #[test]
    fn requests_round_trip_and_refuse_garbage() {
        let requests = [
            ScheduleRequest::Timer {
                signum: 3,
                interval_ms: 1500,
            },
            ScheduleRequest::RbTimer {
                signum: 4,
                secs: 2,
                iterations: 7,
            },
            ScheduleRequest::Cron {
                signum: 5,
                spec: spec(-1, 3, -2, 12, 0),
            },
            ScheduleRequest::FileMonitor {
                signum: 6,
                path: PathBuf::from("/tmp/watched"),
            },
        ];
        for request in &requests {
            let bytes = request.encode();
            assert!(bytes.len() >= 2, "never mistaken for a 1-byte signal");
            assert_eq!(ScheduleRequest::decode(&bytes).as_ref(), Some(request));
            // Every strict prefix is refused.
            for cut in 0..bytes.len() {
                if matches!(request, ScheduleRequest::FileMonitor { .. }) && cut > 2 {
                    continue;
                }
                assert_eq!(
                    ScheduleRequest::decode(&bytes[..cut]),
                    None,
                    "{request:?} {cut}"
                );
            }
        }
        assert_eq!(ScheduleRequest::decode(b"X\x01abcdefgh"), None);
        assert_eq!(ScheduleRequest::decode(&[17]), None);
    }

    #[test]
    fn a_forked_child_forwards_what_it_registers() {
        use std::sync::Arc;
        let master = Arc::new(Schedules::new());
        let child = Schedules::new();
        let to = Arc::clone(&master);
        assert!(child.forward_to(Box::new(move |request| {
            to.apply(&ScheduleRequest::decode(&request.encode()).unwrap(), 10_000)
                .is_ok()
        })));
        assert!(child.is_forwarding());
        child.add_timer(9, 2, 0).unwrap();
        child.add_rb_timer(10, 1, 2, 0).unwrap();
        child.add_cron(11, spec(-1, -1, -1, -1, -1)).unwrap();
        child.add_file_monitor(12, Path::new("/tmp/f")).unwrap();
        // The master arms the timers on its own clock.
        assert_eq!(master.timers()[0].next_due_ms, 12_000);
        assert_eq!(master.rb_timers()[0].next_due_ms, 11_000);
        assert_eq!(master.due_timers(10_999), Vec::<u8>::new());
        assert_eq!(master.due_timers(11_000), vec![10]);
        assert_eq!(master.due_timers(12_000), vec![9, 10]);
        assert_eq!(master.crons()[0].signum, 11);
        assert_eq!(master.file_monitors()[0].path, PathBuf::from("/tmp/f"));
        assert_eq!(child.timers().len(), 1);

        let lost = Schedules::new();
        lost.forward_to(Box::new(|_| false));
        assert_eq!(lost.add_timer(1, 1, 0), Err(TimerError::MasterUnreachable));
    }
}
