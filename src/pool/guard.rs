//! `MkPoolGuard`: an object on loan from an `MkAsyncPool`.

use super::entry::Entry;
use super::Shared;
use crate::semaphore::MkAsyncSemaphore;
use std::fmt;
use std::ops::{Deref, DerefMut};
use std::sync::Arc;

/// An object on loan from an [`MkAsyncPool`](crate::MkAsyncPool); dereferences to it.
///
/// Dropping the guard returns the object to the pool (after the pool's reset hook) and then
/// serves the next waiting request, FIFO. The guard is `Send` when `T` is: it may be dropped in
/// another task or thread, which returns the object just the same. After the pool is closed,
/// dropping a guard drops its object instead. `mem::forget` of a guard keeps its object counted
/// as in use forever (the pool then holds one fewer object); it is never undefined behaviour.
#[must_use = "dropping the guard returns the object to the pool at once"]
pub struct MkPoolGuard<T: Send + 'static> {
    /// `None` only once detached (the guard is then consumed) or while dropping.
    entry: Option<Box<Entry<T>>>,
    /// Also holds the turn (one permit of `shared.turns`) this object is held under, given
    /// back in `Drop` once the object is back, so the next request finds it.
    shared: Arc<Shared<T>>,
}

impl<T: Send + 'static> MkPoolGuard<T> {
    /// A guard for `entry`, holding one permit of `shared.turns` taken by the caller.
    pub(super) fn new(entry: Box<Entry<T>>, shared: Arc<Shared<T>>) -> MkPoolGuard<T> {
        MkPoolGuard {
            entry: Some(entry),
            shared,
        }
    }

    /// Takes the object out of the pool for good: it no longer counts against the pool's
    /// capacity or byte budget, and the pool may create another in its place.
    ///
    /// ```
    /// use memkit_async::{MkAsyncPool, MkBackpressure};
    ///
    /// let pool: MkAsyncPool<String> = MkAsyncPool::new(1, MkBackpressure::Fail);
    /// let s: String = pool.try_acquire().unwrap().detach();
    /// assert_eq!((pool.live(), pool.in_use()), (0, 0));
    /// drop(s);
    /// ```
    pub fn detach(mut self) -> T {
        match self.entry.take() {
            Some(entry) => entry.into_value(),
            None => unreachable!("a guard holds its object until it is consumed"),
        }
    }

    fn entry(&self) -> &Entry<T> {
        match &self.entry {
            Some(entry) => entry,
            None => unreachable!("a guard holds its object until it is consumed"),
        }
    }
}

impl<T: Send + 'static> Deref for MkPoolGuard<T> {
    type Target = T;

    fn deref(&self) -> &T {
        &self.entry().value
    }
}

impl<T: Send + 'static> DerefMut for MkPoolGuard<T> {
    fn deref_mut(&mut self) -> &mut T {
        match &mut self.entry {
            Some(entry) => &mut entry.value,
            None => unreachable!("a guard holds its object until it is consumed"),
        }
    }
}

impl<T: Send + 'static> Drop for MkPoolGuard<T> {
    fn drop(&mut self) {
        // Runs after `give_back`, even if the reset hook panics in it.
        let _turn = TurnBack(&self.shared.turns);
        if let Some(entry) = self.entry.take() {
            self.shared.give_back(entry);
        }
    }
}

/// Gives one turn back to the pool when dropped.
struct TurnBack<'a>(&'a MkAsyncSemaphore);

impl Drop for TurnBack<'_> {
    fn drop(&mut self) {
        self.0.release(1);
    }
}

impl<T: Send + 'static + fmt::Debug> fmt::Debug for MkPoolGuard<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("MkPoolGuard").field(&**self).finish()
    }
}
