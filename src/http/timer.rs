//! `MkTimer`: hyper's `Timer` on memkit's timer wheel.

use memkit_async_runtime::time::{self, Instant};
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;
use std::time::Instant as StdInstant;

/// hyper's timers (header-read timeouts, keep-alive pings, pool idle timeouts) on the runtime's
/// timer wheel: one millisecond resolution, cancelled in O(1) when dropped, reset in place.
///
/// ```
/// use memkit_async::http::MkTimer;
/// use hyper::rt::Timer;
/// use std::time::{Duration, Instant};
///
/// # let rt = memkit_async::Runtime::new().unwrap();
/// # rt.block_on(async {
/// let start = Instant::now();
/// MkTimer::new().sleep(Duration::from_millis(5)).await;
/// assert!(start.elapsed() >= Duration::from_millis(5));
/// # });
/// ```
#[derive(Clone, Copy, Debug, Default)]
pub struct MkTimer(());

impl MkTimer {
    /// The timer of whatever runtime polls the sleeps (the process-wide fallback timer outside
    /// one).
    pub fn new() -> MkTimer {
        MkTimer(())
    }
}

impl hyper::rt::Timer for MkTimer {
    fn sleep(&self, duration: Duration) -> Pin<Box<dyn hyper::rt::Sleep>> {
        Box::pin(MkSleep(time::sleep(duration)))
    }

    fn sleep_until(&self, deadline: StdInstant) -> Pin<Box<dyn hyper::rt::Sleep>> {
        Box::pin(MkSleep(time::sleep_until(Instant::from_std(deadline))))
    }

    fn reset(&self, sleep: &mut Pin<Box<dyn hyper::rt::Sleep>>, new_deadline: StdInstant) {
        match sleep.as_mut().downcast_mut_pin::<MkSleep>() {
            // Moves the timer in place: no new allocation per request.
            Some(mut ours) => ours.0.reset(Instant::from_std(new_deadline)),
            None => *sleep = self.sleep_until(new_deadline),
        }
    }
}

/// A memkit [`Sleep`](crate::time::Sleep) as hyper's `Sleep`.
#[derive(Debug)]
pub struct MkSleep(time::Sleep);

impl Future for MkSleep {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        Pin::new(&mut self.0).poll(cx)
    }
}

impl hyper::rt::Sleep for MkSleep {}
