//! The blocking thread pool.
//!
//! Blocking closures run as ordinary tasks (one poll each) so they share `JoinHandle`, abort
//! and panic capture with async tasks. Invariants: the queue, thread count and idle count change
//! only under `state`'s lock; a thread counted in `idle` is waiting on `work`, and `notified`
//! counts the idle threads already told to take queued work, so one task never wakes two.

use crate::runtime::{context, Handle};
use crate::sync::{lock_std as lock, wait_while_for};
use crate::task_core::{self as task, Header, JoinHandle, Notified, Schedule, Task};
use crate::time::InhibitAutoAdvance;
use crate::unwind;
use std::collections::{HashMap, VecDeque};
use std::future::Future;
use std::io;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::pin::Pin;
use std::ptr::NonNull;
use std::sync::{Arc, Condvar, Mutex};
use std::task::{Context, Poll};
use std::thread;
use std::time::{Duration, Instant};

pub(crate) type Callback = Arc<dyn Fn() + Send + Sync>;

#[derive(Clone)]
pub(crate) struct PoolConfig {
    pub(crate) max_threads: usize,
    pub(crate) keep_alive: Duration,
    pub(crate) thread_name: Arc<dyn Fn() -> String + Send + Sync>,
    pub(crate) stack_size: Option<usize>,
    pub(crate) on_start: Option<Callback>,
    pub(crate) on_stop: Option<Callback>,
}

pub(crate) struct BlockingPool {
    inner: Arc<Inner>,
}

struct Inner {
    state: Mutex<State>,
    work: Condvar,
    exited: Condvar,
    config: PoolConfig,
}

/// A queued blocking closure; it holds a paused clock's auto-advance off until it has run.
struct Queued {
    task: Notified,
    _hold: InhibitAutoAdvance,
}

#[derive(Default)]
struct State {
    queue: VecDeque<Queued>,
    threads: HashMap<usize, thread::JoinHandle<()>>,
    /// Threads that take work: a thread leaves this count, under the lock, as it decides to
    /// exit, so `push` never counts on a thread that will not come back for the queue.
    num_threads: usize,
    /// Threads not yet finished (their stop callback included): what shutdown waits for.
    num_alive: usize,
    num_idle: usize,
    notified: usize,
    next_thread_id: usize,
    shutdown: bool,
}

/// Runs a blocking closure as a one-poll future.
struct BlockingTask<F>(Option<F>);

impl<F> Unpin for BlockingTask<F> {}

impl<F: FnOnce() -> R, R> Future for BlockingTask<F> {
    type Output = R;

    fn poll(mut self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<R> {
        let f = self
            .0
            .take()
            .expect("a blocking task runs once and is never polled again");
        Poll::Ready(f())
    }
}

/// Scheduler of blocking tasks: they are queued once and never re-woken.
struct BlockingSchedule(Handle);

impl Schedule for BlockingSchedule {
    fn schedule(&self, task: Notified) {
        self.0.blocking().push(&self.0, task);
    }

    unsafe fn release(&self, _: NonNull<Header>) -> Option<Task> {
        None
    }
}

impl BlockingPool {
    pub(crate) fn new(config: PoolConfig) -> BlockingPool {
        BlockingPool {
            inner: Arc::new(Inner {
                state: Mutex::new(State::default()),
                work: Condvar::new(),
                exited: Condvar::new(),
                config,
            }),
        }
    }

    pub(crate) fn spawn<F, R>(&self, handle: &Handle, f: F) -> JoinHandle<R>
    where
        F: FnOnce() -> R + Send + 'static,
        R: Send + 'static,
    {
        let scheduler = BlockingSchedule(handle.clone());
        // Charged to the spawner's budget, heap memory included.
        let budget = task::current_budget();
        let memory = task::TaskMemory::needed(&budget, &None)
            .then(|| Box::new(task::TaskMemory::new(budget, handle.memory_budget(), None)));
        let (task, notified, join) =
            task::new_task(BlockingTask(Some(f)), scheduler, task::Id::next(), memory);
        // Blocking tasks are in no owned list: a queued one is cancelled by `shutdown`, a
        // running one is waited for.
        drop(task);
        // The queue and its threads are the runtime's memory, not the spawning task's.
        let _engine = crate::heap::engine();
        self.push(handle, notified);
        join
    }

    fn push(&self, handle: &Handle, task: Notified) {
        let mut state = lock(&self.inner.state);
        if state.shutdown {
            drop(state);
            task.shutdown();
            return;
        }
        state.queue.push_back(Queued {
            task,
            _hold: InhibitAutoAdvance::new(handle.driver().time.clone()),
        });
        if state.num_idle > state.notified {
            state.notified += 1;
            drop(state);
            self.inner.work.notify_one();
            return;
        }
        if state.num_threads >= self.inner.config.max_threads {
            return; // A busy thread takes it when it finishes.
        }
        let id = state.next_thread_id;
        state.next_thread_id += 1;
        match self.spawn_thread(id, handle) {
            Ok(join) => {
                state.threads.insert(id, join);
                state.num_threads += 1;
                state.num_alive += 1;
            }
            Err(_) if state.num_threads == 0 => {
                // No thread exists to run it: fail the task rather than queue it forever.
                let queued = state.queue.pop_back();
                drop(state);
                if let Some(queued) = queued {
                    queued.task.shutdown();
                }
            }
            // An existing thread will reach the task.
            Err(_) => {}
        }
    }

    fn spawn_thread(&self, id: usize, handle: &Handle) -> io::Result<thread::JoinHandle<()>> {
        let config = &self.inner.config;
        let mut builder = thread::Builder::new().name((config.thread_name)());
        if let Some(size) = config.stack_size {
            builder = builder.stack_size(size);
        }
        let inner = self.inner.clone();
        let handle = handle.clone();
        builder.spawn(move || {
            // Blocking closures may use tokio-based code too (feature `tokio`).
            let _tokio = handle.bridge().enter();
            inner.run(id, &handle)
        })
    }

    /// Cancels queued closures, then waits up to `timeout` (forever if `None`) for the running
    /// ones; `true` if every thread exited and was joined.
    pub(crate) fn shutdown(&self, timeout: Option<Duration>) -> bool {
        let queued: Vec<Queued> = {
            let mut state = lock(&self.inner.state);
            state.shutdown = true;
            state.queue.drain(..).collect()
        };
        self.inner.work.notify_all();
        for queued in queued {
            queued.task.shutdown();
        }
        let me = thread::current().id();
        let state = lock(&self.inner.state);
        // A runtime dropped from one of its own blocking threads cannot wait for that thread.
        let own = state.threads.values().any(|t| t.thread().id() == me) as usize;
        let (mut state, timed_out) =
            wait_while_for(&self.inner.exited, state, timeout, |s| s.num_alive > own);
        if timed_out {
            return false;
        }
        let threads: Vec<_> = state.threads.drain().map(|(_, t)| t).collect();
        drop(state);
        for t in threads {
            if t.thread().id() != me {
                let _ = t.join();
            }
        }
        own == 0
    }

    /// Threads not yet finished, those leaving on idle timeout included.
    pub(crate) fn num_alive(&self) -> usize {
        lock(&self.inner.state).num_alive
    }

    pub(crate) fn num_idle_threads(&self) -> usize {
        lock(&self.inner.state).num_idle
    }

    pub(crate) fn queue_depth(&self) -> usize {
        lock(&self.inner.state).queue.len()
    }
}

impl Inner {
    fn run(&self, id: usize, handle: &Handle) {
        // Counted out even if a thread callback panics, so neither `push` nor shutdown waits
        // for a thread that is gone.
        struct Exit<'a> {
            inner: &'a Inner,
            taking_work: bool,
        }
        impl Drop for Exit<'_> {
            fn drop(&mut self) {
                let mut state = lock(&self.inner.state);
                if self.taking_work {
                    state.num_threads -= 1;
                }
                state.num_alive -= 1;
                drop(state);
                self.inner.exited.notify_all();
            }
        }
        let mut exit = Exit {
            inner: self,
            taking_work: true,
        };
        if let Some(f) = &self.config.on_start {
            if let Err(payload) = catch_unwind(AssertUnwindSafe(|| f())) {
                // The thread is not what its hook was to make it: it runs no closure.
                unwind::discard(payload);
                exit.taking_work = false;
                self.start_failed(id);
                return;
            }
        }
        {
            let _handle = context::enter(handle);
            self.work_loop(id);
            // `work_loop` returned with `num_threads` already lowered under its lock.
            exit.taking_work = false;
        }
        if let Some(f) = &self.config.on_stop {
            f();
        }
    }

    /// Thread `id` gives up before taking work, as its start hook panicked. Like a thread that
    /// could not be started: queued closures that no other thread will reach fail (their
    /// handles resolve as cancelled) rather than wait for the next `spawn_blocking`.
    fn start_failed(&self, id: usize) {
        let orphans: Vec<Queued> = {
            let mut state = lock(&self.state);
            state.num_threads -= 1;
            // Exiting early: nobody will join this thread, so detach it.
            state.threads.remove(&id);
            if state.num_threads == 0 {
                state.queue.drain(..).collect()
            } else {
                Vec::new()
            }
        };
        for queued in orphans {
            queued.task.shutdown();
        }
    }

    fn work_loop(&self, id: usize) {
        let mut state = lock(&self.state);
        loop {
            while let Some(Queued { task, _hold: hold }) = state.queue.pop_front() {
                drop(state);
                // The hold ends after the run, which wakes whoever awaits the closure first.
                task.run();
                drop(hold);
                state = lock(&self.state);
            }
            if state.shutdown {
                state.num_threads -= 1;
                return;
            }
            state.num_idle += 1;
            let deadline = Instant::now() + self.config.keep_alive;
            loop {
                let now = Instant::now();
                if now >= deadline {
                    state.num_idle -= 1;
                    state.num_threads -= 1;
                    // Exiting on idle: nobody will join this thread, so detach it.
                    state.threads.remove(&id);
                    return;
                }
                state = self
                    .work
                    .wait_timeout(state, deadline - now)
                    .unwrap_or_else(|e| e.into_inner())
                    .0;
                if state.notified > 0 {
                    state.notified -= 1;
                    state.num_idle -= 1;
                    break;
                }
                if state.shutdown {
                    state.num_idle -= 1;
                    state.num_threads -= 1;
                    return;
                }
            }
        }
    }
}
