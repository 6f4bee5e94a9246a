//! The runtime: the top layer of the engine. It owns a scheduler, the memory state, the driver,
//! the blocking pool and the tokio bridge, starts the worker threads and stops everything.

mod block_in_place;
mod block_on;
mod builder;
mod cgroup;
pub(crate) mod context;
mod handle;
mod id;
mod metrics;
mod threads;

pub use block_in_place::block_in_place;
pub use builder::Builder;
pub use handle::{Handle, TryCurrentError};
pub use id::Id;
pub use metrics::{RuntimeMetrics, TaskMemoryStats};

pub(crate) use handle::Inner;

use crate::context::NO_RUNTIME;
use crate::task_core::JoinHandle;
use std::fmt;
use std::future::Future;
use std::io;
use std::marker::PhantomData;
use std::thread;
use std::time::{Duration, Instant};

/// A multi-threaded, work-stealing async runtime, or a current-thread one
/// ([`Builder::new_current_thread`]) whose tasks all run on the thread in
/// [`block_on`](Self::block_on).
///
/// Dropping it shuts it down: workers finish the poll they are in and exit, every task that has
/// not completed has its future dropped (its `JoinHandle` resolves to a cancelled
/// [`JoinError`](crate::JoinError)), blocking closures not yet started are dropped, and every
/// thread is joined. [`shutdown_timeout`](Self::shutdown_timeout) bounds the wait.
///
/// ```
/// use memkit_async_runtime::Runtime;
///
/// let rt = Runtime::new().unwrap();
/// let out = rt.block_on(async {
///     let a = memkit_async_runtime::spawn(async { 20 });
///     let b = memkit_async_runtime::spawn(async { 22 });
///     a.await.unwrap() + b.await.unwrap()
/// });
/// assert_eq!(out, 42);
/// ```
pub struct Runtime {
    handle: Handle,
    shut_down: bool,
}

/// Keeps a runtime as this thread's context until dropped; see [`Runtime::enter`].
pub struct EnterGuard<'a> {
    _handle: context::EnterGuard,
    _runtime: PhantomData<&'a Runtime>,
}

impl fmt::Debug for EnterGuard<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EnterGuard").finish_non_exhaustive()
    }
}

impl Runtime {
    /// A runtime with the default configuration (one worker per CPU).
    ///
    /// # Errors
    ///
    /// If a thread cannot be started.
    pub fn new() -> io::Result<Runtime> {
        Builder::new().build()
    }

    fn from_handle(handle: Handle) -> Runtime {
        Runtime {
            handle,
            shut_down: false,
        }
    }

    /// A handle to this runtime, usable from any thread.
    pub fn handle(&self) -> &Handle {
        &self.handle
    }

    /// Spawns a task; see [`crate::spawn`].
    pub fn spawn<F>(&self, future: F) -> JoinHandle<F::Output>
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        self.handle.spawn(future)
    }

    /// Runs a blocking closure on the blocking pool; see [`crate::spawn_blocking`].
    pub fn spawn_blocking<F, R>(&self, f: F) -> JoinHandle<R>
    where
        F: FnOnce() -> R + Send + 'static,
        R: Send + 'static,
    {
        self.handle.spawn_blocking(f)
    }

    /// Drives `future` to completion on the calling thread while the workers run spawned
    /// tasks. Inside the future, [`spawn`] and [`Handle::current`] use this
    /// runtime.
    ///
    /// On a current-thread runtime the calling thread is the worker: it runs the spawned tasks
    /// in turn with `future` until `future` is ready. If another thread already runs them (two
    /// `block_on` calls at once), this one polls `future` alone until the worker is free.
    ///
    /// # Panics
    ///
    /// If the calling thread already drives asynchronous tasks: a worker thread (inside a
    /// task), or inside another `block_on`. Blocking such a thread could deadlock the tasks it
    /// runs; `.await` instead, or call `block_on` from [`spawn_blocking`](crate::spawn_blocking).
    #[track_caller]
    pub fn block_on<F: Future>(&self, future: F) -> F::Output {
        self.handle.block_on(future)
    }

    /// Makes this runtime the thread's context (for [`spawn`] and
    /// [`Handle::current`]) until the guard drops.
    ///
    /// ```
    /// let rt = memkit_async_runtime::Runtime::new().unwrap();
    /// let _guard = rt.enter();
    /// let task = memkit_async_runtime::spawn(async { 1 });
    /// assert_eq!(rt.block_on(task).unwrap(), 1);
    /// ```
    pub fn enter(&self) -> EnterGuard<'_> {
        EnterGuard {
            _handle: context::enter(&self.handle),
            _runtime: PhantomData,
        }
    }

    /// The runtime's root budget; see [`Handle::memory_budget`].
    pub fn memory_budget(&self) -> &crate::memory::MkBudget {
        self.handle.memory_budget()
    }

    /// Live counters of this runtime.
    pub fn metrics(&self) -> RuntimeMetrics {
        self.handle.metrics()
    }

    /// Shuts down, waiting at most `timeout` for workers stuck in a poll and for running
    /// blocking closures; threads still busy after that are detached and left to finish.
    ///
    /// ```
    /// use std::time::Duration;
    /// let rt = memkit_async_runtime::Runtime::new().unwrap();
    /// rt.spawn_blocking(|| std::thread::sleep(Duration::from_secs(2)));
    /// rt.shutdown_timeout(Duration::from_millis(10)); // returns without waiting 2 s
    /// ```
    pub fn shutdown_timeout(mut self, timeout: Duration) {
        self.shutdown(Some(timeout));
    }

    /// Shuts down without waiting for running blocking closures or stuck workers.
    pub fn shutdown_background(self) {
        self.shutdown_timeout(Duration::ZERO)
    }

    fn shutdown(&mut self, timeout: Option<Duration>) {
        // `shutdown_timeout` already ran; `Drop` must not wait again, unbounded.
        if std::mem::replace(&mut self.shut_down, true) {
            return;
        }
        let deadline = timeout.map(|t| Instant::now() + t);
        let handle = &self.handle;
        let scheduler = handle.scheduler();
        scheduler.begin_shutdown();
        // Dropped from inside one of its own tasks (or a `block_in_place` closure): that
        // thread cannot be waited for.
        let own = scheduler.runs_on_this_thread() as usize;
        let timed_out = scheduler.wait_for_workers(timeout, own);
        let all_exited = !timed_out && own == 0;
        let me = thread::current().id();
        for t in handle.threads().take_handles() {
            if t.thread().id() != me && (all_exited || t.is_finished()) {
                let _ = t.join();
            }
        }
        {
            // Futures dropped now may call `Handle::current` in their destructors.
            let _ctx = context::enter(handle);
            scheduler.shutdown_tasks();
            // Timers and sockets that outlive their tasks (held by other threads) stop waiting
            // on a driver nobody turns any more.
            handle.driver().shutdown();
        }
        // Running blocking closures may use tokio-based code until they return: wait for them
        // first, then stop the bridge (the tokio resources of the dropped tasks are
        // deregistered by now). Both share what is left of the time limit.
        let left = || deadline.map(|d| d.saturating_duration_since(Instant::now()));
        handle.blocking().shutdown(left());
        handle.bridge().shutdown(left());
    }
}

impl Drop for Runtime {
    fn drop(&mut self) {
        self.shutdown(None);
    }
}

impl fmt::Debug for Runtime {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Runtime")
            .field("workers", &self.handle.scheduler().num_workers())
            .field(
                "current_thread",
                &self.handle.scheduler().is_current_thread(),
            )
            .finish_non_exhaustive()
    }
}

/// Spawns a task onto the current runtime and returns a handle to its output.
///
/// The task starts running at once on some worker; it does not wait for the handle to be
/// awaited. A panic inside it is caught and returned through the handle.
///
/// # Panics
///
/// Outside a runtime: there is nothing to run the task.
///
/// ```
/// # let rt = memkit_async_runtime::Runtime::new().unwrap();
/// # rt.block_on(async {
/// let handle = memkit_async_runtime::spawn(async { "done" });
/// assert_eq!(handle.await.unwrap(), "done");
/// # });
/// ```
#[track_caller]
pub fn spawn<F>(future: F) -> JoinHandle<F::Output>
where
    F: Future + Send + 'static,
    F::Output: Send + 'static,
{
    match context::current() {
        Some(handle) => handle.spawn(future),
        None => panic!("`spawn` called outside a memkit-async runtime: {NO_RUNTIME}"),
    }
}

/// Index (0-based) of the worker thread this code runs on, or `None` off the workers.
///
/// A task may move between workers at every `.await`; this says where it is now.
///
/// ```
/// let rt = memkit_async_runtime::Builder::new().worker_threads(2).build().unwrap();
/// let idx = rt.block_on(rt.spawn(async { memkit_async_runtime::runtime::worker_index() }));
/// assert!(idx.unwrap().unwrap() < 2);
/// assert_eq!(memkit_async_runtime::runtime::worker_index(), None);
/// ```
pub fn worker_index() -> Option<usize> {
    crate::context::worker_index()
}
