//! Cooperative yielding.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

/// Yields to the scheduler: on a worker, the task runs again only after the worker has turned
/// its timer and I/O driver, behind every task queued by then (so timers due and sockets ready
/// are served first); elsewhere (in `block_on`) it is polled again at once.
///
/// ```
/// # let rt = memkit_async_runtime::Runtime::new().unwrap();
/// # rt.block_on(async {
/// memkit_async_runtime::task::yield_now().await;
/// # });
/// ```
pub async fn yield_now() {
    YieldNow { yielded: false }.await
}

struct YieldNow {
    yielded: bool,
}

impl Future for YieldNow {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        if self.yielded {
            return Poll::Ready(());
        }
        self.yielded = true;
        // On a worker, the task is woken once the worker has turned its driver, behind the
        // tasks queued by then; elsewhere a wake during the poll re-queues it at once.
        if !crate::context::defer(cx.waker()) {
            cx.waker().wake_by_ref();
        }
        Poll::Pending
    }
}
