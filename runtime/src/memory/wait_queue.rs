//! The FIFO of requests blocked on a budget, and how releases serve it.
//!
//! A waiting request sits in the queue of the budget that refused it. Releases serve the head
//! while it fits: the releaser charges the head's bytes on its behalf, then wakes it, so a large
//! request at the head is never overtaken. A head refused by another budget on its path moves to
//! that budget's queue.

use super::budget::MkBudget;
use super::wait::Waiter;
use crate::sync::{load_store_buffered, lock, Ordering::SeqCst};
use std::sync::Arc;

impl MkBudget {
    pub(crate) fn serve_if_waiting(&self) {
        // Pairs with the `SeqCst` increment in `enqueue`: either we see the waiter, or it sees
        // the released bytes when it re-checks.
        if load_store_buffered(&self.inner.num_waiting) > 0 {
            self.serve_waiters();
        }
    }

    /// Queues `waiter` on this budget (where its request is blocked), then re-checks, so bytes
    /// released meanwhile are not missed. A waiter cancelled on its way here is dropped
    /// instead: counted as waiting, it would make fair charging refuse every request on the
    /// path until the next serve.
    pub(crate) fn enqueue(&self, waiter: Arc<Waiter>) {
        {
            let mut queue = lock(&self.inner.waiters);
            if !waiter.queue_at(self) {
                return;
            }
            queue.push_back(waiter);
            self.inner.num_waiting.fetch_add(1, SeqCst);
        }
        // Heap frees lower this budget's count without a release through it.
        super::heap_waiters::list(self);
        self.serve_waiters();
    }

    /// Removes `waiter` if it is still queued here; `true` if it was.
    pub(crate) fn dequeue(&self, waiter: &Arc<Waiter>) -> bool {
        let mut queue = lock(&self.inner.waiters);
        let Some(pos) = queue.iter().position(|w| Arc::ptr_eq(w, waiter)) else {
            return false;
        };
        queue.remove(pos);
        self.inner.num_waiting.fetch_sub(1, SeqCst);
        true
    }

    /// Serves queued requests from the head while they fit. A head blocked by another budget
    /// (an ancestor, or its own budget below this one) moves to that budget's queue.
    fn serve_waiters(&self) {
        let mut granted = Vec::new();
        let mut moved = Vec::new();
        let mut rolled_back = Vec::new();
        // Dropped after the lock: the last reference to a cancelled waiter drops its waker.
        let mut cancelled = Vec::new();
        {
            let mut queue = lock(&self.inner.waiters);
            while let Some(head) = queue.front() {
                if head.is_cancelled() {
                    cancelled.push(queue.pop_front());
                    self.inner.num_waiting.fetch_sub(1, SeqCst);
                    continue;
                }
                // Unserved: serving the rolled-back levels now could take this queue's lock
                // again (the head's own budget is often this one).
                match head.origin().try_charge_unserved(head.bytes()) {
                    Ok(()) => granted.push(queue.pop_front()),
                    Err(refused) => {
                        let blocked_here = refused.full.same(self);
                        let full = refused.full.clone();
                        rolled_back.push(refused);
                        if blocked_here {
                            break;
                        }
                        moved.push((queue.pop_front(), full));
                    }
                }
                self.inner.num_waiting.fetch_sub(1, SeqCst);
            }
        }
        drop(cancelled);
        // Wakers and other queues are touched without this queue's lock held.
        for refused in rolled_back {
            refused.serve_rolled_back();
        }
        for waiter in granted.into_iter().flatten() {
            waiter.grant();
        }
        for (waiter, full) in moved {
            if let Some(waiter) = waiter {
                full.enqueue(waiter);
            }
        }
    }
}
