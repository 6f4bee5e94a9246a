//! Why a pool refused to hand out an object.

use memkit_async_runtime::memory::MkAllocError;
use std::fmt;
use std::time::Duration;

/// Why [`MkAsyncPool::acquire`](crate::MkAsyncPool::acquire) or
/// [`try_acquire`](crate::MkAsyncPool::try_acquire) gave no object. Every message says what was
/// asked, what the limit is and what to change.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum MkPoolError {
    /// The pool was [closed](crate::MkAsyncPool::close), before or while the request waited.
    Closed,
    /// The pool was created with capacity 0: it can never hold an object.
    ZeroCapacity,
    /// Every object is in use and the request does not wait: the `Fail` or `Evict` policy, or
    /// `try_acquire`, or requests already queued ahead (served first, in FIFO order).
    Exhausted {
        /// Objects the pool may hold at once.
        capacity: usize,
        /// Objects in use when the request was refused.
        in_use: usize,
    },
    /// `Timeout(d)`: no object was returned within `d`.
    TimedOut {
        /// Objects the pool may hold at once.
        capacity: usize,
        /// How long the request waited.
        waited: Duration,
    },
    /// A new object was needed and the pool's byte budget refused its bytes (per that budget's
    /// own policy).
    Budget(MkAllocError),
}

impl fmt::Display for MkPoolError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            MkPoolError::Closed => f.write_str(
                "the pool is closed: no object is handed out after `MkAsyncPool::close`; \
                 create a new pool",
            ),
            MkPoolError::ZeroCapacity => f.write_str(
                "the pool has capacity 0 and can never hand out an object; create it with a \
                 capacity of at least 1",
            ),
            MkPoolError::Exhausted { capacity, in_use } => write!(
                f,
                "pool exhausted: {in_use} of {capacity} objects in use (or requests queued \
                 ahead); raise the capacity, return objects sooner, or use the Wait or Timeout \
                 policy"
            ),
            MkPoolError::TimedOut { capacity, waited } => write!(
                f,
                "pool timeout: waited {waited:?} while all {capacity} objects stayed in use; \
                 raise the capacity or the timeout, or return objects sooner"
            ),
            MkPoolError::Budget(e) => write!(f, "the pool could not create an object: {e}"),
        }
    }
}

impl std::error::Error for MkPoolError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            MkPoolError::Budget(e) => Some(e),
            _ => None,
        }
    }
}
