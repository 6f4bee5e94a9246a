//! Shared counters and flags, and a value that counts its drops.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering::SeqCst};
use std::sync::Arc;

/// A shared counter.
#[derive(Clone, Default)]
pub struct Counter(pub Arc<AtomicUsize>);

impl Counter {
    pub fn new() -> Counter {
        Counter::default()
    }

    pub fn get(&self) -> usize {
        self.0.load(SeqCst)
    }

    pub fn inc(&self) -> usize {
        self.0.fetch_add(1, SeqCst) + 1
    }
}

/// A shared flag.
#[derive(Clone, Default)]
pub struct Flag(pub Arc<AtomicBool>);

impl Flag {
    pub fn new() -> Flag {
        Flag::default()
    }

    pub fn get(&self) -> bool {
        self.0.load(SeqCst)
    }

    pub fn set(&self) {
        self.0.store(true, SeqCst)
    }
}

/// Increments its counter when dropped: put one in a future or an output to count drops.
pub struct DropCount(pub Counter);

impl Drop for DropCount {
    fn drop(&mut self) {
        self.0.inc();
    }
}
