//! # uwsgi-pymod
//!
//! The `uwsgi` Python module of uwsgi-rs: uWSGI's Python API implemented on the uwsgi-rs
//! crates with pyo3.
//!
//! The same module serves two hosts:
//!
//! * **standalone**: `pip install ./pymod` builds it as the extension module `uwsgi`
//!   (maturin; `python/uwsgi/__init__.py` puts the extension itself in
//!   `sys.modules["uwsgi"]`). The shared state is one in-process
//!   [`uwsgi_server_state::ServerState`] ([`instance`]), the process is worker 1, and
//!   `uwsgi.testing` ([`testing`]) configures and resets it for tests. Client functions
//!   talk to any uwsgi server through `uwsgi_protocol::client`.
//! * **embedded**: a server calls [`embed::prepare`] before starting the interpreter
//!   (registering [`uwsgi`] in CPython's inittab) and [`embed::attach`] after, so the
//!   applications it runs import the very same module over the server's own state, with
//!   the server (an [`embed::Host`]) answering the process facts.
//!
//! One Rust module per area of the uWSGI API, each a thin pyo3 layer that converts
//! arguments and results, releases the GIL around network and blocking work, and maps
//! errors onto the exceptions of [`errors`]. Protocol logic lives in `uwsgi-protocol`
//! and the state in `uwsgi-server`, not here (FastCGI, which is not the uwsgi protocol,
//! is the one codec in this crate: [`fcgi`]).
//!
//! | area | Python names |
//! |---|---|
//! | [`globals`] | `SPOOL_*`, `version`, `version_info`, `buffer_size`, `numproc`, `started_on`, `hostname`, `opt`, `queue_size`, `spoolers`, … |
//! | [`errors`] | `UwsgiError`, `ProtocolError`, `UwsgiConnectionError`, `UwsgiTimeoutError`, `RejectedError`, `UwsgiValueError`, `NoServerError` |
//! | [`parsefile`] | `parsefile` |
//! | [`client`] | `send_message`, `send_multi_message`, `send_multicast_message`, `spool_remote` |
//! | [`rpc`] | `register_rpc`, `rpc`, `call`, `rpc_list` |
//! | [`cache`] | `cache_*` (local and `name@address`) |
//! | [`queue`], [`sharedarea`], [`locks`] | `queue_*`, `sharedarea_*`, `lock`/`unlock`/`is_locked` |
//! | [`signals`] | `register_signal`, `signal`, `signal_*`, `add_timer`, `add_cron`, … |
//! | [`spooler`] | `spool`, `send_to_spooler`, `spooler_*`, `i_am_the_spooler` |
//! | [`sockets`], [`fcgi`] | `connect`, `send`, `recv`, `recv_block`, `recv_frame`, `close`, `fcgi` |
//! | [`process`] | `worker_id`, `workers`, `log`, `mem`, …, and the functions that need a server |
//! | [`testing`] | the `uwsgi.testing` submodule |
//!
//! Unsafe code: the workspace denies it; one function allows it,
//! `SharedAreaMemory::__getbuffer__` in [`sharedarea`], because CPython's buffer protocol
//! (behind `uwsgi.sharedarea_memoryview`) is a raw-pointer interface with no safe
//! wrapper. The code pyo3's macros generate needs no other exception.

pub mod cache;
pub mod client;
pub mod convert;
pub mod embed;
pub mod errors;
pub mod fcgi;
pub mod fdio;
pub mod globals;
pub mod instance;
pub mod locks;
pub mod marshal;
pub mod metrics;
pub mod parsefile;
pub mod process;
pub mod queue;
pub mod request;
pub mod rpc;
pub mod sharedarea;
pub mod signals;
pub mod sockets;
pub mod spooler;
pub mod testing;

use pyo3::prelude::*;

/// The `uwsgi` module as a standalone import sees it.
#[pymodule]
pub fn uwsgi(m: &Bound<'_, PyModule>) -> PyResult<()> {
    if embed::is_embedded() {
        return embed::init_embedded(m).map(drop);
    }
    init(m, &globals::Globals::standalone())
}

/// Fills `m` with the whole API, using `globals` for the per-instance values.
pub fn init(m: &Bound<'_, PyModule>, globals: &globals::Globals) -> PyResult<()> {
    // setattr, not add: `add` would also list `__doc__` in `__all__`.
    m.setattr(
        "__doc__",
        "uWSGI's Python API, implemented in Rust by uwsgi-rs.",
    )?;
    globals::register(m, globals)?;
    errors::register(m)?;
    parsefile::register(m)?;
    client::register(m)?;
    rpc::register(m)?;
    cache::register(m)?;
    queue::register(m)?;
    sharedarea::register(m)?;
    locks::register(m)?;
    signals::register(m)?;
    spooler::register(m)?;
    process::register(m)?;
    metrics::register(m)?;
    request::register(m)?;
    sockets::register_functions(m)?;
    fcgi::register(m)?;
    let testing = testing::module(m.py())?;
    m.add("testing", &testing)?;
    // `import uwsgi.testing` finds it here (the extension is not a package).
    m.py()
        .import("sys")?
        .getattr("modules")?
        .set_item("uwsgi.testing", &testing)?;
    Ok(())
}

#[cfg(test)]
pub(crate) mod test_support {
    use pyo3::prelude::*;

    /// Runs `f` with an initialised interpreter, failing the test on a Python exception
    /// (printed with its traceback).
    pub fn with_python(f: impl FnOnce(Python<'_>) -> PyResult<()>) {
        Python::initialize();
        Python::attach(|py| {
            if let Err(err) = f(py) {
                err.print(py);
                panic!("Python exception: {err}");
            }
        });
    }

    /// Bytes from hex digits, spaces ignored.
    pub fn hex(text: &str) -> Vec<u8> {
        let digits: Vec<u8> = text.bytes().filter(|b| !b.is_ascii_whitespace()).collect();
        digits
            .chunks(2)
            .map(|pair| {
                let pair = std::str::from_utf8(pair).expect("ascii");
                u8::from_str_radix(pair, 16).expect("hex digits")
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support::with_python;

    #[test]
    fn module_exposes_the_whole_api() {
        with_python(|py| {
            let m = PyModule::new(py, "uwsgi")?;
            uwsgi(&m)?;
            for name in [
                "SPOOL_OK",
                "SPOOL_RETRY",
                "SPOOL_IGNORE",
                "version",
                "version_info",
                "buffer_size",
                "numproc",
                "started_on",
                "hostname",
                "parsefile",
                "UwsgiError",
                "ProtocolError",
                "UwsgiConnectionError",
                "UwsgiTimeoutError",
                "RejectedError",
                "UwsgiValueError",
                "NoServerError",
                "rpc",
                "cache_get",
                "send_message",
                "send_multi_message",
                "queue_push",
                "sharedarea_read",
                "lock",
                "register_signal",
                "spool",
                "connect",
                "fcgi",
                "reload",
                "testing",
            ] {
                assert!(m.hasattr(name)?, "uwsgi.{name} is missing");
            }
            assert_eq!(m.getattr("buffer_size")?.extract::<u16>()?, 4096);
            assert_eq!(m.getattr("numproc")?.extract::<u32>()?, 1);
            assert!(m.getattr("parsefile")?.is_callable());
            Ok(())
        });
    }
}
