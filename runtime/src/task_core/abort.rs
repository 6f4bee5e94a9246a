//! `AbortHandle`: the permission to cancel a task, without its output.
//!
//! Invariants: an `AbortHandle` owns one reference of its task (taken in `new`, or in `clone`)
//! and gives it back exactly once, in `drop`; the task's memory stays allocated while it does.

use super::{Id, RawTask};
use std::fmt;

/// Cancels a task from anywhere, without owning its output: made by
/// [`JoinHandle::abort_handle`](crate::JoinHandle::abort_handle) or returned by
/// [`JoinSet::spawn`](crate::task::JoinSet::spawn). Clone it freely; dropping it does nothing
/// to the task.
///
/// ```
/// let rt = memkit_async_runtime::Runtime::new().unwrap();
/// let handle = rt.spawn(std::future::pending::<()>());
/// let abort = handle.abort_handle();
/// abort.abort();
/// assert!(rt.block_on(handle).unwrap_err().is_cancelled());
/// assert!(abort.is_finished());
/// ```
pub struct AbortHandle {
    raw: RawTask,
}

// SAFETY: the handle only touches the task's atomic state word (reference count, cancel and
// complete bits) and its scheduler, which are thread-safe; never the future or the output.
unsafe impl Send for AbortHandle {}
// SAFETY: as above; every `&self` method is an atomic operation on the state word.
unsafe impl Sync for AbortHandle {}

impl AbortHandle {
    /// An abort handle for `raw`, taking a reference of its own. The caller holds a reference
    /// (a join handle), so the task is alive.
    pub(crate) fn new(raw: RawTask) -> AbortHandle {
        raw.header().state.ref_inc();
        AbortHandle { raw }
    }

    /// Cancels the task, as [`JoinHandle::abort`](crate::JoinHandle::abort) does: a task that
    /// has not completed has its future dropped by the runtime, and its join handle (or
    /// `JoinSet`) gets a [`JoinError`](crate::JoinError) for which `is_cancelled()` is `true`.
    /// Aborting a completed task does nothing.
    pub fn abort(&self) {
        self.raw.remote_abort();
    }

    /// `true` once the task has completed (with an output, a panic or a cancellation).
    pub fn is_finished(&self) -> bool {
        self.raw.header().state.load().is_complete()
    }

    /// The task's id.
    pub fn id(&self) -> Id {
        self.raw.id()
    }
}

impl Clone for AbortHandle {
    fn clone(&self) -> AbortHandle {
        AbortHandle::new(self.raw)
    }
}

impl Drop for AbortHandle {
    fn drop(&mut self) {
        let header = self.raw.header();
        if header.state.ref_dec() {
            // SAFETY: that was the task's last reference.
            unsafe { (header.vtable.dealloc)(self.raw.header_ptr()) }
        }
    }
}

impl fmt::Debug for AbortHandle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AbortHandle")
            .field("id", &self.id())
            .field("finished", &self.is_finished())
            .finish()
    }
}
