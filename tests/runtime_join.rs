//! What a `JoinHandle` resolves to: outputs, panics, aborts and detached tasks, with every
//! future and output dropped exactly once.

mod common;

use common::*;
use futures::channel::oneshot;
use memkit_async::{spawn, task, JoinError, JoinHandle};
use std::future::pending;
use std::io;
use std::sync::Arc;
use std::thread;
use std::time::Duration;

#[test]
fn panicking_task_yields_a_panic_join_error() {
    with_timeout(DEADLINE, || {
        let rt = runtime(2);
        let h = rt.spawn(async {
            if true {
                panic!("boom {}", 7);
            }
            5u8
        });
        let id = h.id();
        let err = rt.block_on(h).unwrap_err();
        assert!(err.is_panic());
        assert!(!err.is_cancelled());
        assert_eq!(err.id(), id);
        let shown = err.to_string();
        assert!(shown.contains("panicked"), "{shown}");
        assert!(shown.contains("boom 7"), "{shown}");
        assert!(shown.contains(&id.to_string()), "{shown}");
        let debug = format!("{err:?}");
        assert!(debug.contains("boom 7"), "{debug}");
        assert_eq!(panic_message(&*err.into_panic()), "boom 7");

        // A message formatted at run time arrives as a `String` payload.
        let n = std::hint::black_box(8);
        let err = rt
            .block_on(rt.spawn(async move { panic!("boom {n}") }))
            .unwrap_err();
        let payload = err.into_panic();
        assert_eq!(
            payload.downcast_ref::<String>().map(String::as_str),
            Some("boom 8")
        );
    });
}

#[test]
fn panic_payloads_of_any_type_come_back() {
    with_timeout(DEADLINE, || {
        let rt = runtime(1);
        let err = rt
            .block_on(rt.spawn(async { panic!("static str") }))
            .unwrap_err();
        assert_eq!(*err.into_panic().downcast::<&str>().unwrap(), "static str");

        let err = rt
            .block_on(rt.spawn(async { std::panic::panic_any(42u32) }))
            .unwrap_err();
        let shown = err.to_string();
        assert!(shown.contains("panicked"), "{shown}");
        assert_eq!(
            *err.try_into_panic().unwrap().downcast::<u32>().unwrap(),
            42
        );

        // As an `io::Error` (the `?` conversion users rely on).
        let err = rt
            .block_on(rt.spawn(async { panic!("io boom") }))
            .unwrap_err();
        let io: io::Error = err.into();
        assert!(io.to_string().contains("io boom"), "{io}");
    });
}

#[test]
fn panics_do_not_stop_other_tasks_or_the_runtime() {
    with_timeout(DEADLINE, || {
        // One worker: a panic that killed it would leave nobody to run the rest.
        let rt = runtime(1);
        let handles: Vec<JoinHandle<u64>> = (0..1000u64)
            .map(|i| {
                rt.spawn(async move {
                    task::yield_now().await;
                    if i % 10 == 3 {
                        panic!("task {i} fails");
                    }
                    i
                })
            })
            .collect();
        let (ok_sum, panics) = rt.block_on(async {
            let mut ok_sum = 0;
            let mut panics = 0;
            for (i, h) in handles.into_iter().enumerate() {
                match h.await {
                    Ok(v) => ok_sum += v,
                    Err(e) => {
                        assert!(e.is_panic());
                        assert_eq!(panic_message(&*e.into_panic()), format!("task {i} fails"));
                        panics += 1;
                    }
                }
            }
            (ok_sum, panics)
        });
        assert_eq!(panics, 100);
        assert_eq!(ok_sum, (0..1000u64).filter(|i| i % 10 != 3).sum::<u64>());
        // Still working afterwards, from outside and from inside.
        let after = rt
            .block_on(rt.spawn(async { spawn(async { 40 }).await.unwrap() + 2 }))
            .unwrap();
        assert_eq!(after, 42);
    });
}

#[test]
fn a_panic_in_a_detached_output_drop_does_not_kill_the_worker() {
    with_timeout(DEADLINE, || {
        struct PanicOnDrop;
        impl Drop for PanicOnDrop {
            fn drop(&mut self) {
                panic!("output drop panics");
            }
        }
        let rt = runtime(1);
        let (tx, rx) = oneshot::channel::<()>();
        drop(rt.spawn(async move {
            rx.await.unwrap();
            PanicOnDrop
        }));
        tx.send(()).unwrap();
        // The only worker dropped the output (and caught its panic): it still runs tasks.
        for i in 0..10 {
            assert_eq!(rt.block_on(rt.spawn(async move { i })).unwrap(), i);
        }
    });
}

#[test]
fn cancelled_join_error_reports_cancellation() {
    with_timeout(DEADLINE, || {
        let rt = runtime(1);
        let h = rt.spawn(pending::<()>());
        let id = h.id();
        h.abort();
        let err = rt.block_on(h).unwrap_err();
        assert!(err.is_cancelled());
        assert!(!err.is_panic());
        assert_eq!(err.id(), id);
        assert!(err.to_string().contains("cancelled"), "{err}");
        let err = err.try_into_panic().unwrap_err();
        assert!(err.is_cancelled());
        let msg = expect_panic(|| err.into_panic());
        assert!(msg.contains("did not panic"), "{msg}");
    });
}

/// A future that never completes and counts its drop.
fn never(probe: &Probe) -> impl std::future::Future<Output = ()> + Send + 'static {
    probe.track(pending::<()>())
}

#[test]
fn abort_of_a_pending_task_drops_its_future_exactly_once() {
    with_timeout(DEADLINE, || {
        let rt = runtime(2);
        let probe = Probe::new();
        let h = rt.spawn(never(&probe));
        wait_until("the task was polled", || probe.pending_seen.get());
        assert_eq!(probe.drops.get(), 0);
        assert!(!h.is_finished());
        h.abort();
        h.abort(); // Twice is the same as once.
        let err = rt.block_on(h).unwrap_err();
        assert!(err.is_cancelled(), "{err:?}");
        assert_eq!(probe.drops.get(), 1);
        assert_eq!(probe.polls.get(), 1, "abort polled the future");
        drop(rt);
        assert_eq!(probe.drops.get(), 1);
    });
}

#[test]
fn abort_before_the_first_poll_never_polls() {
    with_timeout(DEADLINE, || {
        let rt = runtime(1);
        // Occupy the only worker so the next task stays queued.
        let (release, blocked) = std::sync::mpsc::channel::<()>();
        let busy = Flag::new();
        let b = busy.clone();
        let blocker = rt.spawn(async move {
            b.set();
            blocked.recv_timeout(DEADLINE).expect("never released");
        });
        wait_until("the blocker occupies the worker", || busy.get());
        let probe = Probe::new();
        let h = rt.spawn(never(&probe));
        h.abort();
        release.send(()).unwrap();
        assert!(rt.block_on(h).unwrap_err().is_cancelled());
        assert_eq!(probe.polls.get(), 0);
        assert_eq!(probe.drops.get(), 1);
        rt.block_on(blocker).unwrap();
    });
}

#[test]
fn abort_of_a_completed_task_is_a_no_op() {
    with_timeout(DEADLINE, || {
        let rt = runtime(2);
        let out_drops = Counter::new();
        let d = out_drops.clone();
        let h = rt.spawn(async move { (5u32, DropCount(d)) });
        wait_until("the task finished", || h.is_finished());
        h.abort();
        assert!(h.is_finished());
        let (v, out) = rt
            .block_on(h)
            .expect("abort after completion changed the result");
        assert_eq!(v, 5);
        assert_eq!(out_drops.get(), 0);
        drop(out);
        assert_eq!(out_drops.get(), 1);
    });
}

#[test]
fn a_task_aborting_itself_is_cancelled_at_its_next_yield() {
    with_timeout(DEADLINE, || {
        let rt = runtime(2);
        let (tx, rx) = oneshot::channel::<Arc<JoinHandle<()>>>();
        let after_abort = Flag::new();
        let after_yield = Flag::new();
        let probe = Probe::new();
        let (a, y) = (after_abort.clone(), after_yield.clone());
        let h = Arc::new(rt.spawn(probe.track(async move {
            let me = rx.await.unwrap();
            me.abort();
            // Aborting does not unwind the running poll: this still runs.
            a.set();
            task::yield_now().await;
            y.set();
            drop(me);
        })));
        wait_until("the task waits for its handle", || probe.pending_seen.get());
        tx.send(h.clone()).unwrap();
        wait_until("the task's future was dropped", || probe.drops.get() == 1);
        assert!(after_abort.get());
        assert!(
            !after_yield.get(),
            "the task ran past a yield after aborting itself"
        );
        // The task's own copy of the handle went with its future.
        let h = Arc::try_unwrap(h).expect("the task still holds its handle");
        let err = rt.block_on(h).unwrap_err();
        assert!(err.is_cancelled(), "{err:?}");
        assert_eq!(probe.drops.get(), 1);
        assert_eq!(probe.polls.get(), 2);
    });
}

#[test]
fn abort_from_another_thread_while_the_task_is_running() {
    with_timeout(DEADLINE, || {
        let rt = runtime(2);
        let (started_tx, started_rx) = std::sync::mpsc::channel::<()>();
        let (go_tx, go_rx) = std::sync::mpsc::channel::<()>();
        let probe = Probe::new();
        let finished_poll = Flag::new();
        let f = finished_poll.clone();
        let h = rt.spawn(probe.track(async move {
            started_tx.send(()).unwrap();
            // Blocks this worker inside the poll until the abort happened.
            go_rx.recv_timeout(DEADLINE).unwrap();
            f.set();
            task::yield_now().await;
            unreachable!("polled again after abort");
        }));
        started_rx.recv_timeout(DEADLINE).unwrap();
        h.abort();
        assert_eq!(
            probe.drops.get(),
            0,
            "the future was dropped while being polled"
        );
        go_tx.send(()).unwrap();
        assert!(rt.block_on(h).unwrap_err().is_cancelled());
        assert!(finished_poll.get());
        assert_eq!(probe.drops.get(), 1);
        assert_eq!(probe.polls.get(), 1);
    });
}

#[test]
fn dropped_join_handle_detaches_the_task() {
    with_timeout(DEADLINE, || {
        let rt = runtime(2);
        let out_drops = Counter::new();
        let ran = Flag::new();
        let (tx, rx) = oneshot::channel::<()>();
        let (d, r) = (out_drops.clone(), ran.clone());
        let h = rt.spawn(async move {
            rx.await.unwrap();
            r.set();
            DropCount(d)
        });
        drop(h);
        tx.send(()).unwrap();
        wait_until("the detached task ran and its output was dropped", || {
            out_drops.get() == 1
        });
        assert!(ran.get());
        drop(rt);
        assert_eq!(out_drops.get(), 1);
    });
}

#[test]
fn join_handle_dropped_after_completion_drops_the_output_once() {
    with_timeout(DEADLINE, || {
        let rt = runtime(2);
        let out_drops = Counter::new();
        let d = out_drops.clone();
        let h = rt.spawn(async move { DropCount(d) });
        wait_until("the task finished", || h.is_finished());
        assert_eq!(
            out_drops.get(),
            0,
            "the output was dropped while the handle still wanted it"
        );
        drop(h);
        assert_eq!(out_drops.get(), 1);
        drop(rt);
        assert_eq!(out_drops.get(), 1);
    });
}

#[test]
fn join_handles_dropped_while_tasks_complete_drop_each_output_once() {
    with_timeout(DEADLINE, || {
        let rt = runtime(2);
        const N: usize = 5000;
        let out_drops = Counter::new();
        for _ in 0..N {
            let d = out_drops.clone();
            let h = rt.spawn(async move { DropCount(d) });
            // Race the drop against the completion.
            drop(h);
        }
        wait_until("every detached output was dropped", || out_drops.get() >= N);
        drop(rt);
        assert_eq!(out_drops.get(), N);
    });
}

#[test]
fn abort_then_drop_the_handle_without_awaiting() {
    with_timeout(DEADLINE, || {
        let rt = runtime(2);
        let probe = Probe::new();
        let h = rt.spawn(never(&probe));
        h.abort();
        drop(h);
        wait_until("the aborted future was dropped", || probe.drops.get() == 1);
        drop(rt);
        assert_eq!(probe.drops.get(), 1);
    });
}

#[test]
fn abort_racing_with_wake_drops_every_future_exactly_once() {
    with_timeout(DEADLINE, || {
        let rt = runtime(2);
        const N: usize = 2000;
        let probe = Probe::new();
        let mut senders = Vec::new();
        let mut handles = Vec::new();
        for i in 0..N {
            let (tx, rx) = oneshot::channel::<usize>();
            senders.push(tx);
            handles.push(rt.spawn(probe.track(async move { rx.await.unwrap() + i })));
        }
        // One thread completes the channels while another aborts every task.
        thread::scope(|s| {
            s.spawn(|| {
                for tx in senders {
                    let _ = tx.send(1);
                }
            });
            s.spawn(|| {
                for h in &handles {
                    h.abort();
                }
            });
        });
        let (ok, cancelled) = rt.block_on(async {
            let (mut ok, mut cancelled) = (0, 0);
            for (i, h) in handles.into_iter().enumerate() {
                match h.await {
                    Ok(v) => {
                        assert_eq!(v, i + 1);
                        ok += 1;
                    }
                    Err(e) => {
                        assert!(e.is_cancelled(), "{e:?}");
                        cancelled += 1;
                    }
                }
            }
            (ok, cancelled)
        });
        assert_eq!(ok + cancelled, N);
        assert_eq!(probe.drops.get(), N);
        probe.assert_sound();
        drop(rt);
        assert_eq!(probe.drops.get(), N);
    });
}

#[test]
fn concurrent_aborts_of_one_task_drop_it_once() {
    with_timeout(DEADLINE, || {
        let rt = runtime(2);
        for _ in 0..200 {
            let probe = Probe::new();
            let h = rt.spawn(never(&probe));
            thread::scope(|s| {
                for _ in 0..4 {
                    s.spawn(|| h.abort());
                }
            });
            assert!(rt.block_on(h).unwrap_err().is_cancelled());
            assert_eq!(probe.drops.get(), 1);
        }
    });
}

#[test]
fn a_panic_while_dropping_an_aborted_future_is_reported_as_a_panic() {
    with_timeout(DEADLINE, || {
        struct PanicOnDrop;
        impl Drop for PanicOnDrop {
            fn drop(&mut self) {
                panic!("drop of the cancelled future panics");
            }
        }
        let rt = runtime(1);
        let started = Flag::new();
        let s = started.clone();
        let h = rt.spawn(async move {
            let _guard = PanicOnDrop;
            s.set();
            pending::<()>().await;
        });
        wait_until("the task started", || started.get());
        h.abort();
        let err = rt.block_on(h).unwrap_err();
        assert!(err.is_panic(), "{err:?}");
        assert_eq!(
            panic_message(&*err.into_panic()),
            "drop of the cancelled future panics"
        );
        // The worker survived.
        assert_eq!(rt.block_on(rt.spawn(async { 1 })).unwrap(), 1);
    });
}

#[test]
fn is_finished_tracks_completion() {
    with_timeout(DEADLINE, || {
        let rt = runtime(2);
        let (tx, rx) = oneshot::channel::<u8>();
        let h = rt.spawn(async move { rx.await.unwrap() });
        thread::sleep(Duration::from_millis(20));
        assert!(!h.is_finished());
        tx.send(4).unwrap();
        wait_until("the task finished", || h.is_finished());
        assert_eq!(rt.block_on(h).unwrap(), 4);

        let panicking = rt.spawn(async { panic!("x") });
        wait_until("the panicking task finished", || panicking.is_finished());
        let aborted = rt.spawn(pending::<()>());
        aborted.abort();
        wait_until("the aborted task finished", || aborted.is_finished());
        let _: (Result<(), JoinError>, Result<(), JoinError>) =
            (rt.block_on(panicking), rt.block_on(aborted));
    });
}
