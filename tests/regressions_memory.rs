//! Memory defects that safe code could trigger, each pinned by the program that showed it:
//! budget bytes kept by the output of a finished task, user code run under the locks of frames
//! and caches, and `Evict` giving up while something was left to evict.

mod common;

use common::*;
use memkit_async::task::{yield_now, Builder as TaskBuilder};
use memkit_async::{
    spawn, Builder, MkAllocError, MkAsyncBox, MkAsyncCache, MkAsyncFrameAlloc, MkAsyncFrameConfig,
    MkAsyncFrameGuard, MkAsyncVec, MkBackpressure, MkBudget, MkBudgetGuard, MkEvictable, Runtime,
};
use std::future::Future;
use std::pin::pin;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Wake, Waker};

/// A task output whose `Drop` allocates in the current task's arena, as any value's drop may.
struct AllocatesOnDrop(Counter);

impl Drop for AllocatesOnDrop {
    fn drop(&mut self) {
        if MkAsyncBox::try_new([7u8; 64]).is_ok() {
            self.0.inc();
        }
    }
}

/// A task spawned on `budget` that waits for `go`, then finishes with an `AllocatesOnDrop`.
fn spawn_allocating_output(
    rt: &Runtime,
    budget: &MkBudget,
    go: futures::channel::oneshot::Receiver<()>,
    allocated: &Counter,
) -> memkit_async::JoinHandle<AllocatesOnDrop> {
    let allocated = allocated.clone();
    TaskBuilder::new()
        .budget(budget)
        .spawn_on(
            async move {
                go.await.unwrap();
                AllocatesOnDrop(allocated)
            },
            rt.handle(),
        )
        .unwrap()
}

/// The budget has its whole limit back: a new task on it can take a full chunk.
fn assert_budget_whole(budget: &MkBudget) {
    assert_eq!(budget.used(), 0);
    let rt = runtime(2);
    let full = TaskBuilder::new()
        .budget(budget)
        .spawn_on(
            async { MkAsyncBox::try_new([1u8; 4000]).map(|b| b[3999]) },
            rt.handle(),
        )
        .unwrap();
    assert_eq!(rt.block_on(full).unwrap(), Ok(1));
    drop(rt);
    assert_eq!(budget.used(), 0);
}

/// The output of a detached task is dropped when the task completes, with the task current;
/// an arena its drop creates (the task's own is gone by then) is freed with it.
#[test]
fn a_detached_output_that_allocates_in_its_drop_gives_every_byte_back() {
    with_timeout(DEADLINE, || {
        let budget = MkBudget::new(CHUNK).with_policy(MkBackpressure::Fail);
        let allocated = Counter::new();
        let rt = runtime(2);
        let (go, wait) = futures::channel::oneshot::channel();
        drop(spawn_allocating_output(&rt, &budget, wait, &allocated));
        go.send(()).unwrap();
        wait_until("the detached output was dropped", || allocated.get() == 1);
        drop(rt);
        assert_budget_whole(&budget);
    });
}

/// A join handle held by a task that shutdown cancels is dropped with that task's future, and
/// with it the finished task's output: every byte its drop took comes back too.
#[test]
fn outputs_dropped_at_shutdown_give_every_byte_back() {
    with_timeout(DEADLINE, || {
        let budget = MkBudget::new(CHUNK).with_policy(MkBackpressure::Fail);
        let allocated = Counter::new();
        let rt = runtime(2);
        let (go, wait) = futures::channel::oneshot::channel();
        let finished = spawn_allocating_output(&rt, &budget, wait, &allocated);
        let (held, is_held) = futures::channel::oneshot::channel();
        drop(rt.spawn(async move {
            while !finished.is_finished() {
                yield_now().await;
            }
            held.send(()).unwrap();
            std::future::pending::<()>().await;
            drop(finished);
        }));
        go.send(()).unwrap();
        rt.block_on(is_held).unwrap();
        assert_eq!(allocated.get(), 0, "the output is still held");
        drop(rt);
        assert_eq!(
            allocated.get(),
            1,
            "shutdown dropped the output inside the runtime"
        );
        assert_budget_whole(&budget);
    });
}

/// An evictable that gives back memory by closing a frame of another task.
struct ClosesFrame(Mutex<Option<MkAsyncFrameGuard>>);

impl MkEvictable for ClosesFrame {
    fn evict(&self, _bytes_wanted: usize) -> usize {
        let frame = self.0.lock().unwrap().take();
        let released = if frame.is_some() { CHUNK } else { 0 };
        drop(frame);
        released
    }
}

/// A frame allocation that must evict runs the evictable with no lock of the allocator held:
/// here the evictable closes another frame of the same allocator (before, the worker locked
/// the frame table twice and hung).
#[test]
fn an_evictable_may_close_a_frame_of_the_allocator_that_asked() {
    with_timeout(DEADLINE, || {
        let rt = runtime(2);
        let (a, b, used, evicted, after) = rt.block_on(async {
            let alloc = MkAsyncFrameAlloc::new(
                MkAsyncFrameConfig::new(2 * CHUNK).backpressure(MkBackpressure::Evict),
            );
            let other = {
                let alloc = alloc.clone();
                spawn(async move { alloc.begin_frame().await.unwrap() })
                    .await
                    .unwrap()
            };
            let closes = Arc::new(ClosesFrame(Mutex::new(Some(other))));
            let consumer: Arc<dyn MkEvictable> = closes.clone();
            alloc.budget().register_evictable(&consumer);
            let out = spawn(async move {
                let frame = alloc.begin_frame().await.unwrap();
                assert_eq!(alloc.used(), 2 * CHUNK, "both frames hold a chunk: full");
                let a = alloc.alloc_with([1u8; 3000]).await.unwrap();
                // No room in the frame's chunk nor in the capacity: evicts, closing the other.
                let b = alloc.alloc_with([2u8; 3000]).await.unwrap();
                let (used, values) = (alloc.used(), (a[0], b[0]));
                drop((a, b, frame));
                (values.0, values.1, used, alloc.used())
            })
            .await
            .unwrap();
            let evicted = closes.0.lock().unwrap().is_none();
            (out.0, out.1, out.2, evicted, out.3)
        });
        assert_eq!((a, b), (1, 2));
        assert!(evicted, "the evictable closed the other frame");
        assert_eq!(
            used,
            2 * CHUNK,
            "the frame's two chunks, the other frame's gone"
        );
        assert_eq!(after, 0);
    });
}

/// An evictable that, asked for memory, gives back bytes it held and caches something.
struct InsertsIntoCache {
    held: Mutex<Option<MkBudgetGuard>>,
    cache: MkAsyncCache<u64, [u8; 3000]>,
    inserted: Mutex<Option<Result<Option<[u8; 3000]>, MkAllocError>>>,
}

impl MkEvictable for InsertsIntoCache {
    fn evict(&self, _bytes_wanted: usize) -> usize {
        let Some(held) = self.held.lock().unwrap().take() else {
            return 0;
        };
        let released = held.bytes();
        drop(held);
        *self.inserted.lock().unwrap() = Some(self.cache.try_insert(2, [2; 3000]));
        released
    }
}

/// A cache insert that must evict runs the evictables with no lock of the cache held: here
/// one inserts into the very cache whose insert asked (before, it locked the cache's arena
/// twice and hung).
#[test]
fn an_evictable_may_insert_into_the_cache_that_asked() {
    with_timeout(DEADLINE, || {
        let budget = MkBudget::new(2 * CHUNK).with_policy(MkBackpressure::Evict);
        let cache = MkAsyncCache::with_budget(&budget);
        let consumer = Arc::new(InsertsIntoCache {
            held: Mutex::new(Some(budget.try_acquire(2 * CHUNK).unwrap())),
            cache: cache.clone(),
            inserted: Mutex::new(None),
        });
        let evictable: Arc<dyn MkEvictable> = consumer.clone();
        budget.register_evictable(&evictable);
        // The cache is empty, so only the consumer can make room for the first chunk.
        assert_eq!(cache.try_insert(1, [1; 3000]), Ok(None));
        assert_eq!(*consumer.inserted.lock().unwrap(), Some(Ok(None)));
        assert_eq!(
            (cache.get(&1).unwrap()[0], cache.get(&2).unwrap()[0]),
            (1, 2)
        );
        assert_eq!(budget.used(), 2 * CHUNK, "one chunk per entry");
        cache.clear();
        assert_eq!(budget.used(), 0);
    });
}

/// Wakes by inserting into a cache (a waker may run any code).
struct InsertOnWake {
    cache: MkAsyncCache<u64, [u8; 3000]>,
    inserted: Mutex<Option<Result<Option<[u8; 3000]>, MkAllocError>>>,
}

impl Wake for InsertOnWake {
    fn wake(self: Arc<Self>) {
        *self.inserted.lock().unwrap() = Some(self.cache.try_insert(9, [9; 3000]));
    }
}

/// Removing the cache's last entry gives its chunk back, which grants a waiting request and
/// wakes it: the waker runs with no lock of the cache held, so it may use the cache.
#[test]
fn a_waker_woken_by_a_cache_releasing_memory_may_use_the_cache() {
    with_timeout(DEADLINE, || {
        let budget = MkBudget::new(2 * CHUNK).with_policy(MkBackpressure::Wait);
        let cache = MkAsyncCache::with_budget(&budget);
        assert_eq!(cache.try_insert(1, [1; 3000]), Ok(None));
        let held = budget.try_acquire(CHUNK).unwrap();
        let waker = Arc::new(InsertOnWake {
            cache: cache.clone(),
            inserted: Mutex::new(None),
        });
        let mut request = pin!(budget.acquire(CHUNK));
        let as_waker = Waker::from(waker.clone());
        let mut cx = Context::from_waker(&as_waker);
        assert!(request.as_mut().poll(&mut cx).is_pending());
        assert_eq!(cache.remove(&1), Some([1; 3000]));
        // The request got the chunk's bytes, so the waker's insert found the budget full.
        assert!(matches!(
            *waker.inserted.lock().unwrap(),
            Some(Err(MkAllocError::CapacityReached {
                requested: CHUNK,
                ..
            }))
        ));
        let Poll::Ready(Ok(granted)) = request.as_mut().poll(&mut cx) else {
            panic!("the request was granted the chunk's bytes");
        };
        assert_eq!(budget.used(), 2 * CHUNK);
        drop((granted, held));
        assert_eq!(budget.used(), 0);
    });
}

/// A key that uses its cache when dropped.
#[derive(Clone)]
struct Key {
    id: u64,
    cache: Arc<Mutex<Option<MkAsyncCache<Key, u64>>>>,
    seen_len: Arc<Mutex<Vec<usize>>>,
}

impl PartialEq for Key {
    fn eq(&self, other: &Key) -> bool {
        self.id == other.id
    }
}

impl Eq for Key {}

impl std::hash::Hash for Key {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.id.hash(state);
    }
}

impl Drop for Key {
    fn drop(&mut self) {
        if let Some(cache) = self.cache.lock().unwrap().clone() {
            self.seen_len.lock().unwrap().push(cache.len());
        }
    }
}

/// Keys are dropped with no lock of the cache held: on replacement, removal and eviction.
#[test]
fn keys_are_dropped_outside_the_cache_lock() {
    with_timeout(DEADLINE, || {
        let budget = MkBudget::new(CHUNK).with_policy(MkBackpressure::Evict);
        let cache: MkAsyncCache<Key, u64> = MkAsyncCache::with_budget(&budget);
        let slot = Arc::new(Mutex::new(Some(cache.clone())));
        let seen_len = Arc::new(Mutex::new(Vec::new()));
        let key = |id| Key {
            id,
            cache: slot.clone(),
            seen_len: seen_len.clone(),
        };
        assert_eq!(cache.try_insert(key(1), 10), Ok(None));
        assert_eq!(cache.try_insert(key(1), 11), Ok(Some(10))); // a replacement
        assert_eq!(cache.remove(&key(1)), Some(11));
        // Enough entries to fill the chunk: the oldest are evicted.
        for id in 0..600 {
            cache.try_insert(key(id), id).unwrap();
        }
        assert!(cache.evicted() > 0);
        assert!(!seen_len.lock().unwrap().is_empty());
        *slot.lock().unwrap() = None;
        drop(cache);
        assert_eq!(budget.used(), 0);
    });
}

/// The pattern of `examples/cache.rs`: clients share one `Evict` budget between a cache of
/// records and their own request buffers, in child budgets, so each side reclaims from the
/// cache. Every insert and every buffer must fit: under `Evict`, `CapacityReached` means
/// nothing evictable is left, and the cache always has entries to give back here.
fn cache_and_request_buffers_share_an_evicting_budget(clients: u64, requests: u32) {
    let rt = Builder::new()
        .worker_threads(2)
        .memory_limit(64 << 20)
        .build()
        .unwrap();
    let shared = MkBudget::new(1 << 20).with_policy(MkBackpressure::Evict);
    let cache: MkAsyncCache<u64, Vec<u8>> = MkAsyncCache::with_budget(&shared);
    let misses = Arc::new(AtomicU64::new(0));
    rt.block_on(async {
        let tasks: Vec<_> = (0..clients)
            .map(|client| {
                let (cache, misses) = (cache.clone(), misses.clone());
                TaskBuilder::new()
                    .budget(shared.child(64 << 10))
                    .spawn(async move {
                        let mut x = client + 1;
                        for _ in 0..requests {
                            x = x
                                .wrapping_mul(6364136223846793005)
                                .wrapping_add(1442695040888963407);
                            let key = (x >> 33) % 1000 % ((x >> 50) % 1000 + 1);
                            let record = match cache.get(&key) {
                                Some(record) => record,
                                None => {
                                    misses.fetch_add(1, Relaxed);
                                    let record = vec![key as u8; 2048];
                                    cache.insert(key, record.clone()).await.unwrap();
                                    record
                                }
                            };
                            let mut buf = MkAsyncVec::new();
                            buf.resize(record.len(), 0u8).await.unwrap();
                            buf.copy_from_slice(&record);
                            assert_eq!(buf[0], key as u8);
                        }
                    })
                    .unwrap()
            })
            .collect();
        for t in tasks {
            t.await.unwrap();
        }
    });
    assert!(misses.load(Relaxed) > 0);
    assert!(shared.peak() <= shared.limit());
    drop(cache);
    drop(rt);
    assert_eq!(shared.used(), 0);
}

/// The race this pins (an eviction whose bytes another request took at once was taken for
/// nothing left to evict) needs many rounds to show: 40 runs of the example's 16 000 requests.
#[test]
fn evict_frees_the_cache_for_requests_until_nothing_is_left() {
    with_timeout(DEADLINE * 6, || {
        if cfg!(miri) {
            cache_and_request_buffers_share_an_evicting_budget(2, 30);
        } else {
            for _ in 0..40 {
                cache_and_request_buffers_share_an_evicting_budget(8, 2_000);
            }
        }
    });
}
