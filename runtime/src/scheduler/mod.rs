//! The work-stealing scheduler: per-worker local queues with a LIFO slot, one global injector,
//! random-victim stealing and parking of idle workers.

mod held;
mod park;
mod worker;

#[cfg(all(test, loom))]
mod loom_park;

pub(crate) use worker::{run as run_worker, Core};

use crate::blocking::BlockingPool;
use crate::context;
use crate::driver::Driver;
use crate::memory::{ChunkPool, MkBudget};
use crate::runtime::Handle;
use crate::sync::{lock_std, AtomicBool, Ordering};
use crate::task::{self, Header, JoinHandle, Notified, OwnedTasks, Schedule, Task};
use crate::tokio_bridge::TokioBridge;
use crossbeam_deque::{Injector, Stealer, Worker};
use crossbeam_utils::sync::{Parker, Unparker};
use crossbeam_utils::CachePadded;
use park::Idle;
use std::future::Future;
use std::ptr::NonNull;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Condvar, Mutex};

/// State shared by all workers and handles of one runtime.
pub(crate) struct Shared {
    pub(crate) injector: Injector<Notified>,
    pub(crate) remotes: Box<[Remote]>,
    pub(crate) idle: Idle,
    pub(crate) owned: OwnedTasks,
    shutdown: AtomicBool,
    pub(crate) blocking: BlockingPool,
    /// The root budget: the runtime's `memory_limit`.
    pub(crate) memory: MkBudget,
    /// Chunks for the task arenas.
    pub(crate) pool: Arc<ChunkPool>,
    /// Memory requests made in this runtime that are waiting in a budget queue.
    pub(crate) memory_waiting: std::sync::atomic::AtomicUsize,
    /// Tasks spawned with a reservation that are not admitted yet.
    pub(crate) admitting: std::sync::atomic::AtomicUsize,
    /// Workers still running, and the condition shutdown waits on.
    pub(crate) alive: Mutex<usize>,
    pub(crate) exited: Condvar,
    /// The background tokio runtime (feature `tokio`; an empty type without it).
    pub(crate) tokio: TokioBridge,
    /// Timers and I/O, turned by the workers.
    pub(crate) driver: Driver,
    /// Tasks held back for memory (with `MkGlobalAlloc` installed).
    pub(crate) held: held::Held,
}

/// What other threads may touch of a worker.
pub(crate) struct Remote {
    pub(crate) stealer: Stealer<Notified>,
    unparker: Unparker,
    pub(crate) metrics: CachePadded<WorkerMetrics>,
}

/// Counters written only by their worker (plain load + store), read by anyone.
#[derive(Default)]
pub(crate) struct WorkerMetrics {
    pub(crate) polls: AtomicU64,
    pub(crate) steals: AtomicU64,
    pub(crate) parks: AtomicU64,
    pub(crate) parked: std::sync::atomic::AtomicBool,
}

/// The per-worker parts that move into each worker thread.
pub(crate) struct WorkerParts {
    pub(crate) local: Worker<Notified>,
    pub(crate) parker: Parker,
}

impl Shared {
    pub(crate) fn new(
        workers: usize,
        blocking: BlockingPool,
        memory: MkBudget,
        pool_cap: usize,
        tokio: TokioBridge,
        stall_after: std::time::Duration,
    ) -> std::io::Result<(Arc<Shared>, Vec<WorkerParts>)> {
        let driver = Driver::new()?;
        let mut parts = Vec::with_capacity(workers);
        let mut remotes = Vec::with_capacity(workers);
        for _ in 0..workers {
            let local = Worker::new_fifo();
            let parker = Parker::new();
            remotes.push(Remote {
                stealer: local.stealer(),
                unparker: parker.unparker().clone(),
                metrics: CachePadded::new(WorkerMetrics::default()),
            });
            parts.push(WorkerParts { local, parker });
        }
        let shared = Arc::new(Shared {
            injector: Injector::new(),
            remotes: remotes.into_boxed_slice(),
            idle: Idle::new(workers),
            owned: OwnedTasks::new(workers),
            shutdown: AtomicBool::new(false),
            blocking,
            memory,
            pool: Arc::new(ChunkPool::new(workers, pool_cap)),
            admitting: std::sync::atomic::AtomicUsize::new(0),
            memory_waiting: std::sync::atomic::AtomicUsize::new(0),
            alive: Mutex::new(workers),
            exited: Condvar::new(),
            tokio,
            driver,
            held: held::Held::new(stall_after),
        });
        Ok((shared, parts))
    }

    pub(crate) fn is_shutdown(&self) -> bool {
        self.shutdown.load(Ordering::Acquire)
    }

    /// Stops the workers: each finishes its current poll, then exits.
    pub(crate) fn begin_shutdown(&self) {
        self.shutdown.store(true, Ordering::SeqCst);
        for remote in self.remotes.iter() {
            remote.unparker.unpark();
        }
        self.driver.wake();
    }

    /// Drops every queued reference left in the injector after shutdown.
    pub(crate) fn drain_injector(&self) {
        while !self.injector.is_empty() {
            drop(self.injector.steal());
        }
    }

    pub(crate) fn notify_parked(&self) {
        if let Some(worker) = self.idle.notify_one() {
            // Counted as awake from now on, though the OS may take a moment to run it.
            let remote = &self.remotes[worker];
            remote.metrics.parked.store(false, Ordering::SeqCst);
            remote.unparker.unpark();
            self.driver.unpark(worker);
        }
    }

    /// Anything queued anywhere? Checked by a worker after registering as a sleeper.
    pub(crate) fn has_queued_work(&self) -> bool {
        !self.injector.is_empty() || self.remotes.iter().any(|r| !r.stealer.is_empty())
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

    pub(crate) fn num_parked(&self) -> usize {
        self.remotes
            .iter()
            .filter(|r| r.metrics.parked.load(Ordering::SeqCst))
            .count()
    }

    /// Records a worker thread's exit; shutdown waits for all of them.
    pub(crate) fn worker_exited(&self) {
        *lock_std(&self.alive) -= 1;
        self.exited.notify_all();
    }
}

impl Handle {
    pub(crate) fn spawn_task<F>(
        &self,
        future: F,
        budget: Option<MkBudget>,
        name: Option<std::sync::Arc<str>>,
    ) -> JoinHandle<F::Output>
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        let memory = task::TaskMemory::needed(&budget, &name)
            .then(|| Box::new(task::TaskMemory::new(budget, &self.shared.memory, name)));
        let (task, notified, join) = task::new_task(future, self.clone(), task::Id::next(), memory);
        let bound = {
            let _engine = crate::heap::engine();
            self.shared.owned.bind(task)
        };
        match bound {
            Ok(()) => self.schedule_here_or_remote(notified, Core::schedule_back),
            Err(task) => {
                // The runtime is shutting down: the task completes as cancelled.
                drop(notified);
                task.shutdown();
            }
        }
        join
    }
}

impl Handle {
    /// Queues `task` with `local` when this thread is one of this runtime's workers, else
    /// through the injector.
    #[inline]
    fn schedule_here_or_remote(&self, task: Notified, local: fn(&Core, Notified)) {
        context::with_worker(|worker| match worker {
            Some(w) if Arc::ptr_eq(&w.shared, &self.shared) => local(w, task),
            _ => self.shared.schedule_remote(task),
        })
    }
}

impl Schedule for Handle {
    fn schedule(&self, task: Notified) {
        self.schedule_here_or_remote(task, Core::schedule_lifo)
    }

    fn yield_now(&self, task: Notified) {
        self.schedule_here_or_remote(task, Core::schedule_back)
    }

    fn release(&self, task: NonNull<Header>) -> Option<Task> {
        self.shared.owned.remove(task)
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

impl Handle {
    /// Interrupts the wait of the worker asleep in the driver, if one is.
    pub(crate) fn wake_driver(&self) {
        self.shared.driver.wake();
    }

    /// Schedules the held tasks that may run now.
    pub(crate) fn serve_held(&self) {
        self.shared
            .held
            .serve(|task| self.schedule_here_or_remote(task, Core::schedule_back));
    }
}

impl WorkerMetrics {
    pub(crate) fn read(counter: &AtomicU64) -> u64 {
        counter.load(Relaxed)
    }
}
