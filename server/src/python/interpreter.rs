//! Starting the embedded interpreter and loading the applications, in uWSGI's order:
//! `--chdir`, then the interpreter with `uwsgi` built in, `sys.argv`, `--home` (the
//! virtualenv's site-packages first on `sys.path`), `--pythonpath`, `--env`,
//! `--shared-import`; then (at start, or in each worker with `--lazy-apps`) `--import`
//! and the applications: `--wsgi-file`, `--module`, each `--mount`, and the entries of
//! `uwsgi.applications`.

use std::path::Path;

use pyo3::prelude::*;
use pyo3::types::{PyDict, PyList};

use crate::config::PythonConfig;

use super::log::Log;

/// One loaded application and where it is mounted (`""`: the root).
#[derive(Debug)]
pub struct Mounted {
    pub mountpoint: String,
    pub callable: Py<PyAny>,
}

/// Sets up `sys` for the applications (the interpreter is running, the GIL held).
pub fn configure(py: Python<'_>, config: &PythonConfig) -> PyResult<()> {
    let sys = py.import("sys")?;
    sys.setattr("argv", PyList::new(py, ["uwsgi"])?)?;
    if let Some(home) = &config.home {
        add_virtualenv(py, &sys, home)?;
    }
    // Read after the virtualenv, which puts a new list in `sys.path`.
    let path = sys.getattr("path")?.cast_into::<PyList>()?;
    // As uWSGI's `sys.argv[0]` without a directory does: the current directory first.
    if !path.contains("")? {
        path.insert(0, "")?;
    }
    for dir in config.pythonpath.iter().rev() {
        path.insert(0, dir.to_string_lossy().as_ref())?;
    }
    let environ = py.import("os")?.getattr("environ")?;
    for (key, value) in &config.env {
        environ.set_item(key, value)?;
    }
    for module in &config.shared_imports {
        py.import(module.as_str())?;
    }
    Ok(())
}

/// `--home`: the virtualenv's `site-packages` (with its `.pth` files) ahead of the
/// interpreter's own, and `sys.prefix` pointing at it, as `bin/activate` arranges.
fn add_virtualenv(py: Python<'_>, sys: &Bound<'_, PyModule>, home: &Path) -> PyResult<()> {
    let (major, minor) = (py.version_info().major, py.version_info().minor);
    let site_packages = home
        .join("lib")
        .join(format!("python{major}.{minor}"))
        .join("site-packages");
    if !site_packages.is_dir() {
        return Err(pyo3::exceptions::PyFileNotFoundError::new_err(format!(
            "--home {}: no {} (is it a virtualenv of Python {major}.{minor}?)",
            home.display(),
            site_packages.display()
        )));
    }
    let path = sys.getattr("path")?.cast_into::<PyList>()?;
    let before: Vec<String> = path.extract()?;
    py.import("site")?
        .call_method1("addsitedir", (site_packages.to_string_lossy().as_ref(),))?;
    // addsitedir appends: move what it added to the front.
    let after: Vec<String> = path.extract()?;
    let added: Vec<&String> = after.iter().filter(|p| !before.contains(p)).collect();
    let reordered = PyList::new(py, added.iter().copied().chain(before.iter()))?;
    sys.setattr("path", reordered)?;
    let home_text = home.to_string_lossy();
    sys.setattr("prefix", home_text.as_ref())?;
    sys.setattr("exec_prefix", home_text.as_ref())?;
    py.import("os")?
        .getattr("environ")?
        .set_item("VIRTUAL_ENV", home_text.as_ref())?;
    Ok(())
}

/// uWSGI's module name for a `--wsgi-file`: `uwsgi_file_` and the path with every
/// character that is not a letter or a digit replaced by `_`.
fn file_module_name(path: &str) -> String {
    let mangled: String = path
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
        .collect();
    format!("uwsgi_file_{mangled}")
}

/// Executes a Python file as a module and returns it.
fn load_file<'py>(py: Python<'py>, path: &str) -> PyResult<Bound<'py, PyAny>> {
    let name = file_module_name(path);
    let util = py.import("importlib.util")?;
    let spec = util.call_method1("spec_from_file_location", (&name, path))?;
    if spec.is_none() {
        return Err(pyo3::exceptions::PyImportError::new_err(format!(
            "cannot load {path}: not a Python file"
        )));
    }
    let module = util.call_method1("module_from_spec", (&spec,))?;
    py.import("sys")?
        .getattr("modules")?
        .set_item(&name, &module)?;
    spec.getattr("loader")?
        .call_method1("exec_module", (&module,))?;
    Ok(module)
}

/// Whether a `--mount` target names a file (as uWSGI decides: a `.py` or `.wsgi`
/// suffix, or an existing file) rather than a module.
fn is_file_target(target: &str) -> bool {
    target.ends_with(".py") || target.ends_with(".wsgi") || Path::new(target).is_file()
}

/// Loads `target` (a file, or `module[:callable]`) and returns its callable.
fn load_target(
    py: Python<'_>,
    target: &str,
    default_callable: &str,
    log: &Log,
) -> PyResult<Option<Py<PyAny>>> {
    let (module, callable) = if is_file_target(target) {
        (load_file(py, target)?, default_callable)
    } else {
        let (module, callable) = target.split_once(':').unwrap_or((target, default_callable));
        (py.import(module)?.into_any(), callable)
    };
    match module.getattr(callable) {
        Ok(app) if app.is_callable() => Ok(Some(app.unbind())),
        Ok(_) => {
            log.write(&format!("{target}: {callable:?} is not callable"));
            Ok(None)
        }
        Err(_) => {
            // uWSGI's message, so that logs read the same.
            log.write(&format!(
                "unable to find \"{callable}\" callable in {target}"
            ));
            Ok(None)
        }
    }
}

/// Imports `--import` modules and loads every configured application. Loading errors
/// are logged (with the traceback) and that application skipped; the caller decides
/// what an empty result means (`--need-app`).
pub fn load_apps(
    py: Python<'_>,
    config: &PythonConfig,
    uwsgi: &Bound<'_, PyModule>,
    log: &Log,
) -> Vec<Mounted> {
    for module in &config.imports {
        if let Err(err) = py.import(module.as_str()) {
            log.exception(py, &format!("--import {module} failed"), &err);
        }
    }
    let callable = config.callable.as_deref().unwrap_or("application");
    let mut apps: Vec<Mounted> = Vec::new();
    let add = |apps: &mut Vec<Mounted>, mountpoint: &str, target: &str| match load_target(
        py, target, callable, log,
    ) {
        Ok(Some(app)) => {
            log.write(&format!(
                "WSGI app {} ({target}) ready in mountpoint='{mountpoint}'",
                apps.len()
            ));
            apps.push(Mounted {
                mountpoint: mountpoint.to_owned(),
                callable: app,
            });
        }
        Ok(None) => {}
        Err(err) => log.exception(py, &format!("unable to load app {target}"), &err),
    };
    if let Some(file) = &config.wsgi_file {
        add(&mut apps, "", &file.to_string_lossy());
    }
    if let Some(module) = &config.module {
        add(&mut apps, "", module);
    }
    for (mountpoint, target) in &config.mounts {
        add(&mut apps, mountpoint, target);
    }
    // `uwsgi.applications = {"/prefix": callable_or_target, ...}`, set by the code
    // loaded so far: each entry is mounted too.
    if let Ok(table) = uwsgi.getattr("applications")
        && let Ok(table) = table.cast::<PyDict>()
    {
        for (mountpoint, value) in table.iter() {
            let mountpoint: String = mountpoint.extract().unwrap_or_default();
            if value.is_callable() {
                log.write(&format!(
                    "WSGI app {} (uwsgi.applications) ready in mountpoint='{mountpoint}'",
                    apps.len()
                ));
                apps.push(Mounted {
                    mountpoint,
                    callable: value.unbind(),
                });
            } else if let Ok(target) = value.extract::<String>() {
                add(&mut apps, &mountpoint, &target);
            } else {
                log.write(&format!(
                    "uwsgi.applications[{mountpoint:?}] is neither callable nor a target"
                ));
            }
        }
    }
    apps
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_module_names_are_uwsgis() {
        assert_eq!(
            file_module_name("/srv/app/wsgi.py"),
            "uwsgi_file__srv_app_wsgi_py"
        );
        assert!(is_file_target("app.wsgi"));
        assert!(is_file_target("x/app.py"));
        assert!(!is_file_target("pkg.mod:app"));
    }
}
