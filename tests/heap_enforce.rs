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
        rt.block_on(async move {
            task::Builder::new()
                .name("runaway")
                .budget(1 << 20)
                .policy(MkBackpressure::Fail)
                .spawn(async move {
                    let mut held: Vec<Vec<u8>> = Vec::with_capacity(2000);
                    while held.len() < 1600 {
                        held.push(vec![1; STEP]);
                        pushes.fetch_add(1, SeqCst);
                        yield_now().await;
                    }
                })
                .unwrap()
        })
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
    let release = Arc::new(tokio_like_notify::Notify::default());
    let holder = {
        let release = release.clone();
        task::Builder::new()
            .budget(&budget)
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
