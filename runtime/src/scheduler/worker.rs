//! A worker thread: runs tasks from its LIFO slot, its local queue, the global injector, and
//! what it steals from others; sleeps when there is nothing anywhere.
//!
//! Invariants: `Core` is owned by its worker thread and never shared with another; other
//! threads reach its queue only through the `Stealer` in `Shared::remotes`. The thread's
//! `CURRENT` pointer is set only by `WorkerParts::run`, to the `Core` on its stack frame, and
//! cleared by the guard before that frame ends; it is only dereferenced on that thread.

use super::{Handle, Shared};
use crate::context;
use crate::heap;
use crate::memory::heap_waiters;
use crate::task_core::Notified;
use crossbeam_deque::{Steal, Worker};
use crossbeam_utils::sync::Parker;
use std::cell::Cell;
use std::ptr;
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

thread_local! {
    // Without a destructor: a plain thread-local access on every wake-up from a worker.
    static CURRENT: Cell<*const Core> = const { Cell::new(ptr::null()) };
}

/// Runs `f` with this thread's worker, if it is one.
#[inline]
pub(super) fn with_current<R>(f: impl FnOnce(Option<&Core>) -> R) -> R {
    let core = CURRENT.get();
    // SAFETY: a non-null pointer is a live `Core` on this thread's worker frame (file invariant).
    f(unsafe { core.as_ref() })
}

/// Clears the thread's worker pointer on drop.
struct CurrentGuard(());

impl Drop for CurrentGuard {
    fn drop(&mut self) {
        CURRENT.set(ptr::null());
    }
}

/// What one worker thread runs with: its index, its local queue and its parker.
pub(crate) struct WorkerParts {
    pub(super) index: usize,
    pub(super) local: Worker<Notified>,
    pub(super) parker: Parker,
}

pub(super) struct Core {
    index: usize,
    pub(super) shared: Arc<Shared>,
    local: Worker<Notified>,
    lifo: Cell<Option<Notified>>,
    lifo_polls: Cell<u32>,
    searching: Cell<bool>,
    tick: Cell<u32>,
    /// Wakers of tasks that yielded: woken once this worker has turned the driver.
    /// Set while the tasks that yielded are woken: they go behind the queued ones, not first.
    waking_deferred: Cell<bool>,
    /// When this worker last served budgets waiting for heap memory.
    waiters_served: Cell<Instant>,
    rng: Cell<u64>,
    parker: Parker,
}

impl WorkerParts {
    /// Runs this worker on the calling thread until `scheduler` shuts down.
    pub(crate) fn run(self, scheduler: &Handle) {
        let WorkerParts {
            index,
            local,
            parker,
        } = self;
        let core = Core {
            index,
            shared: scheduler.shared.clone(),
            local,
            lifo: Cell::new(None),
            lifo_polls: Cell::new(0),
            searching: Cell::new(false),
            tick: Cell::new(0),
            waking_deferred: Cell::new(false),
            waiters_served: Cell::new(Instant::now()),
            rng: Cell::new(
                0x9E37_79B9_7F4A_7C15 ^ (index as u64 + 1).wrapping_mul(0xA076_1D64_78BD_642F),
            ),
            parker,
        };
        let _driving = context::enter_driving();
        let _index = context::enter_worker(index);
        CURRENT.set(&core);
        let _current = CurrentGuard(());
        core.run();
        // Queued references are dropped here; the tasks themselves are cancelled by the
        // owned-task list at shutdown.
        drop(core.lifo.take());
        while core.local.pop().is_some() {}
    }
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
            } else if context::has_deferred() {
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
        if !context::has_deferred() {
            return;
        }
        let wakers = context::take_deferred();
        self.waking_deferred.set(true);
        // A waker may be a combinator's, running its own code: no borrow is held here, and a
        // panic in one costs only its own wake-up.
        crate::unwind::wake_all(wakers);
        self.waking_deferred.set(false);
    }

    fn run_task(&self, task: Notified) {
        if self.searching.replace(false) && self.shared.idle.transition_from_searching() {
            // We were the last one looking: hand the search on in case more work is queued.
            self.shared.notify_parked();
        }
        self.shared.remotes[self.index].metrics.count_poll();
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
                        remotes[self.index].metrics.count_steal();
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
        // A task released by either was queued on this worker (a task whose memory request
        // was granted in the LIFO slot, a held task at the back of the local queue): run it
        // before sleeping, since the checks below see only what other workers could steal.
        if self.has_local_work() {
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
        m.count_park();
        m.set_parked(true);
        if let Some(mut poller) = shared.driver.try_lock() {
            // This worker blocks in the driver until a timer, I/O or a notification.
            // While tasks are held for memory, look again every `RECHECK`: memory freed by
            // threads outside the runtime reaches no worker otherwise.
            let cap =
                (shared.held.len() != 0 || heap_waiters::any()).then_some(super::held::RECHECK);
            shared.driver.park(
                &mut poller,
                self.index,
                cap,
                || shared.idle.is_sleeping(self.index) && !shared.is_shutdown(),
                || shared.is_idle(),
            );
            m.set_parked(false);
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
        if shared.driver.time.can_auto_advance() && shared.is_idle() {
            // This worker is the last to go idle under a paused clock: the one blocked in the
            // driver looks again and moves the clock to the next timer.
            shared.driver.wake();
        }
        loop {
            self.parker.park();
            if shared.is_shutdown() || !shared.idle.is_sleeping(self.index) {
                break;
            }
            // A stale unpark token from an earlier notification: still asleep.
        }
        m.set_parked(false);
        shared.idle.unregister_sleeper(self.index);
        self.searching.set(true);
    }

    /// Whether this worker has a task of its own queued (the LIFO slot or the local queue).
    fn has_local_work(&self) -> bool {
        let lifo = self.lifo.take();
        let queued = lifo.is_some() || !self.local.is_empty();
        self.lifo.set(lifo);
        queued
    }

    /// Queues a task woken on this worker: into the LIFO slot, so a task that just unblocked
    /// another runs next, with its data still hot in cache.
    pub(super) fn schedule_lifo(&self, task: Notified) {
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
    pub(super) fn schedule_back(&self, task: Notified) {
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
