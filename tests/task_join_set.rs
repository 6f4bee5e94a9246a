//! `task::JoinSet`: outputs in completion order, lengths at each step, aborts (explicit, on
//! drop and at shutdown) with every future and output dropped, panics surfaced, budgets, and a
//! set driven from outside the runtime.

mod common;

use common::*;
use memkit_async::task::{self, JoinSet};
use memkit_async::{MkBudget, Runtime};
use std::future::{pending, Future};
use std::task::Poll;

/// `n` tasks, task `i` waits for `gates[i]` and returns `i`; the tasks' futures hold `drops`.
fn spawn_gated(set: &mut JoinSet<usize>, rt: &Runtime, n: usize, drops: &Counter) -> Vec<Gate> {
    (0..n)
        .map(|i| {
            let gate = Gate::new();
            let (wait, guard) = (gate.wait(), DropCount(drops.clone()));
            set.spawn_on(
                async move {
                    let _guard = guard;
                    wait.await;
                    i
                },
                rt.handle(),
            );
            gate
        })
        .collect()
}

fn poll_now<F: Future>(future: F) -> Poll<F::Output> {
    let mut future = std::pin::pin!(future);
    poll_once(&mut future)
}

#[test]
fn join_next_on_an_empty_set_is_none_at_once() {
    let mut set: JoinSet<u8> = JoinSet::new();
    assert!(set.is_empty());
    assert!(matches!(poll_now(set.join_next()), Poll::Ready(None)));
    assert!(matches!(
        poll_now(set.join_next_with_id()),
        Poll::Ready(None)
    ));
    assert!(set.try_join_next().is_none());
    let mut set: JoinSet<u8> = JoinSet::default();
    assert_eq!(format!("{set:?}"), "JoinSet { len: 0 }");
    assert!(matches!(poll_now(set.join_next()), Poll::Ready(None)));
}

#[test]
fn outputs_come_in_completion_order_with_their_ids_and_len_after_each_step() {
    with_timeout(DEADLINE, || {
        let rt = runtime(2);
        let drops = Counter::new();
        let mut set = JoinSet::new();
        let gates = spawn_gated(&mut set, &rt, 5, &drops);
        assert_eq!(set.len(), 5);
        assert!(set.try_join_next().is_none(), "no task has completed");
        assert_eq!(set.len(), 5);
        for (step, i) in [3usize, 1, 4, 0, 2].into_iter().enumerate() {
            gates[i].open();
            let (_id, out) = rt.block_on(set.join_next_with_id()).unwrap().unwrap();
            assert_eq!(out, i, "step {step}");
            assert_eq!(set.len(), 4 - step);
            assert_eq!(
                drops.get(),
                step + 1,
                "the future of each joined task is dropped"
            );
        }
        assert!(set.is_empty());
        assert!(rt.block_on(set.join_next()).is_none());
    });
}

#[test]
fn ids_match_the_spawned_tasks() {
    with_timeout(DEADLINE, || {
        let rt = runtime(2);
        let mut set = JoinSet::new();
        let ids: Vec<task::Id> = (0..4u32)
            .map(|i| {
                set.spawn_on(async move { (task::id(), i) }, rt.handle())
                    .id()
            })
            .collect();
        let mut seen = Vec::new();
        while let Some(res) = rt.block_on(set.join_next_with_id()) {
            let (id, (inner_id, i)) = res.unwrap();
            assert_eq!(id, inner_id);
            assert_eq!(id, ids[i as usize]);
            seen.push(i);
        }
        seen.sort();
        assert_eq!(seen, [0, 1, 2, 3]);
    });
}

#[test]
fn spawning_and_joining_alternately_keeps_the_count() {
    with_timeout(DEADLINE, || {
        let rt = runtime(2);
        rt.block_on(async {
            let mut set = JoinSet::new();
            set.spawn(async { 0u32 });
            set.spawn(async { 1u32 });
            assert_eq!(set.len(), 2);
            let mut sum = 0;
            for i in 2..18u32 {
                sum += set.join_next().await.unwrap().unwrap();
                assert_eq!(set.len(), 1);
                set.spawn(async move { i });
                assert_eq!(set.len(), 2);
            }
            while let Some(res) = set.join_next().await {
                sum += res.unwrap();
            }
            assert_eq!(sum, (0..18).sum::<u32>());
            assert_eq!(set.len(), 0);
        });
    });
}

#[test]
fn abort_all_cancels_the_unfinished_tasks_and_keeps_the_finished_outputs() {
    with_timeout(DEADLINE, || {
        let rt = runtime(2);
        let done = Counter::new();
        let drops = Counter::new();
        let mut set = JoinSet::new();
        for i in 0..5 {
            let guard = DropCount(drops.clone());
            set.spawn_on(
                async move {
                    let _guard = guard;
                    pending::<()>().await;
                    i
                },
                rt.handle(),
            );
        }
        for i in 5..10 {
            let done = done.clone();
            set.spawn_on(
                async move {
                    done.inc();
                    i
                },
                rt.handle(),
            );
        }
        // A task whose future has returned completes with its output, whatever comes after.
        wait_until("the five short tasks ran", || done.get() == 5);
        set.abort_all();
        assert_eq!(set.len(), 10, "aborted tasks stay in the set until joined");
        let (mut outputs, mut cancelled) = (Vec::new(), 0);
        while let Some(res) = rt.block_on(set.join_next()) {
            match res {
                Ok(i) => outputs.push(i),
                Err(err) => {
                    assert!(err.is_cancelled(), "{err}");
                    assert!(!err.is_panic());
                    cancelled += 1;
                }
            }
        }
        outputs.sort();
        assert_eq!(outputs, [5, 6, 7, 8, 9]);
        assert_eq!(cancelled, 5);
        assert_eq!(drops.get(), 5);
        assert!(set.is_empty());
    });
}

#[test]
fn abort_handles_cancel_single_tasks() {
    with_timeout(DEADLINE, || {
        let rt = runtime(2);
        let drops = Counter::new();
        let mut set = JoinSet::new();
        let gates: Vec<Gate> = (0..8).map(|_| Gate::new()).collect();
        let mut aborts = Vec::new();
        for (i, gate) in gates.iter().enumerate() {
            let (wait, guard) = (gate.wait(), DropCount(drops.clone()));
            aborts.push(set.spawn_on(
                async move {
                    let _guard = guard;
                    wait.await;
                    i
                },
                rt.handle(),
            ));
        }
        // Abort the odd tasks; open the even ones' gates.
        for (i, abort) in aborts.iter().enumerate() {
            if i % 2 == 1 {
                abort.abort();
            } else {
                gates[i].open();
            }
        }
        let (mut outputs, mut cancelled) = (Vec::new(), Vec::new());
        while let Some(res) = rt.block_on(set.join_next_with_id()) {
            match res {
                Ok((_, i)) => outputs.push(i),
                Err(err) => {
                    assert!(err.is_cancelled(), "{err}");
                    cancelled.push(err.id());
                }
            }
        }
        outputs.sort();
        assert_eq!(outputs, [0, 2, 4, 6]);
        let mut odd: Vec<_> = aborts.iter().skip(1).step_by(2).map(|a| a.id()).collect();
        odd.sort_by_key(|id| id.to_string());
        cancelled.sort_by_key(|id| id.to_string());
        assert_eq!(cancelled, odd);
        assert_eq!(drops.get(), 8);
        // The handles outlive the set's entries and the tasks: aborting now does nothing.
        assert!(aborts.iter().all(|a| a.is_finished()));
        aborts.iter().for_each(|a| a.abort());
        let clone = aborts[0].clone();
        drop(aborts);
        assert!(clone.is_finished());
    });
}

#[test]
fn dropping_the_set_aborts_its_tasks_and_drops_their_futures_and_outputs() {
    with_timeout(DEADLINE, || {
        let rt = runtime(2);
        let drops = Counter::new();
        let finished = Counter::new();
        let mut set = JoinSet::new();
        for _ in 0..8 {
            let guard = DropCount(drops.clone());
            set.spawn_on(
                async move {
                    let _guard = guard;
                    pending::<()>().await;
                    None
                },
                rt.handle(),
            );
        }
        // Two tasks complete with an output that counts its drop, never joined.
        for _ in 0..2 {
            let (out, finished) = (DropCount(drops.clone()), finished.clone());
            set.spawn_on(
                async move {
                    finished.inc();
                    Some(out)
                },
                rt.handle(),
            );
        }
        wait_until("the two short tasks ran", || finished.get() == 2);
        assert_eq!(drops.get(), 0);
        drop(set);
        wait_until("every future and output is dropped", || drops.get() == 10);
        // The runtime is idle again: nothing of the set is left running.
        drop(rt);
        assert_eq!(drops.get(), 10);
    });
}

#[test]
fn shutdown_aborts_and_waits_until_every_task_stopped() {
    with_timeout(DEADLINE, || {
        let rt = runtime(2);
        let drops = Counter::new();
        let mut set = JoinSet::new();
        let _gates = spawn_gated(&mut set, &rt, 6, &drops);
        assert!(set.try_join_next().is_none());
        rt.block_on(set.shutdown());
        assert!(set.is_empty());
        assert_eq!(
            drops.get(),
            6,
            "every future was dropped before shutdown returned"
        );
        assert!(rt.block_on(set.join_next()).is_none());
    });
}

#[test]
fn detach_all_lets_the_tasks_run_on() {
    with_timeout(DEADLINE, || {
        let rt = runtime(2);
        let drops = Counter::new();
        let mut set = JoinSet::new();
        let gates = spawn_gated(&mut set, &rt, 3, &drops);
        set.detach_all();
        assert_eq!(set.len(), 0);
        assert!(matches!(poll_now(set.join_next()), Poll::Ready(None)));
        assert_eq!(drops.get(), 0, "detached tasks are not aborted");
        gates.iter().for_each(Gate::open);
        wait_until("the detached tasks completed", || drops.get() == 3);
        // The set is still usable.
        set.spawn_on(async { 7 }, rt.handle());
        assert_eq!(rt.block_on(set.join_next()).unwrap().unwrap(), 7);
    });
}

#[test]
fn join_all_returns_outputs_in_completion_order() {
    with_timeout(DEADLINE, || {
        // One worker: a task that opens the next gate completes before the next task runs.
        let rt = runtime(1);
        let order = [2usize, 0, 3, 1];
        let gates: Vec<Gate> = (0..4).map(|_| Gate::new()).collect();
        let mut set = JoinSet::new();
        for i in 0..4 {
            let wait = gates[i].wait();
            let next = order
                .iter()
                .position(|&j| j == i)
                .and_then(|p| order.get(p + 1))
                .map(|&j| gates[j].clone());
            set.spawn_on(
                async move {
                    wait.await;
                    if let Some(next) = next {
                        next.open();
                    }
                    i
                },
                rt.handle(),
            );
        }
        // The set polls each task once before any gate opens: a task that completed before
        // the set first saw it would be taken in spawn order, as in tokio.
        assert!(set.try_join_next().is_none(), "no gate is open yet");
        gates[order[0]].open();
        assert_eq!(rt.block_on(set.join_all()), order);
    });
}

#[test]
fn join_all_propagates_a_panic_and_aborts_the_rest() {
    with_timeout(DEADLINE, || {
        let rt = runtime(2);
        let drops = Counter::new();
        let mut set: JoinSet<()> = JoinSet::new();
        let guard = DropCount(drops.clone());
        set.spawn_on(
            async move {
                let _guard = guard;
                pending::<()>().await;
            },
            rt.handle(),
        );
        set.spawn_on(async { panic!("task failed") }, rt.handle());
        let err = rt.block_on(rt.spawn(set.join_all())).unwrap_err();
        assert!(err.is_panic());
        assert_eq!(panic_message(&*err.into_panic()), "task failed");
        wait_until("the pending task was aborted", || drops.get() == 1);
    });
}

#[test]
fn join_all_panics_on_a_cancelled_task() {
    with_timeout(DEADLINE, || {
        let rt = runtime(2);
        let mut set: JoinSet<()> = JoinSet::new();
        set.spawn_on(pending(), rt.handle());
        set.abort_all();
        let err = rt.block_on(rt.spawn(set.join_all())).unwrap_err();
        let msg = panic_message(&*err.into_panic());
        assert!(
            msg.contains("JoinSet::join_all") && msg.contains("cancelled"),
            "{msg}"
        );
    });
}

#[test]
fn a_panicking_task_is_joined_as_a_panic() {
    with_timeout(DEADLINE, || {
        let rt = runtime(2);
        rt.block_on(async {
            let mut set = JoinSet::new();
            set.spawn(async { panic!("boom") });
            let err = set.join_next().await.unwrap().unwrap_err();
            assert!(err.is_panic());
            assert_eq!(panic_message(&*err.into_panic()), "boom");
            assert!(set.is_empty());
            assert!(set.join_next().await.is_none());
        });
    });
}

#[test]
fn a_set_used_from_outside_the_runtime_with_spawn_on() {
    with_timeout(DEADLINE, || {
        let rt = runtime(2);
        let mut set = JoinSet::new();
        for i in 0..3u64 {
            set.spawn_on(async move { i * 10 }, rt.handle());
        }
        set.spawn_blocking_on(|| 30, rt.handle());
        let mut outputs = Vec::new();
        wait_until("every task completed", || {
            while let Some(res) = set.try_join_next() {
                outputs.push(res.unwrap());
            }
            outputs.len() == 4
        });
        outputs.sort();
        assert_eq!(outputs, [0, 10, 20, 30]);
        assert!(set.try_join_next().is_none());
    });
}

#[test]
fn tasks_of_a_runtime_that_is_gone_are_joined_as_cancelled() {
    with_timeout(DEADLINE, || {
        let drops = Counter::new();
        let mut set = JoinSet::new();
        {
            let rt = runtime(1);
            let guard = DropCount(drops.clone());
            set.spawn_on(
                async move {
                    let _guard = guard;
                    pending::<()>().await;
                },
                rt.handle(),
            );
        }
        assert_eq!(drops.get(), 1);
        let err = set.try_join_next().unwrap().unwrap_err();
        assert!(err.is_cancelled());
        assert!(set.is_empty());
    });
}

#[test]
fn spawn_blocking_outputs_are_joined() {
    with_timeout(DEADLINE, || {
        let rt = runtime(2);
        let mut outputs = rt.block_on(async {
            let mut set = JoinSet::new();
            for i in 0..4u32 {
                set.spawn_blocking(move || i + 100);
            }
            assert_eq!(set.len(), 4);
            set.join_all().await
        });
        outputs.sort();
        assert_eq!(outputs, [100, 101, 102, 103]);
    });
}

#[test]
fn spawn_with_budget_gives_each_task_its_budget() {
    with_timeout(DEADLINE, || {
        let rt = runtime_with_limit(2, 1 << 20);
        let shared = MkBudget::new(12_345);
        let mut limits = rt.block_on(async {
            let mut set = JoinSet::new();
            set.spawn_with_budget(64 << 10, async {
                let b = MkBudget::current().unwrap();
                (b.limit(), b.parent().map(MkBudget::limit))
            });
            set.spawn_with_budget(&shared, async {
                let b = MkBudget::current().unwrap();
                (b.limit(), b.parent().map(MkBudget::limit))
            });
            set.spawn_with(task::Builder::new().name("named").budget(4096), async {
                let b = MkBudget::current().unwrap();
                assert_eq!(task::name().as_deref(), Some("named"));
                (b.limit(), b.parent().map(MkBudget::limit))
            })
            .unwrap();
            set.join_all().await
        });
        limits.sort();
        assert_eq!(
            limits,
            [
                (4096, Some(1 << 20)),
                (12_345, None),
                (64 << 10, Some(1 << 20))
            ]
        );
    });
}

#[test]
fn spawn_with_a_reservation_that_can_never_fit_spawns_nothing() {
    with_timeout(DEADLINE, || {
        let rt = runtime_with_limit(1, 1 << 20);
        rt.block_on(async {
            let mut set: JoinSet<()> = JoinSet::new();
            let err = set
                .spawn_with(task::Builder::new().reserve(2 << 20), async {})
                .unwrap_err();
            assert_eq!(
                err,
                memkit_async::MkAllocError::ExceedsLimit {
                    requested: 2 << 20,
                    limit: 1 << 20
                }
            );
            assert!(set.is_empty());
        });
    });
}

#[test]
fn collect_and_extend_spawn_each_future() {
    with_timeout(DEADLINE, || {
        let rt = runtime(2);
        let mut outputs = rt.block_on(async {
            let mut set: JoinSet<u32> = (0..3).map(|i| async move { i }).collect();
            set.extend((3..5).map(|i| async move { i }));
            assert_eq!(format!("{set:?}"), "JoinSet { len: 5 }");
            set.join_all().await
        });
        outputs.sort();
        assert_eq!(outputs, [0, 1, 2, 3, 4]);
    });
}

#[test]
fn spawn_outside_a_runtime_panics_with_a_clear_message() {
    let mut set = JoinSet::new();
    let msg = expect_panic(|| set.spawn(async {}));
    assert!(msg.contains("runtime"), "{msg}");
    assert!(set.is_empty());
}

#[test]
fn many_tasks_complete_in_the_order_their_gates_open() {
    with_timeout(DEADLINE, || {
        let rt = runtime(2);
        let drops = Counter::new();
        let mut set = JoinSet::new();
        let n = if cfg!(miri) { 20 } else { 500 };
        let gates = spawn_gated(&mut set, &rt, n, &drops);
        assert!(set.try_join_next().is_none());
        // Open from the last to the first, one at a time: each join returns that very task.
        for i in (0..n).rev() {
            gates[i].open();
            assert_eq!(rt.block_on(set.join_next()).unwrap().unwrap(), i);
            assert_eq!(set.len(), i);
        }
        assert_eq!(drops.get(), n);
    });
}

/// Panics when dropped.
struct PanicOnDrop;

impl Drop for PanicOnDrop {
    fn drop(&mut self) {
        panic!("output drop panics");
    }
}

#[test]
fn an_output_whose_drop_panics_neither_escapes_the_set_nor_keeps_the_others_running() {
    with_timeout(DEADLINE, || {
        let rt = runtime(2);
        let drops = Counter::new();
        let finished = Counter::new();
        let mut set = JoinSet::new();
        let done = finished.clone();
        set.spawn_on(
            async move {
                done.inc();
                Some(PanicOnDrop)
            },
            rt.handle(),
        );
        for _ in 0..3 {
            let guard = DropCount(drops.clone());
            set.spawn_on(
                async move {
                    let _guard = guard;
                    pending::<()>().await;
                    None
                },
                rt.handle(),
            );
        }
        wait_until("the first task ran", || finished.get() == 1);
        let dropped = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| drop(set)));
        assert!(
            dropped.is_ok(),
            "the runtime contains a panic in an output's drop"
        );
        wait_until("the pending tasks were aborted", || drops.get() == 3);
    });
}
