//! RPC (spec §3.4): `register_rpc`, `rpc`, `call`, `rpc_list`.
//!
//! Local functions live in the instance's [`RpcRegistry`](uwsgi_server_state::rpc) as
//! Rust closures that call the Python function; `rpc(node, …)` with a node goes over
//! the network (modifier1 173) with the GIL released.

use std::sync::Arc;

use pyo3::exceptions::PyTypeError;
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyString, PyTuple};
use uwsgi_server_state::rpc::{MAX_ARGS, RpcError, RpcHandler};

use crate::convert::{self, address_of, bytes_of, timeout_of};
use crate::errors;
use crate::instance::{self, Instance, stash, take_stashed};

/// The result bytes of a Python RPC function: `bytes` as they are, `str` in UTF-8,
/// `None` as no result (an empty one). Anything else is a `TypeError`.
fn result_bytes(value: &Bound<'_, PyAny>) -> PyResult<Vec<u8>> {
    if value.is_none() {
        return Ok(Vec::new());
    }
    if let Ok(bytes) = value.cast::<PyBytes>() {
        return Ok(bytes.as_bytes().to_vec());
    }
    if let Ok(text) = value.cast::<PyString>() {
        return Ok(text.to_str()?.as_bytes().to_vec());
    }
    Err(PyTypeError::new_err(format!(
        "an RPC function must return bytes, str or None, not {}",
        value.get_type().name()?
    )))
}

/// The registry handler calling `function(*args)` with bytes arguments. A Python
/// exception is stashed for the caller on this thread (see [`take_stashed`]) and
/// reported to the registry as `RpcError::Failed`.
fn handler(function: Py<PyAny>) -> RpcHandler {
    Arc::new(move |args: &[&[u8]]| {
        Python::attach(|py| {
            let outcome = PyTuple::new(py, args.iter().map(|arg| PyBytes::new(py, arg)))
                .and_then(|args| function.bind(py).call1(args))
                .and_then(|value| result_bytes(&value));
            outcome.map_err(|err| RpcError::Failed(stash(py, err)))
        })
    })
}

/// `register_rpc(name, function, argc=0)`: registers `function` under `name` for local
/// `call`/`rpc` (and, embedded, for the server's RPC requests). Returns `True`.
/// Re-registering a name replaces its function. A name that is empty, over 255 bytes or
/// contains a NUL, or a full table (`--rpc-max`, 64), raises `UwsgiValueError` (uWSGI:
/// `ValueError("unable to register rpc function")`).
#[pyfunction]
#[pyo3(signature = (name, function, argc=0))]
pub fn register_rpc(
    py: Python<'_>,
    name: &Bound<'_, PyAny>,
    function: &Bound<'_, PyAny>,
    argc: u8,
) -> PyResult<bool> {
    let name = bytes_of(name, "name")?;
    if !function.is_callable() {
        return Err(PyTypeError::new_err(
            "register_rpc: function must be callable",
        ));
    }
    let instance = instance::current();
    instance
        .state
        .rpc()
        .register(&name, argc, handler(function.clone().unbind()))
        .map_err(|e| errors::value_error(py, format!("unable to register rpc function: {e}")))?;
    Ok(true)
}

/// The arguments of a call: bytes or str each, at most 254 (uWSGI's server reads 255
/// array items, the function name included).
fn call_args(args: &Bound<'_, PyTuple>) -> PyResult<Vec<Vec<u8>>> {
    if args.len() > MAX_ARGS {
        return Err(errors::value_error(
            args.py(),
            format!(
                "unable to call rpc function: {} arguments, at most {MAX_ARGS}",
                args.len()
            ),
        ));
    }
    args.iter()
        .map(|arg| bytes_of(&arg, "RPC arguments"))
        .collect()
}

/// A local call: the function's result, `None` for an unknown function. A Python
/// exception raised by the function propagates (uWSGI prints it and returns `None`).
pub fn call_local<'py>(
    py: Python<'py>,
    instance: &Instance,
    function: &[u8],
    args: &[Vec<u8>],
) -> PyResult<Option<Bound<'py, PyBytes>>> {
    let borrowed: Vec<&[u8]> = args.iter().map(Vec::as_slice).collect();
    match instance.state.rpc().call(function, &borrowed) {
        Ok(result) => Ok(Some(PyBytes::new(py, &result))),
        Err(RpcError::NotFound) => Ok(None),
        Err(RpcError::Failed(text)) => Err(take_stashed().unwrap_or_else(|| {
            errors::UwsgiError::new_err(format!("rpc function failed: {text}"))
        })),
        Err(other) => Err(errors::value_error(
            py,
            format!("unable to call rpc function: {other}"),
        )),
    }
}

/// `rpc(node, function, *args, timeout=None)`: calls RPC function `function` with
/// `args` (bytes or str each, at most 254).
///
/// `node` `None` or empty: a local call (see `call`). Otherwise `node` is the server's
/// address (`host:port`, a socket path, `@abstract`) and the call goes over the network;
/// the result is the bytes returned, or `None` when the server answers nothing (uWSGI
/// 2.0 closes the connection for an unknown function or an empty result). Network
/// failures raise `UwsgiConnectionError` / `UwsgiTimeoutError` (uWSGI returns `None`).
#[pyfunction]
#[pyo3(signature = (node, function, *args, timeout=None))]
pub fn rpc<'py>(
    py: Python<'py>,
    node: &Bound<'py, PyAny>,
    function: &Bound<'py, PyAny>,
    args: &Bound<'py, PyTuple>,
    timeout: Option<f64>,
) -> PyResult<Option<Bound<'py, PyBytes>>> {
    let function = bytes_of(function, "function")?;
    let args = call_args(args)?;
    let instance = instance::current();
    let local = node.is_none() || bytes_of(node, "node")?.is_empty();
    if local {
        return call_local(py, &instance, &function, &args);
    }
    let client = convert::client(
        address_of(node, "node")?,
        timeout_of(py, timeout, &instance)?,
    );
    let result = py
        .detach(|| client.rpc(&function, &args))
        .map_err(|e| errors::client_error(py, &e))?;
    Ok(result.map(|bytes| PyBytes::new(py, &bytes)))
}

/// `call(function, *args)`: the local call, `rpc(None, function, *args)`.
#[pyfunction]
#[pyo3(signature = (function, *args))]
pub fn call<'py>(
    py: Python<'py>,
    function: &Bound<'py, PyAny>,
    args: &Bound<'py, PyTuple>,
) -> PyResult<Option<Bound<'py, PyBytes>>> {
    let function = bytes_of(function, "function")?;
    let args = call_args(args)?;
    call_local(py, &instance::current(), &function, &args)
}

/// `rpc_list()`: the names of the local functions, as a tuple of bytes, in
/// registration order.
#[pyfunction]
pub fn rpc_list(py: Python<'_>) -> PyResult<Bound<'_, PyTuple>> {
    let names = instance::current().state.rpc().list();
    PyTuple::new(py, names.iter().map(|name| PyBytes::new(py, name)))
}

/// Adds the functions to the module.
pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(register_rpc, m)?)?;
    m.add_function(wrap_pyfunction!(rpc, m)?)?;
    m.add_function(wrap_pyfunction!(call, m)?)?;
    m.add_function(wrap_pyfunction!(rpc_list, m)?)?;
    Ok(())
}
