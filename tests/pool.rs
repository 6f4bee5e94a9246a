//! `MkAsyncPool`: the four policies, close, capacity 0, guards dropped elsewhere, cancelled
//! requests, byte budgets and eviction, each with exact object and byte accounting.

mod common;

use common::{poll_once, runtime, wait_until, with_timeout, Counter, DEADLINE};
use memkit_async::{MkAllocError, MkAsyncPool, MkBackpressure, MkBudget, MkPoolError, MkPoolGuard};
use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
use std::sync::{Arc, Mutex};
use std::task::Poll;
use std::time::{Duration, Instant};

/// A pooled object that knows its creation number and counts its drops.
struct Obj {
    id: usize,
    drops: Counter,
}

impl std::fmt::Debug for Obj {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Obj({})", self.id)
    }
}

impl Drop for Obj {
    fn drop(&mut self) {
        self.drops.inc();
    }
}

/// Counts of what a pool's factory created and what was dropped.
#[derive(Clone, Default)]
struct Census {
    created: Counter,
    dropped: Counter,
}

impl Census {
    fn factory(&self) -> impl Fn() -> Obj + Send + Sync + 'static {
        let c = self.clone();
        move || Obj {
            id: c.created.inc(),
            drops: c.dropped.clone(),
        }
    }

    fn alive(&self) -> usize {
        self.created.get() - self.dropped.get()
    }
}

fn pool(capacity: usize, policy: MkBackpressure) -> (MkAsyncPool<Obj>, Census) {
    let census = Census::default();
    let pool = MkAsyncPool::builder(capacity, census.factory())
        .policy(policy)
        .build();
    (pool, census)
}

/// Drops the pool and checks every object created was dropped exactly once.
#[track_caller]
fn assert_all_dropped(pool: MkAsyncPool<Obj>, census: &Census) {
    assert_eq!((pool.in_use(), pool.waiting()), (0, 0));
    drop(pool);
    assert_eq!(census.alive(), 0, "every created object is dropped once");
}

#[test]
fn wait_parks_until_a_guard_drops_and_serves_waiters_fifo() {
    with_timeout(DEADLINE, || {
        let rt = runtime(1);
        let (pool, census) = pool(2, MkBackpressure::Wait);
        let (first, second) = (pool.try_acquire().unwrap(), pool.try_acquire().unwrap());
        let order = Arc::new(Mutex::new(Vec::new()));
        let tasks: Vec<_> = (0..3)
            .map(|i| {
                let (p, order) = (pool.clone(), order.clone());
                let task = rt.spawn(async move {
                    let guard = p.acquire().await.unwrap();
                    order.lock().unwrap().push((i, guard.id));
                });
                wait_until("the request is queued", || pool.waiting() == i + 1);
                task
            })
            .collect();
        assert_eq!((pool.in_use(), pool.live()), (2, 2));
        // One object goes round: waiter 0 gets it, and each waiter passes it to the next.
        drop(first);
        for t in tasks {
            rt.block_on(t).unwrap();
        }
        assert_eq!(*order.lock().unwrap(), [(0, 1), (1, 1), (2, 1)]);
        drop(second);
        assert_eq!(
            (pool.created(), census.created.get(), pool.live()),
            (2, 2, 2)
        );
        assert_all_dropped(pool, &census);
    });
}

#[test]
fn fail_errors_at_once_with_capacity_and_objects_in_use() {
    let (pool, census) = pool(2, MkBackpressure::Fail);
    let rt = runtime(1);
    let (a, b, err) = rt.block_on(async {
        let a = pool.acquire().await.unwrap();
        let b = pool.acquire().await.unwrap();
        (a, b, pool.acquire().await.unwrap_err())
    });
    assert_eq!(
        err,
        MkPoolError::Exhausted {
            capacity: 2,
            in_use: 2
        }
    );
    assert!(err.to_string().contains("2 of 2 objects in use"), "{err}");
    assert!(matches!(
        pool.try_acquire(),
        Err(MkPoolError::Exhausted { .. })
    ));
    assert_eq!((a.id, b.id), (1, 2));
    drop(a);
    assert_eq!(
        pool.try_acquire().unwrap().id,
        1,
        "the returned object is reused"
    );
    drop(b);
    assert_eq!(
        (pool.created(), pool.live(), census.dropped.get()),
        (2, 2, 0)
    );
    assert_all_dropped(pool, &census);
}

#[test]
fn timeout_fails_after_its_duration_and_succeeds_when_an_object_returns_in_time() {
    with_timeout(DEADLINE, || {
        let rt = runtime(2);
        let d = Duration::from_millis(100);
        let (pool, census) = pool(1, MkBackpressure::Timeout(d));
        let held = pool.try_acquire().unwrap();
        let start = Instant::now();
        let err = rt.block_on(pool.acquire()).unwrap_err();
        let elapsed = start.elapsed();
        let MkPoolError::TimedOut { capacity, waited } = err else {
            panic!("expected TimedOut, got {err:?}")
        };
        assert_eq!(capacity, 1);
        assert!(waited >= d && elapsed >= d, "waited {waited:?}");
        assert!(elapsed < d + Duration::from_secs(5), "late by {elapsed:?}");
        assert_eq!((pool.waiting(), pool.in_use()), (0, 1));

        let (pool, census) = {
            drop((held, pool));
            assert_eq!(census.alive(), 0);
            self::pool(1, MkBackpressure::Timeout(Duration::from_secs(30)))
        };
        let held = pool.try_acquire().unwrap();
        let p = pool.clone();
        let waiter = rt.spawn(async move { p.acquire().await.map(|g| g.id) });
        wait_until("the request is queued", || pool.waiting() == 1);
        drop(held);
        assert_eq!(rt.block_on(waiter).unwrap(), Ok(1));
        assert_eq!(pool.created(), 1);
        assert_all_dropped(pool, &census);
    });
}

#[test]
fn evict_fails_at_once_when_every_object_is_in_use() {
    // A pool's evictable part is its idle objects: with all in use there is nothing to evict.
    let (pool, census) = pool(1, MkBackpressure::Evict);
    let held = pool.try_acquire().unwrap();
    let rt = runtime(1);
    let err = rt.block_on(pool.acquire()).unwrap_err();
    assert_eq!(
        err,
        MkPoolError::Exhausted {
            capacity: 1,
            in_use: 1
        }
    );
    drop(held);
    assert_eq!(rt.block_on(pool.acquire()).unwrap().id, 1);
    assert_all_dropped(pool, &census);
}

#[test]
fn evict_pressure_on_the_byte_budget_drops_idle_objects_oldest_first() {
    let census = Census::default();
    let budget = MkBudget::new(1000).with_policy(MkBackpressure::Evict);
    let pool = MkAsyncPool::builder(10, census.factory())
        .policy(MkBackpressure::Evict)
        .budget(budget.clone(), 100)
        .build();
    // Ten objects, all returned: 1000 bytes held by idle objects.
    let guards: Vec<_> = (0..10).map(|_| pool.try_acquire().unwrap()).collect();
    assert_eq!((budget.used(), pool.live()), (1000, 10));
    drop(guards);
    assert_eq!((budget.used(), pool.live(), pool.in_use()), (1000, 10, 0));

    // Another consumer of the budget needs 300 bytes: three idle objects go.
    let other = budget.try_acquire(300).unwrap();
    assert_eq!((budget.used(), pool.live()), (1000, 7));
    assert_eq!((census.created.get(), census.dropped.get()), (10, 3));

    // Seven objects come back from the pool; the eighth needs bytes nobody can give.
    let mut in_use: Vec<_> = (0..7).map(|_| pool.try_acquire().unwrap()).collect();
    assert_eq!(
        census.created.get(),
        10,
        "idle objects are reused before creating"
    );
    let mut ids: Vec<usize> = in_use.iter().map(|g| g.id).collect();
    ids.sort();
    assert_eq!(
        ids,
        [4, 5, 6, 7, 8, 9, 10],
        "objects 1-3 (returned first) were evicted"
    );
    let rt = runtime(1);
    let err = rt.block_on(pool.acquire()).unwrap_err();
    assert_eq!(
        err,
        MkPoolError::Budget(MkAllocError::CapacityReached {
            requested: 100,
            limit: 1000,
            used: 1000
        })
    );
    assert_eq!((pool.live(), pool.in_use(), budget.used()), (7, 7, 1000));
    drop(other);
    in_use.push(rt.block_on(pool.acquire()).unwrap()); // created again by the factory
    assert_eq!(
        (census.created.get(), pool.live(), budget.used()),
        (11, 8, 800)
    );
    drop(in_use);
    drop(pool);
    assert_eq!((census.alive(), budget.used()), (0, 0));
}

#[test]
fn capacity_zero_fails_every_request_with_a_clear_error() {
    with_timeout(DEADLINE, || {
        for policy in [
            MkBackpressure::Wait,
            MkBackpressure::Fail,
            MkBackpressure::Timeout(Duration::from_secs(60)),
            MkBackpressure::Evict,
        ] {
            let (pool, census) = pool(0, policy);
            let rt = runtime(1);
            assert_eq!(
                rt.block_on(pool.acquire()).unwrap_err(),
                MkPoolError::ZeroCapacity
            );
            let err = pool.try_acquire().unwrap_err();
            assert_eq!(err, MkPoolError::ZeroCapacity);
            assert!(err.to_string().contains("capacity of at least 1"), "{err}");
            assert_eq!(census.created.get(), 0);
        }
    });
}

#[test]
fn close_fails_waiters_and_later_requests_and_drops_every_object() {
    with_timeout(DEADLINE, || {
        let rt = runtime(2);
        let (pool, census) = pool(2, MkBackpressure::Wait);
        let idle = pool.try_acquire().unwrap();
        let held = pool.try_acquire().unwrap();
        drop(idle);
        let g = pool.acquire();
        let reused = rt.block_on(g).unwrap();
        drop(reused); // one idle, one in use
        let _filler = pool.try_acquire().unwrap(); // both in use now
        let p = pool.clone();
        let waiter = rt.spawn(async move { p.acquire().await.map(|g| g.id) });
        wait_until("the request is queued", || pool.waiting() == 1);
        pool.close();
        assert_eq!(rt.block_on(waiter).unwrap(), Err(MkPoolError::Closed));
        assert_eq!(
            rt.block_on(pool.acquire()).unwrap_err(),
            MkPoolError::Closed
        );
        assert_eq!(pool.try_acquire().unwrap_err(), MkPoolError::Closed);
        assert!(pool.is_closed());
        // Objects in use are dropped, not returned, when their guards go.
        assert_eq!(census.dropped.get(), 0);
        drop(held);
        assert_eq!((census.dropped.get(), pool.live()), (1, 1));
        drop(_filler);
        assert_eq!(
            (census.dropped.get(), pool.live(), pool.in_use()),
            (2, 0, 0)
        );
        assert_all_dropped(pool, &census);
    });
}

#[test]
fn close_drops_idle_objects_and_releases_their_bytes() {
    let census = Census::default();
    let budget = MkBudget::new(1 << 20);
    let pool = MkAsyncPool::builder(3, census.factory())
        .budget(budget.clone(), 64)
        .build();
    let guards: Vec<_> = (0..3).map(|_| pool.try_acquire().unwrap()).collect();
    assert_eq!(budget.used(), 192);
    drop(guards);
    pool.close();
    assert_eq!((census.alive(), budget.used(), pool.live()), (0, 0, 0));
}

#[test]
fn a_guard_dropped_in_another_thread_or_task_returns_its_object() {
    with_timeout(DEADLINE, || {
        let rt = runtime(2);
        let (pool, census) = pool(1, MkBackpressure::Wait);
        let guard = rt.block_on(pool.acquire()).unwrap();
        std::thread::spawn(move || drop(guard)).join().unwrap();
        assert_eq!((pool.in_use(), pool.live()), (0, 1));

        let guard = pool.try_acquire().unwrap();
        assert_eq!(guard.id, 1);
        let p = pool.clone();
        let waiter = rt.spawn(async move { p.acquire().await.map(|g| g.id) });
        wait_until("the request is queued", || pool.waiting() == 1);
        // Dropped in another task, which wakes the waiter in a third.
        rt.block_on(rt.spawn(async move { drop(guard) })).unwrap();
        assert_eq!(rt.block_on(waiter).unwrap(), Ok(1));
        assert_eq!(pool.created(), 1);
        assert_all_dropped(pool, &census);
    });
}

/// An object returned on a worker waits in that worker's slot and is taken back from it. The
/// slot once stored the box as an integer (`AtomicCell<Option<Box<_>>>`), so the box taken back
/// had no provenance: undefined behaviour that Miri reports on the second acquire.
#[test]
fn an_object_taken_back_from_a_worker_slot_keeps_its_provenance() {
    with_timeout(DEADLINE, || {
        let rt = runtime(1);
        let (pool, census) = pool(1, MkBackpressure::Wait);
        let p = pool.clone();
        let ids = rt.block_on(rt.spawn(async move {
            let mut ids = Vec::new();
            for _ in 0..3 {
                let guard = p.acquire().await.unwrap();
                ids.push(guard.id);
                drop(guard); // into this worker's slot
            }
            ids
        }));
        assert_eq!(ids.unwrap(), [1, 1, 1]);
        assert_eq!((pool.created(), pool.in_use(), pool.live()), (1, 0, 1));
        assert_all_dropped(pool, &census);
    });
}

#[test]
fn a_dropped_waiting_request_passes_its_turn_to_the_next() {
    let (pool, census) = pool(1, MkBackpressure::Wait);
    let held = pool.try_acquire().unwrap();
    let mut first = Box::pin(pool.acquire());
    let mut second = Box::pin(pool.acquire());
    assert!(poll_once(&mut first).is_pending());
    assert!(poll_once(&mut second).is_pending());
    assert_eq!(pool.waiting(), 2);
    drop(held); // the turn is granted to `first`...
    assert_eq!((pool.waiting(), pool.in_use()), (1, 1));
    drop(first); // ...which gives it up without being polled again
    let Poll::Ready(Ok(guard)) = poll_once(&mut second) else {
        panic!("the second request gets the object")
    };
    assert_eq!((guard.id, pool.in_use(), pool.waiting()), (1, 1, 0));
    drop(guard);
    drop(second);
    assert_all_dropped(pool, &census);
}

#[test]
fn reset_runs_on_return_and_detach_takes_the_object_and_its_bytes_out() {
    let budget = MkBudget::new(1000);
    let resets = Arc::new(AtomicUsize::new(0));
    let r = resets.clone();
    let pool = MkAsyncPool::builder(2, || Vec::<u8>::with_capacity(16))
        .reset(move |v| {
            v.clear();
            r.fetch_add(1, SeqCst);
        })
        .budget(budget.clone(), 16)
        .build();
    let mut g = pool.try_acquire().unwrap();
    g.extend_from_slice(b"dirty");
    drop(g);
    assert_eq!(resets.load(SeqCst), 1);
    let g = pool.try_acquire().unwrap();
    assert!(g.is_empty(), "reset cleared the buffer");
    assert_eq!((budget.used(), pool.live()), (16, 1));
    let v: Vec<u8> = g.detach();
    assert_eq!((budget.used(), pool.live(), pool.in_use()), (0, 0, 0));
    assert_eq!(resets.load(SeqCst), 1, "a detached object is not reset");
    drop(v);
    let _g = pool.try_acquire().unwrap();
    assert_eq!((pool.created(), budget.used()), (2, 16));
}

#[test]
fn a_panicking_reset_drops_the_object_and_keeps_the_counts() {
    let census = Census::default();
    let budget = MkBudget::new(1000);
    let pool = MkAsyncPool::builder(1, census.factory())
        .reset(|o: &mut Obj| assert!(o.id > 1, "reset refuses object {}", o.id))
        .budget(budget.clone(), 10)
        .build();
    let g = pool.try_acquire().unwrap();
    let caught = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| drop(g)));
    assert!(caught.is_err());
    assert_eq!(
        (census.alive(), budget.used(), pool.live(), pool.in_use()),
        (0, 0, 0, 0)
    );
    let g = pool.try_acquire().unwrap();
    assert_eq!(g.id, 2);
    drop(g);
    drop(pool);
    assert_eq!((census.alive(), budget.used()), (0, 0));
}

#[test]
fn a_request_waiting_for_bytes_takes_a_returned_object_instead() {
    with_timeout(DEADLINE, || {
        let rt = runtime(2);
        let census = Census::default();
        // Room for two objects, bytes for one: the second request waits for bytes.
        let budget = MkBudget::new(100);
        let pool = MkAsyncPool::builder(2, census.factory())
            .budget(budget.clone(), 100)
            .build();
        let held = pool.try_acquire().unwrap();
        let p = pool.clone();
        let waiter = rt.spawn(async move { p.acquire().await.map(|g| g.id) });
        wait_until("the request waits for bytes", || budget.waiting() == 1);
        assert_eq!((pool.live(), pool.in_use()), (2, 2)); // one object, one room reserved
        drop(held);
        assert_eq!(rt.block_on(waiter).unwrap(), Ok(1));
        assert_eq!(
            (census.created.get(), budget.used(), budget.waiting()),
            (1, 100, 0)
        );
        assert_eq!((pool.live(), pool.in_use()), (1, 0));
        drop(pool);
        assert_eq!((census.alive(), budget.used()), (0, 0));
    });
}

#[test]
fn an_object_larger_than_the_budget_fails_with_exceeds_limit() {
    let budget = MkBudget::new(10);
    let pool = MkAsyncPool::builder(4, || [0u8; 64])
        .budget(budget.clone(), 64)
        .build();
    let rt = runtime(1);
    assert_eq!(
        rt.block_on(pool.acquire()).unwrap_err(),
        MkPoolError::Budget(MkAllocError::ExceedsLimit {
            requested: 64,
            limit: 10
        })
    );
    assert_eq!((pool.live(), pool.in_use(), budget.used()), (0, 0, 0));
}

#[test]
fn shrink_drops_idle_objects_only() {
    let (pool, census) = pool(3, MkBackpressure::Fail);
    let a = pool.try_acquire().unwrap();
    drop(pool.try_acquire().unwrap());
    assert_eq!(pool.live(), 2);
    assert_eq!(pool.shrink(10), 1);
    assert_eq!((pool.live(), census.dropped.get()), (1, 1));
    drop(a);
    assert_all_dropped(pool, &census);
}

/// Tracks how many guards are alive at once.
struct InUse<'a>(&'a AtomicUsize);

impl<'a> InUse<'a> {
    fn enter(count: &'a AtomicUsize, peak: &AtomicUsize) -> Self {
        let now = count.fetch_add(1, SeqCst) + 1;
        peak.fetch_max(now, SeqCst);
        InUse(count)
    }
}

impl Drop for InUse<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, SeqCst);
    }
}

/// Stress counts: an eighth under Miri, which interprets every step (the interleavings it
/// explores still cover the contended paths).
fn scaled(n: usize) -> usize {
    if cfg!(miri) {
        n / 8
    } else {
        n
    }
}

#[test]
fn many_tasks_on_all_workers_never_exceed_capacity_and_account_to_zero() {
    with_timeout(DEADLINE * 3, || {
        let rt = runtime(2);
        let census = Census::default();
        let budget = MkBudget::new(4 * 256);
        let pool = MkAsyncPool::builder(4, census.factory())
            .budget(budget.clone(), 256)
            .build();
        let count = Arc::new((AtomicUsize::new(0), AtomicUsize::new(0)));
        let tasks: Vec<_> = (0..scaled(64))
            .map(|_| {
                let (pool, count) = (pool.clone(), count.clone());
                rt.spawn(async move {
                    for i in 0..scaled(200) {
                        let guard: MkPoolGuard<Obj> = pool.acquire().await.unwrap();
                        let _in_use = InUse::enter(&count.0, &count.1);
                        if i % 3 == 0 {
                            memkit_async::task::yield_now().await;
                        }
                        drop(_in_use);
                        if i % 7 == 0 {
                            // Returned from another thread.
                            std::thread::spawn(move || drop(guard)).join().unwrap();
                        }
                    }
                })
            })
            .collect();
        for t in tasks {
            rt.block_on(t).unwrap();
        }
        assert!(count.1.load(SeqCst) <= 4, "peak {}", count.1.load(SeqCst));
        assert!(census.created.get() <= 4 && pool.live() <= 4);
        assert_eq!((pool.in_use(), pool.waiting()), (0, 0));
        assert_eq!(budget.used(), pool.live() * 256);
        assert!(budget.peak() <= 1024);
        drop(pool);
        assert_eq!((census.alive(), budget.used()), (0, 0));
    });
}

#[test]
fn requests_dropped_or_timed_out_under_contention_account_to_zero() {
    use futures::FutureExt;
    with_timeout(DEADLINE * 3, || {
        let rt = runtime(2);
        let census = Census::default();
        let budget = MkBudget::new(3 * 100);
        let pool = MkAsyncPool::builder(3, census.factory())
            .policy(MkBackpressure::Timeout(Duration::from_millis(1)))
            .budget(budget.clone(), 100)
            .build();
        let timed_out = Arc::new(AtomicUsize::new(0));
        let tasks: Vec<_> = (0..scaled(32))
            .map(|i| {
                let (pool, timed_out) = (pool.clone(), timed_out.clone());
                rt.spawn(async move {
                    for j in 0..scaled(200) {
                        if (i + j) % 3 == 0 {
                            // Polled once and dropped: queued, maybe granted, withdrawn.
                            drop(pool.acquire().now_or_never());
                            continue;
                        }
                        match pool.acquire().await {
                            Ok(guard) => {
                                memkit_async::task::yield_now().await;
                                drop(guard);
                            }
                            Err(MkPoolError::TimedOut { capacity: 3, .. }) => {
                                timed_out.fetch_add(1, SeqCst);
                            }
                            Err(e) => panic!("unexpected {e:?}"),
                        }
                    }
                })
            })
            .collect();
        for t in tasks {
            rt.block_on(t).unwrap();
        }
        assert_eq!((pool.in_use(), pool.waiting(), budget.waiting()), (0, 0, 0));
        assert!(census.created.get() <= 3 && pool.live() <= 3);
        assert_eq!(budget.used(), pool.live() * 100);
        pool.close();
        assert_eq!((census.alive(), budget.used(), pool.live()), (0, 0, 0));
    });
}

#[test]
fn close_during_contention_ends_every_request_without_a_hang() {
    with_timeout(DEADLINE, || {
        let rt = runtime(2);
        let (pool, census) = pool(2, MkBackpressure::Wait);
        let closed = Arc::new(AtomicUsize::new(0));
        let tasks: Vec<_> = (0..16)
            .map(|_| {
                let (pool, closed) = (pool.clone(), closed.clone());
                rt.spawn(async move {
                    loop {
                        match pool.acquire().await {
                            Ok(g) => {
                                memkit_async::task::yield_now().await;
                                drop(g);
                            }
                            Err(MkPoolError::Closed) => {
                                closed.fetch_add(1, SeqCst);
                                return;
                            }
                            Err(e) => panic!("unexpected {e:?}"),
                        }
                    }
                })
            })
            .collect();
        wait_until("objects circulate", || {
            pool.created() == 2 && pool.waiting() > 0
        });
        pool.close();
        for t in tasks {
            rt.block_on(t).unwrap();
        }
        assert_eq!(closed.load(SeqCst), 16);
        assert_eq!((pool.live(), census.alive()), (0, 0));
        assert_all_dropped(pool, &census);
    });
}
