//! `Chan<T>`: the state a channel's senders and receiver share.
//!
//! Each queued message travels with the budget guard its sender acquired for it, so the bytes
//! of a message are charged exactly while it is queued: receiving, evicting or dropping the
//! message drops its guard, which releases the bytes and serves parked senders in FIFO order.
//! Budget calls, wake-ups and the drops of messages and wakers happen without the queue lock
//! held.

use super::close::CloseSignal;
use super::error::MkTryRecvError;
use memkit_async_runtime::memory::{MkBudget, MkBudgetGuard, MkEvictable};
use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering::SeqCst};
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll, Waker};

/// A queued message and the budget bytes it holds.
struct Queued<T> {
    value: T,
    charge: MkBudgetGuard,
    /// Bytes taken on top of a reservation, for a message larger than reserved.
    extra: Option<MkBudgetGuard>,
}

struct State<T> {
    queue: VecDeque<Queued<T>>,
    /// The receiver, when it found the queue empty.
    rx_waker: Option<Waker>,
    /// No message may be pushed any more (the receiver closed the channel or is gone).
    closed: bool,
}

pub(super) struct Chan<T> {
    state: Mutex<State<T>>,
    /// `state.closed`, readable without the lock (set under it).
    closed: AtomicBool,
    /// Live sender handles; the receiver ends the stream when it reaches 0 and the queue is
    /// empty.
    senders: AtomicUsize,
    pub(super) budget: MkBudget,
    /// Units a message counts against the budget (bytes, or 1 per message).
    pub(super) measure: fn(&T) -> usize,
    /// Units a reservation takes per message (1 when messages are counted, the size of a
    /// message's own value when bytes are).
    pub(super) unit: usize,
    pub(super) close_signal: CloseSignal,
}

impl<T: Send + 'static> Chan<T> {
    /// A channel bounded by `budget`; it offers its queue to the budget's `Evict` requests.
    pub(super) fn new(budget: MkBudget, measure: fn(&T) -> usize, unit: usize) -> Arc<Chan<T>> {
        let chan = Arc::new(Chan {
            state: Mutex::new(State {
                queue: VecDeque::new(),
                rx_waker: None,
                closed: false,
            }),
            closed: AtomicBool::new(false),
            senders: AtomicUsize::new(1),
            budget,
            measure,
            unit,
            close_signal: CloseSignal::default(),
        });
        let evictable: Arc<dyn MkEvictable> = chan.clone();
        chan.budget.register_evictable(&evictable);
        chan
    }
}

impl<T> Chan<T> {
    fn lock(&self) -> MutexGuard<'_, State<T>> {
        // Nothing panics while holding this lock (values are dropped after it is released).
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub(super) fn is_closed(&self) -> bool {
        self.closed.load(SeqCst)
    }

    /// Queues `value` with its charge and wakes the receiver; gives the value back if the
    /// channel is closed (the charge is then released).
    pub(super) fn push(&self, value: T, charge: MkBudgetGuard) -> Result<(), T> {
        self.push_topped_up(value, charge, None)
    }

    /// `push`, with `extra` bytes taken on top of a reservation's `charge`.
    pub(super) fn push_topped_up(
        &self,
        value: T,
        charge: MkBudgetGuard,
        extra: Option<MkBudgetGuard>,
    ) -> Result<(), T> {
        let waker = {
            let mut state = self.lock();
            if state.closed {
                drop(state);
                drop((charge, extra));
                return Err(value);
            }
            state.queue.push_back(Queued {
                value,
                charge,
                extra,
            });
            state.rx_waker.take()
        };
        if let Some(waker) = waker {
            waker.wake();
        }
        Ok(())
    }

    /// The oldest message, or `None` once the queue is empty and no message can come.
    pub(super) fn poll_pop(&self, cx: &mut Context<'_>) -> Poll<Option<T>> {
        memkit_async_runtime::task::coop::poll_budgeted(cx, |cx| {
            let queued = {
                let mut state = self.lock();
                match state.queue.pop_front() {
                    Some(queued) => queued,
                    None if state.closed || self.senders.load(SeqCst) == 0 => {
                        return Poll::Ready(None)
                    }
                    None => {
                        let stale = match &state.rx_waker {
                            Some(w) if w.will_wake(cx.waker()) => None,
                            _ => state.rx_waker.replace(cx.waker().clone()),
                        };
                        // A waker's drop may run any code (even drop the last sender, which takes
                        // this lock): not under the lock.
                        drop(state);
                        drop(stale);
                        return Poll::Pending;
                    }
                }
            };
            Poll::Ready(Some(queued.release()))
        })
    }

    /// Moves up to `limit` queued messages into `buf`, oldest first; waits (registering the
    /// receiver's waker) while none is queued and one may come. `Ready(0)` once none can come,
    /// or at once for `limit == 0`.
    pub(super) fn poll_pop_many(
        &self,
        cx: &mut Context<'_>,
        buf: &mut Vec<T>,
        limit: usize,
    ) -> Poll<usize> {
        if limit == 0 {
            return Poll::Ready(0);
        }
        let taken: Vec<Queued<T>> = {
            let mut state = self.lock();
            if state.queue.is_empty() {
                drop(state);
                return match self.poll_pop(cx) {
                    Poll::Ready(Some(value)) => {
                        buf.push(value);
                        let more = self.take_now(limit - 1);
                        let n = 1 + more.len();
                        buf.extend(more.into_iter().map(Queued::release));
                        Poll::Ready(n)
                    }
                    Poll::Ready(None) => Poll::Ready(0),
                    Poll::Pending => Poll::Pending,
                };
            }
            let n = limit.min(state.queue.len());
            state.queue.drain(..n).collect()
        };
        let n = taken.len();
        // Outside the lock: releasing the bytes serves parked senders.
        buf.reserve(n);
        buf.extend(taken.into_iter().map(Queued::release));
        Poll::Ready(n)
    }

    /// Up to `limit` queued messages, oldest first, without waiting.
    fn take_now(&self, limit: usize) -> Vec<Queued<T>> {
        let mut state = self.lock();
        let n = limit.min(state.queue.len());
        state.queue.drain(..n).collect()
    }

    pub(super) fn try_pop(&self) -> Result<T, MkTryRecvError> {
        let queued = {
            let mut state = self.lock();
            match state.queue.pop_front() {
                Some(queued) => queued,
                None if state.closed || self.senders.load(SeqCst) == 0 => {
                    return Err(MkTryRecvError::Closed)
                }
                None => return Err(MkTryRecvError::Empty),
            }
        };
        Ok(queued.release())
    }

    pub(super) fn len(&self) -> usize {
        self.lock().queue.len()
    }

    /// `true` once no message can be pushed any more (closed, or every sender gone).
    pub(super) fn is_done_sending(&self) -> bool {
        self.is_closed() || self.senders.load(SeqCst) == 0
    }

    /// `true` once the queue is empty and no message can come.
    pub(super) fn is_drained(&self) -> bool {
        let state = self.lock();
        state.queue.is_empty() && (state.closed || self.senders.load(SeqCst) == 0)
    }

    /// Refuses further messages and wakes parked senders; queued messages stay receivable.
    pub(super) fn close(&self) {
        {
            let mut state = self.lock();
            state.closed = true;
            self.closed.store(true, SeqCst);
        }
        self.close_signal.close();
    }

    /// Closes the channel, drops every queued message and lets go of the receiver's waker (the
    /// receiver is gone: nothing may wake, or keep alive, the task that last polled it).
    pub(super) fn close_and_drain(&self) {
        self.close();
        let (queue, waker) = {
            let mut state = self.lock();
            (std::mem::take(&mut state.queue), state.rx_waker.take())
        };
        drop(queue);
        drop(waker);
    }

    pub(super) fn add_sender(&self) {
        self.senders.fetch_add(1, SeqCst);
    }

    /// Counts one more sender unless every sender is gone (then the stream has ended, or will,
    /// and must stay ended): `false` then.
    pub(super) fn add_sender_if_any(&self) -> bool {
        let mut n = self.senders.load(SeqCst);
        while n > 0 {
            match self.senders.compare_exchange(n, n + 1, SeqCst, SeqCst) {
                Ok(_) => return true,
                Err(now) => n = now,
            }
        }
        false
    }

    /// Live sender handles.
    pub(super) fn senders(&self) -> usize {
        self.senders.load(SeqCst)
    }

    /// One sender handle is gone; the last one wakes the receiver to end its stream.
    pub(super) fn drop_sender(&self) {
        if self.senders.fetch_sub(1, SeqCst) != 1 {
            return;
        }
        let waker = self.lock().rx_waker.take();
        if let Some(waker) = waker {
            waker.wake();
        }
    }
}

impl<T> Queued<T> {
    /// The message; its bytes go back to the budget (serving parked senders).
    fn release(self) -> T {
        drop((self.charge, self.extra));
        self.value
    }
}

/// `Evict`: a sender's request that does not fit drops the oldest queued messages.
impl<T: Send> MkEvictable for Chan<T> {
    fn evict(&self, bytes_wanted: usize) -> usize {
        let mut evicted = Vec::new();
        let mut freed = 0;
        {
            let mut state = self.lock();
            while freed < bytes_wanted {
                let Some(queued) = state.queue.pop_front() else {
                    break;
                };
                freed += queued.charge.bytes() + queued.extra.as_ref().map_or(0, |e| e.bytes());
                evicted.push(queued);
            }
        }
        // Dropped without the lock: this releases the bytes, and message destructors run here.
        drop(evicted);
        freed
    }
}
