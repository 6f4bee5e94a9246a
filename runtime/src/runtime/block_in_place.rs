//! `block_in_place`: blocking code inside a task without stalling the other tasks of its
//! worker. The worker's state (its queues, its index, its heap shard) moves to a new thread that
//! continues the worker loop; the calling thread stops being a worker, runs the closure, finishes
//! the task's poll and exits, so the number of running workers stays the same.

use super::{context, Handle};
use crate::heap;
use crate::scheduler;

/// Runs the blocking closure `f` on the current thread, letting the other tasks of this worker
/// go on meanwhile.
///
/// On a worker of the multi-thread runtime, the worker's role (its queued tasks, its index,
/// the timers and I/O it turns) moves to a new thread first, so the runtime keeps all its
/// workers running, even a 1-worker runtime; this thread runs `f`, finishes the poll of the
/// task that called it, then exits. The task stays current while `f` runs: memory `f`
/// allocates is charged to the task's budget, and [`Handle::block_on`] may be called inside
/// `f`. Everything else the task awaits in the same poll waits for `f` (use
/// [`spawn_blocking`](crate::spawn_blocking) to run it beside the task instead).
///
/// Outside a runtime, on a `block_on` thread, inside `spawn_blocking` or where the worker
/// cannot be handed off (a waker or destructor run by the worker between polls), it just runs
/// `f`. If no thread can be started, `f` runs on the worker, which waits for it.
///
/// # Panics
///
/// On a current-thread runtime ([`Builder::new_current_thread`](crate::Builder::new_current_thread)):
/// its only thread is the one that would block, so the other tasks could not run; use
/// [`spawn_blocking`](crate::spawn_blocking), or a multi-thread runtime. A panic in `f`
/// propagates to the caller (in a task: it becomes the task's panic).
///
/// ```
/// let rt = memkit_async_runtime::Builder::new().worker_threads(1).build().unwrap();
/// let sum = rt.block_on(rt.spawn(async {
///     memkit_async_runtime::task::block_in_place(|| (1..=10u64).sum::<u64>())
/// }));
/// assert_eq!(sum.unwrap(), 55);
/// ```
#[track_caller]
pub fn block_in_place<F, R>(f: F) -> R
where
    F: FnOnce() -> R,
{
    if scheduler::on_current_thread_worker() {
        panic!(
            "`block_in_place` called on a current-thread runtime: its only thread runs every \
             task, and blocking it would stall them all; use `spawn_blocking`, or build a \
             multi-thread runtime (`Builder::new_multi_thread`, `flavor = \"multi_thread\"`)"
        );
    }
    if let Some(parts) = scheduler::hand_off() {
        // The new thread and its bookkeeping are the runtime's memory, not the task's.
        let _engine = heap::engine();
        let shard = heap::leave_worker();
        // A worker thread always has its runtime entered.
        let kept = match context::current() {
            Some(handle) => start_worker(&handle, parts),
            None => Some(parts),
        };
        if let Some(parts) = kept {
            // No thread: keep the worker, and block it for the duration of `f`.
            heap::rejoin_worker(shard);
            scheduler::take_back(parts);
        }
    }
    // A thread that runs no other tasks (any more) may block on futures inside `f`; a worker
    // that kept its role (no thread could start) may not.
    let _not_driving = (!scheduler::on_worker()).then(crate::context::suspend_driving);
    f()
}

/// Starts a thread that takes over the worker `parts`; gives them back if none can start.
fn start_worker(handle: &Handle, parts: scheduler::WorkerParts) -> Option<scheduler::WorkerParts> {
    let scheduler = handle.scheduler();
    if !scheduler.worker_starting() {
        // Shutdown has begun: the worker loop stops after this poll anyway.
        return Some(parts);
    }
    match handle.threads().spawn(handle, parts) {
        Ok(()) => None,
        Err((_, parts)) => {
            scheduler.worker_exited();
            parts
        }
    }
}
