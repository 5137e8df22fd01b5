//! The module's exceptions, and the translation of Rust errors into them.
//!
//! ```text
//! Exception
//! └── UwsgiError                          base of everything this module raises
//!     ├── ProtocolError                   bytes that are not valid uwsgi protocol
//!     └── UwsgiConnectionError            network failure; also an OSError
//!             (UwsgiError, OSError)       (errno, strerror, peer address)
//! ```
//!
//! uWSGI's C module raises bare `IOError`/`ValueError`/`SystemError`. Ours raise these
//! subclasses instead (the network one still *is* an `OSError`, the name Python 3 gives
//! `IOError`), so code written against uWSGI keeps catching what it caught, and new code can
//! catch `uwsgi.UwsgiError` alone.
//!
//! Functions here only translate: the Rust layers decide *whether* something failed.

use std::io;

use pyo3::exceptions::{PyException, PyOSError};
use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::{PyDict, PyTuple, PyType};
use uwsgi_protocol::DecodeError;

pyo3::create_exception!(
    uwsgi,
    UwsgiError,
    PyException,
    "Base class of every exception raised by the uwsgi module."
);

pyo3::create_exception!(
    uwsgi,
    ProtocolError,
    UwsgiError,
    "Bytes that are not valid uwsgi protocol; the message is the codec's reason."
);

/// Name of the network exception, as Python sees it.
pub const CONNECTION_ERROR_NAME: &str = "UwsgiConnectionError";

const CONNECTION_ERROR_DOC: &str = "A network operation failed (connect, send, receive, timeout).\n\n\
     Subclass of both UwsgiError and OSError: errno, strerror and filename (the peer's \
     address) are set as on OSError.";

/// `UwsgiConnectionError(UwsgiError, OSError)`. `create_exception!` takes a single base, so
/// this class is made once per process by calling `type(name, bases, namespace)`.
static CONNECTION_ERROR: PyOnceLock<Py<PyType>> = PyOnceLock::new();

/// The `UwsgiConnectionError` class.
pub fn connection_error_type(py: Python<'_>) -> PyResult<&Bound<'_, PyType>> {
    CONNECTION_ERROR
        .get_or_try_init(py, || {
            let bases = PyTuple::new(
                py,
                [py.get_type::<UwsgiError>(), py.get_type::<PyOSError>()],
            )?;
            let namespace = PyDict::new(py);
            namespace.set_item("__module__", "uwsgi")?;
            namespace.set_item("__doc__", CONNECTION_ERROR_DOC)?;
            let class = py
                .get_type::<PyType>()
                .call1((CONNECTION_ERROR_NAME, bases, namespace))?;
            Ok(class.cast_into::<PyType>()?.unbind())
        })
        .map(|class| class.bind(py))
}

/// A `ProtocolError` carrying the codec's description of what is wrong.
pub fn protocol_error(err: &DecodeError) -> PyErr {
    ProtocolError::new_err(err.to_string())
}

/// A `UwsgiConnectionError` for an I/O failure talking to `peer` (an address such as
/// `127.0.0.1:3031` or `/tmp/uwsgi.sock`).
///
/// With an OS error code, the exception's `errno`, `strerror` and `filename` are set, as
/// `OSError(errno, strerror, peer)` would; otherwise its message is `"<peer>: <error>"`
/// and `errno` is `None`.
pub fn connection_error(py: Python<'_>, err: &io::Error, peer: &str) -> PyErr {
    let class = match connection_error_type(py) {
        Ok(class) => class,
        Err(creating) => return creating,
    };
    let text = err.to_string();
    let args = match err.raw_os_error() {
        Some(code) => {
            // io::Error's Display appends " (os error N)"; strerror is the text before it.
            let suffix = format!(" (os error {code})");
            let strerror = text.strip_suffix(&suffix).unwrap_or(&text);
            (code, strerror, peer)
                .into_pyobject(py)
                .map(Bound::into_any)
        }
        None => (format!("{peer}: {text}"),)
            .into_pyobject(py)
            .map(Bound::into_any),
    };
    match args {
        Ok(args) => PyErr::from_type(class.clone(), args.unbind()),
        Err(err) => err,
    }
}

/// Adds the exception classes to the module.
pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    let py = m.py();
    m.add("UwsgiError", py.get_type::<UwsgiError>())?;
    m.add("ProtocolError", py.get_type::<ProtocolError>())?;
    m.add(CONNECTION_ERROR_NAME, connection_error_type(py)?)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use pyo3::exceptions::PyOSError;
    use uwsgi_protocol::InvalidPacket;

    use super::*;
    use crate::testing::with_python;

    #[test]
    fn hierarchy() {
        with_python(|py| {
            let base = py.get_type::<UwsgiError>();
            assert!(base.is_subclass(&py.get_type::<PyException>())?);
            assert!(!base.is_subclass(&py.get_type::<PyOSError>())?);
            assert!(py.get_type::<ProtocolError>().is_subclass(&base)?);
            let conn = connection_error_type(py)?;
            assert!(conn.is_subclass(&base)?);
            assert!(conn.is_subclass(&py.get_type::<PyOSError>())?);
            assert_eq!(conn.qualname()?.to_string(), CONNECTION_ERROR_NAME);
            assert_eq!(conn.module()?.to_string(), "uwsgi");
            // Made once: the same class every time.
            assert!(conn.is(connection_error_type(py)?));
            Ok(())
        });
    }

    #[test]
    fn protocol_error_carries_the_codec_message() {
        with_python(|py| {
            let decode = DecodeError::Invalid(InvalidPacket::EmptyKey { offset: 4 });
            let err = protocol_error(&decode);
            assert!(err.is_instance_of::<ProtocolError>(py));
            assert!(err.is_instance_of::<UwsgiError>(py));
            assert_eq!(
                err.value(py).str()?.to_string(),
                "invalid packet: empty vars key at offset 4"
            );
            Ok(())
        });
    }

    #[test]
    fn connection_error_with_an_errno_is_an_oserror() {
        with_python(|py| {
            let io_err = io::Error::from_raw_os_error(111);
            let err = connection_error(py, &io_err, "127.0.0.1:3031");
            assert!(err.is_instance_of::<PyOSError>(py));
            assert!(err.is_instance_of::<UwsgiError>(py));
            assert!(err.is_instance(py, connection_error_type(py)?));
            let value = err.value(py);
            assert_eq!(value.getattr("errno")?.extract::<i32>()?, 111);
            let strerror = value.getattr("strerror")?.extract::<String>()?;
            assert!(!strerror.contains("os error"), "{strerror}");
            assert_eq!(
                value.getattr("filename")?.extract::<String>()?,
                "127.0.0.1:3031"
            );
            Ok(())
        });
    }

    #[test]
    fn connection_error_without_an_errno() {
        with_python(|py| {
            let io_err = io::Error::new(io::ErrorKind::UnexpectedEof, "peer closed early");
            let err = connection_error(py, &io_err, "/tmp/app.sock");
            let value = err.value(py);
            assert!(value.getattr("errno")?.is_none());
            assert_eq!(value.str()?.to_string(), "/tmp/app.sock: peer closed early");
            Ok(())
        });
    }
}
