//! `interval`: a stream of evenly spaced ticks.

use super::{sleep_until, Instant, Sleep};
use std::future::{poll_fn, Future};
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

/// What an [`Interval`] does when a tick was missed: taken more than 5 ms after it was due (the rule of tokio's intervals too, so ported code ticks at the same instants).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum MissedTickBehavior {
    /// Fire the missed ticks back to back until caught up, keeping the original schedule.
    #[default]
    Burst,
    /// Restart the schedule from now: the next tick is one period after the late one.
    Delay,
    /// Drop the missed ticks: the next tick is the next one on the original schedule that is
    /// still in the future.
    Skip,
}

/// How late a tick may be taken before it counts as missed: a little scheduling delay is not a
/// missed tick, so `Delay` does not drift by it.
const MISSED_AFTER: Duration = Duration::from_millis(5);

impl MissedTickBehavior {
    fn next(self, scheduled: Instant, now: Instant, period: Duration) -> Instant {
        match self {
            MissedTickBehavior::Burst => add(scheduled, period),
            MissedTickBehavior::Delay => add(now, period),
            MissedTickBehavior::Skip => {
                let late = now.saturating_duration_since(scheduled).as_nanos();
                let periods = late / period.as_nanos() + 1;
                let step = period
                    .checked_mul(u32::try_from(periods).unwrap_or(u32::MAX))
                    .unwrap_or(Duration::MAX);
                add(scheduled, step)
            }
        }
    }
}

fn add(at: Instant, d: Duration) -> Instant {
    at.checked_add(d)
        .unwrap_or_else(|| super::sleep::deadline_after(d))
}

/// Ticks every `period`, the first tick at once.
///
/// # Panics
///
/// If `period` is zero: an interval that never waits would monopolise its worker.
///
/// ```
/// use memkit_async_runtime::time::interval;
/// use std::time::Duration;
/// # let rt = memkit_async_runtime::Runtime::new().unwrap();
/// # rt.block_on(async {
/// let mut ticks = interval(Duration::from_millis(5));
/// let first = ticks.tick().await;
/// let second = ticks.tick().await;
/// assert_eq!(second - first, Duration::from_millis(5));
/// # });
/// ```
#[track_caller]
pub fn interval(period: Duration) -> Interval {
    interval_at(Instant::now(), period)
}

/// Ticks every `period`, the first tick at `start`.
///
/// # Panics
///
/// If `period` is zero.
#[track_caller]
pub fn interval_at(start: Instant, period: Duration) -> Interval {
    assert!(
        !period.is_zero(),
        "interval: the period must be greater than zero; pass at least 1 ms"
    );
    Interval {
        delay: sleep_until(start),
        period,
        missed: MissedTickBehavior::default(),
    }
}

/// A schedule of ticks; see [`interval`].
#[derive(Debug)]
pub struct Interval {
    delay: Sleep,
    period: Duration,
    missed: MissedTickBehavior,
}

impl Interval {
    /// Waits for the next tick and returns the instant it was scheduled for.
    pub async fn tick(&mut self) -> Instant {
        poll_fn(|cx| self.poll_tick(cx)).await
    }

    /// Polls for the next tick.
    pub fn poll_tick(&mut self, cx: &mut Context<'_>) -> Poll<Instant> {
        if Pin::new(&mut self.delay).poll(cx).is_pending() {
            return Poll::Pending;
        }
        let scheduled = self.delay.deadline();
        let now = Instant::now();
        let next = if now.saturating_duration_since(scheduled) > MISSED_AFTER {
            self.missed.next(scheduled, now, self.period)
        } else {
            add(scheduled, self.period)
        };
        self.delay.reset(next);
        Poll::Ready(scheduled)
    }

    /// Restarts the schedule: the next tick is one period from now.
    pub fn reset(&mut self) {
        self.delay.reset(add(Instant::now(), self.period));
    }

    /// The period between ticks.
    pub fn period(&self) -> Duration {
        self.period
    }

    /// How missed ticks are handled (default [`MissedTickBehavior::Burst`]).
    pub fn missed_tick_behavior(&self) -> MissedTickBehavior {
        self.missed
    }

    /// Sets how missed ticks are handled.
    pub fn set_missed_tick_behavior(&mut self, behavior: MissedTickBehavior) {
        self.missed = behavior;
    }
}
