//! Memory: byte budgets with backpressure policies, the arenas they pay for, and the owned
//! handles that live in them.
//!
//! Two halves:
//! - the allocator, which the runtime is built on: `budget/` (`MkBudget`, its wait queues, its
//!   policies, `Evict`) and `arena/` (chunks, the chunk pool, bump arenas, the current task's
//!   arena); plus `RuntimeMemory`, the memory state of one runtime;
//! - the containers users hold (`containers/`): boxes, vectors, owned arenas, `MkArenaTask`,
//!   frames and the cache, which allocate only through the allocator's types.
//!
//! Every public type is re-exported here; the submodules are the engine's layout, not API.

pub(crate) mod arena;
pub(crate) mod budget;
mod containers;
mod error;
pub(crate) mod runtime_memory;

pub use budget::{Acquire, MkBackpressure, MkBudget, MkBudgetGuard, MkEvictable, TaskBudget};
pub use containers::{
    MkArena, MkArenaTask, MkAsyncBox, MkAsyncCache, MkAsyncFrameAlloc, MkAsyncFrameConfig,
    MkAsyncFrameGuard, MkAsyncVec, MkByteSize, NewBox,
};
pub use error::MkAllocError;

pub(crate) use arena::{drop_task_arena, scope_budget};
pub(crate) use budget::heap_waiters;
pub(crate) use runtime_memory::RuntimeMemory;
