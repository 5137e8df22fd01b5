//! `wsgi.input`: the request body, read from the connection before the application
//! runs (into memory, or into an unlinked temporary file when it is larger than the
//! `--post-buffering` size, 1 MiB by default), then served to the application by the
//! file-like methods PEP 3333 asks for: `read(size)`, `readline(size)`, `readlines(hint)`
//! and iteration.

use std::fs::File;
use std::io::{self, BufRead, BufReader, Cursor, Read, Seek};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use pyo3::exceptions::PyIOError;
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyList};

/// Bodies up to this size stay in memory when `--post-buffering` is not given.
pub const DEFAULT_MEMORY_LIMIT: u64 = 1 << 20;

/// A buffered request body.
pub enum Source {
    /// Held in memory.
    Memory(Cursor<Vec<u8>>),
    /// Spilled to an unlinked temporary file.
    File(BufReader<File>),
}

impl std::fmt::Debug for Source {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Source::Memory(c) => write!(f, "Memory({} bytes)", c.get_ref().len()),
            Source::File(_) => f.write_str("File"),
        }
    }
}

impl Read for Source {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Source::Memory(c) => c.read(buf),
            Source::File(f) => f.read(buf),
        }
    }
}

impl BufRead for Source {
    fn fill_buf(&mut self) -> io::Result<&[u8]> {
        match self {
            Source::Memory(c) => c.fill_buf(),
            Source::File(f) => f.fill_buf(),
        }
    }
    fn consume(&mut self, amt: usize) {
        match self {
            Source::Memory(c) => c.consume(amt),
            Source::File(f) => f.consume(amt),
        }
    }
}

static SPILLS: AtomicU64 = AtomicU64::new(0);

/// Reads the whole body (`length` bytes announced, the reader stops at the end of the
/// body) without the GIL: in memory up to `memory_limit`, else in a temporary file
/// that is unlinked at once (the kernel frees it when the request is done).
pub fn collect(body: &mut dyn Read, length: u64, memory_limit: u64) -> io::Result<Source> {
    if length <= memory_limit {
        let mut data = Vec::with_capacity(usize::try_from(length).unwrap_or(0));
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
        let mut source = self.source();
        let mut data = Vec::new();
        match limit(size) {
            None => {
                source.read_to_end(&mut data).map_err(|e| io_error(&e))?;
            }
            Some(n) => {
                (&mut *source)
                    .take(n as u64)
                    .read_to_end(&mut data)
                    .map_err(|e| io_error(&e))?;
            }
        }
        Ok(PyBytes::new(py, &data))
    }

    /// `readline(size=-1)`: one line with its `\n`, at most `size` bytes.
    #[pyo3(signature = (size=None))]
    fn readline<'py>(&self, py: Python<'py>, size: Option<i64>) -> PyResult<Bound<'py, PyBytes>> {
        let line = read_line(&mut self.source(), limit(size)).map_err(|e| io_error(&e))?;
        Ok(PyBytes::new(py, &line))
    }

    /// `readlines(hint=-1)`: the remaining lines (stopping once `hint` bytes were read).
    #[pyo3(signature = (hint=None))]
    fn readlines<'py>(&self, py: Python<'py>, hint: Option<i64>) -> PyResult<Bound<'py, PyList>> {
        let hint = limit(hint).filter(|h| *h > 0);
        let lines = PyList::empty(py);
        let mut source = self.source();
        let mut total = 0usize;
        loop {
            let line = read_line(&mut source, None).map_err(|e| io_error(&e))?;
            if line.is_empty() {
                break;
            }
            total += line.len();
            lines.append(PyBytes::new(py, &line))?;
            if hint.is_some_and(|h| total >= h) {
                break;
            }
        }
        Ok(lines)
    }

    fn __iter__(slf: PyRef<'_, Self>) -> PyRef<'_, Self> {
        slf
    }

    fn __next__<'py>(&self, py: Python<'py>) -> PyResult<Option<Bound<'py, PyBytes>>> {
        let line = read_line(&mut self.source(), None).map_err(|e| io_error(&e))?;
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
}
