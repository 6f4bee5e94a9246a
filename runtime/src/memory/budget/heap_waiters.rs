//! Budgets with requests waiting, for heap memory that comes back.
//!
//! A budget's waiting requests are served when memory is released through the budget itself
//! (a guard dropped). With [`MkGlobalAlloc`](crate::heap::MkGlobalAlloc) installed, a budget's
//! count also falls when its tasks free ordinary heap memory, on any thread, inside the
//! allocator, where nothing may be woken. Budgets with waiters are listed here instead, and the
//! runtime's workers serve them: after a poll (at most once per `SERVE_EVERY` per worker) and,
//! while the list is not empty, at least every `RECHECK` when idle.

use super::{Inner, MkBudget};
use crate::sync::lock_std;
use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

/// How often a busy worker serves the listed budgets.
pub(crate) const SERVE_EVERY: Duration = Duration::from_millis(1);

static LISTED: Mutex<Vec<Weak<Inner>>> = Mutex::new(Vec::new());
static COUNT: AtomicUsize = AtomicUsize::new(0);

/// Whether some budget has requests waiting that heap frees may satisfy.
#[inline]
pub(crate) fn any() -> bool {
    COUNT.load(SeqCst) != 0
}

/// Lists `budget`, which has just queued a request (called after its waiting count rose, so
/// a `serve` that drops it from the list meanwhile saw the count at 0 before the rise).
pub(super) fn list(budget: &MkBudget) {
    if !crate::heap::installed() {
        return;
    }
    // The list is the runtime's memory, not the waiting task's.
    let _engine = crate::heap::engine();
    let mut listed = lock_std(&LISTED);
    if !listed
        .iter()
        .any(|w| w.as_ptr() == Arc::as_ptr(&budget.inner))
    {
        listed.push(Arc::downgrade(&budget.inner));
        COUNT.store(listed.len(), SeqCst);
        drop(listed);
        // The runtime's worker asleep in its driver may sleep with no time limit: wake it,
        // so that it sleeps again looking at the listed budgets every `RECHECK`.
        crate::driver::with_current(|driver| {
            if let Some(driver) = driver {
                driver.wake();
            }
        });
    }
}

/// Serves every listed budget's waiting requests that fit now, and unlists budgets with none
/// left. Wakers run with no lock held.
pub(crate) fn serve() {
    let budgets: Vec<MkBudget> = {
        let _engine = crate::heap::engine();
        let listed = lock_std(&LISTED);
        listed
            .iter()
            .filter_map(Weak::upgrade)
            .map(|inner| MkBudget { inner })
            .collect()
    };
    for budget in &budgets {
        budget.serve_if_waiting();
    }
    let _engine = crate::heap::engine();
    // Handles upgraded under the lock are dropped after it: the last one drops the budget and
    // any wakers still queued in it.
    let mut upgraded = Vec::new();
    let mut listed = lock_std(&LISTED);
    listed.retain(|w| match w.upgrade() {
        Some(inner) => {
            let budget = MkBudget { inner };
            let keep = budget.waiting() > 0;
            upgraded.push(budget);
            keep
        }
        None => false,
    });
    COUNT.store(listed.len(), SeqCst);
    drop(listed);
    drop(upgraded);
    drop(budgets);
}
