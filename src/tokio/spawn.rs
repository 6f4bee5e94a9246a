//! Spawning tokio tasks that carry a memkit task arena and budget.

use memkit_async_runtime::memory::MkArenaTask;
use memkit_async_runtime::task::TaskBudget;
use std::future::Future;

/// Wraps `future` so that it runs with its own memkit task arena and `budget`, on whatever
/// executor polls it; see [`MkArenaTask`].
///
/// `budget` is bytes (a child budget of the current one: an enclosing wrapped task's or memkit
/// task's, or the current memkit runtime's root; else a new root budget with the `Wait`
/// policy) or an existing [`MkBudget`](crate::MkBudget), shared with whoever else holds it.
///
/// ```
/// use memkit_async::{MkAsyncVec, MkBudget};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// let len = memkit_async::tokio::with_budget(64 << 10, async {
///     let mut v = MkAsyncVec::new();
///     for i in 0..100u32 {
///         v.push(i).await.unwrap();
///     }
///     assert_eq!(MkBudget::current().unwrap().limit(), 64 << 10);
///     v.len()
/// })
/// .await;
/// assert_eq!(len, 100);
/// # }
/// # main();
/// ```
pub fn with_budget<F: Future>(budget: impl Into<TaskBudget>, future: F) -> MkArenaTask<F> {
    MkArenaTask::new(budget, future)
}

/// Spawns `future` on the current tokio runtime as a task with its own memkit task arena and
/// `budget` (see [`with_budget`] for what `budget` may be). Inside it, `MkAsyncBox`,
/// `MkAsyncVec` and `MkBudget::current()` work as in a memkit task, under the budget's policy.
///
/// # Panics
///
/// Outside a tokio runtime, like `tokio::spawn`.
///
/// ```
/// use memkit_async::{MkAllocError, MkAsyncBox, MkBackpressure, MkBudget};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// let budget = MkBudget::new(4096).with_policy(MkBackpressure::Fail);
/// let res = memkit_async::tokio::spawn_with_budget(&budget, async {
///     let _held = MkAsyncBox::new([0u8; 4000]).await.unwrap(); // one 4 KiB chunk
///     MkAsyncBox::new([0u8; 200]).await.map(|_| ()) // needs a second chunk
/// })
/// .await
/// .unwrap();
/// assert_eq!(
///     res,
///     Err(MkAllocError::CapacityReached { requested: 4096, limit: 4096, used: 4096 })
/// );
/// # }
/// # main();
/// ```
#[track_caller]
pub fn spawn_with_budget<F>(
    budget: impl Into<TaskBudget>,
    future: F,
) -> ::tokio::task::JoinHandle<F::Output>
where
    F: Future + Send + 'static,
    F::Output: Send + 'static,
{
    ::tokio::spawn(MkArenaTask::new(budget, future))
}
