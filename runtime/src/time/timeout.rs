//! `timeout`: bounds how long a future may take.

use super::{sleep_until, Instant, Sleep};
use pin_project::pin_project;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

/// Runs `future` for at most `duration`: `Ok(output)` if it completes in time, else
/// `Err(Elapsed)`.
///
/// The future is polled once before the deadline is checked, so `timeout(Duration::ZERO, f)`
/// still returns `Ok` for a future that is ready at once. Dropping the returned [`Timeout`]
/// (which happens when it is awaited to completion, or abandoned) drops the inner future, which
/// cancels whatever it was doing. `Duration::MAX` saturates (about 30 years) instead of
/// overflowing.
///
/// ```
/// use memkit_async_runtime::time::{sleep, timeout};
/// use std::time::Duration;
/// # let rt = memkit_async_runtime::Runtime::new().unwrap();
/// # rt.block_on(async {
/// let slow = timeout(Duration::from_millis(10), sleep(Duration::from_secs(60))).await;
/// assert!(slow.is_err());
/// let fast = timeout(Duration::from_secs(60), async { 7 }).await;
/// assert_eq!(fast.unwrap(), 7);
/// # });
/// ```
pub fn timeout<F: Future>(duration: Duration, future: F) -> Timeout<F> {
    Timeout {
        future,
        delay: sleep_until(super::sleep::deadline_after(duration)),
    }
}

/// Like [`timeout`], with an absolute deadline.
pub fn timeout_at<F: Future>(deadline: Instant, future: F) -> Timeout<F> {
    Timeout {
        future,
        delay: sleep_until(deadline),
    }
}

/// The future returned by [`timeout`] and [`timeout_at`].
#[pin_project]
#[must_use = "futures do nothing unless polled"]
#[derive(Debug)]
pub struct Timeout<F> {
    #[pin]
    future: F,
    delay: Sleep,
}

impl<F> Timeout<F> {
    /// The wrapped future.
    pub fn get_ref(&self) -> &F {
        &self.future
    }

    /// Unwraps the inner future (for example to keep running it without a deadline).
    pub fn into_inner(self) -> F {
        self.future
    }
}

impl<F: Future> Future for Timeout<F> {
    type Output = Result<F::Output, Elapsed>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        if let Poll::Ready(out) = this.future.poll(cx) {
            return Poll::Ready(Ok(out));
        }
        // Outside the cooperative budget: a future that spends its whole budget each poll
        // must still time out.
        let delay = crate::coop::unconstrained(Pin::new(this.delay));
        match std::pin::pin!(delay).poll(cx) {
            Poll::Ready(()) => Poll::Ready(Err(Elapsed(()))),
            Poll::Pending => Poll::Pending,
        }
    }
}

/// The error of a [`timeout`] whose deadline passed before its future completed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Elapsed(());

impl fmt::Display for Elapsed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("deadline has elapsed: the future did not complete within its timeout")
    }
}

impl std::error::Error for Elapsed {}

impl From<Elapsed> for std::io::Error {
    fn from(e: Elapsed) -> std::io::Error {
        std::io::Error::new(std::io::ErrorKind::TimedOut, e)
    }
}
