//! The module's exceptions, and the translation of Rust errors into them.
//!
//! ```text
//! Exception
//! └── UwsgiError                              base of everything this module raises
//!     ├── ProtocolError                       the peer's bytes are not valid uwsgi protocol
//!     ├── RejectedError      (+ ValueError)   the peer refused: `ff 0000 00` to a signal/spool
//!     ├── UwsgiValueError    (+ ValueError)   a value the operation cannot take (bad lock
//!     │                                       number, sharedarea bounds, oversized item, …)
//!     ├── NoServerError      (+ RuntimeError) needs a running uWSGI server (reload, stop, …)
//!     └── UwsgiConnectionError (+ OSError)    network failure (errno, strerror, peer address)
//!         └── UwsgiTimeoutError (+ TimeoutError)   a connect, write or read timed out
//! ```
//!
//! uWSGI's C module raises bare `IOError`/`ValueError`/`SystemError`. Ours raise these
//! subclasses instead: each also *is* the builtin uWSGI raised (`OSError` is the Python 3
//! name of `IOError`), so code written against uWSGI keeps catching what it caught, and
//! new code can catch `uwsgi.UwsgiError` alone. "Not found" (a cache miss, an RPC function
//! that answers nothing) is never an exception: it is `None`, as in uWSGI.
//!
//! Functions here only translate: the Rust layers decide *whether* something failed.

use std::io;

use pyo3::IntoPyObjectExt;
use pyo3::exceptions::{PyException, PyOSError, PyRuntimeError, PyTimeoutError, PyValueError};
use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::{PyDict, PyTuple, PyType};
use uwsgi_protocol::DecodeError;
use uwsgi_protocol::client::{Error as ClientError, Phase};

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
    "Bytes that are not valid uwsgi protocol, or a reply of a kind the call does not \
     expect; the message is the codec's reason."
);

/// Name of the network exception, as Python sees it.
pub const CONNECTION_ERROR_NAME: &str = "UwsgiConnectionError";

/// One exception class with several bases, made once per process by calling
/// `type(name, bases, namespace)` (`create_exception!` takes a single base).
struct MultiBase {
    name: &'static str,
    doc: &'static str,
    cell: PyOnceLock<Py<PyType>>,
}

impl MultiBase {
    const fn new(name: &'static str, doc: &'static str) -> Self {
        MultiBase {
            name,
            doc,
            cell: PyOnceLock::new(),
        }
    }

    fn get<'py>(
        &'static self,
        py: Python<'py>,
        bases: impl FnOnce(Python<'py>) -> PyResult<Vec<Bound<'py, PyType>>>,
    ) -> PyResult<&'py Bound<'py, PyType>> {
        self.cell
            .get_or_try_init(py, || {
                let bases = PyTuple::new(py, bases(py)?)?;
                let namespace = PyDict::new(py);
                namespace.set_item("__module__", "uwsgi")?;
                namespace.set_item("__doc__", self.doc)?;
                let class = py
                    .get_type::<PyType>()
                    .call1((self.name, bases, namespace))?;
                Ok(class.cast_into::<PyType>()?.unbind())
            })
            .map(|class| class.bind(py))
    }
}

static CONNECTION_ERROR: MultiBase = MultiBase::new(
    CONNECTION_ERROR_NAME,
    "A network operation failed (connect, send, receive).\n\n\
     Subclass of both UwsgiError and OSError: errno, strerror and filename (the peer's \
     address) are set as on OSError when the system gave an error code.",
);

static TIMEOUT_ERROR: MultiBase = MultiBase::new(
    "UwsgiTimeoutError",
    "A connect, write or read did not complete within the timeout.\n\n\
     Subclass of UwsgiConnectionError and of the builtin TimeoutError; errno is ETIMEDOUT \
     and filename the peer's address.",
);

static REJECTED_ERROR: MultiBase = MultiBase::new(
    "RejectedError",
    "The peer answered with a refusal (ff 0000 00): its signal queue is full, it has no \
     spooler, …\n\nAlso a ValueError, which is what uWSGI raises for it.",
);

static VALUE_ERROR: MultiBase = MultiBase::new(
    "UwsgiValueError",
    "A value the operation cannot take: a lock or sharedarea id that does not exist, an \
     offset out of bounds, an item too large for the protocol, an invalid address, …\n\n\
     Also a ValueError, which is what uWSGI raises in these cases.",
);

static NO_SERVER_ERROR: MultiBase = MultiBase::new(
    "NoServerError",
    "The function needs a running uWSGI server (a master, workers, a current request) \
     and the module is running standalone.\n\nAlso a RuntimeError.",
);

/// The `UwsgiConnectionError` class: `(UwsgiError, OSError)`.
pub fn connection_error_type(py: Python<'_>) -> PyResult<&Bound<'_, PyType>> {
    CONNECTION_ERROR.get(py, |py| {
        Ok(vec![
            py.get_type::<UwsgiError>(),
            py.get_type::<PyOSError>(),
        ])
    })
}

/// The `UwsgiTimeoutError` class: `(UwsgiConnectionError, TimeoutError)`.
pub fn timeout_error_type(py: Python<'_>) -> PyResult<&Bound<'_, PyType>> {
    TIMEOUT_ERROR.get(py, |py| {
        Ok(vec![
            connection_error_type(py)?.clone(),
            py.get_type::<PyTimeoutError>(),
        ])
    })
}

/// The `RejectedError` class: `(UwsgiError, ValueError)`.
pub fn rejected_error_type(py: Python<'_>) -> PyResult<&Bound<'_, PyType>> {
    REJECTED_ERROR.get(py, |py| {
        Ok(vec![
            py.get_type::<UwsgiError>(),
            py.get_type::<PyValueError>(),
        ])
    })
}

/// The `UwsgiValueError` class: `(UwsgiError, ValueError)`.
pub fn value_error_type(py: Python<'_>) -> PyResult<&Bound<'_, PyType>> {
    VALUE_ERROR.get(py, |py| {
        Ok(vec![
            py.get_type::<UwsgiError>(),
            py.get_type::<PyValueError>(),
        ])
    })
}

/// The `NoServerError` class: `(UwsgiError, RuntimeError)`.
pub fn no_server_error_type(py: Python<'_>) -> PyResult<&Bound<'_, PyType>> {
    NO_SERVER_ERROR.get(py, |py| {
        Ok(vec![
            py.get_type::<UwsgiError>(),
            py.get_type::<PyRuntimeError>(),
        ])
    })
}

/// An instance of `class` built from `args`; a failure to build it is returned instead.
fn new_error<'py, A>(py: Python<'py>, class: PyResult<&Bound<'py, PyType>>, args: A) -> PyErr
where
    A: IntoPyObject<'py>,
{
    let class = match class {
        Ok(class) => class.clone(),
        Err(err) => return err,
    };
    match args.into_py_any(py) {
        Ok(args) => PyErr::from_type(class, args),
        Err(err) => err,
    }
}

/// A `ProtocolError` carrying the codec's description of what is wrong.
pub fn protocol_error(err: &DecodeError) -> PyErr {
    ProtocolError::new_err(err.to_string())
}

/// A `UwsgiValueError` with `message`.
pub fn value_error(py: Python<'_>, message: impl Into<String>) -> PyErr {
    new_error(py, value_error_type(py), (message.into(),))
}

/// A `RejectedError` with `message`.
pub fn rejected_error(py: Python<'_>, message: impl Into<String>) -> PyErr {
    new_error(py, rejected_error_type(py), (message.into(),))
}

/// A `NoServerError` saying that `what` needs a server.
pub fn no_server_error(py: Python<'_>, what: &str) -> PyErr {
    new_error(
        py,
        no_server_error_type(py),
        (format!(
            "{what} needs a running uWSGI server; this `uwsgi` module is running standalone \
             (see docs/python.md)"
        ),),
    )
}

/// A `UwsgiTimeoutError` for `phase` towards `peer`.
pub fn timeout_error(py: Python<'_>, phase: &str, peer: &str) -> PyErr {
    new_error(
        py,
        timeout_error_type(py),
        (
            rustix::io::Errno::TIMEDOUT.raw_os_error(),
            format!("{phase} timed out"),
            peer.to_owned(),
        ),
    )
}

/// A `UwsgiConnectionError` for an I/O failure talking to `peer` (an address such as
/// `127.0.0.1:3031` or `/tmp/uwsgi.sock`).
///
/// With an OS error code, the exception's `errno`, `strerror` and `filename` are set, as
/// `OSError(errno, strerror, peer)` would; otherwise its message is `"<peer>: <error>"`
/// and `errno` is `None`. A timeout kind (`WouldBlock`, `TimedOut`) becomes a
/// `UwsgiTimeoutError`.
pub fn connection_error(py: Python<'_>, err: &io::Error, peer: &str) -> PyErr {
    if matches!(
        err.kind(),
        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
    ) {
        return timeout_error(py, "operation", peer);
    }
    let text = err.to_string();
    match err.raw_os_error() {
        Some(code) => {
            // io::Error's Display appends " (os error N)"; strerror is the text before it.
            let suffix = format!(" (os error {code})");
            let strerror = text.strip_suffix(&suffix).unwrap_or(&text).to_owned();
            new_error(
                py,
                connection_error_type(py),
                (code, strerror, peer.to_owned()),
            )
        }
        None => new_error(py, connection_error_type(py), (format!("{peer}: {text}"),)),
    }
}

/// The exception for a failed client call (see docs/python.md, "Exceptions").
pub fn client_error(py: Python<'_>, err: &ClientError) -> PyErr {
    match err {
        ClientError::Io { address, source } => connection_error(py, source, &address.to_string()),
        ClientError::Timeout { address, phase } => {
            let phase = match phase {
                Phase::Connect => "connect",
                Phase::Read => "read",
                Phase::Write => "write",
            };
            timeout_error(py, phase, &address.to_string())
        }
        ClientError::NoReply { address } => new_error(
            py,
            connection_error_type(py),
            (format!("{address}: connection closed without a reply"),),
        ),
        ClientError::Protocol { .. }
        | ClientError::ReplyTooLarge { .. }
        | ClientError::UnexpectedReply { .. } => ProtocolError::new_err(err.to_string()),
        ClientError::Rejected { .. } => rejected_error(py, err.to_string()),
        ClientError::Encode(_)
        | ClientError::InvalidRequest(_)
        | ClientError::BodyLength { .. }
        | ClientError::Input(_) => value_error(py, err.to_string()),
        // The client's error enum is non_exhaustive: a future variant is still an error
        // of this module.
        other => UwsgiError::new_err(other.to_string()),
    }
}

/// Adds the exception classes to the module.
pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    let py = m.py();
    m.add("UwsgiError", py.get_type::<UwsgiError>())?;
    m.add("ProtocolError", py.get_type::<ProtocolError>())?;
    m.add(CONNECTION_ERROR_NAME, connection_error_type(py)?)?;
    m.add("UwsgiTimeoutError", timeout_error_type(py)?)?;
    m.add("RejectedError", rejected_error_type(py)?)?;
    m.add("UwsgiValueError", value_error_type(py)?)?;
    m.add("NoServerError", no_server_error_type(py)?)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use pyo3::exceptions::PyOSError;
    use uwsgi_protocol::InvalidPacket;
    use uwsgi_protocol::client::Address;

    use super::*;
    use crate::test_support::with_python;

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
            let timeout = timeout_error_type(py)?;
            assert!(timeout.is_subclass(conn)?);
            assert!(timeout.is_subclass(&py.get_type::<PyTimeoutError>())?);
            for class in [rejected_error_type(py)?, value_error_type(py)?] {
                assert!(class.is_subclass(&base)?);
                assert!(class.is_subclass(&py.get_type::<PyValueError>())?);
            }
            let no_server = no_server_error_type(py)?;
            assert!(no_server.is_subclass(&py.get_type::<PyRuntimeError>())?);
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

    #[test]
    fn client_errors_map_by_cause() {
        with_python(|py| {
            let address: Address = "127.0.0.1:9"
                .parse()
                .map_err(|e| PyValueError::new_err(format!("{e}")))?;
            let timeout = client_error(
                py,
                &ClientError::Timeout {
                    address: address.clone(),
                    phase: Phase::Read,
                },
            );
            assert!(timeout.is_instance(py, timeout_error_type(py)?));
            assert!(timeout.is_instance_of::<PyTimeoutError>(py));
            let rejected = client_error(
                py,
                &ClientError::Rejected {
                    address: address.clone(),
                    what: "signal",
                    status: 0,
                },
            );
            assert!(rejected.is_instance_of::<PyValueError>(py));
            assert!(rejected.is_instance(py, rejected_error_type(py)?));
            let unexpected = client_error(
                py,
                &ClientError::UnexpectedReply {
                    address: address.clone(),
                    kind: "pong",
                },
            );
            assert!(unexpected.is_instance_of::<ProtocolError>(py));
            let closed = client_error(py, &ClientError::NoReply { address });
            assert!(closed.is_instance(py, connection_error_type(py)?));
            Ok(())
        });
    }
}
