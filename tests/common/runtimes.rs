//! Runtimes built the way the tests need them, and ways to observe their workers.

use super::{wait_until, Counter};
use memkit_async::{Builder, Runtime};
use std::future::Future;
use std::thread;
use std::time::Duration;

/// Thread start and stop counters hooked into a runtime's builder.
#[derive(Clone, Default)]
pub struct ThreadCounts {
    pub starts: Counter,
    pub stops: Counter,
}

impl ThreadCounts {
    /// Installs the counters as `on_thread_start` / `on_thread_stop`.
    pub fn install(builder: &mut Builder) -> ThreadCounts {
        let counts = ThreadCounts::default();
        let starts = counts.starts.clone();
        let stops = counts.stops.clone();
        builder
            .on_thread_start(move || {
                starts.inc();
            })
            .on_thread_stop(move || {
                stops.inc();
            });
        counts
    }
}

/// A runtime with `workers` worker threads.
pub fn runtime(workers: usize) -> Runtime {
    Builder::new()
        .worker_threads(workers)
        .build()
        .expect("build a runtime")
}

/// A runtime with `workers` worker threads and thread start/stop counters; returns once every
/// worker has started.
pub fn counted_runtime(workers: usize) -> (Runtime, ThreadCounts) {
    let mut builder = Builder::new();
    builder.worker_threads(workers);
    let counts = ThreadCounts::install(&mut builder);
    let rt = builder.build().expect("build a runtime");
    wait_until("every worker ran on_thread_start", || {
        counts.starts.get() == workers
    });
    (rt, counts)
}

/// Waits until every worker of `rt` is parked.
#[track_caller]
pub fn wait_all_parked(rt: &Runtime) {
    let m = rt.metrics();
    let n = m.num_workers();
    wait_until("every worker is parked", || m.num_parked_workers() == n);
}

/// A runtime with `workers` worker threads and a root budget (`memory_limit`) of `limit` bytes.
pub fn runtime_with_limit(workers: usize, limit: usize) -> Runtime {
    Builder::new()
        .worker_threads(workers)
        .memory_limit(limit)
        .build()
        .expect("build a runtime")
}

/// `spawn_with_budget(bytes, future)` on `rt`, called from outside the runtime.
pub fn spawn_budgeted<F>(
    rt: &Runtime,
    bytes: usize,
    future: F,
) -> memkit_async::JoinHandle<F::Output>
where
    F: Future + Send + 'static,
    F::Output: Send + 'static,
{
    let _enter = rt.enter();
    memkit_async::spawn_with_budget(bytes, future)
}

/// Yields, spawning a task that blocks this worker's thread for a millisecond before each
/// yield (so the other worker steals from this queue), until the calling task resumes on
/// another worker: `true`, or `false` after 1000 tries. `check` runs after every resumption.
pub async fn migrate(mut check: impl FnMut()) -> bool {
    let first = memkit_async::runtime::worker_index().expect("called inside a task");
    for _ in 0..1000 {
        let _hog = memkit_async::spawn(async { thread::sleep(Duration::from_millis(1)) });
        memkit_async::task::yield_now().await;
        check();
        if memkit_async::runtime::worker_index() != Some(first) {
            return true;
        }
    }
    false
}
