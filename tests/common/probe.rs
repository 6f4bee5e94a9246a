//! A future wrapper that counts polls and drops and catches executor misbehaviour.

use super::{Counter, Flag};
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering::SeqCst};
use std::sync::Arc;
use std::task::{Context, Poll};

/// Wraps a future, counting its polls and its drop. Reports a poll after `Ready` (which a
/// correct executor never does) through `polled_after_ready`, and a poll that overlaps another
/// poll of the same future (two threads running one task) through `concurrent_polls`.
pub struct Tracked<F> {
    /// `None` only inside `drop`, which drops the future before counting the drop.
    inner: Option<Pin<Box<F>>>,
    pub polls: Counter,
    pub pending_seen: Flag,
    pub drops: Counter,
    done: bool,
    in_poll: Arc<AtomicBool>,
    pub polled_after_ready: Flag,
    pub concurrent_polls: Flag,
}

/// The counters of a [`Tracked`] future, kept by the test while the future moves into a task.
#[derive(Clone, Default)]
pub struct Probe {
    pub polls: Counter,
    pub pending_seen: Flag,
    pub drops: Counter,
    pub polled_after_ready: Flag,
    pub concurrent_polls: Flag,
}

impl Probe {
    pub fn new() -> Probe {
        Probe::default()
    }

    /// Wraps `future` so this probe observes it.
    pub fn track<F: Future>(&self, future: F) -> Tracked<F> {
        Tracked {
            inner: Some(Box::pin(future)),
            polls: self.polls.clone(),
            pending_seen: self.pending_seen.clone(),
            drops: self.drops.clone(),
            done: false,
            in_poll: Arc::new(AtomicBool::new(false)),
            polled_after_ready: self.polled_after_ready.clone(),
            concurrent_polls: self.concurrent_polls.clone(),
        }
    }

    /// Fails if the executor misbehaved with any future tracked by this probe.
    #[track_caller]
    pub fn assert_sound(&self) {
        assert!(
            !self.polled_after_ready.get(),
            "a future was polled after it returned Ready"
        );
        assert!(
            !self.concurrent_polls.get(),
            "a future was polled by two threads at once"
        );
    }
}

impl<F: Future> Future for Tracked<F> {
    type Output = F::Output;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        if self.done {
            self.polled_after_ready.set();
        }
        if self.in_poll.swap(true, SeqCst) {
            self.concurrent_polls.set();
        }
        self.polls.inc();
        let out = self
            .inner
            .as_mut()
            .expect("polled during drop")
            .as_mut()
            .poll(cx);
        match out {
            Poll::Ready(_) => self.done = true,
            Poll::Pending => self.pending_seen.set(),
        }
        self.in_poll.store(false, SeqCst);
        out
    }
}

impl<F> Drop for Tracked<F> {
    fn drop(&mut self) {
        // The future (and whatever it owns) is gone before the drop is counted, so a test that
        // sees the count also sees the future's captures released.
        self.inner = None;
        self.drops.inc();
    }
}
