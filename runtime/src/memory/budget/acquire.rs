//! Requests waiting for budget memory, and the `Acquire` future that makes them.
//!
//! A waiting request is a `Waiter` in the queue of the budget it is blocked on; the task that
//! made it is parked like any task waiting on a waker (in no run queue, using no CPU) and is
//! marked `WAITING_MEMORY` until the request ends. Whoever releases bytes charges them for the
//! head waiter before waking it, so a woken waiter already holds its bytes.
//!
//! Invariant: a waiter's status moves `Queued -> Granted` (the granter charged its bytes) or
//! `Queued -> Cancelled` (its future gave up), once, under its lock; bytes granted to a
//! cancelled waiter are released by whoever observes both. A cancelled waiter is never pushed
//! on a queue: `queue_at` checks the status and records the queue under the same lock that
//! `cancel` reads it under, so a waiter cancelled while moving between queues is either
//! refused by the next queue or dequeued from it by `cancel`.

use super::{MkBackpressure, MkBudget, MkBudgetGuard};
use crate::memory::{MkAllocError, RuntimeMemory};
use crate::sync::wait_list::WaitKey;
use crate::sync::{lock, Mutex};
use crate::task_core::{self, Id};
use crate::time::{sleep_until, Instant, Sleep};
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, Waker};

#[derive(Clone, Copy, PartialEq, Eq)]
enum Status {
    Queued,
    Granted,
    Cancelled,
}

pub(crate) struct Waiter {
    origin: MkBudget,
    bytes: usize,
    state: Mutex<WaiterState>,
}

struct WaiterState {
    status: Status,
    waker: Option<Waker>,
    /// The budget queuing the waiter and its key there (left stale once it is served there).
    queued_at: Option<(MkBudget, WaitKey)>,
}

impl Waiter {
    pub(crate) fn origin(&self) -> &MkBudget {
        &self.origin
    }

    pub(crate) fn bytes(&self) -> usize {
        self.bytes
    }

    pub(crate) fn is_cancelled(&self) -> bool {
        lock(&self.state).status == Status::Cancelled
    }

    /// Records that the waiter is being queued on `budget`, unless it was cancelled: a waiter
    /// moved between queues may give up after leaving one and before reaching the next, and
    /// must not be queued (and counted as waiting) then. `false` if it was cancelled.
    pub(crate) fn queue_at(&self, budget: &MkBudget, key: WaitKey) -> bool {
        let mut state = lock(&self.state);
        if state.status == Status::Cancelled {
            return false;
        }
        state.queued_at = Some((budget.clone(), key));
        true
    }

    /// Called by a releaser that charged this waiter's bytes.
    pub(crate) fn grant(&self) {
        let mut state = lock(&self.state);
        if state.status == Status::Cancelled {
            drop(state);
            self.origin.release(self.bytes);
            return;
        }
        state.status = Status::Granted;
        let waker = state.waker.take();
        drop(state);
        if let Some(waker) = waker {
            waker.wake();
        }
    }

    /// Gives up the request. `true` if it had been granted meanwhile: the caller then owns the
    /// bytes.
    fn cancel(self: &Arc<Self>) -> bool {
        let queued_at = {
            let mut state = lock(&self.state);
            if state.status == Status::Granted {
                return true;
            }
            state.status = Status::Cancelled;
            state.queued_at.clone()
        };
        // Leaving the queue now keeps `waiting()` exact; if the waiter is being moved between
        // queues, the next queue refuses it (`queue_at`). A waiter that leaves may have been
        // the head: the next one may fit now, and no release may come to serve it.
        if let Some((budget, key)) = queued_at {
            if budget.dequeue(key) {
                budget.serve_if_waiting();
            }
        }
        false
    }
}

/// The future returned by [`MkBudget::acquire`]: resolves to a guard holding the bytes, or to
/// the error the budget's policy chose. Dropping it while it waits withdraws the request.
#[must_use = "futures do nothing unless polled"]
pub struct Acquire {
    budget: MkBudget,
    bytes: usize,
    /// Overrides the budget's policy (admission always waits).
    policy: Option<MkBackpressure>,
    waiting: Option<Waiting>,
    done: bool,
}

struct Waiting {
    waiter: Arc<Waiter>,
    /// The task marked `WAITING_MEMORY`, if the request was made inside one.
    task: Option<Id>,
    /// The runtime whose count of tasks waiting for memory includes this request.
    runtime: Option<Arc<RuntimeMemory>>,
    since: Instant,
    /// `Timeout(d)` only; `None` also when the deadline is beyond what `Instant` can represent.
    deadline: Option<Sleep>,
}

impl Acquire {
    pub(crate) fn new(budget: MkBudget, bytes: usize, policy: Option<MkBackpressure>) -> Acquire {
        Acquire {
            budget,
            bytes,
            policy,
            waiting: None,
            done: false,
        }
    }

    fn first_poll(&mut self, cx: &mut Context<'_>) -> Poll<Result<MkBudgetGuard, MkAllocError>> {
        let budget = &self.budget;
        budget.check_fits_ever(self.bytes)?;
        if self.bytes == 0 {
            return Poll::Ready(Ok(budget.guard(0)));
        }
        let full = match budget.try_charge_fair(self.bytes) {
            Ok(()) => return Poll::Ready(Ok(budget.guard(self.bytes))),
            Err(full) => full,
        };
        let timeout = match self.policy.unwrap_or_else(|| budget.policy()) {
            MkBackpressure::Fail => return Poll::Ready(Err(full.capacity_reached(self.bytes))),
            MkBackpressure::Evict => return Poll::Ready(budget.evict_for(self.bytes, &full)),
            MkBackpressure::Wait => None,
            MkBackpressure::Timeout(d) => Some(d),
        };
        let since = Instant::now();
        let waiter = Arc::new(Waiter {
            origin: budget.clone(),
            bytes: self.bytes,
            state: Mutex::new(WaiterState {
                status: Status::Queued,
                waker: Some(cx.waker().clone()),
                queued_at: None,
            }),
        });
        let deadline = timeout.and_then(|d| since.checked_add(d)).map(sleep_until);
        self.waiting = Some(Waiting {
            waiter: waiter.clone(),
            task: mark_task_waiting(None, true),
            runtime: count_waiting(),
            since,
            deadline,
        });
        full.enqueue(waiter);
        self.poll_waiting(cx)
    }

    fn poll_waiting(&mut self, cx: &mut Context<'_>) -> Poll<Result<MkBudgetGuard, MkAllocError>> {
        let Some(w) = self.waiting.as_mut() else {
            unreachable!("poll_waiting is called only while waiting")
        };
        {
            let mut state = lock(&w.waiter.state);
            if state.status == Status::Granted {
                drop(state);
                return self.finish(Ok(()));
            }
            let stale = match &state.waker {
                Some(waker) if waker.will_wake(cx.waker()) => None,
                _ => state.waker.replace(cx.waker().clone()),
            };
            // A waker's drop may run any code (release bytes, which locks this waiter to
            // serve its queue): not under the lock.
            drop(state);
            drop(stale);
        }
        let timed_out = match w.deadline.as_mut() {
            Some(delay) => Pin::new(delay).poll(cx).is_ready(),
            None => false,
        };
        if !timed_out {
            return Poll::Pending;
        }
        if w.waiter.cancel() {
            // Granted just as the deadline passed: the bytes are ours.
            return self.finish(Ok(()));
        }
        let waited = w.since.elapsed();
        let err = match self.budget.capacity_reached(self.bytes) {
            MkAllocError::CapacityReached {
                requested,
                limit,
                used,
            } => MkAllocError::TimedOut {
                requested,
                limit,
                used,
                waited,
            },
            other => other,
        };
        self.finish(Err(err))
    }

    fn finish(
        &mut self,
        res: Result<(), MkAllocError>,
    ) -> Poll<Result<MkBudgetGuard, MkAllocError>> {
        if let Some(w) = self.waiting.take() {
            w.end();
        }
        self.done = true;
        Poll::Ready(res.map(|()| self.budget.guard(self.bytes)))
    }
}

impl Future for Acquire {
    type Output = Result<MkBudgetGuard, MkAllocError>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        crate::coop::poll_budgeted(cx, |cx| {
            let this = &mut *self;
            if this.done {
                panic!("`MkBudget::acquire` future polled after it completed");
            }
            if this.waiting.is_some() {
                return this.poll_waiting(cx);
            }
            let res = this.first_poll(cx);
            if res.is_ready() {
                this.done = true;
            }
            res
        })
    }
}

impl Drop for Acquire {
    fn drop(&mut self) {
        if let Some(w) = self.waiting.take() {
            if w.waiter.cancel() {
                self.budget.release(self.bytes);
            }
            w.end();
        }
    }
}

impl Waiting {
    /// The request is no longer waiting: unmark the task and uncount it.
    fn end(self) {
        mark_task_waiting(self.task, false);
        if let Some(memory) = self.runtime {
            memory.wait_ended();
        }
    }
}

/// Counts a waiting request made inside a runtime (on a worker, in `block_on`, ...).
fn count_waiting() -> Option<Arc<RuntimeMemory>> {
    Some(RuntimeMemory::current()?.wait_started())
}

/// Sets or clears `WAITING_MEMORY` on the task being polled, if it is `expected` (any task when
/// `None`); returns the task marked. A request dropped or finished outside the task that made it
/// leaves the flag to that task's next request.
fn mark_task_waiting(expected: Option<Id>, waiting: bool) -> Option<Id> {
    let task = task_core::current::get()?;
    // SAFETY: the current task is alive while it is being polled (or dropped) on this thread.
    let header = unsafe { task.as_ref() };
    if expected.is_some_and(|id| id != header.id) {
        return None;
    }
    header.state.set_waiting_for_memory(waiting);
    Some(header.id)
}

impl std::fmt::Debug for Acquire {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Acquire")
            .field("bytes", &self.bytes)
            .field("waiting", &self.waiting.is_some())
            .finish_non_exhaustive()
    }
}
