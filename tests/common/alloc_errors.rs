//! Unpacking the allocation errors the tests expect.

use memkit_async::MkAllocError;
use std::time::Duration;

/// The `(requested, limit, used)` and the time waited of a `TimedOut` error; panics with the
/// error it got otherwise.
#[track_caller]
pub fn expect_timed_out(err: MkAllocError) -> ((usize, usize, usize), Duration) {
    match err {
        MkAllocError::TimedOut {
            requested,
            limit,
            used,
            waited,
        } => ((requested, limit, used), waited),
        other => panic!("expected TimedOut, got {other:?}"),
    }
}
