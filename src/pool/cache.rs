//! `IdleCache`: where idle pool objects wait, without locks.
//!
//! Each worker has one cache-padded slot holding the object it returned last, in front of a
//! shared lock-free FIFO (`crossbeam_deque::Injector`). A task that returns an object and then
//! acquires one on the same worker (the common loop) touches only its worker's slot: one atomic
//! swap each way, on a cache line no other worker writes. Returns off the workers, and objects
//! displaced from a slot, go to the shared queue. When a worker's slot and the queue are empty,
//! the other workers' slots are searched before the caller concludes nothing is idle.
//!
//! Invariant (the unsafe code relies on it): a slot is null or holds a pointer from
//! `Box::into_raw` that the slot alone owns; only [`swap_slot`] writes or takes it, with one
//! atomic swap, so exactly one caller gets each pointer back and turns it into a `Box` again.
//! The slot is an `AtomicPtr`, not an `AtomicCell<Option<Box<_>>>`: the latter stores the
//! pointer as an integer and hands back a box without provenance, which is undefined behaviour.

use super::entry::Entry;
use crossbeam_deque::{Injector, Steal};
use crossbeam_utils::CachePadded;
use memkit_async_runtime::runtime::worker_index;
use std::ptr;
use std::sync::atomic::{AtomicPtr, Ordering::AcqRel};

type Boxed<T> = Box<Entry<T>>;
/// One worker's slot: null, or the object it returned last (see the invariant above).
type Slot<T> = CachePadded<AtomicPtr<Entry<T>>>;

/// Puts `entry` (or nothing) in `slot` and returns what was there.
fn swap_slot<T>(slot: &AtomicPtr<Entry<T>>, entry: Option<Boxed<T>>) -> Option<Boxed<T>> {
    let new = entry.map_or(ptr::null_mut(), Box::into_raw);
    // AcqRel: the taker sees the entry as the returner left it.
    let old = slot.swap(new, AcqRel);
    // SAFETY: a non-null slot pointer came from `Box::into_raw` above and the swap took it out
    // of the slot, so this caller is its only owner (module invariant).
    (!old.is_null()).then(|| unsafe { Box::from_raw(old) })
}

pub(crate) struct IdleCache<T> {
    slots: Box<[Slot<T>]>,
    shared: Injector<Boxed<T>>,
}

impl<T> IdleCache<T> {
    /// A cache with `slots` per-worker slots (workers beyond that share slots modulo `slots`).
    pub(crate) fn new(slots: usize) -> IdleCache<T> {
        IdleCache {
            slots: (0..slots.max(1))
                .map(|_| CachePadded::new(AtomicPtr::new(ptr::null_mut())))
                .collect(),
            shared: Injector::new(),
        }
    }

    fn own_slot(&self) -> Option<usize> {
        worker_index().map(|i| i % self.slots.len())
    }

    /// Parks an idle object: in this worker's slot (the object there before moves to the
    /// shared queue), or in the shared queue off the workers.
    pub(crate) fn push(&self, entry: Boxed<T>) {
        match self.own_slot() {
            Some(i) => {
                if let Some(displaced) = swap_slot(&self.slots[i], Some(entry)) {
                    self.shared.push(displaced);
                }
            }
            None => self.shared.push(entry),
        }
    }

    /// Takes an idle object: this worker's slot first (most recently used, still in cache), then
    /// the shared queue, then other workers' slots. `None` means none was seen; objects moving
    /// between places concurrently can be missed by one call.
    pub(crate) fn pop(&self) -> Option<Boxed<T>> {
        let own = self.own_slot();
        if let Some(i) = own {
            if let Some(entry) = swap_slot(&self.slots[i], None) {
                return Some(entry);
            }
        }
        self.pop_shared().or_else(|| self.pop_slots(own))
    }

    /// Takes the idle object returned longest ago that can be found cheaply (the shared queue is
    /// FIFO; slots hold the most recent ones): what eviction drops first.
    pub(crate) fn pop_oldest(&self) -> Option<Boxed<T>> {
        self.pop_shared().or_else(|| self.pop_slots(None))
    }

    fn pop_shared(&self) -> Option<Boxed<T>> {
        loop {
            match self.shared.steal() {
                Steal::Success(entry) => return Some(entry),
                Steal::Empty => return None,
                // Another thread is mid-operation on the queue: it will finish at once.
                Steal::Retry => std::hint::spin_loop(),
            }
        }
    }

    fn pop_slots(&self, skip: Option<usize>) -> Option<Boxed<T>> {
        let n = self.slots.len();
        let start = skip.map_or(0, |i| i + 1);
        (0..n)
            .map(|k| (start + k) % n)
            .filter(|&i| Some(i) != skip)
            .find_map(|i| swap_slot(&self.slots[i], None))
    }

    /// Drops every idle object that can be found.
    pub(crate) fn drain(&self) -> usize {
        let mut n = 0;
        while let Some(entry) = self.pop_oldest() {
            drop(entry);
            n += 1;
        }
        n
    }
}

impl<T> Drop for IdleCache<T> {
    fn drop(&mut self) {
        // The slots own their entries; the shared queue drops its own.
        for slot in self.slots.iter() {
            drop(swap_slot(slot, None));
        }
    }
}
