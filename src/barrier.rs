//! `MkAsyncBarrier`: tasks wait until `n` of them have arrived, generation after generation.

use std::fmt;
use std::future::Future;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::pin::Pin;
use std::sync::{Mutex, MutexGuard};
use std::task::{Context, Poll, Waker};

/// A reusable barrier: [`wait`](Self::wait) parks the task (no CPU) until `n` tasks are waiting,
/// then releases all of them at once and starts a new generation. Exactly one task of each
/// generation (the last to arrive) is the leader.
///
/// `n == 0` behaves like `n == 1` (as with tokio): every `wait` completes at once as leader.
///
/// **Cancelling**: an arrival counts from the first poll of `wait()`. Dropping the future before
/// its generation completes withdraws the arrival, so the barrier still waits for `n` live
/// waiters; dropping it after the generation completed changes nothing.
///
/// ```
/// use memkit_async::MkAsyncBarrier;
/// use std::sync::Arc;
///
/// let rt = memkit_async::Runtime::new().unwrap();
/// let barrier = Arc::new(MkAsyncBarrier::new(3));
/// let tasks: Vec<_> = (0..3)
///     .map(|_| {
///         let b = barrier.clone();
///         rt.spawn(async move { b.wait().await.is_leader() })
///     })
///     .collect();
/// let leaders = tasks
///     .into_iter()
///     .map(|t| rt.block_on(t).unwrap())
///     .filter(|&leader| leader)
///     .count();
/// assert_eq!(leaders, 1);
/// ```
pub struct MkAsyncBarrier {
    n: usize,
    state: Mutex<State>,
}

struct State {
    /// Slots of the current generation's waiters (`None` once withdrawn).
    wakers: Vec<Option<Waker>>,
    /// Withdrawn slots, reused by the next arrivals, so arrivals that come and go never grow
    /// `wakers` past the most waiters there ever were at once.
    free: Vec<usize>,
    arrived: usize,
    generation: u64,
}

/// What [`MkAsyncBarrier::wait`] resolves to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MkBarrierWaitResult {
    leader: bool,
}

impl MkBarrierWaitResult {
    /// Whether this task was the leader of its generation (the one whose arrival released it;
    /// exactly one per generation).
    pub fn is_leader(&self) -> bool {
        self.leader
    }
}

impl MkAsyncBarrier {
    /// A barrier for `n` tasks (0 is treated as 1).
    pub fn new(n: usize) -> MkAsyncBarrier {
        MkAsyncBarrier {
            n: n.max(1),
            state: Mutex::new(State {
                wakers: Vec::new(),
                free: Vec::new(),
                arrived: 0,
                generation: 0,
            }),
        }
    }

    /// Waits until `n` tasks are waiting (this one included).
    pub fn wait(&self) -> MkBarrierWait<'_> {
        MkBarrierWait {
            barrier: self,
            arrival: None,
            done: false,
        }
    }

    /// Tasks the barrier waits for in each generation.
    pub fn parties(&self) -> usize {
        self.n
    }

    /// Tasks waiting in the current generation.
    pub fn waiting(&self) -> usize {
        self.lock().arrived
    }

    /// Generations completed so far.
    pub fn generation(&self) -> u64 {
        self.lock().generation
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// The future of [`MkAsyncBarrier::wait`].
#[must_use = "futures do nothing unless polled"]
pub struct MkBarrierWait<'a> {
    barrier: &'a MkAsyncBarrier,
    /// Generation and index in `wakers`, once arrived.
    arrival: Option<(u64, usize)>,
    done: bool,
}

impl Future for MkBarrierWait<'_> {
    type Output = MkBarrierWaitResult;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<MkBarrierWaitResult> {
        memkit_async_runtime::task::coop::poll_budgeted(cx, |cx| {
            let this = &mut *self;
            assert!(
                !this.done,
                "`MkAsyncBarrier::wait` future polled after it completed"
            );
            // Wakers are cloned, dropped and woken outside the lock: all three are user code.
            let Some((gen, i)) = this.arrival else {
                let waker = cx.waker().clone();
                let mut state = this.barrier.lock();
                state.arrived += 1;
                if state.arrived == this.barrier.n {
                    state.arrived = 0;
                    state.generation += 1;
                    let wakers = std::mem::take(&mut state.wakers);
                    state.free.clear();
                    drop(state);
                    drop(waker);
                    wake_all(wakers);
                    this.done = true;
                    return Poll::Ready(MkBarrierWaitResult { leader: true });
                }
                let i = match state.free.pop() {
                    Some(i) => i,
                    None => {
                        state.wakers.push(None);
                        state.wakers.len() - 1
                    }
                };
                state.wakers[i] = Some(waker);
                this.arrival = Some((state.generation, i));
                return Poll::Pending;
            };
            {
                let state = this.barrier.lock();
                if gen != state.generation {
                    this.done = true;
                    return Poll::Ready(MkBarrierWaitResult { leader: false });
                }
                if state.wakers[i]
                    .as_ref()
                    .is_some_and(|w| w.will_wake(cx.waker()))
                {
                    return Poll::Pending;
                }
            }
            let waker = cx.waker().clone();
            let mut state = this.barrier.lock();
            if gen != state.generation {
                drop(state);
                drop(waker);
                this.done = true;
                return Poll::Ready(MkBarrierWaitResult { leader: false });
            }
            let old = state.wakers[i].replace(waker);
            drop(state);
            drop(old);
            Poll::Pending
        })
    }
}

/// Wakes a completed generation's waiters, each one even if an earlier waker panics: the
/// leader's task goes on, and nobody of the generation is left waiting.
fn wake_all(wakers: Vec<Option<Waker>>) {
    for waker in wakers.into_iter().flatten() {
        if let Err(payload) = catch_unwind(AssertUnwindSafe(|| waker.wake())) {
            // The panic hook has reported it; a payload whose drop panics too is leaked.
            if let Err(again) = catch_unwind(AssertUnwindSafe(move || drop(payload))) {
                std::mem::forget(again);
            }
        }
    }
}

impl Drop for MkBarrierWait<'_> {
    fn drop(&mut self) {
        let Some((gen, i)) = self.arrival else { return };
        if self.done {
            return;
        }
        let mut state = self.barrier.lock();
        if state.generation != gen {
            return;
        }
        state.arrived -= 1;
        let waker = state.wakers[i].take();
        state.free.push(i);
        drop(state);
        drop(waker);
    }
}

impl fmt::Debug for MkAsyncBarrier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = self.lock();
        f.debug_struct("MkAsyncBarrier")
            .field("parties", &self.n)
            .field("waiting", &state.arrived)
            .field("generation", &state.generation)
            .finish()
    }
}

impl fmt::Debug for MkBarrierWait<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MkBarrierWait")
            .field("arrived", &self.arrival.is_some())
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn poll_once(f: &mut Pin<Box<MkBarrierWait<'_>>>) -> Poll<MkBarrierWaitResult> {
        f.as_mut().poll(&mut Context::from_waker(Waker::noop()))
    }

    #[test]
    fn arrivals_that_withdraw_reuse_their_slots() {
        let barrier = MkAsyncBarrier::new(4);
        let mut stays = Box::pin(barrier.wait());
        assert!(poll_once(&mut stays).is_pending());
        for _ in 0..10_000 {
            let mut leaves = Box::pin(barrier.wait());
            assert!(poll_once(&mut leaves).is_pending());
            let mut leaves_too = Box::pin(barrier.wait());
            assert!(poll_once(&mut leaves_too).is_pending());
            drop(leaves);
            drop(leaves_too);
        }
        {
            let state = barrier.lock();
            assert_eq!((state.wakers.len(), state.free.len()), (3, 2));
            assert_eq!(state.arrived, 1);
        }
        let mut others: Vec<_> = (0..2).map(|_| Box::pin(barrier.wait())).collect();
        assert!(others.iter_mut().all(|w| poll_once(w).is_pending()));
        let mut last = Box::pin(barrier.wait());
        assert!(
            poll_once(&mut last).is_ready(),
            "the fourth arrival releases it"
        );
        assert!(poll_once(&mut stays).is_ready());
        assert!(others.iter_mut().all(|w| poll_once(w).is_ready()));
        let state = barrier.lock();
        assert_eq!((state.wakers.len(), state.free.len()), (0, 0));
        assert_eq!(state.generation, 1);
    }
}
