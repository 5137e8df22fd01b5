//! A Python thread state per worker thread, kept for the thread's life.
//!
//! pyo3 attaches a thread with `PyGILState_Ensure` and detaches it with
//! `PyGILState_Release`, which deletes the thread's Python state when the outermost
//! attachment ends. For a server thread that runs one request per attachment, that would
//! make every request start in a fresh Python thread: `threading.local()` data (a
//! database connection kept per thread, say) would be lost between requests and
//! `threading.current_thread()` would change. uWSGI keeps one thread state per core; so
//! does this host, by holding one outer attachment open (with the GIL released) on each
//! thread that runs Python.

use std::cell::Cell;

use pyo3::ffi;

thread_local! {
    static KEPT: Cell<bool> = const { Cell::new(false) };
}

/// Gives the calling thread a Python thread state that lives as long as the thread.
/// Call it outside `Python::attach`; before the interpreter started it does nothing.
#[allow(unsafe_code)]
pub fn keep() {
    if KEPT.with(Cell::get) {
        return;
    }
    // SAFETY: Py_IsInitialized may be called at any time.
    if unsafe { ffi::Py_IsInitialized() } == 0 {
        return;
    }
    // SAFETY: the interpreter is initialised (checked above) and this thread is not
    // attached (called outside `Python::attach`), so PyGILState_Ensure creates the thread's state and takes the
    // GIL; PyEval_SaveThread then releases the GIL while the attachment count stays at
    // one, so later attach/detach pairs reuse this state instead of deleting it.
    unsafe {
        ffi::PyGILState_Ensure();
        ffi::PyEval_SaveThread();
    }
    KEPT.with(|kept| kept.set(true));
}
