//! One local task: its future, and the slot its handle reads the outcome from.
//!
//! The set holds the task as `Rc<dyn Run>`, the handle as `Rc<dyn Joinable<T>>`; both point at
//! one `TaskCell`. No `RefCell` borrow of the cell is held while user code runs: the future is
//! moved out of its `stage` for the length of its poll (a nested poll of the set then finds
//! the task `Running` and leaves it alone), and join wakers, outputs and panic payloads are
//! taken out of the `join` slot before they are woken or dropped.

use super::super::{Id, JoinError};
use super::queue::TaskWaker;
use crate::unwind;
use std::cell::RefCell;
use std::future::Future;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, Waker};

/// A local task as the set sees it, whatever its future and output types.
pub(super) trait Run {
    /// Polls the task once with its own waker (unless it is being polled already, or has
    /// finished), delivering its outcome to its handle when it finishes.
    fn run(&self) -> Outcome;

    /// Drops the future (unless it is being polled) and reports the task cancelled; `false`
    /// if the future is being polled and could not be dropped.
    fn cancel(&self) -> bool;
}

/// What one `Run::run` did.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Outcome {
    /// The future is still pending.
    Pending,
    /// The task finished (completed, panicked or was aborted): the set lets go of it.
    Finished,
    /// The task is being polled further up the stack (a nested poll of the set).
    Busy,
}

/// The handle's view of a task.
pub(super) trait Joinable<T> {
    fn join(&self) -> &JoinCell<T>;
}

pub(super) struct TaskCell<F: Future> {
    stage: RefCell<Stage<F>>,
    join: JoinCell<F::Output>,
}

enum Stage<F> {
    /// Waiting to be polled.
    Idle(Pin<Box<F>>),
    /// Moved out for a poll.
    Running,
    /// Dropped: the task finished.
    Done,
}

/// What the handle of a task can see and do.
pub(super) struct JoinCell<T> {
    id: Id,
    /// The task's own waker: polls the task, and schedules it when aborted.
    notify: Arc<TaskWaker>,
    /// `notify` as a `Waker`, made once.
    waker: Waker,
    state: RefCell<JoinState<T>>,
}

struct JoinState<T> {
    outcome: Slot<T>,
    /// Woken when the outcome is delivered.
    waker: Option<Waker>,
    /// `abort` was called: the set drops the future instead of polling it.
    abort: bool,
    /// The handle is alive; without it an outcome is dropped as soon as it is delivered.
    handle: bool,
}

enum Slot<T> {
    Pending,
    Ready(Result<T, JoinError>),
    Taken,
}

impl<F: Future> TaskCell<F> {
    pub(super) fn new(id: Id, notify: Arc<TaskWaker>, future: F) -> TaskCell<F> {
        TaskCell {
            stage: RefCell::new(Stage::Idle(Box::pin(future))),
            join: JoinCell {
                id,
                waker: Waker::from(notify.clone()),
                notify,
                state: RefCell::new(JoinState {
                    outcome: Slot::Pending,
                    waker: None,
                    abort: false,
                    handle: true,
                }),
            },
        }
    }

    /// Drops the future with the stage already `Done`, surviving a panic in its `Drop`.
    fn drop_future(&self, future: Pin<Box<F>>) -> Result<(), JoinError> {
        catch_unwind(AssertUnwindSafe(move || drop(future)))
            .map_err(|payload| JoinError::panic(self.join.id, payload))
    }

    /// Drops the future after it was polled: the stage becomes `Done`.
    fn finish(&self, future: Pin<Box<F>>, outcome: Result<F::Output, JoinError>) {
        *self.stage.borrow_mut() = Stage::Done;
        // The future goes before the outcome is handed out.
        let outcome = match (self.drop_future(future), outcome) {
            (Ok(()), outcome) => outcome,
            // The poll's panic is the one to report; the drop's is discarded.
            (Err(dropped), Err(polled)) => {
                discard_error(dropped);
                Err(polled)
            }
            (Err(dropped), Ok(output)) => {
                drop_caught(output);
                Err(dropped)
            }
        };
        self.join.deliver(outcome);
    }
}

impl<F: Future> Run for TaskCell<F> {
    fn run(&self) -> Outcome {
        let mut future = {
            let mut stage = self.stage.borrow_mut();
            match std::mem::replace(&mut *stage, Stage::Running) {
                Stage::Idle(future) => future,
                other => {
                    let busy = matches!(other, Stage::Running);
                    *stage = other;
                    return if busy {
                        Outcome::Busy
                    } else {
                        Outcome::Finished
                    };
                }
            }
        };
        if self.join.abort_requested() {
            self.finish(future, Err(JoinError::cancelled(self.join.id)));
            return Outcome::Finished;
        }
        // Wakes from here on queue the task again.
        self.join.notify.clear_queued();
        let mut cx = Context::from_waker(&self.join.waker);
        let polled = {
            // A local task's poll gets its own cooperative budget, as a task's poll does.
            let _budget = crate::coop::start_poll();
            catch_unwind(AssertUnwindSafe(|| future.as_mut().poll(&mut cx)))
        };
        match polled {
            Ok(Poll::Pending) if !self.join.abort_requested() => {
                *self.stage.borrow_mut() = Stage::Idle(future);
                Outcome::Pending
            }
            // Aborted during its own poll (through its handle): dropped now.
            Ok(Poll::Pending) => {
                self.finish(future, Err(JoinError::cancelled(self.join.id)));
                Outcome::Finished
            }
            Ok(Poll::Ready(output)) => {
                self.finish(future, Ok(output));
                Outcome::Finished
            }
            Err(payload) => {
                self.finish(future, Err(JoinError::panic(self.join.id, payload)));
                Outcome::Finished
            }
        }
    }

    fn cancel(&self) -> bool {
        let future = {
            let mut stage = self.stage.borrow_mut();
            match std::mem::replace(&mut *stage, Stage::Done) {
                Stage::Idle(future) => future,
                Stage::Done => return true,
                Stage::Running => {
                    *stage = Stage::Running;
                    return false;
                }
            }
        };
        if let Err(err) = self.drop_future(future) {
            // The task is reported cancelled either way; a panic while dropping it is not
            // the task's outcome.
            discard_error(err);
        }
        self.join.deliver(Err(JoinError::cancelled(self.join.id)));
        true
    }
}

impl<F: Future> Joinable<F::Output> for TaskCell<F> {
    fn join(&self) -> &JoinCell<F::Output> {
        &self.join
    }
}

impl<T> JoinCell<T> {
    pub(super) fn id(&self) -> Id {
        self.id
    }

    fn abort_requested(&self) -> bool {
        self.state.borrow().abort
    }

    /// Stores the outcome for the handle and wakes it, or drops the outcome if the handle is
    /// gone.
    fn deliver(&self, outcome: Result<T, JoinError>) {
        let (waker, unwanted) = {
            let mut state = self.state.borrow_mut();
            if state.handle {
                state.outcome = Slot::Ready(outcome);
                (state.waker.take(), None)
            } else {
                state.outcome = Slot::Taken;
                (None, Some(outcome))
            }
        };
        if let Some(outcome) = unwanted {
            match outcome {
                Ok(output) => drop_caught(output),
                Err(err) => discard_error(err),
            }
        }
        if let Some(waker) = waker {
            unwind::wake(waker);
        }
    }

    /// The outcome if it is there, else `waker` is kept to be woken when it is.
    ///
    /// # Panics
    ///
    /// If the outcome was already taken.
    pub(super) fn poll_outcome(&self, waker: &Waker) -> Poll<Result<T, JoinError>> {
        let mut state = self.state.borrow_mut();
        match std::mem::replace(&mut state.outcome, Slot::Taken) {
            Slot::Ready(outcome) => Poll::Ready(outcome),
            Slot::Pending => {
                state.outcome = Slot::Pending;
                let old = match &state.waker {
                    Some(w) if w.will_wake(waker) => None,
                    _ => state.waker.replace(waker.clone()),
                };
                // The replaced waker is user code: dropped without the borrow.
                drop(state);
                drop(old);
                Poll::Pending
            }
            Slot::Taken => {
                drop(state);
                panic!("`LocalJoinHandle` polled after it returned `Poll::Ready`")
            }
        }
    }

    /// `true` once the task has finished (with an output, a panic or a cancellation).
    pub(super) fn is_finished(&self) -> bool {
        !matches!(self.state.borrow().outcome, Slot::Pending)
    }

    /// Asks the set to drop the task's future (at its next poll of the set, or when the set
    /// drops); nothing if the task has finished.
    pub(super) fn abort(&self) {
        {
            let mut state = self.state.borrow_mut();
            if !matches!(state.outcome, Slot::Pending) {
                return;
            }
            state.abort = true;
        }
        self.notify.schedule();
    }

    /// The handle is dropped: an outcome already delivered is dropped now, a later one when it
    /// is delivered.
    pub(super) fn detach(&self) {
        let (outcome, waker) = {
            let mut state = self.state.borrow_mut();
            state.handle = false;
            let outcome = std::mem::replace(&mut state.outcome, Slot::Taken);
            if let Slot::Pending = outcome {
                state.outcome = Slot::Pending;
            }
            (outcome, state.waker.take())
        };
        drop(waker);
        if let Slot::Ready(outcome) = outcome {
            match outcome {
                Ok(output) => drop(output),
                Err(err) => drop(err),
            }
        }
    }
}

/// Drops a value whose `Drop` is user code, surviving a panic in it.
fn drop_caught<T>(value: T) {
    if let Err(payload) = catch_unwind(AssertUnwindSafe(move || drop(value))) {
        unwind::discard(payload);
    }
}

/// Drops a `JoinError` whose panic payload's `Drop` may panic.
fn discard_error(err: JoinError) {
    match err.try_into_panic() {
        Ok(payload) => unwind::discard(payload),
        Err(cancelled) => drop(cancelled),
    }
}
