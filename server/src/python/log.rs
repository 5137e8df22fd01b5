//! Where the Python host writes: the server log (`--logto` or stderr), and the
//! `wsgi.errors` stream that feeds it.

use std::io::Write;
use std::sync::Mutex;

use pyo3::prelude::*;
use pyo3::types::PyString;

/// The server log as the Python host sees it: whole lines, from any thread.
pub struct Log {
    out: Mutex<Box<dyn Write + Send>>,
}

impl std::fmt::Debug for Log {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Log").finish_non_exhaustive()
    }
}

impl Log {
    /// Appends to `path` (as `--logto` does), or writes to stderr.
    pub fn open(path: Option<&std::path::Path>) -> std::io::Result<Log> {
        let out: Box<dyn Write + Send> = match path {
            Some(path) => Box::new(
                std::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(path)?,
            ),
            None => Box::new(std::io::stderr()),
        };
        Ok(Log {
            out: Mutex::new(out),
        })
    }

    /// Writes `text`, adding a newline when it has none.
    pub fn write(&self, text: &str) {
        let mut out = self
            .out
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let _ = out.write_all(text.as_bytes());
        if !text.ends_with('\n') {
            let _ = out.write_all(b"\n");
        }
        let _ = out.flush();
    }

    /// Logs a Python exception with its traceback, after `what` (one line).
    pub fn exception(&self, py: Python<'_>, what: &str, err: &PyErr) {
        let trace = py
            .import("traceback")
            .and_then(|tb| {
                tb.call_method1(
                    "format_exception",
                    (err.get_type(py), err.value(py), err.traceback(py)),
                )
            })
            .and_then(|lines| PyString::new(py, "").call_method1("join", (lines,)))
            .and_then(|text| text.extract::<String>());
        match trace {
            Ok(trace) => self.write(&format!("{what}\n{trace}")),
            Err(_) => self.write(&format!("{what}: {err}")),
        }
    }
}

/// `wsgi.errors`: a text stream whose lines go to the server log.
#[derive(Debug)]
#[pyclass(module = "uwsgi_rs", name = "ErrorStream", frozen)]
pub struct ErrorStream {
    log: std::sync::Arc<Log>,
    pending: Mutex<String>,
}

impl ErrorStream {
    pub fn new(log: std::sync::Arc<Log>) -> Self {
        ErrorStream {
            log,
            pending: Mutex::new(String::new()),
        }
    }

    /// Sends what is pending, an unfinished line too, to the log (at the end of each
    /// request: a worker thread keeps one stream for all its requests).
    pub fn end_of_request(&self) {
        self.take_lines(true);
    }

    fn take_lines(&self, all: bool) {
        let mut pending = self
            .pending
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let cut = if all {
            pending.len()
        } else {
            pending.rfind('\n').map_or(0, |i| i + 1)
        };
        if cut > 0 {
            let lines: String = pending.drain(..cut).collect();
            self.log.write(&lines);
        }
    }
}

#[pymethods]
impl ErrorStream {
    /// Writes text (complete lines reach the log at once; the rest at `flush`).
    fn write(&self, text: &Bound<'_, PyAny>) -> PyResult<usize> {
        let text: String = text.extract()?;
        let n = text.chars().count();
        self.pending
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .push_str(&text);
        self.take_lines(false);
        Ok(n)
    }

    /// Writes every string of `lines`.
    fn writelines(&self, lines: &Bound<'_, PyAny>) -> PyResult<()> {
        for line in lines.try_iter()? {
            self.write(&line?)?;
        }
        Ok(())
    }

    /// Sends what is pending to the log.
    fn flush(&self) {
        self.take_lines(true);
    }
}

impl Drop for ErrorStream {
    fn drop(&mut self) {
        self.take_lines(true);
    }
}
