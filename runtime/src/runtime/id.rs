//! `runtime::Id`: what tells one runtime from another in a process.

use std::fmt;
use std::num::NonZeroU64;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

/// An opaque identifier of a runtime, unique among the runtimes this process has built (ids
/// are not reused). Read it with [`Handle::id`](crate::Handle::id), e.g. to key per-runtime
/// state or to tell runtimes apart in logs.
///
/// ```
/// let a = memkit_async_runtime::Runtime::new().unwrap();
/// let b = memkit_async_runtime::Runtime::new().unwrap();
/// assert_ne!(a.handle().id(), b.handle().id());
/// assert_eq!(a.handle().id(), a.handle().clone().id());
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Id(NonZeroU64);

impl Id {
    /// A new id, never handed out before in this process.
    pub(crate) fn next() -> Id {
        static NEXT: AtomicU64 = AtomicU64::new(1);
        // 2^64 runtimes cannot be built in a process's lifetime: the count never wraps to 0.
        Id(NonZeroU64::new(NEXT.fetch_add(1, Relaxed)).expect("runtime ids exhausted"))
    }
}

impl fmt::Display for Id {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}
