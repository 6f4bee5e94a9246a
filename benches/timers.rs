//! Timer benchmarks: memkit-async's worker-driven timer wheel against tokio's, same process,
//! same run, same worker count.
//!
//! | group | what one iteration measures |
//! |---|---|
//! | `sleeps_100k` | 100 000 tasks spawned at once, each sleeping a random 0..10 ms (the same pseudo-random durations on both sides), all awaited: total time for registering, firing and waking 100 000 timers |
//!
//! Lateness (how long after its deadline each sleep's task resumed) is not something criterion
//! measures: each function prints the median, p99 and maximum lateness over its last
//! 20 iterations to stderr after the group.
//!
//! Worker count: `MEMKIT_BENCH_WORKERS` (default `2`).
//!
//! ```text
//! cargo bench --bench timers
//! ```
// `criterion_group!` defines a public function without a doc comment.
#![allow(missing_docs)]

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use std::sync::Mutex;
use std::time::{Duration, Instant};

const SLEEPS: usize = 100_000;
const MAX_SLEEP_US: u64 = 10_000;

/// The sleep of task `i`: 0..10 ms, spread by a fixed hash.
fn duration_of(i: usize) -> Duration {
    let mut x = (i as u64 + 1).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    x ^= x >> 29;
    Duration::from_micros(x % MAX_SLEEP_US)
}

fn workers() -> usize {
    std::env::var("MEMKIT_BENCH_WORKERS")
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .filter(|&n| n > 0)
        .unwrap_or(2)
}

/// Lateness of every sleep of one iteration, in microseconds, sorted.
fn summarize(name: &str, samples: &Mutex<Vec<Vec<u64>>>) {
    let mut all: Vec<u64> = samples.lock().unwrap().iter().flatten().copied().collect();
    if all.is_empty() {
        return;
    }
    all.sort_unstable();
    let at = |q: f64| all[((all.len() - 1) as f64 * q) as usize];
    eprintln!(
        "sleeps_100k/{name}: lateness median {} us, p99 {} us, max {} us ({} sleeps)",
        at(0.5),
        at(0.99),
        all[all.len() - 1],
        all.len()
    );
}

fn keep(samples: &Mutex<Vec<Vec<u64>>>, late: Vec<u64>) {
    let mut s = samples.lock().unwrap();
    if s.len() == 20 {
        s.remove(0);
    }
    s.push(late);
}

fn memkit_sleeps(rt: &memkit_async::Runtime) -> Vec<u64> {
    rt.block_on(async {
        let tasks: Vec<_> = (0..SLEEPS)
            .map(|i| {
                memkit_async::spawn(async move {
                    let deadline = Instant::now() + duration_of(i);
                    memkit_async::time::sleep_until(deadline.into()).await;
                    Instant::now()
                        .saturating_duration_since(deadline)
                        .as_micros() as u64
                })
            })
            .collect();
        let mut late = Vec::with_capacity(SLEEPS);
        for t in tasks {
            late.push(t.await.unwrap());
        }
        late
    })
}

fn tokio_sleeps(rt: &tokio::runtime::Runtime) -> Vec<u64> {
    rt.block_on(async {
        let tasks: Vec<_> = (0..SLEEPS)
            .map(|i| {
                tokio::spawn(async move {
                    let deadline = Instant::now() + duration_of(i);
                    tokio::time::sleep_until(deadline.into()).await;
                    Instant::now()
                        .saturating_duration_since(deadline)
                        .as_micros() as u64
                })
            })
            .collect();
        let mut late = Vec::with_capacity(SLEEPS);
        for t in tasks {
            late.push(t.await.unwrap());
        }
        late
    })
}

fn benches(c: &mut Criterion) {
    let workers = workers();
    let mut group = c.benchmark_group("sleeps_100k");
    group.throughput(Throughput::Elements(SLEEPS as u64));
    let memkit_late = Mutex::new(Vec::new());
    let tokio_late = Mutex::new(Vec::new());
    {
        let rt = memkit_async::Builder::new()
            .worker_threads(workers)
            .build()
            .unwrap();
        group.bench_function("memkit", |b| {
            b.iter(|| keep(&memkit_late, memkit_sleeps(&rt)))
        });
    }
    {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(workers)
            .enable_time()
            .build()
            .unwrap();
        group.bench_function("tokio", |b| b.iter(|| keep(&tokio_late, tokio_sleeps(&rt))));
    }
    group.finish();
    summarize("memkit", &memkit_late);
    summarize("tokio", &tokio_late);
}

fn config() -> Criterion {
    Criterion::default()
        .sample_size(10)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(5))
}

criterion_group! {
    name = timers;
    config = config();
    targets = benches
}
criterion_main!(timers);
