//! Per-worker counters: written only by their worker (plain load and store, no read-modify-write
//! on the hot path), read by anyone through the runtime's metrics.

use crate::sync::{AtomicBool, AtomicU64, Ordering};

#[derive(Default)]
pub(crate) struct WorkerMetrics {
    polls: AtomicU64,
    steals: AtomicU64,
    parks: AtomicU64,
    parked: AtomicBool,
}

impl WorkerMetrics {
    /// Task polls performed.
    pub(crate) fn polls(&self) -> u64 {
        self.polls.load(Ordering::Relaxed)
    }

    /// Successful steals.
    pub(crate) fn steals(&self) -> u64 {
        self.steals.load(Ordering::Relaxed)
    }

    /// Times the worker went to sleep.
    pub(crate) fn parks(&self) -> u64 {
        self.parks.load(Ordering::Relaxed)
    }

    /// Whether the worker is asleep now.
    pub(crate) fn is_parked(&self) -> bool {
        self.parked.load(Ordering::SeqCst)
    }

    /// Worker only: one more poll.
    pub(crate) fn count_poll(&self) {
        bump(&self.polls);
    }

    /// Worker only: one more steal.
    pub(crate) fn count_steal(&self) {
        bump(&self.steals);
    }

    /// Worker only: one more park.
    pub(crate) fn count_park(&self) {
        bump(&self.parks);
    }

    /// Marks the worker asleep or awake (the worker, or the notifier that wakes it).
    pub(crate) fn set_parked(&self, parked: bool) {
        self.parked.store(parked, Ordering::SeqCst);
    }
}

/// Adds one to a counter only its worker writes: a plain load and store, no locked instruction.
fn bump(counter: &AtomicU64) {
    counter.store(counter.load(Ordering::Relaxed) + 1, Ordering::Relaxed);
}
