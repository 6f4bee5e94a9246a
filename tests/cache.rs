//! `MkAsyncCache`: exact byte accounting, least-recently-inserted eviction, reclaiming by other
//! users of the budget, the Wait, Fail and Timeout policies, and drop counts. Every test ends
//! with the budget back at zero bytes.

mod common;

use common::*;
use memkit_async::{MkAllocError, MkAsyncCache, MkBackpressure, MkBudget, MkByteSize};
use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// 1000 bytes that count their drops.
struct Blob {
    _data: [u8; 992],
    drops: Arc<AtomicUsize>,
}

impl Blob {
    fn new(drops: &Arc<AtomicUsize>) -> Blob {
        Blob {
            _data: [0; 992],
            drops: drops.clone(),
        }
    }
}

impl Drop for Blob {
    fn drop(&mut self) {
        self.drops.fetch_add(1, SeqCst);
    }
}

impl MkByteSize for Blob {
    fn byte_size(&self) -> usize {
        size_of::<Blob>()
    }
}

#[test]
fn insert_get_remove_with_exact_bytes() {
    with_timeout(DEADLINE, || {
        runtime(2).block_on(async {
            let cache = MkAsyncCache::new(64 << 10);
            assert_eq!(cache.insert("a", 1u64).await.unwrap(), None);
            assert_eq!(cache.insert("b", 2u64).await.unwrap(), None);
            assert_eq!(cache.used_bytes(), CHUNK);
            assert_eq!(cache.get("a"), Some(1));
            assert_eq!(cache.get_with("b", |v| v * 10), Some(20));
            assert_eq!(cache.insert("a", 3u64).await.unwrap(), Some(1));
            assert_eq!(cache.len(), 2);
            assert_eq!(cache.remove("a"), Some(3));
            assert_eq!(cache.remove("a"), None);
            assert!(!cache.contains_key("a") && cache.contains_key("b"));
            cache.clear();
            assert!(cache.is_empty());
            assert_eq!(cache.used_bytes(), 0);
        });
    });
}

#[test]
fn evict_drops_the_least_recently_inserted_entries() {
    with_timeout(DEADLINE, || {
        runtime(2).block_on(async {
            let drops = Arc::new(AtomicUsize::new(0));
            // Two 4 KiB chunks of four 1000-byte entries each.
            let cache = MkAsyncCache::new(2 * CHUNK);
            for i in 0..20u32 {
                // Reads do not refresh an entry: reading key 0 does not save it.
                let _ = cache.get_with(&0, |_| ());
                cache.insert(i, Blob::new(&drops)).await.unwrap();
                assert!(cache.used_bytes() <= 2 * CHUNK);
            }
            let kept: Vec<u32> = (0..20).filter(|k| cache.contains_key(k)).collect();
            let first_kept = 20 - kept.len() as u32;
            assert_eq!(kept, (first_kept..20).collect::<Vec<_>>());
            assert!(kept.len() >= 4, "at least the newest chunk stays: {kept:?}");
            assert_eq!(cache.evicted(), u64::from(first_kept));
            assert_eq!(drops.load(SeqCst), first_kept as usize);
            drop(cache);
            assert_eq!(drops.load(SeqCst), 20);
        });
    });
}

#[test]
fn a_refilled_cache_evicts_its_oldest_chunk_not_every_entry() {
    with_timeout(DEADLINE, || {
        runtime(2).block_on(async {
            let drops = Arc::new(AtomicUsize::new(0));
            let cache = MkAsyncCache::new(2 * CHUNK);
            for i in 0..4u32 {
                cache.insert(i, Blob::new(&drops)).await.unwrap();
            }
            cache.clear();
            assert_eq!((cache.used_bytes(), drops.load(SeqCst)), (0, 4));
            // Refilled, the arena grows again, but no chunk beyond half the capacity: one
            // chunk as large as the cache would take every entry with it when the next
            // insert needs room.
            for i in 10..=18u32 {
                cache.insert(i, Blob::new(&drops)).await.unwrap();
            }
            let kept: Vec<u32> = (10..=18).filter(|k| cache.contains_key(k)).collect();
            assert_eq!(kept, (14..=18).collect::<Vec<_>>());
            assert_eq!(cache.evicted(), 4);
            assert_eq!(cache.used_bytes(), 2 * CHUNK);
            assert_eq!(drops.load(SeqCst), 8);
            drop(cache);
            assert_eq!(drops.load(SeqCst), 13);
        });
    });
}

#[test]
fn other_evicting_users_of_the_budget_reclaim_from_the_cache() {
    with_timeout(DEADLINE, || {
        runtime(2).block_on(async {
            let budget = MkBudget::new(4 * CHUNK).with_policy(MkBackpressure::Evict);
            let cache = MkAsyncCache::with_budget(&budget);
            for i in 0..16u32 {
                cache.try_insert(i, [0u8; 1000]).unwrap();
            }
            assert_eq!(budget.used(), 4 * CHUNK);
            // The cache's chunks grew 4 KiB (entries 0-3), 8 KiB (4-11), then 4 KiB (12-15,
            // the last that fit). Freeing 8 KiB takes the two oldest chunks: twelve entries.
            let guard = budget.try_acquire(2 * CHUNK).unwrap();
            assert_eq!(cache.evicted(), 12);
            assert_eq!(cache.len(), 4);
            assert!(cache.contains_key(&12) && !cache.contains_key(&11));
            assert_eq!(budget.used(), 3 * CHUNK);
            drop(guard);
            drop(cache);
            assert_eq!(budget.used(), 0);
        });
    });
}

#[test]
fn owned_bytes_beyond_the_value_are_charged_too() {
    with_timeout(DEADLINE, || {
        runtime(2).block_on(async {
            let budget = MkBudget::new(1 << 20).with_policy(MkBackpressure::Fail);
            let cache = MkAsyncCache::with_budget(&budget);
            let value = Vec::<u8>::with_capacity(1000);
            cache.insert(1u8, value).await.unwrap();
            assert_eq!(budget.used(), CHUNK + 1000 - size_of::<Vec<u8>>());
            assert_eq!(cache.remove(&1).unwrap().capacity(), 1000);
            // The last entry gone, the empty chunk goes back as well.
            assert_eq!(budget.used(), 0);
        });
    });
}

#[test]
fn an_entry_larger_than_the_capacity_fails_at_once() {
    with_timeout(DEADLINE, || {
        runtime(2).block_on(async {
            let cache = MkAsyncCache::new(8 << 10);
            let err = cache.insert(1, vec![0u8; 64 << 10]).await.unwrap_err();
            assert!(matches!(err, MkAllocError::ExceedsLimit { .. }), "{err:?}");
            assert!(cache.is_empty());
            assert_eq!(cache.used_bytes(), 0);
        });
    });
}

#[test]
fn fail_policy_refuses_an_insert_that_does_not_fit() {
    with_timeout(DEADLINE, || {
        runtime(2).block_on(async {
            let budget = MkBudget::new(CHUNK).with_policy(MkBackpressure::Fail);
            let cache = MkAsyncCache::with_budget(&budget);
            for i in 0..4u32 {
                cache.insert(i, [1u8; 1000]).await.unwrap();
            }
            let err = cache.insert(4, [1u8; 1000]).await.unwrap_err();
            assert_eq!(
                err,
                MkAllocError::CapacityReached {
                    requested: CHUNK,
                    limit: CHUNK,
                    used: CHUNK
                }
            );
            assert_eq!((cache.len(), cache.evicted()), (4, 0));
            cache.clear();
            assert_eq!(budget.used(), 0);
        });
    });
}

/// Also the regression test for a lost wake-up Miri's scheduling found: the removal could
/// try to give the emptied chunk back while the waiting insert held the cache's arena, and the
/// release was dropped, so the insert waited forever.
#[test]
fn wait_policy_parks_an_insert_until_entries_are_removed() {
    with_timeout(DEADLINE, || {
        let rt = runtime(2);
        rt.block_on(async {
            let budget = MkBudget::new(CHUNK).with_policy(MkBackpressure::Wait);
            let cache = MkAsyncCache::with_budget(&budget);
            // One 4000-byte value fills the only chunk.
            cache.insert(0u32, [0u8; 4000]).await.unwrap();
            let c2 = cache.clone();
            let waiter = memkit_async::spawn(async move { c2.insert(1, [1u8; 4000]).await });
            wait_until("the insert waits", || budget.waiting() == 1);
            assert!(!waiter.is_finished());
            assert_eq!(cache.remove(&0).map(|v| v[0]), Some(0));
            assert_eq!(waiter.await.unwrap().unwrap(), None);
            assert_eq!(cache.get(&1).map(|v| v[0]), Some(1));
            cache.clear();
            assert_eq!(budget.used(), 0);
        });
    });
}

#[test]
fn timeout_policy_gives_up_after_its_duration() {
    with_timeout(DEADLINE, || {
        runtime(2).block_on(async {
            let wait = Duration::from_millis(50);
            let budget = MkBudget::new(CHUNK).with_policy(MkBackpressure::Timeout(wait));
            let cache = MkAsyncCache::with_budget(&budget);
            cache.insert(0u32, [0u8; 4000]).await.unwrap();
            let start = Instant::now();
            let err = cache.insert(1, [0u8; 4000]).await.unwrap_err();
            assert!(start.elapsed() >= wait);
            assert!(
                matches!(
                    err,
                    MkAllocError::TimedOut {
                        requested: CHUNK,
                        ..
                    }
                ),
                "{err:?}"
            );
            cache.clear();
            assert_eq!(budget.used(), 0);
        });
    });
}

#[test]
fn concurrent_inserts_from_many_tasks_stay_bounded_and_drop_everything() {
    with_timeout(DEADLINE, || {
        let rt = runtime(2);
        let drops = Arc::new(AtomicUsize::new(0));
        let cache = MkAsyncCache::new(16 * CHUNK);
        let budget = cache.budget().clone();
        // Fewer under Miri, where 1 600 inserts take many minutes; still far more entries
        // than fit.
        let (n_tasks, per_task) = if cfg!(miri) { (4u32, 25u32) } else { (8, 200) };
        let total = (n_tasks * per_task) as usize;
        rt.block_on(async {
            let tasks: Vec<_> = (0..n_tasks)
                .map(|t| {
                    let cache = cache.clone();
                    let drops = drops.clone();
                    memkit_async::spawn(async move {
                        for i in 0..per_task {
                            cache.insert(t * 1000 + i, Blob::new(&drops)).await.unwrap();
                        }
                    })
                })
                .collect();
            for t in tasks {
                t.await.unwrap();
            }
        });
        assert!(budget.peak() <= 16 * CHUNK);
        let live = cache.len();
        assert_eq!(drops.load(SeqCst) + live, total);
        assert_eq!(cache.evicted() as usize, total - live);
        drop(cache);
        assert_eq!(drops.load(SeqCst), total);
        assert_eq!(budget.used(), 0);
    });
}
