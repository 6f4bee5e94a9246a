//! Process-wide state for the final checks and the watchdog: failures, the phase, the
//! budgets and metrics to check, the seed.

use crate::counters::{bump, C, PROGRESS};
use memkit_async::runtime::RuntimeMetrics;
use memkit_async::MkBudget;
use std::io::Write as _;
use std::sync::atomic::Ordering::SeqCst;
use std::sync::atomic::{AtomicU64, AtomicUsize};
use std::sync::{Mutex, MutexGuard};

pub static FAILURES: Mutex<Vec<String>> = Mutex::new(Vec::new());
pub static PHASE: Mutex<String> = Mutex::new(String::new());
pub static BUDGETS: Mutex<Vec<(String, MkBudget)>> = Mutex::new(Vec::new());
pub static METRICS: Mutex<Option<RuntimeMetrics>> = Mutex::new(None);
pub static OUTSTANDING: AtomicUsize = AtomicUsize::new(0);
pub static SEED: AtomicU64 = AtomicU64::new(0);

pub fn lk<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// Records a failure; the test fails at the end with every message.
pub fn fail(msg: String) {
    bump(C::Failures);
    let mut failures = lk(&FAILURES);
    if failures.len() < 64 {
        failures.push(msg);
    }
}

pub fn set_phase(phase: String) {
    *lk(&PHASE) = phase;
    PROGRESS.fetch_add(1, SeqCst);
}

/// Writes to the process's stderr directly: visible even when the harness captures output
/// (and from the watchdog, which exits the process).
pub fn say(msg: &str) {
    let _ = writeln!(std::io::stderr().lock(), "{msg}");
}

/// Keeps `budget` for the end-of-runtime check (and the watchdog's report).
pub fn track_budget(name: &str, budget: &MkBudget) {
    let mut list = lk(&BUDGETS);
    if list.len() < 4096 {
        list.push((name.to_string(), budget.clone()));
    }
}

/// Keeps the current task's budget, if it has one.
pub fn track_current(name: &str) {
    if let Some(b) = MkBudget::current() {
        track_budget(name, &b);
    }
}
