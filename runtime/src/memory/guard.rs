//! `MkBudgetGuard`: bytes held from a budget.

use super::budget::MkBudget;
use std::fmt;

/// Bytes held from a budget; dropping the guard releases them (and serves waiting requests).
///
/// `mem::forget` of a guard leaks its bytes from the budget (they stay counted as used); it
/// never causes undefined behaviour.
#[must_use = "dropping the guard releases the bytes at once"]
pub struct MkBudgetGuard {
    pub(super) budget: MkBudget,
    pub(super) bytes: usize,
}

impl MkBudgetGuard {
    /// Bytes held.
    pub fn bytes(&self) -> usize {
        self.bytes
    }

    /// The budget the bytes are charged to.
    pub fn budget(&self) -> &MkBudget {
        &self.budget
    }
}

impl Drop for MkBudgetGuard {
    fn drop(&mut self) {
        if self.bytes > 0 {
            self.budget.release(self.bytes);
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
