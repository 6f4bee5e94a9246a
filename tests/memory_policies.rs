//! The four backpressure policies applied to task-arena allocations (`MkAsyncBox`,
//! `MkAsyncVec`), with exact byte accounting.
//!
//! Budgets are charged per chunk: a task's arena takes a 4 KiB chunk first, then 8 KiB, 16 KiB
//! and so on, and an object at the start of a chunk needs no padding. A `[u8; 4096]` therefore
//! fills exactly one first chunk, and the next allocation of that task asks for 8 KiB.

mod common;

use common::*;
use futures::FutureExt;
use memkit_async::task::{self, yield_now};
use memkit_async::{
    spawn_with_budget, JoinHandle, MkAllocError, MkAsyncBox, MkAsyncVec, MkBackpressure, MkBudget,
    MkEvictable, Runtime,
};
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::{Duration, Instant};

type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send>>;

/// Tasks in a `Wait` scenario, and how many of their chunks fit at once.
const TASKS: usize = 48;
const SLOTS: usize = 4;

/// A task that fills one 4 KiB chunk with a page of `i`, waits at `gate`, yields once, checks
/// its page and ends, returning its budget.
fn page_task(i: usize, gate: Gate) -> BoxFuture<MkBudget> {
    Box::pin(async move {
        let page = MkAsyncBox::new([i as u8; CHUNK])
            .await
            .expect("`Wait` never refuses a chunk that fits the limit");
        let budget = MkBudget::current().expect("the task has a budget");
        gate.wait().await;
        yield_now().await;
        assert!(
            page.iter().all(|&b| b == i as u8),
            "task {i}'s page changed while it waited"
        );
        budget
    })
}

/// Spawns `TASKS` page tasks with `spawn`, of which only `SLOTS` chunks fit in `blocked`, and
/// checks that the others wait without being polled, that all finish, that `blocked` never
/// holds more than its limit, and that every byte comes back.
fn wait_scenario(
    rt: &Runtime,
    blocked: &MkBudget,
    spawn: &dyn Fn(Tracked<BoxFuture<MkBudget>>) -> JoinHandle<MkBudget>,
) -> Vec<MkBudget> {
    assert_eq!(blocked.limit(), SLOTS * CHUNK);
    let gate = Gate::new();
    let probes: Vec<Probe> = (0..TASKS).map(|_| Probe::new()).collect();
    let handles: Vec<_> = probes
        .iter()
        .enumerate()
        .map(|(i, probe)| spawn(probe.track(page_task(i, gate.clone()))))
        .collect();

    let m = rt.metrics();
    wait_until(
        "4 tasks hold a chunk and the 44 others wait for one",
        || {
            blocked.used() == SLOTS * CHUNK
                && blocked.waiting() == TASKS - SLOTS
                && m.tasks_waiting_for_memory() == TASKS - SLOTS
        },
    );
    // Holders are pending on the gate, waiters on memory: each was polled exactly once. Give a
    // waiter that is wrongly re-polled (busy-waiting) a chance to show it.
    std::thread::sleep(Duration::from_millis(50));
    let polls: Vec<usize> = probes.iter().map(|p| p.polls.get()).collect();
    assert!(
        polls.iter().all(|&n| n == 1),
        "polls while waiting: {polls:?}"
    );
    assert_eq!(blocked.waiting(), TASKS - SLOTS);

    gate.open();
    let budgets: Vec<MkBudget> = handles
        .into_iter()
        .map(|h| rt.block_on(h).expect("task"))
        .collect();
    // A holder: allocation + gate, then yield, then end. A waiter: its first poll queues it,
    // the grant's wake-up runs it through allocation + open gate + yield, then end. Both 3.
    let polls: Vec<usize> = probes.iter().map(|p| p.polls.get()).collect();
    assert!(polls.iter().all(|&n| n == 3), "polls per task: {polls:?}");
    for probe in &probes {
        probe.assert_sound();
    }
    assert_eq!(blocked.peak(), SLOTS * CHUNK, "never above the limit");
    assert_eq!((blocked.used(), blocked.waiting()), (0, 0));
    assert_eq!(m.tasks_waiting_for_memory(), 0);
    budgets
}

#[test]
fn wait_parks_tasks_sharing_a_budget_until_its_chunks_are_released() {
    with_timeout(DEADLINE, || {
        let rt = runtime_with_limit(2, 1 << 20);
        let shared = rt.memory_budget().child(SLOTS * CHUNK);
        assert_eq!(shared.policy(), MkBackpressure::Wait);
        let budgets = wait_scenario(&rt, &shared, &|fut| {
            task::Builder::new()
                .budget(&shared)
                .spawn_on(fut, rt.handle())
                .expect("no reservation, so spawn succeeds")
        });
        for b in &budgets {
            assert_eq!((b.limit(), b.used()), (SLOTS * CHUNK, 0));
        }
        let m = rt.metrics();
        assert_eq!((m.memory_used(), m.memory_waiting()), (0, 0));
        // Ancestors never count granted bytes twice (see
        // `a_release_returns_bytes_to_every_ancestor_before_serving_waiters`).
        assert_eq!(m.memory_peak(), SLOTS * CHUNK);
    });
}

#[test]
fn wait_parks_tasks_with_their_own_budgets_on_the_full_runtime_limit() {
    with_timeout(DEADLINE, || {
        // Each task may use 8 KiB, but the runtime as a whole only 16 KiB.
        let rt = runtime_with_limit(2, SLOTS * CHUNK);
        let root = rt.memory_budget().clone();
        let budgets = wait_scenario(&rt, &root, &|fut| spawn_budgeted(&rt, 2 * CHUNK, fut));
        for b in &budgets {
            assert_eq!((b.limit(), b.used(), b.peak()), (2 * CHUNK, 0, CHUNK));
        }
        assert_eq!(rt.metrics().memory_waiting(), 0);
    });
}

#[test]
fn fail_refuses_the_next_chunk_at_once_with_exact_numbers() {
    with_timeout(DEADLINE, || {
        let rt = runtime_with_limit(2, 1 << 20);
        let handle = task::Builder::new()
            .budget(CHUNK)
            .policy(MkBackpressure::Fail)
            .spawn_on(
                async {
                    let budget = MkBudget::current().unwrap();
                    assert_eq!(
                        (budget.limit(), budget.policy()),
                        (CHUNK, MkBackpressure::Fail)
                    );
                    let page = MkAsyncBox::new([1u8; CHUNK]).await.unwrap();
                    assert_eq!(budget.used(), CHUNK);
                    // The first chunk is full and so is the budget: neither the 8 KiB growth
                    // step nor the smallest 4 KiB chunk fits.
                    let expected = MkAllocError::CapacityReached {
                        requested: CHUNK,
                        limit: CHUNK,
                        used: CHUNK,
                    };
                    let err = MkAsyncBox::new(7u64)
                        .now_or_never()
                        .expect("`Fail` never waits")
                        .unwrap_err();
                    assert_eq!(err, expected);
                    assert_eq!(MkAsyncBox::try_new(7u64).unwrap_err(), expected);
                    assert_eq!(
                        MkAsyncVec::<u64>::try_with_capacity(1).unwrap_err(),
                        expected
                    );
                    let mut v = MkAsyncVec::new();
                    assert_eq!(
                        v.push(7u64).now_or_never().expect("`Fail` never waits"),
                        Err(expected.clone())
                    );
                    assert!(v.is_empty());
                    let msg = err.to_string();
                    assert!(msg.contains("4096") && msg.contains("raise"), "{msg}");
                    assert_eq!(budget.used(), CHUNK, "refused requests hold nothing");
                    // Once the page is gone its chunk is empty and is reused: no new chunk.
                    drop(page);
                    let small = MkAsyncBox::new(7u64).await.unwrap();
                    assert_eq!((*small, budget.used()), (7, CHUNK));
                    budget
                },
                rt.handle(),
            )
            .unwrap();
        let budget = rt.block_on(handle).unwrap();
        assert_eq!((budget.used(), budget.peak()), (0, CHUNK));
        assert_eq!(rt.memory_budget().used(), 0);
    });
}

#[test]
fn fail_reports_the_runtime_limit_when_that_is_what_is_full() {
    with_timeout(DEADLINE, || {
        let rt = runtime_with_limit(2, 2 * CHUNK);
        let gate = Gate::new();
        let g = gate.clone();
        // An 8 KiB object takes one 8 KiB chunk: the whole runtime limit.
        let holder = spawn_budgeted(&rt, 2 * CHUNK, async move {
            let big = MkAsyncBox::new([9u8; 2 * CHUNK]).await.unwrap();
            g.wait().await;
            big[2 * CHUNK - 1]
        });
        let root = rt.memory_budget().clone();
        wait_until("the holder fills the runtime", || root.used() == 2 * CHUNK);

        let refused = rt.block_on(async {
            task::Builder::new()
                .budget(CHUNK)
                .policy(MkBackpressure::Fail)
                .spawn(async {
                    let budget = MkBudget::current().unwrap();
                    let err = MkAsyncBox::new(1u8).await.unwrap_err();
                    (err, budget.used(), budget)
                })
                .unwrap()
                .await
                .unwrap()
        });
        let (err, task_used, task_budget) = refused;
        assert_eq!(
            err,
            MkAllocError::CapacityReached {
                requested: CHUNK,
                limit: 2 * CHUNK,
                used: 2 * CHUNK
            }
        );
        assert_eq!(
            task_used, 0,
            "nothing stays charged to the task's own budget"
        );
        assert_eq!(task_budget.used(), 0);

        gate.open();
        assert_eq!(rt.block_on(holder).unwrap(), 9);
        assert_eq!(root.used(), 0);
    });
}

#[test]
fn timeout_gives_up_after_its_duration_and_the_task_can_go_on() {
    with_timeout(DEADLINE, || {
        let rt = runtime_with_limit(2, 1 << 20);
        const WAIT: Duration = Duration::from_millis(100);
        let (err, elapsed, budget) = rt.block_on(async {
            task::Builder::new()
                .budget(CHUNK)
                .policy(MkBackpressure::Timeout(WAIT))
                .spawn(async {
                    let budget = MkBudget::current().unwrap();
                    let page = MkAsyncBox::new([3u8; CHUNK]).await.unwrap();
                    let start = Instant::now();
                    // Needs a second chunk and the budget holds one: waits, then times out.
                    let err = MkAsyncBox::new(5u64).await.unwrap_err();
                    let elapsed = start.elapsed();
                    assert_eq!((budget.used(), budget.waiting()), (CHUNK, 0));
                    drop(page);
                    let again = MkAsyncBox::new(5u64).await.unwrap();
                    assert_eq!((*again, budget.used()), (5, CHUNK));
                    (err, elapsed, budget)
                })
                .unwrap()
                .await
                .unwrap()
        });
        let (request, waited) = expect_timed_out(err);
        assert_eq!(request, (CHUNK, CHUNK, CHUNK));
        assert!(waited >= WAIT, "{waited:?}");
        assert!(waited <= elapsed, "{waited:?} > {elapsed:?}");
        assert!(elapsed >= WAIT, "{elapsed:?}");
        // Generous: the deadline fires within milliseconds; seconds would mean a lost timer.
        assert!(elapsed < Duration::from_secs(5), "{elapsed:?}");
        assert_eq!((budget.used(), rt.memory_budget().used()), (0, 0));
    });
}

#[test]
fn timeout_is_served_when_memory_comes_back_in_time() {
    with_timeout(DEADLINE, || {
        let rt = runtime_with_limit(2, 1 << 20);
        let shared = rt
            .memory_budget()
            .child(2 * CHUNK)
            .with_policy(MkBackpressure::Timeout(Duration::from_secs(60)));
        let gate = Gate::new();
        let g = gate.clone();
        let holder = task::Builder::new()
            .budget(&shared)
            .spawn_on(
                async move {
                    let big = MkAsyncBox::new([4u8; 2 * CHUNK]).await.unwrap();
                    g.wait().await;
                    big[0]
                },
                rt.handle(),
            )
            .unwrap();
        wait_until("the holder fills the budget", || shared.used() == 2 * CHUNK);
        let probe = Probe::new();
        let waiter = task::Builder::new()
            .budget(&shared)
            .spawn_on(
                probe.track(async {
                    let b = MkAsyncBox::new(6u64).await;
                    let used = MkBudget::current().unwrap().used();
                    b.map(|b| (*b, used))
                }),
                rt.handle(),
            )
            .unwrap();
        wait_until("the waiter queues", || shared.waiting() == 1);
        assert_eq!(probe.polls.get(), 1);
        gate.open();
        assert_eq!(rt.block_on(holder).unwrap(), 4);
        assert_eq!(rt.block_on(waiter).unwrap(), Ok((6, CHUNK)));
        assert_eq!(
            probe.polls.get(),
            2,
            "polled once to queue, once when served"
        );
        assert_eq!(
            (shared.used(), shared.peak(), shared.waiting()),
            (0, 2 * CHUNK, 0)
        );
        assert_eq!(rt.memory_budget().used(), 0);
    });
}

#[test]
fn evict_drops_the_oldest_cache_entries_to_make_room_for_task_arena_chunks() {
    with_timeout(DEADLINE, || {
        let rt = runtime_with_limit(2, 1 << 20);
        let budget = rt
            .memory_budget()
            .child(4 * CHUNK)
            .with_policy(MkBackpressure::Evict);
        let cache = Arc::new(FifoCache::default());
        let consumer: Arc<dyn MkEvictable> = cache.clone();
        budget.register_evictable(&consumer);
        // Seven 2 KiB entries: 14 of the 16 KiB.
        for key in 0..7 {
            let guard = budget.try_acquire(2 * KIB).unwrap();
            cache.insert(key, guard);
        }
        assert_eq!(budget.used(), 14 * KIB);

        let c = cache.clone();
        let out = rt.block_on(async {
            task::Builder::new()
                .budget(&budget)
                .spawn(async move {
                    let budget = MkBudget::current().unwrap();
                    // A 4 KiB chunk with 2 KiB free: the oldest entry goes.
                    let small = MkAsyncBox::new([1u8; 100]).await.unwrap();
                    assert_eq!(c.evicted(), vec![0]);
                    assert_eq!(budget.used(), 12 * KIB + CHUNK);
                    // 8 KiB of elements: an 8 KiB chunk with nothing free, four entries go.
                    let mut v = MkAsyncVec::<u64>::with_capacity(1024).await.unwrap();
                    assert_eq!(v.capacity(), 1024);
                    for i in 0..1024 {
                        v.try_push(i).expect("within capacity");
                    }
                    assert!(v.iter().copied().eq(0..1024));
                    assert_eq!(c.evicted(), vec![0, 1, 2, 3, 4]);
                    assert_eq!(c.keys(), vec![5, 6]);
                    assert_eq!(budget.used(), 4 * KIB + CHUNK + 2 * CHUNK);
                    // A 16 KiB chunk can never fit next to the 12 KiB of live objects: the last
                    // entries are evicted, and then nothing is left to evict.
                    let err = MkAsyncVec::<u8>::try_with_capacity(4 * CHUNK).unwrap_err();
                    assert_eq!(
                        err,
                        MkAllocError::CapacityReached {
                            requested: 4 * CHUNK,
                            limit: 4 * CHUNK,
                            used: 3 * CHUNK
                        }
                    );
                    assert_eq!(c.evicted(), vec![0, 1, 2, 3, 4, 5, 6]);
                    assert_eq!(budget.used(), 3 * CHUNK);
                    (small[99], v.len(), v[1023])
                })
                .unwrap()
                .await
                .unwrap()
        });
        assert_eq!(out, (1, 1024, 1023));
        assert!(cache.keys().is_empty());
        assert_eq!((budget.used(), budget.peak()), (0, 4 * CHUNK));
        assert_eq!(rt.memory_budget().used(), 0);
    });
}

#[test]
fn a_request_above_the_whole_limit_fails_at_once_under_every_policy() {
    with_timeout(DEADLINE, || {
        let rt = runtime_with_limit(2, 1 << 20);
        for policy in [
            MkBackpressure::Wait,
            MkBackpressure::Fail,
            MkBackpressure::Timeout(Duration::from_secs(3600)),
            MkBackpressure::Evict,
        ] {
            let (errs, budget) = rt.block_on(async move {
                task::Builder::new()
                    .budget(64 * KIB)
                    .policy(policy)
                    .spawn(async move {
                        let budget = MkBudget::current().unwrap();
                        assert_eq!(budget.policy(), policy);
                        // 128 KiB of elements need a 128 KiB chunk; the task may use 64 KiB.
                        let vec = MkAsyncVec::<u8>::with_capacity(128 * KIB)
                            .now_or_never()
                            .expect("never waits")
                            .unwrap_err();
                        // 64 KiB + 8 bytes rounds up to a 128 KiB chunk too.
                        let boxed = MkAsyncBox::new([0u64; 8 * KIB + 1])
                            .now_or_never()
                            .expect("never waits")
                            .unwrap_err();
                        let try_boxed = MkAsyncBox::try_new([0u64; 8 * KIB + 1]).unwrap_err();
                        let huge = MkAsyncVec::<u8>::try_with_capacity(2 << 20).unwrap_err();
                        ([vec, boxed, try_boxed, huge], budget)
                    })
                    .unwrap()
                    .await
                    .unwrap()
            });
            let over_task = MkAllocError::ExceedsLimit {
                requested: 128 * KIB,
                limit: 64 * KIB,
            };
            // Above the largest chunk class: a dedicated chunk of exactly the size asked.
            let dedicated = MkAllocError::ExceedsLimit {
                requested: 2 << 20,
                limit: 64 * KIB,
            };
            assert_eq!(
                errs,
                [over_task.clone(), over_task.clone(), over_task, dedicated],
                "{policy:?}"
            );
            assert!(errs[0].to_string().contains("never fit"), "{}", errs[0]);
            assert_eq!((budget.used(), budget.peak(), budget.waiting()), (0, 0, 0));
        }

        // A task budget above the runtime's: the runtime's limit is the one reported.
        let err = rt.block_on(async {
            spawn_with_budget(4 << 20, async {
                MkAsyncVec::<u8>::with_capacity(2 << 20)
                    .await
                    .map(|v| v.len())
            })
            .await
            .unwrap()
        });
        assert_eq!(
            err,
            Err(MkAllocError::ExceedsLimit {
                requested: 2 << 20,
                limit: 1 << 20
            })
        );
        let m = rt.metrics();
        assert_eq!(
            (m.memory_used(), m.memory_peak(), m.memory_waiting()),
            (0, 0, 0)
        );
    });
}

// Accounting of ancestors. A request is charged level by level from the task's budget up to the
// root, and a release returns bytes level by level too; `used()` and `peak()` of every level
// should only ever count bytes really held.

#[test]
fn a_refused_request_leaves_no_trace_in_the_peak_of_the_levels_below_the_full_one() {
    let root = MkBudget::new(4 * KIB).with_policy(MkBackpressure::Fail);
    let full = root.try_acquire(4 * KIB).unwrap();
    let task = root.child(4 * KIB);
    let err = task.try_acquire(KIB).unwrap_err();
    assert_eq!(
        err,
        MkAllocError::CapacityReached {
            requested: KIB,
            limit: 4 * KIB,
            used: 4 * KIB
        }
    );
    assert_eq!(task.used(), 0);
    assert_eq!(
        task.peak(),
        0,
        "the task never held a byte, yet its peak counts the refused request"
    );
    drop(full);
}

#[test]
fn a_release_returns_bytes_to_every_ancestor_before_serving_waiters() {
    let root = MkBudget::new(1 << 20);
    let child = root.child(CHUNK);
    let held = child.try_acquire(CHUNK).unwrap();
    let mut waiter = Box::pin(child.acquire(CHUNK));
    let waker = futures::task::noop_waker();
    let mut cx = std::task::Context::from_waker(&waker);
    assert!(waiter.as_mut().poll(&mut cx).is_pending());
    drop(held); // serves the waiter
    let std::task::Poll::Ready(Ok(granted)) = waiter.as_mut().poll(&mut cx) else {
        panic!("the waiter is served by the release");
    };
    assert_eq!((child.used(), root.used()), (CHUNK, CHUNK));
    assert_eq!(child.peak(), CHUNK);
    // At no time were more than 4 KiB held anywhere in the tree.
    assert_eq!(
        root.peak(),
        CHUNK,
        "the root counted the waiter's bytes before the released ones came back"
    );
    drop(granted);
    assert_eq!(root.used(), 0);
}
