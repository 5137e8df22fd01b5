//! # uwsgi-pymod
//!
//! The `uwsgi` Python module of uwsgi-rs: uWSGI's Python API implemented on the uwsgi-rs
//! crates with pyo3.
//!
//! The same module serves two hosts:
//!
//! * **standalone**: `pip install ./pymod` builds it as the extension module `uwsgi`
//!   (maturin); any Python 3.11+ can `import uwsgi`. The values that describe a server
//!   ([`globals::Globals`]) are those of a single process.
//! * **embedded** (to come): the server links this crate and registers [`uwsgi`] with
//!   `pyo3::append_to_inittab!(uwsgi)` before starting the interpreter, so the applications
//!   it runs import the very same module, with [`init`] given the server's own
//!   [`globals::Globals`].
//!
//! One Rust module per area of the uWSGI API. Each keeps its logic in plain Rust functions
//! (tested without Python) and a thin pyo3 layer that converts arguments and results,
//! releases the GIL around the Rust work, and maps errors onto the exceptions of
//! [`errors`]. Protocol logic lives in `uwsgi-protocol`, not here.
//!
//! | area | Python names |
//! |---|---|
//! | [`globals`] | `SPOOL_OK`, `SPOOL_RETRY`, `SPOOL_IGNORE`, `version`, `version_info`, `buffer_size`, `numproc`, `started_on`, `hostname` |
//! | [`parsefile`] | `parsefile` |
//! | [`errors`] | `UwsgiError`, `ProtocolError`, `UwsgiConnectionError` |
//!
//! No unsafe code: the workspace denies it, and the code pyo3's macros generate needs no
//! exception to that rule.

pub mod errors;
pub mod globals;
pub mod parsefile;

use pyo3::prelude::*;

/// The `uwsgi` module as a standalone import sees it.
#[pymodule]
pub fn uwsgi(m: &Bound<'_, PyModule>) -> PyResult<()> {
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
    Ok(())
}

#[cfg(test)]
pub(crate) mod testing {
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
    use crate::testing::with_python;

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
