//! Generic work, nested children, blocking closures, foreign-thread wake-ups and tasks made
//! to be aborted.

use crate::alloc::Al;
use crate::common::KIB;
use crate::counted::{
    blob_ok, counted, counted_fn, maybe_panic, note_join, vec_ok, Blob, Obj, Out,
};
use crate::counters::{bump, C};
use crate::env::Env;
use crate::rng::Rng;
use crate::state::{fail, track_current};
use crate::timer::{bounded, sleep};
use crate::WAIT_LIMIT;
use futures::channel::{mpsc, oneshot};
use futures::StreamExt;
use memkit_async::task::yield_now;
use memkit_async::{spawn_with_budget, task, JoinHandle, MkArena, MkAsyncBox, MkAsyncVec};
use std::sync::Arc;
use std::thread;
use std::time::Duration;

/// Generic work: allocations, yields, sleeps, checks; may panic; may return what it holds.
pub async fn work(env: Arc<Env>, mut rng: Rng, waits: u32, site: &'static str) -> Out {
    let mut al = Al::current(&env, waits);
    let mut objs: Vec<MkAsyncBox<Obj>> = Vec::new();
    let mut blobs: Vec<MkAsyncBox<Blob>> = Vec::new();
    let mut vecs: Vec<(MkAsyncVec<u64>, u64)> = Vec::new();
    for _ in 0..rng.range(1, 6) {
        match rng.below(10) {
            0..=2 => {
                if let Some(b) = al.obj(rng.next()).await {
                    objs.push(b);
                }
            }
            3 => {
                if let Some(b) = al.blob(rng.next()).await {
                    blobs.push(b);
                }
            }
            4 if vecs.len() < 2 => {
                let (n, tag) = (rng.range(1, 256), rng.next());
                if let Some(v) = al.vec(n, tag).await {
                    vecs.push(v);
                }
            }
            5 | 6 => yield_now().await,
            7 => sleep(rng.micros(2000)).await,
            8 if !objs.is_empty() => {
                let gone = objs.swap_remove(rng.below(objs.len()));
                if !gone.ok() {
                    fail(format!("{site}: a box changed while its task held it"));
                }
            }
            _ => {
                for _ in 0..3 {
                    yield_now().await;
                }
            }
        }
        maybe_panic(&mut rng, 50, site);
    }
    let ok = objs.iter().all(|b| b.ok())
        && blobs.iter().all(|b| blob_ok(b))
        && vecs.iter().all(|(v, tag)| vec_ok(v, *tag));
    if !ok {
        fail(format!("{site}: memory changed while its task held it"));
    }
    match rng.below(5) {
        0 => objs.pop().map_or(Out::Unit, Out::Obj),
        1 => blobs.pop().map_or(Out::Unit, Out::Blob),
        2 => vecs.pop().map_or(Out::Unit, |(v, tag)| Out::Vec(v, tag)),
        _ => Out::Unit,
    }
}

/// Spawns nested children of every kind, aborts some, awaits all.
pub async fn nest(env: Arc<Env>, mut rng: Rng) -> Out {
    let mut kids: Vec<JoinHandle<Out>> = Vec::new();
    for _ in 0..rng.range(1, 6) {
        let (e, r, waits) = (env.clone(), rng.fork(), env.waits());
        let kid = match rng.below(6) {
            0 => memkit_async::spawn(counted(work(e, r, waits, "nested spawn"))),
            1 => spawn_with_budget(
                rng.range(128 * KIB, 512 * KIB),
                counted(async move {
                    track_current("nested spawn_with_budget");
                    work(e, r, waits, "nested spawn_with_budget").await
                }),
            ),
            2 => memkit_async::spawn_blocking(counted_fn(move || blocking_body(e, r))),
            3 => task::Builder::new()
                .name("nested")
                .policy(rng.policy())
                .spawn(counted(work(e, r, waits, "nested builder")))
                .expect("a task without a reservation always spawns"),
            4 => memkit_async::spawn(counted(foreign(e, r))),
            _ => memkit_async::spawn(counted(victim(e, r))),
        };
        kids.push(kid);
    }
    for kid in &kids {
        if rng.one_in(4) {
            kid.abort();
            bump(C::FaultAbort);
        }
    }
    yield_now().await;
    for kid in kids {
        if let Some(res) = bounded(WAIT_LIMIT, "a nested child", kid).await {
            note_join(res, "nested child");
        }
    }
    maybe_panic(&mut rng, 20, "orchestrator");
    Out::Unit
}

/// A blocking closure: sleeps, may panic, may fill an arena and hand it back.
pub fn blocking_body(env: Arc<Env>, mut rng: Rng) -> Out {
    thread::sleep(rng.micros(2000));
    maybe_panic(&mut rng, 16, "spawn_blocking");
    if rng.one_in(2) {
        let arena = MkArena::new(&env.arena_pool);
        let al = Al::new(env.arena_pool.policy(), 0);
        for _ in 0..rng.range(1, 32) {
            let res = arena.alloc(Obj::new(rng.next())).map(|_| ());
            if al.note(false, res).is_none() {
                break;
            }
        }
        Out::Arena(arena)
    } else {
        Out::Unit
    }
}

/// Wake-ups from foreign std threads.
pub async fn foreign(env: Arc<Env>, mut rng: Rng) -> Out {
    let mut al = Al::current(&env, env.waits());
    let mut kept = None;
    for _ in 0..rng.range(1, 3) {
        let delay = rng.micros(2000);
        match rng.below(6) {
            0 => {
                let (tx, rx) = oneshot::channel();
                let v = rng.next();
                env.thread(move || {
                    thread::sleep(delay);
                    let _ = tx.send(v);
                });
                match bounded(WAIT_LIMIT, "a oneshot completed by a thread", rx).await {
                    Some(Ok(got)) if got == v => bump(C::ForeignWakes),
                    Some(Ok(got)) => fail(format!("a oneshot carried {got}, not {v}")),
                    Some(Err(_)) => fail("a thread dropped a oneshot it completes".into()),
                    None => {}
                }
            }
            1 => {
                let Some(b) = al.obj(rng.next()).await else {
                    continue;
                };
                let (tx, rx) = oneshot::channel();
                env.thread(move || {
                    thread::sleep(delay);
                    if !b.ok() {
                        fail("a box changed on its way to a thread".into());
                    }
                    let _ = tx.send(b);
                });
                match bounded(WAIT_LIMIT, "a box sent back by a thread", rx).await {
                    Some(Ok(b)) => {
                        bump(C::ForeignWakes);
                        if !b.ok() {
                            fail("a box changed on its way back from a thread".into());
                        }
                        kept = Some(b);
                    }
                    Some(Err(_)) => fail("a thread dropped a oneshot it completes".into()),
                    None => {}
                }
            }
            2 => {
                let (tx, rx) = oneshot::channel::<u64>();
                env.thread(move || {
                    thread::sleep(delay);
                    drop(tx);
                });
                match bounded(WAIT_LIMIT, "a oneshot dropped by a thread", rx).await {
                    Some(Err(oneshot::Canceled)) => bump(C::ForeignCanceled),
                    Some(Ok(_)) => fail("a dropped oneshot delivered a value".into()),
                    None => {}
                }
            }
            3 => {
                let (tx, rx) = oneshot::channel();
                let (handle, e, r, waits) =
                    (env.handle.clone(), env.clone(), rng.fork(), env.waits());
                env.thread(move || {
                    thread::sleep(delay);
                    let task = handle.spawn(counted(work(e, r, waits, "spawned from a thread")));
                    bump(C::ForeignSpawns);
                    let _ = tx.send(task);
                });
                if let Some(Ok(task)) = bounded(WAIT_LIMIT, "a handle from a thread", rx).await {
                    if let Some(res) = bounded(WAIT_LIMIT, "a task spawned by a thread", task).await
                    {
                        note_join(res, "task spawned from a foreign thread");
                    }
                }
            }
            4 => {
                let (tx, mut rx) = mpsc::unbounded::<usize>();
                let n = rng.range(1, 16);
                env.thread(move || {
                    for i in 0..n {
                        thread::sleep(delay / 8);
                        let _ = tx.unbounded_send(i);
                    }
                });
                let mut next = 0;
                while let Some(Some(i)) =
                    bounded(WAIT_LIMIT, "a stream fed by a thread", rx.next()).await
                {
                    if i != next {
                        fail(format!("a thread's stream gave {i}, expected {next}"));
                    }
                    next += 1;
                    bump(C::ForeignWakes);
                }
                if next != n {
                    fail(format!("a thread's stream ended after {next} of {n} items"));
                }
            }
            _ => {
                // A box freed on a foreign thread (a remote free), maybe after its task ended.
                if let Some(b) = al.obj(rng.next()).await {
                    env.thread(move || {
                        thread::sleep(delay);
                        drop(b);
                        bump(C::RemoteFrees);
                    });
                }
            }
        }
        maybe_panic(&mut rng, 40, "foreign wake-up");
    }
    kept.map_or(Out::Unit, Out::Obj)
}

/// A task made to be aborted: sleeping, waiting on a thread, or yielding for a while.
pub async fn victim(env: Arc<Env>, mut rng: Rng) -> Out {
    match rng.below(3) {
        0 => {
            let mut al = Al::current(&env, env.waits());
            let held = al.obj(rng.next()).await;
            sleep(Duration::from_millis(rng.range(1, 100) as u64)).await;
            drop(held);
        }
        1 => {
            let (tx, rx) = oneshot::channel();
            let delay = Duration::from_millis(rng.range(0, 20) as u64);
            env.thread(move || {
                thread::sleep(delay);
                let _ = tx.send(());
            });
            let _ = bounded(WAIT_LIMIT, "a victim's oneshot", rx).await;
        }
        _ => {
            for _ in 0..rng.range(0, 2000) {
                yield_now().await;
            }
        }
    }
    Out::Unit
}
