//! What this thread is, as plain data every layer may read: the index of the worker it is (set
//! by the scheduler for the life of a worker thread) and whether it already drives futures
//! (`block_on` must not nest on a worker or inside another `block_on`).
//!
//! Only the utilities lie below it (see `.ci/layers.py`): it names no type of the layers above.
//! Each layer keeps its own "current" state next to its types: the task being polled
//! (`task_core::current`), the worker (`scheduler::worker`), the arena scope
//! (`memory::arena::scope`), the runtime's memory (`memory::RuntimeMemory`), its driver
//! (`driver`) and its handle (`runtime::context`).

use std::cell::{Cell, RefCell};
use std::task::Waker;

/// Said by every entry point that needs a runtime and finds none on the thread.
pub(crate) const NO_RUNTIME: &str = "there is no memkit-async runtime on this thread: call this \
     from inside `Runtime::block_on`, a spawned task, a `#[memkit_async::main]` function or \
     after `Runtime::enter`, or keep a `Handle` and call its methods";

const NOT_A_WORKER: usize = usize::MAX;

thread_local! {
    // Plain cells without destructors: a const thread-local access with no liveness check.
    static WORKER_INDEX: Cell<usize> = const { Cell::new(NOT_A_WORKER) };
    static DRIVING: Cell<bool> = const { Cell::new(false) };
}

thread_local! {
    /// Wakers of the tasks that yielded on this worker (`task::yield_now`): woken once the
    /// worker has turned its driver.
    static DEFERRED: RefCell<Vec<Waker>> = const { RefCell::new(Vec::new()) };
}

/// Keeps `waker` until this worker's next driver turn; `false` (nothing kept) off the workers.
pub(crate) fn defer(waker: &Waker) -> bool {
    if worker_index().is_none() {
        return false;
    }
    // The list is the worker's, not the yielding task's memory.
    let _engine = crate::heap::engine();
    DEFERRED
        .try_with(|d| d.borrow_mut().push(waker.clone()))
        .is_ok()
}

/// Whether tasks that yielded on this thread wait for its next driver turn.
pub(crate) fn has_deferred() -> bool {
    DEFERRED
        .try_with(|d| !d.borrow().is_empty())
        .unwrap_or(false)
}

/// Swaps this thread's wakers of the tasks that yielded with `batch` (passed in empty): the
/// caller wakes them from `batch` and passes the emptied buffer back next time, so a worker
/// whose tasks keep yielding allocates nothing per round (a reallocation takes the allocator's
/// arena lock, which two workers sharing an arena then contend on).
pub(crate) fn swap_deferred(batch: &mut Vec<Waker>) {
    let _ = DEFERRED.try_with(|d| std::mem::swap(&mut *d.borrow_mut(), batch));
}

/// The wakers of the tasks that yielded on this thread since the last call.
pub(crate) fn take_deferred() -> Vec<Waker> {
    DEFERRED
        .try_with(|d| std::mem::take(&mut *d.borrow_mut()))
        .unwrap_or_default()
}

/// Index (0-based) of the worker thread this code runs on, `None` off the workers.
#[inline]
pub(crate) fn worker_index() -> Option<usize> {
    let index = WORKER_INDEX.get();
    (index != NOT_A_WORKER).then_some(index)
}

/// Marks this thread as worker `index` until the guard drops.
pub(crate) fn enter_worker(index: usize) -> WorkerGuard {
    WorkerGuard(WORKER_INDEX.replace(index))
}

/// Stops being a worker (its role went to another thread); the guard of `enter_worker` still
/// restores the index it replaced.
pub(crate) fn leave_worker() {
    WORKER_INDEX.set(NOT_A_WORKER);
}

/// Becomes worker `index` again after `leave_worker`.
pub(crate) fn rejoin_worker(index: usize) {
    WORKER_INDEX.set(index);
}

/// Restores the previous worker index on drop.
pub(crate) struct WorkerGuard(usize);

impl Drop for WorkerGuard {
    fn drop(&mut self) {
        WORKER_INDEX.set(self.0);
    }
}

/// Marks the thread as driving futures until dropped.
pub(crate) struct DrivingGuard(());

/// # Panics
/// If this thread already drives futures: blocking it would stall every task it runs.
#[track_caller]
pub(crate) fn enter_driving() -> DrivingGuard {
    if DRIVING.replace(true) {
        panic!(
            "cannot block on a future inside a memkit-async runtime: this thread already drives \
             asynchronous tasks (it is a worker, or inside another `block_on`), and blocking it \
             would stall them; `.await` the future instead, or call `block_on` from \
             `spawn_blocking` or from a thread of your own"
        );
    }
    DrivingGuard(())
}

/// Lets the thread block on futures again until dropped (it stopped being a worker for
/// `block_in_place`, or is a `block_on` thread running a blocking closure).
pub(crate) fn suspend_driving() -> Suspended {
    Suspended(DRIVING.replace(false))
}

/// Restores the driving mark on drop.
pub(crate) struct Suspended(bool);

impl Drop for Suspended {
    fn drop(&mut self) {
        DRIVING.set(self.0);
    }
}

impl Drop for DrivingGuard {
    fn drop(&mut self) {
        DRIVING.set(false);
    }
}
