//! A pooled object and what it holds against the pool's limits.
//!
//! Every object counts as live from the moment a request reserves room for it until the entry
//! is dropped, wherever that happens (returned after `close`, evicted, detached, a panicking
//! factory or reset hook, the pool's own drop): the counts and the budget bytes are released by
//! `Drop`, so no path can leak them.

use memkit_async_runtime::memory::MkBudgetGuard;
use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
use std::sync::Arc;

/// Object counts shared by the pool and its entries. Kept apart from the pool's shared state so
/// that entries parked in the pool's own queue do not keep the pool alive.
#[derive(Default)]
pub(crate) struct Counters {
    /// Objects alive (in use or idle), plus rooms reserved for objects being created.
    pub(crate) live: AtomicUsize,
    /// Objects ever created.
    pub(crate) created: AtomicUsize,
}

impl Counters {
    /// Reserves room for one more object if fewer than `capacity` are alive.
    pub(crate) fn try_reserve(self: &Arc<Self>, capacity: usize) -> Option<Reservation> {
        self.live
            .fetch_update(SeqCst, SeqCst, |n| (n < capacity).then_some(n + 1))
            .ok()
            .map(|_| Reservation {
                counters: self.clone(),
            })
    }
}

/// Room for one live object; dropping it gives the room back.
pub(crate) struct Reservation {
    counters: Arc<Counters>,
}

impl Drop for Reservation {
    fn drop(&mut self) {
        self.counters.live.fetch_sub(1, SeqCst);
    }
}

/// What a live object holds: its bytes in the budget, then its room. Fields drop in this
/// order, so the bytes are back before the room is, and a request that gets the room can be
/// charged the bytes.
pub(crate) struct Charge {
    pub(crate) _bytes: Option<MkBudgetGuard>,
    pub(crate) _room: Reservation,
}

/// A pooled object. The charge is dropped before the value, so a slow `Drop` of the value does
/// not hold room another request could use.
pub(crate) struct Entry<T> {
    pub(crate) charge: Charge,
    pub(crate) value: T,
}

impl<T> Entry<T> {
    /// Takes the value out; the charge (bytes and room) is released.
    pub(crate) fn into_value(self) -> T {
        let Entry { charge, value } = self;
        drop(charge);
        value
    }
}
