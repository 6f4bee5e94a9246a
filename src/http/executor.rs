//! `MkExecutor`: hyper's `Executor` on memkit's workers.

use memkit_async_runtime::memory::MkBudget;
use memkit_async_runtime::{task, Handle};
use std::future::Future;

/// Runs the tasks hyper spawns (HTTP/2 streams, client connection drivers, ...) as memkit tasks
/// on the runtime's workers, instead of on the tokio bridge's one thread.
///
/// Each spawned task is charged to the executor's budget if it has one
/// ([`with_budget`](Self::with_budget)), else to the budget of the task that spawns it (a
/// connection's, under [`serve`](super::serve)), else to the runtime's memory limit.
///
/// ```
/// use memkit_async::http::MkExecutor;
/// use hyper::rt::Executor;
///
/// # let rt = memkit_async::Runtime::new().unwrap();
/// # rt.block_on(async {
/// let (tx, rx) = std::sync::mpsc::channel();
/// MkExecutor::new().execute(async move { tx.send(memkit_async::runtime::worker_index()).unwrap() });
/// # let on_worker = rx.recv().unwrap().is_some();
/// assert!(on_worker); // ran on one of memkit's workers
/// # });
/// ```
#[derive(Clone, Debug, Default)]
pub struct MkExecutor {
    handle: Option<Handle>,
    budget: Option<MkBudget>,
}

impl MkExecutor {
    /// Spawns on the runtime current where hyper spawns (it always spawns from inside the
    /// connection it drives).
    pub fn new() -> MkExecutor {
        MkExecutor::default()
    }

    /// Spawns on the runtime of `handle`, from any thread.
    pub fn on(handle: Handle) -> MkExecutor {
        MkExecutor {
            handle: Some(handle),
            budget: None,
        }
    }

    /// Charges every spawned task to `budget` (shared by all of them).
    pub fn with_budget(mut self, budget: MkBudget) -> MkExecutor {
        self.budget = Some(budget);
        self
    }

    /// The budget spawned tasks are charged to, if one was set.
    pub fn budget(&self) -> Option<&MkBudget> {
        self.budget.as_ref()
    }
}

impl<F> hyper::rt::Executor<F> for MkExecutor
where
    F: Future + Send + 'static,
    F::Output: Send + 'static,
{
    /// # Panics
    /// Outside a runtime when made with [`new`](MkExecutor::new), like
    /// [`spawn`](crate::spawn).
    #[track_caller]
    fn execute(&self, future: F) {
        let mut builder = task::Builder::new();
        if let Some(budget) = &self.budget {
            builder = builder.budget(budget);
        }
        let spawned = match &self.handle {
            Some(handle) => builder.spawn_on(future, handle),
            None => builder.spawn(future),
        };
        // Without a reservation, spawning cannot fail; the task runs detached.
        drop(spawned);
    }
}
