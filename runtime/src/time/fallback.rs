//! The fallback time driver, for timers used outside any memkit-async runtime.
//!
//! Budgets with a `Timeout` policy, `sleep` and `timeout` also work on plain threads and inside
//! other executors (a tokio task, `futures::executor::block_on`), where no memkit worker turns a
//! driver. For those, one process-wide [`TimeDriver`] is turned by a thread of its own, started
//! on first use and asleep (no CPU) until the next deadline or until an earlier timer arrives.
//! Inside a runtime this thread is never started: the workers turn the runtime's driver.

use super::driver::TimeDriver;
use std::sync::{Arc, OnceLock};
use std::thread::{self, Thread};

/// The process-wide driver; its thread starts with the first timer.
pub(crate) fn driver() -> &'static Arc<TimeDriver> {
    static DRIVER: OnceLock<Arc<TimeDriver>> = OnceLock::new();
    DRIVER.get_or_init(|| {
        let thread: Arc<OnceLock<Thread>> = Arc::new(OnceLock::new());
        let to_wake = thread.clone();
        // Outside any runtime the clock is the system's and is never paused.
        let driver = Arc::new(TimeDriver::new(
            Box::new(move || {
                if let Some(t) = to_wake.get() {
                    t.unpark();
                }
            }),
            false,
        ));
        let turned = driver.clone();
        // Without the thread no deadline would ever fire, which would turn every timeout into
        // an unbounded wait: failing loudly here is the only honest option.
        let handle = thread::Builder::new()
            .name("memkit-timer".into())
            .spawn(move || run(&turned))
            .expect("memkit-async could not start its fallback timer thread");
        let _ = thread.set(handle.thread().clone());
        driver
    })
}

fn run(driver: &TimeDriver) {
    loop {
        driver.process();
        // A registration racing with this computation unparks the thread, and a token left by
        // an unpark makes the next park return at once: no deadline is slept through.
        match driver.sleep_timeout() {
            None => thread::park(),
            Some(t) => thread::park_timeout(t),
        }
    }
}
