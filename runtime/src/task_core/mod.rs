//! Tasks: the unit of scheduling. Each is one allocation with a header that carries its state,
//! id, budget slot and arena pointer.
//!
//! This layer knows nothing of schedulers or runtimes: a task reaches whoever runs it through
//! the [`Schedule`] implementation it was created with. The public `task` module re-exports
//! what users see of it.
//!
//! Invariants of the unsafe calls here: `new_task` hands out exactly the three references a new
//! task starts with; the current task (`current`) is alive while it is polled.

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

    /// The task completed: take it out of the owned list, returning the list's reference.
    fn release(&self, task: NonNull<Header>) -> Option<Task>;

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
