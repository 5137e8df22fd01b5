//! `fcgi(address, env, stdin_fd=-1, stdin_size=0, *, stdin=None, timeout=None)`: uWSGI
//! 1.4's FastCGI client (spec §5.7), which 2.0 dropped.
//!
//! FastCGI is not the uwsgi protocol, so its few records are encoded and decoded here
//! ([`encode_request`], [`Records`]), pure and unit-tested; the Python function sends one
//! request (role responder, request id 1, no keep-alive) with the GIL released and
//! returns an iterator over the `FCGI_STDOUT` data, as uWSGI 1.4 did.

use std::io::{self, Read, Write};
use std::time::Duration;

use pyo3::exceptions::PyTypeError;
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyDict, PyList};

use crate::convert::{address_of, bytes_of, timeout_of};
use crate::errors;
use crate::instance;

/// Record types used by a responder exchange.
pub mod record {
    /// FCGI_BEGIN_REQUEST.
    pub const BEGIN_REQUEST: u8 = 1;
    /// FCGI_END_REQUEST.
    pub const END_REQUEST: u8 = 3;
    /// FCGI_PARAMS.
    pub const PARAMS: u8 = 4;
    /// FCGI_STDIN.
    pub const STDIN: u8 = 5;
    /// FCGI_STDOUT.
    pub const STDOUT: u8 = 6;
    /// FCGI_STDERR.
    pub const STDERR: u8 = 7;
}

/// The request id of the one request per connection.
const REQUEST_ID: u16 = 1;

/// The most content one record carries.
const MAX_CONTENT: usize = 65535;

/// The most response bytes kept (as the uwsgi client's reply cap).
pub const MAX_RESPONSE: usize = 64 << 20;

/// Appends records of `kind` carrying `content` (split at 65535 bytes; none for empty
/// content: the caller writes the empty terminating record itself).
fn push_records(out: &mut Vec<u8>, kind: u8, content: &[u8]) {
    for chunk in content.chunks(MAX_CONTENT) {
        push_record(out, kind, chunk);
    }
}

fn push_record(out: &mut Vec<u8>, kind: u8, chunk: &[u8]) {
    // chunks() of MAX_CONTENT: the length fits 16 bits.
    let len = u16::try_from(chunk.len()).unwrap_or(u16::MAX);
    let padding = (8 - chunk.len() % 8) % 8;
    out.push(1);
    out.push(kind);
    out.extend_from_slice(&REQUEST_ID.to_be_bytes());
    out.extend_from_slice(&len.to_be_bytes());
    out.push(u8::try_from(padding).unwrap_or(0));
    out.push(0);
    out.extend_from_slice(chunk);
    out.extend(std::iter::repeat_n(0, padding));
}

/// A name-value pair length: one byte below 128, else four with the high bit set.
fn push_length(out: &mut Vec<u8>, len: usize) -> Result<(), String> {
    match u8::try_from(len) {
        Ok(small) if small < 128 => out.push(small),
        _ => {
            let len = u32::try_from(len)
                .ok()
                .filter(|l| *l < 1 << 31)
                .ok_or_else(|| format!("a FastCGI param of {len} bytes is too long"))?;
            out.extend_from_slice(&(len | 1 << 31).to_be_bytes());
        }
    }
    Ok(())
}

/// The bytes of a whole responder request: BEGIN_REQUEST, PARAMS, the empty PARAMS,
/// STDIN, the empty STDIN.
pub fn encode_request(params: &[(Vec<u8>, Vec<u8>)], stdin: &[u8]) -> Result<Vec<u8>, String> {
    let mut out = Vec::with_capacity(64 + stdin.len());
    // role 1 (responder), flags 0 (close the connection after the request)
    push_record(&mut out, record::BEGIN_REQUEST, &[0, 1, 0, 0, 0, 0, 0, 0]);
    let mut pairs = Vec::new();
    for (name, value) in params {
        push_length(&mut pairs, name.len())?;
        push_length(&mut pairs, value.len())?;
        pairs.extend_from_slice(name);
        pairs.extend_from_slice(value);
    }
    push_records(&mut out, record::PARAMS, &pairs);
    push_record(&mut out, record::PARAMS, &[]);
    push_records(&mut out, record::STDIN, stdin);
    push_record(&mut out, record::STDIN, &[]);
    Ok(out)
}

/// One decoded record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    /// Record type.
    pub kind: u8,
    /// Request id.
    pub request_id: u16,
    /// Content (padding dropped).
    pub content: Vec<u8>,
}

/// Splits a byte stream into records.
#[derive(Debug, Default)]
pub struct Records {
    buffer: Vec<u8>,
}

impl Records {
    /// Adds bytes read from the peer.
    pub fn feed(&mut self, bytes: &[u8]) {
        self.buffer.extend_from_slice(bytes);
    }

    /// The next complete record; `Ok(None)` until one is complete; an error for a
    /// version other than 1.
    pub fn next_record(&mut self) -> Result<Option<Record>, String> {
        let Some(header) = self.buffer.get(..8) else {
            return Ok(None);
        };
        if header[0] != 1 {
            return Err(format!("FastCGI record version {} (expected 1)", header[0]));
        }
        let kind = header[1];
        let request_id = u16::from_be_bytes([header[2], header[3]]);
        let len = usize::from(u16::from_be_bytes([header[4], header[5]]));
        let padding = usize::from(header[6]);
        if self.buffer.len() < 8 + len + padding {
            return Ok(None);
        }
        let content = self.buffer[8..8 + len].to_vec();
        self.buffer.drain(..8 + len + padding);
        Ok(Some(Record {
            kind,
            request_id,
            content,
        }))
    }

    /// Bytes not yet part of a complete record.
    pub fn pending(&self) -> usize {
        self.buffer.len()
    }
}

/// What the exchange produced.
#[derive(Debug, Default)]
struct Response {
    stdout: Vec<Vec<u8>>,
    stderr: Vec<u8>,
    ended: bool,
}

#[derive(Debug)]
enum Failure {
    Io(io::Error),
    Protocol(String),
}

fn exchange(
    address: &uwsgi_protocol::client::Address,
    request: &[u8],
    timeout: Duration,
) -> Result<Response, Failure> {
    let socket = crate::sockets::open_stream(address, timeout).map_err(Failure::Io)?;
    socket
        .set_write_timeout(Some(timeout))
        .map_err(Failure::Io)?;
    socket
        .set_read_timeout(Some(timeout))
        .map_err(Failure::Io)?;
    (&socket).write_all(request).map_err(Failure::Io)?;
    let mut records = Records::default();
    let mut response = Response::default();
    let mut total = 0;
    let mut buf = vec![0; 64 * 1024];
    loop {
        while let Some(record) = records.next_record().map_err(Failure::Protocol)? {
            match record.kind {
                record::STDOUT if !record.content.is_empty() => {
                    total += record.content.len();
                    response.stdout.push(record.content);
                }
                record::STDERR => response.stderr.extend_from_slice(&record.content),
                record::END_REQUEST => {
                    response.ended = true;
                    return Ok(response);
                }
                _ => {}
            }
        }
        if total > MAX_RESPONSE {
            return Err(Failure::Protocol(format!(
                "FastCGI response over {MAX_RESPONSE} bytes"
            )));
        }
        let n = loop {
            match (&socket).read(&mut buf) {
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                other => break other.map_err(Failure::Io)?,
            }
        };
        if n == 0 {
            if records.pending() > 0 {
                return Err(Failure::Protocol(
                    "the FastCGI response ends inside a record".into(),
                ));
            }
            return Ok(response);
        }
        records.feed(&buf[..n]);
    }
}

/// `fcgi(address, env, stdin_fd=-1, stdin_size=0, *, stdin=None, timeout=None)`: sends
/// one FastCGI responder request with `env` as its params (bytes/str keys and values)
/// and the body — `stdin` bytes, or `stdin_size` bytes read from file descriptor
/// `stdin_fd` — and returns an iterator over the response's `FCGI_STDOUT` data (the
/// CGI headers and body). The application's `FCGI_STDERR` goes to the `uwsgi` logger.
#[pyfunction]
#[pyo3(
    signature = (address, env, stdin_fd=-1, stdin_size=0, *, stdin=None, timeout=None),
    text_signature = "(address, env, stdin_fd=-1, stdin_size=0, *, stdin=None, timeout=None)"
)]
#[allow(clippy::too_many_arguments)]
pub fn fcgi<'py>(
    py: Python<'py>,
    address: &Bound<'py, PyAny>,
    env: &Bound<'py, PyAny>,
    stdin_fd: i32,
    stdin_size: usize,
    stdin: Option<&Bound<'py, PyAny>>,
    timeout: Option<f64>,
) -> PyResult<Bound<'py, PyAny>> {
    let instance = instance::current();
    let timeout = timeout_of(py, timeout, &instance)?;
    let address = address_of(address, "address")?;
    let env = env
        .cast::<PyDict>()
        .map_err(|_| PyTypeError::new_err("fcgi: env must be a dict"))?;
    let mut params = Vec::with_capacity(env.len());
    for (key, value) in env.iter() {
        params.push((bytes_of(&key, "env keys")?, bytes_of(&value, "env values")?));
    }
    let body = match stdin {
        Some(stdin) if !stdin.is_none() => bytes_of(stdin, "stdin")?,
        _ if stdin_fd >= 0 && stdin_size > 0 => {
            crate::client::read_fd(py, stdin_fd, stdin_size, timeout)?
        }
        _ => Vec::new(),
    };
    let request = encode_request(&params, &body).map_err(|why| errors::value_error(py, why))?;
    let peer = address.to_string();
    let response = py
        .detach(|| exchange(&address, &request, timeout))
        .map_err(|failure| match failure {
            Failure::Io(e) => errors::connection_error(py, &e, &peer),
            Failure::Protocol(why) => errors::ProtocolError::new_err(format!("{peer}: {why}")),
        })?;
    if !response.stderr.is_empty() {
        crate::signals::log_warning(
            py,
            &format!(
                "fcgi {peer} stderr: {}",
                String::from_utf8_lossy(&response.stderr)
            ),
        )?;
    }
    if !response.ended && response.stdout.is_empty() {
        return Err(errors::client_error(
            py,
            &uwsgi_protocol::client::Error::NoReply { address },
        ));
    }
    let list = PyList::new(py, response.stdout.iter().map(|c| PyBytes::new(py, c)))?;
    Ok(list.try_iter()?.into_any())
}

/// Adds `fcgi` to the module.
pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(fcgi, m)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_layout() {
        let request = encode_request(&[(b"A".to_vec(), b"bc".to_vec())], b"").unwrap();
        // BEGIN_REQUEST: version 1, type 1, id 1, length 8, no padding, role 1
        assert_eq!(
            &request[..16],
            &[1, 1, 0, 1, 0, 8, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0]
        );
        // PARAMS: 5 bytes of content padded to 8
        assert_eq!(&request[16..24], &[1, 4, 0, 1, 0, 5, 3, 0]);
        assert_eq!(&request[24..32], &[1, 2, b'A', b'b', b'c', 0, 0, 0]);
        // empty PARAMS, empty STDIN
        assert_eq!(
            &request[32..],
            &[1, 4, 0, 1, 0, 0, 0, 0, 1, 5, 0, 1, 0, 0, 0, 0]
        );
    }

    #[test]
    fn long_names_use_four_byte_lengths() {
        let name = vec![b'n'; 200];
        let request = encode_request(&[(name, Vec::new())], b"").unwrap();
        assert_eq!(&request[24..29], &[0x80, 0, 0, 200, 0]);
    }

    #[test]
    fn big_bodies_are_split_into_records() {
        let body = vec![7u8; 70_000];
        let request = encode_request(&[], &body).unwrap();
        let mut records = Records::default();
        records.feed(&request);
        let mut stdin = Vec::new();
        let mut kinds = Vec::new();
        while let Some(record) = records.next_record().unwrap() {
            kinds.push(record.kind);
            assert_eq!(record.request_id, 1);
            if record.kind == record::STDIN {
                stdin.extend(record.content);
            }
        }
        assert_eq!(stdin, body);
        assert_eq!(kinds, [1, 4, 5, 5, 5]);
        assert_eq!(records.pending(), 0);
    }

    #[test]
    fn records_wait_for_complete_input() {
        let mut bytes = Vec::new();
        push_record(&mut bytes, record::STDOUT, b"hello");
        let mut records = Records::default();
        records.feed(&bytes[..10]);
        assert_eq!(records.next_record(), Ok(None));
        records.feed(&bytes[10..]);
        let record = records.next_record().unwrap().unwrap();
        assert_eq!(record.content, b"hello");
        records.feed(&[2, 6, 0, 1, 0, 0, 0, 0]);
        assert!(records.next_record().is_err());
    }
}
