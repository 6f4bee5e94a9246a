//! `RuntimeMemory`: the memory state of one runtime (its root budget, the chunk pool of its task
//! arenas, and the counts of requests waiting for memory or admission), and which runtime's is
//! current on this thread.
//!
//! The runtime makes its memory current on its threads (and in `block_on` and `Runtime::enter`)
//! next to its handle, so the memory code finds it without knowing the runtime.

use super::arena::ChunkPool;
use super::MkBudget;
use crate::sync::{AtomicUsize, Ordering::SeqCst};
use std::cell::RefCell;
use std::sync::{Arc, OnceLock};

pub(crate) struct RuntimeMemory {
    /// The root budget: the runtime's `memory_limit`.
    root: MkBudget,
    /// Chunks for the task arenas.
    pool: Arc<ChunkPool>,
    /// Memory requests made in this runtime that are waiting in a budget queue.
    waiting: AtomicUsize,
    /// Tasks spawned with a reservation that are not admitted yet.
    admitting: AtomicUsize,
}

thread_local! {
    static CURRENT: RefCell<Option<Arc<RuntimeMemory>>> = const { RefCell::new(None) };
}

impl RuntimeMemory {
    /// The memory of a runtime with `workers` workers (each gets a chunk cache) keeping at most
    /// `pool_cap` bytes of idle chunks.
    pub(crate) fn new(root: MkBudget, workers: usize, pool_cap: usize) -> Arc<RuntimeMemory> {
        Arc::new(RuntimeMemory {
            root,
            pool: Arc::new(ChunkPool::new(workers, pool_cap)),
            waiting: AtomicUsize::new(0),
            admitting: AtomicUsize::new(0),
        })
    }

    /// The memory of the runtime this thread runs in, if any.
    pub(crate) fn current() -> Option<Arc<RuntimeMemory>> {
        CURRENT.try_with(|c| c.borrow().clone()).unwrap_or(None)
    }

    /// Makes `memory` current on this thread until the guard drops.
    pub(crate) fn enter(memory: Arc<RuntimeMemory>) -> CurrentGuard {
        CurrentGuard(
            CURRENT
                .try_with(|c| c.replace(Some(memory)))
                .unwrap_or(None),
        )
    }

    /// The chunk pool for arenas made here: the current runtime's, or outside any runtime a
    /// process-wide one.
    pub(crate) fn current_pool() -> Arc<ChunkPool> {
        static POOL: OnceLock<Arc<ChunkPool>> = OnceLock::new();
        RuntimeMemory::current().map_or_else(
            || {
                POOL.get_or_init(|| Arc::new(ChunkPool::new(0, 16 << 20)))
                    .clone()
            },
            |m| m.pool().clone(),
        )
    }

    /// The root budget.
    pub(crate) fn root(&self) -> &MkBudget {
        &self.root
    }

    /// The chunk pool of the runtime's arenas.
    pub(crate) fn pool(&self) -> &Arc<ChunkPool> {
        &self.pool
    }

    /// A request starts waiting in a budget queue.
    pub(crate) fn wait_started(self: &Arc<Self>) -> Arc<RuntimeMemory> {
        self.waiting.fetch_add(1, SeqCst);
        self.clone()
    }

    /// A request counted by `wait_started` stopped waiting.
    pub(crate) fn wait_ended(&self) {
        self.waiting.fetch_sub(1, SeqCst);
    }

    /// Requests waiting in a budget queue now.
    pub(crate) fn tasks_waiting(&self) -> usize {
        self.waiting.load(SeqCst)
    }

    /// A task with a reservation starts waiting for admission.
    pub(crate) fn admission_started(self: &Arc<Self>) -> Arc<RuntimeMemory> {
        self.admitting.fetch_add(1, SeqCst);
        self.clone()
    }

    /// A task counted by `admission_started` was admitted or dropped.
    pub(crate) fn admission_ended(&self) {
        self.admitting.fetch_sub(1, SeqCst);
    }

    /// Tasks waiting for admission now.
    pub(crate) fn tasks_awaiting_admission(&self) -> usize {
        self.admitting.load(SeqCst)
    }
}

/// Restores the previously current memory on drop.
pub(crate) struct CurrentGuard(Option<Arc<RuntimeMemory>>);

impl Drop for CurrentGuard {
    fn drop(&mut self) {
        let prev = self.0.take();
        // The memory made current by the guard is dropped after the cell is released.
        let entered = CURRENT.try_with(|c| c.replace(prev));
        drop(entered);
    }
}
