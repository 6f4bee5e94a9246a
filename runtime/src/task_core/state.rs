//! The task state word: one `AtomicUsize` holding the lifecycle bits and the reference count.
//!
//! Bits (low to high): `RUNNING`, `NOTIFIED`, `COMPLETE`, `CANCELLED`, `JOIN_INTEREST`,
//! `JOIN_WAKER`, `WAITING_MEMORY`; the reference count occupies the remaining high bits.
//!
//! References: a task starts with three: the owned-task list, the first `Notified` (the task is
//! scheduled once at spawn) and the `JoinHandle`. Every `Waker` holds one more.
//!
//! Invariants and transitions:
//! - `NOTIFIED && !RUNNING` means exactly one `Notified` reference sits in (or is on its way to)
//!   a run queue. A wake-up therefore submits the task only on the `idle -> notified` edge.
//! - `transition_to_running` (a worker popped the `Notified`): `NOTIFIED -> RUNNING`, clearing
//!   `NOTIFIED`; the `Notified` reference becomes the running reference. If the task is already
//!   running or complete (shutdown took it over), the reference is dropped and nothing is polled.
//! - While `RUNNING`, a wake-up only sets `NOTIFIED`; `transition_to_idle` after a `Pending`
//!   poll sees it and hands the running reference back to the scheduler as a new `Notified`
//!   (this is how `yield_now` reaches the back of the queue). Without `NOTIFIED` it clears
//!   `RUNNING` and drops the running reference. With `CANCELLED` it keeps `RUNNING` so the
//!   poller drops the future itself.
//! - `transition_to_complete`: `RUNNING -> COMPLETE` in one `fetch_xor`. The output then belongs
//!   to whoever holds `JOIN_INTEREST`: the `JoinHandle` if the bit is still set, else the runtime,
//!   which drops it at once. `COMPLETE` is final.
//! - `JOIN_WAKER`: publishes the join waker slot (who writes and reads it, and when: the
//!   "Safety" section of mod.rs, with the rules for the stage and the arena slot).
//! - `CANCELLED` (abort or shutdown): an idle task is also marked `NOTIFIED` and submitted so a
//!   worker drops its future; a notified one is cancelled when popped; a running one when its
//!   poll returns. Shutdown may also claim an idle or notified task directly by setting `RUNNING`.
//! - `WAITING_MEMORY`: the task is parked in a budget's wait queue, in no run queue.
//! - The last reference dropped deallocates; `COMPLETE` is set by then, or the task was never
//!   bound to a scheduler.

use crate::sync::{AtomicUsize, Ordering};
use std::fmt;

const RUNNING: usize = 1 << 0;
const NOTIFIED: usize = 1 << 1;
const COMPLETE: usize = 1 << 2;
const CANCELLED: usize = 1 << 3;
const JOIN_INTEREST: usize = 1 << 4;
const JOIN_WAKER: usize = 1 << 5;
const WAITING_MEMORY: usize = 1 << 6;
const REF_SHIFT: u32 = 7;
const REF_ONE: usize = 1 << REF_SHIFT;
const LIFECYCLE_MASK: usize = REF_ONE - 1;

/// Initial state: three references, notified (the spawn schedules it) and with join interest.
const INITIAL: usize = (3 * REF_ONE) | NOTIFIED | JOIN_INTEREST;

pub(crate) struct State {
    word: AtomicUsize,
}

/// A copy of the state word at one instant.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) struct Snapshot(usize);

#[derive(Debug, PartialEq, Eq)]
pub(crate) enum ToRunning {
    /// Poll the future.
    Success,
    /// Drop the future: the task was aborted or the runtime is shutting down.
    Cancelled,
    /// Someone else owns the task now; the reference was dropped.
    Failed,
    /// As `Failed`, and that was the last reference.
    Dealloc,
}

#[derive(Debug, PartialEq, Eq)]
pub(crate) enum ToIdle {
    /// The task is idle; the running reference was dropped.
    Ok,
    /// It was woken while running: the running reference is now a `Notified` to re-queue.
    OkNotified,
    /// It was cancelled while running: drop the future.
    Cancelled,
}

#[derive(Debug, PartialEq, Eq)]
pub(crate) enum ToNotified {
    DoNothing,
    /// The caller now holds a `Notified` reference and must submit it.
    Submit,
    /// The waker's reference was the last one.
    Dealloc,
}

impl State {
    pub(crate) fn new() -> State {
        State {
            word: AtomicUsize::new(INITIAL),
        }
    }

    pub(crate) fn load(&self) -> Snapshot {
        Snapshot(self.word.load(Ordering::Acquire))
    }

    /// Applies `f` to the word until the compare-exchange succeeds; `f` returns the new word
    /// (or `None` to leave it) and a result.
    fn update<R>(&self, mut f: impl FnMut(Snapshot) -> (Option<Snapshot>, R)) -> R {
        let mut curr = self.load();
        loop {
            let (next, res) = f(curr);
            let Some(next) = next else { return res };
            match self.word.compare_exchange_weak(
                curr.0,
                next.0,
                Ordering::AcqRel,
                Ordering::Acquire,
            ) {
                Ok(_) => return res,
                Err(actual) => curr = Snapshot(actual),
            }
        }
    }

    pub(crate) fn transition_to_running(&self) -> ToRunning {
        self.update(|mut s| {
            debug_assert!(s.is_notified() || s.is_running() || s.is_complete());
            if s.is_running() || s.is_complete() {
                s.ref_dec();
                let res = if s.ref_count() == 0 {
                    ToRunning::Dealloc
                } else {
                    ToRunning::Failed
                };
                return (Some(s), res);
            }
            s.0 = (s.0 | RUNNING) & !NOTIFIED;
            let res = if s.is_cancelled() {
                ToRunning::Cancelled
            } else {
                ToRunning::Success
            };
            (Some(s), res)
        })
    }

    pub(crate) fn transition_to_idle(&self) -> ToIdle {
        self.update(|mut s| {
            debug_assert!(s.is_running());
            if s.is_cancelled() {
                return (None, ToIdle::Cancelled);
            }
            s.0 &= !RUNNING;
            if s.is_notified() {
                return (Some(s), ToIdle::OkNotified);
            }
            // The owned-task list still holds a reference, so this never reaches zero.
            s.ref_dec();
            debug_assert!(s.ref_count() > 0);
            (Some(s), ToIdle::Ok)
        })
    }

    /// `RUNNING -> COMPLETE`; returns the state before the transition.
    pub(crate) fn transition_to_complete(&self) -> Snapshot {
        let prev = Snapshot(self.word.fetch_xor(RUNNING | COMPLETE, Ordering::AcqRel));
        debug_assert!(prev.is_running() && !prev.is_complete());
        prev
    }

    /// Drops `count` references after completion; `true` if they were the last.
    pub(crate) fn transition_to_terminal(&self, count: usize) -> bool {
        let prev = Snapshot(self.word.fetch_sub(count * REF_ONE, Ordering::AcqRel));
        debug_assert!(prev.ref_count() >= count);
        prev.ref_count() == count
    }

    pub(crate) fn transition_to_notified_by_ref(&self) -> ToNotified {
        self.update(|mut s| {
            if s.is_complete() || s.is_notified() {
                return (None, ToNotified::DoNothing);
            }
            s.0 |= NOTIFIED;
            if s.is_running() {
                return (Some(s), ToNotified::DoNothing);
            }
            s.ref_inc();
            (Some(s), ToNotified::Submit)
        })
    }

    /// As `transition_to_notified_by_ref`, consuming the waker's reference: it becomes the
    /// `Notified` reference when the task must be submitted, and is dropped otherwise.
    pub(crate) fn transition_to_notified_by_val(&self) -> ToNotified {
        self.update(|mut s| {
            if s.is_running() {
                s.0 |= NOTIFIED;
                s.ref_dec();
                debug_assert!(s.ref_count() > 0);
                return (Some(s), ToNotified::DoNothing);
            }
            if s.is_complete() || s.is_notified() {
                s.ref_dec();
                let res = if s.ref_count() == 0 {
                    ToNotified::Dealloc
                } else {
                    ToNotified::DoNothing
                };
                return (Some(s), res);
            }
            s.0 |= NOTIFIED;
            (Some(s), ToNotified::Submit)
        })
    }

    /// Marks the task cancelled; `true` if the caller must submit a new `Notified` reference
    /// (the task was idle) so a worker drops its future.
    pub(crate) fn transition_to_notified_and_cancel(&self) -> bool {
        self.update(|mut s| {
            if s.is_complete() || s.is_cancelled() {
                return (None, false);
            }
            s.0 |= CANCELLED;
            if s.is_running() || s.is_notified() {
                return (Some(s), false);
            }
            s.0 |= NOTIFIED;
            s.ref_inc();
            (Some(s), true)
        })
    }

    /// Marks the task cancelled and, if nobody is running it, claims it (`RUNNING`) so the
    /// caller drops the future now. Returns `true` when the caller claimed it.
    pub(crate) fn transition_to_shutdown(&self) -> bool {
        self.update(|mut s| {
            let claim = !s.is_running() && !s.is_complete();
            s.0 |= CANCELLED;
            if claim {
                s.0 |= RUNNING;
            }
            (Some(s), claim)
        })
    }

    /// Clears `JOIN_INTEREST`; `Err` if the task already completed, in which case the output
    /// belongs to the caller.
    pub(crate) fn unset_join_interested(&self) -> Result<(), Snapshot> {
        self.update(|mut s| {
            debug_assert!(s.is_join_interested());
            if s.is_complete() {
                return (None, Err(s));
            }
            s.0 &= !JOIN_INTEREST;
            (Some(s), Ok(()))
        })
    }

    /// Publishes the waker the join handle just wrote; `Err` if the task completed first.
    pub(crate) fn set_join_waker(&self) -> Result<(), Snapshot> {
        self.update(|mut s| {
            debug_assert!(s.is_join_interested() && !s.has_join_waker());
            if s.is_complete() {
                return (None, Err(s));
            }
            s.0 |= JOIN_WAKER;
            (Some(s), Ok(()))
        })
    }

    /// Takes the waker slot back for the join handle; `Err` if the task completed first.
    pub(crate) fn unset_join_waker(&self) -> Result<(), Snapshot> {
        self.update(|mut s| {
            debug_assert!(s.is_join_interested() && s.has_join_waker());
            if s.is_complete() {
                return (None, Err(s));
            }
            s.0 &= !JOIN_WAKER;
            (Some(s), Ok(()))
        })
    }

    pub(crate) fn ref_inc(&self) {
        let prev = self.word.fetch_add(REF_ONE, Ordering::Relaxed);
        // As `Arc` does: a count this large means references are being leaked in a loop, and
        // wrapping would free a live task.
        if prev > isize::MAX as usize {
            std::process::abort();
        }
    }

    /// Drops one reference; `true` if it was the last.
    pub(crate) fn ref_dec(&self) -> bool {
        let prev = Snapshot(self.word.fetch_sub(REF_ONE, Ordering::AcqRel));
        debug_assert!(prev.ref_count() >= 1);
        prev.ref_count() == 1
    }

    /// Sets or clears `WAITING_MEMORY`.
    pub(crate) fn set_waiting_for_memory(&self, waiting: bool) {
        if waiting {
            self.word.fetch_or(WAITING_MEMORY, Ordering::AcqRel);
        } else {
            self.word.fetch_and(!WAITING_MEMORY, Ordering::AcqRel);
        }
    }
}

impl Snapshot {
    pub(crate) fn is_running(self) -> bool {
        self.0 & RUNNING != 0
    }
    pub(crate) fn is_notified(self) -> bool {
        self.0 & NOTIFIED != 0
    }
    pub(crate) fn is_complete(self) -> bool {
        self.0 & COMPLETE != 0
    }
    pub(crate) fn is_cancelled(self) -> bool {
        self.0 & CANCELLED != 0
    }
    pub(crate) fn is_join_interested(self) -> bool {
        self.0 & JOIN_INTEREST != 0
    }
    pub(crate) fn has_join_waker(self) -> bool {
        self.0 & JOIN_WAKER != 0
    }
    pub(crate) fn is_waiting_for_memory(self) -> bool {
        self.0 & WAITING_MEMORY != 0
    }
    pub(crate) fn ref_count(self) -> usize {
        self.0 >> REF_SHIFT
    }
    fn ref_inc(&mut self) {
        self.0 += REF_ONE;
    }
    fn ref_dec(&mut self) {
        self.0 -= REF_ONE;
    }
}

impl fmt::Debug for Snapshot {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("State")
            .field("running", &self.is_running())
            .field("notified", &self.is_notified())
            .field("complete", &self.is_complete())
            .field("cancelled", &self.is_cancelled())
            .field("join_interest", &self.is_join_interested())
            .field("join_waker", &self.has_join_waker())
            .field("waiting_for_memory", &self.is_waiting_for_memory())
            .field("refs", &self.ref_count())
            .field("bits", &(self.0 & LIFECYCLE_MASK))
            .finish()
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    #[test]
    fn spawn_poll_complete_releases_every_reference() {
        let s = State::new();
        assert_eq!(s.transition_to_running(), ToRunning::Success);
        let prev = s.transition_to_complete();
        assert!(prev.is_join_interested() && !prev.has_join_waker());
        // Running reference and owned-list reference.
        assert!(!s.transition_to_terminal(2));
        assert!(s.unset_join_interested().is_err());
        assert!(s.ref_dec());
    }

    #[test]
    fn wake_while_running_requeues_once() {
        let s = State::new();
        assert_eq!(s.transition_to_running(), ToRunning::Success);
        assert_eq!(s.transition_to_notified_by_ref(), ToNotified::DoNothing);
        assert_eq!(s.transition_to_notified_by_ref(), ToNotified::DoNothing);
        assert_eq!(s.transition_to_idle(), ToIdle::OkNotified);
        assert!(s.load().is_notified() && !s.load().is_running());
        assert_eq!(s.load().ref_count(), 3);
    }

    #[test]
    fn wake_of_idle_task_submits_exactly_once() {
        let s = State::new();
        assert_eq!(s.transition_to_running(), ToRunning::Success);
        assert_eq!(s.transition_to_idle(), ToIdle::Ok);
        assert_eq!(s.load().ref_count(), 2);
        assert_eq!(s.transition_to_notified_by_ref(), ToNotified::Submit);
        assert_eq!(s.transition_to_notified_by_ref(), ToNotified::DoNothing);
        assert_eq!(s.load().ref_count(), 3);
    }

    #[test]
    fn abort_of_idle_task_submits_cancellation() {
        let s = State::new();
        assert_eq!(s.transition_to_running(), ToRunning::Success);
        assert_eq!(s.transition_to_idle(), ToIdle::Ok);
        assert!(s.transition_to_notified_and_cancel());
        assert!(!s.transition_to_notified_and_cancel());
        assert_eq!(s.transition_to_running(), ToRunning::Cancelled);
    }

    #[test]
    fn shutdown_claims_queued_task_and_queue_reference_is_dropped() {
        let s = State::new();
        assert!(s.transition_to_shutdown());
        let prev = s.transition_to_complete();
        assert!(prev.is_cancelled());
        // The queued `Notified` finds the task complete and only drops its reference.
        assert_eq!(s.transition_to_running(), ToRunning::Failed);
        assert_eq!(s.load().ref_count(), 2);
    }

    #[test]
    fn join_waker_cannot_be_set_after_completion() {
        let s = State::new();
        assert_eq!(s.transition_to_running(), ToRunning::Success);
        s.transition_to_complete();
        assert!(s.set_join_waker().is_err());
    }
}
