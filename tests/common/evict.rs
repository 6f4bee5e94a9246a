//! A byte-bounded FIFO cache whose entries hold budget memory, for the `Evict` policy tests.

use memkit_async::{MkBudgetGuard, MkEvictable};
use std::collections::VecDeque;
use std::sync::Mutex;

/// Entries are budget guards under a key; eviction drops the oldest first and records its key.
#[derive(Default)]
pub struct FifoCache {
    pub entries: Mutex<VecDeque<(u32, MkBudgetGuard)>>,
    pub evicted: Mutex<Vec<u32>>,
}

impl FifoCache {
    /// Adds `guard` under `key`, newest last.
    pub fn insert(&self, key: u32, guard: MkBudgetGuard) {
        self.entries.lock().unwrap().push_back((key, guard));
    }

    /// The keys still cached, oldest first.
    pub fn keys(&self) -> Vec<u32> {
        self.entries.lock().unwrap().iter().map(|e| e.0).collect()
    }

    /// The keys evicted so far, in eviction order.
    pub fn evicted(&self) -> Vec<u32> {
        self.evicted.lock().unwrap().clone()
    }
}

impl MkEvictable for FifoCache {
    fn evict(&self, bytes_wanted: usize) -> usize {
        let mut freed = 0;
        let mut entries = self.entries.lock().unwrap();
        while freed < bytes_wanted {
            let Some((key, guard)) = entries.pop_front() else {
                break;
            };
            freed += guard.bytes();
            self.evicted.lock().unwrap().push(key);
        }
        freed
    }
}
