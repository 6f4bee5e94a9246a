//! Per-thread runtime context: the runtime handle that `spawn` uses, the worker this thread
//! is (for local scheduling), the task being polled (how arena allocation finds its arena),
//! the arena scope being polled outside memkit tasks (memory/scope.rs), and whether the thread
//! is already driving futures (`block_on` must not nest).
//!
//! Invariant: the worker pointer is set only by the worker loop, to a `Core` that lives on the
//! loop's stack frame for as long as the pointer is set (the guard clears it before the frame
//! ends), and is only dereferenced on that thread. The scope pointer follows the same rule for
//! the `Scope` of the `MkArenaTask` being polled or dropped (memory/scope.rs).

use crate::memory::Scope;
use crate::runtime::Handle;
use crate::scheduler::Core;
use crate::task::Header;
use std::cell::{Cell, RefCell};
use std::ptr::{self, NonNull};

struct Context {
    handle: RefCell<Option<Handle>>,
    driving: Cell<bool>,
}

thread_local! {
    static CONTEXT: Context = const {
        Context {
            handle: RefCell::new(None),
            driving: Cell::new(false),
        }
    };

    // Kept apart from `CONTEXT`: without a destructor these compile to a plain thread-local
    // access (no liveness check), which the poll loop and every arena allocation pay.
    static TASK: Cell<Option<NonNull<Header>>> = const { Cell::new(None) };
    static WORKER: Cell<*const Core> = const { Cell::new(ptr::null()) };
    // Consulted only when no task is current, so the task fast path never reads it.
    static SCOPE: Cell<Option<NonNull<Scope>>> = const { Cell::new(None) };
}

/// Restores the previous current task on drop.
pub(crate) struct TaskGuard(Option<NonNull<Header>>);

#[inline]
pub(crate) fn enter_task(task: NonNull<Header>) -> TaskGuard {
    TaskGuard(TASK.replace(Some(task)))
}

impl Drop for TaskGuard {
    #[inline]
    fn drop(&mut self) {
        TASK.set(self.0);
    }
}

#[inline]
pub(crate) fn current_task() -> Option<NonNull<Header>> {
    TASK.get()
}

/// Restores the previous current task and scope on drop.
pub(crate) struct ScopeGuard {
    task: Option<NonNull<Header>>,
    scope: Option<NonNull<Scope>>,
}

/// Makes `scope` the current arena scope. A memkit task being polled on this thread is hidden
/// until the guard drops: the innermost arena owner is the one allocations go to.
pub(crate) fn enter_scope(scope: NonNull<Scope>) -> ScopeGuard {
    ScopeGuard {
        task: TASK.replace(None),
        scope: SCOPE.replace(Some(scope)),
    }
}

impl Drop for ScopeGuard {
    fn drop(&mut self) {
        TASK.set(self.task);
        SCOPE.set(self.scope);
    }
}

pub(crate) fn current_scope() -> Option<NonNull<Scope>> {
    SCOPE.get()
}

/// Restores the previous runtime handle on drop.
pub(crate) struct HandleGuard(Option<Handle>);

pub(crate) fn set_handle(handle: Handle) -> HandleGuard {
    HandleGuard(
        CONTEXT
            .try_with(|c| c.handle.replace(Some(handle)))
            .unwrap_or(None),
    )
}

impl Drop for HandleGuard {
    fn drop(&mut self) {
        let prev = self.0.take();
        let _ = CONTEXT.try_with(|c| *c.handle.borrow_mut() = prev);
    }
}

pub(crate) fn current_handle() -> Option<Handle> {
    CONTEXT
        .try_with(|c| c.handle.borrow().clone())
        .unwrap_or(None)
}

/// Marks the thread as driving futures until dropped.
pub(crate) struct DrivingGuard(());

/// # Panics
/// If this thread already drives futures: blocking it would stall every task it runs.
#[track_caller]
pub(crate) fn enter_driving() -> DrivingGuard {
    let nested = CONTEXT.with(|c| c.driving.replace(true));
    if nested {
        panic!(
            "cannot block on a future inside a memkit-async runtime: this thread already drives \
             asynchronous tasks (it is a worker, or inside another `block_on`), and blocking it \
             would stall them; `.await` the future instead, or call `block_on` from \
             `spawn_blocking` or from a thread of your own"
        );
    }
    DrivingGuard(())
}

impl Drop for DrivingGuard {
    fn drop(&mut self) {
        let _ = CONTEXT.try_with(|c| c.driving.set(false));
    }
}

/// Clears the worker pointer on drop.
pub(crate) struct WorkerGuard(());

pub(crate) fn set_worker(core: &Core) -> WorkerGuard {
    WORKER.set(core);
    WorkerGuard(())
}

impl Drop for WorkerGuard {
    fn drop(&mut self) {
        WORKER.set(ptr::null());
    }
}

/// Runs `f` with this thread's worker, if it is one.
#[inline]
pub(crate) fn with_worker<R>(f: impl FnOnce(Option<&Core>) -> R) -> R {
    let core = WORKER.get();
    // SAFETY: a non-null pointer is a live `Core` on this thread's worker frame (file invariant).
    f(unsafe { core.as_ref() })
}
