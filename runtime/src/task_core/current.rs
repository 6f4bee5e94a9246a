//! The task being polled on this thread: how the task's arena, budget, id and name are found
//! without an argument.
//!
//! Invariant (the "current task" rule of mod.rs): the pointer is set only while the task is
//! polled (or its future or output dropped) on this thread, by the code that holds `RUNNING` or
//! owns the output (raw.rs), and the guard restores the previous value before that code returns
//! or unwinds; so a current task is alive for as long as it is current.

use super::Header;
use std::cell::Cell;
use std::ptr::NonNull;

thread_local! {
    // Without a destructor this compiles to a plain thread-local access (no liveness check),
    // which the poll loop and every arena allocation pay.
    static TASK: Cell<Option<NonNull<Header>>> = const { Cell::new(None) };
}

/// Restores the previous current task on drop.
pub(crate) struct TaskGuard(Option<NonNull<Header>>);

/// Makes `task` current until the guard drops.
#[inline]
pub(crate) fn enter(task: NonNull<Header>) -> TaskGuard {
    TaskGuard(TASK.replace(Some(task)))
}

/// Makes no task current until the guard drops (an `MkArenaTask` polled inside a task takes
/// over as the arena owner).
pub(crate) fn hide() -> TaskGuard {
    TaskGuard(TASK.replace(None))
}

impl Drop for TaskGuard {
    #[inline]
    fn drop(&mut self) {
        TASK.set(self.0);
    }
}

/// The task being polled on this thread (alive while current, file invariant).
#[inline]
pub(crate) fn get() -> Option<NonNull<Header>> {
    TASK.get()
}
