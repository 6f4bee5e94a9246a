//! The ready queue of a `LocalSet`: the one part of a set that other threads reach.
//!
//! A local task's waker is `Send + Sync` (a timer, a socket or a channel on another thread may
//! hold it), so waking it cannot touch the set's tasks, which live behind `Rc` and `RefCell` on
//! the set's thread. Waking pushes the task's id here, under a mutex, and wakes the waker of
//! whoever last polled the set; the set then polls the tasks whose ids it pops. A task's id is
//! queued at most once until it is polled (its `queued` flag), so the queue never holds more
//! ids than the set has tasks.
//!
//! No user code runs under the mutex: the set's waker is taken out, and woken or dropped
//! after the lock is released.

use super::super::Id;
use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, Ordering::SeqCst};
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Wake, Waker};

/// The ids of the tasks that were woken and the waker that drives the set.
pub(super) struct ReadyQueue {
    state: Mutex<State>,
}

struct State {
    ids: VecDeque<Id>,
    /// Woken (and taken) by the first wake after the set last found its queue empty.
    waker: Option<Waker>,
    /// The set is gone: wakes push nothing.
    closed: bool,
}

impl ReadyQueue {
    pub(super) fn new() -> Arc<ReadyQueue> {
        Arc::new(ReadyQueue {
            state: Mutex::new(State {
                ids: VecDeque::new(),
                waker: None,
                closed: false,
            }),
        })
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // No user code runs under this lock, so a poisoned one is still consistent.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The next woken task, oldest first.
    pub(super) fn pop(&self) -> Option<Id> {
        self.lock().ids.pop_front()
    }

    /// Queues ids again (tasks found running by a nested poll of the set), keeping their order.
    pub(super) fn push_back_all(&self, ids: Vec<Id>) {
        if ids.is_empty() {
            return;
        }
        let _engine = crate::heap::engine();
        let mut state = self.lock();
        if !state.closed {
            state.ids.extend(ids);
        }
    }

    /// Forgets the waker of the last poller, so that wakes during a poll of the set (which will
    /// look at the queue before it returns) do not wake its poller for nothing.
    pub(super) fn clear_waker(&self) {
        let old = self.lock().waker.take();
        drop(old);
    }

    /// Called by a poller of the set about to return `Pending`: `true` if ids are queued (the
    /// poller must wake itself and come back), else `waker` is kept for the next wake. Checked
    /// and stored under the lock the wakes take, so no wake is lost in between.
    pub(super) fn park(&self, waker: &Waker) -> bool {
        let old = {
            let mut state = self.lock();
            if !state.ids.is_empty() {
                return true;
            }
            match &state.waker {
                Some(w) if w.will_wake(waker) => None,
                _ => state.waker.replace(waker.clone()),
            }
        };
        drop(old);
        false
    }

    /// The set is being dropped: later wakes push nothing, and the poller's waker is let go.
    pub(super) fn close(&self) {
        let old = {
            let mut state = self.lock();
            state.closed = true;
            state.ids.clear();
            state.waker.take()
        };
        drop(old);
    }

    fn push(&self, id: Id) {
        let waker = {
            // The queue is the set's, not the memory of the task whose poll wakes the local
            // task (often a task on a worker).
            let _engine = crate::heap::engine();
            let mut state = self.lock();
            if state.closed {
                return;
            }
            state.ids.push_back(id);
            state.waker.take()
        };
        // Woken without the lock: the poller may poll the set at once, on any thread.
        if let Some(waker) = waker {
            crate::unwind::wake(waker);
        }
    }
}

/// The waker of one local task.
pub(super) struct TaskWaker {
    id: Id,
    queue: Arc<ReadyQueue>,
    /// On the ready queue; cleared just before the task is polled, so a wake during the poll
    /// queues it again.
    queued: AtomicBool,
}

impl TaskWaker {
    /// A waker for task `id`, already marked queued: the spawner queues the id itself.
    pub(super) fn new(id: Id, queue: Arc<ReadyQueue>) -> Arc<TaskWaker> {
        Arc::new(TaskWaker {
            id,
            queue,
            queued: AtomicBool::new(true),
        })
    }

    /// About to poll the task: wakes from now on queue it again.
    pub(super) fn clear_queued(&self) {
        self.queued.store(false, SeqCst);
    }

    /// Queues the task unless it is already queued.
    pub(super) fn schedule(&self) {
        if !self.queued.swap(true, SeqCst) {
            self.queue.push(self.id);
        }
    }

    /// Queues the task for its first poll (its flag is already set by `new`).
    pub(super) fn schedule_first(&self) {
        self.queue.push(self.id);
    }
}

impl Wake for TaskWaker {
    fn wake(self: Arc<Self>) {
        self.schedule();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        self.schedule();
    }
}
