//! The FIFO of requests waiting for semaphore permits.
//!
//! Invariants, all under the list lock: a request in the list is `Queued`; it leaves the list
//! exactly once, as `Granted` (it holds `needed` permits), `Closed` or `ExceedsTotal` (its
//! partial permits went back), or `Cancelled` (its future was dropped; permits it held went
//! back). While requests are queued the atomic word is kept empty: `serve` moves every available
//! permit to the head, so no later request can take permits the head is collecting.
//! Lock order: list, then a waiter's state. Wakers are called with no lock held.

use super::{MkAsyncSemaphore, MkSemaphoreError};
use std::collections::VecDeque;
use std::sync::atomic::Ordering::SeqCst;
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll, Waker};

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

#[derive(Default)]
pub(super) struct WaitList {
    queue: Mutex<VecDeque<Arc<Waiter>>>,
}

pub(super) struct Waiter {
    needed: usize,
    state: Mutex<WaiterState>,
}

struct WaiterState {
    /// Permits handed to this request so far (all of them once `Granted`).
    assigned: usize,
    status: Status,
    waker: Option<Waker>,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Status {
    Queued,
    Granted,
    Closed,
    ExceedsTotal(usize),
    Cancelled,
    /// The future took the outcome.
    Done,
}

type Wakers = Vec<Waker>;

fn wake(wakers: Wakers) {
    wakers.into_iter().for_each(Waker::wake);
}

impl Waiter {
    /// The outcome once decided; `Pending` (with the waker refreshed) while queued.
    pub(super) fn poll(&self, cx: &mut Context<'_>) -> Poll<Result<(), MkSemaphoreError>> {
        let mut st = lock(&self.state);
        let out = match st.status {
            Status::Queued => {
                match &st.waker {
                    Some(w) if w.will_wake(cx.waker()) => {}
                    _ => st.waker = Some(cx.waker().clone()),
                }
                return Poll::Pending;
            }
            Status::Granted => Ok(()),
            Status::Closed => Err(MkSemaphoreError::Closed),
            Status::ExceedsTotal(total) => Err(MkSemaphoreError::ExceedsTotal {
                requested: self.needed,
                total,
            }),
            Status::Cancelled | Status::Done => {
                unreachable!("a semaphore request is polled only until it completes")
            }
        };
        st.status = Status::Done;
        Poll::Ready(out)
    }
}

impl WaitList {
    /// Queues a request for `needed` permits and serves the queue at once, so permits released
    /// just before are not missed. `Ok(None)` if it was served at once (it then holds its
    /// permits), else the queued waiter, whose waker is `waker`.
    pub(super) fn enqueue(
        &self,
        sem: &MkAsyncSemaphore,
        needed: usize,
        waker: &Waker,
    ) -> Result<Option<Arc<Waiter>>, MkSemaphoreError> {
        let mut wakers = Wakers::new();
        let waiter = {
            let mut queue = lock(&self.queue);
            // Under the lock: `close` and `forget` change these before taking it.
            if sem.is_closed() {
                return Err(MkSemaphoreError::Closed);
            }
            sem.check_total(needed)?;
            let waiter = Arc::new(Waiter {
                needed,
                state: Mutex::new(WaiterState {
                    assigned: 0,
                    status: Status::Queued,
                    waker: Some(waker.clone()),
                }),
            });
            queue.push_back(waiter.clone());
            sem.queued.fetch_add(1, SeqCst);
            serve_locked(sem, &mut queue, &mut wakers);
            // Pushed last and only `serve_locked` removed anything: gone means granted.
            let queued = queue.back().is_some_and(|w| Arc::ptr_eq(w, &waiter));
            queued.then_some(waiter)
        };
        match waiter {
            Some(waiter) => {
                wake(wakers);
                Ok(Some(waiter))
            }
            None => {
                // Our own waker is among `wakers`: no need to wake ourselves.
                wakers.retain(|w| !w.will_wake(waker));
                wake(wakers);
                Ok(None)
            }
        }
    }

    /// Hands available permits to the queue, head first.
    pub(super) fn serve(&self, sem: &MkAsyncSemaphore) {
        let mut wakers = Wakers::new();
        serve_locked(sem, &mut lock(&self.queue), &mut wakers);
        wake(wakers);
    }

    /// Fails every queued request with `Closed`, giving back the permits they collected.
    pub(super) fn close(&self, sem: &MkAsyncSemaphore) {
        let mut wakers = Wakers::new();
        {
            let mut queue = lock(&self.queue);
            let n = queue.len();
            for waiter in queue.drain(..) {
                let mut st = lock(&waiter.state);
                sem.put_back(std::mem::take(&mut st.assigned));
                st.status = Status::Closed;
                wakers.extend(st.waker.take());
            }
            sem.queued.fetch_sub(n, SeqCst);
        }
        wake(wakers);
    }

    /// Fails the queued requests that the (lowered) total can no longer serve.
    pub(super) fn fail_above_total(&self, sem: &MkAsyncSemaphore) {
        let mut wakers = Wakers::new();
        {
            let mut queue = lock(&self.queue);
            let total = sem.total_permits();
            let before = queue.len();
            queue.retain(|waiter| {
                if waiter.needed <= total {
                    return true;
                }
                let mut st = lock(&waiter.state);
                sem.put_back(std::mem::take(&mut st.assigned));
                st.status = Status::ExceedsTotal(total);
                wakers.extend(st.waker.take());
                false
            });
            sem.queued.fetch_sub(before - queue.len(), SeqCst);
            // A new head may be servable now.
            serve_locked(sem, &mut queue, &mut wakers);
        }
        wake(wakers);
    }

    /// Withdraws a dropped request: it leaves the queue, and permits it held go back.
    pub(super) fn cancel(&self, sem: &MkAsyncSemaphore, waiter: &Arc<Waiter>) {
        let mut wakers = Wakers::new();
        {
            let mut queue = lock(&self.queue);
            let mut st = lock(&waiter.state);
            let give_back = match st.status {
                Status::Queued => {
                    if let Some(pos) = queue.iter().position(|w| Arc::ptr_eq(w, waiter)) {
                        queue.remove(pos);
                        sem.queued.fetch_sub(1, SeqCst);
                    }
                    std::mem::take(&mut st.assigned)
                }
                // Granted but never observed by its future: the permits are still ours.
                Status::Granted => std::mem::take(&mut st.assigned),
                _ => 0,
            };
            st.status = Status::Cancelled;
            drop(st);
            sem.put_back(give_back);
            // The next request may now be servable (with these permits, or because the head
            // it queued behind is gone).
            serve_locked(sem, &mut queue, &mut wakers);
        }
        wake(wakers);
    }
}

/// Moves every available permit to the queued requests in order: each head is granted once it
/// has collected all it needs; what is left goes back to the atomic word.
fn serve_locked(
    sem: &MkAsyncSemaphore,
    queue: &mut MutexGuard<'_, VecDeque<Arc<Waiter>>>,
    wakers: &mut Wakers,
) {
    if queue.is_empty() {
        return;
    }
    let mut available = sem.take_all();
    while let Some(head) = queue.front() {
        let mut st = lock(&head.state);
        let missing = head.needed - st.assigned;
        if available < missing {
            st.assigned += available;
            available = 0;
            break;
        }
        available -= missing;
        st.assigned = head.needed;
        st.status = Status::Granted;
        wakers.extend(st.waker.take());
        drop(st);
        queue.pop_front();
        sem.queued.fetch_sub(1, SeqCst);
    }
    sem.put_back(available);
}
