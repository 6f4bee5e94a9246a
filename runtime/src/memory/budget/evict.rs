//! Consumers that can give memory back under `Evict` pressure, and how `Evict` asks them.

use super::{MkBudget, MkBudgetGuard};
use crate::memory::MkAllocError;
use crate::sync::{lock, Mutex};
use std::sync::{Arc, Weak};

/// A consumer of budget memory (a cache, a buffer, a pool's idle objects) that can drop entries
/// when a request on its budget does not fit and the policy is
/// [`Evict`](crate::memory::MkBackpressure::Evict).
///
/// Register it with [`MkBudget::register_evictable`](crate::memory::MkBudget::register_evictable);
/// the budget keeps only a weak reference, so dropping the consumer unregisters it.
pub trait MkEvictable: Send + Sync {
    /// Drops the oldest entries until about `bytes_wanted` bytes are released back to the budget
    /// (by dropping the guards that hold them), and returns the bytes released, as the consumer
    /// counts them (not by watching the budget, which other tasks charge meanwhile). Return 0
    /// only if nothing is left to evict: `Evict` asks again while anyone released something,
    /// and fails with `CapacityReached` once nobody can. Called on the requesting task's
    /// thread, with no lock of memkit held, so it may use the budget and the consumers on it
    /// (even the one that asked).
    fn evict(&self, bytes_wanted: usize) -> usize;
}

/// The consumers registered on one budget, by weak reference.
pub(super) struct Evictables(Mutex<Vec<Weak<dyn MkEvictable>>>);

impl Evictables {
    pub(super) fn new() -> Evictables {
        Evictables(Mutex::new(Vec::new()))
    }

    /// Adds `consumer`, forgetting the ones that are gone.
    pub(super) fn register(&self, consumer: &Arc<dyn MkEvictable>) {
        let mut list = lock(&self.0);
        list.retain(|c| c.strong_count() > 0);
        list.push(Arc::downgrade(consumer));
    }

    /// The consumers still alive, taken out from under the lock (they run user code).
    pub(super) fn live(&self) -> Vec<Arc<dyn MkEvictable>> {
        lock(&self.0).iter().filter_map(Weak::upgrade).collect()
    }
}

/// `Evict`: asks the consumers registered on the budgets from `budget` up to `full` to make
/// room, retrying after each, until the request fits or nobody frees anything: then nothing
/// evictable is left on the way, and the request fails with `CapacityReached`.
pub(super) fn evict_for(
    budget: &MkBudget,
    bytes: usize,
    full: &MkBudget,
) -> Result<MkBudgetGuard, MkAllocError> {
    let mut full = full.clone();
    loop {
        let wanted = bytes.saturating_sub(full.limit().saturating_sub(full.used()));
        let consumers: Vec<Arc<dyn MkEvictable>> = budget
            .ancestors()
            .take_while_inclusive(&full)
            .flat_map(MkBudget::evictables)
            .collect();
        let mut freed = 0;
        for consumer in consumers {
            freed += consumer.evict(wanted.max(1));
            match budget.try_charge_fair(bytes) {
                Ok(()) => return Ok(budget.guard(bytes)),
                Err(now_full) => full = now_full,
            }
        }
        if freed == 0 {
            return Err(full.capacity_reached(bytes));
        }
    }
}

/// Heap enforcement under `Evict`: asks the consumers registered on the budgets from `from` up
/// to `full` (which is over its limit) to release memory until `full` is back under its
/// limit; `false` if it is still over when nobody frees anything more.
pub(super) fn evict_to_limit(full: &MkBudget, from: &MkBudget) -> bool {
    loop {
        let over = full.used().saturating_sub(full.limit());
        if over == 0 {
            return true;
        }
        let consumers: Vec<Arc<dyn MkEvictable>> = from
            .ancestors()
            .take_while_inclusive(full)
            .flat_map(MkBudget::evictables)
            .collect();
        let freed: usize = consumers.iter().map(|c| c.evict(over)).sum();
        if freed == 0 {
            return full.used() <= full.limit();
        }
    }
}

/// `take_while` that also yields the budget it stops at.
trait TakeWhileInclusive<'a>: Iterator<Item = &'a MkBudget> + Sized {
    fn take_while_inclusive(self, last: &'a MkBudget) -> impl Iterator<Item = &'a MkBudget> {
        let mut done = false;
        self.take_while(move |b| {
            let keep = !done;
            done = done || b.same(last);
            keep
        })
    }
}

impl<'a, I: Iterator<Item = &'a MkBudget>> TakeWhileInclusive<'a> for I {}
