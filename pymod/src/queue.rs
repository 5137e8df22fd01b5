//! The queue (spec §8.1): `queue_push`, `queue_pull`, `queue_pop`, `queue_get`,
//! `queue_set`, `queue_last`, `queue_slot`, `queue_pull_slot`, on the instance's
//! [`Queue`](uwsgi_server_state::queue::Queue). As in uWSGI, every function answers
//! `None` when there is no queue (`uwsgi.testing.configure(queue=None)`), and failures
//! (an empty or too large message, a slot that does not exist) are `None` too.

use pyo3::prelude::*;
use pyo3::types::{PyBool, PyBytes, PyList};

use crate::convert::bytes_of;
use crate::instance;

fn true_or_none(py: Python<'_>, ok: bool) -> Bound<'_, PyAny> {
    if ok {
        PyBool::new(py, true).to_owned().into_any()
    } else {
        py.None().into_bound(py)
    }
}

fn bytes_or_none<'py>(py: Python<'py>, value: Option<Vec<u8>>) -> Bound<'py, PyAny> {
    match value {
        Some(v) => PyBytes::new(py, &v).into_any(),
        None => py.None().into_bound(py),
    }
}

/// `queue_push(message)`: writes at the push cursor, overwriting; `True` or `None`.
#[pyfunction]
pub fn queue_push<'py>(
    py: Python<'py>,
    message: &Bound<'py, PyAny>,
) -> PyResult<Bound<'py, PyAny>> {
    let message = bytes_of(message, "message")?;
    let instance = instance::current();
    let ok = instance
        .state
        .queue()
        .is_some_and(|q| q.push(&message, instance.now()).is_ok());
    Ok(true_or_none(py, ok))
}

/// `queue_set(index, message)`: overwrites slot `index`; `True` or `None`.
#[pyfunction]
pub fn queue_set<'py>(
    py: Python<'py>,
    index: i64,
    message: &Bound<'py, PyAny>,
) -> PyResult<Bound<'py, PyAny>> {
    let message = bytes_of(message, "message")?;
    let instance = instance::current();
    let ok = match (instance.state.queue(), u64::try_from(index)) {
        (Some(q), Ok(index)) => q.set(index, &message, instance.now()).is_ok(),
        _ => false,
    };
    Ok(true_or_none(py, ok))
}

/// `queue_pull()`: the oldest message (FIFO), removed; `None` when its slot is empty.
#[pyfunction]
pub fn queue_pull(py: Python<'_>) -> Bound<'_, PyAny> {
    bytes_or_none(py, instance::current().state.queue().and_then(|q| q.pull()))
}

/// `queue_pop()`: the newest message (LIFO), removed; `None` when its slot is empty (the
/// cursor moves back anyway, as in uWSGI).
#[pyfunction]
pub fn queue_pop(py: Python<'_>) -> Bound<'_, PyAny> {
    bytes_or_none(py, instance::current().state.queue().and_then(|q| q.pop()))
}

/// `queue_get(index)`: slot `index` without removing it; `None` if empty or absent.
#[pyfunction]
pub fn queue_get(py: Python<'_>, index: i64) -> Bound<'_, PyAny> {
    let instance = instance::current();
    let value = match (instance.state.queue(), u64::try_from(index)) {
        (Some(q), Ok(index)) => q.get(index),
        _ => None,
    };
    bytes_or_none(py, value)
}

/// `queue_last(num=0)`: without `num`, the newest message (or `None`); with `num > 0`,
/// a list of the `num` newest (newest first, at most the queue size), `None` for empty
/// slots.
#[pyfunction]
#[pyo3(signature = (num=0))]
pub fn queue_last(py: Python<'_>, num: i64) -> PyResult<Bound<'_, PyAny>> {
    let instance = instance::current();
    let Some(queue) = instance.state.queue() else {
        return Ok(py.None().into_bound(py));
    };
    match u64::try_from(num) {
        Ok(n) if n > 0 => {
            let items = queue.last_n(n);
            Ok(PyList::new(py, items.into_iter().map(|item| bytes_or_none(py, item)))?.into_any())
        }
        _ => Ok(bytes_or_none(py, queue.last())),
    }
}

/// `queue_slot()`: the push cursor (0 without a queue).
#[pyfunction]
pub fn queue_slot() -> u64 {
    instance::current().state.queue().map_or(0, |q| q.slot())
}

/// `queue_pull_slot()`: the pull cursor (0 without a queue).
#[pyfunction]
pub fn queue_pull_slot() -> u64 {
    instance::current()
        .state
        .queue()
        .map_or(0, |q| q.pull_slot())
}

/// Adds the functions to the module.
pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(queue_push, m)?)?;
    m.add_function(wrap_pyfunction!(queue_set, m)?)?;
    m.add_function(wrap_pyfunction!(queue_pull, m)?)?;
    m.add_function(wrap_pyfunction!(queue_pop, m)?)?;
    m.add_function(wrap_pyfunction!(queue_get, m)?)?;
    m.add_function(wrap_pyfunction!(queue_last, m)?)?;
    m.add_function(wrap_pyfunction!(queue_slot, m)?)?;
    m.add_function(wrap_pyfunction!(queue_pull_slot, m)?)?;
    Ok(())
}
