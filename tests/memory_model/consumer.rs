//! The evictable consumer the scenarios register on `Evict` budgets.

use memkit_async::{MkBudget, MkBudgetGuard, MkEvictable};
use std::collections::VecDeque;
use std::sync::Mutex;

/// An evictable consumer for `Evict`: holds guards on its budget and drops the oldest first.
pub struct TestConsumer {
    pub budget: MkBudget,
    pub entries: Mutex<VecDeque<MkBudgetGuard>>,
}

impl MkEvictable for TestConsumer {
    fn evict(&self, bytes_wanted: usize) -> usize {
        let mut out = Vec::new();
        let mut freed = 0;
        {
            let mut entries = self.entries.lock().unwrap();
            while freed < bytes_wanted {
                let Some(g) = entries.pop_front() else { break };
                freed += g.bytes();
                out.push(g);
            }
        }
        drop(out);
        freed
    }
}
