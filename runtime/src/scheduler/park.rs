//! Which workers sleep and which search, so work is never left queued while every worker
//! sleeps (no lost wake-up) and a burst of wake-ups does not wake every worker at once.
//!
//! Protocol, all counters `SeqCst`:
//! - A producer pushes its task, then `notify_one`: if some worker is searching it will find
//!   the task, so nobody is woken; otherwise one sleeper is popped, counted as searching and
//!   unparked.
//! - A worker about to sleep registers as a sleeper, stops searching, then (after a fence)
//!   re-checks every queue before parking. Either the producer's fence comes first, and the
//!   re-check sees the task, or the worker's does, and the producer sees the worker asleep and
//!   not searching, and wakes it (or another sleeper that re-checks the same way).
//! - A searching worker that finds work stops searching; if it was the last searcher it wakes
//!   one more, so remaining queued work always has someone looking for it.

use crate::sync::{fence, lock, AtomicUsize, Mutex, Ordering::SeqCst};

pub(crate) struct Idle {
    sleepers: Mutex<Vec<usize>>,
    num_sleeping: AtomicUsize,
    num_searching: AtomicUsize,
    num_workers: usize,
}

impl Idle {
    pub(crate) fn new(num_workers: usize) -> Idle {
        Idle {
            sleepers: Mutex::new(Vec::with_capacity(num_workers)),
            num_sleeping: AtomicUsize::new(0),
            num_searching: AtomicUsize::new(0),
            num_workers,
        }
    }

    /// Starts searching (stealing) unless half the workers already are: more searchers than
    /// that only contend on the same queues.
    pub(crate) fn transition_to_searching(&self) -> bool {
        if 2 * self.num_searching.load(SeqCst) >= self.num_workers {
            return false;
        }
        self.num_searching.fetch_add(1, SeqCst);
        true
    }

    /// Stops searching; `true` if this was the last searcher.
    pub(crate) fn transition_from_searching(&self) -> bool {
        self.num_searching.fetch_sub(1, SeqCst) == 1
    }

    /// Records `worker` as asleep; the caller must re-check the queues afterwards.
    pub(crate) fn register_sleeper(&self, worker: usize, was_searching: bool) {
        {
            let mut sleepers = lock(&self.sleepers);
            sleepers.push(worker);
            self.num_sleeping.fetch_add(1, SeqCst);
        }
        if was_searching {
            self.num_searching.fetch_sub(1, SeqCst);
        }
        fence(SeqCst);
    }

    /// Takes `worker` off the sleeper list (it found work, or woke up); it is searching
    /// afterwards, either counted here or by the notifier that already removed it.
    pub(crate) fn unregister_sleeper(&self, worker: usize) {
        let mut sleepers = lock(&self.sleepers);
        if let Some(pos) = sleepers.iter().position(|&w| w == worker) {
            sleepers.swap_remove(pos);
            self.num_sleeping.fetch_sub(1, SeqCst);
            self.num_searching.fetch_add(1, SeqCst);
        }
    }

    /// `true` while `worker` is on the sleeper list (nobody has woken it).
    pub(crate) fn is_sleeping(&self, worker: usize) -> bool {
        lock(&self.sleepers).contains(&worker)
    }

    /// Whether every worker is on the sleeper list (read after registering as a sleeper: of
    /// two workers registering at once, at least one sees the other).
    pub(crate) fn all_sleeping(&self) -> bool {
        self.num_sleeping.load(SeqCst) == self.num_workers
    }

    /// Picks a sleeper to wake for newly queued work, if one is needed.
    pub(crate) fn notify_one(&self) -> Option<usize> {
        fence(SeqCst);
        if self.num_searching.load(SeqCst) != 0 || self.num_sleeping.load(SeqCst) == 0 {
            return None;
        }
        let mut sleepers = lock(&self.sleepers);
        // Another producer may have woken a searcher while we took the lock.
        if self.num_searching.load(SeqCst) != 0 {
            return None;
        }
        let worker = sleepers.pop()?;
        self.num_sleeping.fetch_sub(1, SeqCst);
        self.num_searching.fetch_add(1, SeqCst);
        Some(worker)
    }
}
