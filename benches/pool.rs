//! Object-pool benchmarks: `MkAsyncPool` against the two usual tokio pool designs, same
//! process, same run, same worker count.
//!
//! | function | pool | runtime |
//! |---|---|---|
//! | `memkit` | `MkAsyncPool<Vec<u8>>` (reset hook clears the buffer) | memkit-async |
//! | `tokio_mutex_vec` | `tokio::sync::Mutex<Vec<Vec<u8>>>`: lock, pop; lock, push | tokio |
//! | `tokio_semaphore_queue` | deadpool-style: `tokio::sync::Semaphore` (one permit per object) + `std::sync::Mutex<VecDeque<Vec<u8>>>` | tokio |
//! | `semaphore_queue_on_memkit` | the deadpool-style pool, on the memkit runtime: the same pool design without the runtime difference | memkit-async |
//!
//! One cycle is: take a 1 KiB buffer, write a byte into it, clear it, put it back.
//!
//! | group | what one iteration does |
//! |---|---|
//! | `pool_uncontended` | 1 task, 10 000 cycles, capacity 64: the hot path |
//! | `pool_contended` | 64 tasks spread over all workers, 500 cycles each, capacity 64: the hot path with every worker hitting the pool at once |
//! | `pool_contended_wait` | 64 tasks, 200 cycles each, capacity 4, each holding its object across a `yield_now`: the wait / wake-up path. `tokio_mutex_vec` is left out: it cannot wait for an object to come back |
//!
//! Throughput counts cycles. Pools are built once per group and filled before measuring.
//! Worker count: `MEMKIT_BENCH_WORKERS` (default `2`); a list such as `1,2,4` runs every group
//! once per count (ids `<group>/<function>/<n>`).
//!
//! ```text
//! cargo bench --bench pool
//! cargo bench --bench pool -- --warm-up-time 1 --measurement-time 3 --sample-size 10
//! ```
// `criterion_group!` defines a public function without a doc comment.
#![allow(missing_docs)]

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use memkit_async::{MkAsyncPool, MkBackpressure};
use std::collections::VecDeque;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

const BUF: usize = 1024;

/// The runtime operations the workloads need.
trait BenchRt: Sized {
    fn build(workers: usize) -> Self;
    /// Spawns every task and waits for all of them.
    fn run_all<F: Future<Output = ()> + Send + 'static>(&self, tasks: Vec<F>);
    fn yield_now() -> impl Future<Output = ()> + Send;
}

impl BenchRt for memkit_async::Runtime {
    fn build(workers: usize) -> Self {
        memkit_async::Builder::new()
            .worker_threads(workers)
            .build()
            .expect("build memkit runtime")
    }

    fn run_all<F: Future<Output = ()> + Send + 'static>(&self, tasks: Vec<F>) {
        let handles: Vec<_> = tasks.into_iter().map(|t| self.spawn(t)).collect();
        self.block_on(async {
            for h in handles {
                h.await.expect("task failed");
            }
        });
    }

    fn yield_now() -> impl Future<Output = ()> + Send {
        memkit_async::task::yield_now()
    }
}

impl BenchRt for tokio::runtime::Runtime {
    fn build(workers: usize) -> Self {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(workers)
            .build()
            .expect("build tokio runtime")
    }

    fn run_all<F: Future<Output = ()> + Send + 'static>(&self, tasks: Vec<F>) {
        let handles: Vec<_> = tasks.into_iter().map(|t| self.spawn(t)).collect();
        self.block_on(async {
            for h in handles {
                h.await.expect("task failed");
            }
        });
    }

    fn yield_now() -> impl Future<Output = ()> + Send {
        tokio::task::yield_now()
    }
}

/// A pool of 1 KiB buffers.
trait BenchPool: Send + Sync + 'static {
    fn with_capacity(capacity: usize) -> Self;
    /// One cycle; `hold` yields while holding the buffer.
    fn cycle<R: BenchRt>(&self, hold: bool) -> impl Future<Output = ()> + Send;
}

struct Memkit(MkAsyncPool<Vec<u8>>);

impl BenchPool for Memkit {
    fn with_capacity(capacity: usize) -> Self {
        let pool = MkAsyncPool::builder(capacity, || Vec::with_capacity(BUF))
            .reset(Vec::clear)
            .policy(MkBackpressure::Wait)
            .build();
        // Create every object up front, like the other pools.
        let all: Vec<_> = (0..capacity).map(|_| pool.try_acquire().unwrap()).collect();
        drop(all);
        Memkit(pool)
    }

    async fn cycle<R: BenchRt>(&self, hold: bool) {
        let mut buf = self.0.acquire().await.expect("pool acquire");
        buf.push(1);
        if hold {
            R::yield_now().await;
        }
    }
}

struct MutexVec(tokio::sync::Mutex<Vec<Vec<u8>>>);

impl BenchPool for MutexVec {
    fn with_capacity(capacity: usize) -> Self {
        MutexVec(tokio::sync::Mutex::new(
            (0..capacity).map(|_| Vec::with_capacity(BUF)).collect(),
        ))
    }

    async fn cycle<R: BenchRt>(&self, hold: bool) {
        assert!(!hold, "a Mutex<Vec> pool cannot wait for an object");
        // Never empty: no task awaits while holding a buffer, so at most one per worker is out.
        let mut buf = self.0.lock().await.pop().expect("pool has a buffer");
        buf.push(1);
        buf.clear();
        self.0.lock().await.push(buf);
    }
}

struct SemaphoreQueue {
    permits: tokio::sync::Semaphore,
    items: std::sync::Mutex<VecDeque<Vec<u8>>>,
}

impl BenchPool for SemaphoreQueue {
    fn with_capacity(capacity: usize) -> Self {
        SemaphoreQueue {
            permits: tokio::sync::Semaphore::new(capacity),
            items: std::sync::Mutex::new((0..capacity).map(|_| Vec::with_capacity(BUF)).collect()),
        }
    }

    async fn cycle<R: BenchRt>(&self, hold: bool) {
        let permit = self.permits.acquire().await.expect("semaphore");
        let mut buf = self
            .items
            .lock()
            .unwrap()
            .pop_front()
            .expect("a permit means a buffer");
        buf.push(1);
        if hold {
            R::yield_now().await;
        }
        buf.clear();
        self.items.lock().unwrap().push_back(buf);
        drop(permit);
    }
}

/// `tasks` tasks doing `cycles` cycles each on `pool`.
fn workload<R: BenchRt, P: BenchPool>(
    rt: &R,
    pool: &Arc<P>,
    tasks: usize,
    cycles: usize,
    hold: bool,
) {
    let futures: Vec<_> = (0..tasks)
        .map(|_| {
            let pool = pool.clone();
            async move {
                for _ in 0..cycles {
                    pool.cycle::<R>(hold).await;
                }
            }
        })
        .collect();
    rt.run_all(futures);
}

fn worker_counts() -> (Vec<usize>, bool) {
    match std::env::var("MEMKIT_BENCH_WORKERS") {
        Ok(s) if !s.trim().is_empty() => {
            let counts: Vec<usize> = s
                .split(',')
                .map(|w| match w.trim().parse::<usize>() {
                    Ok(n) if n > 0 => n,
                    _ => panic!("MEMKIT_BENCH_WORKERS: `{w}` is not a positive integer"),
                })
                .collect();
            let list = counts.len() > 1;
            (counts, list)
        }
        _ => (vec![2], false),
    }
}

struct Shape {
    name: &'static str,
    tasks: usize,
    cycles: usize,
    capacity: usize,
    hold: bool,
}

fn bench_function<R: BenchRt, P: BenchPool>(
    group: &mut criterion::BenchmarkGroup<'_, criterion::measurement::WallTime>,
    id: BenchmarkId,
    workers: usize,
    shape: &Shape,
) {
    let rt = R::build(workers);
    let pool = Arc::new(P::with_capacity(shape.capacity));
    group.bench_function(id, |b| {
        b.iter(|| workload(&rt, &pool, shape.tasks, shape.cycles, shape.hold))
    });
}

fn bench_shape(c: &mut Criterion, shape: &Shape) {
    let (counts, list) = worker_counts();
    let mut group = c.benchmark_group(shape.name);
    group.throughput(Throughput::Elements((shape.tasks * shape.cycles) as u64));
    let id = |f: &str, workers: usize| {
        if list {
            BenchmarkId::new(f, workers)
        } else {
            BenchmarkId::from_parameter(f)
        }
    };
    type Mk = memkit_async::Runtime;
    type Tk = tokio::runtime::Runtime;
    for workers in counts {
        // One runtime alive at a time, so another's idle workers cannot interfere.
        bench_function::<Mk, Memkit>(&mut group, id("memkit", workers), workers, shape);
        if !shape.hold {
            bench_function::<Tk, MutexVec>(
                &mut group,
                id("tokio_mutex_vec", workers),
                workers,
                shape,
            );
        }
        bench_function::<Tk, SemaphoreQueue>(
            &mut group,
            id("tokio_semaphore_queue", workers),
            workers,
            shape,
        );
        bench_function::<Mk, SemaphoreQueue>(
            &mut group,
            id("semaphore_queue_on_memkit", workers),
            workers,
            shape,
        );
    }
    group.finish();
}

fn benches(c: &mut Criterion) {
    for shape in [
        Shape {
            name: "pool_uncontended",
            tasks: 1,
            cycles: 10_000,
            capacity: 64,
            hold: false,
        },
        Shape {
            name: "pool_contended",
            tasks: 64,
            cycles: 500,
            capacity: 64,
            hold: false,
        },
        Shape {
            name: "pool_contended_wait",
            tasks: 64,
            cycles: 200,
            capacity: 4,
            hold: true,
        },
    ] {
        bench_shape(c, &shape);
    }
}

/// Modest defaults for a two-core machine; command-line flags override them.
fn config() -> Criterion {
    Criterion::default()
        .sample_size(30)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(5))
}

criterion_group! {
    name = pool;
    config = config();
    targets = benches
}
criterion_main!(pool);
