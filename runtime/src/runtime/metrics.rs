//! Runtime metrics: live counters for monitoring and for tests.

use super::Handle;
use std::fmt;
use std::sync::Arc;

/// One live task's memory, from [`RuntimeMetrics::tasks_by_memory`].
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct TaskMemoryStats {
    /// The task's id.
    pub id: crate::task_core::Id,
    /// Its name, if it was given one ([`task::Builder::name`](crate::task::Builder::name)).
    pub name: Option<Arc<str>>,
    /// Bytes it holds now: heap memory it allocated and has not freed (with `MkGlobalAlloc`),
    /// plus the chunks of its arena.
    pub bytes: usize,
    /// The most it held at once.
    pub peak_bytes: usize,
    /// Times it was polled.
    pub polls: u64,
}

/// A view of a runtime's live counters. Cheap to keep; every read is current.
///
/// ```
/// let rt = memkit_async_runtime::Builder::new().worker_threads(2).build().unwrap();
/// let m = rt.metrics();
/// assert_eq!(m.num_workers(), 2);
/// rt.block_on(rt.spawn(async {})).unwrap();
/// assert_eq!(m.num_alive_tasks(), 0);
/// ```
#[derive(Clone)]
pub struct RuntimeMetrics {
    pub(crate) handle: Handle,
}

impl fmt::Debug for RuntimeMetrics {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RuntimeMetrics")
            .field("num_workers", &self.num_workers())
            .field("num_alive_tasks", &self.num_alive_tasks())
            .finish_non_exhaustive()
    }
}

impl RuntimeMetrics {
    /// Number of worker threads.
    pub fn num_workers(&self) -> usize {
        self.handle.scheduler().num_workers()
    }

    /// Spawned tasks that have not completed yet (blocking tasks excluded).
    pub fn num_alive_tasks(&self) -> usize {
        self.handle.scheduler().num_alive_tasks()
    }

    /// Timers (sleeps, timeouts, intervals, budget timeouts) registered with this runtime's
    /// timer wheel right now. A dropped timer leaves at once.
    pub fn num_timers(&self) -> usize {
        self.handle.driver().time.len()
    }

    /// Sockets registered with this runtime's reactor right now. A dropped socket leaves at
    /// once.
    pub fn num_io_sources(&self) -> usize {
        self.handle.driver().io.len()
    }

    /// Workers asleep right now (blocked in the OS, using no CPU).
    pub fn num_parked_workers(&self) -> usize {
        self.handle.scheduler().num_parked_workers()
    }

    /// Times worker `worker` went to sleep.
    ///
    /// # Panics
    /// If `worker >= num_workers()`.
    pub fn worker_park_count(&self, worker: usize) -> u64 {
        self.handle.scheduler().worker_metrics(worker).parks()
    }

    /// Task polls performed by worker `worker`.
    ///
    /// # Panics
    /// If `worker >= num_workers()`.
    pub fn worker_poll_count(&self, worker: usize) -> u64 {
        self.handle.scheduler().worker_metrics(worker).polls()
    }

    /// Successful steals by worker `worker` (each takes up to half of a victim's queue).
    ///
    /// # Panics
    /// If `worker >= num_workers()`.
    pub fn worker_steal_count(&self, worker: usize) -> u64 {
        self.handle.scheduler().worker_metrics(worker).steals()
    }

    /// Tasks in worker `worker`'s local queue (the LIFO slot excluded).
    ///
    /// # Panics
    /// If `worker >= num_workers()`.
    pub fn worker_local_queue_depth(&self, worker: usize) -> usize {
        self.handle.scheduler().worker_local_queue_depth(worker)
    }

    /// Tasks in the global injector queue.
    pub fn injection_queue_depth(&self) -> usize {
        self.handle.scheduler().injection_queue_depth()
    }

    /// Threads in the blocking pool.
    pub fn num_blocking_threads(&self) -> usize {
        self.handle.blocking().num_alive()
    }

    /// Blocking-pool threads waiting for work.
    pub fn num_idle_blocking_threads(&self) -> usize {
        self.handle.blocking().num_idle_threads()
    }

    /// Blocking closures queued and not yet started.
    pub fn blocking_queue_depth(&self) -> usize {
        self.handle.blocking().queue_depth()
    }

    /// Bytes charged to the runtime's root budget.
    pub fn memory_used(&self) -> usize {
        self.handle.memory_budget().used()
    }

    /// Highest `memory_used()` so far.
    pub fn memory_peak(&self) -> usize {
        self.handle.memory_budget().peak()
    }

    /// The runtime's `memory_limit` (`usize::MAX` when unlimited).
    pub fn memory_limit(&self) -> usize {
        self.handle.memory_budget().limit()
    }

    /// Requests queued on the root budget itself, waiting for memory.
    pub fn memory_waiting(&self) -> usize {
        self.handle.memory_budget().waiting()
    }

    /// Memory requests made in this runtime (on any budget) that are parked waiting for bytes
    /// to be released: tasks waiting for memory, in no run queue.
    pub fn tasks_waiting_for_memory(&self) -> usize {
        self.handle.memory().tasks_waiting()
    }

    /// Idle bytes of arena chunks held in the runtime's global chunk pool.
    pub fn chunk_pool_bytes(&self) -> usize {
        self.handle.memory().pool().pooled_bytes()
    }

    /// Arena chunks allocated from the system so far.
    pub fn chunks_allocated(&self) -> u64 {
        self.handle.memory().pool().chunks_from_system()
    }

    /// Arena chunks given back to the system so far (freed beyond the pool's cap).
    pub fn chunks_returned(&self) -> u64 {
        self.handle.memory().pool().chunks_to_system()
    }

    /// Arena chunk requests served from a cache or the pool instead of the system.
    pub fn chunks_reused(&self) -> u64 {
        self.handle.memory().pool().chunks_reused()
    }

    /// The live tasks with their memory, largest first: what each holds now (heap memory it
    /// allocated and has not freed, with [`MkGlobalAlloc`](crate::heap::MkGlobalAlloc)
    /// installed, plus its arena's chunks), its peak, name, id and polls. Tasks the runtime
    /// keeps no memory record for (a plain spawn without `MkGlobalAlloc`, budget or name) are
    /// left out.
    ///
    /// A task's bytes are published when its poll ends (or every 64 KiB), so a task being
    /// polled right now may show its bytes as of its last publication.
    ///
    /// ```
    /// let rt = memkit_async_runtime::Runtime::new().unwrap();
    /// let handle = rt.block_on(async {
    ///     memkit_async_runtime::task::Builder::new()
    ///         .name("sleeper")
    ///         .spawn(std::future::pending::<()>())
    ///         .unwrap()
    /// });
    /// let tasks = rt.metrics().tasks_by_memory();
    /// assert_eq!(tasks[0].name.as_deref(), Some("sleeper"));
    /// assert_eq!(tasks[0].id, handle.id());
    /// ```
    pub fn tasks_by_memory(&self) -> Vec<TaskMemoryStats> {
        let mut out = Vec::new();
        self.handle.scheduler().for_each_task(|header| {
            if let Some(memory) = header.memory() {
                let (bytes, peak_bytes) = memory.bytes();
                out.push(TaskMemoryStats {
                    id: header.id,
                    name: memory.name.clone(),
                    bytes,
                    peak_bytes,
                    polls: memory.polls.load(std::sync::atomic::Ordering::Relaxed),
                });
            }
        });
        out.sort_by(|a, b| b.bytes.cmp(&a.bytes).then(a.id.cmp(&b.id)));
        out
    }

    /// Tasks held back for memory right now: not started, or parked after a poll that grew
    /// them, while a `Wait` or `Timeout` budget on their chain is full (with `MkGlobalAlloc`
    /// installed). They are in no run queue and use no CPU.
    pub fn tasks_held_for_memory(&self) -> usize {
        self.handle.scheduler().num_held_tasks()
    }

    /// Tasks held back for memory longer than the stall threshold
    /// ([`Builder::memory_stall_threshold`](crate::Builder::memory_stall_threshold), 1 s by
    /// default), each counted once; each is also reported as a `tracing` warning.
    pub fn memory_stalls(&self) -> u64 {
        self.handle.scheduler().memory_stalls()
    }

    /// Tasks alive on the `tokio` bridge's one thread (feature `tokio`): those spawned with
    /// `tokio::spawn` from memkit tasks (`axum::serve`'s connections, hyper-util's
    /// `TokioExecutor`'s, ...). They run on that thread alone, not on the workers, and outside
    /// memkit's budgets; past 64 of them the runtime logs a `tracing` warning once. Spawn such
    /// work with [`spawn`](crate::spawn) instead.
    #[cfg(feature = "tokio")]
    pub fn num_bridge_tasks(&self) -> usize {
        self.handle.bridge().num_alive_tasks()
    }

    /// Tasks spawned with [`reserve`](crate::task::Builder::reserve) still waiting for
    /// admission (never polled yet).
    pub fn tasks_awaiting_admission(&self) -> usize {
        self.handle.memory().tasks_awaiting_admission()
    }
}
