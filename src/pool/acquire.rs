//! `MkPoolAcquire`: the future of `MkAsyncPool::acquire`.
//!
//! A request first takes a turn (a unit of the pool's capacity budget, which parks it FIFO
//! when every object is in use), then an idle object or room to create one. Creating charges
//! the object's bytes to the byte budget, which may wait under that budget's policy; while it
//! waits, an object returned to the pool is taken instead. Every state owns what it holds
//! (turn, room, budget request), so dropping the future at any point gives it all back.

use super::entry::Reservation;
use super::{MkAsyncPool, MkPoolError, MkPoolGuard};
use memkit_async_runtime::memory::{Acquire, MkAllocError, MkBackpressure, MkBudgetGuard};
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

/// The future returned by [`MkAsyncPool::acquire`]: an object, or why none was given.
///
/// Dropping it withdraws the request: a queued request leaves the queue, and a turn or bytes it
/// was granted meanwhile go back (to the next waiter).
#[must_use = "futures do nothing unless polled"]
pub struct MkPoolAcquire<'a, T: Send + 'static> {
    pool: &'a MkAsyncPool<T>,
    state: State,
    /// Registration with the pool's close listeners while waiting for a turn.
    close_key: Option<u64>,
    /// Registration with the pool's return listeners while waiting for bytes.
    return_key: Option<u64>,
}

enum State {
    Start,
    /// Every object is in use: queued for a turn.
    WaitTurn(Acquire),
    /// Holds a turn and room for a new object; waits for its bytes.
    WaitBytes {
        unit: MkBudgetGuard,
        room: Reservation,
        bytes: Acquire,
    },
    Done,
}

type Output<T> = Result<MkPoolGuard<T>, MkPoolError>;

impl<'a, T: Send + 'static> MkPoolAcquire<'a, T> {
    pub(super) fn new(pool: &'a MkAsyncPool<T>) -> Self {
        MkPoolAcquire {
            pool,
            state: State::Start,
            close_key: None,
            return_key: None,
        }
    }

    /// With a turn held: an idle object, a new one, or a wait for the new one's bytes.
    fn obtain(&mut self, unit: MkBudgetGuard) -> Option<Output<T>> {
        let shared = &self.pool.shared;
        let room = match shared.take_or_reserve(&unit) {
            Err(e) => return Some(Err(e)),
            Ok(Ok(entry)) => return Some(Ok(self.pool.guard(entry, unit))),
            Ok(Err(room)) => room,
        };
        let Some(budget) = &shared.budget else {
            return Some(Ok(self.pool.guard(shared.create(room, None), unit)));
        };
        match budget.try_acquire(shared.object_bytes) {
            Ok(bytes) => Some(Ok(self.pool.guard(shared.create(room, Some(bytes)), unit))),
            Err(MkAllocError::CapacityReached { .. })
                if matches!(
                    budget.policy(),
                    MkBackpressure::Wait | MkBackpressure::Timeout(_)
                ) =>
            {
                self.state = State::WaitBytes {
                    unit,
                    room,
                    bytes: budget.acquire(shared.object_bytes),
                };
                None
            }
            Err(e) => Some(Err(MkPoolError::Budget(e))),
        }
    }

    fn unregister(&mut self) {
        let shared = &self.pool.shared;
        shared.on_close.unregister(&mut self.close_key);
        shared.on_return.unregister(&mut self.return_key);
    }
}

impl<T: Send + 'static> Future for MkPoolAcquire<'_, T> {
    type Output = Output<T>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Output<T>> {
        let this = &mut *self;
        let shared = &this.pool.shared;
        loop {
            let done = match std::mem::replace(&mut this.state, State::Done) {
                State::Start => {
                    if shared.is_closed() {
                        return Poll::Ready(Err(MkPoolError::Closed));
                    }
                    match shared.slots.try_acquire(1) {
                        Ok(unit) => this.obtain(unit),
                        Err(MkAllocError::CapacityReached { .. })
                            if matches!(
                                shared.policy,
                                MkBackpressure::Wait | MkBackpressure::Timeout(_)
                            ) =>
                        {
                            this.state = State::WaitTurn(shared.slots.acquire(1));
                            None
                        }
                        Err(e) => Some(Err(shared.unit_error(e))),
                    }
                }
                State::WaitTurn(mut turn) => {
                    // Registered before the check: a `close` after it wakes us.
                    shared.on_close.register(&mut this.close_key, cx.waker());
                    if shared.is_closed() {
                        Some(Err(MkPoolError::Closed))
                    } else {
                        match Pin::new(&mut turn).poll(cx) {
                            Poll::Pending => {
                                this.state = State::WaitTurn(turn);
                                return Poll::Pending;
                            }
                            Poll::Ready(Ok(unit)) => {
                                shared.on_close.unregister(&mut this.close_key);
                                this.obtain(unit)
                            }
                            Poll::Ready(Err(e)) => Some(Err(shared.unit_error(e))),
                        }
                    }
                }
                State::WaitBytes {
                    unit,
                    room,
                    mut bytes,
                } => {
                    // Registered before looking for an idle object: one returned after the
                    // look wakes us (`Shared::give_back`).
                    shared.on_return.register(&mut this.return_key, cx.waker());
                    if shared.is_closed() {
                        Some(Err(MkPoolError::Closed))
                    } else {
                        match Pin::new(&mut bytes).poll(cx) {
                            Poll::Ready(Ok(g)) => {
                                Some(Ok(this.pool.guard(shared.create(room, Some(g)), unit)))
                            }
                            Poll::Ready(Err(e)) => Some(Err(MkPoolError::Budget(e))),
                            Poll::Pending => match shared.idle.pop() {
                                // Returned meanwhile: take it and give up the room and bytes.
                                Some(entry) => Some(Ok(this.pool.guard(entry, unit))),
                                None => {
                                    this.state = State::WaitBytes { unit, room, bytes };
                                    return Poll::Pending;
                                }
                            },
                        }
                    }
                }
                State::Done => panic!("`MkAsyncPool::acquire` future polled after it completed"),
            };
            if let Some(out) = done {
                this.unregister();
                return Poll::Ready(out);
            }
        }
    }
}

impl<T: Send + 'static> Drop for MkPoolAcquire<'_, T> {
    fn drop(&mut self) {
        // The state's own drops withdraw the queued request and give back turn, room, bytes.
        self.unregister();
    }
}

impl<T: Send + 'static> fmt::Debug for MkPoolAcquire<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = match self.state {
            State::Start => "start",
            State::WaitTurn(_) => "waiting for an object",
            State::WaitBytes { .. } => "waiting for bytes",
            State::Done => "done",
        };
        f.debug_struct("MkPoolAcquire")
            .field("state", &state)
            .finish_non_exhaustive()
    }
}
