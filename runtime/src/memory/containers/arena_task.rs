//! `MkArenaTask`: a future that carries its own task arena and budget, so arena allocation
//! (`MkAsyncBox`, `MkAsyncVec`), [`MkBudget::current`] and the budget's policy work wherever it
//! is polled: in a tokio task, on another executor, or nested in a memkit task.
//!
//! While the future is polled (or dropped), its `Scope` (memory/arena/scope.rs) is entered, so
//! it is the arena owner allocations go to.

use crate::memory::arena::Scope;
use crate::memory::{MkBudget, RuntimeMemory, TaskBudget};
use pin_project::{pin_project, pinned_drop};
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::task::{ready, Context, Poll};

/// A future that runs as an arena task of its own wherever it is polled: it owns a task arena
/// (created on its first allocation) and a budget, and while it is polled they are the current
/// ones for [`MkAsyncBox`](super::MkAsyncBox), [`MkAsyncVec`](super::MkAsyncVec) and
/// [`MkBudget::current`]. The budget's policy applies as in a memkit task: `Wait` leaves the
/// future pending until memory is released and then wakes it through its waker, `Timeout`
/// gives up after its duration, `Fail` errs at once.
///
/// This is how memkit arenas and budgets work inside tokio tasks (see `memkit_async::tokio`),
/// or on any other executor. The future may move between threads between polls. Objects it
/// allocates may outlive it: when it completes (or is dropped) its arena's chunks go back as
/// their last objects die, wherever that happens.
///
/// Awaited inside a memkit task, it takes over from the task for the inner future (its arena
/// and budget are current; [`task::try_id`](crate::task::try_id) is `None` inside).
///
/// ```
/// use memkit_async_runtime::memory::{MkArenaTask, MkAsyncBox, MkBudget};
///
/// let budget = MkBudget::new(64 << 10);
/// let mut task = std::pin::pin!(MkArenaTask::new(&budget, async {
///     let b = MkAsyncBox::new([1u8; 1000]).await.unwrap();
///     (b.len(), MkBudget::current().unwrap().used())
/// }));
/// // Any executor will do; this future is ready at its first poll.
/// let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
/// let out = std::future::Future::poll(task.as_mut(), &mut cx);
/// assert_eq!(out, std::task::Poll::Ready((1000, 4096))); // one 4 KiB chunk
/// assert_eq!(budget.used(), 0); // the box and the arena's chunk are gone
/// ```
#[pin_project(PinnedDrop)]
#[must_use = "futures do nothing unless polled"]
pub struct MkArenaTask<F> {
    /// `None` once it completed: what it left is dropped inside the scope.
    #[pin]
    future: Option<F>,
    scope: Scope,
}

impl<F> MkArenaTask<F> {
    /// Wraps `future` with a budget: bytes (a child of the current budget, if there is one: a
    /// memkit task's, an enclosing `MkArenaTask`'s, or the current memkit runtime's root; else a
    /// new root budget with the `Wait` policy) or an existing [`MkBudget`].
    pub fn new(budget: impl Into<TaskBudget>, future: F) -> MkArenaTask<F> {
        let budget = match budget.into() {
            TaskBudget::Budget(budget) => budget,
            TaskBudget::Bytes(bytes) => match MkBudget::current()
                .or_else(|| RuntimeMemory::current().map(|m| m.root().clone()))
            {
                Some(parent) => parent.child(bytes),
                None => MkBudget::new(bytes),
            },
        };
        MkArenaTask {
            future: Some(future),
            scope: Scope::new(budget),
        }
    }

    /// The budget the future's arena is charged to.
    pub fn budget(&self) -> &MkBudget {
        self.scope.budget()
    }

    /// Bytes of arena chunks installed for this future so far (0 before it allocates and once
    /// it has completed).
    pub fn allocated_bytes(&self) -> usize {
        self.scope.installed_bytes()
    }
}

impl<F: Future> Future for MkArenaTask<F> {
    type Output = F::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        let mut this = self.project();
        let _scope = this.scope.enter();
        let _heap = this.scope.enter_heap();
        let future = this
            .future
            .as_mut()
            .as_pin_mut()
            .expect("`MkArenaTask` polled after it completed");
        let out = ready!(future.poll(cx));
        // Done: what the future left is dropped inside the scope, then the arena's chunks go
        // back as soon as nothing in them is alive, as when a memkit task ends.
        this.future.set(None);
        this.scope.release_arena();
        Poll::Ready(out)
    }
}

#[pinned_drop]
impl<F> PinnedDrop for MkArenaTask<F> {
    fn drop(self: Pin<&mut Self>) {
        let mut this = self.project();
        // What the future frees while it drops is a local free in its own arena.
        let _scope = this.scope.enter();
        let _heap = this.scope.enter_heap();
        this.future.set(None);
    }
}

impl<F> fmt::Debug for MkArenaTask<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MkArenaTask")
            .field("budget", self.scope.budget())
            .field("allocated_bytes", &self.allocated_bytes())
            .field("completed", &self.future.is_none())
            .finish()
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;
    use crate::memory::{MkAllocError, MkAsyncBox, MkBackpressure};
    use std::task::Waker;

    /// Pending once (waking itself), then ready: a point where the task may change threads.
    struct YieldOnce(bool);

    impl Future for YieldOnce {
        type Output = ();

        fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
            if std::mem::replace(&mut self.0, true) {
                return Poll::Ready(());
            }
            cx.waker().wake_by_ref();
            Poll::Pending
        }
    }

    fn poll_once<F: Future>(f: Pin<&mut F>) -> Poll<F::Output> {
        f.poll(&mut Context::from_waker(Waker::noop()))
    }

    #[test]
    fn an_arena_task_moves_between_threads_and_its_boxes_free_anywhere() {
        let budget = MkBudget::new(64 << 10).with_policy(MkBackpressure::Fail);
        let mut task = Box::pin(MkArenaTask::new(&budget, async {
            let a = MkAsyncBox::new([1u8; 100]).await.unwrap();
            YieldOnce(false).await;
            let b = MkAsyncBox::try_new([2u8; 100]).unwrap();
            drop(MkAsyncBox::try_new(3u32).unwrap()); // a local free
            (a, b, MkBudget::current().map(|b| b.limit()))
        }));
        // First poll on one thread, the rest on another.
        let mut task = std::thread::spawn(move || {
            assert!(poll_once(task.as_mut()).is_pending());
            assert_eq!(task.allocated_bytes(), 4096);
            task
        })
        .join()
        .unwrap();
        let (a, b, limit) = std::thread::spawn(move || match poll_once(task.as_mut()) {
            Poll::Ready(out) => {
                assert_eq!(task.allocated_bytes(), 0, "the arena ended with the future");
                out
            }
            Poll::Pending => panic!("ready at its second poll"),
        })
        .join()
        .unwrap();
        assert_eq!((a[0], b[0], limit), (1, 2, Some(64 << 10)));
        // Outside the task nothing is current, and the chunk lives on for the two boxes.
        assert!(MkBudget::current().is_none());
        assert!(matches!(
            MkAsyncBox::try_new(0u8),
            Err(MkAllocError::NoTask)
        ));
        assert_eq!(budget.used(), 4096);
        drop(a);
        assert_eq!(budget.used(), 4096);
        drop(b);
        assert_eq!(budget.used(), 0);
    }

    #[test]
    fn dropping_an_unfinished_arena_task_drops_its_future_inside_its_scope() {
        let budget = MkBudget::new(64 << 10);
        let mut task = Box::pin(MkArenaTask::new(&budget, async {
            let kept = MkAsyncBox::new([5u8; 64]).await.unwrap();
            std::future::pending::<()>().await;
            drop(kept);
        }));
        assert!(poll_once(task.as_mut()).is_pending());
        assert_eq!(budget.used(), 4096);
        drop(task);
        assert_eq!(budget.used(), 0);
    }
}
