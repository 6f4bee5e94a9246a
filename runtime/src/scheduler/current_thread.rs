//! The current-thread flavour: a scheduler of one worker that no thread of its own runs. The
//! thread in `block_on` runs the ordinary worker loop (`worker::run_loop`) as worker 0, polling
//! its own future whenever that future's waker fired, one task in between at least, and gives
//! the worker back, queued tasks and all, when the future is ready. Tasks spawned while no
//! `block_on` runs wait in the injector or the kept worker's queue for the next one.
//!
//! One thread at a time runs the worker: it is taken out of `Alive::idle_core` under the lock
//! that counts running workers (so shutdown waits for it) and put back under it; a `block_on`
//! on another thread meanwhile polls its future on its own and is unparked when the worker is
//! free again.

use super::worker::{self, RunsFor, Stop};
use super::{Handle, Shared, WorkerParts};
use crate::context;
use crate::sync::{lock_std, Ordering::SeqCst};
use crossbeam_utils::sync::Unparker;
use std::sync::Arc;
use std::task::{Poll, Wake, Waker};
use std::thread;

/// The waker of a `block_on` future: wakes the thread however it waits, in the worker loop (as
/// a sleeping worker) or on its own parker (while another thread runs the worker).
pub(crate) struct MainWaker {
    shared: Arc<Shared>,
    thread: Unparker,
}

impl MainWaker {
    /// A waker for the future a `block_on` on `scheduler` drives, parked on `thread`.
    pub(crate) fn waker(scheduler: &Handle, thread: Unparker) -> Waker {
        Waker::from(Arc::new(MainWaker {
            shared: scheduler.shared.clone(),
            thread,
        }))
    }
}

impl Wake for MainWaker {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        // Set, then notify: the worker re-checks the flag after registering as a sleeper. An
        // RMW rather than a store, so the write is ordered after the worker's last
        // `swap(false)` (the loom model finds a lost wake-up with a plain store).
        self.shared.main_woken.swap(true, SeqCst);
        self.shared.notify_parked();
        self.thread.unpark();
    }
}

impl Handle {
    /// Runs this current-thread scheduler's worker on the calling thread, polling `main` at once
    /// and whenever its [`MainWaker`] fires, until `main` is ready. `enter(index)` is entered
    /// once the worker is this thread's and dropped before it is given back (the heap shard
    /// of worker `index` has one writer at a time).
    ///
    /// `None` when the worker is busy on another thread (`waiter` is unparked once it is
    /// free), when the scheduler shuts down, and at once after shutdown.
    pub(crate) fn drive<T, G>(
        &self,
        waiter: &Unparker,
        enter: impl FnOnce(usize) -> G,
        mut main: impl FnMut() -> Poll<T>,
    ) -> Option<T> {
        let parts = self.take_core(waiter)?;
        let (core, _deferred) = parts.into_core(self);
        let index = core.index;
        let mut lease = Lease {
            scheduler: self,
            shard: None,
            _runs: RunsFor::enter(&self.shared),
            _index: context::enter_worker(index),
        };
        worker::install(core);
        lease.shard = Some(enter(index));
        self.shared.main_woken.store(true, SeqCst);
        let (stop, out) = worker::run_loop(Some(&mut main));
        debug_assert!(
            stop != Stop::HandedOff,
            "a current-thread worker is never handed off"
        );
        drop(lease);
        out
    }

    /// The worker, unless another thread runs it (then `waiter` is queued for it) or shutdown
    /// has begun.
    fn take_core(&self, waiter: &Unparker) -> Option<WorkerParts> {
        let mut alive = lock_std(&self.shared.alive);
        if self.shared.is_shutdown() {
            return None;
        }
        match alive.idle_core.take() {
            Some(parts) => {
                alive.running += 1;
                Some(parts)
            }
            None => {
                let me = thread::current().id();
                if !alive.core_waiters.iter().any(|(id, _)| *id == me) {
                    // The scheduler's own bookkeeping, not the polled future's memory.
                    let _engine = crate::heap::engine();
                    alive.core_waiters.push((me, waiter.clone()));
                }
                None
            }
        }
    }

    /// Keeps the worker for the next `block_on` and wakes the threads waiting for it; after
    /// shutdown (which may have run from inside this `block_on`), drops its queued references
    /// instead, as nobody will run them.
    fn put_core(&self, parts: WorkerParts) {
        let (waiters, drained) = {
            let mut alive = lock_std(&self.shared.alive);
            let drained = if self.shared.is_shutdown() {
                Some(parts)
            } else {
                alive.idle_core = Some(parts);
                None
            };
            alive.running -= 1;
            (std::mem::take(&mut alive.core_waiters), drained)
        };
        self.shared.exited.notify_all();
        if let Some(parts) = drained {
            let (core, _deferred) = parts.into_core(self);
            core.drain();
        }
        for (_, waiter) in waiters {
            waiter.unpark();
        }
    }
}

/// The worker while one `block_on` runs it; given back when dropped, on unwinding too.
struct Lease<'a, G> {
    scheduler: &'a Handle,
    /// Dropped before the worker is given back.
    shard: Option<G>,
    _runs: RunsFor,
    _index: context::WorkerGuard,
}

impl<G> Drop for Lease<'_, G> {
    fn drop(&mut self) {
        worker::with_current(|core| {
            if let Some(core) = core {
                core.set_aside();
            }
        });
        let core = worker::uninstall();
        drop(self.shard.take());
        if let Some(core) = core {
            self.scheduler.put_core(WorkerParts::kept(core));
        }
    }
}
