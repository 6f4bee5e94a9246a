//! A worker: runs tasks from its LIFO slot, its local queue, the global injector, and what it
//! steals from others; sleeps when there is nothing anywhere.
//!
//! Invariants: a worker's state (`Core`) lives in a box owned by exactly one thread at a time,
//! the thread whose `CURRENT` points at it; other threads reach its queue only through the
//! `Stealer` in `Shared::remotes`. `CURRENT` is set by `install` (the box is leaked into it) and
//! cleared by `uninstall` (the box is taken back) or by `hand_off` (the box moves to another
//! thread); it is only dereferenced on its thread. No `&Core` is held across a task's poll (the
//! loop in `run_loop` looks the core up again after each poll), so a poll that hands the core
//! off (`task::block_in_place`) leaves no reference to it behind on the old thread.

use super::{Handle, Shared};
use crate::context;
use crate::heap;
use crate::memory::heap_waiters;
use crate::sync::Ordering::SeqCst;
use crate::task_core::Notified;
use crossbeam_deque::{Steal, Worker};
use crossbeam_utils::sync::Parker;
use std::cell::Cell;
use std::ptr;
use std::sync::Arc;
use std::task::{Poll, Waker};
use std::time::Instant;

/// Consecutive polls from the LIFO slot before it yields to the local queue: a ping-ponging pair
/// of tasks would otherwise keep the worker to itself.
const MAX_LIFO_POLLS: u32 = 3;

/// The most tasks one steal takes (half the victim's queue, up to this many). Crossbeam's
/// default batch of 32 made a thief come back often while the victim kept spawning, and each
/// round trip moved freshly created tasks (and their channels) between cores: in `ping_pong`
/// stealing half cut the time per round by about 7%.
const MAX_STEAL: usize = 128;

/// How often a worker whose only work is tasks that yielded steals before waking them.
const STEAL_INTERVAL: u32 = 61;

thread_local! {
    // Without a destructor: a plain thread-local access on every wake-up from a worker.
    static CURRENT: Cell<*const Core> = const { Cell::new(ptr::null()) };
    /// The scheduler this thread runs a worker loop for (until the loop ends, even after its
    /// core was handed off): shutdown cannot wait for the thread it runs on.
    static RUNS_FOR: Cell<*const Shared> = const { Cell::new(ptr::null()) };
}

/// Runs `f` with this thread's worker, if it is one.
#[inline]
pub(super) fn with_current<R>(f: impl FnOnce(Option<&Core>) -> R) -> R {
    let core = CURRENT.get();
    // SAFETY: a non-null pointer is the live boxed `Core` this thread owns (file invariant).
    f(unsafe { core.as_ref() })
}

/// Whether this thread runs a worker loop of `shared` (or did, and still finishes its last
/// poll after handing its core off).
pub(super) fn runs_for(shared: &Shared) -> bool {
    ptr::eq(RUNS_FOR.get(), shared)
}

/// Marks this thread as running a worker loop of `shared` until dropped.
pub(super) struct RunsFor(*const Shared);

impl RunsFor {
    pub(super) fn enter(shared: &Shared) -> RunsFor {
        RunsFor(RUNS_FOR.replace(shared))
    }
}

impl Drop for RunsFor {
    fn drop(&mut self) {
        RUNS_FOR.set(self.0);
    }
}

/// Makes `core` this thread's worker state (leaked into `CURRENT` until `uninstall`).
pub(super) fn install(core: Box<Core>) {
    let prev = CURRENT.replace(Box::into_raw(core));
    debug_assert!(prev.is_null(), "a thread runs one worker at a time");
}

/// Takes this thread's worker state back; `None` if it was handed off (or never installed).
pub(super) fn uninstall() -> Option<Box<Core>> {
    let core = CURRENT.replace(ptr::null());
    // SAFETY: a non-null pointer came from `Box::into_raw` in `install` and is owned by this
    // thread; clearing `CURRENT` first means nothing on this thread reaches it again.
    (!core.is_null()).then(|| unsafe { Box::from_raw(core.cast_mut()) })
}

/// What one worker runs with: its index, its local queue and its parker, or the whole state of
/// a worker that another thread ran until now.
pub(crate) struct WorkerParts(Parts);

enum Parts {
    New {
        index: usize,
        local: Worker<Notified>,
        parker: Parker,
    },
    /// A worker's state handed off mid-run, with the wakers of the tasks that yielded on it.
    Running(Box<Core>, Vec<Waker>),
}

/// How a run of the worker loop ended.
#[derive(PartialEq, Eq)]
pub(super) enum Stop {
    Shutdown,
    /// The loop's own future (`block_on` on a current-thread scheduler) is ready.
    MainReady,
    /// The core went to another thread during a poll.
    HandedOff,
}

pub(super) struct Core {
    pub(super) index: usize,
    pub(super) shared: Arc<Shared>,
    local: Worker<Notified>,
    lifo: Cell<Option<Notified>>,
    lifo_polls: Cell<u32>,
    searching: Cell<bool>,
    /// Tasks left before the injector is checked ahead of the local queue, so remote spawns
    /// are not starved by tasks that keep re-queueing locally (`Shared::global_queue_interval`).
    to_injector: Cell<u32>,
    /// Loop turns left before a busy worker turns the timer and I/O driver without blocking
    /// (`Shared::event_interval`).
    to_driver: Cell<u32>,
    /// Times the local queue ran dry while tasks that yielded were waiting (`steal_turn`).
    dry: Cell<u32>,
    /// The emptied buffer of the last batch of yielded tasks' wakers, swapped with the
    /// thread's list at the next batch.
    yielded: Cell<Vec<Waker>>,
    /// Set while the tasks that yielded are woken: they go behind the queued ones, not first.
    waking_deferred: Cell<bool>,
    /// When this worker last served budgets waiting for heap memory.
    waiters_served: Cell<Instant>,
    /// Set while a task is polled from the loop: only then may the poll hand the core off.
    polling: Cell<bool>,
    rng: Cell<u64>,
    parker: Parker,
}

impl WorkerParts {
    pub(super) fn new(index: usize, local: Worker<Notified>, parker: Parker) -> WorkerParts {
        WorkerParts(Parts::New {
            index,
            local,
            parker,
        })
    }

    /// A worker's state kept between two runs (current-thread scheduler).
    pub(super) fn kept(core: Box<Core>) -> WorkerParts {
        WorkerParts(Parts::Running(core, Vec::new()))
    }

    /// The index of the worker these parts run.
    pub(crate) fn index(&self) -> usize {
        match &self.0 {
            Parts::New { index, .. } => *index,
            Parts::Running(core, _) => core.index,
        }
    }

    /// The worker state, and the yielded tasks' wakers to defer again on the new thread.
    pub(super) fn into_core(self, scheduler: &Handle) -> (Box<Core>, Vec<Waker>) {
        match self.0 {
            Parts::New {
                index,
                local,
                parker,
            } => (
                Box::new(Core {
                    index,
                    shared: scheduler.shared.clone(),
                    local,
                    lifo: Cell::new(None),
                    lifo_polls: Cell::new(0),
                    searching: Cell::new(false),
                    to_injector: Cell::new(scheduler.shared.global_queue_interval),
                    // The first turn of the loop turns the driver.
                    to_driver: Cell::new(1),
                    dry: Cell::new(0),
                    yielded: Cell::new(Vec::new()),
                    waking_deferred: Cell::new(false),
                    waiters_served: Cell::new(Instant::now()),
                    polling: Cell::new(false),
                    rng: Cell::new(
                        0x9E37_79B9_7F4A_7C15
                            ^ (index as u64 + 1).wrapping_mul(0xA076_1D64_78BD_642F),
                    ),
                    parker,
                }),
                Vec::new(),
            ),
            Parts::Running(core, deferred) => (core, deferred),
        }
    }

    /// Runs this worker on the calling thread until `scheduler` shuts down, or until a poll
    /// hands the worker off to another thread (then this thread only finishes that poll).
    pub(crate) fn run(self, scheduler: &Handle) {
        let (core, deferred) = self.into_core(scheduler);
        let _driving = context::enter_driving();
        let _index = context::enter_worker(core.index);
        let _runs = RunsFor::enter(&scheduler.shared);
        install(core);
        // Drains the queues if the loop unwinds (a panic in the engine, not in a task).
        let _drain = Drain;
        for waker in &deferred {
            context::defer(waker);
        }
        drop(deferred);
        run_loop(None::<&mut fn() -> Poll<()>>);
    }
}

/// Drops the references queued on this thread's worker when the loop ends; the tasks
/// themselves are cancelled by the owned-task list at shutdown.
struct Drain;

impl Drop for Drain {
    fn drop(&mut self) {
        if let Some(core) = uninstall() {
            core.drain();
        }
    }
}

/// Runs the worker installed on this thread until shutdown, until `main` (polled whenever the
/// scheduler's main waker fired) is ready, or until the core is handed off.
pub(super) fn run_loop<T>(mut main: Option<&mut impl FnMut() -> Poll<T>>) -> (Stop, Option<T>) {
    loop {
        // A fresh look-up each turn: a poll may have handed the core to another thread.
        let Some(core) = current_core() else {
            return (Stop::HandedOff, None);
        };
        if core.shared.is_shutdown() {
            return (Stop::Shutdown, None);
        }
        if let Some(main) = main.as_mut() {
            if core.shared.main_woken.load(SeqCst) && core.shared.main_woken.swap(false, SeqCst) {
                if let Poll::Ready(out) = main() {
                    return (Stop::MainReady, Some(out));
                }
                // On to one task at least before `main` is polled again, however often it
                // wakes itself: neither starves the other.
            }
        }
        if countdown(&core.to_driver, core.shared.event_interval) {
            // Timers and I/O must not wait for some worker to park.
            core.wake_deferred();
        }
        let task = match core.next_task() {
            Some(task) => Some(task),
            None => {
                // The tasks that yielded here resume before this worker steals: they stay
                // cache-warm, and two busy workers do not trade tasks at every round. Every
                // `STEAL_INTERVAL`-th time it steals first all the same, so a worker kept busy
                // by tasks that yield still takes the backlog of a worker stuck in a long poll.
                let yielded = context::has_deferred();
                let stolen = if !yielded || core.steal_turn() {
                    core.steal()
                } else {
                    None
                };
                if stolen.is_none() && yielded {
                    core.wake_deferred();
                    continue;
                }
                stolen
            }
        };
        match task {
            Some(task) => {
                core.before_poll();
                task.run();
                match current_core() {
                    Some(core) => core.after_poll(),
                    None => return (Stop::HandedOff, None),
                }
            }
            None => core.park(),
        }
    }
}

/// This thread's worker, borrowed for one step of the loop.
fn current_core<'a>() -> Option<&'a Core> {
    let core = CURRENT.get();
    // SAFETY: a non-null pointer is the live boxed `Core` this thread owns (file invariant); the
    // loop drops the reference before any poll that could hand the core off.
    unsafe { core.as_ref() }
}

/// Takes this thread's worker away during a task's poll, for `block_in_place`: the parts go to
/// a new thread that continues the loop; this thread stops being a worker (its index is
/// cleared) and only finishes the poll. `None` off the workers, outside a poll, and on a
/// current-thread scheduler (see [`on_current_thread_worker`]).
pub(crate) fn hand_off() -> Option<WorkerParts> {
    let core = current_core()?;
    if !core.polling.get() || core.shared.current_thread {
        return None;
    }
    core.polling.set(false);
    let core = uninstall()?;
    // The tasks that yielded here wait for the new thread's driver turn.
    let deferred = context::take_deferred();
    context::leave_worker();
    Some(WorkerParts(Parts::Running(core, deferred)))
}

/// Takes back the parts `hand_off` gave when no thread could be started for them: this thread
/// is worker `index` again and blocks it for the rest of the poll.
pub(crate) fn take_back(parts: WorkerParts) {
    let WorkerParts(Parts::Running(core, deferred)) = parts else {
        unreachable!("only handed-off parts are taken back");
    };
    context::rejoin_worker(core.index);
    core.polling.set(true);
    install(core);
    for waker in &deferred {
        context::defer(waker);
    }
}

/// Whether this thread is a worker (it has a worker's state installed).
pub(crate) fn on_worker() -> bool {
    with_current(|core| core.is_some())
}

/// Whether this thread is the worker of a current-thread scheduler.
pub(crate) fn on_current_thread_worker() -> bool {
    with_current(|core| core.is_some_and(|c| c.shared.current_thread))
}

impl Core {
    fn before_poll(&self) {
        if self.searching.replace(false) && self.shared.idle.transition_from_searching() {
            // We were the last one looking: hand the search on in case more work is queued.
            self.shared.notify_parked();
        }
        self.shared.remotes[self.index].metrics.count_poll();
        self.polling.set(true);
    }

    fn after_poll(&self) {
        self.polling.set(false);
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

    /// Before this worker's state is kept for a later run (current-thread scheduler): the LIFO
    /// task goes to the local queue, and the tasks that yielded are woken into it.
    pub(super) fn set_aside(&self) {
        self.wake_yielded();
        if let Some(task) = self.lifo.take() {
            self.push_local(task);
        }
        if self.searching.replace(false) {
            self.shared.idle.transition_from_searching();
        }
    }

    /// Drops every queued reference (shutdown of a current-thread scheduler).
    pub(super) fn drain(&self) {
        drop(self.lifo.take());
        while self.local.pop().is_some() {}
    }

    /// Turns the driver, then queues the tasks that yielded since the last turn, behind the
    /// tasks queued already: a yielding task lets timers, I/O and every queued task go first.
    fn wake_deferred(&self) {
        self.shared.driver.turn_nonblocking();
        self.wake_yielded();
    }

    /// Queues the tasks that yielded since the last driver turn behind the tasks queued already.
    fn wake_yielded(&self) {
        if !context::has_deferred() {
            return;
        }
        let mut batch = self.yielded.take();
        context::swap_deferred(&mut batch);
        self.waking_deferred.set(true);
        // A waker may be a combinator's, running its own code: no borrow is held here (the
        // batch is out of its cell), and a panic in one costs only its own wake-up.
        crate::unwind::wake_all(batch.drain(..));
        self.waking_deferred.set(false);
        self.yielded.set(batch);
        // One notification for the whole batch, not one per task: this worker runs the first
        // task itself, so another is needed only if more than one was queued.
        if self.local.len() > 1 {
            self.shared.notify_parked();
        }
    }

    fn serve_held(&self) {
        self.shared.held.serve(|task| self.schedule_back(task));
    }

    fn next_task(&self) -> Option<Notified> {
        if countdown(&self.to_injector, self.shared.global_queue_interval) {
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

    /// Whether this worker, out of queued tasks but with tasks that yielded, steals first this
    /// time (every [`STEAL_INTERVAL`]-th time).
    fn steal_turn(&self) -> bool {
        let dry = self.dry.get().wrapping_add(1);
        self.dry.set(dry);
        dry % STEAL_INTERVAL == 0
    }

    /// Steals half of a random victim's queue (at most [`MAX_STEAL`] tasks).
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
                match remotes[victim]
                    .stealer
                    .steal_batch_with_limit_and_pop(&self.local, MAX_STEAL)
                {
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
        if shared.has_queued_work() || shared.is_shutdown() || shared.main_woken.load(SeqCst) {
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
            // Behind the queued tasks; `wake_yielded` notifies once for the batch.
            return self.push_local(task);
        }
        if let Some(prev) = self.lifo.replace(Some(task)) {
            self.push_local(prev);
            self.shared.notify_parked();
        }
    }

    /// Queues a spawned or yielding task behind this worker's queued tasks.
    pub(super) fn schedule_back(&self, task: Notified) {
        self.push_local(task);
        self.shared.notify_parked();
    }

    /// Pushes `task` behind this worker's queued tasks, waking nobody. The queue's blocks are
    /// the runtime's memory, not the running task's.
    fn push_local(&self, task: Notified) {
        let _engine = heap::engine();
        self.local.push(task);
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

/// Counts `left` down by one; when it reaches zero, rearms it with `every` and says so.
#[inline]
fn countdown(left: &Cell<u32>, every: u32) -> bool {
    let now = left.get().saturating_sub(1);
    if now == 0 {
        left.set(every);
        true
    } else {
        left.set(now);
        false
    }
}
