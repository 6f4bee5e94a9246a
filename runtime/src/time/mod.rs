//! Time: [`sleep`], [`timeout`] and [`interval`], on a hierarchical timer wheel.
//!
//! Each runtime has one timer wheel, driven by its workers rather than a thread of its own: the
//! worker that parks first blocks in the reactor until the next deadline, and busy workers fire
//! due timers between tasks, so timers fire on time on an idle runtime and are not starved on a
//! busy one. Resolution is one millisecond; a timer never fires before its deadline. Dropping a
//! [`Sleep`] cancels its timer in O(1).
//!
//! Timers also work outside a runtime (on a plain thread, or inside another executor, as budget
//! timeouts need): there a process-wide fallback thread drives a wheel of its own, started on
//! first use and asleep when no timer is pending.
//!
//! Each runtime has its own clock. It is the system's monotonic clock until a test pauses it
//! ([`pause`], [`Builder::start_paused`](crate::runtime::Builder::start_paused)); from then on it
//! moves only by [`advance`], or jumps to the next timer by itself when the runtime has nothing
//! else to do, so tests of timeouts and intervals run in no real time and see exact instants.
//! [`Instant`] reads that clock (the system's outside any runtime); every deadline in the crate
//! is an `Instant`. [`Duration`] is [`std::time::Duration`].
//!
//! ```
//! use memkit_async_runtime::time::{sleep, Duration, Instant};
//! # let rt = memkit_async_runtime::Runtime::new().unwrap();
//! # rt.block_on(async {
//! let start = Instant::now();
//! sleep(Duration::from_millis(5)).await;
//! assert!(start.elapsed() >= Duration::from_millis(5));
//! # });
//! ```

mod clock;
mod driver;
mod fallback;
mod instant;
mod interval;
mod pause;
mod sleep;
mod timeout;
mod wheel;

pub(crate) use driver::{InhibitAutoAdvance, TimeDriver};
pub use instant::Instant;
pub use interval::{interval, interval_at, Interval, MissedTickBehavior};
pub use pause::{advance, pause, resume};
pub use sleep::{sleep, sleep_until, Sleep};
pub use std::time::Duration;
pub use timeout::{timeout, timeout_at, Elapsed, Timeout};
