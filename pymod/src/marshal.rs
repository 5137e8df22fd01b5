//! Python objects to and from [`uwsgi_protocol::marshal::Value`], for modifier1 33
//! messages (spec §4): `send_message`/`send_multi_message` payloads that are neither a
//! dict nor bytes, and marshalled replies. The bytes are written and read by the
//! protocol crate's marshal codec, not by Python's `marshal` module.

use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use pyo3::types::{
    PyBool, PyByteArray, PyBytes, PyComplex, PyDict, PyFloat, PyFrozenSet, PyInt, PyList, PySet,
    PyString, PyTuple,
};
use uwsgi_protocol::marshal::{self, BigInt, Value};

use crate::errors;

/// The marshal version uWSGI's clients write (`PyMarshal_WriteObjectToString(obj, 1)`).
pub const CLIENT_VERSION: u8 = 1;

/// Deepest nesting accepted, as the protocol crate's codec.
const MAX_DEPTH: usize = marshal::DEFAULT_MAX_DEPTH;

/// The [`Value`] of a Python object; `ValueError` for objects marshal cannot carry (as
/// `marshal.dumps` raises) and for nesting deeper than 200 levels.
pub fn to_value(obj: &Bound<'_, PyAny>) -> PyResult<Value> {
    to_value_at(obj, 1)
}

fn to_value_at(obj: &Bound<'_, PyAny>, depth: usize) -> PyResult<Value> {
    if depth > MAX_DEPTH {
        return Err(PyValueError::new_err(format!(
            "object too deeply nested to marshal (more than {MAX_DEPTH} levels)"
        )));
    }
    let py = obj.py();
    if obj.is_none() {
        return Ok(Value::None);
    }
    // bool before int: True is an int.
    if let Ok(b) = obj.cast::<PyBool>() {
        return Ok(Value::Bool(b.is_true()));
    }
    if obj.is_instance_of::<PyInt>() {
        if let Ok(n) = obj.extract::<i64>() {
            return Ok(Value::Int(n));
        }
        let hex = py
            .import("builtins")?
            .getattr("hex")?
            .call1((obj,))?
            .extract::<String>()?;
        let big = BigInt::from_hex(&hex)
            .map_err(|_| PyValueError::new_err(format!("cannot marshal int {hex}")))?;
        return Ok(Value::BigInt(big));
    }
    if let Ok(f) = obj.cast::<PyFloat>() {
        return Ok(Value::Float(f.value()));
    }
    if let Ok(c) = obj.cast::<PyComplex>() {
        return Ok(Value::Complex {
            re: c.real(),
            im: c.imag(),
        });
    }
    if let Ok(b) = obj.cast::<PyBytes>() {
        return Ok(Value::Bytes(b.as_bytes().to_vec()));
    }
    if let Ok(b) = obj.cast::<PyByteArray>() {
        return Ok(Value::Bytes(b.to_vec()));
    }
    if let Ok(s) = obj.cast::<PyString>() {
        return Ok(Value::Str(s.to_str()?.to_owned()));
    }
    if let Ok(t) = obj.cast::<PyTuple>() {
        return items(t.iter(), depth).map(Value::Tuple);
    }
    if let Ok(l) = obj.cast::<PyList>() {
        return items(l.iter(), depth).map(Value::List);
    }
    if let Ok(d) = obj.cast::<PyDict>() {
        let mut pairs = Vec::with_capacity(d.len());
        for (key, value) in d.iter() {
            pairs.push((
                to_value_at(&key, depth + 1)?,
                to_value_at(&value, depth + 1)?,
            ));
        }
        return Ok(Value::Dict(pairs));
    }
    if let Ok(s) = obj.cast::<PyFrozenSet>() {
        return items(s.iter(), depth).map(Value::FrozenSet);
    }
    if let Ok(s) = obj.cast::<PySet>() {
        return items(s.iter(), depth).map(Value::Set);
    }
    if obj.is(py.Ellipsis()) {
        return Ok(Value::Ellipsis);
    }
    let stop_iteration = py.get_type::<pyo3::exceptions::PyStopIteration>();
    if obj.is(&stop_iteration) {
        return Ok(Value::StopIteration);
    }
    Err(PyValueError::new_err(format!(
        "unmarshallable object of type {}",
        obj.get_type().name()?
    )))
}

fn items<'py>(iter: impl Iterator<Item = Bound<'py, PyAny>>, depth: usize) -> PyResult<Vec<Value>> {
    iter.map(|item| to_value_at(&item, depth + 1)).collect()
}

/// The Python object of a [`Value`]. A dict key or set item Python cannot hash (a
/// list, …) is a `ProtocolError`, as for any reply that does not make sense.
pub fn to_python<'py>(py: Python<'py>, value: &Value) -> PyResult<Bound<'py, PyAny>> {
    let unhashable =
        |err: PyErr| errors::ProtocolError::new_err(format!("marshalled reply: {err}"));
    Ok(match value {
        Value::None => py.None().into_bound(py),
        Value::Bool(b) => PyBool::new(py, *b).to_owned().into_any(),
        Value::Int(n) => n.into_pyobject(py)?.into_any(),
        Value::BigInt(big) => py
            .import("builtins")?
            .getattr("int")?
            .call1((big.to_hex(), 16))?,
        Value::Float(f) => PyFloat::new(py, *f).into_any(),
        Value::Complex { re, im } => PyComplex::from_doubles(py, *re, *im).into_any(),
        Value::Bytes(b) => PyBytes::new(py, b).into_any(),
        Value::Str(s) => PyString::new(py, s).into_any(),
        Value::Tuple(items) => PyTuple::new(py, convert_all(py, items)?)?.into_any(),
        Value::List(items) => PyList::new(py, convert_all(py, items)?)?.into_any(),
        Value::Dict(pairs) => {
            let dict = PyDict::new(py);
            for (key, value) in pairs {
                dict.set_item(to_python(py, key)?, to_python(py, value)?)
                    .map_err(unhashable)?;
            }
            dict.into_any()
        }
        Value::Set(items) => PySet::new(py, convert_all(py, items)?)
            .map_err(unhashable)?
            .into_any(),
        Value::FrozenSet(items) => PyFrozenSet::new(py, convert_all(py, items)?)
            .map_err(unhashable)?
            .into_any(),
        Value::StopIteration => py
            .get_type::<pyo3::exceptions::PyStopIteration>()
            .into_any(),
        Value::Ellipsis => py.Ellipsis().into_bound(py),
    })
}

fn convert_all<'py>(py: Python<'py>, items: &[Value]) -> PyResult<Vec<Bound<'py, PyAny>>> {
    items.iter().map(|item| to_python(py, item)).collect()
}

/// `marshal.dumps(obj, version)` through the protocol crate.
pub fn dumps(obj: &Bound<'_, PyAny>, version: u8) -> PyResult<Vec<u8>> {
    let value = to_value(obj)?;
    marshal::to_vec(&value, version).map_err(|e| PyValueError::new_err(e.to_string()))
}

/// `marshal.loads(data)` through the protocol crate; malformed bytes are a
/// `ProtocolError`.
pub fn loads<'py>(py: Python<'py>, data: &[u8]) -> PyResult<Bound<'py, PyAny>> {
    let value = marshal::from_slice(data)
        .map_err(|e| errors::ProtocolError::new_err(format!("invalid marshal data: {e}")))?;
    to_python(py, &value)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support::with_python;

    #[test]
    fn round_trips_match_python_marshal() {
        with_python(|py| {
            let cases = py.eval(
                c"[None, True, False, 0, -1, 2**63, -(2**80), 1.5, 2j, b'x', 'h\\xe9', \
                   (1, 'a'), [1, [2]], {'k': (1,)}, {1, 2}, frozenset({3}), ..., StopIteration]",
                None,
                None,
            )?;
            let pymarshal = py.import("marshal")?;
            for case in cases.try_iter()? {
                let case = case?;
                let ours = dumps(&case, 1)?;
                let theirs: Vec<u8> = pymarshal.call_method1("dumps", (&case, 1))?.extract()?;
                let back = loads(py, &ours)?;
                assert!(back.eq(&case)?, "{case:?} -> {back:?}");
                // Both readers agree on both writers' bytes.
                let from_theirs = loads(py, &theirs)?;
                assert!(from_theirs.eq(&case)?, "{case:?}");
                let python_reads_ours =
                    pymarshal.call_method1("loads", (PyBytes::new(py, &ours),))?;
                assert!(python_reads_ours.eq(&case)?, "{case:?}");
            }
            Ok(())
        });
    }

    #[test]
    fn unmarshallable_objects_are_value_errors() {
        with_python(|py| {
            let obj = py.eval(c"object()", None, None)?;
            let err = dumps(&obj, 1).unwrap_err();
            assert!(err.is_instance_of::<PyValueError>(py));
            let err = loads(py, b"\xff").unwrap_err();
            assert!(err.is_instance_of::<errors::ProtocolError>(py));
            Ok(())
        });
    }
}
