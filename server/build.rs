//! With the `python` feature, the binary and the tests get an rpath to the directory of
//! the libpython pyo3 linked, so `uwsgi-server` runs the CPython it was built for (a
//! pyenv or custom build) rather than whatever libpython of the same soname the dynamic
//! loader finds first.

fn main() {
    #[cfg(feature = "python")]
    pyo3_build_config::add_libpython_rpath_link_args();
}
