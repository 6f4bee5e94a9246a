//! The FIFO of requests waiting for semaphore permits.
//!
//! Every waiting request is a waiter of the runtime's [`WaitList`], under this list's one lock:
//! queueing allocates nothing once the slab has grown to the number of concurrent waiters, a
//! dropped request leaves the queue in O(1), and a request is identified by its [`WaitKey`].
//!
//! Invariants, all under the lock: a waiter is owned by one request from `enqueue` until that
//! request takes its outcome (`poll` returns `Ready`) or withdraws (`cancel`); only the owner
//! removes it, and a key's generation makes sure it never names another request's waiter. A
//! queued waiter is `Waiting`; it leaves the queue exactly once, detached as `Granted` (it holds
//! `needed` permits), `Closed` or `ExceedsTotal` (its partial permits went back), or by
//! `cancel` (permits it held went back). While requests are queued the atomic word is kept
//! empty: `serve` moves every available permit to the head, so no later request can take
//! permits the head is collecting. Wakers are called with no lock held.

use super::{MkAsyncSemaphore, MkSemaphoreError};
use memkit_async_runtime::wait_list::{WaitKey, WaitList as List, WakeList};
use std::sync::atomic::Ordering::SeqCst;
use std::sync::{Mutex, MutexGuard};
use std::task::{Context, Poll, Waker};

#[derive(Default)]
pub(super) struct WaitList {
    inner: Mutex<List<Request>>,
}

struct Request {
    needed: usize,
    /// Permits handed to this request so far (all of them once `Granted`).
    assigned: usize,
    status: Status,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Status {
    Waiting,
    Granted,
    Closed,
    ExceedsTotal(usize),
}

impl WaitList {
    fn lock(&self) -> MutexGuard<'_, List<Request>> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Queues a request for `needed` permits and serves the queue at once, so permits released
    /// just before are not missed. `Ok(None)` if it was served at once (it then holds its
    /// permits), else its key, to poll with `waker` registered.
    pub(super) fn enqueue(
        &self,
        sem: &MkAsyncSemaphore,
        needed: usize,
        waker: &Waker,
    ) -> Result<Option<WaitKey>, MkSemaphoreError> {
        let mut wakers = WakeList::new();
        let mut list = self.lock();
        // Under the lock: `close` and `forget` change these before taking it.
        if sem.is_closed() {
            return Err(MkSemaphoreError::Closed);
        }
        sem.check_total(needed)?;
        let key = list.push_back(Request {
            needed,
            assigned: 0,
            status: Status::Waiting,
        });
        sem.queued.fetch_add(1, SeqCst);
        serve(&mut list, sem, &mut wakers);
        let granted = list.state(key).map(|r| r.status) == Some(Status::Granted);
        let out = if granted {
            // Its waker was never stored: nothing to drop.
            let _ = list.remove(key);
            None
        } else {
            // A new waiter has no waker to replace.
            let _ = list.register(key, waker);
            Some(key)
        };
        drop(list);
        wakers.wake_all();
        Ok(out)
    }

    /// The outcome once decided (the waiter is then removed); `Pending` with the waker
    /// refreshed while queued.
    pub(super) fn poll(
        &self,
        key: WaitKey,
        cx: &mut Context<'_>,
    ) -> Poll<Result<(), MkSemaphoreError>> {
        let mut list = self.lock();
        let Some(req) = list.state(key) else {
            unreachable!("a request polls only the waiter it owns")
        };
        let out = match req.status {
            Status::Waiting => {
                let stale = list.register(key, cx.waker());
                // A waker's drop may run any code: not under the lock.
                drop(list);
                drop(stale);
                return Poll::Pending;
            }
            Status::Granted => Ok(()),
            Status::Closed => Err(MkSemaphoreError::Closed),
            Status::ExceedsTotal(total) => Err(MkSemaphoreError::ExceedsTotal {
                requested: req.needed,
                total,
            }),
        };
        let removed = list.remove(key);
        drop(list);
        drop(removed);
        Poll::Ready(out)
    }

    /// Hands available permits to the queue, head first.
    pub(super) fn serve(&self, sem: &MkAsyncSemaphore) {
        let mut wakers = WakeList::new();
        serve(&mut self.lock(), sem, &mut wakers);
        wakers.wake_all();
    }

    /// Fails every queued request with `Closed`, giving back the permits they collected.
    pub(super) fn close(&self, sem: &MkAsyncSemaphore) {
        let mut wakers = WakeList::new();
        {
            let mut list = self.lock();
            sem.queued.fetch_sub(list.len(), SeqCst);
            list.drain(&mut wakers, |req| {
                sem.put_back(std::mem::take(&mut req.assigned));
                req.status = Status::Closed;
            });
        }
        wakers.wake_all();
    }

    /// Fails the queued requests that the (lowered) total can no longer serve.
    pub(super) fn fail_above_total(&self, sem: &MkAsyncSemaphore) {
        let mut wakers = WakeList::new();
        {
            let mut list = self.lock();
            let total = sem.total_permits();
            let before = list.len();
            list.retain(&mut wakers, |req| {
                if req.needed <= total {
                    return true;
                }
                sem.put_back(std::mem::take(&mut req.assigned));
                req.status = Status::ExceedsTotal(total);
                false
            });
            sem.queued.fetch_sub(before - list.len(), SeqCst);
            // A new head may be servable now.
            serve(&mut list, sem, &mut wakers);
        }
        wakers.wake_all();
    }

    /// Withdraws a dropped request: it leaves the queue, permits it held go back, and its
    /// waiter is removed.
    pub(super) fn cancel(&self, sem: &MkAsyncSemaphore, key: WaitKey) {
        let mut wakers = WakeList::new();
        let _stale = {
            let mut list = self.lock();
            if list.is_queued(key) {
                sem.queued.fetch_sub(1, SeqCst);
            }
            let removed = list.remove(key);
            // Queued: partial permits; granted but never observed: all of them.
            if let Some((req, _)) = &removed {
                sem.put_back(req.assigned);
            }
            // The next request may now be servable (with these permits, or because the head
            // it queued behind is gone).
            serve(&mut list, sem, &mut wakers);
            removed
        };
        wakers.wake_all();
    }
}

/// Moves every available permit to the queued requests in order: each head is granted once it
/// has collected all it needs; what is left goes back to the atomic word.
fn serve(list: &mut List<Request>, sem: &MkAsyncSemaphore, wakers: &mut WakeList) {
    if list.is_empty() {
        return;
    }
    let mut available = sem.take_all();
    while let Some(key) = list.front() {
        let Some(req) = list.state_mut(key) else {
            unreachable!("the front key is current")
        };
        let missing = req.needed - req.assigned;
        if available < missing {
            req.assigned += available;
            available = 0;
            break;
        }
        available -= missing;
        req.assigned = req.needed;
        req.status = Status::Granted;
        wakers.push(list.detach(key));
        sem.queued.fetch_sub(1, SeqCst);
    }
    sem.put_back(available);
}
