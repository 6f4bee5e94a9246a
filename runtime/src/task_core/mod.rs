//! Tasks: the unit of scheduling. Each is one allocation with a header that carries its state,
//! id, memory record and arena pointer.
//!
//! This layer knows nothing of schedulers or runtimes: a task reaches whoever runs it through
//! the [`Schedule`] implementation it was created with. The public `task` module re-exports
//! what users see of it.
//!
//! # Safety: who may touch which part of a task
//!
//! A task is one heap allocation (raw.rs): `Cell<F, S>` = `TaskHead` (the `Header`, the
//! owned-list links, the join waker) + the scheduler handle `S` + the stage (the future, then
//! its output). Every file of this module follows these rules, and the unsafe code of the
//! engine relies on them; the bits named are those of the state word (state.rs).
//!
//! - **References.** The allocation lives while its reference count (in the state word) is
//!   above zero; whoever drops the last reference frees it (`dealloc`). A task starts with three:
//!   the owned list's, the first `Notified`, the `JoinHandle`'s; every `Waker` holds one more.
//!   A reference is what makes any of the rules below usable: nothing touches a task without
//!   holding one (or the lock of an owned-list shard that holds one).
//! - **`Header::state`**: atomic; any holder of a reference, through the named transitions.
//! - **`Header::vtable`, `Header::id`, the scheduler `S`**: written once at creation, read by
//!   any holder of a reference.
//! - **`Header::memory`** (the `TaskMemory` record: budget, heap account, name, poll count, hold
//!   state; memory.rs): null for a plain task, else written once at creation (before the task
//!   is first scheduled) and freed with the allocation; read by any holder of a reference. Its
//!   own fields are atomics or set once, except `held_since`, under its mutex.
//! - **The stage**: only the holder of `RUNNING` (the worker polling the task, or shutdown once
//!   it claimed the task). After `COMPLETE`, the output belongs to the holder of
//!   `JOIN_INTEREST`: the `JoinHandle`, or, once the handle has let go of the bit, whoever
//!   completed the task or dropped the handle, which drops the output.
//! - **`Header::arena`** (the task's arena slot) follows the stage: the holder of `RUNNING`
//!   (allocating through `memory::arena`, which reaches it only while the task is current on
//!   its thread), which frees the arena at completion; after `COMPLETE`, the owner of the
//!   output, which frees any arena the output's drop created. The slot is read and written
//!   through its raw pointer, never borrowed across user code.
//! - **`TaskHead::join_waker`**: the `JoinHandle` writes it only while `JOIN_WAKER` is clear and
//!   the task is not complete, then sets the bit to publish it; whoever completes the task
//!   reads it only if the bit was set at completion. After `COMPLETE` nobody writes it.
//! - **`TaskHead::owned`** (the owned-list links): only under the lock of the owned-list shard
//!   chosen by the task's id (list.rs).
//! - **The current task** (current.rs): a task is current on a thread only while that thread
//!   holds `RUNNING` or owns the output and is polling it or dropping its stage, so a current
//!   task is alive and its arena slot is that thread's to use.
//!
//! `new_task` hands out exactly the three references a new task starts with.

mod abort;
pub(crate) mod current;
mod error;
mod header;
mod id;
mod join;
mod list;
pub(crate) mod memory;
mod raw;
mod state;
mod waker;
mod yield_now;

#[cfg(all(test, loom))]
mod loom_model;

pub use abort::AbortHandle;
pub use error::JoinError;
pub use id::Id;
pub use join::JoinHandle;
pub use yield_now::yield_now;

pub(crate) use header::Header;
pub(crate) use list::OwnedTasks;
pub(crate) use memory::TaskMemory;
pub(crate) use raw::{Notified, RawTask, Task};

use crate::memory::MkBudget;
use std::future::Future;
use std::ptr::NonNull;

/// What a task needs from the scheduler that runs it.
pub(crate) trait Schedule: Send + Sync + Sized + 'static {
    /// Queues a woken task.
    fn schedule(&self, task: Notified);

    /// Queues a task that was woken during its own poll (it yielded): behind the queued ones.
    fn yield_now(&self, task: Notified) {
        self.schedule(task)
    }

    /// The task is completing (before `COMPLETE` is set): take it out of the owned list,
    /// returning the list's reference.
    ///
    /// # Safety
    /// The caller holds a reference to `task` (it completes it).
    unsafe fn release(&self, task: NonNull<Header>) -> Option<Task>;

    /// Holds `task` back for memory (memory.rs's `Gate::Hold`): `budget` is over its limit;
    /// the task is charged to `charged`. A scheduler that cannot hold tasks gives it back, and
    /// it is polled.
    fn hold_for_memory(
        &self,
        task: Notified,
        charged: MkBudget,
        budget: MkBudget,
    ) -> Result<(), Notified> {
        let _ = (charged, budget);
        Err(task)
    }
}

/// Allocates a task: the owned-list reference, the first `Notified` and the join handle.
pub(crate) fn new_task<F, S>(
    future: F,
    scheduler: S,
    id: Id,
    memory: Option<Box<TaskMemory>>,
) -> (Task, Notified, JoinHandle<F::Output>)
where
    F: Future + Send + 'static,
    F::Output: Send + 'static,
    S: Schedule,
{
    let raw = RawTask::new(future, scheduler, id, memory);
    // SAFETY: a new task holds exactly these three references, and its output type is
    // `F::Output`.
    unsafe {
        (
            Task::from_raw(raw),
            Notified::from_raw(raw),
            JoinHandle::new(raw),
        )
    }
}

/// The budget a task is charged to, if it has its own.
pub(crate) fn budget_of(header: &Header) -> Option<MkBudget> {
    header.memory()?.budget.clone()
}

/// The budget of the task being polled on this thread, if it has its own; outside tasks, the
/// budget of the `MkArenaTask` being polled, if any.
pub(crate) fn current_budget() -> Option<MkBudget> {
    match current::get() {
        // SAFETY: the current task is alive while it is polled on this thread.
        Some(t) => budget_of(unsafe { t.as_ref() }),
        None => crate::memory::scope_budget(),
    }
}

/// The id of the task being polled on this thread, or `None` outside a task.
///
/// ```
/// let rt = memkit_async_runtime::Runtime::new().unwrap();
/// let handle = rt.spawn(async { memkit_async_runtime::task::try_id() });
/// let id = handle.id();
/// assert_eq!(rt.block_on(handle).unwrap(), Some(id));
/// assert_eq!(memkit_async_runtime::task::try_id(), None);
/// ```
pub fn try_id() -> Option<Id> {
    // SAFETY: the current task is alive while it is being polled on this thread.
    current::get().map(|t| unsafe { t.as_ref().id })
}

/// The id of the task being polled.
///
/// # Panics
///
/// Outside a spawned task (for example directly inside `block_on`); see [`try_id`].
#[track_caller]
pub fn id() -> Id {
    try_id().expect("`memkit_async::task::id()` called outside a spawned task; use `try_id()` where that can happen")
}
