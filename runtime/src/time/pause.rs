//! `pause`, `resume` and `advance`: a clock for tests that moves only when told to.

use super::clock::ClockError;
use super::driver::TimeDriver;
use crate::driver;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

/// Pauses the clock of the current runtime.
///
/// From now on [`Instant::now`](super::Instant::now) inside the runtime stands still, and timers
/// come due only when the clock moves: by [`advance`], or by itself when the runtime has nothing
/// else to do. Then every worker is idle, no task is queued, no [`block_on`](crate::Runtime::block_on)
/// future is ready to make progress and no [`spawn_blocking`](crate::spawn_blocking) closure is
/// queued or running, and the clock jumps to the next timer's deadline instead of waiting for
/// it. A test full of sleeps and timeouts thus runs in no real time, with exact instants. An
/// idle runtime with no timer blocks as usual. I/O still happens in real time, and does not
/// hold the clock back while the runtime waits for it.
///
/// Pausing rounds the clock up to the timer wheel's next millisecond (less than 1 ms ahead), so
/// that deadlines whole milliseconds away are met exactly. The clock belongs to the runtime:
/// other runtimes, and code outside any runtime, keep the system's clock.
/// [`Builder::start_paused`](crate::runtime::Builder::start_paused) and
/// `#[memkit_async::test(start_paused = true)]` start a runtime with its clock paused.
///
/// # Panics
///
/// Outside a runtime, or if the clock is paused already.
///
/// ```
/// use memkit_async_runtime::time::{self, Duration, Instant};
/// # let rt = memkit_async_runtime::Runtime::new().unwrap();
/// # rt.block_on(async {
/// time::pause();
/// let start = Instant::now();
/// // An hour passes at once: the runtime has nothing else to do, so the clock jumps.
/// time::sleep(Duration::from_secs(3600)).await;
/// assert_eq!(start.elapsed(), Duration::from_secs(3600));
/// // Or move it by hand, firing the timers that come due.
/// time::advance(Duration::from_millis(250)).await;
/// assert_eq!(start.elapsed(), Duration::from_millis(3_600_250));
/// time::resume();
/// # });
/// ```
#[track_caller]
pub fn pause() {
    if let Err(e) = current("pause").pause() {
        fail("pause", e);
    }
}

/// Lets the paused clock of the current runtime run again, from the instant it shows now.
///
/// # Panics
///
/// Outside a runtime, or if the clock is not paused.
#[track_caller]
pub fn resume() {
    if let Err(e) = current("resume").resume() {
        fail("resume", e);
    }
}

/// Moves the paused clock of the current runtime forward by exactly `duration`, fires the
/// timers that came due, then yields once so that the tasks they woke get to run.
///
/// On a multi-threaded runtime the woken tasks may run on other workers while the caller goes
/// on; wait for what they produce rather than for the yield.
///
/// # Panics
///
/// When first polled: outside a runtime, or if the clock is not paused.
pub async fn advance(duration: Duration) {
    let driver = current("advance");
    if let Err(e) = driver.advance(duration) {
        fail("advance", e);
    }
    drop(driver);
    YieldOnce(false).await;
}

/// Yields once, as `task::yield_now` does: on a worker the caller runs again behind the tasks
/// queued by then, the ones the fired timers woke included.
struct YieldOnce(bool);

impl Future for YieldOnce {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        if self.0 {
            return Poll::Ready(());
        }
        self.0 = true;
        if !crate::context::defer(cx.waker()) {
            cx.waker().wake_by_ref();
        }
        Poll::Pending
    }
}

#[track_caller]
fn current(what: &str) -> Arc<TimeDriver> {
    match driver::with_current(|d| d.map(|d| d.time.clone())) {
        Some(time) => time,
        None => panic!(
            "memkit_async::time::{what}() called outside a memkit-async runtime: the clock it \
             acts on is a runtime's; call it inside `Runtime::block_on`, a task, or a \
             `#[memkit_async::test(start_paused = true)]` test"
        ),
    }
}

#[track_caller]
fn fail(what: &str, e: ClockError) -> ! {
    match e {
        ClockError::AlreadyPaused => panic!(
            "memkit_async::time::{what}(): the clock is already paused; call \
             `time::resume()` before pausing it again"
        ),
        ClockError::NotPaused => panic!(
            "memkit_async::time::{what}(): the clock is not paused; call `time::pause()` \
             first, or start the runtime paused (`Builder::start_paused(true)`, \
             `#[memkit_async::test(start_paused = true)]`)"
        ),
    }
}
