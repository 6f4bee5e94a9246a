//! Dropping and shutting down a runtime: every unfinished future dropped exactly once, every
//! thread joined, handles resolved to cancelled, and bounded waits where asked for.

mod common;

use common::*;
use futures::channel::{mpsc, oneshot};
use futures::StreamExt;
use memkit_async::{spawn, Builder, Handle, JoinHandle};
use std::future::pending;
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

#[test]
fn drop_with_1000_pending_tasks_drops_each_future_once_and_joins_every_thread() {
    with_timeout(DEADLINE, || {
        let (rt, threads) = counted_runtime(4);
        let probe = Probe::new();
        let mut handles: Vec<JoinHandle<()>> = Vec::new();
        let mut held_senders = Vec::new();
        for i in 0..250 {
            // Parked forever on nothing.
            handles.push(rt.spawn(probe.track(pending::<()>())));
            // Waiting in a channel whose sender another pending task holds.
            let (tx, mut rx) = mpsc::channel::<u32>(1);
            handles.push(rt.spawn(probe.track(async move {
                let _ = rx.next().await;
                unreachable!("a sender is alive until shutdown");
            })));
            handles.push(rt.spawn(probe.track(async move {
                let _keep = tx;
                pending::<()>().await;
            })));
            // Waiting on a oneshot whose sender the test keeps past the runtime drop.
            let (otx, orx) = oneshot::channel::<u32>();
            held_senders.push(otx);
            handles.push(rt.spawn(probe.track(async move {
                let v = orx.await;
                unreachable!("got {v:?} {i}");
            })));
        }
        // Always runnable: yields forever.
        for _ in 0..4 {
            handles.push(rt.spawn(probe.track(async {
                loop {
                    memkit_async::task::yield_now().await;
                }
            })));
        }
        wait_until("every task was polled", || probe.polls.get() >= 1004);
        assert_eq!(probe.drops.get(), 0);
        drop(rt);
        assert_eq!(
            probe.drops.get(),
            1004,
            "each future must be dropped exactly once"
        );
        assert_eq!(threads.starts.get(), 4);
        assert_eq!(
            threads.stops.get(),
            4,
            "drop(rt) returned before every worker stopped"
        );
        for h in handles {
            let err = futures::executor::block_on(h).unwrap_err();
            assert!(err.is_cancelled(), "{err:?}");
        }
        probe.assert_sound();
        drop(held_senders);
        assert_eq!(probe.drops.get(), 1004);
    });
}

#[test]
fn drop_right_after_spawning_10k_tasks() {
    with_timeout(DEADLINE, || {
        let (rt, threads) = counted_runtime(2);
        let probe = Probe::new();
        let ran = Counter::new();
        let handles: Vec<_> = (0..10_000u64)
            .map(|i| {
                let ran = ran.clone();
                rt.spawn(probe.track(async move {
                    ran.inc();
                    memkit_async::task::yield_now().await;
                    i
                }))
            })
            .collect();
        drop(rt);
        assert_eq!(probe.drops.get(), 10_000);
        assert_eq!(threads.stops.get(), 2);
        let mut completed = 0;
        for (i, h) in handles.into_iter().enumerate() {
            match futures::executor::block_on(h) {
                Ok(v) => {
                    assert_eq!(v, i as u64);
                    completed += 1;
                }
                Err(e) => assert!(e.is_cancelled(), "{e:?}"),
            }
        }
        assert!(completed <= ran.get());
        probe.assert_sound();
    });
}

#[test]
fn a_thread_blocked_on_a_join_handle_is_released_by_the_runtime_drop() {
    with_timeout(DEADLINE, || {
        let rt = runtime(2);
        let handle = rt.handle().clone();
        let h = rt.spawn(pending::<u8>());
        let waiter = thread::spawn(move || handle.block_on(h));
        thread::sleep(Duration::from_millis(20));
        drop(rt);
        let res = waiter.join().unwrap();
        assert!(res.unwrap_err().is_cancelled());
    });
}

#[test]
fn spawning_through_a_handle_after_the_drop_gives_a_cancelled_task() {
    with_timeout(DEADLINE, || {
        let rt = runtime(2);
        let handle: Handle = rt.handle().clone();
        drop(rt);
        let probe = Probe::new();
        let h = handle.spawn(probe.track(async { 1 }));
        assert!(futures::executor::block_on(h).unwrap_err().is_cancelled());
        assert_eq!(probe.drops.get(), 1);
        assert_eq!(probe.polls.get(), 0);

        let ran = Flag::new();
        let r = ran.clone();
        let h = handle.spawn_blocking(move || r.set());
        assert!(futures::executor::block_on(h).unwrap_err().is_cancelled());
        assert!(!ran.get());
    });
}

#[test]
fn futures_dropped_at_shutdown_may_spawn_and_see_the_handle() {
    with_timeout(DEADLINE, || {
        struct SpawnOnDrop {
            inner: Probe,
            spawned: Arc<Mutex<Vec<JoinHandle<()>>>>,
            saw_handle: Flag,
        }
        impl Drop for SpawnOnDrop {
            fn drop(&mut self) {
                if Handle::try_current().is_ok() {
                    self.saw_handle.set();
                }
                let h = spawn(self.inner.track(pending::<()>()));
                self.spawned.lock().unwrap().push(h);
            }
        }
        let rt = runtime(2);
        let inner = Probe::new();
        let outer = Probe::new();
        let spawned = Arc::new(Mutex::new(Vec::new()));
        let saw_handle = Flag::new();
        for _ in 0..100 {
            let guard = SpawnOnDrop {
                inner: inner.clone(),
                spawned: spawned.clone(),
                saw_handle: saw_handle.clone(),
            };
            drop(rt.spawn(outer.track(async move {
                let _guard = guard;
                pending::<()>().await;
            })));
        }
        wait_until("every task was polled", || outer.polls.get() == 100);
        drop(rt);
        assert!(
            saw_handle.get(),
            "Handle::current is unset while futures drop at shutdown"
        );
        assert_eq!(outer.drops.get(), 100);
        assert_eq!(
            inner.drops.get(),
            100,
            "tasks spawned during shutdown must be dropped"
        );
        assert_eq!(inner.polls.get(), 0);
        for h in spawned.lock().unwrap().drain(..) {
            assert!(futures::executor::block_on(h).unwrap_err().is_cancelled());
        }
    });
}

#[test]
fn shutdown_timeout_does_not_wait_for_a_sleeping_blocking_closure() {
    with_timeout(DEADLINE, || {
        let mut builder = Builder::new();
        builder.worker_threads(2).max_blocking_threads(1);
        let threads = ThreadCounts::install(&mut builder);
        let rt = builder.build().unwrap();
        let started = Flag::new();
        let s = started.clone();
        let sleeper = rt.spawn_blocking(move || {
            s.set();
            thread::sleep(Duration::from_secs(2));
            7
        });
        // Queued behind the sleeper (one blocking thread): never starts.
        let queued_drops = Counter::new();
        let queued_ran = Flag::new();
        let (guard, r) = (DropCount(queued_drops.clone()), queued_ran.clone());
        let queued = rt.spawn_blocking(move || {
            let _guard = guard;
            r.set();
        });
        let probe = Probe::new();
        let pending_tasks: Vec<_> = (0..100)
            .map(|_| rt.spawn(probe.track(pending::<()>())))
            .collect();
        wait_until("the blocking closure started", || started.get());
        wait_until("the tasks were polled", || probe.polls.get() == 100);
        let t0 = Instant::now();
        rt.shutdown_timeout(Duration::from_millis(100));
        let took = t0.elapsed();
        assert!(
            took < Duration::from_millis(1500),
            "shutdown_timeout(100ms) took {took:?}: it waited for the 2 s closure"
        );
        assert_eq!(probe.drops.get(), 100);
        assert_eq!(queued_drops.get(), 1, "the queued closure was not dropped");
        assert!(!queued_ran.get());
        assert!(futures::executor::block_on(queued)
            .unwrap_err()
            .is_cancelled());
        for h in pending_tasks {
            assert!(futures::executor::block_on(h).unwrap_err().is_cancelled());
        }
        // The detached closure still finishes and delivers its value.
        assert_eq!(futures::executor::block_on(sleeper).unwrap(), 7);
        // Workers were joined; the blocking thread stops once its closure returned.
        wait_until("every thread stopped", || {
            threads.stops.get() == threads.starts.get()
        });
        assert_eq!(threads.starts.get(), 3);
    });
}

#[test]
fn shutdown_background_returns_at_once() {
    with_timeout(DEADLINE, || {
        let rt = runtime(2);
        let started = Flag::new();
        let s = started.clone();
        rt.spawn_blocking(move || {
            s.set();
            thread::sleep(Duration::from_millis(1500));
        });
        wait_until("the blocking closure started", || started.get());
        let t0 = Instant::now();
        rt.shutdown_background();
        let took = t0.elapsed();
        assert!(
            took < Duration::from_millis(1000),
            "shutdown_background took {took:?}"
        );
    });
}

#[test]
fn shutdown_timeout_with_a_worker_stuck_in_a_poll() {
    with_timeout(DEADLINE, || {
        let (rt, threads) = counted_runtime(2);
        let probe = Probe::new();
        let entered = Flag::new();
        let e = entered.clone();
        // Blocks its worker inside the poll for 1 s, then would wait forever.
        let stuck = rt.spawn(probe.track(async move {
            e.set();
            thread::sleep(Duration::from_secs(1));
            pending::<()>().await;
        }));
        wait_until("the stuck task started", || entered.get());
        let t0 = Instant::now();
        rt.shutdown_timeout(Duration::from_millis(100));
        let took = t0.elapsed();
        assert!(
            took < Duration::from_millis(800),
            "shutdown_timeout(100ms) took {took:?}"
        );
        // Once the poll ends, the stuck task is cancelled and its worker exits.
        assert!(futures::executor::block_on(stuck)
            .unwrap_err()
            .is_cancelled());
        assert_eq!(probe.drops.get(), 1);
        wait_until("the stuck worker stopped", || threads.stops.get() == 2);
    });
}

#[test]
fn dropping_with_running_blocking_closures_waits_for_them_and_joins_them() {
    with_timeout(DEADLINE, || {
        let mut builder = Builder::new();
        builder.worker_threads(2);
        let threads = ThreadCounts::install(&mut builder);
        let rt = builder.build().unwrap();
        let started = Counter::new();
        let hs: Vec<_> = (0..4u32)
            .map(|i| {
                let started = started.clone();
                rt.spawn_blocking(move || {
                    started.inc();
                    thread::sleep(Duration::from_millis(100));
                    i
                })
            })
            .collect();
        wait_until("every closure started", || started.get() == 4);
        // A plain drop waits for closures that already started.
        drop(rt);
        assert_eq!(threads.starts.get(), 2 + 4);
        assert_eq!(threads.stops.get(), 2 + 4);
        for (i, h) in hs.into_iter().enumerate() {
            assert_eq!(futures::executor::block_on(h).unwrap(), i as u32);
        }
    });
}

/// Where a runtime's last owner drops it from: one of the runtime's own threads.
#[derive(Clone, Copy, Debug)]
enum DroppedFrom {
    ItsBlockingThread,
    OneOfItsTasks,
}

#[test]
fn dropping_the_runtime_from_its_own_blocking_thread_or_task() {
    for_each_case(
        &[DroppedFrom::ItsBlockingThread, DroppedFrom::OneOfItsTasks],
        |from| {
            with_timeout(DEADLINE, move || {
                let (rt, threads) = counted_runtime(2);
                let probe = Probe::new();
                let pending_task = rt.spawn(probe.track(pending::<()>()));
                let handle = rt.handle().clone();
                let h = match from {
                    DroppedFrom::ItsBlockingThread => handle.spawn_blocking(move || drop(rt)),
                    // The dropping task itself finishes its poll and completes normally.
                    DroppedFrom::OneOfItsTasks => handle.spawn(async move { drop(rt) }),
                };
                futures::executor::block_on(h).unwrap();
                assert_eq!(probe.drops.get(), 1);
                assert!(futures::executor::block_on(pending_task)
                    .unwrap_err()
                    .is_cancelled());
                wait_until("every thread stopped", || {
                    threads.stops.get() == threads.starts.get()
                });
            });
        },
    );
}

#[test]
fn drop_does_not_hang_when_on_thread_start_panics() {
    with_timeout(DEADLINE, || {
        let rt = Builder::new()
            .worker_threads(2)
            .on_thread_start(|| panic!("on_thread_start fails"))
            .build()
            .unwrap();
        thread::sleep(Duration::from_millis(20));
        drop(rt);
    });
}

#[test]
fn tasks_woken_during_shutdown_are_dropped_once() {
    // Dropping one task's future drops a sender another task waits on, which wakes that task
    // in the middle of shutdown.
    with_timeout(DEADLINE, || {
        let rt = runtime(2);
        let probe = Probe::new();
        let mut handles = Vec::new();
        for _ in 0..500 {
            let (tx, rx) = oneshot::channel::<()>();
            handles.push(rt.spawn(probe.track(async move {
                let _ = rx.await;
            })));
            handles.push(rt.spawn(probe.track(async move {
                let _tx = tx;
                pending::<()>().await;
            })));
        }
        wait_until("every task was polled", || probe.polls.get() >= 1000);
        drop(rt);
        assert_eq!(probe.drops.get(), 1000);
        for h in handles {
            // A waiter may have observed its sender drop before shutdown reached it.
            if let Err(e) = futures::executor::block_on(h) {
                assert!(e.is_cancelled(), "{e:?}");
            }
        }
        probe.assert_sound();
    });
}
