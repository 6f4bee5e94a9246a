//! Tasks that panic, or see a child panic.

use crate::alloc::Al;
use crate::counted::{counted, counted_fn, inject_panic, note_panic, Obj, Out};
use crate::env::Env;
use crate::rng::Rng;
use crate::state::fail;
use crate::timer::bounded;
use crate::WAIT_LIMIT;
use futures::channel::oneshot;
use memkit_async::task::yield_now;
use memkit_async::{JoinError, MkArena};
use std::sync::Arc;

pub async fn panic_later(site: &'static str) -> Out {
    yield_now().await;
    inject_panic(site)
}

/// A task that panics somewhere, or sees a child panic.
pub async fn panicky(env: Arc<Env>, mut rng: Rng) -> Out {
    let mut al = Al::current(&env, env.waits());
    match rng.below(6) {
        0 => inject_panic("before the first await"),
        1 => {
            let _b = al.obj(rng.next()).await;
            let _v = al.vec(rng.range(1, 128), rng.next()).await;
            yield_now().await;
            inject_panic("holding a box and a vector")
        }
        2 => {
            let kid = memkit_async::spawn(counted(panic_later("nested child")));
            expect_panic(
                bounded(WAIT_LIMIT, "a panicking child", kid).await,
                "nested child",
            );
            Out::Unit
        }
        3 => {
            let kid = memkit_async::spawn_blocking(counted_fn(|| -> Out {
                inject_panic("spawn_blocking closure")
            }));
            expect_panic(
                bounded(WAIT_LIMIT, "a panicking blocking closure", kid).await,
                "spawn_blocking",
            );
            Out::Unit
        }
        4 => {
            let arena = MkArena::new(&env.arena_pool);
            for _ in 0..rng.range(1, 16) {
                let _ = arena.alloc(Obj::new(rng.next()));
            }
            yield_now().await;
            let _keep = arena;
            inject_panic("holding an MkArena")
        }
        _ => {
            let (tx, rx) = oneshot::channel();
            env.thread(move || {
                let _ = tx.send(());
            });
            let _ = bounded(WAIT_LIMIT, "a oneshot before a panic", rx).await;
            inject_panic("after a foreign wake-up")
        }
    }
}

pub fn expect_panic(res: Option<Result<Out, JoinError>>, what: &str) {
    match res {
        Some(Err(e)) if e.is_panic() => note_panic(e, what),
        Some(Err(_)) => fail(format!("{what}: cancelled instead of panicking")),
        Some(Ok(_)) => fail(format!("{what}: returned instead of panicking")),
        None => {}
    }
}
