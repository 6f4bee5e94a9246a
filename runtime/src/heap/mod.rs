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
pub(crate) use local::{engine, enter_worker, exempt, Scope};

/// Heap bytes allocated outside any memkit task (on plain threads, before `main`, by the
/// runtime's own bookkeeping outside polls) and still live, process-wide, with
/// [`MkGlobalAlloc`] installed. Each thread publishes in steps of 64 KiB, so the figure is
/// within 64 KiB per thread of the exact one.
pub fn unattributed_bytes() -> i64 {
    local::unattributed_bytes()
}
