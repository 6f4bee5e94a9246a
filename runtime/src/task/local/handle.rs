//! `LocalJoinHandle`: awaiting, aborting and inspecting one local task.

use super::super::{Id, JoinError};
use super::task::Joinable;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::rc::Rc;
use std::task::{ready, Context, Poll};

/// An owned permission to await the output of a task spawned with
/// [`spawn_local`](super::spawn_local) or [`LocalSet::spawn_local`](super::LocalSet::spawn_local).
///
/// Awaiting it yields `Ok(output)`, or a [`JoinError`] if the task panicked
/// ([`is_panic`](JoinError::is_panic)) or was cancelled ([`is_cancelled`](JoinError::is_cancelled):
/// aborted, or dropped with its [`LocalSet`](super::LocalSet)). Dropping it detaches the task:
/// the task keeps running and its output is dropped when it completes.
///
/// The handle is `!Send`, like the set: it stays on the thread of the set's tasks.
pub struct LocalJoinHandle<T> {
    cell: Rc<dyn Joinable<T>>,
}

impl<T> LocalJoinHandle<T> {
    pub(super) fn new(cell: Rc<dyn Joinable<T>>) -> LocalJoinHandle<T> {
        LocalJoinHandle { cell }
    }

    /// Cancels the task: a task that has not finished has its future dropped the next time its
    /// set runs (never in the middle of its poll; a task that aborts itself is dropped when its
    /// poll returns), or when the set is dropped, and this handle resolves to a [`JoinError`]
    /// for which [`is_cancelled`](JoinError::is_cancelled) is `true`. Aborting a finished task
    /// does nothing.
    ///
    /// ```
    /// use memkit_async_runtime::task::LocalSet;
    ///
    /// let rt = memkit_async_runtime::Runtime::new().unwrap();
    /// let set = LocalSet::new();
    /// let handle = set.spawn_local(std::future::pending::<()>());
    /// handle.abort();
    /// assert!(set.block_on(&rt, handle).unwrap_err().is_cancelled());
    /// ```
    pub fn abort(&self) {
        self.cell.join().abort();
    }

    /// `true` once the task has finished: with an output, a panic or a cancellation.
    pub fn is_finished(&self) -> bool {
        self.cell.join().is_finished()
    }

    /// The task's id (unique among all tasks of the process, local or not).
    pub fn id(&self) -> Id {
        self.cell.join().id()
    }
}

impl<T> Future for LocalJoinHandle<T> {
    type Output = Result<T, JoinError>;

    /// # Panics
    ///
    /// If polled again after it returned `Poll::Ready`.
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        // A joined task is an operation on a memkit resource: one unit of the budget.
        let unit = ready!(crate::coop::poll_proceed(cx));
        let out = self.cell.join().poll_outcome(cx.waker());
        if out.is_ready() {
            unit.made_progress();
        }
        out
    }
}

impl<T> Drop for LocalJoinHandle<T> {
    fn drop(&mut self) {
        self.cell.join().detach();
    }
}

impl<T> fmt::Debug for LocalJoinHandle<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LocalJoinHandle")
            .field("id", &self.id())
            .field("finished", &self.is_finished())
            .finish()
    }
}
