//! User locks (spec §8.3): `lock`, `unlock`, `is_locked`, on the instance's
//! [`UserLocks`](uwsgi_server_state::locks::UserLocks). Lock 0 always exists;
//! `uwsgi.testing.configure(locks=N)` adds locks 1..=N (uWSGI's `--locks N`).
//!
//! The owner of a lock is the calling thread. Where uWSGI would deadlock (locking a lock
//! the thread holds) or do something undefined (unlocking a lock the thread does not
//! hold), this module raises `UwsgiValueError`; a number out of range raises it with
//! uWSGI's message, "Invalid lock number".

use pyo3::prelude::*;
use uwsgi_server_state::locks::{LockError, LockOwner};

use crate::errors;
use crate::instance;

fn lock_error(py: Python<'_>, err: &LockError) -> PyErr {
    let text = match err {
        LockError::WouldDeadlock { .. } => {
            format!("{err}: uWSGI would deadlock (its locks are not re-entrant)")
        }
        other => other.to_string(),
    };
    errors::value_error(py, text)
}

/// `lock(num=0)`: waits until lock `num` is free (without the GIL) and takes it.
#[pyfunction]
#[pyo3(signature = (num=0))]
pub fn lock(py: Python<'_>, num: i64) -> PyResult<()> {
    let instance = instance::current();
    let locks = instance.state.locks();
    // Fail fast on a bad number or a re-lock, with the GIL held.
    let owner = LockOwner::current_thread();
    if locks.try_lock(num, owner).map_err(|e| lock_error(py, &e))? {
        return Ok(());
    }
    py.detach(|| locks.lock(num, owner))
        .map_err(|e| lock_error(py, &e))
}

/// `unlock(num=0)`: releases lock `num`, which this thread must hold.
#[pyfunction]
#[pyo3(signature = (num=0))]
pub fn unlock(py: Python<'_>, num: i64) -> PyResult<()> {
    instance::current()
        .state
        .locks()
        .unlock(num, LockOwner::current_thread())
        .map_err(|e| lock_error(py, &e))
}

/// `is_locked(num=0)`: whether lock `num` is held (by anyone).
#[pyfunction]
#[pyo3(signature = (num=0))]
pub fn is_locked(py: Python<'_>, num: i64) -> PyResult<bool> {
    instance::current()
        .state
        .locks()
        .is_locked(num)
        .map_err(|e| lock_error(py, &e))
}

/// Adds the functions to the module.
pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(lock, m)?)?;
    m.add_function(wrap_pyfunction!(unlock, m)?)?;
    m.add_function(wrap_pyfunction!(is_locked, m)?)?;
    Ok(())
}
