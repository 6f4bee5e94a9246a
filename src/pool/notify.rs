//! `Listeners`: wakers of pool requests waiting for an event other than their budget request
//! (the pool closing, an object coming back while a new one waits for bytes).
//!
//! Only slow paths register; the hot path reads one counter to learn that nobody listens.
//! Registrations are waiters of the runtime's [`WaitList`]: no allocation per wait once grown,
//! O(1) unregistration, and wakers called after the lock is released.

use memkit_async_runtime::wait_list::{WaitKey, WaitList, WakeList};
use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
use std::sync::Mutex;
use std::task::Waker;

#[derive(Default)]
pub(crate) struct Listeners {
    count: AtomicUsize,
    list: Mutex<WaitList<()>>,
}

impl Listeners {
    fn lock(&self) -> std::sync::MutexGuard<'_, WaitList<()>> {
        self.list.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Registers `waker` under `*key`, or refreshes it if `*key` is already registered.
    /// The count is raised (`SeqCst`) before this returns: a caller that checks its condition
    /// afterwards cannot miss an event announced after the check.
    pub(crate) fn register(&self, key: &mut Option<WaitKey>, waker: &Waker) {
        let mut list = self.lock();
        let k = match *key {
            Some(k) if list.is_queued(k) => k,
            _ => {
                let k = list.push_back(());
                self.count.fetch_add(1, SeqCst);
                *key = Some(k);
                k
            }
        };
        let stale = list.register(k, waker);
        // A waker's drop may run any code: not under the lock.
        drop(list);
        drop(stale);
    }

    /// Removes the registration under `*key`, if any.
    pub(crate) fn unregister(&self, key: &mut Option<WaitKey>) {
        if let Some(k) = key.take() {
            let removed = self.lock().remove(k);
            if let Some((_, waker)) = removed {
                self.count.fetch_sub(1, SeqCst);
                drop(waker);
            }
        }
    }

    /// Whether anyone is registered (one `SeqCst` load).
    pub(crate) fn any(&self) -> bool {
        self.count.load(SeqCst) > 0
    }

    /// Wakes every registered listener; they stay registered until they unregister.
    pub(crate) fn notify_all(&self) {
        let mut wakers = WakeList::new();
        self.lock().clone_wakers(&mut wakers);
        wakers.wake_all();
    }
}
