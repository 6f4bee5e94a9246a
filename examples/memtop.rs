//! `memtop`: which tasks hold the memory, every second, while a workload runs.
//!
//! With `MkGlobalAlloc` installed, every task's heap memory is counted; the runtime's metrics
//! list the live tasks largest first. This program runs a small mixed workload (a few
//! long-lived caches that grow, request handlers that come and go, one leaky task) and prints
//! the top five tasks by memory every second, with a progress line.
//!
//! ```sh
//! cargo run --release --example memtop          # 5 s; MEMTOP_SECS=30 for longer
//! ```

use memkit_async::task;
use std::collections::HashMap;
use std::time::{Duration, Instant};

#[global_allocator]
static GLOBAL: memkit_async::MkGlobalAlloc = memkit_async::MkGlobalAlloc::system();

fn main() {
    let secs: u64 = std::env::var("MEMTOP_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(5);
    let rt = memkit_async::runtime::Builder::new()
        .worker_threads(2)
        .memory_limit(256 << 20)
        .build()
        .expect("start the runtime");
    let metrics = rt.metrics();
    let deadline = Instant::now() + Duration::from_secs(secs);
    let handled = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
    rt.block_on(async {
        for shard in 0..3 {
            spawn_named(format!("cache-{shard}"), cache(shard, deadline));
        }
        spawn_named("leaky".into(), leaky(deadline));
        let h = handled.clone();
        spawn_named("acceptor".into(), async move {
            let mut n = 0u64;
            while Instant::now() < deadline {
                let h = h.clone();
                task::Builder::new()
                    .name(&format!("request-{n}"))
                    .spawn(async move {
                        let body: Vec<u8> = (0..64 << 10).map(|i| i as u8).collect();
                        memkit_async::time::sleep(Duration::from_millis(30)).await;
                        h.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                        body.len()
                    })
                    .expect("no reservation asked");
                n += 1;
                memkit_async::time::sleep(Duration::from_millis(2)).await;
            }
        });
        let start = Instant::now();
        let mut tick = memkit_async::time::interval(Duration::from_secs(1));
        tick.tick().await;
        while Instant::now() < deadline {
            tick.tick().await;
            println!(
                "-- {:>3} s: {} tasks alive, {} requests handled, runtime {} KiB of {} MiB --",
                start.elapsed().as_secs(),
                metrics.num_alive_tasks(),
                handled.load(std::sync::atomic::Ordering::Relaxed),
                metrics.memory_used() >> 10,
                metrics.memory_limit() >> 20,
            );
            for t in metrics.tasks_by_memory().iter().take(5) {
                println!(
                    "   {:>10} KiB  (peak {:>8} KiB)  {:>6} polls  {:<12} {}",
                    t.bytes >> 10,
                    t.peak_bytes >> 10,
                    t.polls,
                    t.name.as_deref().unwrap_or("-"),
                    t.id
                );
            }
        }
    });
}

fn spawn_named<F>(name: String, fut: F)
where
    F: std::future::Future<Output = ()> + Send + 'static,
{
    task::Builder::new()
        .name(&name)
        .spawn(fut)
        .expect("no reservation asked");
}

/// A cache that fills up to a size of its own and then replaces entries.
async fn cache(shard: u64, deadline: Instant) {
    let cap = 2000 * (shard as usize + 1);
    let mut map: HashMap<u64, String> = HashMap::new();
    let mut i = 0u64;
    while Instant::now() < deadline {
        map.insert(
            i % cap as u64,
            format!("value {i} of shard {shard}").repeat(8),
        );
        i += 1;
        if i % 256 == 0 {
            memkit_async::time::sleep(Duration::from_millis(5)).await;
        }
    }
}

/// Keeps everything it ever allocates: the task that climbs the list.
async fn leaky(deadline: Instant) {
    let mut kept: Vec<Vec<u8>> = Vec::new();
    while Instant::now() < deadline {
        kept.push(vec![7; 256 << 10]);
        memkit_async::time::sleep(Duration::from_millis(100)).await;
    }
}
