//! Argument conversions shared by the API functions: byte strings, addresses, timeouts.

use std::time::Duration;

use pyo3::exceptions::PyTypeError;
use pyo3::prelude::*;
use pyo3::types::{PyByteArray, PyBytes, PyMemoryView, PyString};
use uwsgi_protocol::client::{Address, Client, Timeouts};

use crate::errors;
use crate::instance::Instance;

/// The bytes of a `bytes`, `bytearray` or `memoryview`, or the UTF-8 encoding of a `str`
/// (uWSGI's `s#` format takes both). Anything else is a `TypeError` naming `what`.
pub fn bytes_of(value: &Bound<'_, PyAny>, what: &str) -> PyResult<Vec<u8>> {
    if let Ok(bytes) = value.cast::<PyBytes>() {
        return Ok(bytes.as_bytes().to_vec());
    }
    if let Ok(text) = value.cast::<PyString>() {
        return Ok(text.to_str()?.as_bytes().to_vec());
    }
    if let Ok(array) = value.cast::<PyByteArray>() {
        return Ok(array.to_vec());
    }
    if value.is_instance_of::<PyMemoryView>() {
        return Ok(value
            .call_method0("tobytes")?
            .cast_into::<PyBytes>()?
            .as_bytes()
            .to_vec());
    }
    Err(PyTypeError::new_err(format!(
        "{what} must be bytes or str, not {}",
        value.get_type().name()?
    )))
}

/// A peer address from `str` or `bytes` (`host:port`, `[v6]:port`, a unix socket path,
/// `unix:PATH`, `@abstract`); a malformed one is a `UwsgiValueError`.
pub fn address_of(value: &Bound<'_, PyAny>, what: &str) -> PyResult<Address> {
    let raw = bytes_of(value, what)?;
    parse_address(value.py(), &raw)
}

/// Parses address bytes.
pub fn parse_address(py: Python<'_>, raw: &[u8]) -> PyResult<Address> {
    let text = std::str::from_utf8(raw).map_err(|_| {
        errors::value_error(
            py,
            format!(
                "invalid address {:?}: not UTF-8",
                String::from_utf8_lossy(raw)
            ),
        )
    })?;
    text.parse::<Address>()
        .map_err(|e| errors::value_error(py, e.to_string()))
}

/// The timeout of a network call: `timeout` seconds, or the instance's socket timeout
/// for `None`. Zero, negative, NaN and infinite values are refused: every call has a
/// finite timeout.
pub fn timeout_of(py: Python<'_>, timeout: Option<f64>, instance: &Instance) -> PyResult<Duration> {
    match timeout {
        None => Ok(instance.settings.socket_timeout),
        Some(secs) => seconds(py, secs, "timeout"),
    }
}

/// A positive, finite number of seconds as a duration.
pub fn seconds(py: Python<'_>, secs: f64, what: &str) -> PyResult<Duration> {
    if secs.is_finite() && secs > 0.0 {
        Duration::try_from_secs_f64(secs)
            .map_err(|e| errors::value_error(py, format!("{what}: {e}")))
    } else {
        Err(errors::value_error(
            py,
            format!("{what} must be a positive number of seconds, not {secs}"),
        ))
    }
}

/// A client for `address` with `timeout` for connect, read and write.
pub fn client(address: Address, timeout: Duration) -> Client {
    Client::new(address).with_timeouts(Timeouts::uniform(timeout))
}
