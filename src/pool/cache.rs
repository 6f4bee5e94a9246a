//! `IdleCache`: where idle pool objects wait, without locks.
//!
//! Each worker has one cache-padded slot holding the object it returned last, in front of a
//! shared lock-free FIFO (`crossbeam_deque::Injector`). A task that returns an object and then
//! acquires one on the same worker (the common loop) touches only its worker's slot: one atomic
//! swap each way, on a cache line no other worker writes. Returns off the workers, and objects
//! displaced from a slot, go to the shared queue. When a worker's slot and the queue are empty,
//! the other workers' slots are searched before the caller concludes nothing is idle.

use super::entry::Entry;
use crossbeam_deque::{Injector, Steal};
use crossbeam_utils::atomic::AtomicCell;
use crossbeam_utils::CachePadded;
use memkit_async_runtime::runtime::worker_index;

type Boxed<T> = Box<Entry<T>>;
/// One worker's slot: empty, or the object it returned last.
type Slot<T> = CachePadded<AtomicCell<Option<Boxed<T>>>>;

pub(crate) struct IdleCache<T> {
    slots: Box<[Slot<T>]>,
    shared: Injector<Boxed<T>>,
}

impl<T> IdleCache<T> {
    /// A cache with `slots` per-worker slots (workers beyond that share slots modulo `slots`).
    pub(crate) fn new(slots: usize) -> IdleCache<T> {
        IdleCache {
            slots: (0..slots.max(1))
                .map(|_| CachePadded::new(AtomicCell::new(None)))
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
                if let Some(displaced) = self.slots[i].swap(Some(entry)) {
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
            if let Some(entry) = self.slots[i].swap(None) {
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
            .find_map(|i| self.slots[i].swap(None))
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
