//! `MkBudgetGuard`: bytes held from a budget.
//!
//! Unsafe code: a guard that also counts its bytes on a task's account (`count_on_task`)
//! credits them there when it drops; those bytes keep the account alive until then
//! (heap/account.rs).

use super::MkBudget;
use crate::heap::Account;
use std::fmt;
use std::ptr::NonNull;

/// Bytes held from a budget; dropping the guard releases them (and serves waiting requests).
///
/// `mem::forget` of a guard leaks its bytes from the budget (they stay counted as used); it
/// never causes undefined behaviour.
#[must_use = "dropping the guard releases the bytes at once"]
pub struct MkBudgetGuard {
    budget: MkBudget,
    bytes: usize,
    /// A task account the bytes are also counted on (a task arena's chunks), for per-task
    /// figures; the budget chain is charged once, through `budget`.
    task: Option<NonNull<Account>>,
}

// SAFETY: the task account pointer is only used to credit it, which is thread-safe; the rest
// is `Send + Sync`.
unsafe impl Send for MkBudgetGuard {}
// SAFETY: as above; `&self` never touches the account.
unsafe impl Sync for MkBudgetGuard {}

impl MkBudgetGuard {
    /// Holds `bytes` already charged to `budget`.
    pub(super) fn new(budget: MkBudget, bytes: usize) -> MkBudgetGuard {
        MkBudgetGuard {
            budget,
            bytes,
            task: None,
        }
    }

    /// Bytes held.
    pub fn bytes(&self) -> usize {
        self.bytes
    }

    /// The budget the bytes are charged to.
    pub fn budget(&self) -> &MkBudget {
        &self.budget
    }

    /// Moves `bytes` of this guard's bytes into a new guard on the same budget: nothing is
    /// charged or released, and each guard releases its own share when it drops.
    ///
    /// ```
    /// use memkit_async_runtime::memory::MkBudget;
    ///
    /// let budget = MkBudget::new(100);
    /// let mut whole = budget.try_acquire(60).unwrap();
    /// let part = whole.split(20);
    /// assert_eq!((whole.bytes(), part.bytes(), budget.used()), (40, 20, 60));
    /// drop(whole);
    /// assert_eq!(budget.used(), 20);
    /// ```
    ///
    /// # Panics
    /// If `bytes` is more than the guard holds.
    #[track_caller]
    pub fn split(&mut self, bytes: usize) -> MkBudgetGuard {
        assert!(
            bytes <= self.bytes,
            "`MkBudgetGuard::split({bytes})` on a guard holding {} bytes: split at most what \
             the guard holds",
            self.bytes
        );
        self.bytes -= bytes;
        // The task account stays alive while any bytes are counted on it: each part credits
        // its own share, and a part left with no bytes no longer refers to it.
        let task = if bytes > 0 { self.task } else { None };
        if self.bytes == 0 {
            self.task = None;
        }
        MkBudgetGuard {
            budget: self.budget.clone(),
            bytes,
            task,
        }
    }

    /// Counts the bytes on `task` too (at its level only) until the guard drops.
    ///
    /// # Safety
    /// `task` is alive now (its owner holds it).
    pub(crate) unsafe fn count_on_task(&mut self, task: NonNull<Account>) {
        if self.task.is_none() && self.bytes > 0 {
            // SAFETY: caller contract; the bytes now keep the account alive until credited.
            unsafe { Account::apply(task, self.bytes as i64, None) };
            self.task = Some(task);
        }
    }
}

impl Drop for MkBudgetGuard {
    fn drop(&mut self) {
        if self.bytes > 0 {
            self.budget.release(self.bytes);
        }
        if let Some(task) = self.task.take() {
            // SAFETY: counted in `count_on_task`, which these bytes kept alive.
            unsafe { Account::apply(task, -(self.bytes as i64), None) };
        }
    }
}

impl fmt::Debug for MkBudgetGuard {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MkBudgetGuard")
            .field("bytes", &self.bytes)
            .finish_non_exhaustive()
    }
}
