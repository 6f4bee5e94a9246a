//! The arena of the task being polled: it hangs off the task's header, so it follows the task
//! from worker to worker; created on the task's first allocation, dropped when the task ends.
//! Outside memkit tasks, the arena of the `MkArenaTask` being polled (scope.rs) stands in.
//!
//! Invariant (with the task's field-access rules in task_core/mod.rs): the header's arena slot is
//! touched only by the thread that polls the task or owns its output, through the raw pointer,
//! never borrowed across user code.

use super::{scope, Arena, Chunk};
use crate::memory::{MkAllocError, RuntimeMemory};
use crate::task_core;
use std::ptr::NonNull;

/// Runs `f` with the arena of the task being polled on this thread (created on first use,
/// charged to the task's budget), else with the arena of the `MkArenaTask` being polled
/// (scope.rs), or `NoTask` outside both.
#[inline(always)]
pub(crate) fn with_task_arena<R>(
    f: impl FnOnce(&Arena) -> Result<R, MkAllocError>,
) -> Result<R, MkAllocError> {
    let Some(task) = task_core::current::get() else {
        return scope::with_scope_arena(f);
    };
    // SAFETY: the current task is alive while it is polled on this thread, and only this
    // thread touches its arena slot (header invariant). The slot is read and written through
    // the raw pointer only, never borrowed across `f`, which may free objects and read it.
    let (header, slot) = unsafe { (task.as_ref(), task.as_ref().arena.get()) };
    // SAFETY: as above.
    if unsafe { (*slot).is_null() } {
        // SAFETY: as above.
        unsafe { *slot = create_task_arena(header)?.cast() };
    }
    // SAFETY: a non-null slot holds a live boxed arena owned by the task until it ends.
    f(unsafe { &*(*slot).cast::<Arena>() })
}

/// The arena of a task's first allocation, charged to the task's budget (or the runtime's).
#[cold]
fn create_task_arena(header: &task_core::Header) -> Result<*mut Arena, MkAllocError> {
    let memory = RuntimeMemory::current().ok_or(MkAllocError::NoTask)?;
    let budget = task_core::budget_of(header).unwrap_or_else(|| memory.root().clone());
    let account = header.memory().and_then(|m| m.account_ptr());
    Ok(Box::into_raw(Arena::for_task(
        budget,
        memory.pool().clone(),
        account,
    )))
}

/// The identity of the current task's (or else scope's) arena, null if it has none.
#[inline(always)]
pub(crate) fn current_arena_id() -> *const () {
    match task_core::current::get() {
        // SAFETY: see `with_task_arena`.
        Some(task) => unsafe { *task.as_ref().arena.get() }.cast_const(),
        None => scope::current_arena_id(),
    }
}

/// Drops a task's arena when the task ends; its chunks live on while objects in them do.
///
/// # Safety
/// Called by the thread that owns the task (holding `RUNNING`), once.
pub(crate) unsafe fn drop_task_arena(slot: *mut *mut ()) {
    // SAFETY: caller contract.
    let arena = unsafe { std::mem::replace(&mut *slot, std::ptr::null_mut()) };
    if !arena.is_null() {
        // SAFETY: a non-null slot holds a boxed arena created by `with_task_arena`.
        drop(unsafe { Box::from_raw(arena.cast::<Arena>()) });
    }
}

/// Counts one object of `chunk` as dead, wherever it dies; the bytes that gave back to the
/// budget (the chunk's, if that was the last live object of a retired chunk).
#[inline(always)]
pub(crate) fn free(chunk: Option<NonNull<Chunk>>) -> usize {
    match chunk {
        // SAFETY: called once per allocation, after its value is gone (callers' invariant).
        Some(chunk) => unsafe { Chunk::free_one(chunk, current_arena_id()) },
        None => 0,
    }
}
