//! `sleep` and `sleep_until`: futures that complete at a deadline.

use super::driver::{Refused, TimeDriver};
use super::wheel::Key;
use super::{fallback, Instant};
use crate::driver;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, Waker};
use std::time::Duration;

/// Waits until `duration` has elapsed.
///
/// Resolution is one millisecond: the future completes at the first millisecond tick at or
/// after the deadline, never before it. A duration too large to add to the current instant
/// (such as `Duration::MAX`) is clamped to about 30 years, which never overflows.
///
/// Inside a runtime the runtime's workers fire the timer, on the runtime's clock: while it is
/// paused (see [`pause`](super::pause)) the sleep completes when [`advance`](super::advance)
/// or auto-advance moves the clock past its deadline. Elsewhere (a plain thread, another
/// executor) the process-wide fallback timer thread fires it, on the system's clock.
///
/// ```
/// use std::time::{Duration, Instant};
/// # let rt = memkit_async_runtime::Runtime::new().unwrap();
/// # rt.block_on(async {
/// let start = Instant::now();
/// memkit_async_runtime::time::sleep(Duration::from_millis(20)).await;
/// assert!(start.elapsed() >= Duration::from_millis(20));
/// # });
/// ```
pub fn sleep(duration: Duration) -> Sleep {
    sleep_until(deadline_after(duration))
}

/// Waits until `deadline`; completes at once (on its first poll) if it has passed.
pub fn sleep_until(deadline: Instant) -> Sleep {
    Sleep {
        deadline,
        entry: None,
    }
}

/// `now + duration`, saturating at about 30 years ahead.
pub(crate) fn deadline_after(duration: Duration) -> Instant {
    const FAR: Duration = Duration::from_secs(86_400 * 365 * 30);
    let now = Instant::now();
    now.checked_add(duration.min(FAR))
        .or_else(|| now.checked_add(Duration::from_secs(86_400)))
        .unwrap_or(now)
}

/// The future returned by [`sleep`] and [`sleep_until`].
///
/// Dropping it cancels the timer in O(1), leaving nothing behind. It is `Unpin`, so it can be
/// polled through `&mut` and [`reset`](Sleep::reset) without pinning.
#[must_use = "futures do nothing unless polled"]
pub struct Sleep {
    deadline: Instant,
    entry: Option<(Arc<TimeDriver>, Key)>,
}

impl Sleep {
    /// The instant this sleep completes at.
    pub fn deadline(&self) -> Instant {
        self.deadline
    }

    /// Whether the deadline has passed.
    pub fn is_elapsed(&self) -> bool {
        Instant::now() >= self.deadline
    }

    /// Moves the deadline, as if the sleep had been created with `deadline`.
    pub fn reset(&mut self, deadline: Instant) {
        self.cancel();
        self.deadline = deadline;
    }

    fn cancel(&mut self) {
        if let Some((driver, key)) = self.entry.take() {
            driver.cancel(key);
        }
    }

    fn register(&mut self, waker: &Waker) -> Poll<()> {
        let driver = current_driver();
        let refused = match driver.register(self.deadline, waker.clone()) {
            Ok(key) => {
                self.entry = Some((driver, key));
                return Poll::Pending;
            }
            Err(refused) => refused,
        };
        match refused {
            Refused::Elapsed => Poll::Ready(()),
            // The runtime shut down between the look-up and the registration.
            Refused::Shutdown(waker) => match fallback::driver().register(self.deadline, waker) {
                Ok(key) => {
                    self.entry = Some((fallback::driver().clone(), key));
                    Poll::Pending
                }
                Err(_) => Poll::Ready(()),
            },
        }
    }
}

/// The driver of the runtime this thread runs in, or the fallback one.
fn current_driver() -> Arc<TimeDriver> {
    driver::with_current(|d| d.map(|d| d.time.clone()))
        .filter(|d| !d.is_shutdown())
        .unwrap_or_else(|| fallback::driver().clone())
}

impl Future for Sleep {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        crate::coop::poll_budgeted(cx, |cx| self.poll_elapsed(cx))
    }
}

impl Sleep {
    fn poll_elapsed(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        let this = self;
        if let Some((driver, key)) = &this.entry {
            if driver.set_waker(*key, cx.waker()) {
                return Poll::Pending;
            }
            // Fired, since the wheel never fires early; or drained by a runtime shutdown, in
            // which case the deadline may be ahead still.
            this.entry = None;
        }
        if this.is_elapsed() {
            return Poll::Ready(());
        }
        this.register(cx.waker())
    }
}

impl Drop for Sleep {
    fn drop(&mut self) {
        self.cancel();
    }
}

impl std::fmt::Debug for Sleep {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sleep")
            .field("deadline", &self.deadline)
            .field("registered", &self.entry.is_some())
            .finish()
    }
}
