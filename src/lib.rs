//! memkit-async: an async runtime with a built-in allocator.
//!
//! Tasks run on a work-stealing executor whose task headers carry an inline pointer to the
//! task's arena, so memory allocated inside a task stays valid and contiguous across `.await`
//! even when the task moves between worker threads.
//!
//! Replace `#[tokio::main]` with `#[memkit_async::main]`:
//!
//! ```
//! #[memkit_async::main(worker_threads = 2)]
//! async fn main() {
//!     let handle = memkit_async::spawn(async { 6 * 7 });
//!     assert_eq!(handle.await.unwrap(), 42);
//! }
//! # main();
//! ```
#![warn(missing_docs)]

mod barrier;
mod byte_size;
mod pool;
mod semaphore;

pub use barrier::{MkAsyncBarrier, MkBarrierWait, MkBarrierWaitResult};
pub use byte_size::MkByteSize;
pub use pool::{MkAsyncPool, MkPoolAcquire, MkPoolBuilder, MkPoolError, MkPoolGuard};
pub use semaphore::{
    MkAsyncSemaphore, MkOwnedSemaphorePermit, MkSemaphoreAcquire, MkSemaphoreAcquireOwned,
    MkSemaphoreError, MkSemaphorePermit,
};

pub use memkit_async_macros::{main, test};
pub use memkit_async_runtime::memory::{
    MkAllocError, MkArena, MkAsyncBox, MkAsyncVec, MkBackpressure, MkBudget, MkBudgetGuard,
    MkEvictable,
};
pub use memkit_async_runtime::{
    memory, runtime, spawn, spawn_blocking, spawn_with_budget, task, Builder, Handle, JoinError,
    JoinHandle, Runtime,
};
