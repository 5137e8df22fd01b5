//! The network functions: `send_message`, `send_multi_message`, `send_multicast_message`,
//! `spool_remote`, and the helpers the remote forms of `rpc`, `signal` and `cache_*` use.
//!
//! Every exchange goes through `uwsgi_protocol::client` (one connection per call, the
//! codec builds and reads every byte) with the GIL released, and has a timeout: the
//! call's `timeout` argument or the instance's socket timeout (4 s by default).

use std::net::Ipv4Addr;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use pyo3::exceptions::PyTypeError;
use pyo3::prelude::*;
use pyo3::types::{PyByteArray, PyBytes, PyDict, PyList, PyMemoryView, PySequence, PyTuple};
use uwsgi_protocol::client::{Client, DatagramOptions, Error as ClientError, OwnedReply};
use uwsgi_protocol::{Modifier1, Reply, Vars, VarsBuilder};

use crate::convert::{self, address_of, bytes_of, timeout_of};
use crate::errors;
use crate::instance::{self, Instance};
use crate::marshal;

/// modifier1 of marshalled messages.
pub const MARSHAL: u8 = 33;

/// A vars block from a dict of bytes/str keys and values.
pub fn vars_of(dict: &Bound<'_, PyDict>, what: &str) -> PyResult<VarsBuilder> {
    let py = dict.py();
    let mut vars = VarsBuilder::with_capacity(dict.len() * 16);
    for (key, value) in dict.iter() {
        let key = bytes_of(&key, &format!("{what} keys"))?;
        let value = bytes_of(&value, &format!("{what} values"))?;
        vars.push(key, value)
            .map_err(|e| errors::value_error(py, format!("{what}: {e}")))?;
    }
    Ok(vars)
}

/// The block `send_message` sends for `payload` (spec §5.1). For modifier1 33 the
/// payload is an object and is always marshalled (version 1, as uWSGI's client writes),
/// bytes included. For other modifiers bytes (or a bytearray / memoryview) are sent as
/// they are, a dict becomes vars and anything else is marshalled (uWSGI 1.4's rules).
pub fn encode_payload(payload: &Bound<'_, PyAny>, modifier1: u8) -> PyResult<Vec<u8>> {
    if modifier1 == MARSHAL {
        return marshal::dumps(payload, marshal::CLIENT_VERSION);
    }
    if let Ok(dict) = payload.cast::<PyDict>() {
        return Ok(vars_of(dict, "message")?.into_block());
    }
    if let Ok(bytes) = payload.cast::<PyBytes>() {
        return Ok(bytes.as_bytes().to_vec());
    }
    if payload.is_instance_of::<PyByteArray>() || payload.is_instance_of::<PyMemoryView>() {
        return bytes_of(payload, "payload");
    }
    marshal::dumps(payload, marshal::CLIENT_VERSION)
}

/// The block of a framed or raw reply, without the header (what uWSGI 1.4's iterator
/// yields); `None` when the server closed without answering.
fn reply_payload(reply: &OwnedReply) -> Option<Vec<u8>> {
    let bytes = match reply.reply() {
        Reply::Closed => return None,
        Reply::Pong(m) | Reply::Response(m) | Reply::CacheValue(m) | Reply::Marshal(m) => {
            m.payload.as_bytes()
        }
        Reply::RpcResult(payload) => payload.as_bytes(),
        Reply::RpcBigResult { data, .. } => data,
        Reply::CacheStream { value, .. } | Reply::CacheMagic { value, .. } => value,
        Reply::CacheDump { image, .. } => image,
        Reply::AdminValue { value, .. } => return Some(value.to_le_bytes().to_vec()),
        Reply::Http(bytes) | Reply::Raw(bytes) => bytes,
        // Reply is non_exhaustive: a kind added later still has its bytes.
        _ => reply.as_bytes(),
    };
    Some(bytes.to_vec())
}

/// What a marshal message (modifier1 33) gets back: the unmarshalled object; `None` when
/// the server closed without a reply or answered `ff 0000 00`; `True` for `ff 0000 NN`
/// with NN ≠ 0 (the 0.9 client's reading).
fn marshal_reply<'py>(py: Python<'py>, reply: &OwnedReply) -> PyResult<Bound<'py, PyAny>> {
    match reply.reply() {
        Reply::Closed => Ok(py.None().into_bound(py)),
        Reply::Marshal(m) => marshal::loads(py, m.payload.as_bytes()),
        Reply::Response(m) if m.modifier2 == 0 => Ok(py.None().into_bound(py)),
        Reply::Response(_) => Ok(pyo3::types::PyBool::new(py, true).to_owned().into_any()),
        other => Err(errors::ProtocolError::new_err(format!(
            "unexpected {} reply to a marshal message",
            other.kind()
        ))),
    }
}

/// One node's answer to `send_message` / `send_multi_message`.
fn reply_object<'py>(
    py: Python<'py>,
    modifier1: u8,
    reply: &OwnedReply,
) -> PyResult<Bound<'py, PyAny>> {
    if modifier1 == MARSHAL {
        marshal_reply(py, reply)
    } else {
        Ok(match reply_payload(reply) {
            Some(bytes) => PyBytes::new(py, &bytes).into_any(),
            None => py.None().into_bound(py),
        })
    }
}

/// Reads `len` bytes from file descriptor `fd` (the request body of
/// `send_message(..., fd, cl)` and `fcgi(stdin_fd=...)`), all within `timeout`, the
/// call's timeout, and without holding the GIL while it waits (see [`crate::fdio`]).
pub fn read_fd(py: Python<'_>, fd: i32, len: usize, timeout: Duration) -> PyResult<Vec<u8>> {
    crate::fdio::read_exact(py, fd, len, Instant::now() + timeout, "cl")
}

/// `send_message(destination, modifier1, modifier2, payload, timeout=None, fd=-1, cl=0)`.
///
/// Sends one packet and reads its reply. For modifier1 33 the payload is marshalled
/// (whatever its type) and the reply unmarshalled: the result is that object,
/// `None` when the server answered nothing. For any other modifier1 the result is an
/// iterator over the reply's bytes without the header (what uWSGI 1.4 returned); it
/// yields nothing when the server closed without replying.
///
/// `fd`/`cl`: with `cl > 0`, `cl` bytes are read from file descriptor `fd` and sent as
/// the body of an application request (modifier1 0, whose vars must carry a matching
/// `CONTENT_LENGTH`). Passing a descriptor (`cl=-1`) is not supported.
#[pyfunction]
#[pyo3(
    signature = (destination, modifier1, modifier2, payload, timeout=None, fd=-1, cl=0),
    text_signature = "(destination, modifier1, modifier2, payload, timeout=None, fd=-1, cl=0)"
)]
#[allow(clippy::too_many_arguments)]
pub fn send_message<'py>(
    py: Python<'py>,
    destination: &Bound<'py, PyAny>,
    modifier1: u8,
    modifier2: u8,
    payload: &Bound<'py, PyAny>,
    timeout: Option<f64>,
    fd: i32,
    cl: i64,
) -> PyResult<Bound<'py, PyAny>> {
    let instance = instance::current();
    let timeout = timeout_of(py, timeout, &instance)?;
    if destination.is_instance_of::<pyo3::types::PyInt>() {
        return Err(errors::value_error(
            py,
            "send_message to a file descriptor is not supported: give the peer's address \
             (host:port or a socket path)",
        ));
    }
    let client = convert::client(address_of(destination, "destination")?, timeout);
    let block = encode_payload(payload, modifier1)?;
    let reply = if fd >= 0 && cl != 0 {
        if cl < 0 {
            return Err(errors::value_error(
                py,
                "passing a file descriptor over the socket (cl=-1) is not supported",
            ));
        }
        if modifier1 != 0 {
            return Err(errors::value_error(
                py,
                "a body from fd/cl can only follow an application request (modifier1 0)",
            ));
        }
        let len = usize::try_from(cl).map_err(|_| errors::value_error(py, "cl is too large"))?;
        let body = read_fd(py, fd, len, timeout)?;
        let vars = Vars::parse(&block, usize::MAX)
            .map_err(|e| errors::value_error(py, format!("payload: {e}")))?
            .as_bytes()
            .to_vec();
        let raw = py
            .detach(|| {
                let vars = Vars::parse(&vars, usize::MAX).unwrap_or(Vars::EMPTY);
                client.request(vars, &body)
            })
            .map_err(|e| errors::client_error(py, &e))?;
        return chunks(py, if raw.is_empty() { vec![] } else { vec![raw] });
    } else {
        py.detach(|| client.send(modifier1, modifier2, &block))
            .map_err(|e| errors::client_error(py, &e))?
    };
    if modifier1 == MARSHAL {
        return marshal_reply(py, &reply);
    }
    // A reply without bytes (a pong with no warning) yields nothing, as in uWSGI 1.4.
    chunks(
        py,
        reply_payload(&reply)
            .filter(|p| !p.is_empty())
            .into_iter()
            .collect(),
    )
}

/// An iterator over `parts`, as bytes objects.
fn chunks<'py>(py: Python<'py>, parts: Vec<Vec<u8>>) -> PyResult<Bound<'py, PyAny>> {
    let list = PyList::new(py, parts.iter().map(|p| PyBytes::new(py, p)))?;
    Ok(list.try_iter()?.into_any())
}

/// One node of `send_multi_message`: `(host, port, payload)` or `(address, payload)`.
fn node_of(
    node: &Bound<'_, PyAny>,
    modifier1: u8,
    timeout: Duration,
) -> PyResult<(Client, Vec<u8>)> {
    let py = node.py();
    let items = node.cast::<PyTuple>().map_err(|_| {
        PyTypeError::new_err(
            "send_multi_message: each node is a tuple (host, port, payload) or (address, payload)",
        )
    })?;
    let (address, payload) = match items.len() {
        3 => {
            let host = bytes_of(&items.get_item(0)?, "host")?;
            let port: u16 = items.get_item(1)?.extract()?;
            let host = String::from_utf8_lossy(&host).into_owned();
            let address = if host.contains(':') {
                format!("[{host}]:{port}")
            } else {
                format!("{host}:{port}")
            };
            (
                convert::parse_address(py, address.as_bytes())?,
                items.get_item(2)?,
            )
        }
        2 => (
            address_of(&items.get_item(0)?, "address")?,
            items.get_item(1)?,
        ),
        n => {
            return Err(PyTypeError::new_err(format!(
                "send_multi_message: a node has {n} items; expected (host, port, payload) or (address, payload)"
            )));
        }
    };
    Ok((
        convert::client(address, timeout),
        encode_payload(&payload, modifier1)?,
    ))
}

/// `send_multi_message(cluster, modifier1, modifier2, timeout=None)`.
///
/// Sends one packet to every node of `cluster` at once — each node a tuple
/// `(host, port, payload)` or `(address, payload)`, the payload encoded as by
/// `send_message` — and returns the tuple of replies in node order, after at most
/// `timeout` seconds in all. A reply is the unmarshalled object for modifier1 33 and the
/// reply bytes otherwise; `None` when the node closed without replying; and, for a node
/// that failed or did not answer in time, the exception (`UwsgiTimeoutError`,
/// `UwsgiConnectionError`, `ProtocolError`) as a value, not raised.
#[pyfunction]
#[pyo3(signature = (cluster, modifier1, modifier2, timeout=None))]
pub fn send_multi_message<'py>(
    py: Python<'py>,
    cluster: &Bound<'py, PyAny>,
    modifier1: u8,
    modifier2: u8,
    timeout: Option<f64>,
) -> PyResult<Bound<'py, PyTuple>> {
    let instance = instance::current();
    let timeout = timeout_of(py, timeout, &instance)?;
    let cluster = cluster.cast::<PySequence>().map_err(|_| {
        PyTypeError::new_err("send_multi_message: cluster must be a sequence of nodes")
    })?;
    let nodes = (0..cluster.len()?)
        .map(|i| node_of(&cluster.get_item(i)?, modifier1, timeout))
        .collect::<PyResult<Vec<_>>>()?;
    let count = nodes.len();
    let outcomes: Vec<Option<Result<OwnedReply, ClientError>>> = py.detach(|| {
        let deadline = Instant::now() + timeout;
        let (sender, receiver) = mpsc::channel();
        for (index, (client, block)) in nodes.into_iter().enumerate() {
            let sender = sender.clone();
            // Detached: a node still busy at the deadline finishes within its own socket
            // timeouts (each at most `timeout`) and its answer is dropped.
            std::thread::spawn(move || {
                let result = client.send(modifier1, modifier2, &block);
                let _ = sender.send((index, result));
            });
        }
        drop(sender);
        let mut outcomes: Vec<Option<_>> = (0..count).map(|_| None).collect();
        let mut pending = count;
        while pending > 0 {
            let left = deadline.saturating_duration_since(Instant::now());
            match receiver.recv_timeout(left) {
                Ok((index, result)) => {
                    outcomes[index] = Some(result);
                    pending -= 1;
                }
                Err(_) => break,
            }
        }
        outcomes
    });
    let mut replies = Vec::with_capacity(count);
    for (index, outcome) in outcomes.into_iter().enumerate() {
        let value = match outcome {
            Some(Ok(reply)) => match reply_object(py, modifier1, &reply) {
                Ok(value) => value,
                Err(err) => err.into_value(py).into_bound(py).into_any(),
            },
            Some(Err(err)) => errors::client_error(py, &err)
                .into_value(py)
                .into_bound(py)
                .into_any(),
            None => errors::timeout_error(py, "send_multi_message", &format!("node {index}"))
                .into_value(py)
                .into_bound(py)
                .into_any(),
        };
        replies.push(value);
    }
    PyTuple::new(py, replies)
}

/// `send_multicast_message(group, message, *, ttl=None, loop=None, interface=None)`.
///
/// Sends one datagram `4a LLLL 00 | message` (modifier1 74) to `group` (`ip:port`, a
/// multicast group, or a unix datagram socket path), as uWSGI 1.4 did. `ttl`, `loop` and
/// `interface` (a local IPv4 address) set the multicast options; by default the
/// kernel's (TTL 1, loop on). Returns `True`; failures raise `UwsgiConnectionError`.
#[pyfunction]
#[pyo3(signature = (group, message, *, ttl=None, r#loop=None, interface=None))]
pub fn send_multicast_message(
    py: Python<'_>,
    group: &Bound<'_, PyAny>,
    message: &Bound<'_, PyAny>,
    ttl: Option<u32>,
    r#loop: Option<bool>,
    interface: Option<&str>,
) -> PyResult<bool> {
    let instance = instance::current();
    let client = convert::client(
        address_of(group, "group")?,
        instance.settings.socket_timeout,
    );
    let message = bytes_of(message, "message")?;
    let multicast_interface = interface
        .map(|text| {
            text.parse::<Ipv4Addr>().map_err(|_| {
                errors::value_error(py, format!("interface {text:?} is not an IPv4 address"))
            })
        })
        .transpose()?;
    let options = DatagramOptions {
        multicast_ttl: ttl,
        multicast_loop: r#loop,
        multicast_interface,
        broadcast: false,
    };
    py.detach(|| client.send_datagram(Modifier1::from(74), 0, &message, &options))
        .map_err(|e| errors::client_error(py, &e))?;
    Ok(true)
}

/// `spool_remote(address, job, /, *, timeout=None)` (uwsgi-rs): enqueues a job on the
/// spooler of the server at `address` (modifier1 17, spec §7.5). `job` is a dict of
/// bytes/str keys and values. Returns `True` once the server acknowledged; a refusal
/// (`ff 0000 00`: no spooler there, or the file could not be written) raises
/// `RejectedError`.
#[pyfunction]
#[pyo3(signature = (address, job, /, *, timeout=None))]
pub fn spool_remote(
    py: Python<'_>,
    address: &Bound<'_, PyAny>,
    job: &Bound<'_, PyDict>,
    timeout: Option<f64>,
) -> PyResult<bool> {
    let instance = instance::current();
    let client = convert::client(
        address_of(address, "address")?,
        timeout_of(py, timeout, &instance)?,
    );
    let vars = vars_of(job, "job")?;
    py.detach(|| client.spool(vars.as_vars()))
        .map_err(|e| errors::client_error(py, &e))?;
    Ok(true)
}

/// The remote form of `signal(num, remote)` (spec §7.1): `None` once queued,
/// `RejectedError` (a `ValueError`, as uWSGI raises) when the node refused, and
/// `UwsgiConnectionError` (an `OSError`, uWSGI's `IOError`) when it cannot be reached.
pub fn remote_signal(
    py: Python<'_>,
    instance: &Instance,
    signum: u8,
    remote: &Bound<'_, PyAny>,
    timeout: Option<f64>,
) -> PyResult<()> {
    let address = address_of(remote, "remote")?;
    let shown = address.to_string();
    let client = convert::client(address, timeout_of(py, timeout, instance)?);
    match py.detach(|| client.signal(signum)) {
        Ok(()) => Ok(()),
        Err(ClientError::Rejected { .. }) => Err(errors::rejected_error(
            py,
            format!("node {shown} rejected signal {signum}"),
        )),
        Err(err) => Err(errors::client_error(py, &err)),
    }
}

/// Adds the functions to the module.
pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(send_message, m)?)?;
    m.add_function(wrap_pyfunction!(send_multi_message, m)?)?;
    m.add_function(wrap_pyfunction!(send_multicast_message, m)?)?;
    m.add_function(wrap_pyfunction!(spool_remote, m)?)?;
    Ok(())
}
