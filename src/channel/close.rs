//! `CloseSignal`: how closing a channel wakes the senders parked in its budget's wait queue.
//!
//! A sender waiting for capacity is parked on the channel's budget, which knows nothing about
//! the channel. Such a sender also registers its waker here; closing the channel wakes every
//! registered sender, which then withdraws its budget request and returns its message.
//!
//! The registrations are waiters of the runtime's [`WaitList`]: no allocation per wait once
//! grown, O(1) deregistration, keys that never name a later sender, wakers called after the lock.

use memkit_async_runtime::wait_list::{WaitKey, WaitList, WakeList};
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
    senders: WaitList<()>,
}

impl CloseSignal {
    fn lock(&self) -> MutexGuard<'_, Slots> {
        // Nothing panics while holding this lock; a poisoned one is still consistent.
        self.slots.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Registers a parked sender's waker; its key, or `None` if the channel is already closed.
    pub(super) fn register(&self, waker: &Waker) -> Option<WaitKey> {
        let mut slots = self.lock();
        if slots.closed {
            return None;
        }
        let key = slots.senders.push_back(());
        // A new waiter has no waker to replace.
        let _ = slots.senders.register(key, waker);
        Some(key)
    }

    /// Replaces the waker registered under `key` if it would not wake the same task.
    pub(super) fn update(&self, key: WaitKey, waker: &Waker) {
        let mut slots = self.lock();
        // Once closed the sender was woken and sees the close itself: nothing to refresh.
        let stale = if slots.closed {
            None
        } else {
            slots.senders.register(key, waker)
        };
        // A waker's drop may run any code: not under the lock.
        drop(slots);
        drop(stale);
    }

    /// Forgets the waker registered under `key` (the sender stopped waiting).
    pub(super) fn deregister(&self, key: WaitKey) {
        let removed = self.lock().senders.remove(key);
        drop(removed);
    }

    /// Marks the channel closed and wakes every registered sender, once.
    pub(super) fn close(&self) {
        let mut wakers = WakeList::new();
        {
            let mut slots = self.lock();
            if slots.closed {
                return;
            }
            slots.closed = true;
            slots.senders.drain(&mut wakers, |_| {});
        }
        // Woken without the lock held: a woken sender may deregister at once.
        wakers.wake_all();
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
        let c = signal.register(&waker).unwrap();
        assert_ne!(c, a, "a freed slot comes back under a new key");
        signal.deregister(a); // stale: must not deregister `c`
        signal.deregister(b);
        signal.close();
        signal.close();
        assert_eq!(count.0.load(SeqCst), 1, "only the one still registered");
        assert_eq!(signal.register(&waker), None);
        signal.update(c, &waker); // after close: harmless
        signal.deregister(c);
    }
}
