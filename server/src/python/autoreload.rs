//! `--py-autoreload N`: a development aid that reloads the whole server when the source
//! file of a loaded Python module changes.
//!
//! As in uWSGI 2.0, every worker process runs one watcher thread over its own
//! `sys.modules`: the workers' module sets differ as soon as an application imports at
//! request time (Django loads its URLconf and views on the first request a worker
//! serves), so a single watcher would miss a file only another worker imported. Each
//! pass holds the GIL just long enough to copy the module names and file names; the
//! `stat` calls run without it. When a file's modification time differs from the one
//! seen first, the watcher logs `[uwsgi-python-reloader] module/file F has been
//! modified`, sends SIGHUP to the master (its graceful reload: workers finish their
//! requests, the master re-executes itself, and the new image imports the new code)
//! and ends. Several workers noticing the same change send several SIGHUPs; the master
//! reloads once.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use pyo3::prelude::*;
use pyo3::types::{PyDict, PyModule};

use super::log::Log;

/// The modification times seen so far, by file.
#[derive(Debug, Default)]
pub struct Watch {
    seen: HashMap<PathBuf, SystemTime>,
}

impl Watch {
    /// Records the files not seen before and returns the first one whose modification
    /// time changed since it was recorded. A file that cannot be read is skipped (as
    /// uWSGI does: a module removed from disk does not trigger a reload).
    pub fn changed<'a>(&mut self, files: impl IntoIterator<Item = &'a Path>) -> Option<PathBuf> {
        for file in files {
            let Ok(modified) = std::fs::metadata(file).and_then(|m| m.modified()) else {
                continue;
            };
            match self.seen.get(file) {
                None => {
                    self.seen.insert(file.to_path_buf(), modified);
                }
                Some(seen) if *seen != modified => return Some(file.to_path_buf()),
                Some(_) => {}
            }
        }
        None
    }
}

/// The file to watch for a module's `__file__`: the source for a compiled `.pyc` or
/// `.pyo` (uWSGI's rule: drop the last letter), the name as given otherwise. A relative
/// name is relative to the current directory, which is `--chdir` when given.
fn source_of(file: &str) -> PathBuf {
    let compiled = [".pyc", ".pyo", ".pyd"]
        .iter()
        .any(|ext| file.ends_with(ext));
    PathBuf::from(if compiled {
        &file[..file.len() - 1]
    } else {
        file
    })
}

/// The files of the modules in `sys.modules`, but those named in `ignore`. Only module
/// objects are looked at, through their `__dict__`: reading attributes of arbitrary
/// objects could run code (lazy modules import on attribute access).
fn module_files(py: Python<'_>, ignore: &[String]) -> PyResult<Vec<PathBuf>> {
    let modules = py.import("sys")?.getattr("modules")?;
    let modules = modules.cast::<PyDict>()?;
    // A snapshot: nothing below may change the dictionary under an iterator.
    let items = modules.items();
    let mut files = Vec::with_capacity(items.len());
    for item in items.iter() {
        let Ok((name, module)) = item.extract::<(Bound<'_, PyAny>, Bound<'_, PyAny>)>() else {
            continue;
        };
        if let Ok(name) = name.extract::<&str>()
            && ignore.iter().any(|i| i == name)
        {
            continue;
        }
        let Ok(module) = module.cast::<PyModule>() else {
            continue;
        };
        let Ok(Some(file)) = module.dict().get_item("__file__") else {
            continue;
        };
        if let Ok(file) = file.extract::<&str>() {
            files.push(source_of(file));
        }
    }
    Ok(files)
}

/// Starts the watcher thread of this worker: every `every`, it compares the module files'
/// modification times with those seen first, and sends SIGHUP to `master` on a change.
pub fn start(
    every: Duration,
    ignore: Vec<String>,
    master: rustix::process::Pid,
    announce: bool,
    log: Arc<Log>,
) -> std::io::Result<()> {
    std::thread::Builder::new()
        .name("uWSGIAutoReloader".to_owned())
        .spawn(move || {
            let mut watch = Watch::default();
            let mut first = true;
            loop {
                let files = Python::attach(|py| match module_files(py, &ignore) {
                    Ok(files) => files,
                    Err(err) => {
                        log.exception(py, "[uwsgi-python-reloader] cannot read sys.modules", &err);
                        Vec::new()
                    }
                });
                if let Some(file) = watch.changed(files.iter().map(PathBuf::as_path)) {
                    log.write(&format!(
                        "[uwsgi-python-reloader] module/file {} has been modified",
                        file.display()
                    ));
                    let _ = rustix::process::kill_process(master, rustix::process::Signal::HUP);
                    return;
                }
                // Announced once the first pass has recorded every file: from then on,
                // any change is seen.
                if first && announce {
                    log.write(&format!(
                        "Python auto-reloader enabled (pid {}, every {} s)",
                        std::process::id(),
                        every.as_secs()
                    ));
                }
                first = false;
                std::thread::sleep(every);
            }
        })
        .map(drop)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn compiled_names_map_to_their_sources() {
        assert_eq!(source_of("/a/app.pyc"), PathBuf::from("/a/app.py"));
        assert_eq!(source_of("/a/app.pyo"), PathBuf::from("/a/app.py"));
        assert_eq!(source_of("/a/app.py"), PathBuf::from("/a/app.py"));
        assert_eq!(source_of("/a/_x.so"), PathBuf::from("/a/_x.so"));
    }

    #[test]
    fn a_change_is_reported_after_the_first_sighting_only() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("m.py");
        std::fs::write(&file, "x = 1\n").unwrap();
        let gone = dir.path().join("gone.py");
        let mut watch = Watch::default();
        let files = [file.as_path(), gone.as_path()];
        assert_eq!(watch.changed(files), None);
        assert_eq!(watch.changed(files), None);
        let later = SystemTime::now() + Duration::from_secs(5);
        std::fs::File::options()
            .write(true)
            .open(&file)
            .unwrap()
            .set_modified(later)
            .unwrap();
        assert_eq!(watch.changed(files), Some(file.clone()));
        // A watched file removed from disk is not a change.
        std::fs::remove_file(&file).unwrap();
        let mut watch2 = Watch::default();
        assert_eq!(watch2.changed([gone.as_path()]), None);
    }
}
