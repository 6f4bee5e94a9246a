//! Byte budgets and their four backpressure policies, with exact accounting.

mod common;

use common::*;
use futures::FutureExt;
use memkit_async::{MkAllocError, MkBackpressure, MkBudget, MkEvictable};
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

#[test]
fn wait_serves_1000_tasks_of_256k_under_1mib_without_polling_waiters() {
    let rt = runtime(2);
    let budget = MkBudget::new(MIB);
    let probes: Vec<Probe> = (0..1000).map(|_| Probe::new()).collect();
    let handles: Vec<_> = probes
        .iter()
        .map(|p| {
            let budget = budget.clone();
            rt.spawn(p.track(async move {
                let guard = budget.acquire(256 * KIB).await.unwrap();
                assert!(budget.used() <= MIB);
                memkit_async::task::yield_now().await;
                drop(guard);
            }))
        })
        .collect();
    for h in handles {
        rt.block_on(h).unwrap();
    }
    // A task that got its bytes at once is polled twice (acquire + yield, then the end); one
    // that waited once more, when it was granted. A waiter polled while waiting would show 4+.
    let per_task: Vec<usize> = probes.iter().map(|p| p.polls.get()).collect();
    assert!(per_task.iter().all(|n| [2, 3].contains(n)), "{per_task:?}");
    assert!(
        per_task.contains(&3),
        "with 4 slots for 1000 tasks some must wait"
    );
    assert_eq!(budget.used(), 0);
    assert_eq!(budget.peak(), MIB);
    assert_eq!(budget.waiting(), 0);
}

#[test]
fn fail_is_immediate_with_what_was_asked_and_the_limit() {
    let budget = MkBudget::new(1000).with_policy(MkBackpressure::Fail);
    let held = budget.try_acquire(800).unwrap();
    let err = budget
        .acquire(300)
        .now_or_never()
        .expect("Fail never waits")
        .unwrap_err();
    assert_eq!(
        err,
        MkAllocError::CapacityReached {
            requested: 300,
            limit: 1000,
            used: 800
        }
    );
    let msg = err.to_string();
    assert!(
        msg.contains("300") && msg.contains("1000") && msg.contains("raise"),
        "{msg}"
    );
    drop(held);
    assert_eq!(budget.used(), 0);
}

#[test]
fn a_request_above_the_limit_fails_at_once_under_every_policy() {
    for policy in [
        MkBackpressure::Wait,
        MkBackpressure::Fail,
        MkBackpressure::Timeout(Duration::from_secs(3600)),
        MkBackpressure::Evict,
    ] {
        let root = MkBudget::new(10_000).with_policy(policy);
        let child = root.child(1000);
        let err = child
            .acquire(1001)
            .now_or_never()
            .expect("never waits")
            .unwrap_err();
        assert_eq!(
            err,
            MkAllocError::ExceedsLimit {
                requested: 1001,
                limit: 1000
            },
            "{policy:?}"
        );
        assert_eq!(
            child.try_acquire(usize::MAX).unwrap_err(),
            MkAllocError::ExceedsLimit {
                requested: usize::MAX,
                limit: 1000
            }
        );
        assert!(err.to_string().contains("never fit"));
        assert_eq!((child.used(), root.used(), child.waiting()), (0, 0, 0));
    }
}

#[test]
fn timeout_fails_after_its_duration_and_succeeds_if_released_in_time() {
    let rt = runtime(2);
    let budget =
        MkBudget::new(1000).with_policy(MkBackpressure::Timeout(Duration::from_millis(100)));
    let held = budget.try_acquire(1000).unwrap();

    let b = budget.clone();
    let start = Instant::now();
    let err = rt.block_on(async move { b.acquire(10).await }).unwrap_err();
    let elapsed = start.elapsed();
    let (request, waited) = expect_timed_out(err);
    assert_eq!(request, (10, 1000, 1000));
    assert!(waited >= Duration::from_millis(100), "{waited:?}");
    assert!(elapsed >= Duration::from_millis(100), "{elapsed:?}");
    // Generous upper bound: the timer thread fires within milliseconds of the deadline.
    assert!(elapsed < Duration::from_secs(2), "{elapsed:?}");
    assert_eq!(budget.waiting(), 0);

    let b = budget.clone();
    let waiter = rt.spawn(async move { b.acquire(10).await.map(|g| g.bytes()) });
    wait_until("the request queues", || budget.waiting() == 1);
    drop(held);
    assert_eq!(rt.block_on(waiter).unwrap(), Ok(10));
    assert_eq!(budget.used(), 0);
}

#[test]
fn evict_drops_the_oldest_entries_of_a_registered_consumer() {
    let budget = MkBudget::new(1000).with_policy(MkBackpressure::Evict);
    let cache = Arc::new(FifoCache::default());
    let consumer: Arc<dyn MkEvictable> = cache.clone();
    budget.register_evictable(&consumer);
    for key in 0..10 {
        let guard = budget.try_acquire(100).unwrap();
        cache.insert(key, guard);
    }
    assert_eq!(budget.used(), 1000);

    let guard = budget
        .acquire(250)
        .now_or_never()
        .expect("Evict never waits")
        .unwrap();
    assert_eq!(cache.evicted(), vec![0, 1, 2]);
    assert_eq!(cache.keys(), (3..10).collect::<Vec<_>>());
    assert_eq!(budget.used(), 950);

    // Nothing left to evict beyond the cache: CapacityReached.
    let err = budget.try_acquire(1000).unwrap_err();
    assert!(
        matches!(
            err,
            MkAllocError::CapacityReached {
                requested: 1000,
                ..
            }
        ),
        "{err:?}"
    );
    drop(guard);
    drop(consumer);
    assert_eq!(
        budget.used(),
        0,
        "evicted and dropped entries return every byte"
    );
    drop(cache);
}

#[test]
fn waiters_are_served_in_fifo_order_and_a_big_head_is_not_overtaken() {
    // One worker: the grants wake the tasks from this thread, through the FIFO injector, so
    // the order in which they run is the order in which they were granted.
    let rt = runtime(1);
    let budget = MkBudget::new(1000);
    let a = budget.try_acquire(700).unwrap();
    let b = budget.try_acquire(300).unwrap();
    let order = Arc::new(Mutex::new(Vec::new()));

    let spawn_waiter = |name: &'static str, bytes: usize| {
        let (budget, order) = (budget.clone(), order.clone());
        rt.spawn(async move {
            let g = budget.acquire(bytes).await.unwrap();
            order.lock().unwrap().push(name);
            g
        })
    };
    let big = spawn_waiter("big", 600);
    wait_until("big queues", || budget.waiting() == 1);
    let small = spawn_waiter("small", 100);
    wait_until("small queues", || budget.waiting() == 2);
    assert_eq!(rt.metrics().tasks_waiting_for_memory(), 2);

    // 300 bytes free: enough for `small`, but `big` is ahead of it. Grants happen inside the
    // release, so nothing was charged for either once `drop` returns.
    drop(b);
    assert_eq!((budget.used(), budget.waiting()), (700, 2));
    drop(a);
    assert_eq!((budget.used(), budget.waiting()), (700, 0));
    let big = rt.block_on(big).unwrap();
    let small = rt.block_on(small).unwrap();
    assert_eq!(*order.lock().unwrap(), vec!["big", "small"]);
    assert_eq!(rt.metrics().tasks_waiting_for_memory(), 0);
    drop((big, small));
    assert_eq!((budget.used(), budget.waiting()), (0, 0));
}

#[test]
fn zero_byte_requests_always_succeed() {
    let budget = MkBudget::new(10);
    let full = budget.try_acquire(10).unwrap();
    let mut queued = Box::pin(budget.acquire(5));
    let waker = futures::task::noop_waker();
    assert!(queued
        .as_mut()
        .poll(&mut Context::from_waker(&waker))
        .is_pending());
    assert_eq!(budget.try_acquire(0).unwrap().bytes(), 0);
    assert_eq!(
        budget.acquire(0).now_or_never().unwrap().unwrap().bytes(),
        0
    );
    drop(queued);
    drop(full);
    assert_eq!(budget.used(), 0);
}

#[test]
fn a_small_request_waits_behind_a_big_one_even_when_it_would_fit() {
    let budget = MkBudget::new(1000);
    let a = budget.try_acquire(700).unwrap();
    let b = budget.try_acquire(300).unwrap();
    let mut big = Box::pin(budget.acquire(600));
    let mut small = Box::pin(budget.acquire(100));
    let waker = futures::task::noop_waker();
    let mut cx = Context::from_waker(&waker);
    assert!(big.as_mut().poll(&mut cx).is_pending());
    assert!(small.as_mut().poll(&mut cx).is_pending());
    drop(b); // 300 free: fits `small`, not `big`
    assert_eq!(budget.used(), 700);
    assert!(
        small.as_mut().poll(&mut cx).is_pending(),
        "small must not overtake big"
    );
    drop(a);
    let Poll::Ready(Ok(big)) = big.as_mut().poll(&mut cx) else {
        panic!("big is served first")
    };
    let Poll::Ready(Ok(small)) = small.as_mut().poll(&mut cx) else {
        panic!("then small")
    };
    assert_eq!(budget.used(), 700);
    drop((big, small));
    assert_eq!(budget.used(), 0);
}

#[test]
fn child_waiting_on_a_full_parent_is_served_by_a_sibling_release() {
    let root = MkBudget::new(1000);
    let left = root.child(800);
    let right = root.child(800);
    let l = left.try_acquire(800).unwrap();
    let r = right.try_acquire(200).unwrap();
    let mut req = Box::pin(right.acquire(300));
    let waker = futures::task::noop_waker();
    let mut cx = Context::from_waker(&waker);
    assert!(req.as_mut().poll(&mut cx).is_pending());
    assert_eq!(
        root.waiting(),
        1,
        "blocked on the shared parent, so queued there"
    );
    drop(l);
    let Poll::Ready(Ok(g)) = req.as_mut().poll(&mut cx) else {
        panic!("served once the sibling released")
    };
    assert_eq!((right.used(), root.used(), root.peak()), (500, 500, 1000));
    drop((g, r));
    assert_eq!((left.used(), right.used(), root.used()), (0, 0, 0));
}

#[test]
fn dropping_a_waiting_request_withdraws_it_without_leaking_bytes() {
    let rt = runtime(2);
    let budget = MkBudget::new(1000);
    let held = budget.try_acquire(1000).unwrap();
    let b = budget.clone();
    let task = rt.spawn(async move { b.acquire(500).await.map(|g| g.bytes()) });
    wait_until("the request queues", || budget.waiting() == 1);
    task.abort();
    assert!(rt.block_on(task).unwrap_err().is_cancelled());
    assert_eq!(budget.waiting(), 0);
    drop(held);
    assert_eq!(budget.used(), 0);
}

#[test]
fn requests_work_on_any_executor_and_forget_only_leaks_budget() {
    let budget = MkBudget::new(100);
    let g = futures::executor::block_on(budget.acquire(60)).unwrap();
    std::mem::forget(g);
    assert_eq!(
        budget.used(),
        60,
        "a forgotten guard keeps its bytes counted"
    );
    assert!(budget.try_acquire(50).is_err());
}

#[test]
fn runtime_memory_limit_is_the_root_of_task_budgets() {
    let rt = memkit_async::Builder::new()
        .worker_threads(2)
        .memory_limit(4 * MIB)
        .build()
        .unwrap();
    let per_task = rt.memory_budget().child(2 * MIB);
    let g = per_task.try_acquire(MIB).unwrap();
    let m = rt.metrics();
    assert_eq!(
        (m.memory_limit(), m.memory_used(), m.memory_peak()),
        (4 * MIB, MIB, MIB)
    );
    drop(g);
    assert_eq!(m.memory_used(), 0);
}

/// Regression: serving a queue whose head fits its own budget but not the parent rolled the
/// charge back and served the same queue again while holding its lock, deadlocking the
/// releasing thread (found by the soak test).
#[test]
fn a_head_that_fits_its_budget_but_not_the_parent_does_not_deadlock_the_releaser() {
    let (done_tx, done_rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let parent = MkBudget::new(12 * KIB);
        let a = parent.child(6 * KIB);
        let b = parent.child(12 * KIB);
        let g1 = a.try_acquire(KIB).unwrap();
        let g2 = a.try_acquire(2 * KIB).unwrap();
        let gb = b.try_acquire(9 * KIB).unwrap(); // the parent is full
        let mut w = Box::pin(a.acquire(4 * KIB)); // blocked by `a` (3 + 4 > 6)
        let waker = futures::task::noop_waker();
        let mut cx = Context::from_waker(&waker);
        assert!(w.as_mut().poll(&mut cx).is_pending());
        assert_eq!(a.waiting(), 1);
        // Now `a` has room (2 + 4 <= 6) but the parent does not (11 + 4 > 12).
        drop(g1);
        assert_eq!((a.used(), parent.used()), (2 * KIB, 11 * KIB));
        assert!(w.as_mut().poll(&mut cx).is_pending());
        drop(gb); // the parent has room: the request is served
        let Poll::Ready(Ok(g)) = w.as_mut().poll(&mut cx) else {
            panic!("served once the parent has room")
        };
        assert_eq!((a.used(), parent.used()), (6 * KIB, 6 * KIB));
        drop((g, g2));
        assert_eq!((a.used(), b.used(), parent.used()), (0, 0, 0));
        assert_eq!((a.waiting(), parent.waiting()), (0, 0));
        done_tx.send(()).unwrap();
    });
    done_rx
        .recv_timeout(Duration::from_secs(10))
        .expect("the releasing thread deadlocked");
}
