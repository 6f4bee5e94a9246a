//! `MkPoolAcquire`: the future of `MkAsyncPool::acquire`.
//!
//! A request first takes a turn (a permit of the pool's turn semaphore, which parks it FIFO
//! when every object is in use, and fails it once the pool closes), then an idle object or room
//! to create one. Creating charges the object's bytes to the byte budget, which may wait under
//! that budget's policy; while it waits, an object returned to the pool is taken instead. Every
//! state owns what it holds (turn, room, budget request), so dropping the future at any point
//! gives it all back.

use super::entry::Reservation;
use super::{MkAsyncPool, MkPoolError, MkPoolGuard};
use crate::semaphore::{MkSemaphoreAcquire, MkSemaphoreError, MkSemaphorePermit};
use memkit_async_runtime::memory::{Acquire, MkAllocError, MkBackpressure};
use memkit_async_runtime::time::{sleep_until, Instant, Sleep};
use memkit_async_runtime::wait_list::WaitKey;
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
    state: State<'a>,
    /// Registration with the pool's return listeners while waiting for bytes.
    return_key: Option<WaitKey>,
}

enum State<'a> {
    Start,
    /// Every object is in use: queued for a turn, until the deadline under `Timeout(d)`.
    WaitTurn {
        turn: MkSemaphoreAcquire<'a>,
        deadline: Option<(Sleep, Instant)>,
    },
    /// Holds a turn and room for a new object; waits for its bytes.
    /// (Boxed: rare, and the budget request is large; the common states stay small.)
    WaitBytes(Box<WaitBytes<'a>>),
    Done,
}

struct WaitBytes<'a> {
    turn: MkSemaphorePermit<'a>,
    room: Reservation,
    bytes: Acquire,
}

type Output<T> = Result<MkPoolGuard<T>, MkPoolError>;

impl<'a, T: Send + 'static> MkPoolAcquire<'a, T> {
    pub(super) fn new(pool: &'a MkAsyncPool<T>) -> Self {
        MkPoolAcquire {
            pool,
            state: State::Start,
            return_key: None,
        }
    }

    /// With a turn held: an idle object, a new one, or a wait for the new one's bytes.
    fn obtain(&mut self, turn: MkSemaphorePermit<'a>) -> Option<Output<T>> {
        let pool = self.pool;
        let shared = &pool.shared;
        if shared.is_closed() {
            return Some(Err(MkPoolError::Closed));
        }
        let room = match shared.take_or_reserve() {
            Err(e) => return Some(Err(e)),
            Ok(Ok(entry)) => return Some(Ok(pool.guard(entry, turn))),
            Ok(Err(room)) => room,
        };
        let Some(budget) = &shared.budget else {
            return Some(Ok(pool.guard(shared.create(room, None), turn)));
        };
        match budget.try_acquire(shared.object_bytes) {
            Ok(bytes) => Some(Ok(pool.guard(shared.create(room, Some(bytes)), turn))),
            Err(MkAllocError::CapacityReached { .. })
                if matches!(
                    budget.policy(),
                    MkBackpressure::Wait | MkBackpressure::Timeout(_)
                ) =>
            {
                self.state = State::WaitBytes(Box::new(WaitBytes {
                    turn,
                    room,
                    bytes: budget.acquire(shared.object_bytes),
                }));
                None
            }
            Err(e) => Some(Err(MkPoolError::Budget(e))),
        }
    }
}

impl<'a, T: Send + 'static> Future for MkPoolAcquire<'a, T> {
    type Output = Output<T>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Output<T>> {
        memkit_async_runtime::task::coop::poll_budgeted(cx, |cx| {
            let this = &mut *self;
            let pool: &'a MkAsyncPool<T> = this.pool;
            let shared = &pool.shared;
            loop {
                let done = match std::mem::replace(&mut this.state, State::Done) {
                    State::Start => match shared.turns.try_acquire() {
                        Ok(turn) => this.obtain(turn),
                        Err(MkSemaphoreError::NoPermits { .. }) => {
                            let deadline = match shared.policy {
                                MkBackpressure::Wait => Some(None),
                                MkBackpressure::Timeout(d) => {
                                    let since = Instant::now();
                                    // A deadline past what `Instant` can hold is no deadline.
                                    Some(since.checked_add(d).map(|t| (sleep_until(t), since)))
                                }
                                // `Fail` and `Evict` (an idle object is the only thing a pool could
                                // evict, and there is none) refuse at once.
                                _ => None,
                            };
                            match deadline {
                                Some(deadline) => {
                                    this.state = State::WaitTurn {
                                        turn: shared.turns.acquire(),
                                        deadline,
                                    };
                                    None
                                }
                                None => Some(Err(shared.turn_error(MkSemaphoreError::NoPermits {
                                    requested: 1,
                                    available: 0,
                                }))),
                            }
                        }
                        Err(e) => Some(Err(shared.turn_error(e))),
                    },
                    State::WaitTurn {
                        mut turn,
                        mut deadline,
                    } => match Pin::new(&mut turn).poll(cx) {
                        Poll::Ready(Ok(permit)) => this.obtain(permit),
                        Poll::Ready(Err(e)) => Some(Err(shared.turn_error(e))),
                        Poll::Pending => {
                            let expired = match &mut deadline {
                                Some((delay, _)) => Pin::new(delay).poll(cx).is_ready(),
                                None => false,
                            };
                            match deadline {
                                // Dropping `turn` withdraws the request (and passes on a turn
                                // granted since the poll above).
                                Some((_, since)) if expired => Some(Err(MkPoolError::TimedOut {
                                    capacity: shared.capacity,
                                    waited: since.elapsed(),
                                })),
                                _ => {
                                    this.state = State::WaitTurn { turn, deadline };
                                    return Poll::Pending;
                                }
                            }
                        }
                    },
                    State::WaitBytes(mut wait) => {
                        // Registered before looking for an idle object: one returned after the
                        // look wakes us (`Shared::give_back`).
                        shared.on_return.register(&mut this.return_key, cx.waker());
                        if shared.is_closed() {
                            Some(Err(MkPoolError::Closed))
                        } else {
                            match Pin::new(&mut wait.bytes).poll(cx) {
                                Poll::Ready(Ok(g)) => {
                                    let WaitBytes { turn, room, .. } = *wait;
                                    Some(Ok(pool.guard(shared.create(room, Some(g)), turn)))
                                }
                                Poll::Ready(Err(e)) => Some(Err(MkPoolError::Budget(e))),
                                Poll::Pending => match shared.idle.pop() {
                                    // Returned meanwhile: take it and give up the room and bytes.
                                    Some(entry) => Some(Ok(pool.guard(entry, wait.turn))),
                                    None => {
                                        this.state = State::WaitBytes(wait);
                                        return Poll::Pending;
                                    }
                                },
                            }
                        }
                    }
                    State::Done => {
                        panic!("`MkAsyncPool::acquire` future polled after it completed")
                    }
                };
                if let Some(out) = done {
                    shared.on_return.unregister(&mut this.return_key);
                    return Poll::Ready(out);
                }
            }
        })
    }
}

impl<T: Send + 'static> Drop for MkPoolAcquire<'_, T> {
    fn drop(&mut self) {
        // The state's own drops withdraw the queued request and give back turn, room, bytes.
        self.pool.shared.on_return.unregister(&mut self.return_key);
    }
}
impl<T: Send + 'static> fmt::Debug for MkPoolAcquire<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = match self.state {
            State::Start => "start",
            State::WaitTurn { .. } => "waiting for an object",
            State::WaitBytes(_) => "waiting for bytes",
            State::Done => "done",
        };
        f.debug_struct("MkPoolAcquire")
            .field("state", &state)
            .finish_non_exhaustive()
    }
}
