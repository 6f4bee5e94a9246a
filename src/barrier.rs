//! `MkAsyncBarrier`: tasks wait until `n` of them have arrived, generation after generation.

use std::fmt;
use std::future::Future;
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
    /// Waiters of the current generation, in arrival order (`None` once withdrawn).
    wakers: Vec<Option<Waker>>,
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
        let this = &mut *self;
        assert!(
            !this.done,
            "`MkAsyncBarrier::wait` future polled after it completed"
        );
        let mut state = this.barrier.lock();
        match this.arrival {
            None => {
                state.arrived += 1;
                if state.arrived == this.barrier.n {
                    state.arrived = 0;
                    state.generation += 1;
                    let wakers = std::mem::take(&mut state.wakers);
                    drop(state);
                    wakers.into_iter().flatten().for_each(Waker::wake);
                    this.done = true;
                    return Poll::Ready(MkBarrierWaitResult { leader: true });
                }
                let gen = state.generation;
                state.wakers.push(Some(cx.waker().clone()));
                this.arrival = Some((gen, state.wakers.len() - 1));
                Poll::Pending
            }
            Some((gen, _)) if gen != state.generation => {
                this.done = true;
                Poll::Ready(MkBarrierWaitResult { leader: false })
            }
            Some((_, i)) => {
                match &mut state.wakers[i] {
                    Some(w) if w.will_wake(cx.waker()) => {}
                    slot => *slot = Some(cx.waker().clone()),
                }
                Poll::Pending
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
        if state.generation == gen {
            state.arrived -= 1;
            state.wakers[i] = None;
        }
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
