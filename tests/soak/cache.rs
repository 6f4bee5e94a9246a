//! The evictable cache that holds bytes of the `Evict` budget.

use crate::counters::{bump, C};
use crate::state::lk;
use memkit_async::{MkBudgetGuard, MkEvictable};
use std::collections::VecDeque;
use std::sync::Mutex;

/// Bytes held from the `Evict` budget, oldest first; gives them back when asked.
#[derive(Default)]
pub struct Cache {
    pub entries: Mutex<VecDeque<MkBudgetGuard>>,
}

impl Cache {
    pub fn insert(&self, guard: MkBudgetGuard) {
        let old = {
            let mut entries = lk(&self.entries);
            entries.push_back(guard);
            if entries.len() > 32 {
                entries.pop_front()
            } else {
                None
            }
        };
        drop(old);
    }

    pub fn clear(&self) {
        let all = std::mem::take(&mut *lk(&self.entries));
        drop(all);
    }
}

impl MkEvictable for Cache {
    fn evict(&self, bytes_wanted: usize) -> usize {
        let mut evicted = Vec::new();
        let mut freed = 0;
        {
            let mut entries = lk(&self.entries);
            while freed < bytes_wanted {
                let Some(guard) = entries.pop_front() else {
                    break;
                };
                freed += guard.bytes();
                evicted.push(guard);
            }
        }
        for guard in evicted {
            bump(C::Evicted);
            drop(guard); // released before returning, outside the cache's lock
        }
        freed
    }
}
