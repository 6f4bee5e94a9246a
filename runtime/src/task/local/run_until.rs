//! `RunUntil`: a future driven together with the tasks of a `LocalSet`.

use super::{context, LocalSet};
use pin_project::pin_project;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

/// The future returned by [`LocalSet::run_until`]: polls its future and the set's woken tasks,
/// and completes with its future's output.
#[pin_project]
#[must_use = "futures do nothing unless awaited"]
pub struct RunUntil<'a, F> {
    pub(super) set: &'a LocalSet,
    #[pin]
    pub(super) future: F,
}

impl<F: Future> Future for RunUntil<'_, F> {
    type Output = F::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        let this = self.project();
        let core = &this.set.core;
        let _enter = context::enter(core);
        // Wakes that come during this poll are found by `park` below.
        core.queue.clear_waker();
        if let Poll::Ready(out) = this.future.poll(cx) {
            return Poll::Ready(out);
        }
        core.tick();
        if core.queue.park(cx.waker()) {
            // Tasks are still ready: come back after the others waiting for this thread.
            cx.waker().wake_by_ref();
        }
        Poll::Pending
    }
}

impl<F> fmt::Debug for RunUntil<'_, F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RunUntil")
            .field("set", self.set)
            .finish_non_exhaustive()
    }
}
