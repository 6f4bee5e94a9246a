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
        }
    }
}

impl std::error::Error for MkAllocError {}
