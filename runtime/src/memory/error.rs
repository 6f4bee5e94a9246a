//! Why a memory request was refused.

use std::fmt;
use std::time::Duration;

/// Why a memory request was refused. Every message says what was asked, what the limit is and
/// what to change.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum MkAllocError {
    /// The budget is full and its policy does not wait (`Fail`, or `Evict` with nothing left to
    /// evict).
    CapacityReached {
        /// Bytes requested.
        requested: usize,
        /// Limit of the budget that is full.
        limit: usize,
        /// Bytes in use in that budget when the request was refused.
        used: usize,
    },
    /// `Timeout(d)`: the request waited `d` without enough bytes being released.
    TimedOut {
        /// Bytes requested.
        requested: usize,
        /// Limit of the budget that was full.
        limit: usize,
        /// Bytes in use in that budget when the wait ended.
        used: usize,
        /// How long the request waited.
        waited: Duration,
    },
    /// The request is larger than a budget's whole limit: it can never fit, under any policy.
    ExceedsLimit {
        /// Bytes requested.
        requested: usize,
        /// Limit of the smallest budget on the request's path to the root.
        limit: usize,
    },
    /// Task-arena allocation (`MkAsyncBox`, `MkAsyncVec`) outside a task spawned on a
    /// memkit-async runtime and outside an [`MkArenaTask`](super::MkArenaTask): there is no
    /// task arena to allocate in.
    NoTask,
    /// Frame allocation (`MkAsyncFrameAlloc::alloc`) with no frame open in the current task, or
    /// after the frame it started in was closed.
    NoFrame,
    /// The type's alignment is above what arena chunks provide.
    AlignmentTooLarge {
        /// Alignment requested.
        align: usize,
        /// Largest supported alignment.
        max: usize,
    },
    /// The size in bytes overflows (`size_of::<T>() * count`, or rounding it to a chunk).
    SizeOverflow {
        /// Bytes requested, saturated at `usize::MAX`.
        requested: usize,
    },
    /// The system allocator refused a chunk.
    SystemOutOfMemory {
        /// Chunk bytes requested.
        requested: usize,
    },
}

impl fmt::Display for MkAllocError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            MkAllocError::CapacityReached {
                requested,
                limit,
                used,
            } => write!(
                f,
                "memory budget full: requested {requested} bytes with {used} of {limit} bytes in \
                 use (or queued for by waiting tasks); raise the budget's limit, release memory \
                 sooner, or use the Wait, Timeout or Evict policy"
            ),
            MkAllocError::TimedOut {
                requested,
                limit,
                used,
                waited,
            } => write!(
                f,
                "memory budget timeout: requested {requested} bytes and waited {waited:?} while \
                 {used} of {limit} bytes stayed in use; raise the limit or the timeout, or \
                 release memory sooner"
            ),
            MkAllocError::ExceedsLimit { requested, limit } => write!(
                f,
                "request of {requested} bytes exceeds the budget limit of {limit} bytes and can \
                 never fit; raise the limit (and its parents') above {requested} bytes or split \
                 the request"
            ),
            MkAllocError::NoTask => f.write_str(
                "arena allocation outside a memkit-async task: `MkAsyncBox` and `MkAsyncVec` \
                 live in the arena of the task that creates them; create them inside a task \
                 spawned with `memkit_async::spawn`, inside a future wrapped in `MkArenaTask` \
                 (in tokio: `memkit_async::tokio::spawn_with_budget`), or allocate in an \
                 explicit `MkArena`",
            ),
            MkAllocError::NoFrame => f.write_str(
                "frame allocation with no open frame in this task: open one with \
                 `begin_frame().await` in the task that allocates, and keep its guard alive \
                 while allocating",
            ),
            MkAllocError::AlignmentTooLarge { align, max } => write!(
                f,
                "alignment of {align} bytes is above the arena maximum of {max} bytes; use a \
                 type aligned to at most {max} bytes, or a regular `Box` for this one"
            ),
            MkAllocError::SizeOverflow { requested } => write!(
                f,
                "allocation size overflows ({requested} bytes or more); request fewer elements"
            ),
            MkAllocError::SystemOutOfMemory { requested } => write!(
                f,
                "the system allocator refused a chunk of {requested} bytes; lower the memory \
                 limits so budgets refuse requests before the system does"
            ),
        }
    }
}

impl std::error::Error for MkAllocError {}
