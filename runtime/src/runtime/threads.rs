//! The runtime's worker threads: how they are started (name, stack size, start and stop
//! hooks, the runtime entered, the heap shard of their worker), both when the runtime is built
//! and when `block_in_place` hands a worker to a new thread, and their join handles, which
//! shutdown joins.

use super::{context, Handle};
use crate::heap;
use crate::scheduler::WorkerParts;
use crate::sync::lock_std;
use std::io;
use std::sync::{Arc, Mutex};
use std::thread;

pub(crate) type Callback = Arc<dyn Fn() + Send + Sync>;

/// How the runtime's threads are made (the builder's settings).
#[derive(Clone)]
pub(crate) struct ThreadConfig {
    pub(crate) name: Arc<dyn Fn() -> String + Send + Sync>,
    pub(crate) stack_size: Option<usize>,
    pub(crate) on_start: Option<Callback>,
    pub(crate) on_stop: Option<Callback>,
}

/// The worker threads of a runtime.
pub(crate) struct WorkerThreads {
    config: ThreadConfig,
    handles: Mutex<Vec<thread::JoinHandle<()>>>,
}

impl WorkerThreads {
    pub(crate) fn new(config: ThreadConfig) -> WorkerThreads {
        WorkerThreads {
            config,
            handles: Mutex::new(Vec::new()),
        }
    }

    /// Starts a thread running `parts` (already counted as a running worker by the caller);
    /// gives the parts back with the error if the thread cannot be started.
    /// The thread counts itself out (`worker_exited`) when it ends.
    pub(crate) fn spawn(
        &self,
        handle: &Handle,
        parts: WorkerParts,
    ) -> Result<(), (io::Error, Option<WorkerParts>)> {
        let mut builder = thread::Builder::new().name((self.config.name)());
        if let Some(size) = self.config.stack_size {
            builder = builder.stack_size(size);
        }
        // The parts travel through a slot, so that they survive a thread that never starts.
        let slot = Arc::new(Mutex::new(Some(parts)));
        let theirs = slot.clone();
        let runtime = handle.clone();
        let on_start = self.config.on_start.clone();
        let on_stop = self.config.on_stop.clone();
        let spawned = builder.spawn(move || {
            // Counted out even if a thread callback panics, so shutdown never waits for it.
            struct Exit(Handle);
            impl Drop for Exit {
                fn drop(&mut self) {
                    self.0.scheduler().worker_exited();
                }
            }
            let exit = Exit(runtime);
            let handle = &exit.0;
            let parts = lock_std(&theirs).take();
            drop(theirs);
            // Tokio-based code in tasks (and in the callbacks) finds the bridge's reactor.
            let _tokio = handle.bridge().enter();
            if let Some(f) = &on_start {
                f();
            }
            if let Some(parts) = parts {
                let _runtime = context::enter(handle);
                let _shard = enter_heap_shard(handle, parts.index());
                parts.run(handle.scheduler());
            }
            if let Some(f) = &on_stop {
                f();
            }
        });
        match spawned {
            Ok(join) => {
                // The runtime's bookkeeping, not the polled task's memory.
                let _engine = heap::engine();
                let mut handles = lock_std(&self.handles);
                // Threads that took over a worker and have exited need no join any more.
                handles.retain(|t| !t.is_finished());
                handles.push(join);
                Ok(())
            }
            Err(err) => {
                let parts = lock_std(&slot).take();
                Err((err, parts))
            }
        }
    }

    /// The join handles of the threads started so far.
    pub(crate) fn take_handles(&self) -> Vec<thread::JoinHandle<()>> {
        std::mem::take(&mut *lock_std(&self.handles))
    }
}

/// Makes this thread the writer of worker `index`'s partial sum of the runtime's heap root,
/// until the guard drops.
pub(crate) fn enter_heap_shard(handle: &Handle, index: usize) -> heap::WorkerShard {
    let root = handle
        .memory()
        .root()
        .account()
        .as_ptr()
        .as_ptr()
        .cast_const();
    heap::enter_worker(heap::Shard { root, index })
}
