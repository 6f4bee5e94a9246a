//! One runtime's environment: its budgets, cache and policies, built at random.

use crate::cache::Cache;
use crate::common::{KIB, MIB};
use crate::counters::{bump, C};
use crate::rng::Rng;
use crate::state::{fail, lk, track_budget};
use memkit_async::{Builder, Handle, MkBackpressure, MkBudget, MkEvictable, Runtime};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::Duration;

pub struct Env {
    pub handle: Handle,
    /// Small root limit: every `Wait` request must be made holding nothing.
    pub tight: bool,
    pub root: MkBudget,
    /// Children of a 24 KiB `Wait` parent, 16 KiB each: waiters move between the queues.
    pub wait_a: MkBudget,
    pub wait_b: MkBudget,
    pub fail_pool: MkBudget,
    pub timeout_pool: MkBudget,
    /// `Evict`, with `cache` registered on it.
    pub evict_pool: MkBudget,
    /// Child of `evict_pool`, for `MkArena`s; `Fail`, `Timeout` or `Evict`.
    pub arena_pool: MkBudget,
    /// `Wait`: the parent of admission reservations in admission batches.
    pub admit_pool: MkBudget,
    pub cache: Arc<Cache>,
    pub threads: Mutex<Vec<thread::JoinHandle<()>>>,
}

impl Env {
    /// How many `Wait` requests a task charged to a large private budget may await.
    pub fn waits(&self) -> u32 {
        if self.tight {
            1
        } else {
            u32::MAX
        }
    }

    /// Starts a foreign std thread, joined before the runtime's end-of-life checks.
    pub fn thread(&self, f: impl FnOnce() + Send + 'static) {
        let mut threads = lk(&self.threads);
        let mut i = 0;
        while i < threads.len() {
            if threads[i].is_finished() {
                if threads.swap_remove(i).join().is_err() {
                    fail("a foreign thread panicked".into());
                }
            } else {
                i += 1;
            }
        }
        threads.push(
            thread::Builder::new()
                .name("soak-foreign".into())
                .spawn(f)
                .expect("start a foreign thread"),
        );
    }

    pub fn join_threads(&self) {
        loop {
            let threads = std::mem::take(&mut *lk(&self.threads));
            if threads.is_empty() {
                return;
            }
            for t in threads {
                if t.join().is_err() {
                    fail("a foreign thread panicked".into());
                }
            }
        }
    }
}

pub fn build_env(rng: &mut Rng, epoch: u64) -> (Runtime, Arc<Env>, String) {
    let workers = rng.range(1, 4);
    let tight = rng.one_in(4);
    let limit = if tight { 2 * MIB } else { 256 * MIB };
    let root_policy = match rng.below(6) {
        0 => MkBackpressure::Fail,
        1 => MkBackpressure::Timeout(Duration::from_millis(2)),
        2 => MkBackpressure::Evict,
        _ => MkBackpressure::Wait,
    };
    let mut builder = Builder::new();
    builder
        .worker_threads(workers)
        .memory_limit(limit)
        .memory_policy(root_policy)
        .thread_name(format!("soak-{epoch}"))
        .max_blocking_threads(rng.range(1, 8))
        .thread_keep_alive(Duration::from_millis(rng.range(1, 100) as u64));
    let pool_cap = match rng.below(4) {
        0 => 0,
        1 => 64 * KIB,
        2 => MIB,
        _ => 32 * MIB,
    };
    builder.chunk_pool_cap(pool_cap);
    let rt = builder.build().expect("build a runtime");
    bump(C::Runtimes);

    let root = rt.memory_budget().clone();
    let wait_parent = root.child(24 * KIB).with_policy(MkBackpressure::Wait);
    let wait_a = wait_parent.child(16 * KIB);
    let wait_b = wait_parent.child(16 * KIB);
    let fail_pool = root.child(32 * KIB).with_policy(MkBackpressure::Fail);
    let timeout_pool =
        root.child(32 * KIB)
            .with_policy(MkBackpressure::Timeout(Duration::from_millis(
                rng.range(1, 8) as u64,
            )));
    let evict_pool = root.child(128 * KIB).with_policy(MkBackpressure::Evict);
    let arena_policy = match rng.below(3) {
        0 => MkBackpressure::Fail,
        1 => MkBackpressure::Timeout(Duration::from_millis(3)),
        _ => MkBackpressure::Evict,
    };
    let arena_pool = evict_pool.child(96 * KIB).with_policy(arena_policy);
    let admit_pool = root.child(64 * KIB).with_policy(MkBackpressure::Wait);
    let cache = Arc::new(Cache::default());
    let consumer: Arc<dyn MkEvictable> = cache.clone();
    evict_pool.register_evictable(&consumer);
    if root_policy == MkBackpressure::Evict {
        root.register_evictable(&consumer);
    }
    for (name, b) in [
        ("root", &root),
        ("wait_parent", &wait_parent),
        ("wait_a", &wait_a),
        ("wait_b", &wait_b),
        ("fail_pool", &fail_pool),
        ("timeout_pool", &timeout_pool),
        ("evict_pool", &evict_pool),
        ("arena_pool", &arena_pool),
        ("admit_pool", &admit_pool),
    ] {
        track_budget(name, b);
    }
    let desc = format!(
        "{workers} workers, root {} KiB {root_policy:?}{}, chunk_pool_cap {} KiB, arenas {arena_policy:?}",
        limit / KIB,
        if tight { " (tight)" } else { "" },
        pool_cap / KIB,
    );
    let env = Arc::new(Env {
        handle: rt.handle().clone(),
        tight,
        root,
        wait_a,
        wait_b,
        fail_pool,
        timeout_pool,
        evict_pool,
        arena_pool,
        admit_pool,
        cache,
        threads: Mutex::new(Vec::new()),
    });
    (rt, env, desc)
}
