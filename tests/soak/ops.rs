//! The operations the driver picks at random, with their weights, and how each is issued.

use crate::common::KIB;
use crate::counted::{counted, counted_fn, note_join, Obj, Out};
use crate::counters::{bump, C};
use crate::env::Env;
use crate::epoch::reap;
use crate::report::report;
use crate::rng::Rng;
use crate::state::{fail, track_current};
use crate::tasks::{
    admission, arena_consumer, arena_producer, blocking_body, box_consumer, box_producer,
    builder_body, evict_body, foreign, nest, panicky, pool_body, socket_waits, victim, wait_body,
    waker_panics, work,
};
use crate::timer::{bounded, sleep};
use crate::WAIT_LIMIT;
use futures::future::{select, Either};
use memkit_async::{
    spawn_with_budget, task, JoinHandle, MkAllocError, MkAsyncChannel, MkBackpressure, Runtime,
};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

#[derive(Clone, Copy, Debug)]
pub enum Op {
    Spawn,
    SpawnBudget,
    Builder,
    Reserve,
    Abort,
    Panic,
    Foreign,
    Wait,
    Fail,
    Timeout,
    Evict,
    Boxes,
    Arenas,
    Blocking,
    BlockOn,
    WakerPanic,
    Sockets,
}

pub const OPS: &[(Op, usize)] = &[
    (Op::Spawn, 8),
    (Op::SpawnBudget, 8),
    (Op::Builder, 8),
    (Op::Reserve, 3),
    (Op::Abort, 6),
    (Op::Panic, 4),
    (Op::Foreign, 5),
    (Op::Wait, 8),
    (Op::Fail, 5),
    (Op::Timeout, 5),
    (Op::Evict, 5),
    (Op::Boxes, 4),
    (Op::Arenas, 3),
    (Op::Blocking, 4),
    (Op::BlockOn, 1),
    (Op::WakerPanic, 2),
    (Op::Sockets, 3),
];

pub fn pick_op(rng: &mut Rng) -> Op {
    let total: usize = OPS.iter().map(|&(_, w)| w).sum();
    let mut x = rng.below(total);
    for &(op, w) in OPS {
        if x < w {
            return op;
        }
        x -= w;
    }
    unreachable!("weights cover the range")
}

pub struct Pending {
    pub what: String,
    pub handle: JoinHandle<Out>,
}

/// Issues one operation from the driver thread.
pub fn issue(op: Op, rt: &Runtime, env: &Arc<Env>, rng: &mut Rng, pending: &mut Vec<Pending>) {
    let h = &env.handle;
    let (e, r) = (env.clone(), rng.fork());
    let mut push = |what: &str, handle: JoinHandle<Out>| {
        pending.push(Pending {
            what: what.into(),
            handle,
        })
    };
    match op {
        Op::Spawn => {
            if rng.one_in(3) {
                bump(C::OpNest);
                push("orchestrator", h.spawn(counted(nest(e, r))));
            } else {
                bump(C::OpSpawn);
                let waits = env.waits();
                push("spawn", h.spawn(counted(work(e, r, waits, "spawn"))));
            }
        }
        Op::SpawnBudget => {
            bump(C::OpSpawnBudget);
            let bytes = rng.range(128 * KIB, 512 * KIB);
            let waits = env.waits();
            let _enter = rt.enter();
            push(
                "spawn_with_budget",
                spawn_with_budget(
                    bytes,
                    counted(async move {
                        track_current("spawn_with_budget");
                        work(e, r, waits, "spawn_with_budget").await
                    }),
                ),
            );
        }
        Op::Builder => {
            bump(C::OpBuilder);
            let name = format!("b{}", rng.below(1000));
            let mut b = task::Builder::new().name(&name);
            // `max_waits`: how many `Wait` requests the task may await (see the module docs).
            let (max_waits, budget) = match rng.below(4) {
                1 => {
                    let bytes = rng.range(128 * KIB, 512 * KIB);
                    b = b.budget(bytes);
                    (env.waits(), format!("{bytes} bytes"))
                }
                2 => {
                    // Shared: one awaited request, made holding nothing. Never on the `Evict`
                    // pool: its cache holds memory that only `Evict` requests take back, so a
                    // `Wait` request there may wait for good.
                    let pools = [
                        ("wait_a", &env.wait_a, 1),
                        ("fail_pool", &env.fail_pool, 1),
                        ("timeout_pool", &env.timeout_pool, 1),
                        ("evict_pool", &env.evict_pool, 0),
                    ];
                    let (pool, budget, waits) = pools[rng.below(pools.len())];
                    b = b.budget(budget);
                    (waits, pool.to_string())
                }
                _ => (env.waits(), "none".to_string()),
            };
            let policy = rng.one_in(2).then(|| rng.policy());
            if let Some(p) = policy {
                b = b.policy(p);
            }
            let oversize = rng.one_in(40);
            let reserve = match rng.below(3) {
                _ if oversize => env.root.limit() + 1,
                0 => rng.range(KIB, 64 * KIB),
                _ => 0,
            };
            if reserve > 0 {
                b = b.reserve(reserve);
            }
            let waits = if reserve > 0 { 0 } else { max_waits };
            match b.spawn_on(counted(builder_body(e, r, name, waits)), h) {
                Ok(handle) => push(
                    &format!(
                        "task::Builder(budget {budget}, policy {policy:?}, reserve {reserve})"
                    ),
                    handle,
                ),
                Err(MkAllocError::ExceedsLimit { .. }) if oversize => bump(C::FaultExceeds),
                Err(err) => fail(format!("task::Builder::spawn_on failed: {err}")),
            }
        }
        Op::Reserve => {
            bump(C::OpReserve);
            let spawned = task::Builder::new()
                .name("admission batch")
                .budget(&env.admit_pool)
                .spawn_on(counted(admission(e, r)), h);
            push(
                "admission batch",
                spawned.expect("no reservation, so it spawns"),
            );
        }
        Op::Abort => {
            bump(C::OpAbort);
            if !pending.is_empty() && rng.one_in(2) {
                pending[rng.below(pending.len())].handle.abort();
                bump(C::FaultAbort);
            } else {
                let handle = if rng.one_in(2) {
                    let pool = if rng.one_in(2) {
                        &env.wait_a
                    } else {
                        &env.wait_b
                    };
                    task::Builder::new()
                        .budget(pool)
                        .spawn_on(counted(wait_body(r)), h)
                        .expect("no reservation, so it spawns")
                } else {
                    h.spawn(counted(victim(e, r)))
                };
                if rng.one_in(2) {
                    handle.abort();
                    bump(C::FaultAbort);
                }
                pending.push(Pending {
                    what: "abort victim".into(),
                    handle,
                });
            }
        }
        Op::Panic => {
            bump(C::OpPanic);
            push("panicking task", h.spawn(counted(panicky(e, r))));
        }
        Op::Foreign => {
            bump(C::OpForeign);
            push("foreign wake-ups", h.spawn(counted(foreign(e, r))));
        }
        Op::Wait => {
            bump(C::OpWait);
            let pool = if rng.one_in(2) {
                &env.wait_a
            } else {
                &env.wait_b
            };
            if rng.one_in(8) {
                // A memory wait on a plain thread, outside any task.
                let (budget, bytes, hold) = (pool.clone(), rng.range(1, 4096), rng.micros(1000));
                env.thread(move || {
                    bump(C::ForeignBlockOn);
                    let what = "MkBudget::acquire on a foreign thread";
                    match futures::executor::block_on(bounded(
                        WAIT_LIMIT,
                        what,
                        budget.acquire(bytes),
                    )) {
                        Some(Ok(guard)) => {
                            bump(C::Acquired);
                            thread::sleep(hold);
                            drop(guard);
                        }
                        Some(Err(err)) => fail(format!("{what} failed: {err}")),
                        None => {}
                    }
                });
            } else {
                let spawned = task::Builder::new()
                    .budget(pool)
                    .spawn_on(counted(wait_body(r)), h);
                push("Wait task", spawned.expect("no reservation, so it spawns"));
            }
        }
        Op::Fail => {
            bump(C::OpFail);
            let b = if rng.one_in(2) {
                task::Builder::new().budget(&env.fail_pool)
            } else {
                task::Builder::new()
                    .budget(&env.timeout_pool)
                    .policy(MkBackpressure::Fail)
            };
            let spawned = b.spawn_on(counted(pool_body(e, r, "Fail task")), h);
            push("Fail task", spawned.expect("no reservation, so it spawns"));
        }
        Op::Timeout => {
            bump(C::OpTimeout);
            let d = MkBackpressure::Timeout(Duration::from_millis(rng.range(1, 5) as u64));
            let b = match rng.below(3) {
                0 => task::Builder::new().budget(&env.timeout_pool),
                1 => task::Builder::new().budget(&env.fail_pool).policy(d),
                _ => task::Builder::new()
                    .budget(rng.range(16 * KIB, 64 * KIB))
                    .policy(d),
            };
            let spawned = b.spawn_on(counted(pool_body(e, r, "Timeout task")), h);
            push(
                "Timeout task",
                spawned.expect("no reservation, so it spawns"),
            );
        }
        Op::Evict => {
            bump(C::OpEvict);
            let spawned = task::Builder::new()
                .budget(&env.evict_pool)
                .spawn_on(counted(evict_body(e, r)), h);
            push("Evict task", spawned.expect("no reservation, so it spawns"));
        }
        Op::Boxes => {
            bump(C::OpBoxes);
            // Bounded by bytes, one to four boxes' worth, under a random policy for the sender.
            let bound = rng.range(1, 5) * size_of::<Obj>();
            let (tx, rx) = MkAsyncChannel::bounded_bytes(bound, rng.policy());
            push(
                "box consumer",
                h.spawn(counted(box_consumer(e.clone(), rng.fork(), rx))),
            );
            let policy = rng.policy();
            let waits = match policy {
                MkBackpressure::Wait => env.waits(),
                _ => 0,
            };
            let spawned = task::Builder::new()
                .name("box producer")
                .budget(rng.range(128 * KIB, 256 * KIB))
                .policy(policy)
                .spawn_on(counted(box_producer(e, r, tx, waits)), h);
            push(
                "box producer",
                spawned.expect("no reservation, so it spawns"),
            );
        }
        Op::Arenas => {
            bump(C::OpArenas);
            let (tx, rx) = MkAsyncChannel::bounded(rng.range(1, 3), MkBackpressure::Wait);
            push(
                "arena consumer",
                h.spawn(counted(arena_consumer(e.clone(), rng.fork(), rx))),
            );
            push("arena producer", h.spawn(counted(arena_producer(e, r, tx))));
        }
        Op::Blocking => {
            bump(C::OpBlocking);
            push(
                "spawn_blocking",
                rt.spawn_blocking(counted_fn(move || blocking_body(e, r))),
            );
        }
        Op::WakerPanic => {
            bump(C::OpWakerPanic);
            push("panicking wakers", h.spawn(counted(waker_panics(e, r))));
        }
        Op::Sockets => {
            bump(C::OpSockets);
            push("cancelled socket waits", h.spawn(counted(socket_waits(r))));
        }
        Op::BlockOn => {
            bump(C::OpBlockOn);
            if !pending.is_empty() {
                let Pending { what, mut handle } = pending.swap_remove(rng.below(pending.len()));
                // Keeps reaping meanwhile: finished outputs may hold memory that the awaited
                // task waits for, and only this thread drops them.
                let res = rt.block_on(async {
                    let deadline = Instant::now() + WAIT_LIMIT;
                    loop {
                        let tick = sleep(Duration::from_millis(1));
                        if let Either::Left((res, _)) = select(&mut handle, tick).await {
                            break Some(res);
                        }
                        reap(pending);
                        if Instant::now() > deadline {
                            fail(format!(
                                "stuck: block_on({what}) did not finish within {WAIT_LIMIT:?}; \
                                 state then:\n{}",
                                report()
                            ));
                            break None;
                        }
                    }
                });
                if let Some(res) = res {
                    note_join(res, &what);
                }
            }
        }
    }
}
