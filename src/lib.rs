#![doc = include_str!("../README.md")]

mod barrier;
mod channel;
#[cfg(feature = "hyper")]
pub mod http;
mod pool;
mod semaphore;
mod task_local;
#[cfg(feature = "tokio")]
pub mod tokio;

pub use barrier::{MkAsyncBarrier, MkBarrierWait, MkBarrierWaitResult};
pub use channel::{
    MkAsyncChannel, MkAsyncReceiver, MkAsyncSender, MkSendError, MkSendPermit, MkSendPermits,
    MkTryRecvError, MkTrySendError, MkWeakSender,
};
pub use pool::{MkAsyncPool, MkPoolAcquire, MkPoolBuilder, MkPoolError, MkPoolGuard};
pub use semaphore::{
    MkAsyncSemaphore, MkOwnedSemaphorePermit, MkSemaphoreAcquire, MkSemaphoreAcquireOwned,
    MkSemaphoreError, MkSemaphorePermit,
};
pub use task_local::{MkTaskLocal, MkTaskLocalError, MkTaskLocalFuture};

pub use memkit_async_macros::{main, test};
pub use memkit_async_runtime::heap::MkGlobalAlloc;
pub use memkit_async_runtime::memory::{
    MkAllocError, MkArena, MkArenaTask, MkAsyncBox, MkAsyncCache, MkAsyncFrameAlloc,
    MkAsyncFrameConfig, MkAsyncFrameGuard, MkAsyncVec, MkBackpressure, MkBudget, MkBudgetGuard,
    MkByteSize, MkEvictable,
};
#[cfg(all(feature = "signal", unix))]
pub use memkit_async_runtime::signal;
pub use memkit_async_runtime::{
    heap, io, memory, net, runtime, spawn, spawn_blocking, spawn_with_budget, task, time, Builder,
    Handle, JoinError, JoinHandle, Runtime,
};
