//! Permits held from an `MkAsyncSemaphore`.

use super::MkAsyncSemaphore;
use std::fmt;
use std::sync::Arc;

/// Permits held from an [`MkAsyncSemaphore`]; dropping the permit releases them (and serves
/// waiting requests, FIFO). `mem::forget` leaks them (they stay taken); prefer
/// [`forget`](Self::forget), which also lowers the semaphore's total.
#[must_use = "dropping the permit releases it at once"]
pub struct MkSemaphorePermit<'a> {
    pub(super) sem: &'a MkAsyncSemaphore,
    pub(super) permits: usize,
}

/// Permits held from an [`MkAsyncSemaphore`] in an `Arc`, from
/// [`acquire_owned`](MkAsyncSemaphore::acquire_owned): `'static`, so it can move into a task.
#[must_use = "dropping the permit releases it at once"]
pub struct MkOwnedSemaphorePermit {
    pub(super) sem: Arc<MkAsyncSemaphore>,
    pub(super) permits: usize,
}

impl MkSemaphorePermit<'_> {
    /// Keeps the permits taken without a permit value; the caller releases them later with
    /// `MkAsyncSemaphore::release` (the pool does, when its guard drops).
    pub(crate) fn keep(self) -> usize {
        let n = self.permits;
        std::mem::forget(self);
        n
    }

    /// Permits held.
    pub fn num_permits(&self) -> usize {
        self.permits
    }

    /// Drops the permits without releasing them: the semaphore's total shrinks by as many.
    /// Waiting requests that no longer fit the new total fail with `ExceedsTotal`.
    pub fn forget(mut self) {
        let n = std::mem::take(&mut self.permits);
        self.sem.forget_permits(n);
    }
}

impl MkOwnedSemaphorePermit {
    /// Permits held.
    pub fn num_permits(&self) -> usize {
        self.permits
    }

    /// The semaphore the permits come from.
    pub fn semaphore(&self) -> &Arc<MkAsyncSemaphore> {
        &self.sem
    }

    /// As [`MkSemaphorePermit::forget`].
    pub fn forget(mut self) {
        let n = std::mem::take(&mut self.permits);
        self.sem.forget_permits(n);
    }
}

impl Drop for MkSemaphorePermit<'_> {
    fn drop(&mut self) {
        self.sem.release(self.permits);
    }
}

impl Drop for MkOwnedSemaphorePermit {
    fn drop(&mut self) {
        self.sem.release(self.permits);
    }
}

impl fmt::Debug for MkSemaphorePermit<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MkSemaphorePermit")
            .field("permits", &self.permits)
            .finish_non_exhaustive()
    }
}

impl fmt::Debug for MkOwnedSemaphorePermit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MkOwnedSemaphorePermit")
            .field("permits", &self.permits)
            .finish_non_exhaustive()
    }
}
