//! `Listeners`: wakers of pool requests waiting for an event other than their budget request
//! (the pool closing, an object coming back while a new one waits for bytes).
//!
//! Only slow paths register; the hot path reads one counter to learn that nobody listens.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
use std::sync::Mutex;
use std::task::Waker;

#[derive(Default)]
pub(crate) struct Listeners {
    count: AtomicUsize,
    wakers: Mutex<Registry>,
}

#[derive(Default)]
struct Registry {
    next: u64,
    by_key: BTreeMap<u64, Waker>,
}

impl Listeners {
    fn lock(&self) -> std::sync::MutexGuard<'_, Registry> {
        self.wakers.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Registers `waker` under `*key`, or refreshes it if `*key` is already registered.
    /// The count is raised (`SeqCst`) before this returns: a caller that checks its condition
    /// afterwards cannot miss an event announced after the check.
    pub(crate) fn register(&self, key: &mut Option<u64>, waker: &Waker) {
        let mut reg = self.lock();
        if let Some(k) = *key {
            if let Some(w) = reg.by_key.get_mut(&k) {
                if !w.will_wake(waker) {
                    let stale = std::mem::replace(w, waker.clone());
                    // A waker's drop may run any code: not under the lock.
                    drop(reg);
                    drop(stale);
                }
                return;
            }
        }
        let k = reg.next;
        reg.next += 1;
        reg.by_key.insert(k, waker.clone());
        self.count.fetch_add(1, SeqCst);
        *key = Some(k);
    }

    /// Removes the registration under `*key`, if any.
    pub(crate) fn unregister(&self, key: &mut Option<u64>) {
        if let Some(k) = key.take() {
            let removed = self.lock().by_key.remove(&k);
            if removed.is_some() {
                self.count.fetch_sub(1, SeqCst);
            }
        }
    }

    /// Whether anyone is registered (one `SeqCst` load).
    pub(crate) fn any(&self) -> bool {
        self.count.load(SeqCst) > 0
    }

    /// Wakes every registered listener; they stay registered until they unregister.
    pub(crate) fn notify_all(&self) {
        let wakers: Vec<Waker> = self.lock().by_key.values().cloned().collect();
        wakers.into_iter().for_each(Waker::wake);
    }
}
