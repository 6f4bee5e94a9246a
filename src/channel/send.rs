//! `SendOp`: one message on its way into a channel, under the channel's policy.
//!
//! The fast path takes the message's bytes from the budget without waiting and queues it. When
//! the budget is full and the policy waits (`Wait`, `Timeout(d)`), the sender parks in the
//! budget's FIFO wait queue (woken when a receive releases bytes, or at its deadline) and also
//! on the channel's close signal, so that closing the channel wakes it to return its message.

use super::chan::Chan;
use super::error::{MkSendError, MkTrySendError};
use memkit_async_runtime::memory::{Acquire, MkAllocError, MkBackpressure, MkBudgetGuard};
use memkit_async_runtime::wait_list::WaitKey;
use std::future::{poll_fn, Future};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

pub(super) struct SendOp<T> {
    /// `None` once the operation has finished.
    value: Option<T>,
    stage: Stage<T>,
}

enum Stage<T> {
    /// Nothing tried yet.
    Start,
    /// The budget is full and the policy waits: acquire this many units on the next poll.
    MustWait(usize),
    Parked(Parked<T>),
}

/// A sender parked on the budget and registered on the close signal.
struct Parked<T> {
    acquire: Acquire,
    chan: Arc<Chan<T>>,
    key: WaitKey,
}

impl<T> Drop for Parked<T> {
    fn drop(&mut self) {
        // The `Acquire` withdraws the budget request (or gives back bytes granted meanwhile).
        self.chan.close_signal.deregister(self.key);
    }
}

impl<T> SendOp<T> {
    pub(super) fn new(value: T) -> SendOp<T> {
        SendOp {
            value: Some(value),
            stage: Stage::Start,
        }
    }

    /// Sends without waiting if the message fits now or the policy never waits; otherwise
    /// remembers that the next poll must wait. Call once, before any poll.
    pub(super) fn start(&mut self, chan: &Chan<T>) -> Option<Result<(), MkSendError<T>>> {
        let value = self.value.take()?;
        match attempt(chan, value) {
            Ok(res) => Some(res),
            Err((value, units)) => {
                self.value = Some(value);
                self.stage = Stage::MustWait(units);
                None
            }
        }
    }

    /// Drives the send to completion. Must not be polled after it returned `Ready`.
    pub(super) fn poll(
        &mut self,
        chan: &Arc<Chan<T>>,
        cx: &mut Context<'_>,
    ) -> Poll<Result<(), MkSendError<T>>> {
        if let Stage::Start = self.stage {
            if let Some(res) = self.start(chan) {
                return Poll::Ready(res);
            }
        }
        if let Stage::MustWait(units) = self.stage {
            let Some(key) = chan.close_signal.register(cx.waker()) else {
                return self.finish(|v| Err(MkSendError::Closed(v)));
            };
            self.stage = Stage::Parked(Parked {
                acquire: chan.budget.acquire(units),
                chan: chan.clone(),
                key,
            });
        } else if let Stage::Parked(parked) = &self.stage {
            // Before the closed check: a close after it wakes this waker.
            chan.close_signal.update(parked.key, cx.waker());
        }
        let Stage::Parked(parked) = &mut self.stage else {
            unreachable!("a started send either finished or parked")
        };
        if chan.is_closed() {
            return self.finish(|v| Err(MkSendError::Closed(v)));
        }
        match Pin::new(&mut parked.acquire).poll(cx) {
            Poll::Pending => Poll::Pending,
            Poll::Ready(Ok(charge)) => {
                self.finish(|v| chan.push(v, charge).map_err(MkSendError::Closed))
            }
            Poll::Ready(Err(err)) => self.finish(|v| Err(MkSendError::Refused(v, err))),
        }
    }

    /// Gives up: the message back (`None` if the send already finished); a parked request is
    /// withdrawn.
    pub(super) fn take_back(&mut self) -> Option<T> {
        self.stage = Stage::Start;
        self.value.take()
    }

    fn finish(
        &mut self,
        f: impl FnOnce(T) -> Result<(), MkSendError<T>>,
    ) -> Poll<Result<(), MkSendError<T>>> {
        self.stage = Stage::Start;
        let value = self
            .value
            .take()
            .expect("a channel send polled after it completed");
        Poll::Ready(f(value))
    }
}

/// `true` if the channel's policy waits for room (`Wait`, `Timeout`).
fn policy_waits<T>(chan: &Chan<T>) -> bool {
    matches!(
        chan.budget.policy(),
        MkBackpressure::Wait | MkBackpressure::Timeout(_)
    )
}

/// Takes `units` for a reservation without waiting (under `Evict`, after evicting).
pub(super) fn try_reserve_units<T>(
    chan: &Chan<T>,
    units: usize,
) -> Result<MkBudgetGuard, MkTrySendError<()>> {
    if chan.is_closed() {
        return Err(MkTrySendError::Closed(()));
    }
    chan.budget
        .try_acquire(units)
        .map_err(|err| MkTrySendError::Full((), err))
}

/// Takes `units` for a reservation under the channel's policy: at once if they fit or the
/// policy never waits; otherwise parked in the budget's FIFO queue like a sender, and woken
/// with `Closed` if the channel closes meanwhile.
pub(super) async fn reserve_units<T>(
    chan: &Arc<Chan<T>>,
    units: usize,
) -> Result<MkBudgetGuard, MkSendError<()>> {
    match try_reserve_units(chan, units) {
        Ok(charge) => return Ok(charge),
        Err(MkTrySendError::Full((), MkAllocError::CapacityReached { .. }))
            if policy_waits(chan) => {}
        Err(err) => return Err(err.into()),
    }
    let mut parked: Option<Parked<T>> = None;
    poll_fn(|cx| {
        match &parked {
            None => {
                let Some(key) = chan.close_signal.register(cx.waker()) else {
                    return Poll::Ready(Err(MkSendError::Closed(())));
                };
                parked = Some(Parked {
                    acquire: chan.budget.acquire(units),
                    chan: chan.clone(),
                    key,
                });
            }
            // Before the closed check: a close after it wakes this waker.
            Some(p) => chan.close_signal.update(p.key, cx.waker()),
        }
        if chan.is_closed() {
            // Dropping `parked` withdraws the request (or gives back bytes granted meanwhile).
            return Poll::Ready(Err(MkSendError::Closed(())));
        }
        let Some(p) = parked.as_mut() else {
            unreachable!("parked above")
        };
        Pin::new(&mut p.acquire)
            .poll(cx)
            .map(|res| res.map_err(|err| MkSendError::Refused((), err)))
    })
    .await
}

/// Tries to queue `value` without waiting: the outcome, or the value and its units when the
/// policy must wait for them.
fn attempt<T>(chan: &Chan<T>, value: T) -> Result<Result<(), MkSendError<T>>, (T, usize)> {
    let units = (chan.measure)(&value);
    match try_now(chan, value, units) {
        Ok(()) => Ok(Ok(())),
        Err((value, None)) => Ok(Err(MkSendError::Closed(value))),
        Err((value, Some(MkAllocError::CapacityReached { .. }))) if policy_waits(chan) => {
            Err((value, units))
        }
        Err((value, Some(err))) => Ok(Err(MkSendError::Refused(value, err))),
    }
}

/// Queues `value` (counting `units`) if it fits now, evicting under `Evict`; otherwise gives
/// it back with the budget's refusal (`None`: the channel is closed).
pub(super) fn try_now<T>(
    chan: &Chan<T>,
    value: T,
    units: usize,
) -> Result<(), (T, Option<MkAllocError>)> {
    if chan.is_closed() {
        return Err((value, None));
    }
    match chan.budget.try_acquire(units) {
        Ok(charge) => chan.push(value, charge).map_err(|v| (v, None)),
        Err(err) => Err((value, Some(err))),
    }
}
