//! The WSGI `environ` of a request (PEP 3333), built as uWSGI builds it: every request
//! var as a `str` decoded from latin-1, the `wsgi.*` keys, and uWSGI's own
//! `uwsgi.version`, `uwsgi.node` and `uwsgi.core`.

use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyDict, PyString};
use uwsgi_protocol::Modifier1;
use uwsgi_protocol::packet::Request;

/// Bytes as a latin-1 `str` (each byte is the code point of the same value), as PEP
/// 3333 asks for "native strings".
pub fn latin1<'py>(py: Python<'py>, bytes: &[u8]) -> Bound<'py, PyString> {
    if bytes.is_ascii() {
        // ASCII is valid UTF-8 with the same meaning: no copy through chars.
        if let Ok(text) = std::str::from_utf8(bytes) {
            return PyString::new(py, text);
        }
    }
    let text: String = bytes.iter().map(|&b| char::from(b)).collect();
    PyString::new(py, &text)
}

/// What the server adds to every environ.
#[derive(Debug, Clone)]
pub struct Fixed {
    /// `wsgi.multithread`.
    pub multithread: bool,
    /// `wsgi.multiprocess`.
    pub multiprocess: bool,
    /// `uwsgi.node`.
    pub node: Vec<u8>,
}

/// The scheme: `UWSGI_SCHEME`, else `https` when `HTTPS` is `on` or `1`, else
/// `REQUEST_SCHEME`, else `http`.
pub fn url_scheme(request: &Request<'_>) -> String {
    let [scheme, https, request_scheme] =
        request
            .vars
            .get_many([b"UWSGI_SCHEME".as_slice(), b"HTTPS", b"REQUEST_SCHEME"]);
    if let Some(scheme) = scheme.filter(|s| !s.is_empty()) {
        return String::from_utf8_lossy(scheme).into_owned();
    }
    if https.is_some_and(|v| v.eq_ignore_ascii_case(b"on") || v == b"1") {
        return "https".to_owned();
    }
    if let Some(scheme) = request_scheme.filter(|s| !s.is_empty()) {
        return String::from_utf8_lossy(scheme).into_owned();
    }
    "http".to_owned()
}

/// Builds the environ. `script_name` is the mountpoint of the chosen app when the
/// request did not name one; `core` is `uwsgi.core`.
pub fn build<'py>(
    py: Python<'py>,
    request: &Request<'_>,
    fixed: &Fixed,
    core: usize,
) -> PyResult<Bound<'py, PyDict>> {
    let environ = PyDict::new(py);
    for (key, value) in request.vars.iter() {
        environ.set_item(latin1(py, key), latin1(py, value))?;
    }
    // uWSGI 2.0 always gives both, empty when the request has none.
    let script_name = request.vars.get("SCRIPT_NAME").unwrap_or_default();
    let path_info = request.vars.get("PATH_INFO").unwrap_or_default();
    if request.modifier1 == Modifier1::WsgiScriptName
        && !script_name.is_empty()
        && path_info.starts_with(script_name)
    {
        // modifier1 30: PATH_INFO loses its SCRIPT_NAME prefix.
        environ.set_item("PATH_INFO", latin1(py, &path_info[script_name.len()..]))?;
    } else if !environ.contains("PATH_INFO")? {
        environ.set_item("PATH_INFO", "")?;
    }
    if !environ.contains("SCRIPT_NAME")? {
        environ.set_item("SCRIPT_NAME", "")?;
    }
    environ.set_item("wsgi.version", (1, 0))?;
    environ.set_item("wsgi.url_scheme", url_scheme(request))?;
    environ.set_item("wsgi.multithread", fixed.multithread)?;
    environ.set_item("wsgi.multiprocess", fixed.multiprocess)?;
    environ.set_item("wsgi.run_once", false)?;
    environ.set_item(
        "uwsgi.version",
        PyBytes::new(py, uwsgi_pymod::globals::VERSION.as_bytes()),
    )?;
    environ.set_item("uwsgi.node", PyBytes::new(py, &fixed.node))?;
    environ.set_item("uwsgi.core", core)?;
    Ok(environ)
}
