//! One runtime's life: operations until its time is up, then a graceful or mid-flight
//! shutdown, and the checks after it.

use crate::counted::note_join;
use crate::counters::bump;
use crate::counters::{get, live_futures, C};
use crate::env::build_env;
use crate::env::Env;
use crate::ops::{issue, pick_op, Pending};
use crate::rng::Rng;
use crate::state::{fail, lk, set_phase, BUDGETS, METRICS, OUTSTANDING};
use crate::timer::flush_timer;
use crate::{MAX_LIVE, MAX_OUTSTANDING, SETTLE};
use futures::FutureExt;
use std::sync::atomic::Ordering::SeqCst;
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

/// Accounts for every finished handle.
pub fn reap(pending: &mut Vec<Pending>) {
    let mut i = 0;
    while i < pending.len() {
        if pending[i].handle.is_finished() {
            let p = pending.swap_remove(i);
            // Unconstrained: inside `block_on` the task's cooperative budget may be spent, and a
            // spent budget makes even a finished handle answer `Pending`.
            match memkit_async::task::unconstrained(p.handle).now_or_never() {
                Some(res) => note_join(res, &p.what),
                None => fail(format!(
                    "{}: is_finished() but awaiting the handle is still pending",
                    p.what
                )),
            }
        } else {
            i += 1;
        }
    }
    OUTSTANDING.store(pending.len(), SeqCst);
}

/// Waits until `cond` holds; `false` (with a failure recorded) after [`SETTLE`].
pub fn settle(what: &str, mut cond: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + SETTLE;
    while !cond() {
        if Instant::now() > deadline {
            fail(format!("not settled within {SETTLE:?}: {what}"));
            return false;
        }
        thread::sleep(Duration::from_millis(1));
    }
    true
}

/// Runs one runtime from build to drop; `false` if its end-of-life checks failed.
pub fn run_epoch(rng: &mut Rng, epoch: u64, end: Instant) -> bool {
    let (rt, env, desc) = build_env(rng, epoch);
    *lk(&METRICS) = Some(rt.metrics());
    let epoch_end = (Instant::now() + Duration::from_millis(rng.range(100, 800) as u64)).min(end);
    let mut pending: Vec<Pending> = Vec::new();
    set_phase(format!("runtime {epoch} ({desc}): issuing operations"));
    while Instant::now() < epoch_end {
        reap(&mut pending);
        if pending.len() >= MAX_OUTSTANDING || live_futures() >= MAX_LIVE {
            thread::sleep(Duration::from_micros(200));
            continue;
        }
        let op = pick_op(rng);
        issue(op, &rt, &env, rng, &mut pending);
        if rng.one_in(16) {
            thread::sleep(rng.micros(300));
        }
    }
    let graceful = epoch_end >= end || rng.one_in(2);
    if graceful {
        set_phase(format!(
            "runtime {epoch} ({desc}): draining before a graceful drop"
        ));
        let m = rt.metrics();
        loop {
            reap(&mut pending);
            if pending.is_empty() && m.num_alive_tasks() == 0 && live_futures() == 0 {
                break;
            }
            thread::sleep(Duration::from_millis(1));
        }
        env.join_threads();
        let state = (
            m.num_alive_tasks(),
            m.tasks_waiting_for_memory(),
            m.tasks_awaiting_admission(),
            m.memory_waiting(),
        );
        if state != (0, 0, 0, 0) {
            fail(format!(
                "runtime {epoch}: drained, yet (alive tasks, waiting for memory, awaiting \
                 admission, root waiters) = {state:?}"
            ));
        }
        env.cache.clear();
        settle("the root budget is back to 0 before the drop", || {
            m.memory_used() == 0
        });
        set_phase(format!("runtime {epoch} ({desc}): graceful drop"));
        drop(rt);
        bump(C::Graceful);
    } else {
        let live = live_futures();
        set_phase(format!(
            "runtime {epoch} ({desc}): shutdown mid-flight with {} handles and {live} futures live",
            pending.len()
        ));
        match rng.below(4) {
            0 => {
                bump(C::ShutdownDrop);
                drop(rt);
            }
            1 => {
                bump(C::ShutdownTimeout);
                rt.shutdown_timeout(Duration::from_secs(5));
            }
            2 => {
                bump(C::ShutdownBackground);
                rt.shutdown_background();
            }
            _ => {
                bump(C::ShutdownThread);
                let dropper = thread::spawn(move || drop(rt));
                if dropper.join().is_err() {
                    fail("dropping a runtime on another thread panicked".into());
                }
            }
        }
    }
    finish_epoch(epoch, &desc, env, pending)
}

/// After the runtime is gone: every handle resolves, every future and object is dropped once,
/// every budget is back to 0.
pub fn finish_epoch(epoch: u64, desc: &str, env: Arc<Env>, mut pending: Vec<Pending>) -> bool {
    set_phase(format!("runtime {epoch} ({desc}): end-of-life checks"));
    let mut ok = settle(
        "every join handle resolves after the runtime is gone",
        || pending.iter().all(|p| p.handle.is_finished()),
    );
    reap(&mut pending);
    ok &= settle("every future created is dropped", || live_futures() == 0);
    env.join_threads();
    flush_timer();
    env.cache.clear();
    drop(env);
    *lk(&METRICS) = None;
    let budgets = std::mem::take(&mut *lk(&BUDGETS));
    ok &= settle("every budget is back to 0 used and 0 waiting", || {
        budgets
            .iter()
            .all(|(_, b)| b.used() == 0 && b.waiting() == 0)
    });
    for (name, b) in &budgets {
        if b.used() != 0 || b.waiting() != 0 {
            fail(format!(
                "runtime {epoch} ({desc}): budget {name} not released: {b:?}"
            ));
        }
        bump(C::BudgetsChecked);
    }
    ok &= settle("every object created is dropped", || {
        get(C::ObjDropped) == get(C::ObjCreated)
    });
    if !ok {
        // Keep the budgets visible to the report.
        lk(&BUDGETS).extend(budgets);
    }
    ok
}
