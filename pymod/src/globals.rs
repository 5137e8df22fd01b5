//! Module-level constants and facts about the running instance (`uwsgi.version`,
//! `uwsgi.numproc`, …).
//!
//! [`Globals`] is plain Rust: [`Globals::standalone`] describes a module imported by an
//! ordinary interpreter; an embedding server will build one from its own configuration
//! (worker count, buffer size, start time) and pass it to [`crate::init`].

use std::time::{SystemTime, UNIX_EPOCH};

use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyDict, PyList, PyTuple};
use uwsgi_protocol::Limits;

use crate::instance;

/// `uwsgi.SPOOL_OK`: a spooler function returns it to have the job's file deleted.
pub const SPOOL_OK: i32 = -2;
/// `uwsgi.SPOOL_RETRY`: keep the job's file and run it again at the next scan.
pub const SPOOL_RETRY: i32 = -1;
/// `uwsgi.SPOOL_IGNORE`: this handler passes; the next language's spooler hook is tried.
pub const SPOOL_IGNORE: i32 = 0;

/// `uwsgi.version`: this crate's version (uWSGI 2.0 gives bytes on Python 3).
pub const VERSION: &str = env!("CARGO_PKG_VERSION");

/// `uwsgi.version_info`: major, minor, patch, revision (always 0), and a release tag (the
/// pre-release part of the version, empty for a release), as uWSGI's 5-tuple.
pub const VERSION_INFO: (u32, u32, u32, u32, &str) = (
    decimal(env!("CARGO_PKG_VERSION_MAJOR")),
    decimal(env!("CARGO_PKG_VERSION_MINOR")),
    decimal(env!("CARGO_PKG_VERSION_PATCH")),
    0,
    env!("CARGO_PKG_VERSION_PRE"),
);

/// Parses a version component at compile time; a non-digit stops the build.
const fn decimal(text: &str) -> u32 {
    let bytes = text.as_bytes();
    assert!(!bytes.is_empty(), "empty version component");
    let mut value: u32 = 0;
    let mut i = 0;
    while i < bytes.len() {
        let digit = bytes[i];
        assert!(digit.is_ascii_digit(), "version component is not decimal");
        value = value * 10 + (digit - b'0') as u32;
        i += 1;
    }
    value
}

/// The per-instance values exposed as module globals.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Globals {
    /// `uwsgi.buffer_size`: the largest request block accepted (uWSGI's `--buffer-size`).
    pub buffer_size: u16,
    /// `uwsgi.numproc`: number of worker processes.
    pub numproc: u32,
    /// `uwsgi.started_on`: when the instance started, in seconds since the Unix epoch.
    pub started_on: u64,
    /// `uwsgi.hostname`: the node name, as bytes.
    pub hostname: Vec<u8>,
}

impl Globals {
    /// The values for a module imported by an ordinary interpreter: one process, the
    /// codec's default buffer size, started now.
    pub fn standalone() -> Self {
        Globals {
            buffer_size: Limits::DEFAULT.max_datasize,
            numproc: 1,
            started_on: unix_now(),
            hostname: hostname(),
        }
    }
}

/// Seconds since the Unix epoch (0 if the clock is set before it).
pub fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |elapsed| elapsed.as_secs())
}

/// The node name from `uname(2)`, which is what `gethostname(2)` returns.
pub fn hostname() -> Vec<u8> {
    rustix::system::uname().nodename().to_bytes().to_vec()
}

/// `started_on` of the module last initialised (for `workers()`).
static STARTED_ON: AtomicU64 = AtomicU64::new(0);

/// The module whose globals [`refresh`] updates: the one initialised last.
static MODULE: Mutex<Option<Py<PyModule>>> = Mutex::new(None);

/// `uwsgi.started_on`.
pub fn started_on() -> u64 {
    STARTED_ON.load(Ordering::Relaxed)
}

/// Sets the globals that describe the instance's configuration (`queue_size`,
/// `spoolers`) on the module, after `uwsgi.testing.configure` / `reset`.
pub fn refresh(py: Python<'_>) -> PyResult<()> {
    let module = instance::lock(&MODULE).as_ref().map(|m| m.clone_ref(py));
    match module {
        Some(module) => set_instance_globals(module.bind(py)),
        None => Ok(()),
    }
}

fn set_instance_globals(m: &Bound<'_, PyModule>) -> PyResult<()> {
    use std::os::unix::ffi::OsStrExt;
    let py = m.py();
    let instance = instance::current();
    let queue_size = instance.state.queue().map_or(0, |q| q.size());
    m.setattr("queue_size", queue_size)?;
    let spoolers = instance
        .state
        .spoolers()
        .iter()
        .map(|s| PyBytes::new(py, s.dir().as_os_str().as_bytes()))
        .collect::<Vec<_>>();
    m.setattr("spoolers", PyTuple::new(py, spoolers)?)?;
    Ok(())
}

/// Replaces the contents of `uwsgi.opt` (the same dict object) with `opt`, or empties
/// it.
pub fn set_opt(py: Python<'_>, opt: Option<&Bound<'_, PyDict>>) -> PyResult<()> {
    let module = instance::lock(&MODULE).as_ref().map(|m| m.clone_ref(py));
    let Some(module) = module else {
        return Ok(());
    };
    let current = module.bind(py).getattr("opt")?;
    let current = current.cast::<PyDict>()?;
    current.clear();
    if let Some(opt) = opt {
        current.update(opt.as_mapping())?;
    }
    Ok(())
}

/// Adds the constants and `globals` to the module.
pub fn register(m: &Bound<'_, PyModule>, globals: &Globals) -> PyResult<()> {
    let py = m.py();
    STARTED_ON.store(globals.started_on, Ordering::Relaxed);
    *instance::lock(&MODULE) = Some(m.clone().unbind());
    m.add("SPOOL_OK", SPOOL_OK)?;
    m.add("SPOOL_RETRY", SPOOL_RETRY)?;
    m.add("SPOOL_IGNORE", SPOOL_IGNORE)?;
    m.add("version", PyBytes::new(py, VERSION.as_bytes()))?;
    m.add("version_info", VERSION_INFO)?;
    m.add("buffer_size", globals.buffer_size)?;
    m.add("numproc", globals.numproc)?;
    m.add("started_on", globals.started_on)?;
    m.add("hostname", PyBytes::new(py, &globals.hostname))?;
    m.add("cores", 1)?;
    m.add("has_threads", 1)?;
    m.add("loop", py.None())?;
    m.add("opt", PyDict::new(py))?;
    m.add("magic_table", PyDict::new(py))?;
    m.add("unbit", py.None())?;
    m.add("is_a_reload", false)?;
    m.add("sockets", PyList::empty(py))?;
    m.add("applications", py.None())?;
    m.add("message_manager_marshal", py.None())?;
    m.add("start_response", py.None())?;
    m.add("env", py.None())?;
    m.add("queue_size", 0)?;
    m.add("spoolers", PyTuple::empty(py))?;
    set_instance_globals(m)
}

#[cfg(test)]
mod tests {
    use pyo3::types::PyTuple;

    use super::*;
    use crate::test_support::with_python;

    #[test]
    fn version_info_matches_the_version_string() {
        let (major, minor, patch, revision, tag) = VERSION_INFO;
        let mut text = format!("{major}.{minor}.{patch}");
        if !tag.is_empty() {
            text = format!("{text}-{tag}");
        }
        assert_eq!(text, VERSION);
        assert_eq!(revision, 0);
    }

    #[test]
    fn decimal_parses_components() {
        assert_eq!(decimal("0"), 0);
        assert_eq!(decimal("17"), 17);
        assert_eq!(decimal("2024"), 2024);
    }

    #[test]
    fn standalone_values() {
        let before = unix_now();
        let globals = Globals::standalone();
        assert_eq!(globals.buffer_size, 4096);
        assert_eq!(globals.numproc, 1);
        assert!(globals.started_on >= before && globals.started_on <= unix_now());
        assert!(!globals.hostname.is_empty());
        assert!(!globals.hostname.contains(&0));
    }

    #[test]
    fn registered_values_and_types() {
        with_python(|py| {
            let m = PyModule::new(py, "uwsgi")?;
            let globals = Globals {
                buffer_size: 8192,
                numproc: 4,
                started_on: 1_700_000_000,
                hostname: b"node-1".to_vec(),
            };
            register(&m, &globals)?;
            assert_eq!(m.getattr("SPOOL_OK")?.extract::<i32>()?, -2);
            assert_eq!(m.getattr("SPOOL_RETRY")?.extract::<i32>()?, -1);
            assert_eq!(m.getattr("SPOOL_IGNORE")?.extract::<i32>()?, 0);
            let version = m.getattr("version")?;
            assert!(version.is_instance_of::<PyBytes>());
            assert_eq!(version.extract::<Vec<u8>>()?, VERSION.as_bytes());
            let info = m.getattr("version_info")?;
            assert!(info.is_instance_of::<PyTuple>());
            assert_eq!(
                info.extract::<(u32, u32, u32, u32, String)>()?,
                (
                    VERSION_INFO.0,
                    VERSION_INFO.1,
                    VERSION_INFO.2,
                    0,
                    VERSION_INFO.4.to_owned()
                )
            );
            assert_eq!(m.getattr("buffer_size")?.extract::<u16>()?, 8192);
            assert_eq!(m.getattr("numproc")?.extract::<u32>()?, 4);
            assert_eq!(m.getattr("started_on")?.extract::<u64>()?, 1_700_000_000);
            let hostname = m.getattr("hostname")?;
            assert!(hostname.is_instance_of::<PyBytes>());
            assert_eq!(hostname.extract::<Vec<u8>>()?, b"node-1");
            Ok(())
        });
    }
}
