//! The cache functions (spec §6): `cache_get`, `cache_set`, `cache_update`, `cache_del`,
//! `cache_exists`, `cache_clear`, `cache_inc`/`dec`/`mul`/`div`, `cache_num`,
//! `cache_keys`.
//!
//! The last argument is uWSGI 2.0's cache identifier: `None` (the default cache), a
//! local cache `name`, or `name@address` / `@address` for a cache of another server,
//! reached through the magic interface (modifier1 111, modifier2 17) with the GIL
//! released. Results are uWSGI's: the value or `None`, `True` or `None`.

use std::sync::Arc;

use pyo3::prelude::*;
use pyo3::types::{PyBool, PyBytes, PyList};
use uwsgi_protocol::client::Client;
use uwsgi_server_state::cache::{Cache, CacheLocation, MathOp, NUMBER_LEN};

use crate::convert::{self, bytes_of, parse_address, timeout_of};
use crate::errors;
use crate::instance::{self, Instance};

/// Where a call goes.
enum Target {
    Local(Arc<Cache>),
    Remote { client: Client, name: Vec<u8> },
}

/// Resolves the `cache` argument.
fn target(
    py: Python<'_>,
    instance: &Instance,
    cache: Option<&Bound<'_, PyAny>>,
    timeout: Option<f64>,
) -> PyResult<Target> {
    let identifier = match cache {
        Some(cache) if !cache.is_none() => bytes_of(cache, "cache")?,
        _ => Vec::new(),
    };
    match CacheLocation::parse(&identifier) {
        CacheLocation::Local { name } => {
            instance.maybe_sweep_caches();
            let found = instance.state.caches().by_name(name).cloned();
            found.map(Target::Local).ok_or_else(|| {
                if name.is_empty() {
                    errors::value_error(py, "no local uWSGI cache available")
                } else {
                    errors::value_error(
                        py,
                        format!(
                            "no local cache named {:?} (uwsgi.testing.configure(caches=...) \
                             creates caches)",
                            String::from_utf8_lossy(name)
                        ),
                    )
                }
            })
        }
        CacheLocation::Remote { name, address } => {
            let address = parse_address(py, address)?;
            let timeout = timeout_of(py, timeout, instance)?;
            Ok(Target::Remote {
                client: convert::client(address, timeout),
                name: name.to_vec(),
            })
        }
    }
}

/// `True` or `None`, uWSGI's answer for the writing calls.
fn true_or_none(py: Python<'_>, ok: bool) -> Bound<'_, PyAny> {
    if ok {
        PyBool::new(py, true).to_owned().into_any()
    } else {
        py.None().into_bound(py)
    }
}

/// Runs a remote magic call without the GIL.
fn remote<T: Send>(
    py: Python<'_>,
    client: &Client,
    name: &[u8],
    call: impl FnOnce(uwsgi_protocol::client::Cache<'_>) -> uwsgi_protocol::client::Result<T> + Send,
) -> PyResult<T> {
    py.detach(|| {
        let cache = if name.is_empty() {
            client.cache()
        } else {
            client.cache_named(name)
        };
        call(cache)
    })
    .map_err(|e| errors::client_error(py, &e))
}

/// `cache_get(key, cache=None, *, timeout=None)`: the value, or `None`.
#[pyfunction]
#[pyo3(signature = (key, cache=None, *, timeout=None))]
pub fn cache_get<'py>(
    py: Python<'py>,
    key: &Bound<'py, PyAny>,
    cache: Option<&Bound<'py, PyAny>>,
    timeout: Option<f64>,
) -> PyResult<Option<Bound<'py, PyBytes>>> {
    let key = bytes_of(key, "key")?;
    let instance = instance::current();
    let value = match target(py, &instance, cache, timeout)? {
        Target::Local(cache) => cache.get(&key, instance.now()),
        Target::Remote { client, name } => remote(py, &client, &name, |c| c.get(&key))?,
    };
    Ok(value.map(|v| PyBytes::new(py, &v)))
}

/// `cache_exists(key, cache=None, *, timeout=None)`: `True` or `None`.
#[pyfunction]
#[pyo3(signature = (key, cache=None, *, timeout=None))]
pub fn cache_exists<'py>(
    py: Python<'py>,
    key: &Bound<'py, PyAny>,
    cache: Option<&Bound<'py, PyAny>>,
    timeout: Option<f64>,
) -> PyResult<Bound<'py, PyAny>> {
    let key = bytes_of(key, "key")?;
    let instance = instance::current();
    let found = match target(py, &instance, cache, timeout)? {
        Target::Local(cache) => cache.exists(&key, instance.now()),
        Target::Remote { client, name } => remote(py, &client, &name, |c| c.exists(&key))?,
    };
    Ok(true_or_none(py, found))
}

fn store<'py>(
    py: Python<'py>,
    key: &Bound<'py, PyAny>,
    value: &Bound<'py, PyAny>,
    expires: u64,
    cache: Option<&Bound<'py, PyAny>>,
    timeout: Option<f64>,
    update: bool,
) -> PyResult<Bound<'py, PyAny>> {
    let key = bytes_of(key, "key")?;
    let value = bytes_of(value, "value")?;
    let instance = instance::current();
    let stored = match target(py, &instance, cache, timeout)? {
        Target::Local(cache) => {
            let now = instance.now();
            if update {
                cache.update(&key, &value, expires, now).is_ok()
            } else {
                cache.set(&key, &value, expires, now).is_ok()
            }
        }
        Target::Remote { client, name } => remote(py, &client, &name, |c| {
            if update {
                c.update(&key, &value, expires)
            } else {
                c.set(&key, &value, expires)
            }
        })?,
    };
    Ok(true_or_none(py, stored))
}

/// `cache_set(key, value, expires=0, cache=None, *, timeout=None)`: stores `value`
/// unless `key` exists. `True`, or `None` when it was not stored (key present, empty or
/// too large value, full cache).
#[pyfunction]
#[pyo3(signature = (key, value, expires=0, cache=None, *, timeout=None))]
pub fn cache_set<'py>(
    py: Python<'py>,
    key: &Bound<'py, PyAny>,
    value: &Bound<'py, PyAny>,
    expires: u64,
    cache: Option<&Bound<'py, PyAny>>,
    timeout: Option<f64>,
) -> PyResult<Bound<'py, PyAny>> {
    store(py, key, value, expires, cache, timeout, false)
}

/// `cache_update(key, value, expires=0, cache=None, *, timeout=None)`: stores `value`,
/// replacing any existing one. `True` or `None`.
#[pyfunction]
#[pyo3(signature = (key, value, expires=0, cache=None, *, timeout=None))]
pub fn cache_update<'py>(
    py: Python<'py>,
    key: &Bound<'py, PyAny>,
    value: &Bound<'py, PyAny>,
    expires: u64,
    cache: Option<&Bound<'py, PyAny>>,
    timeout: Option<f64>,
) -> PyResult<Bound<'py, PyAny>> {
    store(py, key, value, expires, cache, timeout, true)
}

/// `cache_del(key, cache=None, *, timeout=None)`: `True`, or `None` when the key did
/// not exist.
#[pyfunction]
#[pyo3(signature = (key, cache=None, *, timeout=None))]
pub fn cache_del<'py>(
    py: Python<'py>,
    key: &Bound<'py, PyAny>,
    cache: Option<&Bound<'py, PyAny>>,
    timeout: Option<f64>,
) -> PyResult<Bound<'py, PyAny>> {
    let key = bytes_of(key, "key")?;
    let instance = instance::current();
    let deleted = match target(py, &instance, cache, timeout)? {
        Target::Local(cache) => cache.del(&key, instance.now()).is_ok(),
        Target::Remote { client, name } => remote(py, &client, &name, |c| c.del(&key))?,
    };
    Ok(true_or_none(py, deleted))
}

/// `cache_clear(cache=None, *, timeout=None)`: removes every item; `True`, or `None`
/// when a remote server did not confirm.
#[pyfunction]
#[pyo3(signature = (cache=None, *, timeout=None))]
pub fn cache_clear<'py>(
    py: Python<'py>,
    cache: Option<&Bound<'py, PyAny>>,
    timeout: Option<f64>,
) -> PyResult<Bound<'py, PyAny>> {
    let instance = instance::current();
    let cleared = match target(py, &instance, cache, timeout)? {
        Target::Local(cache) => {
            cache.clear();
            true
        }
        Target::Remote { client, name } => remote(py, &client, &name, |c| c.clear())?,
    };
    Ok(true_or_none(py, cleared))
}

#[allow(clippy::too_many_arguments)]
fn math<'py>(
    py: Python<'py>,
    op: MathOp,
    name: &str,
    key: &Bound<'py, PyAny>,
    operand: i64,
    expires: u64,
    cache: Option<&Bound<'py, PyAny>>,
) -> PyResult<Bound<'py, PyAny>> {
    let key = bytes_of(key, "key")?;
    let instance = instance::current();
    match target(py, &instance, cache, None)? {
        Target::Local(cache) => {
            let done = cache
                .math(&key, op, operand, expires, instance.now())
                .is_ok();
            Ok(true_or_none(py, done))
        }
        // uWSGI 2.0 sends the operation as a plain magic `update` of the 8 operand bytes,
        // so the remote cache *stores the operand* instead of computing (spec §6.3).
        Target::Remote { .. } => Err(errors::value_error(
            py,
            format!(
                "{name} on a remote cache is not supported: the magic interface has no \
                 arithmetic (uWSGI 2.0 would store the raw operand)"
            ),
        )),
    }
}

/// `cache_inc(key, value=1, expires=0, cache=None)`: adds `value` to the 64-bit number
/// stored under `key` (created from 0). `True` or `None`.
#[pyfunction]
#[pyo3(signature = (key, value=1, expires=0, cache=None))]
pub fn cache_inc<'py>(
    py: Python<'py>,
    key: &Bound<'py, PyAny>,
    value: i64,
    expires: u64,
    cache: Option<&Bound<'py, PyAny>>,
) -> PyResult<Bound<'py, PyAny>> {
    math(py, MathOp::Inc, "cache_inc", key, value, expires, cache)
}

/// `cache_dec(key, value=1, expires=0, cache=None)`.
#[pyfunction]
#[pyo3(signature = (key, value=1, expires=0, cache=None))]
pub fn cache_dec<'py>(
    py: Python<'py>,
    key: &Bound<'py, PyAny>,
    value: i64,
    expires: u64,
    cache: Option<&Bound<'py, PyAny>>,
) -> PyResult<Bound<'py, PyAny>> {
    math(py, MathOp::Dec, "cache_dec", key, value, expires, cache)
}

/// `cache_mul(key, value=2, expires=0, cache=None)`.
#[pyfunction]
#[pyo3(signature = (key, value=2, expires=0, cache=None))]
pub fn cache_mul<'py>(
    py: Python<'py>,
    key: &Bound<'py, PyAny>,
    value: i64,
    expires: u64,
    cache: Option<&Bound<'py, PyAny>>,
) -> PyResult<Bound<'py, PyAny>> {
    math(py, MathOp::Mul, "cache_mul", key, value, expires, cache)
}

/// `cache_div(key, value=2, expires=0, cache=None)`.
#[pyfunction]
#[pyo3(signature = (key, value=2, expires=0, cache=None))]
pub fn cache_div<'py>(
    py: Python<'py>,
    key: &Bound<'py, PyAny>,
    value: i64,
    expires: u64,
    cache: Option<&Bound<'py, PyAny>>,
) -> PyResult<Bound<'py, PyAny>> {
    math(py, MathOp::Div, "cache_div", key, value, expires, cache)
}

/// `cache_num(key, cache=None, *, timeout=None)`: the 64-bit number stored under `key`
/// (native byte order), 0 when missing or not 8 bytes long (as uWSGI).
#[pyfunction]
#[pyo3(signature = (key, cache=None, *, timeout=None))]
pub fn cache_num(
    py: Python<'_>,
    key: &Bound<'_, PyAny>,
    cache: Option<&Bound<'_, PyAny>>,
    timeout: Option<f64>,
) -> PyResult<i64> {
    let key = bytes_of(key, "key")?;
    let instance = instance::current();
    let value = match target(py, &instance, cache, timeout)? {
        Target::Local(cache) => cache.get(&key, instance.now()),
        Target::Remote { client, name } => remote(py, &client, &name, |c| c.get(&key))?,
    };
    Ok(value
        .and_then(|v| <[u8; NUMBER_LEN]>::try_from(v.as_slice()).ok())
        .map_or(0, i64::from_ne_bytes))
}

/// `cache_keys(cache=None)`: the keys of a local cache, as a list of bytes in uWSGI's
/// order. A remote identifier is a `UwsgiValueError` (uWSGI: "no local uWSGI cache
/// available").
#[pyfunction]
#[pyo3(signature = (cache=None))]
pub fn cache_keys<'py>(
    py: Python<'py>,
    cache: Option<&Bound<'py, PyAny>>,
) -> PyResult<Bound<'py, PyList>> {
    let instance = instance::current();
    match target(py, &instance, cache, None)? {
        Target::Local(cache) => PyList::new(py, cache.keys().iter().map(|k| PyBytes::new(py, k))),
        Target::Remote { .. } => Err(errors::value_error(
            py,
            "no local uWSGI cache available (cache_keys lists local caches only)",
        )),
    }
}

/// Adds the functions to the module.
pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(cache_get, m)?)?;
    m.add_function(wrap_pyfunction!(cache_exists, m)?)?;
    m.add_function(wrap_pyfunction!(cache_set, m)?)?;
    m.add_function(wrap_pyfunction!(cache_update, m)?)?;
    m.add_function(wrap_pyfunction!(cache_del, m)?)?;
    m.add_function(wrap_pyfunction!(cache_clear, m)?)?;
    m.add_function(wrap_pyfunction!(cache_inc, m)?)?;
    m.add_function(wrap_pyfunction!(cache_dec, m)?)?;
    m.add_function(wrap_pyfunction!(cache_mul, m)?)?;
    m.add_function(wrap_pyfunction!(cache_div, m)?)?;
    m.add_function(wrap_pyfunction!(cache_num, m)?)?;
    m.add_function(wrap_pyfunction!(cache_keys, m)?)?;
    Ok(())
}
