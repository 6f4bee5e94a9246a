//! A worker thread: runs tasks from its LIFO slot, its local queue, the global injector, and
//! what it steals from others; sleeps when there is nothing anywhere.
//!
//! Invariant: `Core` is owned by its worker thread and never shared with another; other threads
//! reach its queue only through the `Stealer` in `Shared::remotes`.

use super::Shared;
use crate::context;
use crate::heap;
use crate::memory::heap_waiters;
use crate::runtime::Handle;
use crate::task::Notified;
use crossbeam_deque::{Steal, Worker};
use crossbeam_utils::sync::Parker;
use std::cell::Cell;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::Instant;

/// How often the injector is checked before the local queue, so remote spawns are not starved
/// by tasks that keep re-queueing locally.
const GLOBAL_QUEUE_INTERVAL: u32 = 61;

/// Consecutive polls from the LIFO slot before it yields to the local queue: a ping-ponging pair
/// of tasks would otherwise keep the worker to itself.
const MAX_LIFO_POLLS: u32 = 3;

/// How often a busy worker turns the timer and I/O driver without blocking.
const DRIVER_INTERVAL: u32 = 61;

pub(crate) struct Core {
    pub(crate) index: usize,
    pub(crate) shared: Arc<Shared>,
    local: Worker<Notified>,
    lifo: Cell<Option<Notified>>,
    lifo_polls: Cell<u32>,
    searching: Cell<bool>,
    tick: Cell<u32>,
    /// Wakers of tasks that yielded: woken once this worker has turned the driver.
    deferred: std::cell::RefCell<Vec<std::task::Waker>>,
    /// Set while `deferred` is woken: those tasks go behind the queued ones, not first.
    waking_deferred: Cell<bool>,
    /// When this worker last served budgets waiting for heap memory.
    waiters_served: Cell<Instant>,
    rng: Cell<u64>,
    parker: Parker,
}

/// Runs worker `index` until the runtime shuts down.
pub(crate) fn run(shared: Arc<Shared>, index: usize, local: Worker<Notified>, parker: Parker) {
    let core = Core {
        index,
        shared: shared.clone(),
        local,
        lifo: Cell::new(None),
        lifo_polls: Cell::new(0),
        searching: Cell::new(false),
        tick: Cell::new(0),
        deferred: std::cell::RefCell::new(Vec::new()),
        waking_deferred: Cell::new(false),
        waiters_served: Cell::new(Instant::now()),
        rng: Cell::new(
            0x9E37_79B9_7F4A_7C15 ^ (index as u64 + 1).wrapping_mul(0xA076_1D64_78BD_642F),
        ),
        parker,
    };
    let root = shared.memory.account().as_ptr().as_ptr().cast_const();
    let _handle = context::set_handle(Handle { shared });
    let _driving = context::enter_driving();
    let _worker = context::set_worker(&core);
    // Heap bytes this worker charges to the runtime's root go to its own partial sum.
    let _shard = heap::enter_worker(heap::Shard { root, index });
    core.run();
    // Queued references are dropped here; the tasks themselves are cancelled by the owned-task
    // list at shutdown.
    drop(core.lifo.take());
    while core.local.pop().is_some() {}
}

impl Core {
    fn run(&self) {
        while !self.shared.is_shutdown() {
            if self.tick.get() % DRIVER_INTERVAL == 0 {
                // Timers and I/O must not wait for some worker to park.
                self.wake_deferred();
            }
            if let Some(task) = self.next_task().or_else(|| self.steal()) {
                self.run_task(task);
            } else if !self.deferred.borrow().is_empty() {
                // Only tasks that yielded are left: turn the driver, then run them.
                self.wake_deferred();
            } else {
                self.park();
            }
        }
    }

    /// Turns the driver, then queues the tasks that yielded since the last turn, behind the
    /// tasks queued already: a yielding task lets timers, I/O and every queued task go first.
    fn wake_deferred(&self) {
        self.shared.driver.turn_nonblocking();
        if self.deferred.borrow().is_empty() {
            return;
        }
        let wakers = std::mem::take(&mut *self.deferred.borrow_mut());
        self.waking_deferred.set(true);
        // A waker may be a combinator's, running its own code: no borrow is held here, and a
        // panic in one costs only its own wake-up.
        crate::unwind::wake_all(wakers);
        self.waking_deferred.set(false);
    }

    /// Keeps `waker` until this worker has turned its driver (`task::yield_now` on a worker).
    pub(crate) fn defer(&self, waker: &std::task::Waker) {
        let _engine = heap::engine();
        self.deferred.borrow_mut().push(waker.clone());
    }

    fn run_task(&self, task: Notified) {
        if self.searching.replace(false) && self.shared.idle.transition_from_searching() {
            // We were the last one looking: hand the search on in case more work is queued.
            self.shared.notify_parked();
        }
        let m = &self.shared.remotes[self.index].metrics;
        m.polls.store(m.polls.load(Relaxed) + 1, Relaxed);
        task.run();
        if self.shared.held.len() != 0 {
            // The poll may have released memory that held tasks wait for.
            self.serve_held();
        }
        if heap_waiters::any() {
            // Or heap memory that requests queued on a budget wait for.
            let now = Instant::now();
            if now.saturating_duration_since(self.waiters_served.get()) >= heap_waiters::SERVE_EVERY
            {
                self.waiters_served.set(now);
                heap_waiters::serve();
            }
        }
    }

    fn serve_held(&self) {
        self.shared.held.serve(|task| self.schedule_back(task));
    }

    fn next_task(&self) -> Option<Notified> {
        let tick = self.tick.get().wrapping_add(1);
        self.tick.set(tick);
        if tick % GLOBAL_QUEUE_INTERVAL == 0 {
            if let Some(task) = self.pop_injector() {
                return Some(task);
            }
        }
        if let Some(task) = self.lifo.take() {
            let polls = self.lifo_polls.get();
            if polls < MAX_LIFO_POLLS {
                self.lifo_polls.set(polls + 1);
                return Some(task);
            }
            self.local.push(task);
            self.shared.notify_parked();
        }
        self.lifo_polls.set(0);
        self.local.pop().or_else(|| self.pop_injector())
    }

    fn pop_injector(&self) -> Option<Notified> {
        loop {
            match self.shared.injector.steal_batch_and_pop(&self.local) {
                Steal::Success(task) => {
                    if !self.local.is_empty() {
                        // The batch can be shared with sleeping workers.
                        self.shared.notify_parked();
                    }
                    return Some(task);
                }
                Steal::Empty => return None,
                Steal::Retry => continue,
            }
        }
    }

    /// Steals half of a random victim's queue.
    fn steal(&self) -> Option<Notified> {
        if !self.searching.get() {
            if !self.shared.idle.transition_to_searching() {
                return None;
            }
            self.searching.set(true);
        }
        let remotes = &self.shared.remotes;
        let start = self.next_random() as usize % remotes.len();
        for i in 0..remotes.len() {
            let victim = (start + i) % remotes.len();
            if victim == self.index {
                continue;
            }
            loop {
                match remotes[victim].stealer.steal_batch_and_pop(&self.local) {
                    Steal::Success(task) => {
                        let m = &remotes[self.index].metrics;
                        m.steals.store(m.steals.load(Relaxed) + 1, Relaxed);
                        return Some(task);
                    }
                    Steal::Empty => break,
                    Steal::Retry => continue,
                }
            }
        }
        self.pop_injector()
    }

    fn park(&self) {
        let shared = &*self.shared;
        if heap_waiters::any() {
            heap_waiters::serve();
        }
        if shared.held.len() != 0 {
            self.serve_held();
        }
        // Serving may have woken tasks onto this worker (its LIFO slot or its queue): run them
        // rather than sleep on them.
        if !self.local.is_empty() || self.has_lifo() {
            return;
        }
        shared
            .idle
            .register_sleeper(self.index, self.searching.replace(false));
        if shared.has_queued_work() || shared.is_shutdown() {
            shared.idle.unregister_sleeper(self.index);
            self.searching.set(true);
            return;
        }
        let m = &shared.remotes[self.index].metrics;
        m.parks.store(m.parks.load(Relaxed) + 1, Relaxed);
        m.parked.store(true, std::sync::atomic::Ordering::SeqCst);
        if let Some(mut poller) = shared.driver.try_lock() {
            // This worker blocks in the driver until a timer, I/O or a notification.
            // While tasks are held for memory, look again every `RECHECK`: memory freed by
            // threads outside the runtime reaches no worker otherwise.
            let cap =
                (shared.held.len() != 0 || heap_waiters::any()).then_some(super::held::RECHECK);
            shared.driver.park(&mut poller, self.index, cap, || {
                shared.idle.is_sleeping(self.index) && !shared.is_shutdown()
            });
            m.parked.store(false, std::sync::atomic::Ordering::SeqCst);
            shared.idle.unregister_sleeper(self.index);
            // Woken tasks go to this worker's own queue, and this worker runs them: it stops
            // searching without waking another for the one task an I/O event usually brings
            // (a second woken task displaced from the LIFO slot has notified already). Only
            // if it was the last searcher and work is queued does it hand the search on.
            shared.driver.dispatch(&mut poller);
            if shared.idle.transition_from_searching() && shared.has_queued_work() {
                shared.notify_parked();
            }
            self.searching.set(false);
            return;
        }
        loop {
            self.parker.park();
            if shared.is_shutdown() || !shared.idle.is_sleeping(self.index) {
                break;
            }
            // A stale unpark token from an earlier notification: still asleep.
        }
        m.parked.store(false, std::sync::atomic::Ordering::SeqCst);
        shared.idle.unregister_sleeper(self.index);
        self.searching.set(true);
    }

    fn has_lifo(&self) -> bool {
        let task = self.lifo.take();
        let some = task.is_some();
        self.lifo.set(task);
        some
    }

    /// Queues a task woken on this worker: into the LIFO slot, so a task that just unblocked
    /// another runs next, with its data still hot in cache.
    pub(crate) fn schedule_lifo(&self, task: Notified) {
        if self.waking_deferred.get() {
            return self.schedule_back(task);
        }
        if let Some(prev) = self.lifo.replace(Some(task)) {
            let _engine = heap::engine();
            self.local.push(prev);
            self.shared.notify_parked();
        }
    }

    /// Queues a spawned or yielding task behind this worker's queued tasks.
    pub(crate) fn schedule_back(&self, task: Notified) {
        let _engine = heap::engine();
        self.local.push(task);
        self.shared.notify_parked();
    }

    fn next_random(&self) -> u64 {
        // xorshift64*: victim choice needs spread, not quality.
        let mut x = self.rng.get();
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.rng.set(x);
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
}
