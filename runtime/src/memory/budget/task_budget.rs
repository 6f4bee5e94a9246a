//! `TaskBudget`: how a task or an `MkArenaTask` is given its budget.

use super::MkBudget;

/// A task's budget: a byte limit (a child of the spawner's budget) or an existing budget.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub enum TaskBudget {
    /// A new child budget of this many bytes under the spawner's budget.
    Bytes(usize),
    /// This budget, shared with whoever else holds it.
    Budget(MkBudget),
}

impl From<usize> for TaskBudget {
    fn from(bytes: usize) -> TaskBudget {
        TaskBudget::Bytes(bytes)
    }
}

impl From<MkBudget> for TaskBudget {
    fn from(budget: MkBudget) -> TaskBudget {
        TaskBudget::Budget(budget)
    }
}

impl From<&MkBudget> for TaskBudget {
    fn from(budget: &MkBudget) -> TaskBudget {
        TaskBudget::Budget(budget.clone())
    }
}
