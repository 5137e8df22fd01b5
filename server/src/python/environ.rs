//! The WSGI `environ` of a request (PEP 3333), built as uWSGI builds it: every request
//! var as a `str` decoded from latin-1, the `wsgi.*` keys, and uWSGI's own
//! `uwsgi.version`, `uwsgi.node` and `uwsgi.core`.
//!
//! The environ is the largest part of a request's cost in Python objects, so each
//! worker thread keeps what it can from one request to the next ([`Cache`]):
//!
//! * the fixed items (`wsgi.version`, `wsgi.errors`, `wsgi.file_wrapper`, ...), keys
//!   and values, made once;
//! * the key objects of the request vars (their hashes computed once);
//! * the previous request's environ as a template: when a request brings the same vars
//!   in the same order (one client, one front end: the usual case), its environ is a
//!   `dict.copy()` of the template (one allocation, no rehashing), and only the values
//!   that changed are replaced — a replaced value keeps its place, so the copy has the
//!   order a fresh build would have.
//!
//! Values are cached by position too (short ones only): a var whose bytes did not
//! change gets the same immutable `str` object again.

use std::cell::RefCell;
use std::collections::HashMap;
use std::sync::Arc;

use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyDict, PyString};
use uwsgi_protocol::Modifier1;
use uwsgi_protocol::packet::Request;

use super::file_wrapper::FileWrapper;
use super::log::{ErrorStream, Log};

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
pub fn url_scheme<'a>(request: &Request<'a>) -> std::borrow::Cow<'a, str> {
    let [scheme, https, request_scheme] =
        request
            .vars
            .get_many([b"UWSGI_SCHEME".as_slice(), b"HTTPS", b"REQUEST_SCHEME"]);
    if let Some(scheme) = scheme.filter(|s| !s.is_empty()) {
        return String::from_utf8_lossy(scheme);
    }
    if https.is_some_and(|v| v.eq_ignore_ascii_case(b"on") || v == b"1") {
        return "https".into();
    }
    if let Some(scheme) = request_scheme.filter(|s| !s.is_empty()) {
        return String::from_utf8_lossy(scheme);
    }
    "http".into()
}

/// Values up to this length are kept from one request to the next.
const VALUE_CACHE_MAX: usize = 256;
/// Var names up to this length are kept in the thread's table of keys ...
const KEY_CACHE_MAX: usize = 64;
/// ... which holds at most this many.
const KEY_CACHE_ENTRIES: usize = 512;

/// The keys of the fixed items, in the order they follow the request vars.
const FIXED_KEYS: [&str; 11] = [
    "wsgi.version",
    "wsgi.url_scheme",
    "wsgi.multithread",
    "wsgi.multiprocess",
    "wsgi.run_once",
    "uwsgi.version",
    "uwsgi.node",
    "uwsgi.core",
    "wsgi.input",
    "wsgi.errors",
    "wsgi.file_wrapper",
];
const SCHEME: usize = 1;
const INPUT: usize = 8;

/// One request var of the previous request, by position.
#[derive(Debug)]
struct Slot {
    key: Vec<u8>,
    key_object: Py<PyString>,
    /// The value's bytes and `str`, when short enough to be kept.
    value: Option<(Vec<u8>, Py<PyString>)>,
}

/// What one worker thread keeps between requests.
#[derive(Debug)]
struct Cache {
    core: usize,
    /// `PATH_INFO`, `SCRIPT_NAME` and `""`.
    path_info: Py<PyString>,
    script_name: Py<PyString>,
    empty: Py<PyString>,
    /// The fixed items (keys and values, in order; the scheme and the input are
    /// replaced per request).
    fixed: Vec<(Py<PyString>, Py<PyAny>)>,
    /// This thread's `wsgi.errors`.
    errors: Py<ErrorStream>,
    /// Key objects by name.
    keys: HashMap<Vec<u8>, Py<PyString>>,
    /// The previous request's vars, and its environ (without its input) when its vars
    /// had distinct names.
    slots: Vec<Slot>,
    template: Option<Py<PyDict>>,
    /// The scheme the template holds.
    template_scheme: String,
}

thread_local! {
    static CACHE: RefCell<Option<Cache>> = const { RefCell::new(None) };
}

impl Cache {
    fn new(py: Python<'_>, fixed: &Fixed, core: usize, log: &Arc<Log>) -> PyResult<Cache> {
        let errors = Py::new(py, ErrorStream::new(Arc::clone(log)))?;
        let values: [Bound<'_, PyAny>; 11] = [
            (1, 0).into_pyobject(py)?.into_any(),
            PyString::new(py, "http").into_any(),
            pyo3::types::PyBool::new(py, fixed.multithread)
                .to_owned()
                .into_any(),
            pyo3::types::PyBool::new(py, fixed.multiprocess)
                .to_owned()
                .into_any(),
            pyo3::types::PyBool::new(py, false).to_owned().into_any(),
            PyBytes::new(py, uwsgi_pymod::globals::VERSION.as_bytes()).into_any(),
            PyBytes::new(py, &fixed.node).into_any(),
            core.into_pyobject(py)?.into_any(),
            py.None().into_bound(py),
            errors.bind(py).clone().into_any(),
            py.get_type::<FileWrapper>().into_any(),
        ];
        let fixed = FIXED_KEYS
            .iter()
            .zip(values)
            .map(|(key, value)| (PyString::intern(py, key).unbind(), value.unbind()))
            .collect();
        Ok(Cache {
            core,
            path_info: PyString::intern(py, "PATH_INFO").unbind(),
            script_name: PyString::intern(py, "SCRIPT_NAME").unbind(),
            empty: PyString::new(py, "").unbind(),
            fixed,
            errors,
            keys: HashMap::new(),
            slots: Vec::new(),
            template: None,
            template_scheme: "http".to_owned(),
        })
    }

    /// The key object for `name`.
    fn key<'py>(&mut self, py: Python<'py>, name: &[u8]) -> Bound<'py, PyString> {
        if let Some(key) = self.keys.get(name) {
            return key.bind(py).clone();
        }
        let key = latin1(py, name);
        if name.len() <= KEY_CACHE_MAX && self.keys.len() < KEY_CACHE_ENTRIES {
            self.keys.insert(name.to_vec(), key.clone().unbind());
        }
        key
    }

    /// The environ as a copy of the template, when the request's vars have the same
    /// names in the same order as the previous request's; `None` otherwise.
    fn copy_template<'py>(
        &mut self,
        py: Python<'py>,
        request: &Request<'_>,
    ) -> PyResult<Option<Bound<'py, PyDict>>> {
        let Some(template) = &self.template else {
            return Ok(None);
        };
        let template = template.bind(py);
        let environ = template.copy()?;
        let mut count = 0;
        for (name, value) in request.vars.iter() {
            let Some(slot) = self.slots.get_mut(count) else {
                return Ok(None);
            };
            if slot.key != name {
                return Ok(None);
            }
            count += 1;
            if slot.value.as_ref().is_some_and(|(kept, _)| kept == value) {
                // The template holds this very value.
                continue;
            }
            let object = latin1(py, value);
            let key = slot.key_object.bind(py);
            environ.set_item(key, &object)?;
            if value.len() <= VALUE_CACHE_MAX {
                template.set_item(key, &object)?;
                match &mut slot.value {
                    Some((kept, kept_object)) => {
                        kept.clear();
                        kept.extend_from_slice(value);
                        *kept_object = object.unbind();
                    }
                    None => slot.value = Some((value.to_vec(), object.unbind())),
                }
            } else if slot.value.take().is_some() {
                // A long value is not kept, nor held by the template.
                template.set_item(key, self.empty.bind(py))?;
            }
        }
        if count != self.slots.len() {
            return Ok(None);
        }
        Ok(Some(environ))
    }

    /// A new environ, item by item; it becomes the template of the next request.
    fn fresh<'py>(
        &mut self,
        py: Python<'py>,
        request: &Request<'_>,
        scheme: &str,
        input: &Bound<'py, PyAny>,
    ) -> PyResult<Bound<'py, PyDict>> {
        let environ = PyDict::new(py);
        let mut slots = Vec::with_capacity(self.slots.len().max(16));
        let mut has_path_info = false;
        let mut has_script_name = false;
        for (index, (name, value)) in request.vars.iter().enumerate() {
            let key = match self.slots.get(index) {
                Some(slot) if slot.key == name => slot.key_object.bind(py).clone(),
                _ => self.key(py, name),
            };
            let kept = self.slots.get(index).and_then(|slot| {
                let (kept, object) = slot.value.as_ref()?;
                (slot.key == name && kept == value).then(|| object.bind(py).clone())
            });
            let object = kept.unwrap_or_else(|| latin1(py, value));
            environ.set_item(&key, &object)?;
            has_path_info |= name == b"PATH_INFO";
            has_script_name |= name == b"SCRIPT_NAME";
            slots.push(Slot {
                key: name.to_vec(),
                key_object: key.unbind(),
                value: (value.len() <= VALUE_CACHE_MAX).then(|| (value.to_vec(), object.unbind())),
            });
        }
        // Two vars of the same name make one item: such a request is not a template
        // (replaying its values in order is what gives the last one).
        let distinct = environ.len() == slots.len();
        // uWSGI 2.0 always gives both, empty when the request has none.
        if !has_path_info {
            environ.set_item(self.path_info.bind(py), self.empty.bind(py))?;
        }
        if !has_script_name {
            environ.set_item(self.script_name.bind(py), self.empty.bind(py))?;
        }
        for (index, (key, value)) in self.fixed.iter().enumerate() {
            match index {
                SCHEME => environ.set_item(key.bind(py), scheme)?,
                INPUT => environ.set_item(key.bind(py), input)?,
                _ => environ.set_item(key.bind(py), value.bind(py))?,
            }
        }
        self.slots = slots;
        self.template = None;
        if distinct {
            let template = environ.copy()?;
            template.set_item(self.fixed[INPUT].0.bind(py), py.None())?;
            for slot in &self.slots {
                if slot.value.is_none() {
                    template.set_item(slot.key_object.bind(py), self.empty.bind(py))?;
                }
            }
            self.template = Some(template.unbind());
            scheme.clone_into(&mut self.template_scheme);
        }
        Ok(environ)
    }
}

/// Builds the environ of `request`, with `input` as `wsgi.input`; `core` is
/// `uwsgi.core`, `log` where this thread's `wsgi.errors` writes.
pub fn build<'py>(
    py: Python<'py>,
    request: &Request<'_>,
    fixed: &Fixed,
    core: usize,
    log: &Arc<Log>,
    input: &Bound<'py, PyAny>,
) -> PyResult<Bound<'py, PyDict>> {
    CACHE.with(|cell| {
        let mut slot = cell.borrow_mut();
        let cache = match &mut *slot {
            Some(cache) if cache.core == core => cache,
            other => other.insert(Cache::new(py, fixed, core, log)?),
        };
        let scheme = url_scheme(request);
        let environ = match cache.copy_template(py, request)? {
            Some(environ) => {
                if cache.template_scheme != scheme {
                    let key = cache.fixed[SCHEME].0.bind(py);
                    environ.set_item(key, &*scheme)?;
                }
                environ.set_item(cache.fixed[INPUT].0.bind(py), input)?;
                environ
            }
            None => cache.fresh(py, request, &scheme, input)?,
        };
        // modifier1 30: PATH_INFO loses its SCRIPT_NAME prefix.
        if request.modifier1 == Modifier1::WsgiScriptName {
            let [script_name, path_info] = request
                .vars
                .get_many([b"SCRIPT_NAME".as_slice(), b"PATH_INFO"]);
            let script_name = script_name.unwrap_or_default();
            let path_info = path_info.unwrap_or_default();
            if !script_name.is_empty() && path_info.starts_with(script_name) {
                environ.set_item(
                    cache.path_info.bind(py),
                    latin1(py, &path_info[script_name.len()..]),
                )?;
            }
        }
        Ok(environ)
    })
}

/// The end of a request on this thread: what its `wsgi.errors` holds of an unfinished
/// line goes to the log.
pub fn end_request(py: Python<'_>) {
    CACHE.with(|cell| {
        if let Ok(slot) = cell.try_borrow()
            && let Some(cache) = &*slot
        {
            cache.errors.bind(py).get().end_of_request();
        }
    });
}
