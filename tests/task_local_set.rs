//! `task::LocalSet` and `task::spawn_local`: `!Send` tasks run on the thread that polls the set,
//! in spawn order, with outputs, aborts, panics and cancellations delivered through their
//! handles, wakes from other threads, every future dropped exactly once (also when the set is
//! dropped), fairness towards the set's own future and timers, and memory charged where the set
//! is polled (that they cannot leave their thread: `local_set_ui`).

mod common;

use common::*;
use memkit_async::task::{self, coop, LocalJoinHandle, LocalSet};
use memkit_async::{
    MkArenaTask, MkAsyncBox, MkAsyncChannel, MkBackpressure, MkBudget, MkTaskLocal,
};
use std::cell::{Cell, RefCell};
use std::future::{pending, poll_fn, Future};
use std::rc::Rc;
use std::task::Poll;
use std::time::Duration;

/// Local tasks polled per poll of the set at most (the documented figure).
const POLLS_PER_TICK: usize = 61;

/// Units of the cooperative budget per poll of a task.
const UNITS: usize = 128;

/// A future that is always ready to go on: every poll counts itself, wakes the task and
/// returns `Pending`, until `stop` is set (then it returns its poll count).
fn always_ready(polls: Rc<Cell<usize>>, stop: Rc<Cell<bool>>) -> impl Future<Output = usize> {
    poll_fn(move |cx| {
        if stop.get() {
            return Poll::Ready(polls.get());
        }
        polls.set(polls.get() + 1);
        assert!(polls.get() < 10_000_000, "the set's future was starved");
        cx.waker().wake_by_ref();
        Poll::Pending
    })
}

#[test]
fn rc_and_refcell_live_inside_local_tasks() {
    with_timeout(DEADLINE, || {
        let rt = runtime(2);
        let set = LocalSet::new();
        let shared = Rc::new(RefCell::new(Vec::new()));
        let total = set.block_on(&rt, {
            let shared = shared.clone();
            async move {
                let handles: Vec<_> = (0..4)
                    .map(|i| {
                        let shared = shared.clone();
                        task::spawn_local(async move {
                            task::yield_now().await;
                            shared.borrow_mut().push(i);
                            Rc::strong_count(&shared)
                        })
                    })
                    .collect();
                let mut counts = Vec::new();
                for h in handles {
                    counts.push(h.await.unwrap());
                }
                counts
            }
        });
        // Each task held one clone next to the test's own and the block's.
        assert!(total.iter().all(|&n| (2..=6).contains(&n)), "{total:?}");
        let mut seen = shared.borrow().clone();
        seen.sort();
        assert_eq!(seen, [0, 1, 2, 3]);
        assert_eq!(
            Rc::strong_count(&shared),
            1,
            "every task let go of its clone"
        );
        assert!(set.is_empty());
    });
}

#[test]
fn tasks_are_first_polled_in_spawn_order() {
    with_timeout(DEADLINE, || {
        let rt = runtime(1);
        let set = LocalSet::new();
        let log = Rc::new(RefCell::new(Vec::new()));
        let mut handles = Vec::new();
        for i in 0..5 {
            let log = log.clone();
            handles.push(set.spawn_local(async move { log.borrow_mut().push(i) }));
        }
        assert_eq!(set.len(), 5);
        assert!(
            log.borrow().is_empty(),
            "nothing runs before the set is polled"
        );
        set.block_on(&rt, {
            let log = log.clone();
            async move {
                // Spawned from the set's future: behind the five.
                for i in 5..8 {
                    let log = log.clone();
                    handles.push(task::spawn_local(async move { log.borrow_mut().push(i) }));
                }
                for h in handles {
                    h.await.unwrap();
                }
            }
        });
        assert_eq!(*log.borrow(), (0..8).collect::<Vec<_>>());
    });
}

#[test]
fn local_tasks_spawn_local_tasks_from_their_polls() {
    with_timeout(DEADLINE, || {
        let rt = runtime(1);
        let set = LocalSet::new();
        let depth = Rc::new(Cell::new(0));
        fn nest(level: usize, depth: Rc<Cell<usize>>) -> LocalJoinHandle<usize> {
            task::spawn_local(async move {
                depth.set(depth.get().max(level));
                if level == 5 {
                    return level;
                }
                // Spawned while this task is being polled by the set.
                let child = nest(level + 1, depth.clone());
                child.await.unwrap() + level
            })
        }
        let out = set.block_on(&rt, {
            let depth = depth.clone();
            async move { nest(0, depth).await.unwrap() }
        });
        assert_eq!(out, 1 + 2 + 3 + 4 + 5);
        assert_eq!(depth.get(), 5);
        assert!(set.is_empty());
    });
}

#[test]
fn handles_return_outputs_and_say_when_tasks_finished() {
    with_timeout(DEADLINE, || {
        let rt = runtime(1);
        let set = LocalSet::new();
        let gate = Gate::new();
        let text = set.spawn_local(async { String::from("local") });
        let number = set.spawn_local({
            let wait = gate.wait();
            async move {
                wait.await;
                Rc::new(7u64)
            }
        });
        assert_ne!(text.id(), number.id());
        assert!(!text.is_finished() && !number.is_finished());
        let text = set.block_on(&rt, text).unwrap();
        assert_eq!(text, "local");
        assert!(!number.is_finished(), "still waiting for its gate");
        gate.open();
        set.block_on(&rt, async {
            while !number.is_finished() {
                task::yield_now().await;
            }
        });
        assert_eq!(*set.block_on(&rt, number).unwrap(), 7);
        assert_eq!(format!("{set:?}"), "LocalSet { tasks: 0 }");
    });
}

#[test]
fn an_output_nobody_awaits_is_dropped_exactly_once() {
    with_timeout(DEADLINE, || {
        let rt = runtime(1);
        let set = LocalSet::new();
        let drops = Counter::new();
        // Handle dropped before the task completes: its output goes when it completes.
        let early = set.spawn_local({
            let drops = drops.clone();
            async move { DropCount(drops) }
        });
        drop(early);
        // Handle dropped after the task completed, without awaiting it.
        let late = set.spawn_local({
            let drops = drops.clone();
            async move { DropCount(drops) }
        });
        set.block_on(&rt, async {
            while !late.is_finished() {
                task::yield_now().await;
            }
        });
        assert_eq!(drops.get(), 1, "the early task's output, at its completion");
        drop(late);
        assert_eq!(drops.get(), 2, "the late task's output, with its handle");
        drop(set);
        assert_eq!(drops.get(), 2);
    });
}

#[test]
fn abort_drops_the_future_exactly_once_and_the_handle_reports_cancellation() {
    with_timeout(DEADLINE, || {
        let rt = runtime(1);
        let set = LocalSet::new();
        let drops = Counter::new();
        let polls = Rc::new(Cell::new(0));
        let handle = set.spawn_local({
            let (guard, polls) = (DropCount(drops.clone()), polls.clone());
            async move {
                let _guard = guard;
                polls.set(polls.get() + 1);
                pending::<u32>().await
            }
        });
        // Polled once, parked on `pending`.
        set.block_on(&rt, task::yield_now());
        assert_eq!((polls.get(), drops.get()), (1, 0));
        handle.abort();
        assert_eq!(drops.get(), 0, "dropped by the set, not inside `abort`");
        let err = set.block_on(&rt, handle).unwrap_err();
        assert!(err.is_cancelled() && !err.is_panic(), "{err}");
        assert_eq!((polls.get(), drops.get()), (1, 1), "never polled again");
        assert!(set.is_empty());

        // Aborted before its first poll: never polled at all.
        let handle = set.spawn_local({
            let (guard, polls) = (DropCount(drops.clone()), polls.clone());
            async move {
                let _guard = guard;
                polls.set(polls.get() + 1);
            }
        });
        handle.abort();
        assert!(set.block_on(&rt, handle).unwrap_err().is_cancelled());
        assert_eq!((polls.get(), drops.get()), (1, 2));

        // Aborting a finished task does nothing.
        let handle = set.spawn_local(async { 5 });
        set.block_on(&rt, async {
            while !handle.is_finished() {
                task::yield_now().await;
            }
        });
        handle.abort();
        assert_eq!(set.block_on(&rt, handle).unwrap(), 5);
        drop(set);
        assert_eq!(drops.get(), 2);
    });
}

#[test]
fn a_task_that_aborts_itself_is_dropped_when_its_poll_returns() {
    with_timeout(DEADLINE, || {
        let rt = runtime(1);
        let set = LocalSet::new();
        let drops = Counter::new();
        let slot: Rc<RefCell<Option<LocalJoinHandle<()>>>> = Rc::default();
        let after_abort = Rc::new(Cell::new(false));
        let handle = set.spawn_local({
            let (guard, slot, after_abort) =
                (DropCount(drops.clone()), slot.clone(), after_abort.clone());
            async move {
                let _guard = guard;
                slot.borrow().as_ref().unwrap().abort();
                after_abort.set(true);
                pending::<()>().await
            }
        });
        *slot.borrow_mut() = Some(handle);
        set.block_on(&rt, async {
            while !slot.borrow().as_ref().unwrap().is_finished() {
                task::yield_now().await;
            }
        });
        assert!(after_abort.get(), "the poll that aborted ran to its end");
        assert_eq!(drops.get(), 1);
        let handle = slot.borrow_mut().take().unwrap();
        assert!(set.block_on(&rt, handle).unwrap_err().is_cancelled());
    });
}

#[test]
fn a_panic_is_returned_by_its_handle_and_the_other_tasks_keep_running() {
    with_timeout(DEADLINE, || {
        let rt = runtime(1);
        let set = LocalSet::new();
        let drops = Counter::new();
        let (outs, err) = set.block_on(&rt, {
            let drops = drops.clone();
            async move {
                let before = task::spawn_local(async {
                    task::yield_now().await;
                    1
                });
                let boom = task::spawn_local({
                    let guard = DropCount(drops.clone());
                    async move {
                        let _guard = guard;
                        task::yield_now().await;
                        panic!("local boom");
                    }
                });
                let after = task::spawn_local(async {
                    task::yield_now().await;
                    task::yield_now().await;
                    3
                });
                let err: memkit_async::JoinError = boom.await.unwrap_err();
                (vec![before.await.unwrap(), after.await.unwrap()], err)
            }
        });
        assert_eq!(outs, [1, 3]);
        assert!(err.is_panic());
        assert_eq!(panic_message(&*err.into_panic()), "local boom");
        assert_eq!(drops.get(), 1, "the panicked future was dropped once");
        // The set still runs new tasks.
        assert_eq!(set.block_on(&rt, set.spawn_local(async { 9 })).unwrap(), 9);
    });
}

#[test]
fn a_join_waker_that_panics_costs_only_its_own_wake_up() {
    with_timeout(DEADLINE, || {
        struct Panicky;
        impl std::task::Wake for Panicky {
            fn wake(self: std::sync::Arc<Self>) {
                panic!("join waker boom");
            }
        }
        let rt = runtime(1);
        let set = LocalSet::new();
        let waker = std::task::Waker::from(std::sync::Arc::new(Panicky));
        let mut handle = set.spawn_local(async {
            task::yield_now().await;
            4
        });
        let mut cx = std::task::Context::from_waker(&waker);
        assert!(std::pin::Pin::new(&mut handle).poll(&mut cx).is_pending());
        let other = set.spawn_local(async {
            task::yield_now().await;
            task::yield_now().await;
            5
        });
        assert_eq!(set.block_on(&rt, other).unwrap(), 5);
        assert!(
            handle.is_finished(),
            "completed, its waker's panic contained"
        );
        assert_eq!(set.block_on(&rt, handle).unwrap(), 4);
    });
}

#[test]
fn a_wake_from_a_std_thread_resumes_a_local_task() {
    with_timeout(DEADLINE, || {
        let rt = runtime(1);
        let set = LocalSet::new();
        let gate = Gate::new();
        let resumed = Rc::new(Cell::new(false));
        let handle = set.spawn_local({
            let (wait, resumed) = (gate.wait(), resumed.clone());
            async move {
                wait.await;
                resumed.set(true);
                Rc::new("woken")
            }
        });
        let opener = {
            let gate = gate.clone();
            std::thread::spawn(move || {
                std::thread::sleep(Duration::from_millis(5));
                gate.open();
            })
        };
        let out = set.block_on(&rt, handle).unwrap();
        assert_eq!(*out, "woken");
        assert!(resumed.get());
        opener.join().unwrap();
    });
}

#[test]
fn a_worker_task_sending_on_a_channel_resumes_a_local_receiver() {
    with_timeout(DEADLINE, || {
        let rt = runtime(2);
        let set = LocalSet::new();
        let received = set.block_on(&rt, async {
            let (tx, mut rx) = MkAsyncChannel::bounded(1, MkBackpressure::Wait);
            let log = Rc::new(RefCell::new(Vec::new()));
            let receiver = task::spawn_local({
                let log = log.clone();
                async move {
                    while let Some(i) = rx.recv().await {
                        log.borrow_mut().push(i);
                    }
                }
            });
            // On a worker: every send but the first waits for the local receiver.
            let sender = memkit_async::spawn(async move {
                for i in 0..50u32 {
                    tx.send(i).await.unwrap();
                }
            });
            sender.await.unwrap();
            receiver.await.unwrap();
            Rc::try_unwrap(log).unwrap().into_inner()
        });
        assert_eq!(received, (0..50).collect::<Vec<_>>());
    });
}

#[test]
fn the_set_as_a_future_completes_once_all_its_tasks_are_done() {
    with_timeout(DEADLINE, || {
        let rt = runtime(1);
        let mut set = LocalSet::new();
        rt.block_on(&mut set);
        assert!(set.is_empty(), "an empty set is ready at once");
        let done = Rc::new(Cell::new(0));
        let gate = Gate::new();
        for yields in 0..3 {
            let (done, wait) = (done.clone(), gate.wait());
            set.spawn_local(async move {
                for _ in 0..yields {
                    task::yield_now().await;
                }
                wait.await;
                // Spawned by a task: the set waits for it too.
                task::spawn_local(async move {
                    task::yield_now().await;
                    done.set(done.get() + 1);
                });
            });
        }
        let opener = {
            let gate = gate.clone();
            std::thread::spawn(move || {
                std::thread::sleep(Duration::from_millis(5));
                gate.open();
            })
        };
        rt.block_on(&mut set);
        assert_eq!(done.get(), 3);
        assert!(set.is_empty());
        opener.join().unwrap();
    });
}

#[test]
fn dropping_the_set_drops_each_future_once_and_cancels_their_handles() {
    with_timeout(DEADLINE, || {
        let rt = runtime(1);
        let set = LocalSet::new();
        let drops = Counter::new();
        let order = Rc::new(RefCell::new(Vec::new()));

        /// Logs its index when dropped.
        struct Logged(usize, Rc<RefCell<Vec<usize>>>);
        impl Drop for Logged {
            fn drop(&mut self) {
                self.1.borrow_mut().push(self.0);
            }
        }

        let mut handles: Vec<_> = (0..4)
            .map(|i| {
                let guard = (DropCount(drops.clone()), Logged(i, order.clone()));
                set.spawn_local(async move {
                    let _guard = guard;
                    pending::<()>().await
                })
            })
            .collect();
        // Two of them polled once, two never polled.
        set.block_on(&rt, async {
            for _ in 0..2 {
                task::yield_now().await;
            }
        });
        // A handle awaited elsewhere: its waker must be woken by the drop.
        let (waker, wakes) = counting_waker();
        let mut awaited = handles.remove(0);
        let mut cx = std::task::Context::from_waker(&waker);
        assert!(std::pin::Pin::new(&mut awaited).poll(&mut cx).is_pending());
        assert_eq!(set.len(), 4);
        drop(set);
        assert_eq!(drops.get(), 4);
        assert_eq!(*order.borrow(), [0, 1, 2, 3], "dropped in spawn order");
        assert_eq!(wakes.get(), 1, "the awaiting waker was woken");
        match std::pin::Pin::new(&mut awaited).poll(&mut cx) {
            Poll::Ready(Err(err)) => assert!(err.is_cancelled(), "{err}"),
            other => panic!(
                "expected a cancellation, got {:?}",
                other.map(|r| r.is_ok())
            ),
        }
        for h in handles {
            assert!(h.is_finished());
            assert!(rt.block_on(h).unwrap_err().is_cancelled());
        }
    });
}

#[test]
fn a_future_whose_drop_spawns_local_tasks_is_dropped_with_them() {
    with_timeout(DEADLINE, || {
        let set = LocalSet::new();
        let drops = Counter::new();
        let spawned: Rc<RefCell<Vec<LocalJoinHandle<()>>>> = Rc::default();

        /// Spawns a local task from its `Drop`, `left` levels deep.
        struct SpawnOnDrop {
            left: usize,
            drops: Counter,
            spawned: Rc<RefCell<Vec<LocalJoinHandle<()>>>>,
        }
        impl Drop for SpawnOnDrop {
            fn drop(&mut self) {
                self.drops.inc();
                if self.left == 0 {
                    return;
                }
                let next = SpawnOnDrop {
                    left: self.left - 1,
                    drops: self.drops.clone(),
                    spawned: self.spawned.clone(),
                };
                let handle = task::spawn_local(async move {
                    let _next = next;
                    pending::<()>().await
                });
                self.spawned.borrow_mut().push(handle);
            }
        }

        let first = set.spawn_local({
            let guard = SpawnOnDrop {
                left: 3,
                drops: drops.clone(),
                spawned: spawned.clone(),
            };
            async move {
                let _guard = guard;
                pending::<()>().await
            }
        });
        drop(set);
        assert_eq!(
            drops.get(),
            4,
            "the first future and the three spawned from drops"
        );
        let handles = std::mem::take(&mut *spawned.borrow_mut());
        assert_eq!(handles.len(), 3);
        assert!(first.is_finished());
        for h in handles.iter().chain([&first]) {
            assert!(
                h.is_finished(),
                "every spawned task was dropped and cancelled"
            );
        }
        let rt = runtime(1);
        for h in handles {
            assert!(rt.block_on(h).unwrap_err().is_cancelled());
        }
        assert!(rt.block_on(first).unwrap_err().is_cancelled());
    });
}

#[test]
fn a_panic_in_a_futures_drop_does_not_stop_the_set_from_dropping_the_rest() {
    with_timeout(DEADLINE, || {
        let set = LocalSet::new();
        let drops = Counter::new();

        struct PanicOnDrop;
        impl Drop for PanicOnDrop {
            fn drop(&mut self) {
                panic!("drop boom");
            }
        }

        let handles: Vec<_> = (0..3)
            .map(|i| {
                let guard = DropCount(drops.clone());
                set.spawn_local(async move {
                    let _guard = guard;
                    let _boom = (i == 1).then_some(PanicOnDrop);
                    pending::<()>().await
                })
            })
            .collect();
        drop(set);
        assert_eq!(drops.get(), 3);
        let rt = runtime(1);
        for h in handles {
            assert!(rt.block_on(h).unwrap_err().is_cancelled());
        }
    });
}

#[test]
fn spawn_local_outside_a_set_panics_naming_run_until() {
    let msg = expect_panic(|| task::spawn_local(async {}));
    assert!(
        msg.contains("`spawn_local` called outside a `LocalSet`"),
        "{msg}"
    );
    assert!(msg.contains("LocalSet::run_until"), "{msg}");
    // Also on a runtime, outside the set's polls.
    let rt = runtime(1);
    let msg = expect_panic(|| rt.block_on(async { drop(task::spawn_local(async {})) }));
    assert!(msg.contains("LocalSet::run_until"), "{msg}");
    let set = LocalSet::new();
    set.block_on(&rt, async {});
    let msg = expect_panic(|| task::spawn_local(async {}));
    assert!(
        msg.contains("LocalSet::run_until"),
        "{msg}: not after the set returned"
    );
}

#[test]
fn an_always_ready_task_leaves_the_sets_future_a_poll_every_61_task_polls() {
    with_timeout(DEADLINE, || {
        let rt = runtime(1);
        let set = LocalSet::new();
        let (polls, stop) = (Rc::new(Cell::new(0)), Rc::new(Cell::new(false)));
        let busy = set.spawn_local(always_ready(polls.clone(), stop.clone()));
        set.block_on(&rt, {
            let stop = stop.clone();
            async move {
                // In `block_on` a yield wakes at once: the future is ready at every poll.
                for _ in 0..10 {
                    task::yield_now().await;
                }
                stop.set(true);
            }
        });
        // Ten polls of the set returned `Pending` after 61 polls of the busy task each; the
        // eleventh completed the future before polling any task.
        assert_eq!(polls.get(), 10 * POLLS_PER_TICK);
        assert_eq!(set.block_on(&rt, busy).unwrap(), 10 * POLLS_PER_TICK);
    });
}

#[test]
fn each_poll_of_a_local_task_has_a_cooperative_budget_of_its_own() {
    with_timeout(DEADLINE, || {
        let rt = runtime(1);
        let set = LocalSet::new();
        let (ops, stop) = (Rc::new(Cell::new(0usize)), Rc::new(Cell::new(false)));
        let busy = set.spawn_local({
            let (ops, stop) = (ops.clone(), stop.clone());
            async move {
                while !stop.get() {
                    // Always ready, until the poll's units run out.
                    task::consume_budget().await;
                    ops.set(ops.get() + 1);
                }
            }
        });
        set.block_on(&rt, {
            let stop = stop.clone();
            async move {
                assert!(coop::has_budget_remaining());
                for _ in 0..2 {
                    task::yield_now().await;
                }
                stop.set(true);
            }
        });
        assert_eq!(ops.get(), 2 * POLLS_PER_TICK * UNITS);
        set.block_on(&rt, busy).unwrap();
    });
}

#[test]
#[cfg_attr(miri, ignore = "waits for a 10 ms timer while a task spins")]
fn an_always_ready_task_does_not_keep_a_timer_from_the_sets_future() {
    with_timeout(DEADLINE, || {
        // One worker: it drives the timer while `block_on` runs the set on this thread.
        let rt = runtime(1);
        let set = LocalSet::new();
        let (polls, stop) = (Rc::new(Cell::new(0)), Rc::new(Cell::new(false)));
        let busy = set.spawn_local(always_ready(polls.clone(), stop.clone()));
        set.block_on(&rt, {
            let stop = stop.clone();
            async move {
                memkit_async::time::sleep(Duration::from_millis(10)).await;
                stop.set(true);
            }
        });
        // `always_ready` fails the test if it is polled 10 million times before the timer's
        // future saw its deadline: here it stopped as soon as the timer fired.
        let spun = set.block_on(&rt, busy).unwrap();
        assert!(
            spun >= POLLS_PER_TICK,
            "the busy task ran meanwhile: {spun}"
        );
    });
}

#[test]
#[cfg_attr(miri, ignore = "waits for a 10 ms timer while a task spins")]
fn an_always_ready_task_does_not_keep_timers_from_a_local_task() {
    with_timeout(DEADLINE, || {
        let rt = runtime(1);
        let set = LocalSet::new();
        let (polls, stop) = (Rc::new(Cell::new(0)), Rc::new(Cell::new(false)));
        let busy = set.spawn_local(always_ready(polls.clone(), stop.clone()));
        let timed = set.spawn_local({
            let stop = stop.clone();
            async move {
                memkit_async::time::sleep(Duration::from_millis(10)).await;
                stop.set(true);
            }
        });
        let spun = set.block_on(&rt, async move {
            timed.await.unwrap();
            busy.await.unwrap()
        });
        assert!(spun >= POLLS_PER_TICK, "{spun}");
    });
}

#[test]
fn a_task_polled_by_a_nested_run_of_its_own_set_is_left_to_its_outer_poll() {
    with_timeout(DEADLINE, || {
        let rt = runtime(1);
        let set = Rc::new(LocalSet::new());
        let out = set.block_on(&rt, {
            let set = set.clone();
            async move {
                let outer = task::spawn_local({
                    let set = set.clone();
                    async move {
                        // Runs the set again from inside one of its tasks: this task is busy
                        // and must be left alone, its own wake-ups kept.
                        set.run_until(async {
                            let child = task::spawn_local(async {
                                task::yield_now().await;
                                2
                            });
                            task::yield_now().await;
                            child.await.unwrap()
                        })
                        .await
                            * 10
                    }
                });
                outer.await.unwrap()
            }
        });
        assert_eq!(out, 20);
        assert!(set.is_empty());
    });
}

#[test]
fn local_tasks_allocate_in_the_arena_and_budget_of_whatever_polls_the_set() {
    with_timeout(DEADLINE, || {
        let rt = runtime(1);
        let set = LocalSet::new();
        let budget = MkBudget::new(64 << 10);
        let (len, used) = set.block_on(
            &rt,
            MkArenaTask::new(
                &budget,
                set.run_until(async {
                    task::spawn_local(async {
                        let b = MkAsyncBox::new([7u8; 1000]).await.unwrap();
                        let used = MkBudget::current().unwrap().used();
                        (b.len(), used)
                    })
                    .await
                    .unwrap()
                }),
            ),
        );
        assert_eq!(
            (len, used),
            (1000, 4096),
            "one 4 KiB chunk of the enclosing arena"
        );
        assert_eq!(budget.used(), 0, "the box and the chunk are gone");
    });
}

static REQUEST: MkTaskLocal<u32> = MkTaskLocal::new();

#[test]
fn task_locals_in_scope_around_the_set_are_visible_in_its_tasks() {
    with_timeout(DEADLINE, || {
        let rt = runtime(1);
        let set = LocalSet::new();
        let seen = set.block_on(
            &rt,
            REQUEST.scope(
                7,
                set.run_until(async {
                    task::spawn_local(async {
                        task::yield_now().await;
                        REQUEST.get()
                    })
                    .await
                    .unwrap()
                }),
            ),
        );
        assert_eq!(seen, 7);
    });
}
