//! Wakers that count what happens to them, and a one-shot poll with no waker to speak of.

use super::Counter;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, Wake, Waker};

/// A waker that counts its wake-ups.
pub struct CountingWaker(pub Counter);

impl Wake for CountingWaker {
    fn wake(self: Arc<Self>) {
        self.0.inc();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        self.0.inc();
    }
}

/// A waker and the counter of its wake-ups.
pub fn counting_waker() -> (Waker, Counter) {
    let count = Counter::new();
    (Waker::from(Arc::new(CountingWaker(count.clone()))), count)
}

/// A waker that counts the drop of its last clone: hand one to a future to check that the
/// future lets go of it.
pub struct DropCountingWaker(pub Counter);

impl Wake for DropCountingWaker {
    fn wake(self: Arc<Self>) {}
}

impl Drop for DropCountingWaker {
    fn drop(&mut self) {
        self.0.inc();
    }
}

/// A waker that adds one to `drops` when its last clone is dropped.
pub fn drop_counting_waker(drops: &Counter) -> Waker {
    Waker::from(Arc::new(DropCountingWaker(drops.clone())))
}

/// Polls `future` once with a waker that does nothing (the caller polls again by hand).
pub fn poll_once<F: Future + Unpin + ?Sized>(future: &mut F) -> Poll<F::Output> {
    Pin::new(future).poll(&mut Context::from_waker(Waker::noop()))
}
