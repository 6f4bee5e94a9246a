//! Time bounds: every wait in a test is bounded, so a hang fails with a message.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

/// The bound on any single wait in these tests. Generous on purpose: exceeding it means a hang
/// (a lost wake-up, a deadlock), not a slow machine.
#[cfg(not(miri))]
pub const DEADLINE: Duration = Duration::from_secs(10);

/// Under Miri the clock advances 5 µs per interpreted basic block, so ordinary work reads as
/// seconds; a real hang still fails fast, since Miri skips its clock ahead while every thread
/// is blocked.
#[cfg(miri)]
pub const DEADLINE: Duration = Duration::from_secs(600);

/// Runs `body` on a thread of its own and fails the test if it has not returned within
/// `limit`, so a hang fails with a message instead of blocking the whole test binary.
/// A panic in `body` is re-raised here.
pub fn with_timeout<T: Send + 'static>(
    limit: Duration,
    body: impl FnOnce() -> T + Send + 'static,
) -> T {
    let (tx, rx) = mpsc::channel();
    let name = format!("{}-body", thread::current().name().unwrap_or("test"));
    thread::Builder::new()
        .name(name)
        .spawn(move || {
            let _ = tx.send(catch_unwind(AssertUnwindSafe(body)));
        })
        .expect("spawn the test body thread");
    match rx.recv_timeout(limit) {
        Ok(Ok(value)) => value,
        Ok(Err(payload)) => std::panic::resume_unwind(payload),
        Err(_) => panic!(
            "the test body did not finish within {limit:?}: the runtime hung (lost wake-up, \
             deadlock or a shutdown that never returns)"
        ),
    }
}

/// Polls `cond` every millisecond until it holds; fails with `what` after [`DEADLINE`].
#[track_caller]
pub fn wait_until(what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + DEADLINE;
    while !cond() {
        if Instant::now() > deadline {
            panic!("timed out after {DEADLINE:?} waiting until {what}");
        }
        thread::sleep(Duration::from_millis(1));
    }
}
