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
//! [`Instant`] is [`std::time::Instant`] and [`Duration`] is [`std::time::Duration`]: deadlines
//! are plain monotonic instants, re-exported here so `use memkit_async::time::{Duration,
//! Instant}` works as `tokio::time`'s does.
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

mod driver;
mod fallback;
mod interval;
mod sleep;
mod timeout;
mod wheel;

pub(crate) use driver::TimeDriver;
pub use interval::{interval, interval_at, Interval, MissedTickBehavior};
pub use sleep::{sleep, sleep_until, Sleep};
pub use std::time::{Duration, Instant};
pub use timeout::{timeout, timeout_at, Elapsed, Timeout};
