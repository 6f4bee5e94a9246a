//! `Handle`: a cheap, clonable reference to a runtime, usable from any thread, and what a
//! runtime is made of.

use super::threads::WorkerThreads;
use super::{block_on, context, Id, RuntimeMetrics};
use crate::blocking::BlockingPool;
use crate::context::NO_RUNTIME;
use crate::driver::Driver;
use crate::memory::{MkBudget, RuntimeMemory};
use crate::scheduler;
use crate::task_core::{self, JoinHandle, TaskMemory};
use crate::tokio_bridge::TokioBridge;
use std::fmt;
use std::future::Future;
use std::sync::Arc;

/// A reference to a runtime that can spawn tasks onto it from anywhere.
///
/// ```
/// let rt = memkit_async_runtime::Runtime::new().unwrap();
/// let handle = rt.handle().clone();
/// let answer = std::thread::spawn(move || {
///     let task = handle.spawn(async { 40 + 2 });
///     handle.block_on(task).unwrap()
/// })
/// .join()
/// .unwrap();
/// assert_eq!(answer, 42);
/// ```
#[derive(Clone)]
pub struct Handle {
    inner: Arc<Inner>,
}

/// The parts of a runtime, each the owner of its own state.
pub(crate) struct Inner {
    pub(crate) id: Id,
    pub(crate) scheduler: scheduler::Handle,
    pub(crate) memory: Arc<RuntimeMemory>,
    /// Timers and I/O; the scheduler's workers turn it.
    pub(crate) driver: Arc<Driver>,
    pub(crate) blocking: BlockingPool,
    /// The background tokio runtime (feature `tokio`; an empty type without it).
    pub(crate) bridge: TokioBridge,
    /// The worker threads (none on a current-thread runtime).
    pub(crate) threads: WorkerThreads,
}

/// Returned by [`Handle::try_current`] outside a runtime.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TryCurrentError(());

impl fmt::Display for TryCurrentError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(NO_RUNTIME)
    }
}

impl std::error::Error for TryCurrentError {}

impl Handle {
    pub(crate) fn new(inner: Inner) -> Handle {
        Handle {
            inner: Arc::new(inner),
        }
    }

    pub(crate) fn scheduler(&self) -> &scheduler::Handle {
        &self.inner.scheduler
    }

    pub(crate) fn memory(&self) -> &Arc<RuntimeMemory> {
        &self.inner.memory
    }

    pub(crate) fn driver(&self) -> &Arc<Driver> {
        &self.inner.driver
    }

    pub(crate) fn blocking(&self) -> &BlockingPool {
        &self.inner.blocking
    }

    pub(crate) fn bridge(&self) -> &TokioBridge {
        &self.inner.bridge
    }

    pub(crate) fn threads(&self) -> &WorkerThreads {
        &self.inner.threads
    }

    /// The handle of the runtime this thread is running in.
    ///
    /// # Panics
    ///
    /// Outside a runtime; see [`try_current`](Self::try_current).
    #[track_caller]
    pub fn current() -> Handle {
        match context::current() {
            Some(handle) => handle,
            None => panic!("{NO_RUNTIME}"),
        }
    }

    /// The handle of the runtime this thread is running in, or an error outside one.
    pub fn try_current() -> Result<Handle, TryCurrentError> {
        context::current().ok_or(TryCurrentError(()))
    }

    /// Spawns a task onto this runtime. See [`crate::spawn`].
    pub fn spawn<F>(&self, future: F) -> JoinHandle<F::Output>
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        self.spawn_task(future, task_core::current_budget(), None)
    }

    /// Spawns `future` charged to `budget` (the runtime's root if `None`), named `name`.
    pub(crate) fn spawn_task<F>(
        &self,
        future: F,
        budget: Option<MkBudget>,
        name: Option<Arc<str>>,
    ) -> JoinHandle<F::Output>
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        let memory = TaskMemory::needed(&budget, &name)
            .then(|| Box::new(TaskMemory::new(budget, self.memory_budget(), name)));
        self.inner.scheduler.spawn(future, memory)
    }

    /// Runs a blocking closure on this runtime's blocking pool. See [`crate::spawn_blocking`].
    pub fn spawn_blocking<F, R>(&self, f: F) -> JoinHandle<R>
    where
        F: FnOnce() -> R + Send + 'static,
        R: Send + 'static,
    {
        self.inner.blocking.spawn(self, f)
    }

    /// Drives `future` to completion on the calling thread, with this runtime as the context.
    ///
    /// # Panics
    ///
    /// If the calling thread already drives asynchronous tasks (a worker thread, or inside
    /// another `block_on`).
    #[track_caller]
    pub fn block_on<F: Future>(&self, future: F) -> F::Output {
        block_on::block_on(self, future)
    }

    /// The runtime's root budget (its [`memory_limit`](crate::Builder::memory_limit)); make
    /// per-task or per-connection budgets with `.child(limit)`.
    pub fn memory_budget(&self) -> &MkBudget {
        self.inner.memory.root()
    }

    /// This runtime's identifier, the same from every handle to it and unlike any other
    /// runtime's in this process.
    pub fn id(&self) -> Id {
        self.inner.id
    }

    /// Live counters of this runtime.
    pub fn metrics(&self) -> RuntimeMetrics {
        RuntimeMetrics {
            handle: self.clone(),
        }
    }
}

impl fmt::Debug for Handle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Handle")
            .field("id", &self.inner.id)
            .field("workers", &self.inner.scheduler.num_workers())
            .finish_non_exhaustive()
    }
}
