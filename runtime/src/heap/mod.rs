//! Heap accounting: [`MkGlobalAlloc`] charges ordinary heap memory to the budget of the task
//! that allocates it, so a runtime's memory limit and its tasks' budgets bound all of their
//! memory, not only what lives in memkit's own containers.
//!
//! - `account.rs`: the counters bytes are charged to, and how long they live.
//! - `local.rs`: the per-thread state of the allocation fast path.
//! - `global.rs`: the `GlobalAlloc` itself and its trailer.

mod account;
mod global;
mod local;
#[cfg(all(test, loom))]
mod loom_heap;
#[cfg(all(test, not(loom)))]
mod tests;

pub use global::MkGlobalAlloc;

pub(crate) use account::{Account, AccountRef, Shard, MAX_BYTES};
pub(crate) use global::{installed, release_retained};
pub(crate) use local::{
    engine, enter_worker, exempt, leave_worker, rejoin_worker, Scope, WorkerShard,
};

/// Heap bytes allocated outside any memkit task (on plain threads, before `main`, by the
/// runtime's own bookkeeping outside polls) and still live, process-wide, with
/// [`MkGlobalAlloc`] installed. Each thread publishes in steps of 64 KiB, so the figure is
/// within 64 KiB per thread of the exact one.
pub fn unattributed_bytes() -> i64 {
    local::unattributed_bytes()
}

/// Runs `f` with its allocations unattributed: memory `f` allocates is counted as
/// [`unattributed_bytes`], not charged to the task being polled (nor enforced against its
/// budget), however long it lives. Frees inside `f` are still credited to whoever paid.
///
/// For the few allocations a task makes on behalf of the whole process, such as an entry in a
/// process-wide registry that outlives the task, which would otherwise stay charged to the
/// task's budget after the task is gone.
///
/// ```
/// use std::sync::Mutex;
///
/// static NAMES: Mutex<Vec<String>> = Mutex::new(Vec::new());
///
/// let rt = memkit_async_runtime::Runtime::new().unwrap();
/// rt.block_on(async {
///     memkit_async_runtime::heap::unattributed(|| {
///         NAMES.lock().unwrap().push("registered by a task".to_string())
///     });
/// });
/// assert_eq!(NAMES.lock().unwrap().len(), 1);
/// ```
pub fn unattributed<R>(f: impl FnOnce() -> R) -> R {
    let _detached = local::detach();
    f()
}
