//! CPython's fork protocol, for a master that forks workers from a process where the
//! interpreter already runs (what `os.fork()` does around `fork(2)`): take the
//! interpreter's locks before, release them in the parent after, and reset the
//! interpreter's thread state in the child. Each call is one FFI function; the GIL is
//! held from [`before`] until [`parent`] or [`child`].

use std::sync::Mutex;

use pyo3::ffi;

/// The GIL state taken by [`before`], given back by [`parent`] or [`child`].
static TAKEN: Mutex<Option<ffi::PyGILState_STATE>> = Mutex::new(None);

fn slot() -> std::sync::MutexGuard<'static, Option<ffi::PyGILState_STATE>> {
    TAKEN
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Right before `fork(2)`: takes the GIL and the interpreter's fork locks.
#[allow(unsafe_code)]
pub fn before() {
    // SAFETY: the interpreter was initialised (the host only calls this after
    // `Python::initialize`); PyGILState_Ensure may be called from any thread and
    // PyOS_BeforeFork requires exactly the GIL it returns us holding.
    let state = unsafe {
        let state = ffi::PyGILState_Ensure();
        ffi::PyOS_BeforeFork();
        state
    };
    *slot() = Some(state);
}

/// In the parent right after `fork(2)`: releases the fork locks and the GIL.
#[allow(unsafe_code)]
pub fn parent() {
    let Some(state) = slot().take() else {
        return;
    };
    // SAFETY: `before` ran on this thread and left the GIL held with the fork locks
    // taken, which is what PyOS_AfterFork_Parent expects; the GIL state is released
    // exactly once, with the value PyGILState_Ensure returned.
    unsafe {
        ffi::PyOS_AfterFork_Parent();
        ffi::PyGILState_Release(state);
    }
}

/// In the child right after `fork(2)`: resets the interpreter for this single thread
/// (other threads of the parent do not exist here) and releases the GIL.
#[allow(unsafe_code)]
pub fn child() {
    let Some(state) = slot().take() else {
        return;
    };
    // SAFETY: the forking thread called `before` (its GIL state was copied into the
    // child), so this thread holds the GIL as PyOS_AfterFork_Child requires; it is
    // released once with the value PyGILState_Ensure returned.
    unsafe {
        ffi::PyOS_AfterFork_Child();
        ffi::PyGILState_Release(state);
    }
}
