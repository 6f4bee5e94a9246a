//! Tasks that wait for memory, use the shared pools, the `Evict` cache, admission
//! reservations and `task::Builder`.

use crate::alloc::Al;
use crate::common::KIB;
use crate::counted::{blob_ok, counted, maybe_panic, note_join, Out};
use crate::counters::{bump, C};
use crate::env::Env;
use crate::rng::Rng;
use crate::state::{fail, track_current};
use crate::tasks::work;
use crate::timer::{bounded, sleep};
use crate::WAIT_LIMIT;
use memkit_async::task::yield_now;
use memkit_async::{task, MkAllocError, MkAsyncVec, MkBudget};
use std::sync::Arc;

/// On a 16 KiB `Wait` budget shared with many tasks: one awaited request made holding nothing
/// (a box, a vector, or the budget itself), held a moment, then only `try_` requests.
pub async fn wait_body(mut rng: Rng) -> Out {
    let budget = MkBudget::current().expect("wait tasks have a budget");
    let mut al = Al::new(budget.policy(), 1);
    if rng.one_in(24) {
        // Can never fit: refused at once, even under `Wait`.
        let res = bounded(
            WAIT_LIMIT,
            "an oversize Wait request",
            MkAsyncVec::<u8>::with_capacity(budget.limit() + 1),
        )
        .await;
        match res {
            Some(Err(MkAllocError::ExceedsLimit { .. })) => bump(C::FaultExceeds),
            Some(Err(e)) => fail(format!("an oversize Wait request failed with {e}")),
            Some(Ok(_)) => fail("an oversize Wait request was served".into()),
            None => {}
        }
        return Out::Unit;
    }
    let tag = rng.next();
    let mut guard = None;
    let mut bytes = None;
    let mut obj = None;
    let mut blob = None;
    match rng.below(4) {
        0 => blob = al.blob(tag).await,
        1 => {
            let n = rng.range(1, 4096);
            let got = MkAsyncVec::<u8>::with_capacity(n).await;
            al.waits_left = 0;
            if let Some(mut v) = al.note(true, got) {
                for i in 0..n {
                    if v.try_push(i as u8).is_err() {
                        fail("a vector refused a push within its capacity".into());
                        break;
                    }
                }
                bytes = Some(v);
            }
        }
        2 => {
            let res = budget.acquire(rng.range(1, 4096)).await;
            al.waits_left = 0;
            match res {
                Ok(g) => {
                    bump(C::Acquired);
                    guard = Some(g);
                }
                Err(e) => fail(format!("MkBudget::acquire under Wait failed: {e}")),
            }
        }
        _ => obj = al.obj(tag).await,
    }
    if rng.one_in(2) {
        sleep(rng.micros(1500)).await;
    } else {
        yield_now().await;
    }
    let extra = al.obj(rng.next()).await; // `try_` only from here on
    maybe_panic(&mut rng, 40, "Wait task");
    let ok = blob.as_ref().is_none_or(|b| b[0] == tag && blob_ok(b))
        && bytes
            .as_ref()
            .is_none_or(|v| v.iter().enumerate().all(|(i, &x)| x == i as u8))
        && obj.as_ref().is_none_or(|b| b.ok())
        && extra.as_ref().is_none_or(|b| b.ok());
    if !ok {
        fail("a Wait task's memory changed while it held it".into());
    }
    drop((guard, bytes, blob, extra));
    obj.map_or(Out::Unit, Out::Obj)
}

/// On a `Fail`, `Timeout` or `Evict` budget: a direct `try_acquire`, then generic work.
pub async fn pool_body(env: Arc<Env>, mut rng: Rng, site: &'static str) -> Out {
    if let Some(budget) = MkBudget::current() {
        if rng.one_in(3) {
            match budget.try_acquire(rng.range(1, 8 * KIB)) {
                Ok(g) => {
                    bump(C::Acquired);
                    yield_now().await;
                    drop(g);
                }
                Err(MkAllocError::CapacityReached { .. }) => bump(C::ErrTry),
                Err(e) => fail(format!("{site}: try_acquire failed with {e}")),
            }
        }
    }
    work(env, rng, 0, site).await
}

/// Fills the evictable cache, then allocates under `Evict`.
pub async fn evict_body(env: Arc<Env>, mut rng: Rng) -> Out {
    for _ in 0..rng.range(1, 4) {
        match env.evict_pool.try_acquire(rng.range(512, 8 * KIB)) {
            Ok(g) => {
                bump(C::Acquired);
                env.cache.insert(g);
            }
            Err(MkAllocError::CapacityReached { .. }) => bump(C::ErrEvict),
            Err(e) => fail(format!("try_acquire on the Evict budget failed with {e}")),
        }
    }
    work(env, rng, 0, "Evict task").await
}

/// An admission batch: children reserve bytes of `admit_pool` (this task's budget) and run
/// only once admitted; some are aborted, maybe while still waiting for admission.
pub async fn admission(env: Arc<Env>, mut rng: Rng) -> Out {
    let mut kids = Vec::new();
    for i in 0..rng.range(2, 8) {
        let oversize = rng.one_in(30);
        let reserve = if oversize {
            env.admit_pool.limit() + 1
        } else {
            rng.range(2 * KIB, 24 * KIB)
        };
        let name = format!("admitted-{i}");
        let mut b = task::Builder::new().name(&name).reserve(reserve);
        if rng.one_in(2) {
            b = b.policy(rng.policy());
        }
        if rng.one_in(3) {
            b = b.budget(rng.range(32 * KIB, 64 * KIB));
        }
        let body = reserved(env.clone(), rng.fork(), name, reserve);
        match b.spawn(counted(body)) {
            Ok(kid) => kids.push(kid),
            Err(MkAllocError::ExceedsLimit { .. }) if oversize => bump(C::FaultExceeds),
            Err(e) => fail(format!("spawning with reserve({reserve}) failed: {e}")),
        }
    }
    for kid in &kids {
        if rng.one_in(4) {
            kid.abort();
            bump(C::FaultAbort);
        }
    }
    for kid in kids {
        if let Some(res) = bounded(WAIT_LIMIT, "an admitted child", kid).await {
            note_join(res, "admitted child");
        }
    }
    Out::Unit
}

/// A task with a reservation: it holds it while it runs, so it never awaits a `Wait` request.
pub async fn reserved(env: Arc<Env>, rng: Rng, name: String, reserve: usize) -> Out {
    bump(C::Admitted);
    if task::name().as_deref() != Some(name.as_str()) {
        fail(format!("task::name() is {:?}, not {name:?}", task::name()));
    }
    if env.admit_pool.used() < reserve {
        fail(format!(
            "a task admitted with reserve({reserve}) runs while its parent holds only {} bytes",
            env.admit_pool.used()
        ));
    }
    work(env, rng, 0, "admitted task").await
}

/// A `task::Builder` task: checks its name, then generic work.
pub async fn builder_body(env: Arc<Env>, rng: Rng, name: String, waits: u32) -> Out {
    if task::name().as_deref() != Some(name.as_str()) {
        fail(format!("task::name() is {:?}, not {name:?}", task::name()));
    }
    track_current("task::Builder");
    work(env, rng, waits, "task::Builder").await
}
