//! What a budget does when a request does not fit.

use std::time::Duration;

/// The backpressure policy of an [`MkBudget`](crate::memory::MkBudget): what happens when a
/// request does not fit under the limit.
///
/// A request larger than the whole limit can never fit; every policy fails it at once with
/// [`MkAllocError::ExceedsLimit`](crate::memory::MkAllocError::ExceedsLimit).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum MkBackpressure {
    /// Park the requesting task (no CPU) until enough bytes are released; requests are served in
    /// FIFO order, so a large request at the head is not starved by small ones. Only releases
    /// serve waiters: memory held by an evictable cache is reclaimed for `Evict` requests, not
    /// for waiting ones.
    #[default]
    Wait,
    /// Fail at once with [`MkAllocError::CapacityReached`](crate::memory::MkAllocError::CapacityReached).
    Fail,
    /// Wait like `Wait` for at most this long, then fail with
    /// [`MkAllocError::TimedOut`](crate::memory::MkAllocError::TimedOut).
    Timeout(Duration),
    /// Ask the evictable consumers registered on the full budget (caches, buffers) to drop their
    /// oldest entries until the request fits; `CapacityReached` if nothing more can be evicted.
    Evict,
}
