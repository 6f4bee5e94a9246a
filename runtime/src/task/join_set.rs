//! `JoinSet`: a set of spawned tasks whose outputs are collected in the order they complete.
//!
//! Each task's join handle is polled with a waker of its own. Waking it puts the entry on the
//! set's ready list and wakes the task awaiting the set, so `join_next` polls only the entries
//! on that list: a completion costs O(1) however many tasks the set holds. A new entry starts
//! on the list, so that its first poll registers its waker.
//!
//! The ready list holds `Arc`s of entry wakers, which hold the list: the cycle is broken when
//! the set drops (the list is emptied and closed, so later wakes push nothing).

use super::{AbortHandle, Builder, Id, JoinError, JoinHandle, TaskBudget};
use crate::memory::MkAllocError;
use crate::runtime::Handle;
use std::collections::VecDeque;
use std::fmt;
use std::future::{poll_fn, Future};
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering::SeqCst};
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll, Wake, Waker};

/// A set of tasks spawned on a runtime, whose outputs are taken as the tasks complete.
///
/// [`join_next`](Self::join_next) returns the output of a completed task (in the order the
/// tasks completed, once each was polled by the set), or `None` when the set is empty. Waiting
/// on a set of any size costs one wake-up per completed task: the set never polls the tasks
/// that have not made progress.
///
/// Dropping the set aborts the tasks still in it (their futures are dropped by the runtime);
/// [`detach_all`](Self::detach_all) lets them run on instead.
///
/// ```
/// use memkit_async_runtime::task::JoinSet;
///
/// let rt = memkit_async_runtime::Runtime::new().unwrap();
/// let mut outputs = rt.block_on(async {
///     let mut set = JoinSet::new();
///     for i in 0..10u32 {
///         set.spawn(async move { i * i });
///     }
///     let mut outputs = Vec::new();
///     while let Some(res) = set.join_next().await {
///         outputs.push(res.unwrap());
///     }
///     outputs
/// });
/// outputs.sort();
/// assert_eq!(outputs, (0..10u32).map(|i| i * i).collect::<Vec<_>>());
/// ```
pub struct JoinSet<T> {
    /// Slots indexed by the entries' keys; `free` lists the empty ones.
    entries: Vec<Option<Entry<T>>>,
    free: Vec<usize>,
    len: usize,
    ready: Arc<Ready>,
    /// Join handles polled so far (checks that a completion costs one poll).
    #[cfg(test)]
    polls: usize,
}

struct Entry<T> {
    handle: JoinHandle<T>,
    notify: Arc<Notify>,
    /// `notify` as a waker, made once.
    waker: Waker,
}

/// The entries that may have progressed, and the waker of the task awaiting the set.
struct Ready {
    state: Mutex<ReadyState>,
}

struct ReadyState {
    list: VecDeque<Arc<Notify>>,
    waker: Option<Waker>,
    /// The set is gone: wakes push nothing (and create no reference cycle).
    closed: bool,
}

/// One entry's waker: waking it queues the entry on the ready list, once until it is polled.
struct Notify {
    key: usize,
    ready: Arc<Ready>,
    /// On the ready list; cleared just before the entry is polled.
    queued: AtomicBool,
    /// The entry left the set: wakes are ignored.
    removed: AtomicBool,
}

impl Ready {
    fn lock(&self) -> MutexGuard<'_, ReadyState> {
        // No user code runs under this lock; a poisoned one is still consistent.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl Wake for Notify {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        if self.removed.load(SeqCst) || self.queued.swap(true, SeqCst) {
            return;
        }
        let waker = {
            let mut state = self.ready.lock();
            if state.closed {
                return;
            }
            state.list.push_back(self.clone());
            state.waker.take()
        };
        // Woken without the lock: the woken task may poll the set at once.
        if let Some(waker) = waker {
            waker.wake();
        }
    }
}

impl<T> JoinSet<T> {
    /// An empty set.
    pub fn new() -> JoinSet<T> {
        JoinSet {
            entries: Vec::new(),
            free: Vec::new(),
            len: 0,
            #[cfg(test)]
            polls: 0,
            ready: Arc::new(Ready {
                state: Mutex::new(ReadyState {
                    list: VecDeque::new(),
                    waker: None,
                    closed: false,
                }),
            }),
        }
    }

    /// Tasks in the set: spawned and not yet joined (completed tasks count until joined).
    pub fn len(&self) -> usize {
        self.len
    }

    /// `true` if the set holds no task.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Adds a spawned task's handle to the set; a handle that aborts it.
    fn insert(&mut self, handle: JoinHandle<T>) -> AbortHandle {
        let abort = handle.abort_handle();
        let key = self.free.pop().unwrap_or(self.entries.len());
        let notify = Arc::new(Notify {
            key,
            ready: self.ready.clone(),
            queued: AtomicBool::new(true),
            removed: AtomicBool::new(false),
        });
        self.ready.lock().list.push_back(notify.clone());
        let entry = Entry {
            handle,
            waker: Waker::from(notify.clone()),
            notify,
        };
        if key == self.entries.len() {
            self.entries.push(Some(entry));
        } else {
            self.entries[key] = Some(entry);
        }
        self.len += 1;
        abort
    }

    fn remove(&mut self, key: usize) -> Entry<T> {
        let entry = self.entries[key].take().expect("a live entry");
        entry.notify.removed.store(true, SeqCst);
        self.free.push(key);
        self.len -= 1;
        entry
    }

    /// Polls the entries on the ready list until one completes. With `cx`, registers its
    /// waker when the list runs empty; without, gives up then.
    fn poll_ready_entries(
        &mut self,
        mut cx: Option<&mut Context<'_>>,
    ) -> Poll<Option<Result<(Id, T), JoinError>>> {
        loop {
            if self.len == 0 {
                return Poll::Ready(None);
            }
            let notify = {
                let mut state = self.ready.lock();
                match state.list.pop_front() {
                    Some(notify) => notify,
                    None => {
                        let Some(cx) = cx.as_deref_mut() else {
                            return Poll::Pending;
                        };
                        let stale = match &state.waker {
                            Some(w) if w.will_wake(cx.waker()) => None,
                            _ => state.waker.replace(cx.waker().clone()),
                        };
                        // A waker's drop may run any code: not under the lock.
                        drop(state);
                        drop(stale);
                        return Poll::Pending;
                    }
                }
            };
            let key = notify.key;
            let Some(Some(entry)) = self.entries.get_mut(key) else {
                continue;
            };
            if !Arc::ptr_eq(&entry.notify, &notify) {
                // A wake of an entry that left the set before its slot was reused.
                continue;
            }
            // Cleared before the poll: a completion during the poll queues the entry again.
            entry.notify.queued.store(false, SeqCst);
            #[cfg(test)]
            {
                self.polls += 1;
            }
            let polled = Pin::new(&mut entry.handle).poll(&mut Context::from_waker(&entry.waker));
            if let Poll::Ready(res) = polled {
                let entry = self.remove(key);
                let id = entry.handle.id();
                // The handle is dropped after its output was read: nothing of the task's runs.
                drop(entry);
                return Poll::Ready(Some(res.map(|value| (id, value))));
            }
        }
    }

    /// Polls for the output of the next task to complete, as [`join_next`](Self::join_next)
    /// does: `Ready(None)` if the set is empty, `Pending` (with `cx`'s waker registered, to be
    /// woken when a task completes) if no task has completed yet.
    pub fn poll_join_next(&mut self, cx: &mut Context<'_>) -> Poll<Option<Result<T, JoinError>>> {
        self.poll_ready_entries(Some(cx))
            .map(|next| next.map(|res| res.map(|(_, value)| value)))
    }

    /// As [`poll_join_next`](Self::poll_join_next), with the task's id next to its output.
    pub fn poll_join_next_with_id(
        &mut self,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<(Id, T), JoinError>>> {
        self.poll_ready_entries(Some(cx))
    }

    /// Waits for a task of the set to complete and returns its output: `Ok(value)`, or the
    /// task's [`JoinError`] if it panicked or was cancelled. `None` at once if the set is
    /// empty. The task leaves the set.
    ///
    /// Cancel-safe: dropping the future before it completes loses no output.
    pub async fn join_next(&mut self) -> Option<Result<T, JoinError>> {
        poll_fn(|cx| self.poll_join_next(cx)).await
    }

    /// As [`join_next`](Self::join_next), with the task's id next to its output (a
    /// [`JoinError`] carries its own [`id`](JoinError::id)).
    pub async fn join_next_with_id(&mut self) -> Option<Result<(Id, T), JoinError>> {
        poll_fn(|cx| self.poll_join_next_with_id(cx)).await
    }

    /// The output of a task that has completed, without waiting; `None` if no task has
    /// completed (or the set is empty).
    pub fn try_join_next(&mut self) -> Option<Result<T, JoinError>> {
        self.try_join_next_with_id()
            .map(|res| res.map(|(_, value)| value))
    }

    /// As [`try_join_next`](Self::try_join_next), with the task's id next to its output.
    pub fn try_join_next_with_id(&mut self) -> Option<Result<(Id, T), JoinError>> {
        match self.poll_ready_entries(None) {
            Poll::Ready(next) => next,
            Poll::Pending => None,
        }
    }

    /// Waits for every task and returns their outputs, in the order the tasks completed.
    ///
    /// # Panics
    /// If a task panicked, with that task's panic payload (the other tasks are aborted as the
    /// set drops); if a task was cancelled, with its [`JoinError`]'s message.
    pub async fn join_all(mut self) -> Vec<T> {
        let mut outputs = Vec::with_capacity(self.len);
        while let Some(res) = self.join_next().await {
            match res {
                Ok(value) => outputs.push(value),
                Err(err) => match err.try_into_panic() {
                    Ok(payload) => std::panic::resume_unwind(payload),
                    Err(err) => panic!("`JoinSet::join_all`: {err}"),
                },
            }
        }
        outputs
    }

    /// Aborts every task in the set. They stay in the set: each is joined with a
    /// [`JoinError`] for which [`is_cancelled`](JoinError::is_cancelled) is `true` (or with its
    /// output, if it completed first).
    pub fn abort_all(&mut self) {
        for entry in self.entries.iter().flatten() {
            entry.handle.abort();
        }
    }

    /// Aborts every task and waits until each has stopped; the set is then empty.
    pub async fn shutdown(&mut self) {
        self.abort_all();
        while self.join_next().await.is_some() {}
    }

    /// Removes every task from the set without aborting it: the tasks run on, and their
    /// outputs are dropped when they complete.
    pub fn detach_all(&mut self) {
        let list = std::mem::take(&mut self.ready.lock().list);
        drop(list);
        let entries = std::mem::take(&mut self.entries);
        self.free.clear();
        self.len = 0;
        for entry in entries.into_iter().flatten() {
            entry.notify.removed.store(true, SeqCst);
            drop(entry);
        }
    }
}

impl<T: Send + 'static> JoinSet<T> {
    /// Spawns `future` on the current runtime and adds it to the set; a handle that aborts the task.
    ///
    /// # Panics
    /// Outside a runtime, like [`spawn`](crate::spawn); use [`spawn_on`](Self::spawn_on) there.
    #[track_caller]
    pub fn spawn<F>(&mut self, future: F) -> AbortHandle
    where
        F: Future<Output = T> + Send + 'static,
    {
        self.insert(crate::spawn(future))
    }

    /// Spawns `future` on the runtime of `handle` (from anywhere, also outside the runtime)
    /// and adds it to the set; a handle that aborts the task.
    pub fn spawn_on<F>(&mut self, future: F, handle: &Handle) -> AbortHandle
    where
        F: Future<Output = T> + Send + 'static,
    {
        self.insert(handle.spawn(future))
    }

    /// Spawns `future` with its own budget, as
    /// [`spawn_with_budget`](crate::task::spawn_with_budget) does (bytes: a child of the
    /// spawner's budget; or an existing [`MkBudget`](crate::memory::MkBudget)), and adds it to
    /// the set; a handle that aborts the task.
    ///
    /// # Panics
    /// Outside a runtime, like [`spawn`](crate::spawn).
    #[track_caller]
    pub fn spawn_with_budget<F>(&mut self, budget: impl Into<TaskBudget>, future: F) -> AbortHandle
    where
        F: Future<Output = T> + Send + 'static,
    {
        match Builder::new().budget(budget).spawn(future) {
            Ok(handle) => self.insert(handle),
            Err(e) => unreachable!("a task without a reservation always spawns: {e}"),
        }
    }

    /// Spawns `future` as `builder` says (name, budget, policy, reservation) and adds it to
    /// the set; a handle that aborts the task.
    ///
    /// # Errors
    /// `ExceedsLimit` if the builder's reservation can never fit under the parent budget;
    /// nothing is spawned then.
    ///
    /// # Panics
    /// Outside a runtime, like [`spawn`](crate::spawn).
    #[track_caller]
    pub fn spawn_with<F>(
        &mut self,
        builder: Builder,
        future: F,
    ) -> Result<AbortHandle, MkAllocError>
    where
        F: Future<Output = T> + Send + 'static,
    {
        Ok(self.insert(builder.spawn(future)?))
    }

    /// Runs `f` on the current runtime's blocking pool and adds it to the set; a handle that aborts the task.
    /// Aborting it has no effect once it started running.
    ///
    /// # Panics
    /// Outside a runtime, like [`spawn_blocking`](crate::spawn_blocking).
    #[track_caller]
    pub fn spawn_blocking<F>(&mut self, f: F) -> AbortHandle
    where
        F: FnOnce() -> T + Send + 'static,
    {
        self.insert(crate::spawn_blocking(f))
    }

    /// Runs `f` on the blocking pool of `handle`'s runtime and adds it to the set; the task's
    /// id.
    pub fn spawn_blocking_on<F>(&mut self, f: F, handle: &Handle) -> AbortHandle
    where
        F: FnOnce() -> T + Send + 'static,
    {
        self.insert(handle.spawn_blocking(f))
    }
}

impl<T> Drop for JoinSet<T> {
    fn drop(&mut self) {
        let list = {
            let mut state = self.ready.lock();
            state.closed = true;
            (std::mem::take(&mut state.list), state.waker.take())
        };
        drop(list);
        // Every task is aborted before any handle drops: a handle's drop may drop an output
        // whose `Drop` panics, and the rest must still be aborted.
        self.abort_all();
        self.entries.clear();
    }
}

impl<T> Default for JoinSet<T> {
    fn default() -> JoinSet<T> {
        JoinSet::new()
    }
}

impl<T> fmt::Debug for JoinSet<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("JoinSet").field("len", &self.len).finish()
    }
}

/// Spawns each future on the current runtime.
///
/// # Panics
/// Outside a runtime, like [`spawn`](crate::spawn).
impl<T, F> FromIterator<F> for JoinSet<T>
where
    F: Future<Output = T> + Send + 'static,
    T: Send + 'static,
{
    fn from_iter<I: IntoIterator<Item = F>>(iter: I) -> JoinSet<T> {
        let mut set = JoinSet::new();
        set.extend(iter);
        set
    }
}

/// Spawns each future on the current runtime.
///
/// # Panics
/// Outside a runtime, like [`spawn`](crate::spawn).
impl<T, F> Extend<F> for JoinSet<T>
where
    F: Future<Output = T> + Send + 'static,
    T: Send + 'static,
{
    fn extend<I: IntoIterator<Item = F>>(&mut self, iter: I) {
        for future in iter {
            self.spawn(future);
        }
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;
    use crate::runtime::Builder as RuntimeBuilder;
    use std::time::{Duration, Instant};

    /// Pending until opened.
    #[derive(Clone, Default)]
    struct Gate(Arc<Mutex<(bool, Option<Waker>)>>);

    impl Gate {
        fn open(&self) {
            let waker = {
                let mut state = self.0.lock().unwrap();
                state.0 = true;
                state.1.take()
            };
            if let Some(waker) = waker {
                waker.wake();
            }
        }

        async fn wait(self) {
            poll_fn(|cx| {
                let mut state = self.0.lock().unwrap();
                if state.0 {
                    return Poll::Ready(());
                }
                state.1 = Some(cx.waker().clone());
                Poll::Pending
            })
            .await
        }
    }

    fn join_one(set: &mut JoinSet<usize>) -> usize {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if let Some(res) = set.try_join_next() {
                return res.unwrap();
            }
            assert!(Instant::now() < deadline, "no task completed within 10 s");
            std::thread::sleep(Duration::from_millis(1));
        }
    }

    #[test]
    fn a_completion_polls_only_the_completed_task() {
        let rt = RuntimeBuilder::new().worker_threads(2).build().unwrap();
        let n = if cfg!(miri) { 50 } else { 1000 };
        let gates: Vec<Gate> = (0..n).map(|_| Gate::default()).collect();
        let mut set = JoinSet::new();
        for (i, gate) in gates.iter().enumerate() {
            let gate = gate.clone();
            set.spawn_on(
                async move {
                    gate.wait().await;
                    i
                },
                rt.handle(),
            );
        }
        // The first look polls each task once, to register its waker.
        assert!(set.try_join_next().is_none());
        assert_eq!(set.polls, n);
        assert!(set.try_join_next().is_none());
        assert_eq!(set.polls, n, "nothing woke: nothing polled");
        gates[n / 2].open();
        assert_eq!(join_one(&mut set), n / 2);
        assert_eq!(set.polls, n + 1);
        for (k, i) in (0..10).map(|k| (k, k * 3)) {
            gates[i].open();
            assert_eq!(join_one(&mut set), i);
            assert_eq!(set.polls, n + 2 + k);
        }
        assert_eq!(set.len(), n - 11);
    }
}
