//! The cooperative budget: how many operations on memkit's resources one poll of a task may
//! complete before those resources start returning `Pending`.
//!
//! A task whose resources are always ready (a channel with room and messages, a socket with
//! data) never returns `Pending` by itself, and would keep its worker for as long as it loops:
//! every other task queued there, the timers and the I/O driver would wait. Each task poll (and
//! each turn of `block_on`) therefore starts with a budget of `INITIAL` units. Every operation
//! on a memkit resource that completes (a channel send or receive, a semaphore, pool or budget
//! acquisition, a barrier wait, a joined task, a fired sleep or interval tick, a socket read,
//! write or accept) takes one unit; once none is left, the next such operation returns
//! `Pending` and the task runs again after its worker has turned its driver (fired the timers
//! and I/O now due) and run the tasks queued by then, as after `yield_now`. An operation that
//! returns `Pending` anyway gives its unit back.
//!
//! Resources written outside this crate take part through [`poll_proceed`].

use pin_project::pin_project;
use std::cell::Cell;
use std::future::Future;
use std::pin::Pin;
use std::task::{ready, Context, Poll};

/// Units per poll of a task.
pub(crate) const INITIAL: u8 = 128;

thread_local! {
    /// The polled task's units left; `None` outside a budgeted poll (no limit).
    static BUDGET: Cell<Option<u8>> = const { Cell::new(None) };
}

/// Restores the thread's budget when dropped (also when the poll unwinds).
pub(crate) struct BudgetGuard(Option<u8>);

impl Drop for BudgetGuard {
    fn drop(&mut self) {
        let _ = BUDGET.try_with(|b| b.set(self.0));
    }
}

/// Gives the caller's poll a fresh budget of `INITIAL` units until the guard drops.
pub(crate) fn start_poll() -> BudgetGuard {
    set(Some(INITIAL))
}

fn set(units: Option<u8>) -> BudgetGuard {
    BudgetGuard(BUDGET.try_with(|b| b.replace(units)).unwrap_or(None))
}

/// Takes one unit of the polled task's budget for an operation about to complete, or, with
/// none left, schedules the task again (after its worker's next driver turn) and returns
/// `Pending`: the operation must then return `Pending` too, without doing anything.
///
/// The returned value gives the unit back when dropped, unless
/// [`made_progress`](RestoreOnPending::made_progress) was called: call it once the operation
/// completes, and let it drop when the operation turns out `Pending`.
///
/// ```
/// use memkit_async_runtime::task::coop;
/// use std::task::{ready, Context, Poll};
///
/// /// A resource that always has an item: without the budget, a task looping over it would
/// /// never give its worker back.
/// struct Always;
///
/// impl Always {
///     fn poll_next(&mut self, cx: &mut Context<'_>) -> Poll<u32> {
///         let unit = ready!(coop::poll_proceed(cx));
///         unit.made_progress();
///         Poll::Ready(7)
///     }
/// }
/// # let _ = Always;
/// ```
pub fn poll_proceed(cx: &mut Context<'_>) -> Poll<RestoreOnPending> {
    let taken = BUDGET.try_with(|b| match b.get() {
        None => Some(RestoreOnPending(Cell::new(None))),
        Some(0) => None,
        Some(n) => {
            b.set(Some(n - 1));
            Some(RestoreOnPending(Cell::new(Some(n))))
        }
    });
    match taken {
        Ok(Some(unit)) => Poll::Ready(unit),
        Ok(None) => {
            // Out of units: on a worker, run again once it has turned its driver (timers and
            // I/O first, as `yield_now`); elsewhere, behind the tasks queued already.
            if !crate::context::defer(cx.waker()) {
                cx.waker().wake_by_ref();
            }
            Poll::Pending
        }
        // The thread is being torn down: no budget applies.
        Err(_) => Poll::Ready(RestoreOnPending(Cell::new(None))),
    }
}

/// Polls an operation with [`poll_proceed`] around it: one unit taken if it completes, none
/// if it returns `Pending`, and `Pending` (the task woken) with no unit left.
///
/// ```
/// use memkit_async_runtime::task::coop;
/// use std::task::{Context, Poll};
///
/// fn poll_next(queue: &mut Vec<u32>, cx: &mut Context<'_>) -> Poll<Option<u32>> {
///     coop::poll_budgeted(cx, |_| Poll::Ready(queue.pop()))
/// }
/// # let _ = poll_next;
/// ```
pub fn poll_budgeted<T>(
    cx: &mut Context<'_>,
    op: impl FnOnce(&mut Context<'_>) -> Poll<T>,
) -> Poll<T> {
    let unit = ready!(poll_proceed(cx));
    let out = op(cx);
    if out.is_ready() {
        unit.made_progress();
    }
    out
}

/// One unit of the cooperative budget taken by [`poll_proceed`]; given back when dropped
/// unless the operation made progress.
#[must_use = "drop it only when the operation returned Pending"]
#[derive(Debug)]
pub struct RestoreOnPending(Cell<Option<u8>>);

impl RestoreOnPending {
    /// The operation completed: the unit stays spent.
    pub fn made_progress(&self) {
        self.0.set(None);
    }
}

impl Drop for RestoreOnPending {
    fn drop(&mut self) {
        if let Some(units) = self.0.get() {
            let _ = BUDGET.try_with(|b| b.set(Some(units)));
        }
    }
}

/// Whether the polled task has units of its budget left (always `true` outside a budgeted
/// poll and inside [`unconstrained`]).
pub fn has_budget_remaining() -> bool {
    BUDGET.try_with(|b| b.get() != Some(0)).unwrap_or(true)
}

/// Takes one unit of the polled task's budget, yielding first if none is left: for loops that
/// do their work without touching memkit's resources.
///
/// ```
/// # let rt = memkit_async_runtime::Runtime::new().unwrap();
/// # rt.block_on(async {
/// let mut sum = 0u64;
/// for i in 0..10_000u64 {
///     sum += i;
///     // Lets other tasks on this worker run now and then.
///     memkit_async_runtime::task::consume_budget().await;
/// }
/// assert_eq!(sum, 49_995_000);
/// # });
/// ```
pub async fn consume_budget() {
    ConsumeBudget.await
}

struct ConsumeBudget;

impl Future for ConsumeBudget {
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let unit = ready!(poll_proceed(cx));
        unit.made_progress();
        Poll::Ready(())
    }
}

/// Runs `future` with no cooperative budget: memkit's resources inside it never return
/// `Pending` for want of units. For code that must not be interrupted (at the price of the
/// fairness the budget gives the other tasks on its worker).
///
/// ```
/// # let rt = memkit_async_runtime::Runtime::new().unwrap();
/// # rt.block_on(async {
/// let out = memkit_async_runtime::task::unconstrained(async { 1 + 1 }).await;
/// assert_eq!(out, 2);
/// # });
/// ```
pub fn unconstrained<F: Future>(future: F) -> Unconstrained<F> {
    Unconstrained { future }
}

/// A future that runs its inner future with no cooperative budget; made by [`unconstrained`].
#[pin_project]
#[derive(Debug)]
#[must_use = "futures do nothing unless awaited"]
pub struct Unconstrained<F> {
    #[pin]
    future: F,
}

impl<F: Future> Future for Unconstrained<F> {
    type Output = F::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        let _unlimited = set(None);
        self.project().future.poll(cx)
    }
}
