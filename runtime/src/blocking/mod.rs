//! `spawn_blocking`: a separate, bounded, growing pool of threads for blocking work, so it
//! never stalls a worker.

mod pool;

pub(crate) use pool::{BlockingPool, PoolConfig};

use crate::runtime::Handle;
use crate::task_core::JoinHandle;

/// Runs the blocking closure `f` on the runtime's blocking pool and returns a handle to its
/// result.
///
/// The pool starts threads on demand up to
/// [`max_blocking_threads`](crate::runtime::Builder::max_blocking_threads); beyond that, work
/// queues until a thread is free. Idle threads exit after
/// [`thread_keep_alive`](crate::runtime::Builder::thread_keep_alive). A closure that has not
/// started when the runtime shuts down is dropped, and its handle resolves to a cancelled
/// [`JoinError`](crate::JoinError); one that has started is waited for (see
/// [`Runtime::shutdown_timeout`](crate::Runtime::shutdown_timeout) to bound that wait).
/// A blocking thread whose [`on_thread_start`](crate::runtime::Builder::on_thread_start) hook
/// panics runs no closure and exits; closures queued for it that no other thread will reach
/// resolve to a cancelled `JoinError` at once, and the next `spawn_blocking` tries a new thread.
///
/// # Panics
///
/// Outside a runtime (see [`spawn`](crate::spawn)).
///
/// ```
/// # let rt = memkit_async_runtime::Runtime::new().unwrap();
/// # rt.block_on(async {
/// let sum = memkit_async_runtime::spawn_blocking(|| (1..=10u64).sum::<u64>()).await.unwrap();
/// assert_eq!(sum, 55);
/// # });
/// ```
#[track_caller]
pub fn spawn_blocking<F, R>(f: F) -> JoinHandle<R>
where
    F: FnOnce() -> R + Send + 'static,
    R: Send + 'static,
{
    Handle::current().spawn_blocking(f)
}
