//! `LocalSet`: a set of `!Send` tasks run on the thread that polls it.

use super::set_core::Core;
use super::{context, LocalJoinHandle, RunUntil};
use crate::runtime::Runtime;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll};

/// A set of tasks that need not be `Send`: they hold `Rc`, `RefCell` and other values that
/// must stay on one thread, and they run on the thread that polls the set.
///
/// Spawn with [`spawn_local`](super::spawn_local) from code the set is running, or with
/// [`LocalSet::spawn_local`] from anywhere on the set's thread. The tasks run only while the
/// set is polled:
///
/// - [`run_until`](Self::run_until) drives a future together with the set's tasks;
/// - [`block_on`](Self::block_on) does that on the calling thread, with a runtime's context
///   (its timers, sockets and `spawn`) entered;
/// - the set itself is a future that completes once all its tasks are done.
///
/// The set and those futures are `!Send`, so they are driven by `block_on`
/// ([`LocalSet::block_on`], [`Runtime::block_on`], `#[memkit_async::main]`, on a thread of
/// your own or in [`spawn_blocking`](crate::task::spawn_blocking)) or by any other executor
/// that polls `!Send` futures; a `Send` task spawned on the workers cannot hold one across an
/// `.await`. What the local tasks wait for may live anywhere: tasks on the workers, timers,
/// sockets, channels.
///
/// Tasks are first polled in the order they were spawned, and later in the order they were
/// woken. Each poll of the set polls its future (for `run_until`) and then at most 61 woken
/// tasks, each with a cooperative budget of its own (see [`coop`](crate::task::coop)), before
/// it wakes itself and returns `Pending`; so a task that is always ready does not starve the
/// future, nor whatever else shares the thread (the other futures of a `join`, or the timers
/// and I/O that `block_on` lets through).
///
/// A task's waker is `Send + Sync`: a timer, a socket or a channel on another thread may wake
/// it. A panic in a task is caught and returned by its [`LocalJoinHandle`]; the other tasks
/// keep running.
///
/// # Memory
///
/// Local tasks are polled inside the poll of whatever polls the set, so what they allocate is
/// charged where that poll is charged: inside an [`MkArenaTask`](crate::memory::MkArenaTask)
/// their `MkAsyncBox`es go to its arena and budget, the `MkTaskLocal` values in scope around
/// the set are visible in its local tasks, and heap memory counted by
/// [`MkGlobalAlloc`](crate::heap::MkGlobalAlloc) goes to the account current there (in
/// `block_on`, outside any task: unattributed).
///
/// Inside a local task, [`task::try_id`](crate::task::try_id) and
/// [`task::name`](crate::task::name) are those of the code that polls the set (none in
/// `block_on`); [`LocalJoinHandle::id`] is the local task's own id.
///
/// # Dropping
///
/// Dropping the set drops the futures of the tasks still in it, in spawn order, with the set
/// made current (a future whose `Drop` spawns a local task spawns on the set, and that task is
/// dropped too); their handles resolve to a cancelled [`JoinError`](crate::JoinError).
///
/// The set is driven by whichever of its futures polled it last; drive it from one place.
///
/// ```
/// use memkit_async_runtime::task::{self, LocalSet};
/// use std::cell::RefCell;
/// use std::rc::Rc;
///
/// let rt = memkit_async_runtime::Runtime::new().unwrap();
/// let log = Rc::new(RefCell::new(Vec::new()));
/// let set = LocalSet::new();
/// let total = set.block_on(&rt, async {
///     let tasks: Vec<_> = (1..=3)
///         .map(|i| {
///             let log = log.clone();
///             task::spawn_local(async move {
///                 log.borrow_mut().push(i);
///                 i * 10
///             })
///         })
///         .collect();
///     let mut total = 0;
///     for t in tasks {
///         total += t.await.unwrap();
///     }
///     total
/// });
/// assert_eq!(total, 60);
/// assert_eq!(*log.borrow(), [1, 2, 3]);
/// ```
///
/// The set cannot leave its thread:
///
/// ```compile_fail
/// let set = memkit_async_runtime::task::LocalSet::new();
/// std::thread::spawn(move || drop(set));
/// ```
pub struct LocalSet {
    pub(super) core: Rc<Core>,
}

impl LocalSet {
    /// An empty set.
    pub fn new() -> LocalSet {
        LocalSet {
            core: Rc::new(Core::new()),
        }
    }

    /// Spawns a `!Send` future on this set; it runs when the set is next polled, after the
    /// tasks spawned before it.
    ///
    /// ```
    /// use memkit_async_runtime::task::LocalSet;
    ///
    /// let rt = memkit_async_runtime::Runtime::new().unwrap();
    /// let set = LocalSet::new();
    /// let handle = set.spawn_local(async { std::rc::Rc::new(7) });
    /// let out = set.block_on(&rt, handle).unwrap();
    /// assert_eq!(*out, 7);
    /// ```
    pub fn spawn_local<F>(&self, future: F) -> LocalJoinHandle<F::Output>
    where
        F: Future + 'static,
        F::Output: 'static,
    {
        self.core.spawn(future)
    }

    /// Drives `future` and the set's tasks together, until `future` completes. Tasks still
    /// running then stay in the set, and run again the next time the set is polled.
    ///
    /// Inside it, [`spawn_local`](super::spawn_local) spawns on this set.
    ///
    /// ```
    /// use memkit_async_runtime::task::{self, LocalSet};
    /// use std::time::Duration;
    ///
    /// let rt = memkit_async_runtime::Runtime::new().unwrap();
    /// let set = LocalSet::new();
    /// let out = rt.block_on(set.run_until(async {
    ///     // A task on the workers, awaited by a local task.
    ///     let remote = memkit_async_runtime::spawn(async {
    ///         memkit_async_runtime::time::sleep(Duration::from_millis(1)).await;
    ///         21
    ///     });
    ///     let state = std::rc::Rc::new(std::cell::Cell::new(2));
    ///     task::spawn_local(async move { remote.await.unwrap() * state.get() })
    ///         .await
    ///         .unwrap()
    /// }));
    /// assert_eq!(out, 42);
    /// ```
    pub fn run_until<F: Future>(&self, future: F) -> RunUntil<'_, F> {
        RunUntil { set: self, future }
    }

    /// Runs `future` and the set's tasks on the calling thread until `future` completes, with
    /// `rt` as the thread's runtime ([`Runtime::block_on`] of
    /// [`run_until`](Self::run_until)).
    ///
    /// # Panics
    ///
    /// As [`Runtime::block_on`]: on a worker thread or inside another `block_on`.
    #[track_caller]
    pub fn block_on<F: Future>(&self, rt: &Runtime, future: F) -> F::Output {
        rt.block_on(self.run_until(future))
    }

    /// Tasks in the set that have not finished.
    pub fn len(&self) -> usize {
        self.core.len()
    }

    /// `true` if every task of the set has finished.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl Default for LocalSet {
    fn default() -> LocalSet {
        LocalSet::new()
    }
}

/// Completes once every task of the set has finished (at once for an empty set).
impl Future for LocalSet {
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let core = &self.core;
        let _enter = context::enter(core);
        core.queue.clear_waker();
        core.tick();
        if core.len() == 0 {
            return Poll::Ready(());
        }
        if core.queue.park(cx.waker()) {
            cx.waker().wake_by_ref();
        }
        Poll::Pending
    }
}

impl Drop for LocalSet {
    fn drop(&mut self) {
        let _enter = context::enter(&self.core);
        self.core.shut_down();
    }
}

impl fmt::Debug for LocalSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LocalSet")
            .field("tasks", &self.len())
            .finish()
    }
}
