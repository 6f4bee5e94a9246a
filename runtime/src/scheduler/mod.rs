//! The work-stealing scheduler: per-worker local queues with a LIFO slot, one global injector,
//! random-victim stealing and parking of idle workers.
//!
//! The scheduler knows tasks (the layer below) and the driver it parks its workers in, given to
//! it at construction; it knows nothing of the runtime that owns it. Its state (`Shared`) is
//! private: the runtime drives it through [`Handle`], which is also what every task holds to be
//! scheduled again.

mod current_thread;
mod held;
mod metrics;
mod park;
mod worker;

#[cfg(all(test, loom))]
mod loom_park;

pub(crate) use current_thread::MainWaker;
pub(crate) use worker::{hand_off, on_current_thread_worker, on_worker, take_back, WorkerParts};

use crate::driver::Driver;
use crate::memory::MkBudget;
use crate::sync::{lock_std, wait_while_for, AtomicBool, Ordering};
use crate::task_core::{
    self, Header, JoinHandle, Notified, OwnedTasks, Schedule, Task, TaskMemory,
};
use crossbeam_deque::{Injector, Stealer, Worker};
use crossbeam_utils::sync::{Parker, Unparker};
use crossbeam_utils::CachePadded;
use metrics::WorkerMetrics;
use park::Idle;
use std::future::Future;
use std::ptr::NonNull;
use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;

/// A reference to one scheduler, cheap to clone: what spawns onto it, what its tasks hold to be
/// queued again, and how the runtime starts, observes and stops it.
#[derive(Clone)]
pub(crate) struct Handle {
    shared: Arc<Shared>,
}

/// State shared by all workers and handles of one scheduler.
struct Shared {
    injector: Injector<Notified>,
    remotes: Box<[Remote]>,
    idle: Idle,
    owned: OwnedTasks,
    shutdown: AtomicBool,
    /// Workers still running, and the condition shutdown waits on.
    alive: Mutex<Alive>,
    exited: Condvar,
    /// One worker, run by the thread in `block_on` (the current-thread flavour).
    current_thread: bool,
    /// Set by the waker of a current-thread `block_on`'s future: the loop polls it next.
    main_woken: AtomicBool,
    /// Timers and I/O: an idle worker blocks in it, a busy one turns it now and then.
    driver: Arc<Driver>,
    /// Tasks held back for memory (with `MkGlobalAlloc` installed).
    held: held::Held,
    /// Tasks a busy worker runs between two turns of the driver (`Config::event_interval`).
    event_interval: u32,
    /// Tasks a worker runs between two looks at the injector first (`Config::global_queue_interval`).
    global_queue_interval: u32,
}

/// What the runtime's builder sets of the scheduler.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Config {
    /// How long a task held back for memory waits before it is reported.
    pub(crate) stall_after: Duration,
    /// Tasks a busy worker runs between two turns of the timer and I/O driver (at least 1).
    pub(crate) event_interval: u32,
    /// Tasks a worker runs between two looks at the injector before its own queue (at least 1).
    pub(crate) global_queue_interval: u32,
}

/// The threads running a worker loop, and the worker of a current-thread scheduler while no
/// `block_on` runs it.
struct Alive {
    running: usize,
    idle_core: Option<WorkerParts>,
    /// Threads in a current-thread `block_on` waiting for the worker to be free.
    core_waiters: Vec<(std::thread::ThreadId, Unparker)>,
}

/// What other threads may touch of a worker.
struct Remote {
    stealer: Stealer<Notified>,
    unparker: Unparker,
    metrics: CachePadded<WorkerMetrics>,
}

impl Handle {
    /// A scheduler of `workers` workers parking in `driver`, and the parts each worker thread
    /// runs with ([`WorkerParts::run`]). A task held back for memory longer than `config.stall_after`
    /// is reported once.
    pub(crate) fn new(
        workers: usize,
        driver: Arc<Driver>,
        config: Config,
    ) -> (Handle, Vec<WorkerParts>) {
        Handle::build(workers, driver, config, false)
    }

    /// A scheduler of one worker that no thread of its own runs: `block_on`
    /// ([`drive`](Self::drive)) runs it on the calling thread.
    pub(crate) fn new_current_thread(driver: Arc<Driver>, config: Config) -> Handle {
        let (handle, mut parts) = Handle::build(1, driver, config, true);
        let mut alive = lock_std(&handle.shared.alive);
        alive.running = 0;
        alive.idle_core = parts.pop();
        drop(alive);
        handle
    }

    fn build(
        workers: usize,
        driver: Arc<Driver>,
        config: Config,
        current_thread: bool,
    ) -> (Handle, Vec<WorkerParts>) {
        let mut parts = Vec::with_capacity(workers);
        let mut remotes = Vec::with_capacity(workers);
        for index in 0..workers {
            let local = Worker::new_fifo();
            let parker = Parker::new();
            remotes.push(Remote {
                stealer: local.stealer(),
                unparker: parker.unparker().clone(),
                metrics: CachePadded::new(WorkerMetrics::default()),
            });
            parts.push(WorkerParts::new(index, local, parker));
        }
        let shared = Arc::new(Shared {
            injector: Injector::new(),
            remotes: remotes.into_boxed_slice(),
            idle: Idle::new(workers),
            owned: OwnedTasks::new(workers),
            shutdown: AtomicBool::new(false),
            alive: Mutex::new(Alive {
                running: workers,
                idle_core: None,
                core_waiters: Vec::new(),
            }),
            exited: Condvar::new(),
            current_thread,
            main_woken: AtomicBool::new(false),
            driver,
            held: held::Held::new(config.stall_after),
            event_interval: config.event_interval,
            global_queue_interval: config.global_queue_interval,
        });
        (Handle { shared }, parts)
    }

    /// Spawns `future` as a task with `memory` (its budget, name and heap account; `None` for
    /// a plain task charged to the runtime's root).
    pub(crate) fn spawn<F>(
        &self,
        future: F,
        memory: Option<Box<TaskMemory>>,
    ) -> JoinHandle<F::Output>
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        let (task, notified, join) =
            task_core::new_task(future, self.clone(), task_core::Id::next(), memory);
        let bound = {
            let _engine = crate::heap::engine();
            self.shared.owned.bind(task)
        };
        match bound {
            Ok(()) => self.schedule_here_or_remote(notified, worker::Core::schedule_back),
            Err(task) => {
                // The scheduler is shutting down: the task completes as cancelled.
                drop(notified);
                task.shutdown();
            }
        }
        join
    }

    /// Queues `task` with `local` when this thread is one of this scheduler's workers, else
    /// through the injector.
    #[inline]
    fn schedule_here_or_remote(&self, task: Notified, local: fn(&worker::Core, Notified)) {
        worker::with_current(|worker| match worker {
            Some(w) if Arc::ptr_eq(&w.shared, &self.shared) => local(w, task),
            _ => self.shared.schedule_remote(task),
        })
    }

    /// Stops the workers: each finishes its current poll, then exits.
    pub(crate) fn begin_shutdown(&self) {
        self.shared.begin_shutdown();
    }

    /// Waits, at most `timeout` (forever if `None`), until no more than `keep` workers are
    /// still running; `true` if it gave up first.
    pub(crate) fn wait_for_workers(&self, timeout: Option<Duration>, keep: usize) -> bool {
        let shared = &self.shared;
        let (alive, timed_out) =
            wait_while_for(&shared.exited, lock_std(&shared.alive), timeout, |a| {
                a.running > keep
            });
        drop(alive);
        timed_out
    }

    /// Records a worker thread's exit (or that one was never started); shutdown waits for all
    /// of them.
    pub(crate) fn worker_exited(&self) {
        lock_std(&self.shared.alive).running -= 1;
        self.shared.exited.notify_all();
    }

    /// Counts a worker thread about to start (one that takes over a handed-off worker); `false`
    /// once shutdown has begun, when no new thread may start.
    pub(crate) fn worker_starting(&self) -> bool {
        let mut alive = lock_std(&self.shared.alive);
        if self.shared.is_shutdown() {
            return false;
        }
        alive.running += 1;
        true
    }

    /// Whether the calling thread runs one of this scheduler's worker loops (shutdown cannot
    /// wait for it to exit).
    pub(crate) fn runs_on_this_thread(&self) -> bool {
        worker::runs_for(&self.shared)
    }

    /// Whether this is a current-thread scheduler.
    pub(crate) fn is_current_thread(&self) -> bool {
        self.shared.current_thread
    }

    /// After shutdown: cancels every task that has not completed and drops the references left
    /// in the injector.
    pub(crate) fn shutdown_tasks(&self) {
        // The references queued on a current-thread worker that no `block_on` runs now.
        let idle = lock_std(&self.shared.alive).idle_core.take();
        if let Some(parts) = idle {
            let (core, _deferred) = parts.into_core(self);
            core.drain();
        }
        self.shared.owned.close_and_shutdown_all();
        // Held tasks were cancelled with the rest; their queued references go.
        self.shared.held.drain();
        self.shared.drain_injector();
    }

    /// Number of workers.
    pub(crate) fn num_workers(&self) -> usize {
        self.shared.remotes.len()
    }

    /// Tasks spawned that have not completed.
    pub(crate) fn num_alive_tasks(&self) -> usize {
        self.shared.owned.len()
    }

    /// Workers asleep right now.
    pub(crate) fn num_parked_workers(&self) -> usize {
        self.shared
            .remotes
            .iter()
            .filter(|r| r.metrics.is_parked())
            .count()
    }

    /// Counters of worker `worker`.
    ///
    /// # Panics
    /// If `worker >= num_workers()`.
    pub(crate) fn worker_metrics(&self, worker: usize) -> &WorkerMetrics {
        &self.shared.remotes[worker].metrics
    }

    /// Tasks in worker `worker`'s local queue (the LIFO slot excluded).
    ///
    /// # Panics
    /// If `worker >= num_workers()`.
    pub(crate) fn worker_local_queue_depth(&self, worker: usize) -> usize {
        self.shared.remotes[worker].stealer.len()
    }

    /// Schedules the held tasks that may run now.
    pub(crate) fn serve_held(&self) {
        self.shared
            .held
            .serve(|task| self.schedule_here_or_remote(task, worker::Core::schedule_back));
    }

    /// Tasks held back for memory now.
    pub(crate) fn num_held_tasks(&self) -> usize {
        self.shared.held.len()
    }

    /// Tasks reported as held back for memory longer than the stall threshold.
    pub(crate) fn memory_stalls(&self) -> u64 {
        self.shared.held.stalls()
    }

    /// Calls `f` with the header of every live task.
    pub(crate) fn for_each_task(&self, f: impl FnMut(&Header)) {
        self.shared.owned.for_each(f);
    }

    /// Tasks in the injector.
    pub(crate) fn injection_queue_depth(&self) -> usize {
        self.shared.injector.len()
    }
}

impl Shared {
    fn is_shutdown(&self) -> bool {
        self.shutdown.load(Ordering::Acquire)
    }

    fn begin_shutdown(&self) {
        self.shutdown.store(true, Ordering::SeqCst);
        for remote in self.remotes.iter() {
            remote.unparker.unpark();
        }
        self.driver.wake();
    }

    /// Drops every queued reference left in the injector after shutdown.
    fn drain_injector(&self) {
        while !self.injector.is_empty() {
            drop(self.injector.steal());
        }
    }

    fn notify_parked(&self) {
        if let Some(worker) = self.idle.notify_one() {
            // Counted as awake from now on, though the OS may take a moment to run it.
            let remote = &self.remotes[worker];
            remote.metrics.set_parked(false);
            remote.unparker.unpark();
            self.driver.unpark(worker);
        }
    }

    /// Anything queued anywhere? Checked by a worker after registering as a sleeper.
    fn has_queued_work(&self) -> bool {
        !self.injector.is_empty() || self.remotes.iter().any(|r| !r.stealer.is_empty())
    }

    /// Every worker asleep and nothing queued: whether a paused clock may jump to the next
    /// timer.
    fn is_idle(&self) -> bool {
        self.idle.all_sleeping() && !self.has_queued_work()
    }

    fn schedule_remote(&self, task: Notified) {
        {
            // The injector's blocks are the runtime's memory, not the waking task's.
            let _engine = crate::heap::engine();
            self.injector.push(task);
        }
        self.notify_parked();
        if self.is_shutdown() {
            // Shutdown may already have drained the injector; nobody will run this.
            self.drain_injector();
        }
    }
}

impl Schedule for Handle {
    fn schedule(&self, task: Notified) {
        self.schedule_here_or_remote(task, worker::Core::schedule_lifo)
    }

    fn yield_now(&self, task: Notified) {
        self.schedule_here_or_remote(task, worker::Core::schedule_back)
    }

    unsafe fn release(&self, task: NonNull<Header>) -> Option<Task> {
        // SAFETY: forwarded caller contract.
        unsafe { self.shared.owned.remove(task) }
    }

    fn hold_for_memory(
        &self,
        task: Notified,
        charged: MkBudget,
        budget: MkBudget,
    ) -> Result<(), Notified> {
        // `self` lives in the task's cell: once the task is in the held queue another worker
        // may release, run and free it, so everything after `hold` uses a handle of our own.
        let this = self.clone();
        if this.shared.held.hold(task, charged, budget) {
            // The worker asleep in the driver may have gone to sleep with no time limit: wake
            // it, so that it sleeps again looking at the held tasks every `RECHECK`.
            this.shared.driver.wake();
        }
        // Release it at once if the budget emptied or nothing else can release memory.
        this.serve_held();
        Ok(())
    }
}
