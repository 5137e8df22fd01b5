//! `start_response`, the `write()` callable it returns, and sending what the
//! application returns (PEP 3333): the head goes out with the first non-empty block
//! (or at the end), blocks must be `bytes`, the iterable's `close()` is always called,
//! and every socket write runs with the GIL released.

use std::io;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use pyo3::exceptions::{PyAssertionError, PyTypeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyList, PyString, PyTuple};

use crate::app::{Output, SharedConnection, Status, write_head};

use super::current::{self, Installed};
use super::file_wrapper::FileWrapper;

/// The response head as the application set it, and what was sent.
#[derive(Default)]
pub struct Head {
    status: Option<String>,
    /// The headers as the application gave them (latin-1 bytes), one after the other
    /// in `header_bytes`: the end of each name and of each value.
    header_bytes: Vec<u8>,
    header_ends: Vec<(usize, usize)>,
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
    /// `write()`'s own handle on the connection for the time of the request, so
    /// written bytes go out at once; dropped when the request ends, whoever keeps the
    /// `write` callable.
    direct: Option<SharedConnection>,
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
        let mut start = 0;
        let names: Vec<(std::borrow::Cow<'_, str>, &[u8])> = self
            .header_ends
            .iter()
            .map(|&(name_end, value_end)| {
                let name = String::from_utf8_lossy(&self.header_bytes[start..name_end]);
                let value = &self.header_bytes[name_end..value_end];
                start = value_end;
                (name, value)
            })
            .collect();
        let headers: Vec<(&str, &[u8])> = names.iter().map(|(n, v)| (&**n, *v)).collect();
        let mut bytes = Vec::with_capacity(64 + self.header_bytes.len() + 4 * headers.len());
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

/// Appends a header name or value (a latin-1 `str`, or `bytes`) to `out`.
fn header_text(value: &Bound<'_, PyAny>, what: &str, out: &mut Vec<u8>) -> PyResult<()> {
    if let Ok(text) = value.cast::<PyString>() {
        let text = text.to_str()?;
        if text.is_ascii() {
            out.extend_from_slice(text.as_bytes());
            return Ok(());
        }
        for c in text.chars() {
            let byte = u8::try_from(u32::from(c)).map_err(|_| {
                PyValueError::new_err(format!("{what} {text:?} is not latin-1 encodable"))
            })?;
            out.push(byte);
        }
        return Ok(());
    }
    if let Ok(bytes) = value.cast::<PyBytes>() {
        out.extend_from_slice(bytes.as_bytes());
        return Ok(());
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
        let mut bytes = Vec::with_capacity(256);
        let mut ends = Vec::with_capacity(8);
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
            header_text(&pair.get_item(0)?, "header name", &mut bytes)?;
            let name_end = bytes.len();
            header_text(&pair.get_item(1)?, "header value", &mut bytes)?;
            ends.push((name_end, bytes.len()));
        }
        let mut head = lock(&self.head);
        head.status = Some(status);
        head.header_bytes = bytes;
        head.header_ends = ends;
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
            let fd = direct.as_fd();
            let socket = socket2::SockRef::from(&fd);
            (&*socket).write_all(&bytes)
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

/// Blocks of a list or tuple response sent in one write at most.
const GROUP_BLOCKS: usize = 64;
/// Bytes of a list or tuple response after which a group is sent.
const GROUP_BYTES: usize = 256 * 1024;

fn not_bytes(item: &Bound<'_, PyAny>) -> PyResult<PyErr> {
    Ok(PyTypeError::new_err(format!(
        "response body blocks must be bytes, not {}",
        item.get_type().name()?
    )))
}

/// `write_all` for a list of slices: `write_vectored` until everything went out.
fn write_all_vectored(out: &mut dyn Output, mut parts: &mut [io::IoSlice<'_>]) -> io::Result<()> {
    while !parts.is_empty() {
        match out.write_vectored(parts) {
            Ok(0) => {
                return Err(io::Error::new(
                    io::ErrorKind::WriteZero,
                    "failed to write the whole response",
                ));
            }
            Ok(n) => io::IoSlice::advance_slices(&mut parts, n),
            Err(err) if err.kind() == io::ErrorKind::Interrupted => {}
            Err(err) => return Err(err),
        }
    }
    Ok(())
}

thread_local! {
    /// `uwsgi.disconnect()` was called during this thread's current request.
    static DISCONNECTED: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
    /// The head of this thread's current response, for the module's request functions.
    static HEAD: std::cell::RefCell<Option<Arc<Mutex<Head>>>> =
        const { std::cell::RefCell::new(None) };
}

/// Runs `f` on the current request's output; an error outside a request.
fn output<R>(f: impl FnOnce(&mut dyn Output) -> io::Result<R>) -> io::Result<R> {
    current::with_output(f).unwrap_or_else(|| {
        Err(io::Error::other(
            "the request's connection is not available here",
        ))
    })
}

fn current_head() -> io::Result<Arc<Mutex<Head>>> {
    HEAD.with(|slot| slot.borrow().clone())
        .ok_or_else(|| io::Error::other("no request is being served"))
}

fn head_error(failure: Failure) -> io::Error {
    match failure {
        Failure::Io(err) => err,
        Failure::App(err) => io::Error::other(err.to_string()),
        Failure::BadHead(why) => io::Error::new(io::ErrorKind::InvalidData, why),
    }
}

/// Sends, right now, the current response's head if it was not sent yet, what
/// `write()` queued, then `body` (the module's `sendfile`, websocket frames, relayed
/// bytes). Called without the GIL.
pub fn send_now(body: &[u8]) -> io::Result<()> {
    if is_disconnected() {
        return Ok(());
    }
    let head = current_head()?;
    let mut bytes = {
        let mut head = lock(&head);
        let mut bytes = head.take_head().map_err(head_error)?.unwrap_or_default();
        let pending = std::mem::take(&mut head.pending);
        head.direct_bytes += pending.len() + body.len();
        bytes.extend_from_slice(&pending);
        bytes
    };
    output(|out| {
        if bytes.is_empty() {
            out.write_all(body)?;
        } else if body.len() < 64 * 1024 {
            bytes.extend_from_slice(body);
            out.write_all(&bytes)?;
        } else {
            out.write_all(&bytes)?;
            out.write_all(body)?;
        }
        out.flush()
    })
}

/// Sends the head (if not sent yet), then `len` bytes of `file` from `offset` the way
/// `wsgi.file_wrapper` responses go (`sendfile(2)` where the output can). Called
/// without the GIL. Returns the bytes of the file sent.
pub fn send_file_now(file: &std::fs::File, offset: u64, len: u64) -> io::Result<u64> {
    send_now(&[])?;
    if is_disconnected() {
        return Ok(0);
    }
    let sent = output(|out| out.send_file(file, offset, len))?;
    let head = current_head()?;
    lock(&head).direct_bytes += usize::try_from(sent).unwrap_or(usize::MAX);
    Ok(sent)
}

/// Replaces the current response's head by `status` and `headers` and sends it now
/// (the websocket handshake); an error when a head already went out.
pub fn send_head_now(status: &str, headers: &[(&str, &[u8])]) -> io::Result<()> {
    let head = current_head()?;
    {
        let mut head = lock(&head);
        if head.sent {
            return Err(io::Error::other("the response head was already sent"));
        }
        head.status = Some(status.to_owned());
        head.header_bytes.clear();
        head.header_ends.clear();
        for (name, value) in headers {
            head.header_bytes.extend_from_slice(name.as_bytes());
            let name_end = head.header_bytes.len();
            head.header_bytes.extend_from_slice(value);
            let end = head.header_bytes.len();
            head.header_ends.push((name_end, end));
        }
    }
    send_now(&[])
}

/// Writes `bytes` to the client as they are, past the response head (a relayed
/// response, whose own head is among them). Called without the GIL.
pub fn write_raw(bytes: &[u8]) -> io::Result<()> {
    if is_disconnected() {
        return Ok(());
    }
    output(|out| {
        out.write_all(bytes)?;
        out.flush()
    })?;
    if let Ok(head) = current_head() {
        lock(&head).direct_bytes += bytes.len();
    }
    Ok(())
}

/// Counts the current response as answered with `code` by bytes the host wrote itself
/// (a relayed response): nothing more of the application's head goes out.
pub fn mark_sent(code: u16, body_bytes: usize) {
    if let Ok(head) = current_head() {
        let mut head = lock(&head);
        if !head.sent {
            head.sent = true;
            head.code = code;
        }
        head.pending.clear();
        head.direct_bytes += body_bytes;
    }
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
        HEAD.with(|slot| slot.borrow_mut().take());
    }
}

/// One request's response: the head, the output, and the numbers for the log.
pub struct Responder<'o> {
    head: Arc<Mutex<Head>>,
    /// The output, lent to [`current`] for the time of the request.
    _out: Installed<'o>,
    protocol: Vec<u8>,
    /// Whether what the socket takes at once is written with the GIL held (see
    /// [`Responder::write_parts`]).
    quick_writes: bool,
    /// What was sent.
    pub status: Status,
}

impl<'o> Responder<'o> {
    /// `connection` is the request's own handle on the socket, for `write()`;
    /// `quick_writes` lets the response go out without releasing the GIL when the
    /// socket takes it at once (for a worker thread that is the only one running
    /// requests: no other request waits for the GIL meanwhile).
    pub fn new(
        out: &'o mut dyn Output,
        protocol: &[u8],
        connection: Option<SharedConnection>,
        quick_writes: bool,
    ) -> Self {
        let head = Head {
            protocol: protocol.to_vec(),
            direct: connection,
            ..Head::default()
        };
        let head = Arc::new(Mutex::new(head));
        HEAD.with(|slot| *slot.borrow_mut() = Some(Arc::clone(&head)));
        Responder {
            head,
            _out: current::install(out),
            protocol: protocol.to_vec(),
            quick_writes,
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

    /// The head (if not sent yet), what `write()` queued, and `blocks`, in one
    /// vectored write (see [`Responder::write_parts`]). Nothing to send writes nothing.
    fn send(&mut self, py: Python<'_>, blocks: &[&[u8]]) -> Result<(), Failure> {
        if is_disconnected() {
            // Nothing more goes out; the head counts as sent (no 500 after this).
            let mut head = lock(&self.head);
            head.sent = true;
            head.pending.clear();
            return Ok(());
        }
        let (head_bytes, pending) = {
            let mut head = lock(&self.head);
            let head_bytes = head.take_head()?.unwrap_or_default();
            (head_bytes, std::mem::take(&mut head.pending))
        };
        self.status.body_bytes += pending.len();
        let mut parts: Vec<&[u8]> = Vec::with_capacity(blocks.len() + 2);
        for part in [&head_bytes[..], &pending[..]]
            .into_iter()
            .chain(blocks.iter().copied())
        {
            if !part.is_empty() {
                parts.push(part);
            }
        }
        for block in blocks {
            self.status.body_bytes += block.len();
        }
        if parts.is_empty() {
            return Ok(());
        }
        self.write_parts(py, &parts).map_err(Failure::Io)
    }

    /// Writes every part. With `quick_writes`, what the socket takes at once goes out
    /// with the GIL held (a non-blocking send: nothing waits); whatever is left, and
    /// every write otherwise, goes out with the GIL released.
    fn write_parts(&mut self, py: Python<'_>, parts: &[&[u8]]) -> io::Result<()> {
        let mut slices: Vec<io::IoSlice<'_>> = parts.iter().map(|p| io::IoSlice::new(p)).collect();
        let total: usize = parts.iter().map(|p| p.len()).sum();
        let mut done = 0;
        if self.quick_writes {
            done = output(|out| out.write_now(&slices))?;
            if done >= total {
                return Ok(());
            }
        }
        py.detach(move || {
            let mut rest = &mut slices[..];
            io::IoSlice::advance_slices(&mut rest, done);
            output(|out| write_all_vectored(out, rest))
        })
    }

    /// Sends what the application returned, then calls its `close()` whatever
    /// happened.
    pub fn consume(&mut self, py: Python<'_>, result: &Bound<'_, PyAny>) -> Result<(), Failure> {
        // The common answer, a list (or tuple) of bytes: its blocks go out together,
        // and it has no `close()` to look up (those exact types have none).
        if let Ok(list) = result.cast_exact::<PyList>() {
            return self.send_blocks(py, list.iter());
        }
        if let Ok(tuple) = result.cast_exact::<PyTuple>() {
            return self.send_blocks(py, tuple.iter());
        }
        let sent = self.send_result(py, result);
        let closed = match result.getattr(pyo3::intern!(py, "close")) {
            Ok(close) => close.call0().map(drop),
            Err(_) => Ok(()),
        };
        sent?;
        closed.map_err(Failure::App)
    }

    /// Sends the blocks of a list or tuple in as few writes as the sizes allow (a
    /// group holds at most [`GROUP_BLOCKS`] blocks or about [`GROUP_BYTES`] bytes). A
    /// block that is not bytes fails the response after the blocks before it went
    /// out, as when they are sent one by one.
    fn send_blocks<'py>(
        &mut self,
        py: Python<'py>,
        items: impl Iterator<Item = Bound<'py, PyAny>>,
    ) -> Result<(), Failure> {
        let mut group: Vec<Bound<'py, PyBytes>> = Vec::new();
        let mut group_bytes = 0;
        let mut refused = None;
        for item in items {
            let block = match item.cast_into::<PyBytes>() {
                Ok(block) => block,
                Err(err) => {
                    refused = Some(not_bytes(&err.into_inner())?);
                    break;
                }
            };
            let len = block.as_bytes().len();
            if len == 0 {
                continue;
            }
            group_bytes += len;
            group.push(block);
            if group.len() >= GROUP_BLOCKS || group_bytes >= GROUP_BYTES {
                self.send_group(py, &group)?;
                group.clear();
                group_bytes = 0;
            }
        }
        match refused {
            // The blocks before the refused one went out (and the head with them); when
            // there were none, nothing was sent and the failure is a 500.
            Some(err) => {
                if !group.is_empty() {
                    self.send_group(py, &group)?;
                }
                Err(Failure::App(err))
            }
            None => self.send_group(py, &group),
        }
    }

    fn send_group(&mut self, py: Python<'_>, group: &[Bound<'_, PyBytes>]) -> Result<(), Failure> {
        let blocks: Vec<&[u8]> = group.iter().map(|b| b.as_bytes()).collect();
        self.send(py, &blocks)
    }

    fn send_result(&mut self, py: Python<'_>, result: &Bound<'_, PyAny>) -> Result<(), Failure> {
        if let Ok(wrapper) = result.cast::<FileWrapper>()
            && !is_disconnected()
            && let Some((file, offset, len)) = wrapper.borrow().sendfile_source(py)
        {
            self.send(py, &[])?;
            let sent = py
                .detach(|| output(|out| out.send_file(&file, offset, len)))
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
                return Err(Failure::App(not_bytes(&item)?));
            };
            if !block.as_bytes().is_empty() {
                self.send(py, &[block.as_bytes()])?;
            } else if !lock(&self.head).pending.is_empty() {
                self.send(py, &[])?;
            }
        }
        self.send(py, &[])
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
        py.detach(|| output(|out| out.write_all(&bytes)))
    }
}
