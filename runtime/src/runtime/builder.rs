//! `Builder`: configures and starts a runtime.

use super::threads::{Callback, ThreadConfig, WorkerThreads};
use super::{Handle, Inner, Runtime};
use crate::blocking::{BlockingPool, PoolConfig};
use crate::driver::Driver;
use crate::memory::{MkBackpressure, MkBudget, RuntimeMemory};
use crate::scheduler;
use crate::tokio_bridge::TokioBridge;
use std::fmt;
use std::io;
use std::sync::Arc;
use std::thread;
use std::time::Duration;

/// Configures a [`Runtime`]. Methods take and return `&mut Self`, so calls chain.
///
/// ```
/// use memkit_async_runtime::Builder;
///
/// let rt = Builder::new()
///     .worker_threads(2)
///     .thread_name("my-app-worker")
///     .thread_stack_size(2 << 20)
///     .build()
///     .unwrap();
/// assert_eq!(rt.metrics().num_workers(), 2);
/// ```
pub struct Builder {
    flavor: Flavor,
    worker_threads: Option<usize>,
    thread_name: Arc<dyn Fn() -> String + Send + Sync>,
    thread_stack_size: Option<usize>,
    on_thread_start: Option<Callback>,
    on_thread_stop: Option<Callback>,
    max_blocking_threads: usize,
    thread_keep_alive: Duration,
    memory_limit: MemoryLimit,
    memory_policy: MkBackpressure,
    chunk_pool_cap: usize,
    memory_stall_threshold: Duration,
    start_paused: bool,
    event_interval: u32,
    global_queue_interval: u32,
}

impl Default for Builder {
    fn default() -> Builder {
        Builder::new()
    }
}

impl Builder {
    /// A builder with the defaults: one worker per available CPU, threads named
    /// `memkit-worker`, up to 512 blocking threads kept alive 10 s when idle.
    pub fn new() -> Builder {
        Builder {
            flavor: Flavor::MultiThread,
            worker_threads: None,
            thread_name: Arc::new(|| "memkit-worker".to_string()),
            thread_stack_size: None,
            on_thread_start: None,
            on_thread_stop: None,
            max_blocking_threads: 512,
            thread_keep_alive: Duration::from_secs(10),
            memory_limit: MemoryLimit::Unlimited,
            memory_policy: MkBackpressure::Wait,
            chunk_pool_cap: 32 << 20,
            memory_stall_threshold: Duration::from_secs(1),
            start_paused: false,
            event_interval: 61,
            global_queue_interval: 61,
        }
    }

    /// Same as [`new`](Self::new); eases porting from `tokio::runtime::Builder`.
    pub fn new_multi_thread() -> Builder {
        Builder::new()
    }

    /// A builder of a current-thread runtime: no worker threads of its own; every task runs on
    /// the thread that calls [`Runtime::block_on`], which runs the spawned tasks in turn with
    /// its own future (fairly, under the same cooperative budget) and sleeps in the timer and
    /// I/O driver when nothing is ready. Tasks spawned while no `block_on` runs wait for the
    /// next one. Budgets, arenas, heap accounting, the memory limit, timers, sockets and
    /// [`spawn_blocking`](crate::spawn_blocking) (still on the blocking pool) work as on the
    /// multi-thread runtime; [`block_in_place`](crate::task::block_in_place) panics.
    ///
    /// ```
    /// let rt = memkit_async_runtime::Builder::new_current_thread().build().unwrap();
    /// let here = std::thread::current().id();
    /// let there = rt.block_on(async {
    ///     memkit_async_runtime::spawn(async { std::thread::current().id() }).await.unwrap()
    /// });
    /// assert_eq!(here, there);
    /// assert_eq!(rt.metrics().num_workers(), 1);
    /// ```
    pub fn new_current_thread() -> Builder {
        let mut builder = Builder::new();
        builder.flavor = Flavor::CurrentThread;
        builder
    }

    /// Number of worker threads that run async tasks. Default: available parallelism.
    /// `build` rejects 0. A current-thread runtime has no worker threads and ignores it.
    pub fn worker_threads(&mut self, n: usize) -> &mut Self {
        self.worker_threads = Some(n);
        self
    }

    /// Name of the runtime's threads (workers and blocking pool).
    pub fn thread_name(&mut self, name: impl Into<String>) -> &mut Self {
        let name = name.into();
        self.thread_name = Arc::new(move || name.clone());
        self
    }

    /// Computes each new thread's name.
    pub fn thread_name_fn(&mut self, f: impl Fn() -> String + Send + Sync + 'static) -> &mut Self {
        self.thread_name = Arc::new(f);
        self
    }

    /// Stack size, in bytes, of the runtime's threads. Default: the standard library's.
    pub fn thread_stack_size(&mut self, bytes: usize) -> &mut Self {
        self.thread_stack_size = Some(bytes);
        self
    }

    /// Runs `f` on every runtime thread (worker or blocking) when it starts.
    pub fn on_thread_start(&mut self, f: impl Fn() + Send + Sync + 'static) -> &mut Self {
        self.on_thread_start = Some(Arc::new(f));
        self
    }

    /// Runs `f` on every runtime thread (worker or blocking) just before it exits.
    pub fn on_thread_stop(&mut self, f: impl Fn() + Send + Sync + 'static) -> &mut Self {
        self.on_thread_stop = Some(Arc::new(f));
        self
    }

    /// Most threads the blocking pool may run at once. Default 512; `build` rejects 0.
    pub fn max_blocking_threads(&mut self, n: usize) -> &mut Self {
        self.max_blocking_threads = n;
        self
    }

    /// How long an idle blocking thread waits for work before exiting. Default 10 s.
    pub fn thread_keep_alive(&mut self, duration: Duration) -> &mut Self {
        self.thread_keep_alive = duration;
        self
    }

    /// Caps the memory charged to the runtime's root budget at `bytes`: every budget created
    /// with [`Handle::memory_budget`](crate::Handle::memory_budget)`.child(..)` is charged into it. Default: unlimited.
    ///
    /// ```
    /// let rt = memkit_async_runtime::Builder::new().memory_limit(64 << 20).build().unwrap();
    /// assert_eq!(rt.memory_budget().limit(), 64 << 20);
    /// ```
    pub fn memory_limit(&mut self, bytes: usize) -> &mut Self {
        self.memory_limit = MemoryLimit::Bytes(bytes);
        self
    }

    /// Sets the memory limit to `fraction` of the container's: the cgroup v2 `memory.max` of
    /// this process's cgroup (the smallest one on its path to the root), else cgroup v1's
    /// `memory.limit_in_bytes`. Leave headroom for memory no budget sees (thread stacks, the
    /// kernel's socket buffers, memory mapped by hand): 0.8 is a reasonable start.
    ///
    /// `build` fails with `NotFound` (naming the files it read) when no limit is set, rather
    /// than guessing one, and with `InvalidInput` unless `0 < fraction <= 1`.
    ///
    /// ```no_run
    /// let rt = memkit_async_runtime::Builder::new()
    ///     .memory_limit_from_cgroup(0.8)
    ///     .build()
    ///     .expect("run inside a container with a memory limit");
    /// println!("memory limit: {} bytes", rt.memory_budget().limit());
    /// ```
    pub fn memory_limit_from_cgroup(&mut self, fraction: f64) -> &mut Self {
        self.memory_limit = MemoryLimit::Cgroup(fraction);
        self
    }

    /// Policy of the root budget for requests made on it directly. Default: `Wait`.
    pub fn memory_policy(&mut self, policy: MkBackpressure) -> &mut Self {
        self.memory_policy = policy;
        self
    }

    /// Most bytes of idle arena chunks the runtime keeps for reuse (each worker also caches a
    /// few); chunks freed beyond that go back to the system. Default 32 MiB.
    pub fn chunk_pool_cap(&mut self, bytes: usize) -> &mut Self {
        self.chunk_pool_cap = bytes;
        self
    }

    /// How long a task may be held back for memory (not started, or parked after growing,
    /// while a `Wait` or `Timeout` budget is full) before the runtime reports it: once per
    /// task, in [`RuntimeMetrics::memory_stalls`](crate::runtime::RuntimeMetrics::memory_stalls)
    /// and as a `tracing` warning naming the task and its budget. Default 1 s.
    pub fn memory_stall_threshold(&mut self, after: Duration) -> &mut Self {
        self.memory_stall_threshold = after;
        self
    }

    /// Starts the runtime with its clock paused, as if [`time::pause`](crate::time::pause) were
    /// called first (for tests: timers come due as soon as the runtime has nothing else to do,
    /// and [`time::advance`](crate::time::advance) moves the clock). Default `false`.
    pub fn start_paused(&mut self, paused: bool) -> &mut Self {
        self.start_paused = paused;
        self
    }

    /// How many tasks a busy worker runs between two turns of the timer and I/O driver (an
    /// idle worker waits in the driver, so this only matters under load). Lower fires timers
    /// and wakes sockets sooner under load, at the cost of a driver turn more often. Default
    /// 61, as tokio's; `build` rejects 0.
    ///
    /// ```
    /// let rt = memkit_async_runtime::Builder::new().event_interval(31).build().unwrap();
    /// # drop(rt);
    /// ```
    pub fn event_interval(&mut self, tasks: u32) -> &mut Self {
        self.event_interval = tasks;
        self
    }

    /// How many tasks a worker runs between two looks at the runtime's shared queue (tasks
    /// spawned or woken from outside its workers) ahead of its own: lower serves those sooner
    /// while the workers are busy with their own queues. Default 61; `build` rejects 0.
    pub fn global_queue_interval(&mut self, tasks: u32) -> &mut Self {
        self.global_queue_interval = tasks;
        self
    }

    /// Starts the runtime's worker threads.
    ///
    /// # Errors
    ///
    /// `InvalidInput` for a zero worker or blocking thread count, or a zero
    /// `event_interval` or `global_queue_interval`; the OS error if a thread cannot be started
    /// (threads already started are stopped and joined first).
    pub fn build(&mut self) -> io::Result<Runtime> {
        let current_thread = self.flavor == Flavor::CurrentThread;
        let workers =
            match self.worker_threads {
                _ if current_thread => 1,
                Some(0) => return Err(invalid(
                    "worker_threads(0): a runtime needs at least 1 worker thread; pass 1 or more, \
                     or leave it unset for one per CPU",
                )),
                Some(n) => n,
                None => thread::available_parallelism().map_or(1, |n| n.get()),
            };
        if self.max_blocking_threads == 0 {
            return Err(invalid(
                "max_blocking_threads(0): the blocking pool needs at least 1 thread; pass 1 or \
                 more, or leave it unset for 512",
            ));
        }
        if self.event_interval == 0 {
            return Err(invalid(
                "event_interval(0): a busy worker must turn the timer and I/O driver after some \
                 number of tasks; pass 1 or more, or leave it unset for 61",
            ));
        }
        if self.global_queue_interval == 0 {
            return Err(invalid(
                "global_queue_interval(0): a worker must look at the shared queue after some \
                 number of tasks; pass 1 or more, or leave it unset for 61",
            ));
        }
        let config = scheduler::Config {
            stall_after: self.memory_stall_threshold,
            event_interval: self.event_interval,
            global_queue_interval: self.global_queue_interval,
        };
        let blocking = BlockingPool::new(PoolConfig {
            max_threads: self.max_blocking_threads,
            keep_alive: self.thread_keep_alive,
            thread_name: self.thread_name.clone(),
            stack_size: self.thread_stack_size,
            on_start: self.on_thread_start.clone(),
            on_stop: self.on_thread_stop.clone(),
        });
        let root =
            MkBudget::runtime_root(self.memory_limit.resolve()?, self.memory_policy, workers);
        let bridge = TokioBridge::start()?;
        let driver = Arc::new(Driver::new(self.start_paused)?);
        let (scheduler, parts) = if current_thread {
            let scheduler = scheduler::Handle::new_current_thread(driver.clone(), config);
            (scheduler, Vec::new())
        } else {
            scheduler::Handle::new(workers, driver.clone(), config)
        };
        let handle = Handle::new(Inner {
            id: super::Id::next(),
            scheduler,
            memory: RuntimeMemory::new(root, workers, self.chunk_pool_cap),
            driver,
            blocking,
            bridge,
            threads: WorkerThreads::new(ThreadConfig {
                name: self.thread_name.clone(),
                stack_size: self.thread_stack_size,
                on_start: self.on_thread_start.clone(),
                on_stop: self.on_thread_stop.clone(),
            }),
        });
        let started = parts.len();
        for (index, part) in parts.into_iter().enumerate() {
            if let Err((err, _)) = handle.threads().spawn(&handle, part) {
                // Not started: count them out so shutdown does not wait for them.
                for _ in index..started {
                    handle.scheduler().worker_exited();
                }
                drop(Runtime::from_handle(handle));
                return Err(err);
            }
        }
        Ok(Runtime::from_handle(handle))
    }
}

/// Which runtime `build` makes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Flavor {
    MultiThread,
    CurrentThread,
}

/// Where the root budget's limit comes from.
#[derive(Debug, Clone, Copy)]
enum MemoryLimit {
    Unlimited,
    Bytes(usize),
    /// A fraction of the cgroup's limit.
    Cgroup(f64),
}

impl MemoryLimit {
    fn resolve(self) -> io::Result<usize> {
        match self {
            MemoryLimit::Unlimited => Ok(usize::MAX),
            MemoryLimit::Bytes(n) => Ok(n),
            MemoryLimit::Cgroup(fraction) => {
                if !(fraction > 0.0 && fraction <= 1.0) {
                    return Err(invalid(&format!(
                        "memory_limit_from_cgroup({fraction}): the fraction of the container's \
                         limit must be above 0 and at most 1; 0.8 leaves room for memory no \
                         budget sees"
                    )));
                }
                let found = super::cgroup::memory_limit().map_err(|e| {
                    io::Error::new(e.kind(), format!("memory_limit_from_cgroup: {e}"))
                })?;
                let bytes = (found.bytes as f64 * fraction) as u64;
                Ok(usize::try_from(bytes).unwrap_or(usize::MAX).max(1))
            }
        }
    }
}

fn invalid(msg: &str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidInput, msg)
}

impl fmt::Debug for Builder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Builder")
            .field("flavor", &self.flavor)
            .field("worker_threads", &self.worker_threads)
            .field("thread_stack_size", &self.thread_stack_size)
            .field("max_blocking_threads", &self.max_blocking_threads)
            .field("thread_keep_alive", &self.thread_keep_alive)
            .field("memory_limit", &self.memory_limit)
            .field("memory_policy", &self.memory_policy)
            .field("start_paused", &self.start_paused)
            .field("event_interval", &self.event_interval)
            .field("global_queue_interval", &self.global_queue_interval)
            .finish_non_exhaustive()
    }
}
