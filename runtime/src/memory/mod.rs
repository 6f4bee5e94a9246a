//! Memory: byte budgets with backpressure policies.

mod budget;
mod error;
mod evict;
mod policy;
mod wait;

pub use budget::{MkBudget, MkBudgetGuard};
pub use error::MkAllocError;
pub use evict::MkEvictable;
pub use policy::MkBackpressure;
pub use wait::Acquire;
