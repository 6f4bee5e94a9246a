//! Driving one future on the calling thread: on a multi-thread runtime beside the workers, on a
//! current-thread runtime as its worker.

use super::threads::enter_heap_shard;
use super::{context, Handle};
use crate::scheduler::MainWaker;
use crossbeam_utils::sync::{Parker, Unparker};
use std::future::Future;
use std::pin::{pin, Pin};
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
    let mut future = pin!(future);
    if handle.scheduler().is_current_thread() {
        return current_thread(handle, &parker, future);
    }
    let waker = Waker::from(Arc::new(ThreadWaker(parker.unparker().clone())));
    let mut cx = Context::from_waker(&waker);
    loop {
        if let Poll::Ready(out) = poll_once(future.as_mut(), &mut cx) {
            return out;
        }
        // Sleeps until woken; an unpark that raced ahead of us makes this return at once.
        parker.park();
    }
}

/// One poll, with a cooperative budget as a task's poll has.
fn poll_once<F: Future>(future: Pin<&mut F>, cx: &mut Context<'_>) -> Poll<F::Output> {
    let _budget = crate::coop::start_poll();
    future.poll(cx)
}

/// Runs the current-thread scheduler's worker on this thread until `future` is ready; while
/// another thread runs it, polls `future` alone and takes the worker over once it is free.
fn current_thread<F: Future>(
    handle: &Handle,
    parker: &Parker,
    mut future: Pin<&mut F>,
) -> F::Output {
    let scheduler = handle.scheduler();
    let unparker = parker.unparker();
    let waker = MainWaker::waker(scheduler, unparker.clone());
    let mut cx = Context::from_waker(&waker);
    loop {
        let driven = scheduler.drive(
            unparker,
            |index| enter_heap_shard(handle, index),
            || poll_once(future.as_mut(), &mut cx),
        );
        if let Some(out) = driven {
            return out;
        }
        // Another thread runs the worker, or the runtime shut down: poll here, and try the
        // worker again when woken.
        if let Poll::Ready(out) = poll_once(future.as_mut(), &mut cx) {
            return out;
        }
        parker.park();
    }
}
