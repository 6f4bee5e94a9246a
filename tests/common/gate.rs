//! A one-way gate that holds futures pending until the test opens it.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, Waker};

/// A one-way gate: futures from [`Gate::wait`] stay pending (without being polled again) until
/// the test calls [`Gate::open`], which wakes them all once. Bound waits on it with the test's
/// own deadline (`with_timeout`, `wait_until`).
#[derive(Clone, Default)]
pub struct Gate(Arc<std::sync::Mutex<GateState>>);

#[derive(Default)]
pub struct GateState {
    open: bool,
    waiters: Vec<Waker>,
}

impl Gate {
    pub fn new() -> Gate {
        Gate::default()
    }

    /// Opens the gate for good and wakes every waiting future.
    pub fn open(&self) {
        let waiters = {
            let mut state = self.0.lock().unwrap();
            state.open = true;
            std::mem::take(&mut state.waiters)
        };
        for waker in waiters {
            waker.wake();
        }
    }

    pub fn is_open(&self) -> bool {
        self.0.lock().unwrap().open
    }

    /// Resolves once the gate is open (at once if it already is).
    pub fn wait(&self) -> GateWait {
        GateWait(self.clone())
    }
}

/// The future returned by [`Gate::wait`].
pub struct GateWait(Gate);

impl Future for GateWait {
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let mut state = (self.0).0.lock().unwrap();
        if state.open {
            return Poll::Ready(());
        }
        if !state.waiters.iter().any(|w| w.will_wake(cx.waker())) {
            state.waiters.push(cx.waker().clone());
        }
        Poll::Pending
    }
}
