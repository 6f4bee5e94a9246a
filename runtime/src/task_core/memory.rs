//! `TaskMemory`: what a task's memory is charged to and how the scheduler treats it: its
//! budget, its heap account (with `MkGlobalAlloc` installed), its name, its poll count, and
//! whether it is held back for memory.
//!
//! It is made at spawn only for tasks that need it (a budget of their own, a name, or heap
//! accounting), so a plain spawn without `MkGlobalAlloc` pays nothing; the header keeps a
//! pointer to it, set before the task is first scheduled and read-only after, and frees it with
//! the task.

use super::{Id, JoinError};
use crate::heap::{Account, AccountRef, Scope};
use crate::memory::{MkBackpressure, MkBudget};
use crate::sync::Ordering::Relaxed;
use std::ptr::NonNull;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicU8};
use std::sync::Arc;
use std::time::Instant;

/// Not held back.
pub(crate) const RUN: u8 = 0;
/// Its last poll grew it while a budget on its chain was over its limit: check before the next.
pub(crate) const GREW: u8 = 1;
/// Held too long under `Timeout`: cancel it instead of polling it.
pub(crate) const TIMED_OUT: u8 = 2;
/// Released because nothing else under its budget could free memory: poll it once regardless.
pub(crate) const PASS: u8 = 3;

/// What to do with a task about to be polled.
pub(crate) enum Gate {
    Poll,
    /// Hold it back: this budget (under `Wait` or `Timeout`) is over its limit.
    Hold(MkBudget),
    Cancel(JoinError),
}

pub(crate) struct TaskMemory {
    /// The task's own budget; `None` charges it to its runtime's root.
    pub(crate) budget: Option<MkBudget>,
    /// The task's heap account (a child of its budget's), with `MkGlobalAlloc` installed.
    pub(crate) account: Option<AccountRef>,
    pub(crate) name: Option<Arc<str>>,
    /// Polls so far (written by the poller, read by metrics).
    pub(crate) polls: AtomicU64,
    /// `RUN`, `GREW` or `TIMED_OUT`.
    pub(crate) hold: AtomicU8,
    /// The budget the task is charged to (its own or its runtime's), whose chain counts it as
    /// alive until `alive` is cleared; with heap accounting only.
    pub(crate) charged: Option<MkBudget>,
    alive: AtomicBool,
    /// When `GREW` was first set without being cleared (for `Timeout`).
    pub(crate) held_since: std::sync::Mutex<Option<Instant>>,
}

impl TaskMemory {
    /// The record for a new task: `budget` (its own, if any), `root` (its runtime's budget,
    /// charged when it has none) and `name`. Counts the task alive on every budget of its chain
    /// and opens its heap account when `MkGlobalAlloc` is installed.
    pub(crate) fn new(
        budget: Option<MkBudget>,
        root: &MkBudget,
        name: Option<Arc<str>>,
    ) -> TaskMemory {
        let accounting = crate::heap::installed();
        let charged = budget.as_ref().unwrap_or(root);
        let account = accounting.then(|| Account::create(Some(charged.account()), 0));
        let charged_to = accounting.then(|| {
            charged.count_task(1);
            charged.clone()
        });
        TaskMemory {
            budget,
            account,
            name,
            polls: AtomicU64::new(0),
            hold: AtomicU8::new(RUN),
            alive: AtomicBool::new(charged_to.is_some()),
            charged: charged_to,
            held_since: std::sync::Mutex::new(None),
        }
    }

    /// Whether a task with this budget and name needs a record at all.
    pub(crate) fn needed(budget: &Option<MkBudget>, name: &Option<Arc<str>>) -> bool {
        budget.is_some() || name.is_some() || crate::heap::installed()
    }

    /// Makes the task's heap account the one this thread's allocations go to, until the scope
    /// ends; `None` without heap accounting.
    pub(crate) fn enter_heap(&self) -> Option<Scope> {
        let account = self.account.as_ref()?;
        // SAFETY: the record holds the account until the task is freed, after every scope.
        Some(unsafe { Scope::enter(account.as_ptr()) })
    }

    /// The account a task arena's chunks are also charged to, for per-task figures.
    pub(crate) fn account_ptr(&self) -> Option<NonNull<Account>> {
        self.account.as_ref().map(AccountRef::as_ptr)
    }

    /// Bytes charged to the task now (heap and arena chunks), and its peak.
    pub(crate) fn bytes(&self) -> (usize, usize) {
        self.account.as_ref().map_or((0, 0), |a| {
            let account = a.account();
            (account.live().max(0) as usize, account.peak() as usize)
        })
    }

    /// Whether the task has been polled (a held task that has not is held at admission).
    pub(crate) fn started(&self) -> bool {
        self.polls.load(Relaxed) > 0
    }

    pub(crate) fn count_poll(&self) {
        self.polls.store(self.polls.load(Relaxed) + 1, Relaxed);
    }

    /// The task completed: it no longer counts as alive on its budgets.
    pub(crate) fn finished(&self) {
        if self.alive.swap(false, Relaxed) {
            if let Some(budget) = &self.charged {
                budget.count_task(-1);
            }
        }
    }
}

impl TaskMemory {
    /// Before a poll: hold a task that has not started while a `Wait`/`Timeout` budget on its
    /// chain is at its limit, or one that grew last time while such a budget is over it;
    /// cancel one whose `Timeout` ran out.
    pub(crate) fn gate(&self, id: Id) -> Gate {
        let Some(charged) = &self.charged else {
            return Gate::Poll;
        };
        let hold = self.hold.load(Relaxed);
        let first = self.polls.load(Relaxed) == 0;
        match hold {
            TIMED_OUT => {
                let (used, limit, policy) = charged
                    .over_limit_on_chain()
                    .map_or((charged.used(), charged.limit(), "Timeout"), |b| {
                        (b.used(), b.limit(), policy_name(b.policy()))
                    });
                return Gate::Cancel(JoinError::memory_exceeded(
                    id,
                    self.name.clone(),
                    used,
                    limit,
                    policy,
                ));
            }
            PASS => {
                self.hold.store(RUN, Relaxed);
                return Gate::Poll;
            }
            GREW => {}
            _ if first => {}
            _ => return Gate::Poll,
        }
        let blocking = if hold == GREW {
            charged.waiting_budget_over_limit()
        } else {
            charged.waiting_budget_at_limit()
        };
        match blocking {
            Some(budget) => {
                let mut since = crate::sync::lock_std(&self.held_since);
                since.get_or_insert_with(Instant::now);
                Gate::Hold(budget)
            }
            None => {
                self.hold.store(RUN, Relaxed);
                *crate::sync::lock_std(&self.held_since) = None;
                Gate::Poll
            }
        }
    }

    /// After a poll that grew the task by `grew` bytes: apply the policy of the lowest budget
    /// on its chain that is over its limit. `Fail` (and `Evict` with nothing left to evict)
    /// cancels the task; `Wait` and `Timeout` hold it before its next poll.
    pub(crate) fn after_growth(&self, id: Id) -> Option<JoinError> {
        let charged = self.charged.as_ref()?;
        let over = charged.over_limit_on_chain()?;
        let policy = over.policy();
        match policy {
            MkBackpressure::Wait | MkBackpressure::Timeout(_) => {
                self.hold.store(GREW, Relaxed);
                None
            }
            MkBackpressure::Evict if over.evict_to_limit(charged) => None,
            MkBackpressure::Fail | MkBackpressure::Evict => Some(JoinError::memory_exceeded(
                id,
                self.name.clone(),
                over.used(),
                over.limit(),
                policy_name(policy),
            )),
        }
    }
}

fn policy_name(policy: MkBackpressure) -> &'static str {
    match policy {
        MkBackpressure::Wait => "Wait",
        MkBackpressure::Fail => "Fail",
        MkBackpressure::Timeout(_) => "Timeout",
        MkBackpressure::Evict => "Evict",
    }
}

impl Drop for TaskMemory {
    fn drop(&mut self) {
        self.finished();
    }
}
