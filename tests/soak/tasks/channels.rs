//! Channel hand-offs of boxes and of whole arenas between tasks and threads.

use crate::alloc::Al;
use crate::counted::{counted, maybe_panic, Obj, Out};
use crate::counters::{bump, C};
use crate::env::Env;
use crate::rng::Rng;
use crate::state::fail;
use crate::timer::bounded;
use crate::WAIT_LIMIT;
use futures::channel::{mpsc, oneshot};
use futures::StreamExt;
use memkit_async::task::yield_now;
use memkit_async::{MkArena, MkAsyncBox, MkAsyncReceiver, MkAsyncSender, MkSendError};
use std::sync::Arc;

/// Sends boxes down a channel; stops when the consumer is gone.
pub async fn box_producer(
    env: Arc<Env>,
    mut rng: Rng,
    tx: MkAsyncSender<MkAsyncBox<Obj>>,
    waits: u32,
) -> Out {
    let mut al = Al::current(&env, waits);
    for _ in 0..rng.range(1, 24) {
        let Some(b) = al.obj(rng.next()).await else {
            continue;
        };
        match bounded(WAIT_LIMIT, "a send to a box consumer", tx.send(b)).await {
            Some(Ok(())) => bump(C::BoxesSent),
            // Refused by the channel's Fail or Timeout policy: the box is dropped here.
            Some(Err(MkSendError::Refused(..))) => bump(C::SendsRefused),
            Some(Err(_)) | None => break, // the consumer is gone (aborted or panicked)
        }
        if rng.one_in(4) {
            yield_now().await;
        }
        maybe_panic(&mut rng, 60, "box producer");
    }
    Out::Unit
}

/// Receives boxes: drops, keeps, relays to a third task or frees them on a foreign thread.
pub async fn box_consumer(
    env: Arc<Env>,
    mut rng: Rng,
    mut rx: MkAsyncReceiver<MkAsyncBox<Obj>>,
) -> Out {
    let relay = if rng.one_in(3) {
        let (tx, rx) = mpsc::unbounded();
        drop(memkit_async::spawn(counted(box_sink(rx))));
        Some(tx)
    } else {
        None
    };
    let mut kept = Vec::new();
    while let Some(Some(b)) = bounded(WAIT_LIMIT, "a box receive", rx.recv()).await {
        bump(C::BoxesReceived);
        if !b.ok() {
            fail("a box changed in a channel".into());
        }
        match rng.below(4) {
            0 => match &relay {
                Some(relay) => {
                    if relay.unbounded_send(b).is_ok() {
                        bump(C::BoxesSent);
                    }
                }
                None => kept.push(b),
            },
            1 => kept.push(b),
            2 => env.thread(move || {
                drop(b);
                bump(C::RemoteFrees);
            }),
            _ => drop(b),
        }
        maybe_panic(&mut rng, 100, "box consumer");
    }
    kept.pop().map_or(Out::Unit, Out::Obj)
}

pub async fn box_sink(mut rx: mpsc::UnboundedReceiver<MkAsyncBox<Obj>>) -> Out {
    while let Some(Some(b)) = bounded(WAIT_LIMIT, "a relayed box receive", rx.next()).await {
        bump(C::BoxesReceived);
        if !b.ok() {
            fail("a box changed in a relay".into());
        }
        yield_now().await;
    }
    Out::Unit
}

/// Fills whole arenas (here, or on a foreign thread with `alloc_async`) and sends them.
pub async fn arena_producer(env: Arc<Env>, mut rng: Rng, tx: MkAsyncSender<MkArena>) -> Out {
    let policy = env.arena_pool.policy();
    for _ in 0..rng.range(1, 4) {
        let count = rng.range(1, 64);
        let arena = if rng.one_in(4) {
            let (otx, orx) = oneshot::channel();
            let (pool, mut r) = (env.arena_pool.clone(), rng.fork());
            env.thread(move || {
                bump(C::ForeignBlockOn);
                let mut arena = MkArena::new(&pool);
                futures::executor::block_on(async {
                    let al = Al::new(policy, 0);
                    for _ in 0..count {
                        let res = arena.alloc_async(Obj::new(r.next())).await.map(|_| ());
                        if al.note(true, res).is_none() {
                            break;
                        }
                    }
                });
                let _ = otx.send(arena);
            });
            match bounded(WAIT_LIMIT, "an arena filled by a thread", orx).await {
                Some(Ok(arena)) => arena,
                _ => continue,
            }
        } else {
            let arena = MkArena::new(&env.arena_pool);
            let al = Al::new(policy, 0);
            for _ in 0..count {
                let res = arena.alloc(Obj::new(rng.next())).map(|_| ());
                if al.note(false, res).is_none() {
                    break;
                }
            }
            arena
        };
        match bounded(WAIT_LIMIT, "a send to an arena consumer", tx.send(arena)).await {
            Some(Ok(())) => bump(C::ArenasSent),
            Some(Err(_)) | None => break,
        }
        yield_now().await;
        maybe_panic(&mut rng, 40, "arena producer");
    }
    Out::Unit
}

pub async fn arena_consumer(env: Arc<Env>, mut rng: Rng, mut rx: MkAsyncReceiver<MkArena>) -> Out {
    let mut kept = Vec::new();
    while let Some(Some(arena)) = bounded(WAIT_LIMIT, "an arena receive", rx.recv()).await {
        bump(C::ArenasReceived);
        match rng.below(4) {
            0 => kept.push(arena),
            1 => env.thread(move || {
                drop(arena);
                bump(C::RemoteFrees);
            }),
            2 => {
                yield_now().await;
                drop(arena);
            }
            _ => drop(arena),
        }
        maybe_panic(&mut rng, 60, "arena consumer");
    }
    kept.pop().map_or(Out::Unit, Out::Arena)
}
