//! Consumers that can give memory back under `Evict` pressure.

/// A consumer of budget memory (a cache, a buffer, a pool's idle objects) that can drop entries
/// when a request on its budget does not fit and the policy is
/// [`Evict`](crate::memory::MkBackpressure::Evict).
///
/// Register it with [`MkBudget::register_evictable`](crate::memory::MkBudget::register_evictable);
/// the budget keeps only a weak reference, so dropping the consumer unregisters it.
pub trait MkEvictable: Send + Sync {
    /// Drops the oldest entries until about `bytes_wanted` bytes are released back to the budget
    /// (by dropping the guards that hold them), and returns the bytes released; 0 if nothing is
    /// left to evict. Called on the requesting task's thread, with no budget lock held.
    fn evict(&self, bytes_wanted: usize) -> usize;
}
