//! uWSGI's metrics API (`metric_get`, `metric_set`, `metric_inc`, …), as uWSGI 2.0
//! answers it without `--enable-metrics`: uwsgi-rs has no metrics subsystem, so there is
//! no metric to find. uWSGI's `uwsgi_metric_*` then fail (the Python functions return
//! `None` instead of `True`) and `uwsgi_metric_get` reads 0.
//!
//! The argument types are still checked as uWSGI's `PyArg_ParseTuple("s|l")` checks
//! them, so code that passes the wrong types fails here as it would there.

use pyo3::prelude::*;

/// `metric_get(name)`: 0, the value of a metric that does not exist.
#[pyfunction]
pub fn metric_get(name: &str) -> i64 {
    let _ = name;
    0
}

macro_rules! metric_update {
    ($($name:ident),+) => {$(
        #[doc = concat!("`", stringify!($name), "(name, value=1)`: `None`, as uWSGI when the metric does not exist.")]
        #[pyfunction]
        #[pyo3(signature = (name, value=1))]
        pub fn $name(name: &str, value: i64) {
            let _ = (name, value);
        }
    )+};
}

metric_update!(
    metric_set,
    metric_inc,
    metric_dec,
    metric_mul,
    metric_div,
    metric_set_max,
    metric_set_min
);

/// Adds the functions to the module.
pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    for function in [
        wrap_pyfunction!(metric_get, m)?,
        wrap_pyfunction!(metric_set, m)?,
        wrap_pyfunction!(metric_inc, m)?,
        wrap_pyfunction!(metric_dec, m)?,
        wrap_pyfunction!(metric_mul, m)?,
        wrap_pyfunction!(metric_div, m)?,
        wrap_pyfunction!(metric_set_max, m)?,
        wrap_pyfunction!(metric_set_min, m)?,
    ] {
        m.add_function(function)?;
    }
    Ok(())
}
