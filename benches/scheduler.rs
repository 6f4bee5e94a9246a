//! Scheduler benchmarks: memkit-async against tokio's multi-thread runtime, same process, same
//! run, same worker count.
//!
//! Every benchmark is one criterion group with two functions, `memkit` and `tokio`. The
//! workload is written once, generic over [`BenchRt`], and monomorphised for each runtime, so
//! the only difference between the two functions is the runtime underneath. Synchronisation uses
//! `tokio::sync` channels (runtime-agnostic: they work on any executor) and std atomics on both
//! sides. Each runtime is built once per group and worker count, outside the measured loop.
//!
//! | group | what one iteration measures |
//! |---|---|
//! | `spawn_many_local` | a task already on a worker spawns 10 000 tasks (each increments an atomic), then awaits all their `JoinHandle`s: local-queue spawn + join cost |
//! | `spawn_many_remote` | the bench thread (not a worker) spawns 10 000 tasks through `Runtime::spawn`, then `block_on` awaits all their `JoinHandle`s: injection queue + wake-up cost |
//! | `yield_many` | 200 tasks spawned from outside, each doing 1 000 `yield_now().await`; waits for all: re-queue cost (throughput counts yields) |
//! | `ping_pong` | 1 000 pairs of tasks; in each pair the pinger sends a message to the ponger over a bounded `mpsc` (capacity 1) and waits for the reply on another, 10 round trips per pair (20 messages); waits for all: wake-up of a task blocked on another task (throughput counts round trips) |
//! | `chained_spawn` | a chain of 1 000 tasks in which each task spawns the next; the last signals a oneshot awaited by `block_on`: spawn latency on a worker |
//!
//! Worker count: `MEMKIT_BENCH_WORKERS` (default `2`; ids `<group>/memkit`, `<group>/tokio`).
//! A comma-separated list such as `1,2,4,8,16` runs every group once per count, with ids
//! `<group>/memkit/<n>` and `<group>/tokio/<n>`.
//!
//! Run with:
//!
//! ```text
//! cargo bench --bench scheduler
//! MEMKIT_BENCH_WORKERS=1,2,4,8 cargo bench --bench scheduler
//! cargo bench --bench scheduler -- ping_pong          # one group
//! ```
// `criterion_group!` defines a public function without a doc comment.
#![allow(missing_docs)]

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use std::fmt::Debug;
use std::future::Future;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{mpsc, oneshot};

/// Tasks spawned per iteration by `spawn_many_local` and `spawn_many_remote`.
const SPAWN_MANY: usize = 10_000;
/// Tasks in `yield_many`.
const YIELD_TASKS: usize = 200;
/// `yield_now().await` calls per task in `yield_many`.
const YIELDS_PER_TASK: usize = 1_000;
/// Task pairs in `ping_pong`.
const PING_PONG_PAIRS: usize = 1_000;
/// Round trips (one ping, one pong) per pair in `ping_pong`.
const ROUND_TRIPS: usize = 10;
/// Length of the spawn chain in `chained_spawn`.
const CHAIN_DEPTH: usize = 1_000;

/// The runtime operations the benchmarks use, implemented for memkit-async and tokio.
trait BenchRt: Sized {
    /// The runtime's join handle.
    type JoinHandle<T: Send + 'static>: Future<Output = Result<T, Self::JoinError>> + Send + 'static;
    /// The runtime's join error.
    type JoinError: Debug;

    /// A runtime with `workers` worker threads.
    fn build(workers: usize) -> Self;
    /// Drives `future` on the calling thread.
    fn block_on<F: Future>(&self, future: F) -> F::Output;
    /// Spawns from outside the runtime (the bench thread).
    fn spawn_remote<F>(&self, future: F) -> Self::JoinHandle<F::Output>
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static;
    /// Spawns onto the current runtime (from inside a task).
    fn spawn<F>(future: F) -> Self::JoinHandle<F::Output>
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static;
    /// The runtime's `yield_now`.
    fn yield_now() -> impl Future<Output = ()> + Send;
}

impl BenchRt for memkit_async::Runtime {
    type JoinHandle<T: Send + 'static> = memkit_async::JoinHandle<T>;
    type JoinError = memkit_async::JoinError;

    fn build(workers: usize) -> Self {
        memkit_async::Builder::new()
            .worker_threads(workers)
            .build()
            .expect("build memkit runtime")
    }

    fn block_on<F: Future>(&self, future: F) -> F::Output {
        memkit_async::Runtime::block_on(self, future)
    }

    fn spawn_remote<F>(&self, future: F) -> Self::JoinHandle<F::Output>
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        memkit_async::Runtime::spawn(self, future)
    }

    fn spawn<F>(future: F) -> Self::JoinHandle<F::Output>
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        memkit_async::spawn(future)
    }

    fn yield_now() -> impl Future<Output = ()> + Send {
        memkit_async::task::yield_now()
    }
}

impl BenchRt for tokio::runtime::Runtime {
    type JoinHandle<T: Send + 'static> = tokio::task::JoinHandle<T>;
    type JoinError = tokio::task::JoinError;

    fn build(workers: usize) -> Self {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(workers)
            .build()
            .expect("build tokio runtime")
    }

    fn block_on<F: Future>(&self, future: F) -> F::Output {
        tokio::runtime::Runtime::block_on(self, future)
    }

    fn spawn_remote<F>(&self, future: F) -> Self::JoinHandle<F::Output>
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        tokio::runtime::Runtime::spawn(self, future)
    }

    fn spawn<F>(future: F) -> Self::JoinHandle<F::Output>
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        tokio::spawn(future)
    }

    fn yield_now() -> impl Future<Output = ()> + Send {
        tokio::task::yield_now()
    }
}

// ---------------------------------------------------------------------------------------------
// Workloads, written once for both runtimes.
// ---------------------------------------------------------------------------------------------

fn spawn_many_local<R: BenchRt>(rt: &R) {
    let counter = Arc::new(AtomicUsize::new(0));
    let c = Arc::clone(&counter);
    // The spawner is itself a task, so the 10 000 spawns happen on a worker thread.
    let root = rt.spawn_remote(async move {
        let handles: Vec<_> = (0..SPAWN_MANY)
            .map(|_| {
                let c = Arc::clone(&c);
                R::spawn(async move {
                    c.fetch_add(1, Ordering::Relaxed);
                })
            })
            .collect();
        for h in handles {
            h.await.expect("task failed");
        }
    });
    rt.block_on(root).expect("root task failed");
    assert_eq!(counter.load(Ordering::Relaxed), SPAWN_MANY);
}

fn spawn_many_remote<R: BenchRt>(rt: &R) {
    let counter = Arc::new(AtomicUsize::new(0));
    let handles: Vec<_> = (0..SPAWN_MANY)
        .map(|_| {
            let c = Arc::clone(&counter);
            rt.spawn_remote(async move {
                c.fetch_add(1, Ordering::Relaxed);
            })
        })
        .collect();
    rt.block_on(async move {
        for h in handles {
            h.await.expect("task failed");
        }
    });
    assert_eq!(counter.load(Ordering::Relaxed), SPAWN_MANY);
}

fn yield_many<R: BenchRt>(rt: &R) {
    let handles: Vec<_> = (0..YIELD_TASKS)
        .map(|_| {
            rt.spawn_remote(async {
                for _ in 0..YIELDS_PER_TASK {
                    R::yield_now().await;
                }
            })
        })
        .collect();
    rt.block_on(async move {
        for h in handles {
            h.await.expect("task failed");
        }
    });
}

fn ping_pong<R: BenchRt>(rt: &R) {
    let root = rt.spawn_remote(async {
        let mut handles = Vec::with_capacity(2 * PING_PONG_PAIRS);
        for _ in 0..PING_PONG_PAIRS {
            let (ping_tx, mut ping_rx) = mpsc::channel::<usize>(1);
            let (pong_tx, mut pong_rx) = mpsc::channel::<usize>(1);
            // Ponger: echoes every ping back; ends when the pinger drops its sender.
            handles.push(R::spawn(async move {
                while let Some(n) = ping_rx.recv().await {
                    pong_tx.send(n).await.expect("pinger gone");
                }
            }));
            // Pinger: ROUND_TRIPS round trips, then drops `ping_tx`.
            handles.push(R::spawn(async move {
                for i in 0..ROUND_TRIPS {
                    ping_tx.send(i).await.expect("ponger gone");
                    let n = pong_rx.recv().await.expect("ponger gone");
                    assert_eq!(n, i);
                }
            }));
        }
        for h in handles {
            h.await.expect("task failed");
        }
    });
    rt.block_on(root).expect("root task failed");
}

fn chain<R: BenchRt>(done: oneshot::Sender<()>, remaining: usize) {
    if remaining == 0 {
        done.send(()).expect("bench thread gone");
    } else {
        // Detached: each link only spawns the next one.
        drop(R::spawn(async move { chain::<R>(done, remaining - 1) }));
    }
}

fn chained_spawn<R: BenchRt>(rt: &R) {
    let (done_tx, done_rx) = oneshot::channel();
    // The first link is spawned from outside; the other CHAIN_DEPTH - 1 are spawned on workers.
    drop(rt.spawn_remote(async move { chain::<R>(done_tx, CHAIN_DEPTH - 1) }));
    rt.block_on(done_rx).expect("chain broken");
}

// ---------------------------------------------------------------------------------------------
// Harness.
// ---------------------------------------------------------------------------------------------

/// Worker counts from `MEMKIT_BENCH_WORKERS` (default `[2]`), and whether a list was given.
fn worker_counts() -> (Vec<usize>, bool) {
    match std::env::var("MEMKIT_BENCH_WORKERS") {
        Ok(s) if !s.trim().is_empty() => {
            let counts: Vec<usize> = s
                .split(',')
                .map(|w| {
                    let w = w.trim();
                    match w.parse::<usize>() {
                        Ok(n) if n > 0 => n,
                        _ => panic!("MEMKIT_BENCH_WORKERS: `{w}` is not a positive integer"),
                    }
                })
                .collect();
            let list = counts.len() > 1;
            (counts, list)
        }
        _ => (vec![2], false),
    }
}

/// One criterion group `name` with the functions `memkit` and `tokio`, per worker count.
fn bench_group(
    c: &mut Criterion,
    name: &str,
    elements: u64,
    memkit: fn(&memkit_async::Runtime),
    tokio: fn(&tokio::runtime::Runtime),
) {
    let (counts, list) = worker_counts();
    let mut group = c.benchmark_group(name);
    group.throughput(Throughput::Elements(elements));
    let id = |runtime: &str, workers: usize| {
        if list {
            BenchmarkId::new(runtime, workers)
        } else {
            BenchmarkId::from_parameter(runtime)
        }
    };
    for workers in counts {
        // One runtime alive at a time, so the other's idle workers cannot interfere.
        {
            let rt = <memkit_async::Runtime as BenchRt>::build(workers);
            group.bench_function(id("memkit", workers), |b| b.iter(|| memkit(&rt)));
        }
        {
            let rt = <tokio::runtime::Runtime as BenchRt>::build(workers);
            group.bench_function(id("tokio", workers), |b| b.iter(|| tokio(&rt)));
        }
    }
    group.finish();
}

fn benches(c: &mut Criterion) {
    bench_group(
        c,
        "spawn_many_local",
        SPAWN_MANY as u64,
        spawn_many_local::<memkit_async::Runtime>,
        spawn_many_local::<tokio::runtime::Runtime>,
    );
    bench_group(
        c,
        "spawn_many_remote",
        SPAWN_MANY as u64,
        spawn_many_remote::<memkit_async::Runtime>,
        spawn_many_remote::<tokio::runtime::Runtime>,
    );
    bench_group(
        c,
        "yield_many",
        (YIELD_TASKS * YIELDS_PER_TASK) as u64,
        yield_many::<memkit_async::Runtime>,
        yield_many::<tokio::runtime::Runtime>,
    );
    bench_group(
        c,
        "ping_pong",
        (PING_PONG_PAIRS * ROUND_TRIPS) as u64,
        ping_pong::<memkit_async::Runtime>,
        ping_pong::<tokio::runtime::Runtime>,
    );
    bench_group(
        c,
        "chained_spawn",
        CHAIN_DEPTH as u64,
        chained_spawn::<memkit_async::Runtime>,
        chained_spawn::<tokio::runtime::Runtime>,
    );
}

/// Modest defaults so the whole run takes a few minutes on two cores; command-line flags such as
/// `--measurement-time` still override them (`configure_from_args` runs after this config).
fn config() -> Criterion {
    Criterion::default()
        .sample_size(30)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(5))
}

criterion_group! {
    name = scheduler;
    config = config();
    targets = benches
}
criterion_main!(scheduler);
