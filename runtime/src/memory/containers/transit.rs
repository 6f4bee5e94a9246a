//! Values in transit between a shared arena and the table that holds them: allocated and not
//! yet in the table (an insert), or out of the table with their slot not yet freed (a removal,
//! a replacement, an eviction).
//!
//! Such a value keeps its chunk alive where eviction cannot reach it: on a small budget, one
//! in transit on another thread can hold the only chunk that eviction would otherwise have
//! emptied. An eviction that finds nothing to drop while others had values in transit looks
//! again once they have landed, instead of reporting the budget full.
//!
//! A transit runs no user code except the key's hashing, comparison and clone while an insert
//! puts the entry (which a map cannot avoid): values are moved out of their slot, and the slot
//! freed, before they are dropped. A thread that holds a transit never waits for others, so
//! user code that re-enters the container from inside one cannot wait for itself, and no two
//! threads wait for each other.

use std::cell::Cell;
use std::sync::atomic::{AtomicU64, Ordering::SeqCst};

/// One count per open transit in the low half, one tick per opening or closing in the high.
const OPEN: u64 = 1;
const TICK: u64 = 1 << 32;

thread_local! {
    /// Transits this thread holds, in any container.
    static HELD: Cell<usize> = const { Cell::new(0) };
}

/// The transits of one container.
#[derive(Default)]
pub(crate) struct Transits(AtomicU64);

/// What [`Transits::mark`] saw, to be compared after a search.
#[derive(Clone, Copy)]
pub(crate) struct Mark(u64);

impl Transits {
    /// Opens a transit, closed when the guard drops. Call it under the lock that makes the value
    /// leave (or, for an insert, take) its place, so a search under that lock sees either the
    /// value or the transit.
    pub(crate) fn open(&self) -> Transit<'_> {
        self.0.fetch_add(OPEN + TICK, SeqCst);
        let _ = HELD.try_with(|h| h.set(h.get() + 1));
        Transit(self)
    }

    /// The state before a search for something to evict.
    pub(crate) fn mark(&self) -> Mark {
        Mark(self.0.load(SeqCst))
    }

    /// After a search from `before` that found nothing: whether it should look again, because
    /// a transit was open when it began or one opened or closed meanwhile (and this thread holds
    /// none). Yields the thread first, so the holder can land its value.
    pub(crate) fn look_again(&self, before: Mark) -> bool {
        let busy = before.0 % TICK != 0 || self.0.load(SeqCst) != before.0;
        let again = busy && HELD.try_with(Cell::get).unwrap_or(0) == 0;
        if again {
            std::thread::yield_now();
        }
        again
    }
}

/// An open transit; dropping it closes it (also on unwind).
pub(crate) struct Transit<'a>(&'a Transits);

impl Drop for Transit<'_> {
    fn drop(&mut self) {
        // Closing: one fewer open, one more tick (wrapping in the high half is harmless).
        self.0 .0.fetch_add(TICK - OPEN, SeqCst);
        let _ = HELD.try_with(|h| h.set(h.get() - 1));
    }
}
