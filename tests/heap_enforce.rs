//! Budgets enforced on ordinary heap memory: with `MkGlobalAlloc` installed, the scheduler
//! applies each budget's policy between polls to what tasks allocate through `Vec` and `Box`.

use memkit_async::runtime::Builder;
use memkit_async::task::{self, yield_now};
use memkit_async::{MkBackpressure, MkBudget, MkGlobalAlloc};
use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
use std::sync::Arc;
use std::time::Duration;

#[global_allocator]
static GLOBAL: MkGlobalAlloc = MkGlobalAlloc::system();

/// What an allocation of `size` bytes is charged: rounded up to 8, plus the 8-byte trailer.
fn cost(size: usize) -> usize {
    size.next_multiple_of(8) + 8
}

const STEP: usize = 64 << 10;

#[test]
#[cfg_attr(miri, ignore = "grows a task to 1 MiB 64 KiB at a time")]
fn a_runaway_task_under_fail_is_cancelled_at_the_poll_that_crosses_its_limit() {
    let rt = Builder::new().worker_threads(2).build().unwrap();
    let baseline = rt.memory_budget().used();
    let ticks = Arc::new(AtomicUsize::new(0));
    let steady = {
        let ticks = ticks.clone();
        rt.spawn(async move {
            for _ in 0..200 {
                memkit_async::time::sleep(Duration::from_millis(1)).await;
                ticks.fetch_add(1, SeqCst);
            }
        })
    };
    let pushes = Arc::new(AtomicUsize::new(0));
    let runaway = {
        let pushes = pushes.clone();
        task::Builder::new()
            .name("runaway")
            .budget(1 << 20)
            .policy(MkBackpressure::Fail)
            .spawn_on(
                async move {
                    let mut held: Vec<Vec<u8>> = Vec::with_capacity(2000);
                    while held.len() < 1600 {
                        held.push(vec![1; STEP]);
                        pushes.fetch_add(1, SeqCst);
                        yield_now().await;
                    }
                },
                rt.handle(),
            )
            .unwrap()
    };
    let err = rt.block_on(runaway).unwrap_err();
    assert!(err.is_memory_exceeded() && err.is_cancelled(), "{err}");
    // 2000 slots of 24 bytes, then 64 KiB per push: the 16th push crosses 1 MiB.
    let outer = cost(2000 * 24);
    let crossing = (1..).find(|n| outer + n * cost(STEP) > 1 << 20).unwrap();
    assert_eq!(
        pushes.load(SeqCst),
        crossing,
        "cancelled within the crossing poll"
    );
    let msg = err.to_string();
    assert!(msg.contains("\"runaway\""), "{msg}");
    assert!(msg.contains("of a 1048576 byte budget"), "{msg}");
    assert!(
        msg.contains(&format!("{} bytes in use", outer + crossing * cost(STEP))),
        "{msg}"
    );
    rt.block_on(steady).unwrap();
    assert_eq!(ticks.load(SeqCst), 200, "the other task kept running");
    let after = rt.memory_budget().used();
    assert!(
        after.abs_diff(baseline) <= 64 << 10,
        "root back to its baseline: {baseline} -> {after}"
    );
}

#[test]
#[cfg_attr(miri, ignore = "waits on timers")]
fn wait_holds_new_tasks_back_while_the_budget_is_full_and_runs_them_all() {
    let rt = Builder::new().worker_threads(2).build().unwrap();
    let budget = rt.memory_budget().child(4 << 20);
    // Preallocated, so that the tasks charge nothing to their budget but their buffers.
    let started: Arc<Vec<AtomicUsize>> = Arc::new((0..12).map(|_| AtomicUsize::new(0)).collect());
    let handles: Vec<_> = (0..12)
        .map(|i| {
            let started = started.clone();
            task::Builder::new()
                .budget(&budget)
                .spawn_on(
                    async move {
                        started[i].fetch_add(1, SeqCst);
                        let held = vec![i as u8; 1 << 20];
                        memkit_async::time::sleep(Duration::from_millis(20)).await;
                        held.len()
                    },
                    rt.handle(),
                )
                .unwrap()
        })
        .collect();
    for h in handles {
        assert_eq!(rt.block_on(h).unwrap(), 1 << 20);
    }
    assert!(
        budget.peak() <= (4 << 20) + 2 * cost(1 << 20),
        "peak {}",
        budget.peak()
    );
    assert_eq!(budget.used(), 0);
    assert!(
        started.iter().all(|s| s.load(SeqCst) == 1),
        "each started once"
    );
    assert_eq!(budget.parked(), 0);
}

#[test]
#[cfg_attr(miri, ignore = "waits on timers")]
fn a_task_parked_for_memory_resumes_when_another_releases() {
    let rt = Builder::new().worker_threads(2).build().unwrap();
    let budget = MkBudget::new(2 << 20);
    let (holder, release) = hold_memory(&rt, &budget);
    let grower = task::Builder::new()
        .budget(&budget)
        .spawn_on(
            async move {
                let first = vec![1u8; 1 << 20]; // over the limit: parked after this poll
                yield_now().await;
                first.len()
            },
            rt.handle(),
        )
        .unwrap();
    while budget.parked() == 0 {
        std::thread::yield_now();
    }
    assert!(!grower.is_finished(), "parked, not polled");
    release.notify();
    assert_eq!(rt.block_on(holder).unwrap(), (3 << 20) / 2);
    assert_eq!(rt.block_on(grower).unwrap(), 1 << 20);
    assert_eq!((budget.used(), budget.parked()), (0, 0));
}

/// Spawns a task under `budget` that holds 1.5 MiB until notified, and waits until its memory
/// is counted.
fn hold_memory(
    rt: &memkit_async::Runtime,
    budget: &MkBudget,
) -> (
    memkit_async::task::JoinHandle<usize>,
    Arc<tokio_like_notify::Notify>,
) {
    let release = Arc::new(tokio_like_notify::Notify::default());
    let holder = {
        let release = release.clone();
        task::Builder::new()
            .budget(budget)
            .spawn_on(
                async move {
                    let held = vec![0u8; (3 << 20) / 2];
                    release.notified().await;
                    held.len()
                },
                rt.handle(),
            )
            .unwrap()
    };
    while budget.used() < 1 << 20 {
        std::thread::yield_now();
    }
    (holder, release)
}

/// A one-shot notification for the tests (std only).
mod tokio_like_notify {
    use std::future::Future;
    use std::pin::Pin;
    use std::sync::Mutex;
    use std::task::{Context, Poll, Waker};

    #[derive(Default)]
    pub struct Notify(Mutex<(bool, Option<Waker>)>);

    impl Notify {
        pub fn notify(&self) {
            let waker = {
                let mut s = self.0.lock().unwrap();
                s.0 = true;
                s.1.take()
            };
            if let Some(w) = waker {
                w.wake();
            }
        }

        pub fn notified(&self) -> impl Future<Output = ()> + '_ {
            Notified(self)
        }
    }

    struct Notified<'a>(&'a Notify);

    impl Future for Notified<'_> {
        type Output = ();
        fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
            let mut s = self.0 .0.lock().unwrap();
            if s.0 {
                return Poll::Ready(());
            }
            s.1 = Some(cx.waker().clone());
            Poll::Pending
        }
    }
}

#[test]
#[cfg_attr(miri, ignore = "waits on timers")]
fn timeout_cancels_a_task_held_longer_than_its_duration() {
    let rt = Builder::new().worker_threads(2).build().unwrap();
    let budget =
        MkBudget::new(1 << 20).with_policy(MkBackpressure::Timeout(Duration::from_millis(50)));
    let hog = task::Builder::new()
        .budget(&budget)
        .spawn_on(
            async move {
                let held = vec![0u8; 900 << 10];
                memkit_async::time::sleep(Duration::from_millis(400)).await;
                held.len()
            },
            rt.handle(),
        )
        .unwrap();
    while budget.used() < 900 << 10 {
        std::thread::yield_now();
    }
    let grower = task::Builder::new()
        .name("grower")
        .budget(&budget)
        .spawn_on(
            async move {
                let more = vec![1u8; 200 << 10]; // over the limit: held before its next poll
                yield_now().await;
                more.len()
            },
            rt.handle(),
        )
        .unwrap();
    let err = rt.block_on(grower).unwrap_err();
    assert!(err.is_memory_exceeded(), "{err}");
    assert!(err.to_string().contains("with the Timeout policy"), "{err}");
    assert!(
        !hog.is_finished(),
        "cancelled after 50 ms, long before the hog let go"
    );
    assert_eq!(rt.block_on(hog).unwrap(), 900 << 10);
    assert_eq!((budget.used(), budget.parked()), (0, 0));
}

#[test]
#[cfg_attr(miri, ignore = "waits on timers")]
fn a_task_held_past_the_stall_threshold_is_reported_once() {
    let rt = Builder::new()
        .worker_threads(1)
        .memory_stall_threshold(Duration::from_millis(30))
        .build()
        .unwrap();
    let budget = MkBudget::new(1 << 20);
    let release = Arc::new(tokio_like_notify::Notify::default());
    let hog = {
        let release = release.clone();
        task::Builder::new()
            .budget(&budget)
            .spawn_on(
                async move {
                    let held = vec![0u8; 1 << 20];
                    release.notified().await;
                    held.len()
                },
                rt.handle(),
            )
            .unwrap()
    };
    while budget.used() < 1 << 20 {
        std::thread::yield_now();
    }
    // Not started while the budget is full.
    let waiting = task::Builder::new()
        .name("waiting")
        .budget(&budget)
        .spawn_on(async { 7 }, rt.handle())
        .unwrap();
    let metrics = rt.metrics();
    while metrics.memory_stalls() == 0 {
        std::thread::sleep(Duration::from_millis(5));
    }
    assert_eq!(metrics.tasks_held_for_memory(), 1);
    std::thread::sleep(Duration::from_millis(100));
    assert_eq!(
        metrics.memory_stalls(),
        1,
        "reported once, not at every look"
    );
    release.notify();
    assert_eq!(rt.block_on(hog).unwrap(), 1 << 20);
    assert_eq!(rt.block_on(waiting).unwrap(), 7);
    assert_eq!(metrics.tasks_held_for_memory(), 0);
}

#[test]
#[cfg_attr(miri, ignore = "grows tasks past their budget")]
fn evict_reclaims_from_a_cache_on_the_budget_before_giving_up() {
    let rt = Builder::new().worker_threads(2).build().unwrap();
    let budget = MkBudget::new(1 << 20).with_policy(MkBackpressure::Evict);
    let cache: memkit_async::MkAsyncCache<u32, [u8; 1024]> =
        rt.block_on(async { memkit_async::MkAsyncCache::with_budget(&budget) });
    for i in 0..600 {
        cache.try_insert(i, [1; 1024]).unwrap();
    }
    let cached = budget.used();
    assert!(cached > 512 << 10, "{cached}");
    let grower = task::Builder::new()
        .budget(&budget)
        .spawn_on(
            async move {
                let buf = vec![2u8; 600 << 10];
                yield_now().await;
                buf.len()
            },
            rt.handle(),
        )
        .unwrap();
    assert_eq!(
        rt.block_on(grower).unwrap(),
        600 << 10,
        "room was made by evicting"
    );
    assert!(cache.evicted() > 0);
    assert!(budget.peak() <= (1 << 20) + cost(600 << 10));
    // Nothing left to evict: the next grower is cancelled.
    cache.clear();
    let too_big = task::Builder::new()
        .budget(&budget)
        .spawn_on(
            async move {
                let a = vec![3u8; 700 << 10];
                let b = vec![4u8; 700 << 10];
                yield_now().await;
                a.len() + b.len()
            },
            rt.handle(),
        )
        .unwrap();
    let err = rt.block_on(too_big).unwrap_err();
    assert!(err.is_memory_exceeded(), "{err}");
    assert!(err.to_string().contains("with the Evict policy"), "{err}");
}

#[test]
#[cfg_attr(miri, ignore = "spawns threads")]
fn spawn_blocking_is_charged_to_the_spawning_task_budget() {
    let rt = Builder::new().worker_threads(1).build().unwrap();
    let budget = MkBudget::new(16 << 20);
    let task = task::Builder::new()
        .budget(&budget)
        .spawn_on(
            async {
                let budget = MkBudget::current().unwrap();
                let kept = memkit_async::spawn_blocking(|| vec![5u8; 1 << 20])
                    .await
                    .unwrap();
                let seen = budget.used();
                drop(kept);
                seen
            },
            rt.handle(),
        )
        .unwrap();
    let seen = rt.block_on(task).unwrap();
    assert!(
        seen >= cost(1 << 20),
        "the closure's vector counted: {seen}"
    );
    // The blocking thread lets go of the closure's task cell (also charged to the budget) just
    // after the join handle sees the result; dropping the runtime waits for that thread.
    drop(rt);
    assert_eq!(
        budget.used(),
        0,
        "credited once the task dropped the vector and the pool its task"
    );
}

#[test]
#[cfg_attr(miri, ignore = "spawns worker threads")]
fn allocations_made_unattributed_stay_off_the_task_budget_for_their_whole_life() {
    static REGISTRY: std::sync::Mutex<Vec<String>> = std::sync::Mutex::new(Vec::new());
    let rt = Builder::new().worker_threads(1).build().unwrap();
    let budget = MkBudget::new(1 << 20);
    let task = task::Builder::new()
        .budget(&budget)
        .spawn_on(
            async {
                let charged = "charged".repeat(100);
                // Published when the poll ends.
                yield_now().await;
                let before = MkBudget::current().unwrap().used();
                memkit_async::heap::unattributed(|| {
                    let mut registry = REGISTRY.lock().unwrap();
                    registry.reserve_exact(1);
                    registry.push("registered".repeat(100));
                    // A free inside is still credited to whoever paid.
                    drop(charged);
                });
                yield_now().await;
                before - MkBudget::current().unwrap().used()
            },
            rt.handle(),
        )
        .unwrap();
    let credited = rt.block_on(task).unwrap();
    assert_eq!(credited, cost(700), "the String freed inside was credited");
    drop(rt);
    assert_eq!(REGISTRY.lock().unwrap()[0].len(), 1000);
    assert_eq!(
        budget.used(),
        0,
        "the registry's vector and string, alive after the task, are not the task's"
    );
}

/// Runs `f` on a thread and gives up after `limit`, so a hang fails the test instead of CI.
fn within<T: Send + 'static>(limit: Duration, f: impl FnOnce() -> T + Send + 'static) -> T {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(f());
    });
    rx.recv_timeout(limit)
        .expect("did not finish within its bound: a hang")
}

#[test]
#[cfg_attr(miri, ignore = "spawns worker threads")]
fn a_parent_awaiting_a_child_held_for_admission_does_not_wait_forever() {
    within(Duration::from_secs(20), || {
        let rt = Builder::new().worker_threads(2).build().unwrap();
        let budget = MkBudget::new(1 << 20);
        let parent = task::Builder::new()
            .budget(&budget)
            .spawn_on(
                async move {
                    // Over the limit, and kept until the child is done.
                    let held = vec![1u8; (3 << 20) / 2];
                    yield_now().await;
                    // The child inherits the full budget: held back from starting, while the
                    // parent, waiting for it, is not held and frees nothing.
                    let child = memkit_async::spawn(async { vec![2u8; 4096].len() });
                    child.await.unwrap() + held.len()
                },
                rt.handle(),
            )
            .unwrap();
        assert_eq!(rt.block_on(parent).unwrap(), 4096 + (3 << 20) / 2);
        assert_eq!((budget.used(), budget.parked()), (0, 0));
    });
}

#[test]
#[cfg_attr(miri, ignore = "spawns worker threads")]
fn a_task_aborted_while_held_for_memory_ends_cancelled() {
    within(Duration::from_secs(20), || {
        let rt = Builder::new().worker_threads(1).build().unwrap();
        let budget = MkBudget::new(1 << 20);
        let (holder, release) = hold_memory(&rt, &budget);
        let polled = Arc::new(AtomicUsize::new(0));
        let waiting = {
            let polled = polled.clone();
            task::Builder::new()
                .budget(&budget)
                .spawn_on(async move { polled.fetch_add(1, SeqCst) }, rt.handle())
                .unwrap()
        };
        while budget.parked() == 0 {
            std::thread::yield_now();
        }
        waiting.abort();
        let err = rt.block_on(waiting).unwrap_err();
        assert!(err.is_cancelled() && !err.is_memory_exceeded(), "{err}");
        assert_eq!(polled.load(SeqCst), 0, "never started");
        assert_eq!(budget.parked(), 0);
        release.notify();
        assert_eq!(rt.block_on(holder).unwrap(), (3 << 20) / 2);
        assert_eq!(budget.used(), 0);
    });
}
