//! Memory: byte budgets with backpressure policies, the chunk pool, task arenas and the owned
//! handles that live in them.

mod arena;
mod boxed;
mod budget;
mod byte_size;
mod cache;
mod chunk;
mod chunk_pool;
mod error;
mod evict;
mod frame;
mod guard;
pub(crate) mod heap_waiters;
#[cfg(all(test, loom))]
mod loom_budget;
#[cfg(all(test, loom))]
mod loom_chunk;
mod owned;
mod policy;
pub(crate) mod runtime_memory;
mod scope;
mod shared_alloc;
pub(crate) mod task_budget;
mod vec;
mod wait;
mod wait_queue;

pub use boxed::{MkAsyncBox, NewBox};
pub use budget::MkBudget;
pub use byte_size::MkByteSize;
pub use cache::MkAsyncCache;
pub use error::MkAllocError;
pub use evict::MkEvictable;
pub use frame::{MkAsyncFrameAlloc, MkAsyncFrameConfig, MkAsyncFrameGuard};
pub use guard::MkBudgetGuard;
pub use owned::MkArena;
pub use policy::MkBackpressure;
pub use scope::MkArenaTask;
pub use vec::MkAsyncVec;
pub use wait::Acquire;

pub(crate) use arena::drop_task_arena;
pub(crate) use chunk_pool::ChunkPool;
pub(crate) use runtime_memory::RuntimeMemory;
pub(crate) use scope::current_budget as scope_budget;
pub use task_budget::TaskBudget;
