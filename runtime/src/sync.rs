//! Synchronisation primitives used by the engine, switched to loom's checked versions under
//! `--cfg loom` so the loom models exercise the real task and scheduler code, not a copy.

#[cfg(loom)]
pub(crate) use loom::sync::{
    atomic::{fence, AtomicBool, AtomicUsize, Ordering},
    Mutex, MutexGuard,
};

#[cfg(not(loom))]
pub(crate) use std::sync::{
    atomic::{fence, AtomicBool, AtomicUsize, Ordering},
    Mutex, MutexGuard,
};

/// Locks `mutex`, ignoring poisoning: the engine never panics while holding its own locks, and
/// a panic in user code is caught before it can unwind through one.
pub(crate) fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    match mutex.lock() {
        Ok(guard) => guard,
        Err(poisoned) => poisoned.into_inner(),
    }
}

/// [`lock`] for the std mutexes that pair with a `Condvar` (thread lifecycle, blocking pool),
/// which loom does not model.
pub(crate) fn lock_std<T>(mutex: &std::sync::Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    match mutex.lock() {
        Ok(guard) => guard,
        Err(poisoned) => poisoned.into_inner(),
    }
}

/// Waits on `condvar` while `waiting` holds, for at most `timeout` (forever if `None`); also
/// returns `true` if it gave up with `waiting` still holding.
pub(crate) fn wait_while_for<'a, T>(
    condvar: &std::sync::Condvar,
    guard: std::sync::MutexGuard<'a, T>,
    timeout: Option<std::time::Duration>,
    waiting: impl FnMut(&mut T) -> bool,
) -> (std::sync::MutexGuard<'a, T>, bool) {
    match timeout {
        None => (
            condvar
                .wait_while(guard, waiting)
                .unwrap_or_else(|e| e.into_inner()),
            false,
        ),
        Some(t) => {
            let (guard, res) = condvar
                .wait_timeout_while(guard, t, waiting)
                .unwrap_or_else(|e| e.into_inner());
            (guard, res.timed_out())
        }
    }
}
