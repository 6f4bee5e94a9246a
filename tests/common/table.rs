//! Table-driven tests: one test runs the same check over a list of cases.

use super::panic_message;
use std::fmt::Debug;
use std::panic::{catch_unwind, AssertUnwindSafe};

/// Runs `check` on every case in order; a case that fails stops the test with a panic whose
/// message names the case first, then the failure (an assertion, a hang caught by
/// `with_timeout`, a join error).
#[track_caller]
pub fn for_each_case<C: Debug + Clone>(cases: &[C], mut check: impl FnMut(C)) {
    for case in cases {
        if let Err(payload) = catch_unwind(AssertUnwindSafe(|| check(case.clone()))) {
            panic!("case {case:?}: {}", panic_message(&*payload));
        }
    }
}
