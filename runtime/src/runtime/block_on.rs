//! Driving one future on the calling thread: on a multi-thread runtime beside the workers, on a
//! current-thread runtime as its worker.
//!
//! Beside the workers, while its future is being polled or has been woken, the thread holds
//! auto-advance of a paused clock off: the clock must not jump to the next timer while the
//! future may still act. The waker takes over that hold for the thread when it wakes it from its
//! sleep, before the thread runs, so the count never drops to zero between a wake-up and the
//! poll it causes. As the current-thread runtime's worker, the thread is counted as a worker.

use super::threads::enter_heap_shard;
use super::{context, Handle};
use crate::scheduler::MainWaker;
use crate::time::{InhibitAutoAdvance, TimeDriver};
use crossbeam_utils::sync::{Parker, Unparker};
use std::future::Future;
use std::pin::{pin, Pin};
use std::sync::atomic::{AtomicU8, Ordering::SeqCst};
use std::sync::Arc;
use std::task::{Context, Poll, Wake, Waker};

/// The thread is polling its future (and holds auto-advance off).
const POLLING: u8 = 0;
/// Woken while polling, or woken from its sleep (with a hold taken over by the waker).
const NOTIFIED: u8 = 1;
/// Asleep, holding nothing.
const IDLE: u8 = 2;

struct ThreadWaker {
    unparker: Unparker,
    state: AtomicU8,
    time: Arc<TimeDriver>,
}

impl ThreadWaker {
    fn notify(&self) {
        // Held before the thread can see the notification, handed to it if it was asleep.
        let hold = InhibitAutoAdvance::new(self.time.clone());
        if self.state.swap(NOTIFIED, SeqCst) == IDLE {
            std::mem::forget(hold);
        } else {
            drop(hold);
        }
        self.unparker.unpark();
    }
}

impl Wake for ThreadWaker {
    fn wake(self: Arc<Self>) {
        self.notify();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        self.notify();
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
    let time = handle.driver().time.clone();
    let thread = Arc::new(ThreadWaker {
        unparker: parker.unparker().clone(),
        state: AtomicU8::new(POLLING),
        time: time.clone(),
    });
    let mut hold = Some(InhibitAutoAdvance::new(time.clone()));
    let waker = Waker::from(thread.clone());
    let mut cx = Context::from_waker(&waker);
    loop {
        thread.state.store(POLLING, SeqCst);
        if let Poll::Ready(out) = poll_once(future.as_mut(), &mut cx) {
            return out;
        }
        if thread
            .state
            .compare_exchange(POLLING, IDLE, SeqCst, SeqCst)
            .is_err()
        {
            // Woken during the poll: poll again at once, still holding.
            continue;
        }
        drop(hold.take());
        // Sleeps until woken; an unpark that raced ahead of us makes this return at once, and
        // a stale one leaves the state idle.
        while thread.state.load(SeqCst) == IDLE {
            parker.park();
        }
        hold = Some(InhibitAutoAdvance::adopt(time.clone()));
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
