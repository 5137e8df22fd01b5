//! The spooler (spec §7.5): jobs written as files into a directory and run later by the
//! spooler process, enqueued by `uwsgi.spool()` and by modifier1 17 requests.
//!
//! # On-disk format (identical to uWSGI's, local and remote enqueue)
//!
//! ```text
//! 11 LLLL 00 | vars (L bytes) | optional body (every remaining byte of the file)
//! ```
//!
//! A uwsgi packet with modifier1 17, encoded with the protocol crate
//! ([`Packet::Spool`]). File names are 2.0's:
//! `uwsgi_spoolfile_on_<hostname>_<pid>_<counter>_<random>_<sec>_<usec>`, where the
//! counter is per process and counts every enqueue. Files are mode 0600.
//!
//! Special vars, read from the block itself (2.0): `priority` puts the file in the
//! sub-directory `<dir>/<priority>/`; `at` (unix seconds, a fractional part is ignored)
//! becomes the file's modification time, and the job is not run before it; `spooler`
//! picks the spooler by directory ([`Spoolers::enqueue`]). They stay in the vars.
//!
//! # Writing
//!
//! uWSGI creates the file under its final name (`O_EXCL`) and holds an `fcntl` lock while
//! writing, which its scanner checks. Here the file is written under a temporary name in
//! the same directory — a dot-file, which no spooler scans — then `fsync`ed, given its
//! `at` time, and renamed, so a scanner (ours or uWSGI's) only ever sees whole files.
//!
//! # Running
//!
//! [`Spooler::jobs`] lists the files ready at `now` in the order they are run: with
//! `--spooler-ordered`, the numeric priority sub-directories first (in version order,
//! so `2` before `10`), then the top-level files, each directory's files in version order
//! (so one process's jobs run in enqueue order); without it, only top-level files
//! (uWSGI then ignores priority directories). Files whose modification time is after
//! `now` wait.
//!
//! [`Spooler::run_pending`] reads each job and hands it to a handler, which answers like
//! `uwsgi.spooler`: [`SpoolOutcome::Done`] (`SPOOL_OK`, -2) removes the file,
//! [`SpoolOutcome::Retry`] (`SPOOL_RETRY`, -1, also any other number, a non-number or an
//! exception) keeps it for the next scan, [`SpoolOutcome::Ignore`] (`SPOOL_IGNORE`, 0:
//! "not mine") keeps it too. A file is removed only after the handler said `Done` — or
//! when it is malformed (a vars block that does not parse or a file shorter than its
//! header announces), which uWSGI treats as -2.
//!
//! # Limits
//!
//! | what | limit |
//! |---|---|
//! | vars block | 65535 bytes (2.0: "args buffer is limited to 64k") |
//! | body | none (it is streamed into the file) |
//! | `priority` | ASCII digits, 1..=64 of them |
//! | `at` | ASCII digits with an optional `.fraction` |
//!
//! # Differences from uWSGI
//!
//! `priority` must be a number: uWSGI pastes it into the path unchecked (a remote
//! `../x` escapes the spool directory) and only ever scans numeric sub-directories
//! anyway. A non-numeric `at` is refused (uWSGI reads digits without checking them).
//! Without `--spooler-ordered` the top-level files are still sorted (uWSGI takes the
//! directory's order, which is unspecified).

use std::cmp::Ordering as CmpOrdering;
use std::collections::hash_map::RandomState;
use std::ffi::OsStr;
use std::fs::{self, File, FileTimes, OpenOptions};
use std::hash::BuildHasher;
use std::io::{self, Read, Write};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, PoisonError};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use uwsgi_protocol::header::{Header, Modifier1};
use uwsgi_protocol::packet::VarsMessage;
use uwsgi_protocol::{MAX_DATASIZE, Packet, Vars, VarsBuilder};

/// `uwsgi.SPOOL_OK`: the job is done, remove the file.
pub const SPOOL_OK: i64 = -2;
/// `uwsgi.SPOOL_RETRY`: keep the file, try again on the next scan.
pub const SPOOL_RETRY: i64 = -1;
/// `uwsgi.SPOOL_IGNORE`: not handled by this language; keep the file.
pub const SPOOL_IGNORE: i64 = 0;
/// Every spool file name starts with this.
pub const FILE_PREFIX: &str = "uwsgi_spoolfile_on_";
/// Largest vars block.
pub const MAX_VARS_LEN: usize = MAX_DATASIZE;
/// Longest `priority` value.
pub const MAX_PRIORITY_LEN: usize = 64;

/// Why a spooler operation failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SpoolError {
    /// A file-system operation failed.
    #[error("spooler {path}: {source}")]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// The error.
        source: io::Error,
    },
    /// No spooler is configured (remote enqueue answers `ff 0000 00`).
    #[error("no spooler available")]
    NoSpooler,
    /// The `spooler` var names no configured spooler directory.
    #[error("unable to find spooler {0:?}")]
    UnknownSpooler(String),
    /// A vars block over 65535 bytes.
    #[error(
        "spooler args buffer is limited to 64k ({0} bytes given), use the body for bigger values"
    )]
    VarsTooLarge(usize),
    /// Pairs that do not make a vars block (an empty key, or over 64k in total).
    #[error("invalid spooler vars: {0}")]
    InvalidVars(#[from] uwsgi_protocol::EncodeError),
    /// A `priority` that is not 1 to 64 digits.
    #[error("invalid spooler priority {0:?}: must be a number")]
    InvalidPriority(String),
    /// An `at` that is not a number.
    #[error("invalid spooler at {0:?}: must be unix seconds")]
    InvalidAt(String),
}

fn io_error(path: &Path) -> impl FnOnce(io::Error) -> SpoolError + '_ {
    move |source| SpoolError::Io {
        path: path.to_owned(),
        source,
    }
}

/// One spooler's settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SpoolerConfig {
    /// `--spooler DIR`: created if missing.
    pub dir: PathBuf,
    /// `--spooler-ordered`: scan priority sub-directories, in order.
    pub ordered: bool,
    /// The host name put in file names; `None` reads the system's.
    pub hostname: Option<String>,
}

impl SpoolerConfig {
    /// A spooler on `dir`, unordered, with the system host name.
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        SpoolerConfig {
            dir: dir.into(),
            ordered: false,
            hostname: None,
        }
    }
}

/// What a handler says about a job (the return value of `uwsgi.spooler`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SpoolOutcome {
    /// `SPOOL_OK` (-2): remove the file.
    Done,
    /// `SPOOL_RETRY` (-1): keep it for the next scan.
    Retry,
    /// `SPOOL_IGNORE` (0): not handled here; keep it.
    Ignore,
}

impl SpoolOutcome {
    /// Reads a handler's integer answer as uWSGI does: -2 done, 0 ignore, anything else
    /// (including -1) retry.
    pub fn from_code(code: i64) -> Self {
        match code {
            SPOOL_OK => SpoolOutcome::Done,
            SPOOL_IGNORE => SpoolOutcome::Ignore,
            _ => SpoolOutcome::Retry,
        }
    }

    /// The integer uWSGI uses.
    pub fn code(self) -> i64 {
        match self {
            SpoolOutcome::Done => SPOOL_OK,
            SpoolOutcome::Retry => SPOOL_RETRY,
            SpoolOutcome::Ignore => SPOOL_IGNORE,
        }
    }
}

/// Runs spool jobs.
pub trait SpoolHandler {
    /// Runs `task` and says what to do with its file.
    fn run(&mut self, task: &SpoolTask) -> SpoolOutcome;
}

impl<F: FnMut(&SpoolTask) -> SpoolOutcome> SpoolHandler for F {
    fn run(&mut self, task: &SpoolTask) -> SpoolOutcome {
        self(task)
    }
}

/// A spool file found by a scan.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SpoolJob {
    /// Full path.
    pub path: PathBuf,
    /// File name (`spooler_task_name` in Python).
    pub name: String,
    /// The priority sub-directory it is in, if any.
    pub priority: Option<String>,
    /// Its modification time (unix seconds): the `at` time, or when it was written.
    pub mtime: u64,
}

/// A job read from its file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SpoolTask {
    /// The file.
    pub job: SpoolJob,
    contents: Vec<u8>,
    vars_len: usize,
}

impl SpoolTask {
    /// The vars.
    pub fn vars(&self) -> Vars<'_> {
        let block = self
            .contents
            .get(Header::LEN..Header::LEN + self.vars_len)
            .unwrap_or_default();
        // Validated when the task was read.
        Vars::parse(block, usize::MAX).unwrap_or(Vars::EMPTY)
    }

    /// The body: every byte after the vars.
    pub fn body(&self) -> &[u8] {
        self.contents
            .get(Header::LEN + self.vars_len..)
            .unwrap_or_default()
    }

    /// The file name (`spooler_task_name`).
    pub fn name(&self) -> &str {
        &self.job.name
    }
}

/// What one [`Spooler::run_pending`] pass did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct RunReport {
    /// Jobs done and removed.
    pub done: usize,
    /// Jobs kept for retry.
    pub retried: usize,
    /// Jobs no handler took.
    pub ignored: usize,
    /// Malformed files removed.
    pub malformed: usize,
    /// Files that vanished or were too short to hold a header (left alone).
    pub skipped: usize,
}

/// Counts every enqueue of this process, as uWSGI's `internal_counter` (file names stay
/// unique between the spoolers of one process).
static ENQUEUE_COUNTER: AtomicU64 = AtomicU64::new(0);

/// One spool directory.
#[derive(Debug)]
pub struct Spooler {
    dir: PathBuf,
    ordered: bool,
    hostname: String,
    random: RandomState,
    /// One runner at a time (uWSGI: one spooler process per directory and instance).
    running: Mutex<()>,
    /// Enqueue generation, to wake a waiting runner (uWSGI sends SIGUSR1).
    generation: Mutex<u64>,
    enqueued: Condvar,
}

impl Spooler {
    /// A spooler on `dir` with default settings (creates `dir` if needed).
    pub fn new(dir: impl Into<PathBuf>) -> Result<Self, SpoolError> {
        Spooler::with_config(SpoolerConfig::new(dir))
    }

    /// A spooler with `config`. The directory is created (mode 0750, as uWSGI's
    /// `S_IRWXU|S_IRGRP|S_IXGRP`) if missing, and kept as its canonical path (uWSGI's
    /// `realpath`), which the `spooler` var is compared with.
    pub fn with_config(config: SpoolerConfig) -> Result<Self, SpoolError> {
        if !config.dir.is_dir() {
            fs::DirBuilder::new()
                .recursive(true)
                .mode(0o750)
                .create(&config.dir)
                .map_err(io_error(&config.dir))?;
        }
        let dir = fs::canonicalize(&config.dir).map_err(io_error(&config.dir))?;
        let hostname = config.hostname.unwrap_or_else(system_hostname);
        Ok(Spooler {
            dir,
            ordered: config.ordered,
            hostname: sanitize_hostname(&hostname),
            random: RandomState::new(),
            running: Mutex::new(()),
            generation: Mutex::new(0),
            enqueued: Condvar::new(),
        })
    }

    /// The canonical directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Whether priority directories are scanned.
    pub fn is_ordered(&self) -> bool {
        self.ordered
    }

    /// Writes a job built from `pairs` (see [`Spooler::enqueue`]).
    pub fn enqueue_pairs<K, V>(
        &self,
        pairs: impl IntoIterator<Item = (K, V)>,
        body: &[u8],
    ) -> Result<PathBuf, SpoolError>
    where
        K: AsRef<[u8]>,
        V: AsRef<[u8]>,
    {
        let builder = VarsBuilder::from_pairs(pairs)?;
        self.enqueue(&builder.as_vars(), body)
    }

    /// `spool(vars, body)`: writes a job file atomically and returns its full path (2.0;
    /// 1.4 returned the file name). `priority` and `at` vars are honoured.
    pub fn enqueue(&self, vars: &Vars<'_>, body: &[u8]) -> Result<PathBuf, SpoolError> {
        let block_len = vars.as_bytes().len();
        if block_len > MAX_VARS_LEN {
            return Err(SpoolError::VarsTooLarge(block_len));
        }
        let [priority, at] = vars.get_many([&b"priority"[..], &b"at"[..]]);
        let priority = parse_priority(priority)?;
        let at = parse_at(at)?;
        // Counted even if the write fails, as uWSGI does.
        let counter = ENQUEUE_COUNTER.fetch_add(1, Ordering::Relaxed) + 1;

        let dir = match &priority {
            Some(priority) => {
                let sub = self.dir.join(priority);
                // uWSGI creates it 0777 and ignores errors; the open below reports them.
                let _ = fs::DirBuilder::new().mode(0o777).create(&sub);
                sub
            }
            None => self.dir.clone(),
        };
        let since_epoch = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or(Duration::ZERO);
        let random = self.random.hash_one(counter) & 0x7fff_ffff;
        let name = format!(
            "{FILE_PREFIX}{}_{}_{}_{}_{}_{}",
            self.hostname,
            std::process::id(),
            counter,
            random,
            since_epoch.as_secs(),
            since_epoch.subsec_micros(),
        );
        let path = dir.join(&name);
        let temporary = dir.join(format!(".{name}.tmp"));

        let mut contents = Vec::with_capacity(Header::LEN + block_len);
        Packet::Spool(VarsMessage::new(0, *vars)).encode(&mut contents);
        let written = write_job(&temporary, &contents, body, at).and_then(|()| {
            fs::rename(&temporary, &path).map_err(io_error(&path))?;
            // Make the rename itself durable.
            File::open(&dir)
                .and_then(|d| d.sync_all())
                .map_err(io_error(&dir))
        });
        if let Err(err) = written {
            let _ = fs::remove_file(&temporary);
            return Err(err);
        }
        let mut generation = self
            .generation
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        *generation += 1;
        drop(generation);
        self.enqueued.notify_all();
        Ok(path)
    }

    /// The enqueue generation: it changes whenever a job is written by this spooler.
    pub fn generation(&self) -> u64 {
        *self
            .generation
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// Waits up to `timeout` for an enqueue after generation `seen`; returns the current
    /// generation (uWSGI's spooler sleeps `--spooler-frequency` seconds, woken by
    /// SIGUSR1 on enqueue).
    pub fn wait_for_enqueue(&self, seen: u64, timeout: Duration) -> u64 {
        let generation = self
            .generation
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let (generation, _) = self
            .enqueued
            .wait_timeout_while(generation, timeout, |current| *current == seen)
            .unwrap_or_else(PoisonError::into_inner);
        *generation
    }

    /// Every spool file, ready or not, in run order (`spooler_jobs()`).
    pub fn pending(&self) -> Result<Vec<SpoolJob>, SpoolError> {
        self.scan(None)
    }

    /// The spool files ready at unix time `now`, in run order.
    pub fn jobs(&self, now: u64) -> Result<Vec<SpoolJob>, SpoolError> {
        self.scan(Some(now))
    }

    fn scan(&self, now: Option<u64>) -> Result<Vec<SpoolJob>, SpoolError> {
        let mut jobs = Vec::new();
        for (name, file_type) in sorted_entries(&self.dir)? {
            if self.ordered && file_type.is_dir() && is_priority(&name) {
                let sub = self.dir.join(&name);
                for (file, file_type) in sorted_entries(&sub)? {
                    self.consider(&sub, &file, file_type, Some(&name), now, &mut jobs);
                }
            } else {
                self.consider(&self.dir, &name, file_type, None, now, &mut jobs);
            }
        }
        Ok(jobs)
    }

    fn consider(
        &self,
        dir: &Path,
        name: &str,
        file_type: fs::FileType,
        priority: Option<&str>,
        now: Option<u64>,
        jobs: &mut Vec<SpoolJob>,
    ) {
        // lstat semantics: symbolic links are not jobs.
        if !name.starts_with(FILE_PREFIX) || !file_type.is_file() {
            return;
        }
        let path = dir.join(name);
        let Ok(metadata) = fs::symlink_metadata(&path) else {
            return;
        };
        let mtime = u64::try_from(metadata.mtime()).unwrap_or(0);
        if now.is_some_and(|now| mtime > now) {
            return;
        }
        jobs.push(SpoolJob {
            path,
            name: name.to_owned(),
            priority: priority.map(str::to_owned),
            mtime,
        });
    }

    /// Reads a job's file. `Ok(None)` when it vanished or is too short for a header.
    pub fn read_task(&self, job: &SpoolJob) -> Result<Option<SpoolTask>, TaskError> {
        let mut contents = Vec::new();
        match File::open(&job.path).and_then(|mut file| file.read_to_end(&mut contents)) {
            Ok(_) => {}
            Err(err) if err.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(source) => {
                return Err(TaskError::Io(SpoolError::Io {
                    path: job.path.clone(),
                    source,
                }));
            }
        }
        let Ok(header) = Header::parse(&contents) else {
            return Ok(None);
        };
        let vars_len = usize::from(header.datasize);
        let Some(block) = contents.get(Header::LEN..Header::LEN + vars_len) else {
            return Err(TaskError::Malformed);
        };
        // The lenient parse of spool files: no pair limit; the modifier bytes are not
        // checked, as uWSGI does not check them.
        if Vars::parse(block, usize::MAX).is_err() {
            return Err(TaskError::Malformed);
        }
        Ok(Some(SpoolTask {
            job: job.clone(),
            contents,
            vars_len,
        }))
    }

    /// One spooler pass: runs every job ready at `now` through `handler` and removes the
    /// files of jobs done (and of malformed ones). Only one pass runs at a time in a
    /// process, and across processes (`--spooler-processes`) each job file is locked
    /// (`flock`) while it runs: a job locked by another process is skipped, and a job
    /// whose file was removed meanwhile is not run again. A process that dies releases
    /// its lock, so its job is picked up by the next pass.
    pub fn run_pending(
        &self,
        now: u64,
        handler: &mut dyn SpoolHandler,
    ) -> Result<RunReport, SpoolError> {
        let _running = self.running.lock().unwrap_or_else(PoisonError::into_inner);
        let mut report = RunReport::default();
        for job in self.jobs(now)? {
            let Some(_lock) = lock_job(&job.path)? else {
                report.skipped += 1;
                continue;
            };
            let task = match self.read_task(&job) {
                Ok(Some(task)) => task,
                Ok(None) => {
                    report.skipped += 1;
                    continue;
                }
                Err(TaskError::Malformed) => {
                    remove_job(&job.path)?;
                    report.malformed += 1;
                    continue;
                }
                Err(TaskError::Io(err)) => return Err(err),
            };
            match handler.run(&task) {
                SpoolOutcome::Done => {
                    remove_job(&job.path)?;
                    report.done += 1;
                }
                SpoolOutcome::Retry => report.retried += 1,
                SpoolOutcome::Ignore => report.ignored += 1,
            }
        }
        Ok(report)
    }
}

/// Why [`Spooler::read_task`] could not give a task.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TaskError {
    /// The file cannot be a job (uWSGI destroys it).
    #[error("malformed spool file")]
    Malformed,
    /// Reading failed.
    #[error(transparent)]
    Io(SpoolError),
}

/// Takes the job's file lock without waiting. `None` when another process holds it, or
/// when the file is gone or was replaced since the scan (a job already done elsewhere).
fn lock_job(path: &Path) -> Result<Option<File>, SpoolError> {
    let file = match File::open(path) {
        Ok(file) => file,
        Err(err) if err.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(source) => {
            return Err(SpoolError::Io {
                path: path.to_owned(),
                source,
            });
        }
    };
    match rustix::fs::flock(&file, rustix::fs::FlockOperation::NonBlockingLockExclusive) {
        Ok(()) => {}
        Err(rustix::io::Errno::WOULDBLOCK) => return Ok(None),
        Err(err) => {
            return Err(SpoolError::Io {
                path: path.to_owned(),
                source: err.into(),
            });
        }
    }
    // Locked: the path must still name this very file (not removed by a process that
    // finished it between our scan and our lock).
    let same = match (file.metadata(), fs::symlink_metadata(path)) {
        (Ok(held), Ok(named)) => held.ino() == named.ino() && held.dev() == named.dev(),
        _ => false,
    };
    Ok(same.then_some(file))
}

fn remove_job(path: &Path) -> Result<(), SpoolError> {
    match fs::remove_file(path) {
        Ok(()) => Ok(()),
        Err(err) if err.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(source) => Err(SpoolError::Io {
            path: path.to_owned(),
            source,
        }),
    }
}

fn write_job(path: &Path, packet: &[u8], body: &[u8], at: u64) -> Result<(), SpoolError> {
    let mut file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .map_err(io_error(path))?;
    file.write_all(packet).map_err(io_error(path))?;
    file.write_all(body).map_err(io_error(path))?;
    if let Some(when) = UNIX_EPOCH
        .checked_add(Duration::from_secs(at))
        .filter(|_| at > 0)
    {
        let times = FileTimes::new().set_accessed(when).set_modified(when);
        file.set_times(times).map_err(io_error(path))?;
    }
    file.sync_all().map_err(io_error(path))
}

fn parse_priority(value: Option<&[u8]>) -> Result<Option<String>, SpoolError> {
    let Some(value) = value.filter(|v| !v.is_empty()) else {
        return Ok(None);
    };
    if value.len() > MAX_PRIORITY_LEN || !value.iter().all(u8::is_ascii_digit) {
        return Err(SpoolError::InvalidPriority(
            String::from_utf8_lossy(value).into_owned(),
        ));
    }
    Ok(Some(String::from_utf8_lossy(value).into_owned()))
}

fn parse_at(value: Option<&[u8]>) -> Result<u64, SpoolError> {
    let Some(value) = value else {
        return Ok(0);
    };
    // "at can be a float": only the integer part counts.
    let whole = value.split(|&b| b == b'.').next().unwrap_or_default();
    if whole.is_empty() {
        return Ok(0);
    }
    uwsgi_protocol::packet::strict_decimal(whole)
        // The time must also be one the file system can hold.
        .filter(|&secs| UNIX_EPOCH.checked_add(Duration::from_secs(secs)).is_some())
        .ok_or_else(|| SpoolError::InvalidAt(String::from_utf8_lossy(value).into_owned()))
}

fn is_priority(name: &str) -> bool {
    !name.is_empty() && name.bytes().all(|b| b.is_ascii_digit())
}

/// The entries of `dir` with UTF-8 names, in version order. Other names are never spool
/// files (those are ASCII).
fn sorted_entries(dir: &Path) -> Result<Vec<(String, fs::FileType)>, SpoolError> {
    let mut entries = Vec::new();
    for entry in fs::read_dir(dir).map_err(io_error(dir))? {
        let Ok(entry) = entry else { continue };
        let Ok(file_type) = entry.file_type() else {
            continue;
        };
        if let Ok(name) = entry.file_name().into_string() {
            entries.push((name, file_type));
        }
    }
    entries.sort_by(|a, b| version_cmp(&a.0, &b.0));
    Ok(entries)
}

/// glibc's `versionsort` in its common case: runs of digits compare as numbers (a
/// shorter run of equal value first), everything else byte by byte. (glibc's special
/// reading of leading zeros as fractions is not reproduced; spool names have none.)
pub fn version_cmp(a: &str, b: &str) -> CmpOrdering {
    let (a, b) = (a.as_bytes(), b.as_bytes());
    let (mut i, mut j) = (0, 0);
    while i < a.len() && j < b.len() {
        let (x, y) = (a[i], b[j]);
        if x.is_ascii_digit() && y.is_ascii_digit() {
            let (ra, rb) = (digit_run(a, i), digit_run(b, j));
            let strip = |r: &[u8]| {
                let zeros = r.iter().take_while(|&&c| c == b'0').count();
                r.len() - zeros
            };
            let (sa, sb) = (strip(ra), strip(rb));
            let by_value = sa
                .cmp(&sb)
                .then_with(|| ra[ra.len() - sa..].cmp(&rb[rb.len() - sb..]))
                .then_with(|| ra.len().cmp(&rb.len()));
            if by_value != CmpOrdering::Equal {
                return by_value;
            }
            i += ra.len();
            j += rb.len();
        } else {
            if x != y {
                return x.cmp(&y);
            }
            i += 1;
            j += 1;
        }
    }
    (a.len() - i).cmp(&(b.len() - j))
}

/// The run of ASCII digits starting at `start`.
fn digit_run(s: &[u8], start: usize) -> &[u8] {
    let tail = s.get(start..).unwrap_or_default();
    let len = tail.iter().take_while(|c| c.is_ascii_digit()).count();
    tail.get(..len).unwrap_or_default()
}

/// The system host name (`/proc/sys/kernel/hostname`), or `localhost`.
fn system_hostname() -> String {
    fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|name| name.trim().to_owned())
        .ok()
        .filter(|name| !name.is_empty())
        .unwrap_or_else(|| String::from("localhost"))
}

/// A host name is pasted into a file name: keep it a single path component.
fn sanitize_hostname(name: &str) -> String {
    name.chars()
        .map(|c| if c == '/' || c == '\0' { '_' } else { c })
        .collect()
}

/// The spoolers of a server, in configuration order.
#[derive(Debug, Clone, Default)]
pub struct Spoolers {
    spoolers: Vec<Arc<Spooler>>,
}

impl Spoolers {
    /// No spooler.
    pub fn none() -> Self {
        Spoolers::default()
    }

    /// Creates every spooler (and its directory).
    pub fn new(configs: impl IntoIterator<Item = SpoolerConfig>) -> Result<Self, SpoolError> {
        let spoolers = configs
            .into_iter()
            .map(|config| Spooler::with_config(config).map(Arc::new))
            .collect::<Result<_, _>>()?;
        Ok(Spoolers { spoolers })
    }

    /// The spooler whose canonical directory is exactly `dir`.
    pub fn by_dir(&self, dir: &[u8]) -> Option<&Arc<Spooler>> {
        self.spoolers
            .iter()
            .find(|spooler| spooler.dir().as_os_str().as_bytes() == dir)
    }

    /// Enqueues on the spooler named by the `spooler` var, else the first one (remote
    /// enqueue, modifier1 17, and `uwsgi.spool`).
    pub fn enqueue(&self, vars: &Vars<'_>, body: &[u8]) -> Result<PathBuf, SpoolError> {
        let first = self.spoolers.first().ok_or(SpoolError::NoSpooler)?;
        let spooler = match vars.get(b"spooler").filter(|name| !name.is_empty()) {
            Some(name) => self.by_dir(name).ok_or_else(|| {
                SpoolError::UnknownSpooler(OsStr::from_bytes(name).to_string_lossy().into_owned())
            })?,
            None => first,
        };
        spooler.enqueue(vars, body)
    }

    /// The reply to a remote enqueue (§7.5): `ff 0000 01` on success, `ff 0000 00`
    /// otherwise.
    pub fn reply(result: &Result<PathBuf, SpoolError>) -> [u8; 4] {
        [Modifier1::Response.value(), 0, 0, u8::from(result.is_ok())]
    }

    /// Every spooler.
    pub fn iter(&self) -> impl Iterator<Item = &Arc<Spooler>> {
        self.spoolers.iter()
    }

    /// Number of spoolers.
    pub fn len(&self) -> usize {
        self.spoolers.len()
    }

    /// `true` without a spooler.
    pub fn is_empty(&self) -> bool {
        self.spoolers.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use uwsgi_protocol::Limits;

    fn spooler(dir: &Path, ordered: bool) -> Spooler {
        Spooler::with_config(SpoolerConfig {
            dir: dir.to_owned(),
            ordered,
            hostname: Some("testhost".into()),
        })
        .unwrap()
    }

    fn name_of(path: &Path) -> String {
        path.file_name().unwrap().to_string_lossy().into_owned()
    }

    fn done_collecting(
        seen: &mut Vec<Vec<(Vec<u8>, Vec<u8>)>>,
    ) -> impl FnMut(&SpoolTask) -> SpoolOutcome + '_ {
        move |task: &SpoolTask| {
            seen.push(
                task.vars()
                    .iter()
                    .map(|(k, v)| (k.to_vec(), v.to_vec()))
                    .collect(),
            );
            SpoolOutcome::Done
        }
    }

    #[test]
    fn file_is_the_spec_packet_plus_body() {
        // §7.5 [V14]: {'x':'1'} → 11 0600 00 0100 78 0100 31.
        let tmp = tempfile::tempdir().unwrap();
        let spooler = spooler(tmp.path(), false);
        let path = spooler.enqueue_pairs([("x", "1")], b"").unwrap();
        assert_eq!(
            fs::read(&path).unwrap(),
            [0x11, 0x06, 0x00, 0x00, 0x01, 0x00, b'x', 0x01, 0x00, b'1']
        );
        let with_body = spooler.enqueue_pairs([("x", "1")], b"BODY").unwrap();
        let bytes = fs::read(&with_body).unwrap();
        assert_eq!(&bytes[10..], b"BODY");
        // The protocol crate decodes the file as a spool packet.
        let decoded = Packet::decode(&bytes, &Limits::PERMISSIVE).unwrap();
        assert!(
            matches!(decoded.packet, Packet::Spool(msg) if msg.vars.get("x") == Some(&b"1"[..]))
        );
        let mode = fs::metadata(&path).unwrap().mode() & 0o777;
        assert_eq!(mode, 0o600);
    }

    #[test]
    fn file_names_follow_the_2_0_pattern() {
        // §7.5: uwsgi_spoolfile_on_<hostname>_<pid>_<counter>_<rand()>_<sec>_<usec>.
        let tmp = tempfile::tempdir().unwrap();
        let spooler = spooler(tmp.path(), false);
        let path = spooler.enqueue_pairs([("a", "b")], b"").unwrap();
        assert_eq!(path.parent().unwrap(), spooler.dir());
        let name = name_of(&path);
        let rest = name.strip_prefix("uwsgi_spoolfile_on_testhost_").unwrap();
        let fields: Vec<&str> = rest.split('_').collect();
        assert_eq!(fields.len(), 5, "{name}");
        assert_eq!(fields[0], std::process::id().to_string());
        assert!(fields.iter().all(|f| f.parse::<u64>().is_ok()), "{name}");
        assert!(fields[2].parse::<u64>().unwrap() <= 0x7fff_ffff);
        // Nothing else is left in the directory (the temporary file was renamed).
        assert_eq!(fs::read_dir(tmp.path()).unwrap().count(), 1);
    }

    #[test]
    fn jobs_run_in_enqueue_order_and_done_removes() {
        let tmp = tempfile::tempdir().unwrap();
        let spooler = spooler(tmp.path(), false);
        for i in 0..12 {
            spooler.enqueue_pairs([("n", i.to_string())], b"").unwrap();
        }
        let mut seen = Vec::new();
        let report = spooler
            .run_pending(u64::MAX, &mut done_collecting(&mut seen))
            .unwrap();
        assert_eq!(report.done, 12);
        let order: Vec<Vec<u8>> = seen.iter().map(|vars| vars[0].1.clone()).collect();
        let expected: Vec<Vec<u8>> = (0..12).map(|i: i32| i.to_string().into_bytes()).collect();
        assert_eq!(order, expected);
        assert!(spooler.pending().unwrap().is_empty());
    }

    #[test]
    fn retry_and_ignore_keep_the_file() {
        // §7.5: SPOOL_RETRY keeps the file; SPOOL_IGNORE passes; only SPOOL_OK removes.
        let tmp = tempfile::tempdir().unwrap();
        let spooler = spooler(tmp.path(), false);
        spooler.enqueue_pairs([("k", "v")], b"payload").unwrap();
        let mut retry = |task: &SpoolTask| {
            assert_eq!(task.body(), b"payload");
            assert!(task.name().starts_with(FILE_PREFIX));
            SpoolOutcome::from_code(SPOOL_RETRY)
        };
        assert_eq!(
            spooler.run_pending(u64::MAX, &mut retry).unwrap().retried,
            1
        );
        let mut ignore = |_: &SpoolTask| SpoolOutcome::from_code(SPOOL_IGNORE);
        assert_eq!(
            spooler.run_pending(u64::MAX, &mut ignore).unwrap().ignored,
            1
        );
        let mut other = |_: &SpoolTask| SpoolOutcome::from_code(7);
        assert_eq!(
            spooler.run_pending(u64::MAX, &mut other).unwrap().retried,
            1
        );
        assert_eq!(spooler.pending().unwrap().len(), 1);
        let mut ok = |_: &SpoolTask| SpoolOutcome::from_code(SPOOL_OK);
        assert_eq!(spooler.run_pending(u64::MAX, &mut ok).unwrap().done, 1);
        assert!(spooler.pending().unwrap().is_empty());
    }

    #[test]
    fn a_job_locked_by_another_spooler_is_skipped() {
        // --spooler-processes: each job file is flock()ed while it runs; a lock is per
        // open file, so a second open in this process stands in for another process.
        let tmp = tempfile::tempdir().unwrap();
        let spooler = spooler(tmp.path(), false);
        let path = spooler.enqueue_pairs([("k", "v")], b"").unwrap();
        let held = File::open(&path).unwrap();
        rustix::fs::flock(&held, rustix::fs::FlockOperation::LockExclusive).unwrap();
        let mut never = |_: &SpoolTask| -> SpoolOutcome { panic!("the job is locked") };
        let report = spooler.run_pending(u64::MAX, &mut never).unwrap();
        assert_eq!((report.skipped, report.done), (1, 0));
        assert!(path.exists());
        drop(held);
        let mut ok = |_: &SpoolTask| SpoolOutcome::Done;
        assert_eq!(spooler.run_pending(u64::MAX, &mut ok).unwrap().done, 1);
        assert!(!path.exists());
    }

    #[test]
    fn outcome_codes() {
        assert_eq!((SPOOL_OK, SPOOL_RETRY, SPOOL_IGNORE), (-2, -1, 0));
        for outcome in [
            SpoolOutcome::Done,
            SpoolOutcome::Retry,
            SpoolOutcome::Ignore,
        ] {
            assert_eq!(SpoolOutcome::from_code(outcome.code()), outcome);
        }
        assert_eq!(SpoolOutcome::from_code(1), SpoolOutcome::Retry);
        assert_eq!(SpoolOutcome::from_code(i64::MIN), SpoolOutcome::Retry);
    }

    #[test]
    fn at_delays_the_job_with_the_injected_clock() {
        // §7.5: "the file's atime/mtime are set to that time and the spooler skips files
        // whose mtime is in the future".
        let tmp = tempfile::tempdir().unwrap();
        let spooler = spooler(tmp.path(), false);
        let path = spooler
            .enqueue_pairs([("task", "later"), ("at", "4000000000.75")], b"")
            .unwrap();
        assert_eq!(fs::metadata(&path).unwrap().mtime(), 4_000_000_000);
        assert!(spooler.jobs(3_999_999_999).unwrap().is_empty());
        assert_eq!(spooler.pending().unwrap().len(), 1);
        let ready = spooler.jobs(4_000_000_000).unwrap();
        assert_eq!(ready.len(), 1);
        assert_eq!(ready[0].mtime, 4_000_000_000);
        // `at` stays in the vars (2.0).
        let task = spooler.read_task(&ready[0]).unwrap().unwrap();
        assert_eq!(task.vars().get("at"), Some(&b"4000000000.75"[..]));
        for bad in ["soon", "-5", "18446744073709551615", "99999999999999999999"] {
            assert!(
                matches!(
                    spooler.enqueue_pairs([("at", bad)], b""),
                    Err(SpoolError::InvalidAt(_))
                ),
                "{bad}"
            );
        }
        // `at` 0 or empty means now.
        let now = spooler.enqueue_pairs([("at", "0")], b"").unwrap();
        assert!(fs::metadata(now).unwrap().mtime() > 1_600_000_000);
    }

    #[test]
    fn priorities_go_to_numbered_directories_scanned_only_when_ordered() {
        // §7.5: "the file goes into <spooldir>/<priority>/ … only scanned with
        // --spooler-ordered".
        let tmp = tempfile::tempdir().unwrap();
        let unordered = spooler(tmp.path(), false);
        let top = unordered.enqueue_pairs([("job", "top")], b"").unwrap();
        let p10 = unordered
            .enqueue_pairs([("job", "p10"), ("priority", "10")], b"")
            .unwrap();
        let p2 = unordered
            .enqueue_pairs([("job", "p2"), ("priority", "2")], b"")
            .unwrap();
        assert_eq!(p10.parent().unwrap(), unordered.dir().join("10"));
        assert_eq!(p2.parent().unwrap(), unordered.dir().join("2"));
        let names: Vec<PathBuf> = unordered
            .pending()
            .unwrap()
            .into_iter()
            .map(|j| j.path)
            .collect();
        assert_eq!(names, vec![top.clone()]);

        let ordered = spooler(tmp.path(), true);
        let jobs = ordered.pending().unwrap();
        let paths: Vec<PathBuf> = jobs.iter().map(|j| j.path.clone()).collect();
        assert_eq!(paths, vec![p2, p10, top]);
        assert_eq!(jobs[0].priority.as_deref(), Some("2"));
        assert_eq!(jobs[2].priority, None);
    }

    #[test]
    fn priority_must_be_a_number() {
        let tmp = tempfile::tempdir().unwrap();
        let spooler = spooler(tmp.path(), true);
        for bad in ["../escape", "a", "1/2", &"9".repeat(65)] {
            assert!(
                matches!(
                    spooler.enqueue_pairs([("priority", bad)], b""),
                    Err(SpoolError::InvalidPriority(_))
                ),
                "{bad}"
            );
        }
        // An empty priority is no priority, as in uWSGI.
        let path = spooler.enqueue_pairs([("priority", "")], b"").unwrap();
        assert_eq!(path.parent().unwrap(), spooler.dir());
    }

    #[test]
    fn malformed_files_are_removed_and_foreign_files_ignored() {
        let tmp = tempfile::tempdir().unwrap();
        let spooler = spooler(tmp.path(), false);
        let dir = spooler.dir().to_owned();
        // Vars that do not parse (key length 0).
        fs::write(
            dir.join("uwsgi_spoolfile_on_x_1_1_1_1_1"),
            [0x11, 3, 0, 0, 0, 0, 0],
        )
        .unwrap();
        // Shorter than the header announces.
        fs::write(
            dir.join("uwsgi_spoolfile_on_x_1_2_1_1_1"),
            [0x11, 10, 0, 0, 1],
        )
        .unwrap();
        // Too short for a header: left alone (could be a foreign writer's partial file).
        fs::write(dir.join("uwsgi_spoolfile_on_x_1_3_1_1_1"), [0x11]).unwrap();
        // Not a spool file at all.
        fs::write(dir.join("notes.txt"), b"hello").unwrap();
        fs::write(dir.join(".uwsgi_spoolfile_on_x.tmp"), b"partial").unwrap();
        let mut never = |_: &SpoolTask| -> SpoolOutcome { panic!("no valid job") };
        let report = spooler.run_pending(u64::MAX, &mut never).unwrap();
        assert_eq!((report.malformed, report.skipped, report.done), (2, 1, 0));
        let left: Vec<String> = spooler
            .pending()
            .unwrap()
            .into_iter()
            .map(|j| j.name)
            .collect();
        assert_eq!(left, vec!["uwsgi_spoolfile_on_x_1_3_1_1_1"]);
        assert!(dir.join("notes.txt").exists());
    }

    #[test]
    fn files_written_by_uwsgi_are_read() {
        // A file as uWSGI 1.4 writes it (§7.5 transcript), with a body.
        let tmp = tempfile::tempdir().unwrap();
        let spooler = spooler(tmp.path(), false);
        let mut bytes = vec![0x11, 0x06, 0x00, 0x00, 0x01, 0x00, b'x', 0x01, 0x00, b'1'];
        bytes.extend_from_slice(b"the body");
        fs::write(spooler.dir().join("uwsgi_spoolfile_on_h_1_1_0_0_0"), &bytes).unwrap();
        let mut seen = None;
        let mut handler = |task: &SpoolTask| {
            seen = Some((
                task.vars().get("x").map(<[u8]>::to_vec),
                task.body().to_vec(),
            ));
            SpoolOutcome::Done
        };
        spooler.run_pending(u64::MAX, &mut handler).unwrap();
        assert_eq!(seen, Some((Some(b"1".to_vec()), b"the body".to_vec())));
    }

    #[test]
    fn vars_limit_is_64k() {
        let tmp = tempfile::tempdir().unwrap();
        let spooler = spooler(tmp.path(), false);
        // One pair costs 2 + key + 2 + value bytes.
        let big = "v".repeat(65535 - 5 + 1);
        assert!(matches!(
            spooler.enqueue_pairs([("k", big.as_str())], b""),
            Err(SpoolError::InvalidVars(_))
        ));
        let fits = "v".repeat(65535 - 5);
        let path = spooler.enqueue_pairs([("k", fits.as_str())], b"").unwrap();
        assert_eq!(&fs::read(path).unwrap()[..4], &[0x11, 0xff, 0xff, 0x00]);
    }

    #[test]
    fn spoolers_registry_selects_by_directory() {
        // §7.5 (2.0): the `spooler` var picks the spooler by (real) path.
        let a = tempfile::tempdir().unwrap();
        let b = tempfile::tempdir().unwrap();
        let spoolers =
            Spoolers::new([SpoolerConfig::new(a.path()), SpoolerConfig::new(b.path())]).unwrap();
        let b_dir = spoolers.iter().nth(1).unwrap().dir().to_owned();
        let vars = VarsBuilder::new()
            .with("spooler", b_dir.as_os_str().as_bytes())
            .unwrap();
        let path = spoolers.enqueue(&vars.as_vars(), b"").unwrap();
        assert_eq!(path.parent().unwrap(), b_dir);
        let default = spoolers
            .enqueue(&VarsBuilder::new().with("k", "v").unwrap().as_vars(), b"")
            .unwrap();
        assert_eq!(
            default.parent().unwrap(),
            spoolers.iter().next().unwrap().dir()
        );
        let unknown = VarsBuilder::new().with("spooler", "/nowhere").unwrap();
        let result = spoolers.enqueue(&unknown.as_vars(), b"");
        assert!(matches!(result, Err(SpoolError::UnknownSpooler(_))));
        assert_eq!(Spoolers::reply(&result), [0xff, 0, 0, 0]);
        assert_eq!(Spoolers::reply(&Ok(path)), [0xff, 0, 0, 1]);
        assert!(matches!(
            Spoolers::none().enqueue(&Vars::EMPTY, b""),
            Err(SpoolError::NoSpooler)
        ));
    }

    #[test]
    fn missing_directory_is_created() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("a/b");
        let spooler = Spooler::new(&dir).unwrap();
        assert!(dir.is_dir());
        assert_eq!(spooler.dir(), fs::canonicalize(&dir).unwrap());
    }

    #[test]
    fn enqueue_wakes_a_waiting_runner() {
        let tmp = tempfile::tempdir().unwrap();
        let spooler = Arc::new(spooler(tmp.path(), false));
        let seen = spooler.generation();
        let writer = {
            let spooler = Arc::clone(&spooler);
            std::thread::spawn(move || {
                std::thread::sleep(Duration::from_millis(20));
                spooler.enqueue_pairs([("k", "v")], b"").unwrap();
            })
        };
        let now = spooler.wait_for_enqueue(seen, Duration::from_secs(10));
        assert_ne!(now, seen);
        writer.join().unwrap();
        assert_eq!(spooler.wait_for_enqueue(now, Duration::from_millis(5)), now);
    }

    #[test]
    fn concurrent_enqueues_get_distinct_files() {
        let tmp = tempfile::tempdir().unwrap();
        let spooler = Arc::new(spooler(tmp.path(), false));
        let threads: Vec<_> = (0..4)
            .map(|t| {
                let spooler = Arc::clone(&spooler);
                std::thread::spawn(move || {
                    for i in 0..25 {
                        spooler
                            .enqueue_pairs([("t", t.to_string()), ("i", i.to_string())], b"")
                            .unwrap();
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        assert_eq!(spooler.pending().unwrap().len(), 100);
        let mut count = 0;
        let mut handler = |_: &SpoolTask| {
            count += 1;
            SpoolOutcome::Done
        };
        spooler.run_pending(u64::MAX, &mut handler).unwrap();
        assert_eq!(count, 100);
    }

    #[test]
    fn version_order() {
        let mut names = vec![
            "10",
            "2",
            "uwsgi_spoolfile_on_h_1_10_0_0_0",
            "1",
            "uwsgi_spoolfile_on_h_1_9_0_0_0",
            "b",
            "a10",
            "a9",
        ];
        names.sort_by(|a, b| version_cmp(a, b));
        assert_eq!(
            names,
            vec![
                "1",
                "2",
                "10",
                "a9",
                "a10",
                "b",
                "uwsgi_spoolfile_on_h_1_9_0_0_0",
                "uwsgi_spoolfile_on_h_1_10_0_0_0"
            ]
        );
        assert_eq!(version_cmp("x01", "x1"), CmpOrdering::Greater);
        assert_eq!(version_cmp("abc", "abc"), CmpOrdering::Equal);
        assert_eq!(version_cmp("ab", "abc"), CmpOrdering::Less);
    }
}
