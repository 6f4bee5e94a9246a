//! A byte-bounded cache in front of a slow lookup, sharing one evicting budget with request
//! buffers: when requests need memory, the cache gives back its oldest entries.
//!
//! Run with `cargo run --release --example cache`.

use memkit_async::task::Builder;
use memkit_async::{MkAsyncCache, MkAsyncVec, MkBackpressure, MkBudget};
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Arc;

/// The slow source the cache saves trips to: a 2 KiB record per key.
fn lookup(key: u64) -> Vec<u8> {
    (0..2048)
        .map(|i| (key as u8).wrapping_add(i as u8))
        .collect()
}

#[memkit_async::main(worker_threads = 2, memory_limit = 64 << 20)]
async fn main() {
    // One 1 MiB budget for the cache and the clients' request buffers (64 KiB each, so at least
    // half stays for the cache); `Evict` lets both reclaim from the cache.
    let shared = MkBudget::new(1 << 20).with_policy(MkBackpressure::Evict);
    let cache: MkAsyncCache<u64, Vec<u8>> = MkAsyncCache::with_budget(&shared);
    let (hits, misses) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));

    let clients: Vec<_> = (0..8u64)
        .map(|client| {
            let (cache, hits, misses) = (cache.clone(), hits.clone(), misses.clone());
            Builder::new()
                .budget(shared.child(64 << 10))
                .spawn(async move {
                    let mut x = client + 1;
                    for _ in 0..2_000 {
                        // Skewed keys: a few hot records, a long tail.
                        x = x
                            .wrapping_mul(6364136223846793005)
                            .wrapping_add(1442695040888963407);
                        let key = (x >> 33) % 1000 % ((x >> 50) % 1000 + 1);
                        let record = match cache.get(&key) {
                            Some(record) => {
                                hits.fetch_add(1, Relaxed);
                                record
                            }
                            None => {
                                misses.fetch_add(1, Relaxed);
                                let record = lookup(key);
                                cache
                                    .insert(key, record.clone())
                                    .await
                                    .expect("evicts to fit");
                                record
                            }
                        };
                        // A per-request buffer on the same budget: may reclaim from the cache.
                        let mut buf = MkAsyncVec::new();
                        buf.resize(record.len(), 0u8).await.expect("fits");
                        buf.copy_from_slice(&record);
                        assert_eq!(buf[0], key as u8);
                    }
                })
                .expect("spawn")
        })
        .collect();
    for client in clients {
        client.await.expect("client task");
    }

    let (h, m) = (hits.load(Relaxed), misses.load(Relaxed));
    println!("requests       : {}", h + m);
    println!("hit rate       : {:.1}%", 100.0 * h as f64 / (h + m) as f64);
    println!(
        "cache entries  : {} ({} evicted)",
        cache.len(),
        cache.evicted()
    );
    println!(
        "budget peak    : {} of {} bytes",
        shared.peak(),
        shared.limit()
    );
    drop(cache);
    println!("after drop     : {} bytes in use", shared.used());
}
