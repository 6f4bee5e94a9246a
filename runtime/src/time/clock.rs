//! The runtime's clock: the real monotonic clock, or a paused one that moves only when told to
//! (`time::advance`) or when the runtime has nothing to do but wait for its next timer.
//!
//! Until it is first paused the clock reads `std::time::Instant::now()` without a lock. Once
//! paused, it is a base instant plus, while running again after `resume`, the real time elapsed
//! since then. Pausing rounds the base up to the timer wheel's next millisecond, so deadlines a
//! whole number of milliseconds away fall exactly on a tick and a jump to the next timer lands
//! exactly on its deadline.
//!
//! Auto-advance is held off while anything outside the workers may still make progress: a
//! `block_on` thread that is polling, a blocking closure queued or running. Each holds one
//! count in `inhibitors` (see `InhibitAutoAdvance` in the driver).

use crate::sync::lock_std;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant as StdInstant};

/// Why the clock refused a request; the public functions turn these into panics.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ClockError {
    AlreadyPaused,
    NotPaused,
}

pub(crate) struct Clock {
    /// The timer wheel's tick 0.
    start: StdInstant,
    /// Set by the first `pause`: until then `now` is the real clock, read without the lock.
    shifted: AtomicBool,
    paused: AtomicBool,
    state: Mutex<State>,
    inhibitors: AtomicUsize,
}

struct State {
    base: StdInstant,
    /// When the clock last started running again (`None` while paused).
    running_since: Option<StdInstant>,
}

impl Clock {
    pub(crate) fn new(start_paused: bool) -> Clock {
        let start = StdInstant::now();
        Clock {
            start,
            shifted: AtomicBool::new(start_paused),
            paused: AtomicBool::new(start_paused),
            state: Mutex::new(State {
                base: start,
                running_since: (!start_paused).then_some(start),
            }),
            inhibitors: AtomicUsize::new(0),
        }
    }

    /// The instant the timer wheel counts its milliseconds from.
    pub(crate) fn start(&self) -> StdInstant {
        self.start
    }

    pub(crate) fn now(&self) -> StdInstant {
        if !self.shifted.load(Ordering::Acquire) {
            return StdInstant::now();
        }
        let state = lock_std(&self.state);
        match state.running_since {
            None => state.base,
            Some(since) => state.base + since.elapsed(),
        }
    }

    pub(crate) fn is_paused(&self) -> bool {
        self.paused.load(Ordering::SeqCst)
    }

    pub(crate) fn pause(&self) -> Result<(), ClockError> {
        let mut state = lock_std(&self.state);
        let Some(since) = state.running_since else {
            return Err(ClockError::AlreadyPaused);
        };
        let now = state.base + since.elapsed();
        state.base = self.round_up_to_tick(now);
        state.running_since = None;
        self.shifted.store(true, Ordering::Release);
        self.paused.store(true, Ordering::SeqCst);
        Ok(())
    }

    pub(crate) fn resume(&self) -> Result<(), ClockError> {
        let mut state = lock_std(&self.state);
        if state.running_since.is_some() {
            return Err(ClockError::NotPaused);
        }
        state.running_since = Some(StdInstant::now());
        self.paused.store(false, Ordering::SeqCst);
        Ok(())
    }

    /// Moves the paused clock forward by `by`.
    pub(crate) fn advance(&self, by: Duration) -> Result<(), ClockError> {
        let mut state = lock_std(&self.state);
        if state.running_since.is_some() {
            return Err(ClockError::NotPaused);
        }
        state.base = state.base.checked_add(by).unwrap_or(state.base);
        Ok(())
    }

    /// Moves the paused clock forward to `to`, if it is still paused and behind it.
    pub(crate) fn advance_to(&self, to: StdInstant) {
        let mut state = lock_std(&self.state);
        if state.running_since.is_none() && state.base < to {
            state.base = to;
        }
    }

    fn round_up_to_tick(&self, at: StdInstant) -> StdInstant {
        let since = at.saturating_duration_since(self.start);
        let rest = since.subsec_nanos() % 1_000_000;
        if rest == 0 {
            return at;
        }
        at + Duration::from_nanos(u64::from(1_000_000 - rest))
    }

    pub(crate) fn add_inhibitor(&self) {
        self.inhibitors.fetch_add(1, Ordering::SeqCst);
    }

    /// `true` if that was the last one.
    pub(crate) fn remove_inhibitor(&self) -> bool {
        self.inhibitors.fetch_sub(1, Ordering::SeqCst) == 1
    }

    /// Paused, and nothing outside the workers holds auto-advance off.
    pub(crate) fn can_auto_advance(&self) -> bool {
        self.is_paused() && self.inhibitors.load(Ordering::SeqCst) == 0
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    #[test]
    fn paused_clock_moves_only_when_advanced() {
        let clock = Clock::new(true);
        let t0 = clock.now();
        assert_eq!(t0, clock.start());
        std::thread::sleep(Duration::from_millis(2));
        assert_eq!(clock.now(), t0);
        clock.advance(Duration::from_micros(1500)).unwrap();
        assert_eq!(clock.now(), t0 + Duration::from_micros(1500));
        assert_eq!(clock.pause(), Err(ClockError::AlreadyPaused));
        clock.resume().unwrap();
        assert_eq!(clock.resume(), Err(ClockError::NotPaused));
        assert_eq!(
            clock.advance(Duration::from_secs(1)),
            Err(ClockError::NotPaused)
        );
        assert!(clock.now() >= t0 + Duration::from_micros(1500));
    }

    #[test]
    fn pausing_rounds_up_to_the_next_tick() {
        let clock = Clock::new(false);
        std::thread::sleep(Duration::from_micros(300));
        clock.pause().unwrap();
        let since = clock.now() - clock.start();
        assert_eq!(since.subsec_nanos() % 1_000_000, 0, "{since:?}");
    }
}
