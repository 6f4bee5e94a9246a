//! Spawning many tasks and collecting their outputs, from every place a user spawns from.

mod common;

use common::*;
use memkit_async::{spawn, Builder, Handle, JoinError, JoinHandle, Runtime};
use std::collections::HashSet;
use std::time::Duration;

/// 500 under Miri, where 100 000 spawns take hours; the paths exercised are the same.
const N: u64 = if cfg!(miri) { 500 } else { 100_000 };

/// Awaits every handle in order and checks that task `i` returned `i * 2` and ran exactly once.
async fn collect_doubles(handles: Vec<JoinHandle<u64>>) -> u64 {
    let mut sum = 0;
    for (i, handle) in handles.into_iter().enumerate() {
        let out = handle.await.expect("task failed");
        assert_eq!(out, i as u64 * 2, "task {i} returned the wrong value");
        sum += out;
    }
    sum
}

fn doubles(ran: &Counter, n: u64) -> Vec<JoinHandle<u64>> {
    (0..n)
        .map(|i| {
            let ran = ran.clone();
            spawn(async move {
                ran.inc();
                i * 2
            })
        })
        .collect()
}

#[test]
fn spawn_100k_from_outside_the_runtime() {
    with_timeout(DEADLINE, || {
        let rt = runtime(4);
        let ran = Counter::new();
        let handles: Vec<_> = (0..N)
            .map(|i| {
                let ran = ran.clone();
                rt.spawn(async move {
                    ran.inc();
                    i * 2
                })
            })
            .collect();
        let sum = rt.block_on(collect_doubles(handles));
        assert_eq!(sum, N * (N - 1));
        assert_eq!(ran.get(), N as usize);
    });
}

#[test]
fn spawn_100k_from_inside_a_task_on_4_and_1_workers() {
    for_each_case(&[4, 1], |workers| {
        with_timeout(DEADLINE, move || {
            let rt = runtime(workers);
            let ran = Counter::new();
            let r = ran.clone();
            let sum = rt
                .block_on(rt.spawn(async move { collect_doubles(doubles(&r, N)).await }))
                .unwrap();
            assert_eq!(sum, N * (N - 1));
            assert_eq!(ran.get(), N as usize);
        });
    });
}

#[test]
fn spawn_100k_from_block_on() {
    with_timeout(DEADLINE, || {
        let rt = runtime(2);
        let ran = Counter::new();
        let sum = rt.block_on(async { collect_doubles(doubles(&ran, N)).await });
        assert_eq!(sum, N * (N - 1));
        assert_eq!(ran.get(), N as usize);
    });
}

#[test]
#[cfg_attr(miri, ignore = "100k spawns: hours under Miri")]
fn spawn_from_many_tasks_at_once_with_yields() {
    // 10 parents on 4 workers each spawn 10k children that yield once before returning, so
    // the children are re-queued, stolen and injected while other workers spawn.
    with_timeout(DEADLINE, || {
        let rt = runtime(4);
        let ran = Counter::new();
        let parents: Vec<_> = (0..10u64)
            .map(|p| {
                let ran = ran.clone();
                rt.spawn(async move {
                    let children: Vec<_> = (0..10_000u64)
                        .map(|c| {
                            let ran = ran.clone();
                            spawn(async move {
                                memkit_async::task::yield_now().await;
                                ran.inc();
                                p * 10_000 + c
                            })
                        })
                        .collect();
                    let mut sum = 0;
                    for (c, child) in children.into_iter().enumerate() {
                        let v = child.await.unwrap();
                        assert_eq!(v, p * 10_000 + c as u64);
                        sum += v;
                    }
                    sum
                })
            })
            .collect();
        let total: u64 = rt.block_on(async {
            let mut total = 0;
            for p in parents {
                total += p.await.unwrap();
            }
            total
        });
        assert_eq!(total, (0..100_000u64).sum::<u64>());
        assert_eq!(ran.get(), 100_000);
    });
}

fn tree(depth: u32) -> JoinHandle<u64> {
    spawn(async move {
        if depth == 0 {
            return 1;
        }
        let left = tree(depth - 1);
        let right = tree(depth - 1);
        left.await.unwrap() + right.await.unwrap() + 1
    })
}

#[test]
fn recursive_spawn_tree_counts_every_node() {
    with_timeout(DEADLINE, || {
        let rt = runtime(3);
        let nodes = rt.block_on(async { tree(12).await.unwrap() });
        assert_eq!(nodes, (1 << 13) - 1);
    });
}

#[test]
fn join_handle_awaited_by_another_task_and_another_thread() {
    with_timeout(DEADLINE, || {
        let rt = runtime(2);
        let (tx, rx) = futures::channel::oneshot::channel::<u32>();
        let first = rt.spawn(async move { rx.await.unwrap() * 2 });
        // A different task than the spawner awaits the handle.
        let second = rt.spawn(async move { first.await.unwrap() + 1 });
        // A plain thread, with another executor, awaits that one.
        let waiter = std::thread::spawn(move || futures::executor::block_on(second));
        tx.send(20).unwrap();
        assert_eq!(waiter.join().unwrap().unwrap(), 41);
    });
}

#[test]
fn handles_of_many_tasks_awaited_out_of_order() {
    with_timeout(DEADLINE, || {
        let rt = runtime(2);
        let mut handles: Vec<(u64, JoinHandle<u64>)> = (0..1000u64)
            .map(|i| (i, rt.spawn(async move { i + 7 })))
            .collect();
        handles.reverse();
        let outs = rt.block_on(async {
            let mut outs = Vec::new();
            for (i, h) in handles {
                outs.push((i, h.await.unwrap()));
            }
            outs
        });
        assert_eq!(outs.len(), 1000);
        for (i, out) in outs {
            assert_eq!(out, i + 7);
        }
    });
}

#[test]
fn task_ids_are_unique_and_match_inside_the_task() {
    with_timeout(DEADLINE, || {
        let rt = runtime(2);
        let handles: Vec<_> = (0..1000)
            .map(|_| rt.spawn(async { memkit_async::task::id() }))
            .collect();
        let ids: Vec<_> = handles.iter().map(|h| h.id()).collect();
        let inside = rt.block_on(async {
            let mut v = Vec::new();
            for h in handles {
                v.push(h.await.unwrap());
            }
            v
        });
        assert_eq!(
            ids, inside,
            "task::id() inside differs from JoinHandle::id()"
        );
        let unique: HashSet<_> = ids.iter().collect();
        assert_eq!(unique.len(), 1000, "task ids repeat");
    });
}

#[test]
fn outputs_of_every_shape() {
    with_timeout(DEADLINE, || {
        let rt = runtime(2);
        // Zero-sized, large, heap-owning, `!Sync` and `Result` outputs.
        rt.block_on(rt.spawn(async {})).unwrap();
        let big = rt.block_on(rt.spawn(async { [7u8; 64 * 1024] })).unwrap();
        assert!(big.iter().all(|&b| b == 7));
        let s = rt.block_on(rt.spawn(async { "x".repeat(1000) })).unwrap();
        assert_eq!(s.len(), 1000);
        let cell = rt
            .block_on(rt.spawn(async { std::cell::Cell::new(5u32) }))
            .unwrap();
        assert_eq!(cell.get(), 5);
        let res: Result<u8, String> = rt
            .block_on(rt.spawn(async { Err("no".to_string()) }))
            .unwrap();
        assert_eq!(res, Err("no".to_string()));
    });
}

#[test]
fn a_future_holding_a_large_state_across_awaits() {
    with_timeout(DEADLINE, || {
        let rt = runtime(2);
        let out = rt
            .block_on(rt.spawn(async {
                let mut buf = [0u64; 16 * 1024];
                for (i, slot) in buf.iter_mut().enumerate() {
                    *slot = i as u64;
                    if i % 1024 == 0 {
                        memkit_async::task::yield_now().await;
                    }
                }
                buf.iter().sum::<u64>()
            }))
            .unwrap();
        assert_eq!(out, (0..16 * 1024u64).sum::<u64>());
    });
}

#[test]
fn num_alive_tasks_is_zero_once_handles_resolved() {
    // The `RuntimeMetrics` docs assert `num_alive_tasks() == 0` right after `block_on` of a
    // spawned task's handle; that must hold every time, not just usually.
    with_timeout(DEADLINE, || {
        let rt = runtime(2);
        let m = rt.metrics();
        for round in 0..2000 {
            rt.block_on(rt.spawn(async {})).unwrap();
            assert_eq!(
                m.num_alive_tasks(),
                0,
                "round {round}: a task whose JoinHandle already resolved still counts as alive"
            );
        }
    });
}

#[test]
fn num_alive_tasks_counts_pending_tasks() {
    with_timeout(DEADLINE, || {
        let rt = runtime(2);
        let m = rt.metrics();
        // Tasks released at once complete on the workers while their handles are joined in
        // order: a handle polled for the first time may meet its task mid-completion, and
        // must not resolve while the task still counts as alive.
        for round in 0..200 {
            let (tx, rx) = futures::channel::oneshot::channel::<()>();
            let rx = futures::future::FutureExt::shared(rx);
            let handles: Vec<_> = (0..100)
                .map(|_| {
                    let rx = rx.clone();
                    rt.spawn(async move { rx.await.unwrap() })
                })
                .collect();
            assert_eq!(m.num_alive_tasks(), 100);
            tx.send(()).unwrap();
            rt.block_on(async {
                for h in handles {
                    h.await.unwrap();
                }
            });
            assert_eq!(
                m.num_alive_tasks(),
                0,
                "round {round}: every handle joined, yet a task counts as alive"
            );
        }
    });
}

#[test]
fn spawn_through_handles_from_plain_threads() {
    with_timeout(DEADLINE, || {
        let rt = runtime(2);
        let threads: Vec<_> = (0..4u64)
            .map(|t| {
                let handle: Handle = rt.handle().clone();
                std::thread::spawn(move || {
                    let hs: Vec<_> = (0..1000u64)
                        .map(|i| handle.spawn(async move { t * 1000 + i }))
                        .collect();
                    handle.block_on(async {
                        let mut sum = 0;
                        for h in hs {
                            sum += h.await.unwrap();
                        }
                        sum
                    })
                })
            })
            .collect();
        let total: u64 = threads.into_iter().map(|t| t.join().unwrap()).sum();
        assert_eq!(total, (0..4000u64).sum::<u64>());
    });
}

#[test]
fn runtime_new_uses_one_worker_per_cpu() {
    with_timeout(DEADLINE, || {
        let rt = Runtime::new().unwrap();
        let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
        assert_eq!(rt.metrics().num_workers(), cpus);
        assert_eq!(rt.block_on(rt.spawn(async { 3 })).unwrap(), 3);
    });
}

#[test]
fn builder_thread_names_apply_to_workers() {
    with_timeout(DEADLINE, || {
        let rt = Builder::new()
            .worker_threads(2)
            .thread_name("spawn-test-worker")
            .thread_stack_size(1 << 20)
            .build()
            .unwrap();
        let name = rt
            .block_on(rt.spawn(async { std::thread::current().name().map(str::to_string) }))
            .unwrap();
        assert_eq!(name.as_deref(), Some("spawn-test-worker"));

        let next = Counter::new();
        let rt = Builder::new()
            .worker_threads(3)
            .thread_name_fn(move || format!("w-{}", next.inc()))
            .build()
            .unwrap();
        let names: HashSet<String> = rt.block_on(async {
            let mut names = HashSet::new();
            let deadline = std::time::Instant::now() + DEADLINE;
            // Ask until every worker has answered; tasks land on workers unpredictably.
            while names.len() < 3 {
                assert!(
                    std::time::Instant::now() < deadline,
                    "not every worker ran a task: {names:?}"
                );
                let hs: Vec<_> = (0..64)
                    .map(|_| {
                        spawn(async {
                            std::thread::sleep(Duration::from_micros(200));
                            std::thread::current().name().unwrap().to_string()
                        })
                    })
                    .collect();
                for h in hs {
                    names.insert(h.await.unwrap());
                }
            }
            names
        });
        let expected: HashSet<String> = (1..=3).map(|i| format!("w-{i}")).collect();
        assert_eq!(names, expected);
    });
}

#[test]
fn public_types_are_send_sync_and_static() {
    fn send_sync<T: Send + Sync + 'static>() {}
    fn unpin<T: Unpin>() {}
    send_sync::<Runtime>();
    send_sync::<Handle>();
    send_sync::<JoinHandle<u8>>();
    send_sync::<JoinError>();
    send_sync::<memkit_async::runtime::RuntimeMetrics>();
    unpin::<JoinHandle<u8>>();
    fn error<E: std::error::Error + Send + Sync + 'static>() {}
    error::<JoinError>();
    error::<memkit_async::runtime::TryCurrentError>();
}

#[test]
fn poll_counts_add_up_exactly() {
    with_timeout(DEADLINE, || {
        let rt = runtime(2);
        let m = rt.metrics();
        let polls = || (0..2).map(|i| m.worker_poll_count(i)).sum::<u64>();
        assert_eq!(polls(), 0);
        // Each task completes in its first poll.
        let hs: Vec<_> = (0..1000u32).map(|i| rt.spawn(async move { i })).collect();
        rt.block_on(async {
            for h in hs {
                h.await.unwrap();
            }
        });
        assert_eq!(polls(), 1000);
        // Each task yields once: two polls each.
        let hs: Vec<_> = (0..1000)
            .map(|_| rt.spawn(memkit_async::task::yield_now()))
            .collect();
        rt.block_on(async {
            for h in hs {
                h.await.unwrap();
            }
        });
        assert_eq!(polls(), 3000);
        wait_all_parked(&rt);
        assert_eq!(m.injection_queue_depth(), 0);
        assert_eq!(m.worker_local_queue_depth(0), 0);
        assert_eq!(m.worker_local_queue_depth(1), 0);
    });
}

#[test]
#[cfg_attr(miri, ignore = "20k tasks spinning on the clock: hours under Miri")]
fn work_spawned_on_one_worker_is_stolen_by_the_others() {
    with_timeout(DEADLINE, || {
        let rt = runtime(4);
        let m = rt.metrics();
        // 20k tasks of ~10 µs each spawned from one worker: ~200 ms of work that only
        // stealing can spread.
        let workers_used = rt
            .block_on(rt.spawn(async {
                let hs: Vec<_> = (0..20_000)
                    .map(|_| {
                        spawn(async {
                            let t = std::time::Instant::now();
                            while t.elapsed() < Duration::from_micros(10) {
                                std::hint::spin_loop();
                            }
                            memkit_async::runtime::worker_index().unwrap()
                        })
                    })
                    .collect();
                let mut used = HashSet::new();
                for h in hs {
                    used.insert(h.await.unwrap());
                }
                used
            }))
            .unwrap();
        let steals: u64 = (0..4).map(|i| m.worker_steal_count(i)).sum();
        assert!(
            workers_used.len() >= 2,
            "only workers {workers_used:?} ran the tasks"
        );
        assert!(
            steals > 0,
            "tasks ran on {workers_used:?} but no steal was counted"
        );
    });
}

#[test]
fn a_worker_kept_busy_by_a_yielding_task_still_takes_a_blocked_workers_backlog() {
    use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering::SeqCst};
    use std::sync::Arc;
    with_timeout(DEADLINE, || {
        let rt = runtime(2);
        // The worker the yielding task ran on last (`usize::MAX` until it first runs).
        let yielder_at = Arc::new(AtomicUsize::new(usize::MAX));
        let stop = Arc::new(AtomicBool::new(false));
        let yielder = {
            let (at, stop) = (yielder_at.clone(), stop.clone());
            rt.spawn(async move {
                while !stop.load(SeqCst) {
                    at.store(memkit_async::runtime::worker_index().unwrap(), SeqCst);
                    memkit_async::task::yield_now().await;
                }
            })
        };
        wait_until("the yielding task runs", || {
            yielder_at.load(SeqCst) != usize::MAX
        });
        // A task on the other worker queues a sibling behind itself, then blocks that worker
        // in a long poll until the sibling ran: only the yielding task's worker can run it.
        let sibling_ran = loop {
            let at = yielder_at.clone();
            let blocked = rt.block_on(rt.spawn(async move {
                if memkit_async::runtime::worker_index() == Some(at.load(SeqCst)) {
                    return None; // on the yielding task's worker: try again
                }
                let ran = Arc::new(AtomicBool::new(false));
                let flag = ran.clone();
                drop(spawn(async move { flag.store(true, SeqCst) }));
                let give_up = std::time::Instant::now() + Duration::from_secs(5);
                while !ran.load(SeqCst) && std::time::Instant::now() < give_up {
                    std::thread::sleep(Duration::from_millis(1));
                }
                Some(ran.load(SeqCst))
            }));
            if let Some(ran) = blocked.unwrap() {
                break ran;
            }
        };
        stop.store(true, SeqCst);
        rt.block_on(yielder).unwrap();
        assert!(
            sibling_ran,
            "the sibling waited 5 s behind a blocked worker while the other only ran a yielding task"
        );
    });
}
