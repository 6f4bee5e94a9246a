//! `task::block_in_place`: blocking code in a task while the other tasks of its worker go on.

mod common;

use common::*;
use memkit_async::runtime::Builder;
use memkit_async::task::{self, block_in_place, yield_now};
use memkit_async::{Handle, MkBudget, MkGlobalAlloc};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, Ordering::SeqCst};
use std::sync::mpsc;
use std::sync::Arc;
use std::thread;

#[global_allocator]
static GLOBAL: MkGlobalAlloc = MkGlobalAlloc::system();

/// What an allocation of `size` bytes is charged with `MkGlobalAlloc`: rounded up to 8, plus
/// the 8-byte trailer.
fn cost(size: usize) -> usize {
    size.next_multiple_of(8) + 8
}

#[test]
fn on_one_worker_another_task_runs_while_the_closure_blocks() {
    with_timeout(DEADLINE, || {
        let (rt, counts) = counted_runtime(1);
        let (started_tx, started_rx) = mpsc::channel::<()>();
        let (release_tx, release_rx) = mpsc::channel::<()>();
        let (other_tx, other_rx) = mpsc::channel::<thread::ThreadId>();
        let blocker = rt.spawn(async move {
            // Queued on this worker: it can only run if the worker goes on without us.
            let other = memkit_async::spawn(async move {
                other_tx.send(thread::current().id()).unwrap();
            });
            let here = thread::current().id();
            let out = block_in_place(move || {
                started_tx.send(()).unwrap();
                release_rx.recv().unwrap();
                (thread::current().id(), 42)
            });
            other.await.unwrap();
            (here, out)
        });
        started_rx.recv().unwrap();
        let other_thread = other_rx
            .recv_timeout(DEADLINE)
            .expect("the other task ran while the closure blocked");
        release_tx.send(()).unwrap();
        let (here, (blocked_on, out)) = rt.block_on(blocker).unwrap();
        assert_eq!(out, 42);
        // The closure ran on the task's thread; the other task on the worker's new thread.
        assert_eq!(blocked_on, here);
        assert_ne!(other_thread, here);
        assert_eq!(rt.metrics().num_workers(), 1);
        // One thread took the worker over.
        assert_eq!(counts.starts.get(), 2);
        drop(rt);
        assert_eq!(counts.stops.get(), 2);
    });
}

#[test]
fn nested_and_repeated_calls() {
    with_timeout(DEADLINE, || {
        let (rt, counts) = counted_runtime(1);
        let out = rt.block_on(rt.spawn(async {
            let mut out = Vec::new();
            out.push(block_in_place(|| block_in_place(|| 1)));
            // Same poll: this thread is no worker any more, so it just runs.
            out.push(block_in_place(|| 2));
            // Blocking on a future is allowed inside the closure.
            let handle = Handle::current();
            out.push(block_in_place(move || handle.block_on(async { 3 })));
            for i in 4..7 {
                yield_now().await;
                // A new poll, on the worker's new thread: it hands the worker off again.
                out.push(block_in_place(move || i));
            }
            out
        }));
        assert_eq!(out.unwrap(), [1, 2, 3, 4, 5, 6]);
        // Every other task still runs.
        let more: Vec<_> = (0..50).map(|i| rt.spawn(async move { i })).collect();
        for (i, h) in more.into_iter().enumerate() {
            assert_eq!(rt.block_on(h).unwrap(), i);
        }
        // The first worker thread and one per poll that blocked.
        assert_eq!(counts.starts.get(), 1 + 4);
        drop(rt);
        assert_eq!(counts.stops.get(), counts.starts.get());
    });
}

#[test]
fn a_panic_in_the_closure_is_the_task_panic_and_the_runtime_goes_on() {
    with_timeout(DEADLINE, || {
        let rt = runtime(1);
        for round in 0..3 {
            let err = rt
                .block_on(rt.spawn(async move {
                    block_in_place(move || panic!("blocked and failed {round}"));
                }))
                .unwrap_err();
            assert!(err.is_panic());
            let msg = panic_message(&*err.into_panic());
            assert_eq!(msg, format!("blocked and failed {round}"));
            let ok = rt.block_on(rt.spawn(async { block_in_place(|| 7) + 1 }));
            assert_eq!(ok.unwrap(), 8);
        }
        // Outside the closure, blocking on a future in a task is refused as before.
        let refused = rt.block_on(rt.spawn(async { Handle::current().block_on(async {}) }));
        let msg = panic_message(&*refused.unwrap_err().into_panic());
        assert!(msg.contains("cannot block on a future"), "{msg}");
    });
}

#[test]
fn heap_and_budget_bytes_of_the_closure_are_the_task_s() {
    with_timeout(DEADLINE, || {
        let rt = runtime(1);
        let budget = MkBudget::new(1 << 20);
        let seen = rt.block_on({
            let budget = budget.clone();
            async move {
                task::Builder::new()
                    .budget(budget.clone())
                    .spawn(async move {
                        let (v, guard) = block_in_place(|| {
                            (vec![1u8; 10_000], budget.try_acquire(500).unwrap())
                        });
                        yield_now().await;
                        let charged = budget.used();
                        drop(v);
                        drop(guard);
                        yield_now().await;
                        (charged, budget.used())
                    })
                    .unwrap()
                    .await
                    .unwrap()
            }
        });
        assert_eq!(seen, (cost(10_000) + 500, 0));
        assert_eq!(budget.used(), 0);
    });
}

#[test]
fn shutdown_waits_for_a_running_closure_and_joins_every_thread() {
    with_timeout(DEADLINE, || {
        let (rt, counts) = counted_runtime(1);
        let (started_tx, started_rx) = mpsc::channel::<()>();
        let (release_tx, release_rx) = mpsc::channel::<()>();
        let finished = Arc::new(AtomicBool::new(false));
        let drops = Counter::new();
        {
            let finished = finished.clone();
            let guard = DropCount(drops.clone());
            rt.spawn(async move {
                let _guard = guard;
                block_in_place(move || {
                    started_tx.send(()).unwrap();
                    release_rx.recv().unwrap();
                    finished.store(true, SeqCst);
                });
                std::future::pending::<()>().await
            });
        }
        started_rx.recv().unwrap();
        let (dropped_tx, dropped_rx) = mpsc::channel::<bool>();
        let dropper = {
            let finished = finished.clone();
            thread::spawn(move || {
                drop(rt);
                dropped_tx.send(finished.load(SeqCst)).unwrap();
            })
        };
        // Shutdown does not return while the closure runs.
        assert!(dropped_rx.try_recv().is_err());
        release_tx.send(()).unwrap();
        let finished_first = dropped_rx.recv().unwrap();
        dropper.join().unwrap();
        assert!(finished_first, "shutdown returned before the closure did");
        assert_eq!(drops.get(), 1);
        assert_eq!(counts.starts.get(), 2);
        assert_eq!(counts.stops.get(), 2);
    });
}

struct DropCount(Counter);

impl Drop for DropCount {
    fn drop(&mut self) {
        self.0.inc();
    }
}

#[test]
fn outside_a_worker_it_just_runs() {
    with_timeout(DEADLINE, || {
        assert_eq!(block_in_place(|| 1), 1);
        let rt = runtime(1);
        let me = thread::current().id();
        // On the `block_on` thread.
        assert_eq!(
            rt.block_on(async { block_in_place(|| thread::current().id()) }),
            me
        );
        // Inside `spawn_blocking`.
        let out = rt.block_on(rt.spawn_blocking(|| block_in_place(|| 2)));
        assert_eq!(out.unwrap(), 2);
    });
}

#[test]
fn on_a_current_thread_runtime_it_panics() {
    with_timeout(DEADLINE, || {
        let rt = Builder::new_current_thread().build().unwrap();
        let in_block_on = catch_unwind(AssertUnwindSafe(|| {
            rt.block_on(async { block_in_place(|| 1) })
        }));
        let msg = panic_message(&*in_block_on.unwrap_err());
        assert!(msg.contains("current-thread runtime"), "{msg}");
        let in_task = rt.block_on(rt.spawn(async { block_in_place(|| 1) }));
        let msg = panic_message(&*in_task.unwrap_err().into_panic());
        assert!(msg.contains("use `spawn_blocking`"), "{msg}");
        // The runtime still works.
        assert_eq!(rt.block_on(rt.spawn(async { 3 })).unwrap(), 3);
    });
}

#[test]
fn many_tasks_block_in_place_on_a_busy_runtime() {
    with_timeout(DEADLINE, || {
        let (rt, counts) = counted_runtime(4);
        let handles: Vec<_> = (0..200u64)
            .map(|i| {
                rt.spawn(async move {
                    let a = block_in_place(move || i * 2);
                    yield_now().await;
                    let b = memkit_async::spawn(async move { a + 1 }).await.unwrap();
                    yield_now().await;
                    b
                })
            })
            .collect();
        let sum: u64 = handles.into_iter().map(|h| rt.block_on(h).unwrap()).sum();
        assert_eq!(sum, (0..200u64).map(|i| i * 2 + 1).sum());
        // Each task's one call handed its worker to a new thread (the last ones may still be
        // starting: the other workers can steal and finish the tasks first).
        wait_until("every thread that took a worker over started", || {
            counts.starts.get() >= 4 + 200
        });
        assert_eq!(counts.starts.get(), 4 + 200);
        drop(rt);
        assert_eq!(counts.stops.get(), 4 + 200);
    });
}
