//! The time driver: a [`Wheel`] behind a lock, the clock it counts milliseconds from, and how to
//! wake whoever sleeps until its next deadline.
//!
//! Each runtime has one, turned by its workers (see `crate::driver`): the worker that parks
//! blocks until the next deadline, and a timer registered earlier than that wakes it. Outside a
//! runtime (plain threads, other executors) timers use the process-wide fallback driver of
//! [`fallback`](super::fallback), turned by a thread of its own.

use super::clock::{Clock, ClockError};
use super::wheel::{Key, Wheel};
use super::Instant;
use crate::sync::lock_std;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::task::Waker;
use std::time::{Duration, Instant as StdInstant};

/// Wakers fired per lock hold: firing happens outside the lock, in batches.
const FIRE_BATCH: usize = 64;

/// Why a timer could not be registered.
pub(crate) enum Refused {
    /// Its deadline has passed.
    Elapsed,
    /// The driver was shut down (its runtime is gone).
    Shutdown(Waker),
}

struct State {
    wheel: Wheel,
    /// The tick the driver's sleeper will wake at by itself (`u64::MAX`: never), or `None`
    /// while nobody sleeps on this driver.
    sleeping_until: Option<u64>,
}

pub(crate) struct TimeDriver {
    clock: Clock,
    state: Mutex<State>,
    shutdown: AtomicBool,
    /// The earliest deadline registered (`u64::MAX`: none); may be stale-early after a
    /// cancellation, never late. Lets busy workers skip the lock when nothing is due.
    next_due: AtomicU64,
    /// Wakes the sleeper (a worker blocked in the reactor, or the fallback thread).
    unpark: Box<dyn Fn() + Send + Sync>,
}

impl TimeDriver {
    /// A driver whose clock runs, or starts paused (`start_paused`); `unpark` wakes whoever
    /// sleeps on it.
    pub(crate) fn new(unpark: Box<dyn Fn() + Send + Sync>, start_paused: bool) -> TimeDriver {
        TimeDriver {
            clock: Clock::new(start_paused),
            state: Mutex::new(State {
                wheel: Wheel::new(),
                sleeping_until: None,
            }),
            shutdown: AtomicBool::new(false),
            next_due: AtomicU64::new(u64::MAX),
            unpark,
        }
    }

    pub(crate) fn is_shutdown(&self) -> bool {
        self.shutdown.load(Ordering::Acquire)
    }

    /// Now, on this driver's clock.
    pub(crate) fn now(&self) -> StdInstant {
        self.clock.now()
    }

    /// Whether the clock is paused.
    pub(crate) fn is_paused(&self) -> bool {
        self.clock.is_paused()
    }

    /// Pauses the clock.
    pub(crate) fn pause(&self) -> Result<(), ClockError> {
        self.clock.pause()?;
        // A sleeper blocked until a real deadline wakes and sleeps again as a paused one.
        (self.unpark)();
        Ok(())
    }

    /// Lets the clock run again from where it was paused.
    pub(crate) fn resume(&self) -> Result<(), ClockError> {
        self.clock.resume()?;
        // The sleeper may be blocked with no deadline, as paused timers never come due.
        (self.unpark)();
        Ok(())
    }

    /// Moves the paused clock forward by `by` and fires the timers now due.
    pub(crate) fn advance(&self, by: Duration) -> Result<(), ClockError> {
        self.clock.advance(by)?;
        self.process();
        Ok(())
    }

    /// Moves the paused clock to the next timer's deadline, if the runtime may (nothing holds
    /// auto-advance off); `false` if there is no timer to move to.
    pub(crate) fn auto_advance(&self) -> bool {
        let Some(next) = lock_std(&self.state).wheel.next_deadline() else {
            return false;
        };
        if let Some(at) = self.clock.start().checked_add(Duration::from_millis(next)) {
            self.clock.advance_to(at);
        }
        true
    }

    /// Whether the clock is paused and nothing holds auto-advance off.
    pub(crate) fn can_auto_advance(&self) -> bool {
        self.clock.can_auto_advance()
    }

    /// `instant` as a tick, rounded up so a timer never fires before its deadline.
    fn deadline_tick(&self, instant: Instant) -> u64 {
        let since = instant
            .into_std()
            .saturating_duration_since(self.clock.start());
        let ms = since.as_millis() + u128::from(since.subsec_nanos() % 1_000_000 != 0);
        u64::try_from(ms).unwrap_or(u64::MAX)
    }

    /// Milliseconds elapsed on the clock since the driver started, rounded down.
    fn now_tick(&self) -> u64 {
        let since = self
            .clock
            .now()
            .saturating_duration_since(self.clock.start());
        u64::try_from(since.as_millis()).unwrap_or(u64::MAX)
    }

    /// Registers `waker` to be woken at `deadline`.
    pub(crate) fn register(&self, deadline: Instant, waker: Waker) -> Result<Key, Refused> {
        let tick = self.deadline_tick(deadline);
        let mut state = lock_std(&self.state);
        if self.is_shutdown() {
            return Err(Refused::Shutdown(waker));
        }
        // The wheel's slab is the runtime's, not the registering task's memory.
        let inserted = {
            let _engine = crate::heap::engine();
            state.wheel.insert(tick, waker)
        };
        let key = match inserted {
            Ok(key) => key,
            Err(waker) => {
                // Dropped outside the lock: a waker's drop is user code.
                drop(state);
                drop(waker);
                return Err(Refused::Elapsed);
            }
        };
        self.next_due.fetch_min(tick, Ordering::Relaxed);
        if state.sleeping_until.is_some_and(|until| tick < until) {
            // The sleeper would wake too late for this timer: make it recompute.
            state.sleeping_until = Some(tick);
            drop(state);
            (self.unpark)();
        }
        Ok(key)
    }

    /// Refreshes the waker of a pending timer; `false` if it fired (or was drained).
    pub(crate) fn set_waker(&self, key: Key, waker: &Waker) -> bool {
        match lock_std(&self.state).wheel.wakes(key, waker) {
            None => return false,
            Some(true) => return true,
            Some(false) => {}
        }
        // A waker's clone and drop are user code: neither runs under the lock.
        let new = waker.clone();
        let swapped = lock_std(&self.state).wheel.swap_waker(key, new);
        match swapped {
            Ok(old) => {
                drop(old);
                true
            }
            // Fired (or drained) in between.
            Err(new) => {
                drop(new);
                false
            }
        }
    }

    /// Cancels a timer: O(1), and a no-op if it already fired.
    pub(crate) fn cancel(&self, key: Key) {
        // The waker is dropped after the lock is released: it may hold the last reference to
        // a task whose drop takes other locks.
        let waker = lock_std(&self.state).wheel.remove(key);
        drop(waker);
    }

    /// Fires every due timer. Called by whoever turns the driver.
    pub(crate) fn process(&self) {
        let now = self.now_tick();
        let mut due = Vec::new();
        loop {
            let done = {
                let mut state = lock_std(&self.state);
                state.sleeping_until = None;
                let done = state.wheel.advance(now, &mut due, FIRE_BATCH);
                let next = state.wheel.next_deadline().unwrap_or(u64::MAX);
                self.next_due.store(next, Ordering::Relaxed);
                done
            };
            crate::unwind::wake_all(due.drain(..));
            if done {
                return;
            }
        }
    }

    /// Marks the caller as sleeping on this driver and returns how long it may sleep before the
    /// next timer is due (`None`: no timer). `process` ends the sleep.
    pub(crate) fn sleep_timeout(&self) -> Option<Duration> {
        let mut state = lock_std(&self.state);
        let next = state.wheel.next_deadline();
        state.sleeping_until = Some(next.unwrap_or(u64::MAX));
        let next = next?;
        let now = self.now_tick();
        Some(Duration::from_millis(next.saturating_sub(now)))
    }

    /// Whether a timer is due now (cheap enough for a busy worker to ask often).
    pub(crate) fn has_due(&self) -> bool {
        let next = self.next_due.load(Ordering::Relaxed);
        next != u64::MAX && next <= self.now_tick()
    }

    /// Timers registered now.
    pub(crate) fn len(&self) -> usize {
        lock_std(&self.state).wheel.len()
    }

    /// Refuses new timers and wakes every pending one, so nothing waits on a driver that nobody
    /// turns any more (a woken sleep re-registers with the fallback driver).
    pub(crate) fn shutdown(&self) {
        let mut wakers = Vec::new();
        {
            let mut state = lock_std(&self.state);
            self.shutdown.store(true, Ordering::Release);
            state.wheel.drain(&mut wakers);
        }
        crate::unwind::wake_all(wakers);
    }
}

/// Holds auto-advance of a paused clock off while it lives: a `block_on` thread that is not
/// waiting, or a blocking closure queued or running, may still register a timer or wake a task,
/// so the clock must not jump ahead of it. Dropping the last one wakes the driver's sleeper to
/// look again.
pub(crate) struct InhibitAutoAdvance {
    driver: Arc<TimeDriver>,
}

impl InhibitAutoAdvance {
    pub(crate) fn new(driver: Arc<TimeDriver>) -> InhibitAutoAdvance {
        driver.clock.add_inhibitor();
        InhibitAutoAdvance { driver }
    }

    /// Takes over a count added with `new` and given up with `mem::forget`.
    pub(crate) fn adopt(driver: Arc<TimeDriver>) -> InhibitAutoAdvance {
        InhibitAutoAdvance { driver }
    }
}

impl Drop for InhibitAutoAdvance {
    fn drop(&mut self) {
        if self.driver.clock.remove_inhibitor() && self.driver.clock.is_paused() {
            (self.driver.unpark)();
        }
    }
}
