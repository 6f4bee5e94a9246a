//! Synchronisation primitives used by the engine, switched to loom's checked versions under
//! `--cfg loom` so the loom models exercise the real task, scheduler, budget and chunk code, not
//! a copy; and the one waiter list ([`wait_list`]) every queue of waiting requests is built on.

pub mod wait_list;

#[cfg(loom)]
pub(crate) use loom::sync::{
    atomic::{fence, AtomicBool, AtomicIsize, AtomicPtr, AtomicU64, AtomicUsize, Ordering},
    Mutex, MutexGuard,
};

#[cfg(not(loom))]
pub(crate) use std::sync::{
    atomic::{fence, AtomicBool, AtomicIsize, AtomicPtr, AtomicU64, AtomicUsize, Ordering},
    Mutex, MutexGuard,
};

/// Reads `counter` where it is the read half of a store-buffer pattern: one side makes a
/// `SeqCst` write to `counter` and then reads another atomic, the other side (the caller)
/// writes that atomic and then reads `counter`, and the total order of `SeqCst` accesses
/// guarantees that at least one side sees the other's write. Loom models `SeqCst` accesses as
/// only `AcqRel` (its README lists this) and would report lost wake-ups that cannot happen, so
/// the loom build reads with an RMW instead, which always sees the latest write and
/// synchronizes through `counter` alone; a `SeqCst` fence would do too, but would also order
/// unrelated accesses and hide missing orderings elsewhere from the models. Elsewhere it is a
/// plain `SeqCst` load: an RMW or a fence would cost every release about 5 ns.
#[inline(always)]
pub(crate) fn load_store_buffered(counter: &AtomicUsize) -> usize {
    if cfg!(loom) {
        counter.fetch_add(0, Ordering::SeqCst)
    } else {
        counter.load(Ordering::SeqCst)
    }
}

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

/// Runs `f` under loom with `preemptions` as the preemption bound (`None`: every interleaving;
/// `LOOM_MAX_PREEMPTIONS` overrides it) and prints how many executions were explored, for the
/// models of the memory code.
#[cfg(all(test, loom))]
pub(crate) fn loom_model<F>(name: &str, preemptions: Option<usize>, f: F)
where
    F: Fn() + Sync + Send + 'static,
{
    use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};
    let executions = std::sync::Arc::new(AtomicUsize::new(0));
    let mut builder = loom::model::Builder::new();
    if builder.preemption_bound.is_none() {
        builder.preemption_bound = preemptions;
    }
    let bound = builder.preemption_bound;
    let start = std::time::Instant::now();
    let counted = executions.clone();
    builder.check(move || {
        counted.fetch_add(1, Relaxed);
        f();
    });
    println!(
        "loom model {name}: {} executions, preemption bound {bound:?}, {:?}",
        executions.load(Relaxed),
        start.elapsed()
    );
}
