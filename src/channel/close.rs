//! `CloseSignal`: how closing a channel wakes the senders parked in its budget's wait queue.
//!
//! A sender waiting for capacity is parked on the channel's budget, which knows nothing about
//! the channel. Such a sender also registers its waker here; closing the channel wakes every
//! registered sender, which then withdraws its budget request and returns its message.

use std::sync::{Mutex, MutexGuard};
use std::task::Waker;

/// The wakers of parked senders, and whether the channel is closed.
#[derive(Default)]
pub(super) struct CloseSignal {
    slots: Mutex<Slots>,
}

#[derive(Default)]
struct Slots {
    closed: bool,
    wakers: Vec<Option<Waker>>,
    /// Indexes of empty entries of `wakers`, reused before the vector grows.
    free: Vec<usize>,
}

impl CloseSignal {
    fn lock(&self) -> MutexGuard<'_, Slots> {
        // Nothing panics while holding this lock; a poisoned one is still consistent.
        self.slots.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Registers a parked sender's waker; its key, or `None` if the channel is already closed.
    pub(super) fn register(&self, waker: &Waker) -> Option<usize> {
        let mut slots = self.lock();
        if slots.closed {
            return None;
        }
        let waker = Some(waker.clone());
        Some(match slots.free.pop() {
            Some(key) => {
                slots.wakers[key] = waker;
                key
            }
            None => {
                slots.wakers.push(waker);
                slots.wakers.len() - 1
            }
        })
    }

    /// Replaces the waker registered under `key` if it would not wake the same task.
    pub(super) fn update(&self, key: usize, waker: &Waker) {
        let mut slots = self.lock();
        let mut stale = None;
        if let Some(slot @ Some(_)) = slots.wakers.get_mut(key) {
            if !slot.as_ref().is_some_and(|w| w.will_wake(waker)) {
                stale = slot.replace(waker.clone());
            }
        }
        // A waker's drop may run any code: not under the lock.
        drop(slots);
        drop(stale);
    }

    /// Forgets the waker registered under `key` (the sender stopped waiting).
    pub(super) fn deregister(&self, key: usize) {
        let mut slots = self.lock();
        let stale = slots.wakers.get_mut(key).and_then(Option::take);
        if stale.is_some() {
            slots.free.push(key);
        }
        drop(slots);
        drop(stale);
    }

    /// Marks the channel closed and wakes every registered sender, once.
    pub(super) fn close(&self) {
        let wakers = {
            let mut slots = self.lock();
            if slots.closed {
                return;
            }
            slots.closed = true;
            slots.free.clear();
            std::mem::take(&mut slots.wakers)
        };
        // Woken without the lock held: a woken sender may deregister at once.
        wakers.into_iter().flatten().for_each(Waker::wake);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
    use std::sync::Arc;
    use std::task::Wake;

    struct Count(AtomicUsize);
    impl Wake for Count {
        fn wake(self: Arc<Self>) {
            self.0.fetch_add(1, SeqCst);
        }
    }

    #[test]
    fn close_wakes_each_registered_waker_once_and_refuses_new_ones() {
        let count = Arc::new(Count(AtomicUsize::new(0)));
        let waker = Waker::from(count.clone());
        let signal = CloseSignal::default();
        let a = signal.register(&waker).unwrap();
        let b = signal.register(&waker).unwrap();
        signal.deregister(a);
        assert_eq!(signal.register(&waker), Some(a), "a freed key is reused");
        signal.deregister(b);
        signal.close();
        signal.close();
        assert_eq!(count.0.load(SeqCst), 1, "only the one still registered");
        assert_eq!(signal.register(&waker), None);
        signal.deregister(a); // after close: harmless
    }
}
