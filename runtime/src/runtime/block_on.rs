//! Driving one future on the calling thread.

use super::{context, Handle};
use crossbeam_utils::sync::{Parker, Unparker};
use std::future::Future;
use std::pin::pin;
use std::sync::Arc;
use std::task::{Context, Poll, Wake, Waker};

struct ThreadWaker(Unparker);

impl Wake for ThreadWaker {
    fn wake(self: Arc<Self>) {
        self.0.unpark();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        self.0.unpark();
    }
}

#[track_caller]
pub(crate) fn block_on<F: Future>(handle: &Handle, future: F) -> F::Output {
    let _driving = crate::context::enter_driving();
    let _handle = context::enter(handle);
    let _tokio = handle.bridge().enter();
    let parker = Parker::new();
    let waker = Waker::from(Arc::new(ThreadWaker(parker.unparker().clone())));
    let mut cx = Context::from_waker(&waker);
    let mut future = pin!(future);
    loop {
        // Each turn gets a cooperative budget, as a task's poll does.
        let budget = crate::coop::start_poll();
        if let Poll::Ready(out) = future.as_mut().poll(&mut cx) {
            return out;
        }
        drop(budget);
        // Sleeps until woken; an unpark that raced ahead of us makes this return at once.
        parker.park();
    }
}
