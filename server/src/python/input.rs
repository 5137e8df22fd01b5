//! `wsgi.input`: the request body, served to the application by the file-like methods
//! PEP 3333 asks for: `read(size)`, `readline(size)`, `readlines(hint)` and iteration.
//!
//! Where the bytes come from ([`Source`]):
//!
//! * small bodies (up to [`EAGER_LIMIT`]) are read before the application runs: one
//!   read, no thread;
//! * larger ones are **streamed**: a helper thread scoped to the request owns the
//!   connection's body reader and answers the application's reads ([`Remote`], [`pump`])
//!   while the application runs, with the GIL released during each wait;
//! * with `--post-buffering N` (uWSGI's option) the whole body is read first, in memory
//!   up to N bytes, else in an unlinked temporary file.

use std::fs::File;
use std::io::{self, BufRead, BufReader, Cursor, Read, Seek};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender};
use std::time::Duration;

use pyo3::exceptions::PyIOError;
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyList};

/// Bodies up to this size are read before the application runs (without
/// `--post-buffering`); larger ones are streamed.
pub const EAGER_LIMIT: u64 = 64 * 1024;

/// How much a streamed body asks the helper thread for at a time.
const STREAM_CHUNK: usize = 64 * 1024;

/// What the helper thread is asked.
#[derive(Debug)]
pub enum Ask {
    /// Read up to this many bytes.
    Read(usize),
    /// The request is over: stop.
    Stop,
}

/// The application's end of a streamed body: each read asks the helper thread.
#[derive(Debug)]
pub struct Remote {
    asks: Sender<Ask>,
    answers: Receiver<io::Result<Vec<u8>>>,
    /// How long the next reads wait for the helper's answer; `None`: until it comes.
    wait: Option<Duration>,
    /// A read was asked and not answered within `wait`: the answer is still to come,
    /// and the next read takes it instead of asking again.
    pending: bool,
}

impl Read for Remote {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if buf.is_empty() {
            return Ok(0);
        }
        // After the request (the application kept the stream), there is nothing left.
        if !self.pending && self.asks.send(Ask::Read(buf.len())).is_err() {
            return Ok(0);
        }
        let answer = match self.wait {
            None => self
                .answers
                .recv()
                .map_err(|_| RecvTimeoutError::Disconnected),
            Some(wait) => self.answers.recv_timeout(wait),
        };
        self.pending = false;
        match answer {
            Ok(Ok(data)) => {
                // Nothing is cut: the helper reads at most STREAM_CHUNK bytes, and the
                // BufReader around this reads into buffers at least that large (its own,
                // of STREAM_CHUNK, or a larger one it is given), also after a timeout.
                let n = data.len().min(buf.len());
                buf[..n].copy_from_slice(&data[..n]);
                Ok(n)
            }
            Ok(Err(err)) => Err(err),
            Err(RecvTimeoutError::Timeout) => {
                self.pending = true;
                Err(io::ErrorKind::WouldBlock.into())
            }
            Err(RecvTimeoutError::Disconnected) => Ok(0),
        }
    }
}

/// The helper thread's side of a streamed body.
#[derive(Debug)]
pub struct Pump {
    asked: Receiver<Ask>,
    answer: Sender<io::Result<Vec<u8>>>,
}

impl Pump {
    /// The helper thread's loop: answers reads from `body` until [`Ask::Stop`] or until
    /// every asker is gone.
    pub fn run(self, body: &mut (dyn Read + Send)) {
        while let Ok(Ask::Read(n)) = self.asked.recv() {
            let mut buf = vec![0u8; n.min(STREAM_CHUNK)];
            let result = body.read(&mut buf).map(|got| {
                buf.truncate(got);
                buf
            });
            if self.answer.send(result).is_err() {
                break;
            }
        }
    }
}

/// Sends [`Ask::Stop`] when dropped: the end of a streamed request, also when the call
/// unwinds and whoever still holds the application's end.
#[derive(Debug)]
pub struct StopOnDrop(Sender<Ask>);

impl Drop for StopOnDrop {
    fn drop(&mut self) {
        let _ = self.0.send(Ask::Stop);
    }
}

/// A streamed body: the application's end (a [`Source`] reading through a
/// [`Remote`]), the guard that stops the helper, and the helper's [`Pump`].
pub fn stream() -> (Source, StopOnDrop, Pump) {
    let (asks, asked) = mpsc::channel();
    let (answer, answers) = mpsc::channel();
    let remote = Remote {
        asks: asks.clone(),
        answers,
        wait: None,
        pending: false,
    };
    (
        Source::Stream(BufReader::with_capacity(STREAM_CHUNK, remote)),
        StopOnDrop(asks),
        Pump { asked, answer },
    )
}

/// A request body as the application reads it.
pub enum Source {
    /// Held in memory.
    Memory(Cursor<Vec<u8>>),
    /// Spilled to an unlinked temporary file.
    File(BufReader<File>),
    /// Streamed from the connection by a helper thread.
    Stream(BufReader<Remote>),
}

impl std::fmt::Debug for Source {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Source::Memory(c) => write!(f, "Memory({} bytes)", c.get_ref().len()),
            Source::File(_) => f.write_str("File"),
            Source::Stream(_) => f.write_str("Stream"),
        }
    }
}

impl Read for Source {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Source::Memory(c) => c.read(buf),
            Source::File(f) => f.read(buf),
            Source::Stream(s) => s.read(buf),
        }
    }
}

impl BufRead for Source {
    fn fill_buf(&mut self) -> io::Result<&[u8]> {
        match self {
            Source::Memory(c) => c.fill_buf(),
            Source::File(f) => f.fill_buf(),
            Source::Stream(s) => s.fill_buf(),
        }
    }
    fn consume(&mut self, amt: usize) {
        match self {
            Source::Memory(c) => c.consume(amt),
            Source::File(f) => f.consume(amt),
            Source::Stream(s) => s.consume(amt),
        }
    }
}

static SPILLS: AtomicU64 = AtomicU64::new(0);

/// Reads the whole body (`length` bytes announced, the reader stops at the end of the
/// body) without the GIL: in memory up to `memory_limit`, else in a temporary file
/// that is unlinked at once (the kernel frees it when the request is done).
pub fn collect(body: &mut dyn Read, length: u64, memory_limit: u64) -> io::Result<Source> {
    if length <= memory_limit {
        // The announced length is the peer's word: grow from a bounded start.
        let mut data = Vec::with_capacity(usize::try_from(length.min(EAGER_LIMIT)).unwrap_or(0));
        body.read_to_end(&mut data)?;
        return Ok(Source::Memory(Cursor::new(data)));
    }
    let path = std::env::temp_dir().join(format!(
        "uwsgi-rs-body-{}-{}",
        std::process::id(),
        SPILLS.fetch_add(1, Ordering::Relaxed)
    ));
    let mut file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create_new(true)
        .open(&path)?;
    let _ = std::fs::remove_file(&path);
    io::copy(body, &mut file)?;
    file.rewind()?;
    Ok(Source::File(BufReader::with_capacity(64 * 1024, file)))
}

/// The `wsgi.input` object.
#[derive(Debug)]
#[pyclass(module = "uwsgi_rs", name = "Input")]
pub struct Input {
    source: Mutex<Source>,
}

impl Input {
    pub fn new(source: Source) -> Self {
        Input {
            source: Mutex::new(source),
        }
    }

    /// Runs `f` on the source; a streamed body waits for the connection, so the GIL is
    /// released around it.
    fn with<T: Send>(&self, py: Python<'_>, f: impl FnOnce(&mut Source) -> T + Send) -> T {
        let mut source = self.source();
        if matches!(*source, Source::Stream(_)) {
            let source = &mut *source;
            py.detach(move || f(source))
        } else {
            f(&mut source)
        }
    }

    /// The next bytes of the body (at most `max`, as many as are buffered or arrive in
    /// one read), waiting for them when needed; empty at the end of the body.
    pub fn next_block(&self, py: Python<'_>, max: usize) -> io::Result<Vec<u8>> {
        self.with(py, |source| {
            let buf = source.fill_buf()?;
            let n = buf.len().min(max);
            let block = buf[..n].to_vec();
            source.consume(n);
            Ok(block)
        })
    }

    /// [`Input::next_block`] waiting at most `wait` for bytes that are not buffered yet
    /// (`Duration::ZERO`: not at all); `Ok(None)` when none came in time. Only a streamed
    /// body can make the application wait; one in memory or in a file answers at once.
    pub fn next_block_within(
        &self,
        py: Python<'_>,
        max: usize,
        wait: Duration,
    ) -> io::Result<Option<Vec<u8>>> {
        self.with(py, |source| {
            if let Source::Stream(reader) = source {
                reader.get_mut().wait = Some(wait);
            }
            let block = match source.fill_buf() {
                Ok(buf) => {
                    let n = buf.len().min(max);
                    let block = buf[..n].to_vec();
                    source.consume(n);
                    Ok(Some(block))
                }
                Err(err) if err.kind() == io::ErrorKind::WouldBlock => Ok(None),
                Err(err) => Err(err),
            };
            if let Source::Stream(reader) = source {
                reader.get_mut().wait = None;
            }
            block
        })
    }

    /// What is left of the body.
    pub fn read_rest(&self, py: Python<'_>) -> io::Result<Vec<u8>> {
        self.with(py, |source| {
            let mut rest = Vec::new();
            source.read_to_end(&mut rest)?;
            Ok(rest)
        })
    }

    fn source(&self) -> std::sync::MutexGuard<'_, Source> {
        self.source
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

fn io_error(err: &io::Error) -> PyErr {
    PyIOError::new_err(format!("error reading the request body: {err}"))
}

/// `None` or a negative size means "everything".
fn limit(size: Option<i64>) -> Option<usize> {
    size.filter(|s| *s >= 0)
        .map(|s| usize::try_from(s).unwrap_or(usize::MAX))
}

fn read_line(source: &mut Source, limit: Option<usize>) -> io::Result<Vec<u8>> {
    let mut line = Vec::new();
    loop {
        let room = limit.map_or(usize::MAX, |l| l - line.len());
        if room == 0 {
            break;
        }
        let chunk = source.fill_buf()?;
        if chunk.is_empty() {
            break;
        }
        let window = &chunk[..chunk.len().min(room)];
        match window.iter().position(|b| *b == b'\n') {
            Some(i) => {
                line.extend_from_slice(&window[..=i]);
                source.consume(i + 1);
                break;
            }
            None => {
                let n = window.len();
                line.extend_from_slice(window);
                source.consume(n);
            }
        }
    }
    Ok(line)
}

#[pymethods]
impl Input {
    /// `read(size=-1)`: up to `size` bytes (all that is left without a size); `b""` at
    /// the end of the body.
    #[pyo3(signature = (size=None))]
    fn read<'py>(&self, py: Python<'py>, size: Option<i64>) -> PyResult<Bound<'py, PyBytes>> {
        let size = limit(size);
        let data = self
            .with(py, move |source| {
                let mut data = Vec::new();
                match size {
                    None => source.read_to_end(&mut data),
                    Some(n) => source.take(n as u64).read_to_end(&mut data),
                }
                .map(|_| data)
            })
            .map_err(|e| io_error(&e))?;
        Ok(PyBytes::new(py, &data))
    }

    /// `readline(size=-1)`: one line with its `\n`, at most `size` bytes.
    #[pyo3(signature = (size=None))]
    fn readline<'py>(&self, py: Python<'py>, size: Option<i64>) -> PyResult<Bound<'py, PyBytes>> {
        let size = limit(size);
        let line = self
            .with(py, move |source| read_line(source, size))
            .map_err(|e| io_error(&e))?;
        Ok(PyBytes::new(py, &line))
    }

    /// `readlines(hint=-1)`: the remaining lines (stopping once `hint` bytes were read).
    #[pyo3(signature = (hint=None))]
    fn readlines<'py>(&self, py: Python<'py>, hint: Option<i64>) -> PyResult<Bound<'py, PyList>> {
        let hint = limit(hint).filter(|h| *h > 0);
        let read = self
            .with(py, move |source| {
                let mut read = Vec::new();
                let mut total = 0usize;
                loop {
                    let line = read_line(source, None)?;
                    if line.is_empty() {
                        break;
                    }
                    total += line.len();
                    read.push(line);
                    if hint.is_some_and(|h| total >= h) {
                        break;
                    }
                }
                Ok::<_, io::Error>(read)
            })
            .map_err(|e| io_error(&e))?;
        let lines = PyList::empty(py);
        for line in read {
            lines.append(PyBytes::new(py, &line))?;
        }
        Ok(lines)
    }

    fn __iter__(slf: PyRef<'_, Self>) -> PyRef<'_, Self> {
        slf
    }

    fn __next__<'py>(&self, py: Python<'py>) -> PyResult<Option<Bound<'py, PyBytes>>> {
        let line = self
            .with(py, |source| read_line(source, None))
            .map_err(|e| io_error(&e))?;
        Ok((!line.is_empty()).then(|| PyBytes::new(py, &line)))
    }

    /// Closing the input is allowed and does nothing (the server owns the body).
    fn close(&self) {}
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_respect_limits() {
        let mut source = Source::Memory(Cursor::new(b"ab\ncdef\n\ngh".to_vec()));
        assert_eq!(read_line(&mut source, None).unwrap(), b"ab\n");
        assert_eq!(read_line(&mut source, Some(2)).unwrap(), b"cd");
        assert_eq!(read_line(&mut source, Some(10)).unwrap(), b"ef\n");
        assert_eq!(read_line(&mut source, None).unwrap(), b"\n");
        assert_eq!(read_line(&mut source, None).unwrap(), b"gh");
        assert_eq!(read_line(&mut source, None).unwrap(), b"");
    }

    #[test]
    fn large_bodies_spill_to_a_file() {
        let body = vec![b'x'; 5000];
        let mut source = collect(&mut &body[..], 5000, 100).unwrap();
        assert!(matches!(source, Source::File(_)));
        let mut back = Vec::new();
        source.read_to_end(&mut back).unwrap();
        assert_eq!(back, body);
        let source = collect(&mut &body[..], 5000, 1 << 20).unwrap();
        assert!(matches!(source, Source::Memory(_)));
    }

    #[test]
    fn streamed_bodies_are_read_through_the_helper() {
        let body: Vec<u8> = (0..300_000u32).map(|i| (i % 253) as u8).collect();
        let (mut source, stop, pump) = stream();
        let back = std::thread::scope(|scope| {
            let mut reader = &body[..];
            scope.spawn(move || pump.run(&mut reader));
            let mut back = Vec::new();
            source.read_to_end(&mut back).unwrap();
            drop(stop);
            back
        });
        assert_eq!(back, body);
        // After the helper stopped, reads see the end.
        let mut more = [0u8; 10];
        assert_eq!(source.read(&mut more).unwrap(), 0);
    }
}
