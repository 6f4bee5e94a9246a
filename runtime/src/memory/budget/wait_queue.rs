//! `WaitQueue`: the FIFO of requests blocked on one budget, and how releases serve it.
//!
//! A waiting request sits in the queue of the budget that refused it. Releases serve the head
//! while it fits: the releaser charges the head's bytes on its behalf, then wakes it, so a large
//! request at the head is never overtaken. A head refused by another budget on its path moves to
//! that budget's queue.
//!
//! The queue is the runtime's [`WaitList`] of shared waiter records: the queue allocates nothing
//! per wait once it has grown (the record itself is one allocation per wait), and a withdrawn
//! request leaves it in O(1) by the key its record keeps (`Waiter::queue_at`); the key's generation makes a key left over from a
//! queue the waiter has since left name nothing. A waiter's waker stays in its record, which a
//! serve reaches after leaving this queue's lock.

use super::acquire::Waiter;
use super::MkBudget;
use crate::sync::wait_list::{WaitKey, WaitList};
use crate::sync::{load_store_buffered, lock, AtomicUsize, Mutex, Ordering::SeqCst};
use std::sync::Arc;

pub(super) struct WaitQueue {
    queue: Mutex<WaitList<Arc<Waiter>>>,
    /// `queue.len()`, readable without the lock (fair charging reads it on every charge).
    num_waiting: AtomicUsize,
}

impl WaitQueue {
    pub(super) fn new() -> WaitQueue {
        WaitQueue {
            queue: Mutex::new(WaitList::new()),
            num_waiting: AtomicUsize::new(0),
        }
    }

    /// Requests queued.
    pub(super) fn len(&self) -> usize {
        self.num_waiting.load(SeqCst)
    }

    /// Serves the queue of `budget` (whose queue this is) if anyone waits in it.
    pub(super) fn serve_if_waiting(&self, budget: &MkBudget) {
        // Pairs with the `SeqCst` increment in `enqueue`: either we see the waiter, or it sees
        // the released bytes when it re-checks.
        if load_store_buffered(&self.num_waiting) > 0 {
            self.serve(budget);
        }
    }

    /// Queues `waiter` on `budget` (whose queue this is, where its request is blocked), then
    /// re-checks, so bytes released meanwhile are not missed. A waiter cancelled on its way
    /// here is dropped instead: counted as waiting, it would make fair charging refuse every
    /// request on the path until the next serve.
    pub(super) fn enqueue(&self, budget: &MkBudget, waiter: Arc<Waiter>) {
        {
            let mut queue = lock(&self.queue);
            let key = queue.push_back(waiter);
            let queued = queue.state(key).is_some_and(|w| w.queue_at(budget, key));
            if !queued {
                // The caller's reference keeps the record alive: this is not its last drop.
                let _ = queue.remove(key);
                return;
            }
            self.num_waiting.fetch_add(1, SeqCst);
        }
        // Heap frees lower this budget's count without a release through it.
        super::heap_waiters::list(budget);
        self.serve(budget);
    }

    /// Removes the waiter queued under `key` if it still is; `true` if it was. A key from
    /// before the waiter left this queue (served, moved) names nothing.
    pub(super) fn dequeue(&self, key: WaitKey) -> bool {
        let mut queue = lock(&self.queue);
        // The canceller holds a reference: dropping this one under the lock frees nothing.
        let removed = queue.remove(key).is_some();
        if removed {
            self.num_waiting.fetch_sub(1, SeqCst);
        }
        removed
    }

    /// Serves queued requests from the head while they fit. A head blocked by another budget
    /// (an ancestor, or its own budget below this one) moves to that budget's queue.
    fn serve(&self, budget: &MkBudget) {
        let mut granted = Vec::new();
        let mut moved = Vec::new();
        let mut rolled_back = Vec::new();
        // Dropped after the lock: the last reference to a cancelled waiter drops its waker.
        let mut cancelled = Vec::new();
        {
            let mut queue = lock(&self.queue);
            while let Some(key) = queue.front() {
                let Some(head) = queue.state(key) else {
                    unreachable!("the front key is current")
                };
                let outcome = if head.is_cancelled() {
                    None
                } else {
                    // Unserved: serving the rolled-back levels now could take this queue's lock
                    // again (the head's own budget is often this one).
                    Some(head.origin().try_charge_unserved(head.bytes()))
                };
                match outcome {
                    None => cancelled.push(queue.remove(key)),
                    Some(Ok(())) => granted.push(queue.remove(key)),
                    Some(Err(refused)) => {
                        let blocked_here = refused.full.same(budget);
                        let full = refused.full.clone();
                        rolled_back.push(refused);
                        if blocked_here {
                            break;
                        }
                        moved.push((queue.remove(key), full));
                    }
                }
                self.num_waiting.fetch_sub(1, SeqCst);
            }
        }
        drop(cancelled);
        // Wakers and other queues are touched without this queue's lock held.
        for refused in rolled_back {
            refused.serve_rolled_back();
        }
        for (waiter, _) in granted.into_iter().flatten() {
            waiter.grant();
        }
        for (waiter, full) in moved {
            if let Some((waiter, _)) = waiter {
                full.enqueue(waiter);
            }
        }
    }
}
