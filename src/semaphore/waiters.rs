//! The FIFO of requests waiting for semaphore permits.
//!
//! Every waiting request's state lives in a slab under the list's one lock, so queueing
//! allocates nothing once the slab has grown to the number of concurrent waiters, and a request
//! is identified by its slab index.
//!
//! Invariants, all under the lock: a slot is owned by one request from `enqueue` until that
//! request takes its outcome (`poll` returns `Ready`) or withdraws (`cancel`); only the owner
//! frees it, so an index never names another request's slot. A slot in the queue is `Queued`;
//! it leaves the queue exactly once, as `Granted` (it holds `needed` permits), `Closed` or
//! `ExceedsTotal` (its partial permits went back), or by `cancel` (permits it held went back).
//! While requests are queued the atomic word is kept empty: `serve` moves every available
//! permit to the head, so no later request can take permits the head is collecting. Wakers are
//! called with no lock held.

use super::{MkAsyncSemaphore, MkSemaphoreError};
use std::collections::VecDeque;
use std::sync::atomic::Ordering::SeqCst;
use std::sync::{Mutex, MutexGuard};
use std::task::{Context, Poll, Waker};

#[derive(Default)]
pub(super) struct WaitList {
    inner: Mutex<Inner>,
}

#[derive(Default)]
struct Inner {
    /// Slab indices of queued requests, oldest first.
    queue: VecDeque<usize>,
    slots: Vec<Slot>,
    free: Vec<usize>,
}

struct Slot {
    needed: usize,
    /// Permits handed to this request so far (all of them once `Granted`).
    assigned: usize,
    status: Status,
    waker: Option<Waker>,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Status {
    Free,
    Queued,
    Granted,
    Closed,
    ExceedsTotal(usize),
}

type Wakers = Vec<Waker>;

fn wake(wakers: Wakers) {
    wakers.into_iter().for_each(Waker::wake);
}

impl WaitList {
    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Queues a request for `needed` permits and serves the queue at once, so permits released
    /// just before are not missed. `Ok(None)` if it was served at once (it then holds its
    /// permits), else its slot, to poll with `waker` registered.
    pub(super) fn enqueue(
        &self,
        sem: &MkAsyncSemaphore,
        needed: usize,
        waker: &Waker,
    ) -> Result<Option<usize>, MkSemaphoreError> {
        let mut wakers = Wakers::new();
        let key = {
            let mut inner = self.lock();
            // Under the lock: `close` and `forget` change these before taking it.
            if sem.is_closed() {
                return Err(MkSemaphoreError::Closed);
            }
            sem.check_total(needed)?;
            let slot = Slot {
                needed,
                assigned: 0,
                status: Status::Queued,
                waker: None,
            };
            let key = match inner.free.pop() {
                Some(k) => {
                    inner.slots[k] = slot;
                    k
                }
                None => {
                    inner.slots.push(slot);
                    inner.slots.len() - 1
                }
            };
            inner.queue.push_back(key);
            sem.queued.fetch_add(1, SeqCst);
            inner.serve(sem, &mut wakers);
            if inner.slots[key].status == Status::Granted {
                // Its waker was never stored: nothing to drop.
                let _ = inner.release_slot(key);
                None
            } else {
                inner.slots[key].waker = Some(waker.clone());
                Some(key)
            }
        };
        wake(wakers);
        Ok(key)
    }

    /// The outcome once decided (the slot is then freed); `Pending` with the waker refreshed
    /// while queued.
    pub(super) fn poll(
        &self,
        key: usize,
        cx: &mut Context<'_>,
    ) -> Poll<Result<(), MkSemaphoreError>> {
        let mut inner = self.lock();
        let slot = &mut inner.slots[key];
        let out = match slot.status {
            Status::Queued => {
                let stale = match &slot.waker {
                    Some(w) if w.will_wake(cx.waker()) => None,
                    _ => slot.waker.replace(cx.waker().clone()),
                };
                // A waker's drop may run any code: not under the lock.
                drop(inner);
                drop(stale);
                return Poll::Pending;
            }
            Status::Granted => Ok(()),
            Status::Closed => Err(MkSemaphoreError::Closed),
            Status::ExceedsTotal(total) => Err(MkSemaphoreError::ExceedsTotal {
                requested: slot.needed,
                total,
            }),
            Status::Free => unreachable!("a request polls only the slot it owns"),
        };
        let stale = inner.release_slot(key);
        drop(inner);
        drop(stale);
        Poll::Ready(out)
    }

    /// Hands available permits to the queue, head first.
    pub(super) fn serve(&self, sem: &MkAsyncSemaphore) {
        let mut wakers = Wakers::new();
        self.lock().serve(sem, &mut wakers);
        wake(wakers);
    }

    /// Fails every queued request with `Closed`, giving back the permits they collected.
    pub(super) fn close(&self, sem: &MkAsyncSemaphore) {
        let mut wakers = Wakers::new();
        {
            let mut inner = self.lock();
            let inner = &mut *inner;
            sem.queued.fetch_sub(inner.queue.len(), SeqCst);
            for key in inner.queue.drain(..) {
                let slot = &mut inner.slots[key];
                sem.put_back(std::mem::take(&mut slot.assigned));
                slot.status = Status::Closed;
                wakers.extend(slot.waker.take());
            }
        }
        wake(wakers);
    }

    /// Fails the queued requests that the (lowered) total can no longer serve.
    pub(super) fn fail_above_total(&self, sem: &MkAsyncSemaphore) {
        let mut wakers = Wakers::new();
        {
            let mut guard = self.lock();
            let inner = &mut *guard;
            let total = sem.total_permits();
            let before = inner.queue.len();
            let slots = &mut inner.slots;
            inner.queue.retain(|&key| {
                let slot = &mut slots[key];
                if slot.needed <= total {
                    return true;
                }
                sem.put_back(std::mem::take(&mut slot.assigned));
                slot.status = Status::ExceedsTotal(total);
                wakers.extend(slot.waker.take());
                false
            });
            sem.queued.fetch_sub(before - inner.queue.len(), SeqCst);
            // A new head may be servable now.
            inner.serve(sem, &mut wakers);
        }
        wake(wakers);
    }

    /// Withdraws a dropped request: it leaves the queue, permits it held go back, and its slot
    /// is freed.
    pub(super) fn cancel(&self, sem: &MkAsyncSemaphore, key: usize) {
        let mut wakers = Wakers::new();
        let _stale = {
            let mut inner = self.lock();
            if inner.slots[key].status == Status::Queued {
                if let Some(pos) = inner.queue.iter().position(|&k| k == key) {
                    inner.queue.remove(pos);
                    sem.queued.fetch_sub(1, SeqCst);
                }
            }
            // Queued: partial permits; granted but never observed: all of them.
            sem.put_back(std::mem::take(&mut inner.slots[key].assigned));
            let stale = inner.release_slot(key);
            // The next request may now be servable (with these permits, or because the head
            // it queued behind is gone).
            inner.serve(sem, &mut wakers);
            stale
        };
        wake(wakers);
    }
}

impl Inner {
    /// Frees `key`'s slot; its waker comes back, to be dropped once the lock is released.
    #[must_use = "drop the waker after releasing the lock"]
    fn release_slot(&mut self, key: usize) -> Option<Waker> {
        let slot = &mut self.slots[key];
        slot.status = Status::Free;
        let stale = slot.waker.take();
        self.free.push(key);
        stale
    }

    /// Moves every available permit to the queued requests in order: each head is granted once
    /// it has collected all it needs; what is left goes back to the atomic word.
    fn serve(&mut self, sem: &MkAsyncSemaphore, wakers: &mut Wakers) {
        if self.queue.is_empty() {
            return;
        }
        let mut available = sem.take_all();
        while let Some(&key) = self.queue.front() {
            let slot = &mut self.slots[key];
            let missing = slot.needed - slot.assigned;
            if available < missing {
                slot.assigned += available;
                available = 0;
                break;
            }
            available -= missing;
            slot.assigned = slot.needed;
            slot.status = Status::Granted;
            wakers.extend(slot.waker.take());
            self.queue.pop_front();
            sem.queued.fetch_sub(1, SeqCst);
        }
        sem.put_back(available);
    }
}
