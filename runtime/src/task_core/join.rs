//! `JoinHandle`: the owned permission to await a task's output.
//!
//! Invariants: a `JoinHandle<T>` owns the join-interest reference of a task whose output type is
//! `T`, and gives it back exactly once, in `drop`.

use super::{AbortHandle, Id, JoinError, RawTask};
use std::fmt;
use std::future::Future;
use std::marker::PhantomData;
use std::pin::Pin;
use std::task::{Context, Poll};

/// An owned permission to await a spawned task's output.
///
/// Awaiting it yields `Ok(output)`, or a [`JoinError`] if the task panicked or was cancelled.
/// Dropping it detaches the task: the task keeps running and its output is dropped when it
/// completes.
///
/// ```
/// let rt = memkit_async_runtime::Runtime::new().unwrap();
/// let handle = rt.spawn(async { 6 * 7 });
/// assert_eq!(rt.block_on(handle).unwrap(), 42);
/// ```
pub struct JoinHandle<T> {
    raw: RawTask,
    _output: PhantomData<T>,
}

// SAFETY: the handle only moves the output `T` out of the task, so it is `Send` when `T` is.
unsafe impl<T: Send> Send for JoinHandle<T> {}
// SAFETY: no `&self` method touches the output.
unsafe impl<T: Send> Sync for JoinHandle<T> {}

impl<T> Unpin for JoinHandle<T> {}

impl<T> JoinHandle<T> {
    /// # Safety
    /// `raw` is a task whose output type is `T`; its join-handle reference moves in.
    pub(crate) unsafe fn new(raw: RawTask) -> JoinHandle<T> {
        JoinHandle {
            raw,
            _output: PhantomData,
        }
    }

    /// Cancels the task. A task that has not completed has its future dropped (on a worker, at
    /// its next scheduling point, never in the middle of a poll) and this handle resolves to a
    /// [`JoinError`] for which [`is_cancelled`](JoinError::is_cancelled) is `true`. Aborting a
    /// completed task does nothing.
    ///
    /// ```
    /// let rt = memkit_async_runtime::Runtime::new().unwrap();
    /// let handle = rt.spawn(std::future::pending::<()>());
    /// handle.abort();
    /// assert!(rt.block_on(handle).unwrap_err().is_cancelled());
    /// ```
    pub fn abort(&self) {
        self.raw.remote_abort();
    }

    /// A handle that can abort the task from anywhere, without owning its output.
    pub fn abort_handle(&self) -> AbortHandle {
        AbortHandle::new(self.raw)
    }

    /// `true` once the task has completed (with an output, a panic or a cancellation).
    pub fn is_finished(&self) -> bool {
        self.raw.header().state.load().is_complete()
    }

    /// The task's id.
    pub fn id(&self) -> Id {
        self.raw.id()
    }
}

impl<T> Future for JoinHandle<T> {
    type Output = Result<T, JoinError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        crate::coop::poll_budgeted(cx, |cx| {
            let mut out: Poll<Result<T, JoinError>> = Poll::Pending;
            // SAFETY: the task's output type is `T` (constructor contract) and this handle
            // holds the join interest.
            unsafe {
                self.raw.try_read_output(
                    (&mut out as *mut Poll<Result<T, JoinError>>).cast(),
                    cx.waker(),
                )
            };
            out
        })
    }
}

impl<T> Drop for JoinHandle<T> {
    fn drop(&mut self) {
        // SAFETY: called once, by the join handle.
        unsafe { self.raw.drop_join_handle() }
    }
}

impl<T> fmt::Debug for JoinHandle<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("JoinHandle")
            .field("id", &self.id())
            .field("finished", &self.is_finished())
            .finish()
    }
}
