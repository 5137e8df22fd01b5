//! `wsgi.file_wrapper`: wraps a file-like object as a response. When the object is a
//! regular file with a descriptor, the host sends it with `sendfile(2)` (through
//! [`crate::app::Output::send_file`]); otherwise it is an ordinary iterable of blocks.

use std::fs::File;

use pyo3::prelude::*;

/// The `wsgi.file_wrapper` type.
#[derive(Debug)]
#[pyclass(module = "uwsgi_rs", name = "FileWrapper")]
pub struct FileWrapper {
    filelike: Py<PyAny>,
    blksize: usize,
}

#[pymethods]
impl FileWrapper {
    #[new]
    #[pyo3(signature = (filelike, blksize=8192))]
    fn new(filelike: Py<PyAny>, blksize: usize) -> Self {
        FileWrapper {
            filelike,
            blksize: blksize.max(1),
        }
    }

    fn __iter__(slf: PyRef<'_, Self>) -> PyRef<'_, Self> {
        slf
    }

    /// The next block, read with `filelike.read(blksize)`; the end at an empty one.
    fn __next__<'py>(&self, py: Python<'py>) -> PyResult<Option<Bound<'py, PyAny>>> {
        let block = self
            .filelike
            .bind(py)
            .call_method1("read", (self.blksize,))?;
        Ok((block.len()? > 0).then_some(block))
    }

    /// Closes the wrapped object if it can be closed (PEP 3333).
    fn close(&self, py: Python<'_>) -> PyResult<()> {
        let filelike = self.filelike.bind(py);
        if filelike.hasattr("close")? {
            filelike.call_method0("close")?;
        }
        Ok(())
    }
}

impl FileWrapper {
    /// The regular file behind the object and where to start sending, when it has a
    /// descriptor (`fileno()`). The descriptor is opened again through `/proc/self/fd`
    /// so the host holds its own handle for the time of the send.
    pub fn sendfile_source(&self, py: Python<'_>) -> Option<(File, u64, u64)> {
        let filelike = self.filelike.bind(py);
        let fd: i32 = filelike.call_method0("fileno").ok()?.extract().ok()?;
        if fd < 0 {
            return None;
        }
        let file = File::open(format!("/proc/self/fd/{fd}")).ok()?;
        let meta = file.metadata().ok()?;
        if !meta.is_file() {
            return None;
        }
        let offset: u64 = filelike
            .call_method0("tell")
            .ok()
            .and_then(|pos| pos.extract().ok())
            .unwrap_or(0);
        Some((file, offset, meta.len().saturating_sub(offset)))
    }
}
