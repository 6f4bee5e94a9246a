//! Why a semaphore gave no permits.

use std::fmt;

/// Why [`MkAsyncSemaphore`](crate::MkAsyncSemaphore) gave no permits. Every message says what
/// was asked, what the limit is and what to change.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum MkSemaphoreError {
    /// The semaphore was [closed](crate::MkAsyncSemaphore::close), before or while the
    /// request waited.
    Closed,
    /// More permits were asked for than the semaphore has in total (created, plus added, minus
    /// forgotten), so the request could only wait forever. Also returned to a waiting request
    /// when [`forget`](crate::MkSemaphorePermit::forget) lowers the total below it.
    ExceedsTotal {
        /// Permits requested.
        requested: usize,
        /// Permits the semaphore has in total.
        total: usize,
    },
    /// `try_acquire`: not enough permits are available now, or requests are queued ahead (they
    /// are served first, in FIFO order).
    NoPermits {
        /// Permits requested.
        requested: usize,
        /// Permits available when the request was refused.
        available: usize,
    },
}

impl fmt::Display for MkSemaphoreError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            MkSemaphoreError::Closed => f.write_str(
                "the semaphore is closed: no permits are handed out after \
                 `MkAsyncSemaphore::close`",
            ),
            MkSemaphoreError::ExceedsTotal { requested, total } => write!(
                f,
                "requested {requested} permits from a semaphore that has {total} in total, so \
                 the request could never be served; request at most {total}, or call \
                 `add_permits` first"
            ),
            MkSemaphoreError::NoPermits {
                requested,
                available,
            } => write!(
                f,
                "requested {requested} permits with {available} available (or requests queued \
                 ahead); wait with `acquire_many`, or release permits sooner"
            ),
        }
    }
}

impl std::error::Error for MkSemaphoreError {}
