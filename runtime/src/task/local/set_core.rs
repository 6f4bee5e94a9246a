//! The tasks of one `LocalSet`, and how one poll of the set runs them.

use super::queue::{ReadyQueue, TaskWaker};
use super::task::{Outcome, Run, TaskCell};
use super::LocalJoinHandle;
use crate::task_core::Id;
use std::cell::RefCell;
use std::collections::BTreeMap;
use std::future::Future;
use std::rc::Rc;
use std::sync::Arc;

/// Local tasks polled at most per poll of the set: past it the set wakes its poller and
/// returns `Pending`, so a task that is always ready cannot keep the thread (and the other
/// tasks of the worker it runs on, its timers and its I/O) waiting.
pub(super) const MAX_POLLS_PER_TICK: usize = 61;

/// The state of a set, behind the `Rc` that its `LocalSet` and the thread's current-set slot
/// share. The `tasks` map is borrowed only for a lookup, an insert or a removal, never while
/// user code runs, so tasks may spawn, abort and drop handles from anywhere, even from a
/// future's `Drop`.
pub(super) struct Core {
    pub(super) queue: Arc<ReadyQueue>,
    /// Keyed by id, so in spawn order.
    tasks: RefCell<BTreeMap<Id, Rc<dyn Run>>>,
}

impl Core {
    pub(super) fn new() -> Core {
        Core {
            queue: ReadyQueue::new(),
            tasks: RefCell::new(BTreeMap::new()),
        }
    }

    /// Adds a task, queued behind the tasks woken so far.
    pub(super) fn spawn<F>(&self, future: F) -> LocalJoinHandle<F::Output>
    where
        F: Future + 'static,
        F::Output: 'static,
    {
        let id = Id::next();
        let notify = TaskWaker::new(id, self.queue.clone());
        let cell = Rc::new(TaskCell::new(id, notify.clone(), future));
        self.tasks.borrow_mut().insert(id, cell.clone());
        notify.schedule_first();
        LocalJoinHandle::new(cell)
    }

    /// Tasks not yet finished.
    pub(super) fn len(&self) -> usize {
        self.tasks.borrow().len()
    }

    /// Polls the woken tasks in the order they were woken, at most `MAX_POLLS_PER_TICK`.
    pub(super) fn tick(&self) {
        // Tasks being polled further up the stack (a nested poll of the set): queued again
        // after this tick, so their wake-ups are not lost.
        let mut busy = Vec::new();
        for _ in 0..MAX_POLLS_PER_TICK {
            let Some(id) = self.queue.pop() else { break };
            let task = self.tasks.borrow().get(&id).cloned();
            // A wake-up that came after its task finished.
            let Some(task) = task else { continue };
            match task.run() {
                Outcome::Pending => {}
                Outcome::Busy => busy.push(id),
                Outcome::Finished => {
                    let removed = self.tasks.borrow_mut().remove(&id);
                    drop(removed);
                }
            }
        }
        self.queue.push_back_all(busy);
    }

    /// Drops every task's future, in spawn order, and reports each task cancelled; tasks
    /// spawned meanwhile (by a future's `Drop`) are dropped too.
    pub(super) fn shut_down(&self) {
        self.queue.close();
        loop {
            let tasks = std::mem::take(&mut *self.tasks.borrow_mut());
            if tasks.is_empty() {
                return;
            }
            for (_, task) in tasks {
                // A task being polled up the stack cannot be dropped here: it finishes its
                // poll and is delivered by whoever polls it.
                task.cancel();
            }
        }
    }
}
