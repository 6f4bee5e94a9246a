//! Memory: byte budgets with backpressure policies, the chunk pool, task arenas and the owned
//! handles that live in them.

mod arena;
mod boxed;
mod budget;
mod chunk;
mod chunk_pool;
mod error;
mod evict;
mod owned;
mod policy;
mod vec;
mod wait;

pub use boxed::{MkAsyncBox, NewBox};
pub use budget::{MkBudget, MkBudgetGuard};
pub use error::MkAllocError;
pub use evict::MkEvictable;
pub use owned::MkArena;
pub use policy::MkBackpressure;
pub use vec::MkAsyncVec;
pub use wait::Acquire;

pub(crate) use arena::drop_task_arena;
pub(crate) use chunk_pool::ChunkPool;
