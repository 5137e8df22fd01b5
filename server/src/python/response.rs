//! `start_response`, the `write()` callable it returns, and sending what the
//! application returns (PEP 3333): the head goes out with the first non-empty block
//! (or at the end), blocks must be `bytes`, the iterable's `close()` is always called,
//! and every socket write runs with the GIL released.

use std::io;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use pyo3::exceptions::{PyAssertionError, PyTypeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyString, PyTuple};

use crate::app::{Output, Status, write_head};

use super::file_wrapper::FileWrapper;

/// The response head as the application set it, and what was sent.
#[derive(Default)]
pub struct Head {
    status: Option<String>,
    headers: Vec<(String, Vec<u8>)>,
    /// The request's `SERVER_PROTOCOL`, for the status line.
    protocol: Vec<u8>,
    /// The head went out: `start_response` may then only re-raise.
    sent: bool,
    /// What the log line reports about the head once sent.
    code: u16,
    header_count: usize,
    head_bytes: usize,
    /// Bytes given to `write()` and not sent yet (when there is no `direct` writer).
    pending: Vec<u8>,
    /// `write()`'s own handle on the connection for the time of the request (a
    /// duplicate of the socket), so written bytes go out at once; dropped (closed) when
    /// the request ends, whoever keeps the `write` callable.
    direct: Option<Arc<std::fs::File>>,
    /// Body bytes `write()` sent through `direct`.
    direct_bytes: usize,
    /// The request is over: `write()` no longer reaches the connection.
    finished: bool,
}

impl std::fmt::Debug for Head {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Head")
            .field("status", &self.status)
            .field("sent", &self.sent)
            .field("pending", &self.pending.len())
            .field("direct", &self.direct.is_some())
            .finish_non_exhaustive()
    }
}

impl Head {
    /// The head's bytes when it was not sent yet (and marks it sent); `None` when it
    /// already went out. Refuses an invalid status or header before anything is sent.
    fn take_head(&mut self) -> Result<Option<Vec<u8>>, Failure> {
        if self.sent {
            return Ok(None);
        }
        let Some(status) = self.status.clone() else {
            return Err(Failure::App(PyAssertionError::new_err(
                "the application did not call start_response before returning a body",
            )));
        };
        let code = status
            .get(..3)
            .filter(|c| c.bytes().all(|b| b.is_ascii_digit()))
            .and_then(|c| c.parse::<u16>().ok())
            .filter(|_| status.len() == 3 || status.as_bytes()[3] == b' ')
            .ok_or_else(|| Failure::BadHead(format!("invalid status {status:?}")))?;
        let headers: Vec<(&str, &[u8])> = self
            .headers
            .iter()
            .map(|(n, v)| (n.as_str(), v.as_slice()))
            .collect();
        let mut bytes = Vec::with_capacity(256);
        let head_bytes = write_head(&mut bytes, &self.protocol, &status, &headers)
            .map_err(|e| Failure::BadHead(e.to_string()))?;
        self.code = code;
        self.header_count = headers.len();
        self.head_bytes = head_bytes;
        self.sent = true;
        Ok(Some(bytes))
    }
}

fn lock(head: &Mutex<Head>) -> MutexGuard<'_, Head> {
    head.lock().unwrap_or_else(PoisonError::into_inner)
}

fn header_text(value: &Bound<'_, PyAny>, what: &str) -> PyResult<Vec<u8>> {
    if let Ok(text) = value.cast::<PyString>() {
        let text = text.to_str()?;
        return text
            .chars()
            .map(|c| u8::try_from(u32::from(c)).ok())
            .collect::<Option<Vec<u8>>>()
            .ok_or_else(|| {
                PyValueError::new_err(format!("{what} {text:?} is not latin-1 encodable"))
            });
    }
    if let Ok(bytes) = value.cast::<PyBytes>() {
        return Ok(bytes.as_bytes().to_vec());
    }
    Err(PyTypeError::new_err(format!(
        "{what} must be str, not {}",
        value.get_type().name()?
    )))
}

/// The `start_response` callable of one request.
#[derive(Debug)]
#[pyclass(module = "uwsgi_rs", name = "StartResponse")]
pub struct StartResponse {
    head: Arc<Mutex<Head>>,
}

#[pymethods]
impl StartResponse {
    #[pyo3(signature = (status, headers, exc_info=None))]
    fn __call__(
        &self,
        status: &Bound<'_, PyAny>,
        headers: &Bound<'_, PyAny>,
        exc_info: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<Writer> {
        let exc_info = exc_info.filter(|e| !e.is_none());
        if let Some(exc_info) = exc_info {
            if lock(&self.head).sent {
                // PEP 3333: too late to change the head, the error goes on.
                let value = exc_info.get_item(1)?;
                let traceback = exc_info.get_item(2)?;
                let value = value.call_method1("with_traceback", (traceback,))?;
                return Err(PyErr::from_value(value));
            }
        } else if lock(&self.head).status.is_some() {
            return Err(PyAssertionError::new_err(
                "start_response was already called (pass exc_info to replace the head)",
            ));
        }
        let status = status
            .cast::<PyString>()
            .map_err(|_| PyTypeError::new_err("the status must be a str such as '200 OK'"))?
            .to_str()?
            .to_owned();
        let mut list = Vec::new();
        for header in headers.try_iter()? {
            let header = header?;
            let pair = header
                .cast::<PyTuple>()
                .map_err(|_| PyTypeError::new_err("each header must be a (name, value) tuple"))?;
            if pair.len() != 2 {
                return Err(PyTypeError::new_err(
                    "each header must be a (name, value) tuple",
                ));
            }
            let name = header_text(&pair.get_item(0)?, "header name")?;
            let value = header_text(&pair.get_item(1)?, "header value")?;
            list.push((String::from_utf8_lossy(&name).into_owned(), value));
        }
        let mut head = lock(&self.head);
        head.status = Some(status);
        head.headers = list;
        Ok(Writer {
            head: Arc::clone(&self.head),
        })
    }
}

/// The `write(data)` callable `start_response` returns: on a socket the bytes (after the
/// head, the first time) go out at once, with the GIL released; elsewhere they are
/// queued and go out when control comes back to the host, before the next block.
#[derive(Debug)]
#[pyclass(module = "uwsgi_rs", name = "Write")]
pub struct Writer {
    head: Arc<Mutex<Head>>,
}

#[pymethods]
impl Writer {
    fn __call__(&self, py: Python<'_>, data: &Bound<'_, PyAny>) -> PyResult<()> {
        let data = data.cast::<PyBytes>().map_err(|_| {
            PyTypeError::new_err(format!(
                "write() takes bytes, not {}",
                data.get_type()
                    .name()
                    .map_or_else(|_| "?".to_owned(), |n| n.to_string())
            ))
        })?;
        let mut head = lock(&self.head);
        if head.status.is_none() {
            return Err(PyAssertionError::new_err("write() before start_response"));
        }
        if is_disconnected() {
            // uwsgi.disconnect() closed the connection: the bytes go nowhere.
            return Ok(());
        }
        let Some(direct) = head.direct.take() else {
            head.pending.extend_from_slice(data.as_bytes());
            return Ok(());
        };
        let mut bytes = match head.take_head() {
            Ok(bytes) => bytes.unwrap_or_default(),
            Err(failure) => {
                head.direct = Some(direct);
                return Err(match failure {
                    Failure::App(err) => err,
                    Failure::BadHead(why) => PyValueError::new_err(why),
                    Failure::Io(err) => err.into(),
                });
            }
        };
        let body = head.pending.len() + data.as_bytes().len();
        bytes.append(&mut head.pending);
        bytes.extend_from_slice(data.as_bytes());
        drop(head);
        let result = py.detach(|| {
            use std::io::Write;
            (&*direct).write_all(&bytes)
        });
        let mut head = lock(&self.head);
        head.direct_bytes += body;
        // Not given back after the request ended (the host dropped its handle then).
        if !head.finished {
            head.direct = Some(direct);
        }
        result.map_err(PyErr::from)
    }
}

thread_local! {
    /// `uwsgi.disconnect()` was called during this thread's current request.
    static DISCONNECTED: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// Whether the current request's connection was closed by `uwsgi.disconnect()`.
pub fn is_disconnected() -> bool {
    DISCONNECTED.with(std::cell::Cell::get)
}

/// Marks (or, at a request's start, clears) the current request as disconnected.
pub fn set_disconnected(value: bool) {
    DISCONNECTED.with(|flag| flag.set(value));
}

/// Why a response failed.
#[derive(Debug)]
pub enum Failure {
    /// The application raised, or broke a PEP 3333 rule.
    App(PyErr),
    /// A header or the status that cannot be sent.
    BadHead(String),
    /// The connection failed.
    Io(io::Error),
}

impl From<PyErr> for Failure {
    fn from(err: PyErr) -> Self {
        Failure::App(err)
    }
}

impl Drop for Responder<'_> {
    /// However the request ended, `write()` loses its handle on the connection here, so
    /// a `write` callable the application keeps cannot hold the socket open.
    fn drop(&mut self) {
        let mut head = lock(&self.head);
        head.direct = None;
        head.finished = true;
    }
}

/// One request's response: the head, the output, and the numbers for the log.
pub struct Responder<'o> {
    head: Arc<Mutex<Head>>,
    out: &'o mut dyn Output,
    protocol: Vec<u8>,
    /// What was sent.
    pub status: Status,
}

impl<'o> Responder<'o> {
    /// `connection` is the request's own handle on the socket, for `write()`.
    pub fn new(
        out: &'o mut dyn Output,
        protocol: &[u8],
        connection: Option<Arc<std::fs::File>>,
    ) -> Self {
        let head = Head {
            protocol: protocol.to_vec(),
            direct: connection,
            ..Head::default()
        };
        Responder {
            head: Arc::new(Mutex::new(head)),
            out,
            protocol: protocol.to_vec(),
            status: Status {
                code: 0,
                headers: 0,
                head_bytes: 0,
                body_bytes: 0,
            },
        }
    }

    /// The `start_response` object for the application.
    pub fn start_response(&self) -> StartResponse {
        StartResponse {
            head: Arc::clone(&self.head),
        }
    }

    /// Whether the head went out.
    pub fn sent(&self) -> bool {
        lock(&self.head).sent
    }

    /// What was sent, for the log line; ends `write()`'s own handle on the connection.
    pub fn finish(&mut self) -> Status {
        let mut head = lock(&self.head);
        head.direct = None;
        head.finished = true;
        let mut status = self.status;
        if head.sent && status.code == 0 {
            status.code = head.code;
            status.headers = head.header_count;
            status.head_bytes = head.head_bytes;
        }
        status.body_bytes += head.direct_bytes;
        status
    }

    /// The head (if not sent yet) and `body`, in one write without the GIL.
    fn send(&mut self, py: Python<'_>, body: &[u8]) -> Result<(), Failure> {
        if is_disconnected() {
            // Nothing more goes out; the head counts as sent (no 500 after this).
            let mut head = lock(&self.head);
            head.sent = true;
            head.pending.clear();
            return Ok(());
        }
        let mut bytes = Vec::new();
        {
            let mut head = lock(&self.head);
            if let Some(head_bytes) = head.take_head()? {
                bytes = head_bytes;
            }
            let pending = std::mem::take(&mut head.pending);
            self.status.body_bytes += pending.len();
            bytes.extend_from_slice(&pending);
        }
        self.status.body_bytes += body.len();
        let out = &mut *self.out;
        if bytes.is_empty() {
            py.detach(|| out.write_all(body)).map_err(Failure::Io)
        } else {
            bytes.extend_from_slice(body);
            py.detach(|| out.write_all(&bytes)).map_err(Failure::Io)
        }
    }

    /// Sends what the application returned, then calls its `close()` whatever
    /// happened.
    pub fn consume(&mut self, py: Python<'_>, result: &Bound<'_, PyAny>) -> Result<(), Failure> {
        let sent = self.send_result(py, result);
        let closed = match result.getattr("close") {
            Ok(close) => close.call0().map(drop),
            Err(_) => Ok(()),
        };
        sent?;
        closed.map_err(Failure::App)
    }

    fn send_result(&mut self, py: Python<'_>, result: &Bound<'_, PyAny>) -> Result<(), Failure> {
        if let Ok(wrapper) = result.cast::<FileWrapper>()
            && !is_disconnected()
            && let Some((file, offset, len)) = wrapper.borrow().sendfile_source(py)
        {
            self.send(py, b"")?;
            let out = &mut *self.out;
            let sent = py
                .detach(|| out.send_file(&file, offset, len))
                .map_err(Failure::Io)?;
            self.status.body_bytes += usize::try_from(sent).unwrap_or(usize::MAX);
            return Ok(());
        }
        // A bytes object alone is an iterable of ints: refuse it as uWSGI refuses
        // anything but an iterable of bytes (and PEP 3333 asks for a list of bytes).
        if result.is_instance_of::<PyBytes>() || result.is_instance_of::<PyString>() {
            return Err(Failure::App(PyTypeError::new_err(
                "the application must return an iterable of bytes, not a bare bytes/str",
            )));
        }
        for item in result.try_iter()? {
            let item = item?;
            let Ok(block) = item.cast::<PyBytes>() else {
                return Err(Failure::App(PyTypeError::new_err(format!(
                    "response body blocks must be bytes, not {}",
                    item.get_type().name()?
                ))));
            };
            if !block.as_bytes().is_empty() {
                self.send(py, block.as_bytes())?;
            } else if !lock(&self.head).pending.is_empty() {
                self.send(py, b"")?;
            }
        }
        self.send(py, b"")
    }

    /// A plain 500 response, when nothing was sent yet.
    pub fn internal_error(&mut self, py: Python<'_>) -> io::Result<()> {
        if is_disconnected() {
            return Ok(());
        }
        let mut bytes = Vec::new();
        let body = b"Internal Server Error\n";
        let head_bytes = write_head(
            &mut bytes,
            &self.protocol,
            "500 Internal Server Error",
            &[("Content-Type", b"text/plain")],
        )?;
        bytes.extend_from_slice(body);
        {
            let mut head = lock(&self.head);
            head.sent = true;
            head.direct = None;
        }
        self.status = Status {
            code: 500,
            headers: 1,
            head_bytes,
            body_bytes: body.len(),
        };
        let out = &mut *self.out;
        py.detach(|| out.write_all(&bytes))
    }
}
