//! The runtime context: `Handle::current`, `Runtime::enter`, task ids, worker indices, and the
//! clear panics for misuse (blocking inside the runtime, spawning outside it, bad builders).

mod common;

use common::*;
use memkit_async::{runtime, spawn, task, Builder, Handle};
use std::io;
use std::panic::{catch_unwind, AssertUnwindSafe};

const BLOCK_IN_RUNTIME: &str = "cannot block on a future inside a memkit-async runtime";

#[test]
fn block_on_inside_a_task_panics_instead_of_deadlocking() {
    with_timeout(DEADLINE, || {
        // One worker: a deadlock here would hang everything.
        let rt = runtime(1);
        let err = rt
            .block_on(rt.spawn(async { Handle::current().block_on(async { 1 }) }))
            .unwrap_err();
        assert!(err.is_panic());
        let msg = panic_message(&*err.into_panic());
        assert!(msg.contains(BLOCK_IN_RUNTIME), "{msg}");
        // Caught inside the task, the task goes on; the worker is fine afterwards.
        let out = rt
            .block_on(rt.spawn(async {
                let caught = catch_unwind(|| Handle::current().block_on(async {}));
                let msg = panic_message(&*caught.unwrap_err());
                assert!(msg.contains(BLOCK_IN_RUNTIME), "{msg}");
                spawn(async { 3 }).await.unwrap()
            }))
            .unwrap();
        assert_eq!(out, 3);
    });
}

#[test]
fn nested_block_on_panics_and_the_outer_one_continues() {
    with_timeout(DEADLINE, || {
        let rt = runtime(1);
        let other = runtime(1);
        let out = rt.block_on(async {
            let msg = expect_panic(|| rt.block_on(async {}));
            assert!(msg.contains(BLOCK_IN_RUNTIME), "{msg}");
            // Another runtime's block_on is just as blocking.
            let msg = expect_panic(|| other.block_on(async {}));
            assert!(msg.contains(BLOCK_IN_RUNTIME), "{msg}");
            spawn(async { 5 }).await.unwrap()
        });
        assert_eq!(out, 5);
        // The failed nested calls left the thread able to block_on again.
        assert_eq!(rt.block_on(async { 6 }), 6);
        assert_eq!(other.block_on(async { 7 }), 7);
    });
}

#[test]
fn block_on_of_another_runtime_inside_a_task_panics() {
    with_timeout(DEADLINE, || {
        let rt = runtime(1);
        let other = runtime(1);
        let other_handle = other.handle().clone();
        let err = rt
            .block_on(rt.spawn(async move { other_handle.block_on(async {}) }))
            .unwrap_err();
        let msg = panic_message(&*err.into_panic());
        assert!(msg.contains(BLOCK_IN_RUNTIME), "{msg}");
    });
}

#[test]
fn spawn_outside_a_runtime_panics_with_a_clear_message() {
    let msg = expect_panic(|| spawn(async {}));
    assert!(msg.contains("outside a memkit-async runtime"), "{msg}");
    let msg = expect_panic(Handle::current);
    assert!(msg.contains("no memkit-async runtime"), "{msg}");
    let msg = expect_panic(task::id);
    assert!(msg.contains("outside a spawned task"), "{msg}");
}

#[test]
fn zero_worker_threads_is_an_invalid_input_error() {
    let err = Builder::new().worker_threads(0).build().unwrap_err();
    assert_eq!(err.kind(), io::ErrorKind::InvalidInput);
    assert!(err.to_string().contains("worker_threads"), "{err}");
}

#[test]
fn handle_current_inside_tasks_and_block_on() {
    with_timeout(DEADLINE, || {
        let rt = Builder::new().worker_threads(3).build().unwrap();
        // Current handle is this runtime's: it reports 3 workers and spawns onto it.
        let n = rt
            .block_on(rt.spawn(async {
                let h = Handle::current();
                h.spawn(async { Handle::current().metrics().num_workers() })
                    .await
                    .unwrap()
            }))
            .unwrap();
        assert_eq!(n, 3);
        let n = rt.block_on(async { Handle::current().metrics().num_workers() });
        assert_eq!(n, 3);
        // block_on restores the thread's context afterwards.
        assert!(Handle::try_current().is_err());
    });
}

#[test]
fn try_current_outside_a_runtime_errs() {
    let err = Handle::try_current().unwrap_err();
    assert!(err.to_string().contains("no memkit-async runtime"), "{err}");
    let on_thread = std::thread::spawn(|| Handle::try_current().is_err())
        .join()
        .unwrap();
    assert!(on_thread);
}

#[test]
fn enter_makes_spawn_work_until_the_guard_drops() {
    with_timeout(DEADLINE, || {
        let one = runtime(1);
        let three = runtime(3);
        {
            let _outer = one.enter();
            assert_eq!(Handle::current().metrics().num_workers(), 1);
            {
                let _inner = three.enter();
                assert_eq!(Handle::current().metrics().num_workers(), 3);
                let h = spawn(async { runtime::worker_index() });
                assert!(three.block_on(h).unwrap().unwrap() < 3);
            }
            // The inner guard restored the outer runtime.
            assert_eq!(Handle::current().metrics().num_workers(), 1);
            let h = spawn(async { 8 });
            assert_eq!(one.block_on(h).unwrap(), 8);
        }
        assert!(Handle::try_current().is_err());
        let msg = expect_panic(|| spawn(async {}));
        assert!(msg.contains("outside a memkit-async runtime"), "{msg}");
    });
}

#[test]
fn task_ids_inside_and_outside_tasks() {
    with_timeout(DEADLINE, || {
        let rt = runtime(2);
        assert_eq!(task::try_id(), None);
        // block_on's own future is not a spawned task.
        assert_eq!(rt.block_on(async { task::try_id() }), None);
        let msg = rt.block_on(async { expect_panic(task::id) });
        assert!(msg.contains("outside a spawned task"), "{msg}");
        let h = rt.spawn(async {
            let before = task::id();
            task::yield_now().await;
            // Stable across awaits, even if the task moved.
            assert_eq!(task::id(), before);
            (before, task::try_id())
        });
        let id = h.id();
        let (inside, tried) = rt.block_on(h).unwrap();
        assert_eq!(inside, id);
        assert_eq!(tried, Some(id));
        // Nested: the child's id is its own, and the parent's comes back after awaiting it.
        let (parent, child, parent_after) = rt
            .block_on(rt.spawn(async {
                let parent = task::id();
                let child = spawn(async { task::id() }).await.unwrap();
                (parent, child, task::id())
            }))
            .unwrap();
        assert_ne!(parent, child);
        assert_eq!(parent, parent_after);
        // A blocking closure runs as a task of its own, with an id of its own.
        let b = rt.spawn_blocking(task::try_id);
        let bid = b.id();
        assert_ne!(bid, id);
        assert_eq!(rt.block_on(b).unwrap(), Some(bid));
    });
}

#[test]
fn worker_index_is_some_inside_tasks_and_none_elsewhere() {
    with_timeout(DEADLINE, || {
        let rt = runtime(3);
        assert_eq!(runtime::worker_index(), None);
        assert_eq!(rt.block_on(async { runtime::worker_index() }), None);
        let indices = rt.block_on(async {
            let hs: Vec<_> = (0..300)
                .map(|_| {
                    spawn(async {
                        let a = runtime::worker_index();
                        task::yield_now().await;
                        (a, runtime::worker_index())
                    })
                })
                .collect();
            let mut v = Vec::new();
            for h in hs {
                v.push(h.await.unwrap());
            }
            v
        });
        for (a, b) in indices {
            assert!(matches!(a, Some(i) if i < 3), "{a:?}");
            assert!(matches!(b, Some(i) if i < 3), "{b:?}");
        }
        let blocking = rt
            .block_on(rt.spawn_blocking(runtime::worker_index))
            .unwrap();
        assert_eq!(blocking, None);
    });
}

#[test]
fn a_panicking_block_on_future_propagates_and_leaves_the_thread_usable() {
    with_timeout(DEADLINE, || {
        let rt = runtime(1);
        let caught = catch_unwind(AssertUnwindSafe(|| {
            rt.block_on(async { panic!("in block_on") })
        }));
        assert_eq!(panic_message(&*caught.unwrap_err()), "in block_on");
        // The driving flag was reset on unwind: block_on works again on this thread.
        assert_eq!(rt.block_on(async { 2 }), 2);
        assert!(Handle::try_current().is_err());
    });
}

#[test]
fn yield_now_inside_block_on_returns() {
    with_timeout(DEADLINE, || {
        let rt = runtime(1);
        let n = rt.block_on(async {
            let mut n = 0;
            for _ in 0..1000 {
                memkit_async::task::yield_now().await;
                n += 1;
            }
            n
        });
        assert_eq!(n, 1000);
    });
}
