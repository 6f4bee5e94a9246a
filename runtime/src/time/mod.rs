//! Time: the minimal timer that budget and pool timeouts need.
//!
//! One process-wide timer thread, started on first use and asleep (no CPU) whenever no timer is
//! pending, fires wakers at their deadlines. The timer wheel driven by the workers replaces its
//! backend without changing `Delay`.

mod timer;

pub use timer::Delay;
