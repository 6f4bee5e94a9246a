//! Tasks held back for memory: not started while a `Wait` or `Timeout` budget on their chain is
//! at its limit (admission), or parked after a poll that grew them past it. A held task is in
//! no run queue and costs no CPU; this queue keeps its `Notified` reference, one FIFO per
//! budget that holds tasks back.
//!
//! A held task is released, oldest first, when:
//! - it has started and no `Wait`/`Timeout` budget on its chain is over its limit (it holds
//!   memory, and running it is how that memory comes back);
//! - it has not started, no started task is held on the same budget (those hold memory: the
//!   room is theirs first), and every such budget is under its resume mark, 1/16 below its
//!   limit; one per look, so tasks do not start and stop at every byte released;
//! - every live task charged under the holding budget is held (nothing left that could release
//!   memory): the oldest that has started runs one poll regardless (the oldest not started if
//!   none has), so memory pressure alone never deadlocks;
//! - the budget's memory has not gone down and none of its held tasks was released for
//!   `STUCK`: the same task runs one poll. Live tasks that are not held may be waiting on a
//!   held one (a parent awaiting a child not yet admitted, a receiver whose sender is parked),
//!   a dependency the scheduler cannot see; without this a program could wait forever. The
//!   budget then goes over its limit by what that one poll allocates, and the stall report
//!   shows it;
//! - its `Timeout` ran out (it is then cancelled with a memory-exceeded error), or it was
//!   aborted.
//!
//! Workers look at the queue after polls and before sleeping, and a sleeping worker wakes at
//! least every `RECHECK` while tasks are held, since memory freed by threads outside the
//! runtime reaches no worker.
//!
//! A task held longer than the stall threshold (1 s by default) is reported once: a counter
//! in the metrics and a `tracing` warning naming it, its budget and the budget's bytes.

use crate::memory::{MkBackpressure, MkBudget};
use crate::sync::{lock_std, AtomicU64, AtomicUsize, Ordering::Relaxed, Ordering::SeqCst};
use crate::task_core::{memory as task_memory, Notified};
use std::collections::VecDeque;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// How often a sleeping worker wakes to look at held tasks.
pub(crate) const RECHECK: Duration = Duration::from_millis(10);
/// How long a budget may hold tasks with no memory coming back and no task released before
/// the oldest held task runs one poll regardless.
pub(crate) const STUCK: Duration = Duration::from_millis(100);

struct Entry {
    task: Notified,
    /// The budget the task is charged to (its held count is on this chain).
    charged: MkBudget,
    since: Instant,
    reported: bool,
}

struct Queue {
    /// The budget over its limit that holds these tasks.
    budget: MkBudget,
    entries: VecDeque<Entry>,
    /// When the budget last made progress (memory came back, or a task was released).
    progress_at: Instant,
    /// The budget's lowest `used` since `progress_at`.
    low_used: usize,
}

pub(crate) struct Held {
    queues: Mutex<Vec<Queue>>,
    len: AtomicUsize,
    stalls: AtomicU64,
    stall_after: Duration,
}

/// What to do with a released entry.
enum Release {
    /// Its budget has room (or it was aborted): poll it, after checking again.
    Run,
    /// Nothing else under its budget can release memory: poll it once regardless.
    Pass,
    /// Its `Timeout` ran out.
    TimedOut,
}

impl Held {
    pub(crate) fn new(stall_after: Duration) -> Held {
        Held {
            queues: Mutex::new(Vec::new()),
            len: AtomicUsize::new(0),
            stalls: AtomicU64::new(0),
            stall_after,
        }
    }

    /// Tasks held now.
    pub(crate) fn len(&self) -> usize {
        self.len.load(SeqCst)
    }

    /// Held tasks reported as stalled so far.
    pub(crate) fn stalls(&self) -> u64 {
        self.stalls.load(Relaxed)
    }

    /// Holds `task` (charged to `charged`) because `budget` is over its limit; `true` if no
    /// task was held before (sleeping workers do not look at the queue yet).
    pub(crate) fn hold(&self, task: Notified, charged: MkBudget, budget: MkBudget) -> bool {
        charged.count_held(1);
        let now = Instant::now();
        let entry = Entry {
            task,
            charged,
            since: now,
            reported: false,
        };
        let mut queues = lock_std(&self.queues);
        match queues.iter_mut().find(|q| q.budget.same(&budget)) {
            Some(q) => q.entries.push_back(entry),
            None => queues.push(Queue {
                low_used: budget.used(),
                budget,
                entries: VecDeque::from([entry]),
                progress_at: now,
            }),
        }
        self.len.fetch_add(1, SeqCst) == 0
    }

    /// Releases what can run now; `run` schedules each released task (called with no lock
    /// held).
    pub(crate) fn serve(&self, mut run: impl FnMut(Notified)) {
        if self.len() == 0 {
            return;
        }
        let mut released = Vec::new();
        let mut stalled = Vec::new();
        {
            let mut queues = lock_std(&self.queues);
            let now = Instant::now();
            for q in queues.iter_mut() {
                Held::serve_queue(q, now, self.stall_after, &mut released, &mut stalled);
            }
            queues.retain(|q| !q.entries.is_empty());
        }
        self.len.fetch_sub(released.len(), SeqCst);
        if !released.is_empty() {
            // Memory came back under pressure: have the system allocator return what it keeps
            // of it, so the process's resident memory follows the budget.
            crate::heap::release_retained();
        }
        for (budget, id, name, waited) in stalled {
            self.stalls.fetch_add(1, Relaxed);
            report_stall(&budget, id, name.as_deref(), waited);
        }
        for (entry, how) in released {
            entry.charged.count_held(-1);
            let header = entry.task.header();
            if let Some(memory) = header.memory() {
                match how {
                    Release::Run => {}
                    Release::Pass => memory.hold.store(task_memory::PASS, SeqCst),
                    Release::TimedOut => memory.hold.store(task_memory::TIMED_OUT, SeqCst),
                }
            }
            run(entry.task);
        }
    }

    fn serve_queue(
        q: &mut Queue,
        now: Instant,
        stall_after: Duration,
        released: &mut Vec<(Entry, Release)>,
        stalled: &mut Vec<(
            MkBudget,
            crate::task_core::Id,
            Option<std::sync::Arc<str>>,
            Duration,
        )>,
    ) {
        let timeout = match q.budget.policy() {
            MkBackpressure::Timeout(d) => Some(d),
            _ => None,
        };
        // Timed out or aborted: out of line, wherever they are.
        let mut i = 0;
        while i < q.entries.len() {
            let entry = &q.entries[i];
            let timed_out = timeout.is_some_and(|d| held_for(entry, now) >= d);
            let cancelled = entry.task.header().state.load().is_cancelled();
            if timed_out || cancelled {
                let entry = q.entries.remove(i).expect("index in range");
                let how = if cancelled {
                    Release::Run
                } else {
                    Release::TimedOut
                };
                released.push((entry, how));
            } else {
                i += 1;
            }
        }
        // Tasks that started (they hold memory, and may free it when they run) go as soon as
        // no budget on their chain is over its limit, in order; one task that has not started
        // goes per look while the chain is under its resume mark (it is checked again as it
        // starts, so a burst of releases cannot overshoot).
        let before = released.len();
        let mut i = 0;
        while i < q.entries.len() {
            let entry = &q.entries[i];
            if started(entry) && entry.charged.waiting_budget_over_limit().is_none() {
                let entry = q.entries.remove(i).expect("index in range");
                released.push((entry, Release::Run));
            } else {
                i += 1;
            }
        }
        // New tasks wait while started ones are held: the room is theirs first.
        if !q.entries.iter().any(started) {
            if let Some(head) = q.entries.front() {
                if head.charged.has_room_to_start() {
                    let entry = q.entries.pop_front().expect("non-empty");
                    released.push((entry, Release::Run));
                }
            }
        }
        // Nothing under the budget can release memory any more (every task held), or nothing
        // has for `STUCK`: the oldest task that has started runs one poll (it may finish and
        // free what it holds; starting a new task could only take more), else the oldest not
        // started.
        let used = q.budget.used();
        if released.len() > before || used < q.low_used {
            q.progress_at = now;
            q.low_used = used;
        }
        let stuck = now.saturating_duration_since(q.progress_at) >= STUCK;
        let none_released = released.len() == before;
        if none_released
            && !q.entries.is_empty()
            && (q.budget.tasks() <= q.budget.parked() || stuck)
        {
            q.progress_at = now;
            q.low_used = used;
            let first_started = q.entries.iter().position(started);
            let entry = q
                .entries
                .remove(first_started.unwrap_or(0))
                .expect("non-empty");
            released.push((entry, Release::Pass));
        }
        for entry in q.entries.iter_mut() {
            let waited = now.saturating_duration_since(entry.since);
            if waited < stall_after {
                break;
            }
            if !entry.reported {
                entry.reported = true;
                let header = entry.task.header();
                let name = header.memory().and_then(|m| m.name.clone());
                stalled.push((q.budget.clone(), header.id, name, waited));
            }
        }
    }

    /// Drops every held reference (runtime shutdown: the tasks are cancelled through the
    /// owned-task list).
    pub(crate) fn drain(&self) {
        let queues = std::mem::take(&mut *lock_std(&self.queues));
        for q in queues {
            for entry in q.entries {
                entry.charged.count_held(-1);
                self.len.fetch_sub(1, SeqCst);
                drop(entry.task);
            }
        }
    }
}

fn started(entry: &Entry) -> bool {
    entry.task.header().memory().is_some_and(|m| m.started())
}

/// How long `entry`'s task has been held, counting from its first hold (`Timeout` counts
/// from there, across releases that found the budget still full).
fn held_for(entry: &Entry, now: Instant) -> Duration {
    let first = entry
        .task
        .header()
        .memory()
        .and_then(|m| *lock_std(&m.held_since))
        .unwrap_or(entry.since);
    now.saturating_duration_since(first)
}

fn report_stall(budget: &MkBudget, id: crate::task_core::Id, name: Option<&str>, waited: Duration) {
    #[cfg(feature = "tracing")]
    tracing::warn!(
        task.id = %id,
        task.name = name.unwrap_or(""),
        budget.used = budget.used(),
        budget.limit = budget.limit(),
        waited_ms = waited.as_millis() as u64,
        "task held back for memory: its budget is at its limit and nothing has been released \
         for a while; raise the limit, lower the load, or release memory sooner"
    );
    #[cfg(not(feature = "tracing"))]
    let _ = (budget, id, name, waited);
}
