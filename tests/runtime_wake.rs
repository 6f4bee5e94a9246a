//! Wake-ups: tasks waking each other across workers, tasks woken from plain threads while the
//! workers sleep, many wakers hitting one task, wakes after completion, and fairness between
//! tasks that keep each other (or themselves) runnable.

mod common;

use common::*;
use futures::channel::{mpsc, oneshot};
use futures::{SinkExt, StreamExt};
use memkit_async::{spawn, task, Builder, JoinHandle, Runtime};
use std::future::{poll_fn, Future};
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering::SeqCst};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Waker};
use std::thread;

/// `pairs` pinger/ponger pairs exchange `rounds` round trips over bounded futures channels.
/// Half the pongers are spawned from outside (so they start on any worker), half from inside
/// their pinger (so they start next to it and must be stolen to spread).
fn ping_pong(rt: &Runtime, pairs: usize, rounds: u64) {
    let pings = Counter::new();
    let pongs = Counter::new();
    let mut pingers: Vec<JoinHandle<u64>> = Vec::new();
    let mut pongers: Vec<JoinHandle<u64>> = Vec::new();
    for pair in 0..pairs {
        let (mut to_ponger, mut from_pinger) = mpsc::channel::<u64>(1);
        let (mut to_pinger, mut from_ponger) = mpsc::channel::<u64>(1);
        let pings = pings.clone();
        let ponger = async move {
            let mut answered = 0;
            while let Some(v) = from_pinger.next().await {
                pings.inc();
                to_pinger.send(v + 1).await.expect("pinger gone");
                answered += 1;
            }
            answered
        };
        let pongs = pongs.clone();
        let inner = pair % 2 == 1;
        let (ponger_tx, ponger_rx) = std::sync::mpsc::channel();
        let mut ponger = Some(ponger);
        if !inner {
            pongers.push(rt.spawn(ponger.take().unwrap()));
        }
        pingers.push(rt.spawn(async move {
            if let Some(ponger) = ponger.take() {
                ponger_tx.send(spawn(ponger)).unwrap();
            }
            for i in 0..rounds {
                to_ponger.send(i * 2).await.expect("ponger gone");
                let back = from_ponger.next().await.expect("ponger closed");
                assert_eq!(back, i * 2 + 1, "pair {pair}: wrong reply");
                pongs.inc();
            }
            rounds
        }));
        if inner {
            pongers.push(
                ponger_rx
                    .recv_timeout(DEADLINE)
                    .expect("the pinger never spawned its ponger"),
            );
        }
    }
    let (pinged, ponged) = rt.block_on(async {
        let mut pinged = 0;
        for h in pingers {
            pinged += h.await.unwrap();
        }
        let mut ponged = 0;
        for h in pongers {
            ponged += h.await.unwrap();
        }
        (pinged, ponged)
    });
    let total = pairs as u64 * rounds;
    assert_eq!(pinged, total);
    assert_eq!(ponged, total);
    assert_eq!(pings.get() as u64, total);
    assert_eq!(pongs.get() as u64, total);
}

#[test]
fn ping_pong_100_pairs_1000_rounds_on_2_and_4_workers() {
    for_each_case(&[2, 4], |workers| {
        with_timeout(DEADLINE, move || ping_pong(&runtime(workers), 100, 1000));
    });
}

#[test]
fn ping_pong_on_1_worker() {
    with_timeout(DEADLINE, || ping_pong(&runtime(1), 20, 1000));
}

#[test]
fn ping_pong_over_tokio_channels() {
    // tokio's sync primitives are executor-agnostic; they must work inside memkit tasks.
    with_timeout(DEADLINE, || {
        let rt = runtime(2);
        let handles: Vec<_> = (0..20)
            .map(|_| {
                let (to_ponger, mut from_pinger) = tokio::sync::mpsc::channel::<u32>(1);
                let (to_pinger, mut from_ponger) = tokio::sync::mpsc::channel::<u32>(1);
                let ponger = rt.spawn(async move {
                    let mut n = 0u32;
                    while let Some(v) = from_pinger.recv().await {
                        to_pinger.send(v + 1).await.unwrap();
                        n += 1;
                    }
                    n
                });
                let pinger = rt.spawn(async move {
                    for i in 0..1000u32 {
                        to_ponger.send(i).await.unwrap();
                        assert_eq!(from_ponger.recv().await, Some(i + 1));
                    }
                    1000u32
                });
                (pinger, ponger)
            })
            .collect();
        rt.block_on(async {
            for (pinger, ponger) in handles {
                assert_eq!(pinger.await.unwrap(), 1000);
                assert_eq!(ponger.await.unwrap(), 1000);
            }
        });
    });
}

#[test]
fn oneshot_relay_through_10k_tasks() {
    // Each task waits for its predecessor's oneshot, adds one and fires its own: 10k
    // sequential cross-task wake-ups, the first one from outside the runtime.
    with_timeout(DEADLINE, || {
        let rt = runtime(4);
        let (first_tx, mut prev_rx) = oneshot::channel::<u64>();
        let mut handles = Vec::new();
        for _ in 0..10_000 {
            let (tx, rx) = oneshot::channel::<u64>();
            let input = std::mem::replace(&mut prev_rx, rx);
            handles.push(rt.spawn(async move {
                let v = input.await.expect("predecessor dropped its sender");
                tx.send(v + 1).unwrap();
            }));
        }
        first_tx.send(0).unwrap();
        let last = rt.block_on(prev_rx).unwrap();
        assert_eq!(last, 10_000);
        rt.block_on(async {
            for h in handles {
                h.await.unwrap();
            }
        });
    });
}

#[test]
fn ring_of_tasks_passes_a_token_around() {
    // 64 tasks in a ring on 4 workers pass one token 100 times around, then a stop token.
    with_timeout(DEADLINE, || {
        let rt = runtime(4);
        const N: usize = 64;
        const LAPS: u64 = 100;
        let (txs, rxs): (Vec<_>, Vec<_>) = (0..N).map(|_| mpsc::unbounded::<u64>()).unzip();
        let mut handles = Vec::new();
        for (i, mut rx) in rxs.into_iter().enumerate() {
            let next = txs[(i + 1) % N].clone();
            handles.push(rt.spawn(async move {
                let mut seen = 0u64;
                loop {
                    let hops = rx.next().await.expect("ring broken");
                    if hops == 0 {
                        let _ = next.unbounded_send(0);
                        return seen;
                    }
                    seen += 1;
                    if hops == N as u64 * LAPS {
                        let _ = next.unbounded_send(0);
                        return seen;
                    }
                    next.unbounded_send(hops + 1).unwrap();
                }
            }));
        }
        txs[0].unbounded_send(1).unwrap();
        drop(txs);
        let seen: Vec<u64> = rt.block_on(async {
            let mut seen = Vec::new();
            for h in handles {
                seen.push(h.await.unwrap());
            }
            seen
        });
        assert_eq!(seen, vec![LAPS; N]);
    });
}

#[test]
fn task_woken_from_a_plain_thread_while_every_worker_sleeps() {
    with_timeout(DEADLINE, || {
        for workers in [1, 2, 4] {
            let rt = runtime(workers);
            for round in 0..30u64 {
                let probe = Probe::new();
                let (tx, rx) = oneshot::channel::<u64>();
                let h = rt.spawn(probe.track(rx));
                wait_until("the task returned Pending", || probe.pending_seen.get());
                wait_all_parked(&rt);
                let sender = thread::spawn(move || tx.send(round).unwrap());
                assert_eq!(rt.block_on(h).unwrap(), Ok(round));
                sender.join().unwrap();
                // Polled once to park on the channel, once after the wake: never spuriously.
                assert_eq!(probe.polls.get(), 2, "workers={workers} round={round}");
                assert_eq!(probe.drops.get(), 1);
                probe.assert_sound();
            }
        }
    });
}

#[test]
fn many_tasks_woken_at_once_from_many_threads() {
    with_timeout(DEADLINE, || {
        let rt = runtime(2);
        const N: usize = 2000;
        let probe = Probe::new();
        let mut senders = Vec::new();
        let mut handles = Vec::new();
        for i in 0..N {
            let (tx, rx) = oneshot::channel::<usize>();
            senders.push((i, tx));
            handles.push(rt.spawn(probe.track(rx)));
        }
        wait_until("every task polled once", || probe.polls.get() == N);
        wait_all_parked(&rt);
        let mut chunks: Vec<Vec<_>> = (0..8).map(|_| Vec::new()).collect();
        for (i, s) in senders.into_iter().enumerate() {
            chunks[i % 8].push(s);
        }
        let threads: Vec<_> = chunks
            .into_iter()
            .map(|chunk| {
                thread::spawn(move || {
                    for (i, tx) in chunk {
                        tx.send(i).unwrap();
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        rt.block_on(async {
            for (i, h) in handles.into_iter().enumerate() {
                assert_eq!(h.await.unwrap(), Ok(i));
            }
        });
        assert_eq!(
            probe.polls.get(),
            2 * N,
            "a task was polled more than twice"
        );
        assert_eq!(probe.drops.get(), N);
        probe.assert_sound();
    });
}

#[test]
fn spawn_from_outside_while_every_worker_sleeps_never_gets_lost() {
    // The worker's "check queues, then sleep" and a producer's "push, then wake a sleeper"
    // race here every round.
    with_timeout(DEADLINE, || {
        for workers in [1, 2, 3] {
            let rt = runtime(workers);
            for round in 0..500u32 {
                if round % 50 == 0 {
                    wait_all_parked(&rt);
                }
                assert_eq!(rt.block_on(rt.spawn(async move { round })).unwrap(), round);
            }
        }
    });
}

/// A future that parks its waker in a shared slot and completes once `release` is set.
struct Storm {
    slot: Arc<Mutex<Option<Waker>>>,
    release: Arc<AtomicBool>,
}

impl Future for Storm {
    type Output = u32;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<u32> {
        // Stay in the poll a little, so wakes land while the task is running.
        for _ in 0..200 {
            std::hint::spin_loop();
        }
        if self.release.load(SeqCst) {
            return Poll::Ready(9);
        }
        let mut slot = self.slot.lock().unwrap();
        if slot.is_none() {
            *slot = Some(cx.waker().clone());
        }
        Poll::Pending
    }
}

#[test]
// Waking through a fresh clone exercises the clone and the by-value wake on purpose.
#[allow(clippy::waker_clone_wake)]
fn waker_cloned_and_woken_from_many_threads_never_double_polls() {
    with_timeout(DEADLINE, || {
        let rt = runtime(4);
        const TASKS: usize = 16;
        let probe = Probe::new();
        let release = Arc::new(AtomicBool::new(false));
        let mut slots = Vec::new();
        let mut handles = Vec::new();
        for _ in 0..TASKS {
            let slot = Arc::new(Mutex::new(None));
            slots.push(slot.clone());
            handles.push(rt.spawn(probe.track(Storm {
                slot,
                release: release.clone(),
            })));
        }
        wait_until("every task stored its waker", || {
            slots.iter().all(|s| s.lock().unwrap().is_some())
        });
        let wakers: Vec<Waker> = slots
            .iter()
            .map(|s| s.lock().unwrap().clone().unwrap())
            .collect();
        let stop = Arc::new(AtomicBool::new(false));
        let threads: Vec<_> = (0..4)
            .map(|t| {
                let wakers = wakers.clone();
                let stop = stop.clone();
                thread::spawn(move || {
                    let mut n = 0u64;
                    while !stop.load(SeqCst) {
                        for w in &wakers {
                            if (n + t) % 2 == 0 {
                                w.wake_by_ref();
                            } else {
                                w.clone().wake();
                            }
                        }
                        n += 1;
                    }
                    n
                })
            })
            .collect();
        thread::sleep(std::time::Duration::from_millis(100));
        release.store(true, SeqCst);
        for w in &wakers {
            w.wake_by_ref();
        }
        let outs: Vec<u32> = rt.block_on(async {
            let mut outs = Vec::new();
            for h in handles {
                outs.push(h.await.unwrap());
            }
            outs
        });
        assert_eq!(outs, vec![9; TASKS]);
        // Keep waking the completed tasks for a while: harmless.
        thread::sleep(std::time::Duration::from_millis(50));
        stop.store(true, SeqCst);
        let rounds: u64 = threads.into_iter().map(|t| t.join().unwrap()).sum();
        assert!(rounds > 0);
        probe.assert_sound();
        assert_eq!(probe.drops.get(), TASKS);
        // After completion, clones and wakes of a finished task's waker are no-ops.
        for w in &wakers {
            w.wake_by_ref();
            w.clone().wake();
        }
        drop(wakers);
        drop(slots);
        assert_eq!(probe.drops.get(), TASKS);
        // The runtime is unharmed.
        assert_eq!(rt.block_on(rt.spawn(async { 5 })).unwrap(), 5);
    });
}

#[test]
// Waking through a fresh clone exercises the clone and the by-value wake on purpose.
#[allow(clippy::waker_clone_wake)]
fn waker_outliving_its_task_and_runtime_is_harmless() {
    with_timeout(DEADLINE, || {
        let rt = runtime(2);
        let slot = Arc::new(Mutex::new(None::<Waker>));
        let s = slot.clone();
        rt.block_on(rt.spawn(poll_fn(move |cx| {
            *s.lock().unwrap() = Some(cx.waker().clone());
            Poll::Ready(())
        })))
        .unwrap();
        let waker = slot.lock().unwrap().take().unwrap();
        waker.wake_by_ref();
        drop(rt);
        // The task and its runtime are gone; the waker still owns a reference.
        waker.wake_by_ref();
        waker.clone().wake();
        waker.wake();
    });
}

#[test]
// Waking through a fresh clone exercises the clone and the by-value wake on purpose.
#[allow(clippy::waker_clone_wake)]
fn waker_held_by_a_pending_task_woken_after_runtime_drop_is_harmless() {
    with_timeout(DEADLINE, || {
        let rt = runtime(2);
        let slot = Arc::new(Mutex::new(None::<Waker>));
        let s = slot.clone();
        let probe = Probe::new();
        let h = rt.spawn(probe.track(poll_fn(move |cx| {
            *s.lock().unwrap() = Some(cx.waker().clone());
            Poll::<()>::Pending
        })));
        wait_until("the task stored its waker", || {
            slot.lock().unwrap().is_some()
        });
        drop(rt);
        assert_eq!(probe.drops.get(), 1);
        assert!(futures::executor::block_on(h).unwrap_err().is_cancelled());
        let waker = slot.lock().unwrap().take().unwrap();
        waker.wake_by_ref();
        waker.wake();
        assert_eq!(probe.polls.get(), 1);
    });
}

#[test]
fn only_the_latest_join_waker_is_woken() {
    with_timeout(DEADLINE, || {
        let rt = runtime(2);
        let (tx, rx) = oneshot::channel::<u8>();
        let mut h = rt.spawn(async move { rx.await.unwrap() });
        let (wa, a) = counting_waker();
        let (wb, b) = counting_waker();
        assert!(Pin::new(&mut h)
            .poll(&mut Context::from_waker(&wa))
            .is_pending());
        assert!(Pin::new(&mut h)
            .poll(&mut Context::from_waker(&wb))
            .is_pending());
        // Same waker again: still registered, no extra wake.
        assert!(Pin::new(&mut h)
            .poll(&mut Context::from_waker(&wb))
            .is_pending());
        tx.send(3).unwrap();
        wait_until("the join waker was woken", || b.get() == 1);
        assert_eq!(a.get(), 0, "a replaced join waker was woken");
        match Pin::new(&mut h).poll(&mut Context::from_waker(&wb)) {
            Poll::Ready(Ok(3)) => {}
            other => panic!("expected Ready(Ok(3)), got {other:?}"),
        }
        assert_eq!(b.get(), 1);
    });
}

#[test]
fn join_handle_polled_once_then_dropped_before_completion() {
    with_timeout(DEADLINE, || {
        let rt = runtime(2);
        let out_drops = Counter::new();
        let (tx, rx) = oneshot::channel::<()>();
        let d = out_drops.clone();
        let mut h = rt.spawn(async move {
            rx.await.unwrap();
            DropCount(d)
        });
        let (w, wakes) = counting_waker();
        assert!(Pin::new(&mut h)
            .poll(&mut Context::from_waker(&w))
            .is_pending());
        drop(h);
        tx.send(()).unwrap();
        wait_until("the detached output was dropped", || out_drops.get() == 1);
        assert_eq!(wakes.get(), 0, "the dropped JoinHandle's waker was woken");
        drop(rt);
        assert_eq!(out_drops.get(), 1);
    });
}

#[test]
fn yielding_tasks_on_one_worker_interleave_exactly() {
    with_timeout(DEADLINE, || {
        let rt = runtime(1);
        let log = Arc::new(Mutex::new(Vec::new()));
        let l = log.clone();
        rt.block_on(rt.spawn(async move {
            // Spawned back to back from the worker: queued in this order behind each other.
            let hs: Vec<_> = ["a", "b", "c"]
                .into_iter()
                .map(|name| {
                    let log = l.clone();
                    spawn(async move {
                        for i in 0..4 {
                            log.lock().unwrap().push(format!("{name}{i}"));
                            task::yield_now().await;
                        }
                    })
                })
                .collect();
            for h in hs {
                h.await.unwrap();
            }
        }))
        .unwrap();
        let log = log.lock().unwrap().join(" ");
        assert_eq!(log, "a0 b0 c0 a1 b1 c1 a2 b2 c2 a3 b3 c3");
    });
}

#[test]
fn a_yield_loop_does_not_starve_a_task_spawned_from_outside() {
    with_timeout(DEADLINE, || {
        let rt = runtime(1);
        let stop = Flag::new();
        let s = stop.clone();
        let spinner = rt.spawn(async move {
            let mut yields = 0u64;
            while !s.get() {
                task::yield_now().await;
                yields += 1;
            }
            yields
        });
        // Let the spinner occupy the only worker first.
        thread::sleep(std::time::Duration::from_millis(20));
        let s = stop.clone();
        rt.block_on(rt.spawn(async move { s.set() })).unwrap();
        assert!(rt.block_on(spinner).unwrap() > 0);
    });
}

#[test]
fn a_ping_pong_pair_does_not_starve_a_third_task() {
    // The pair keeps waking each other into the worker's LIFO slot; the third task sits in
    // the local queue (spawned from the worker) or in the injector (from outside).
    with_timeout(DEADLINE, || {
        let rt = runtime(1);
        let stop = Flag::new();
        let (mut a_tx, mut b_rx) = mpsc::channel::<u64>(1);
        let (mut b_tx, mut a_rx) = mpsc::channel::<u64>(1);
        let s = stop.clone();
        let a = rt.spawn(async move {
            let mut n = 0u64;
            while !s.get() {
                a_tx.send(n).await.unwrap();
                n = a_rx.next().await.unwrap();
            }
            n
        });
        let b = rt.spawn(async move {
            while let Some(v) = b_rx.next().await {
                if b_tx.send(v + 1).await.is_err() {
                    break;
                }
            }
        });
        thread::sleep(std::time::Duration::from_millis(20));
        let s = stop.clone();
        // From a task on the worker: queued behind the pair's LIFO hand-offs.
        rt.block_on(rt.spawn(async move {
            spawn(async move { s.set() }).await.unwrap();
        }))
        .unwrap();
        let rounds = rt.block_on(a).unwrap();
        assert!(rounds > 0);
        rt.block_on(b).unwrap();
    });
}

#[test]
fn tasks_on_two_runtimes_wake_each_other_and_stay_home() {
    with_timeout(DEADLINE, || {
        let one = Builder::new()
            .worker_threads(2)
            .thread_name("rt-one")
            .build()
            .unwrap();
        let two = Builder::new()
            .worker_threads(2)
            .thread_name("rt-two")
            .build()
            .unwrap();
        let (mut to_two, mut from_one) = mpsc::channel::<u32>(1);
        let (mut to_one, mut from_two) = mpsc::channel::<u32>(1);
        fn here() -> String {
            thread::current().name().unwrap_or("?").to_string()
        }
        let a = one.spawn(async move {
            for i in 0..2000 {
                to_two.send(i).await.unwrap();
                assert_eq!(from_two.next().await, Some(i + 1));
                assert_eq!(here(), "rt-one", "a task of runtime one ran elsewhere");
            }
        });
        let b = two.spawn(async move {
            while let Some(v) = from_one.next().await {
                assert_eq!(here(), "rt-two", "a task of runtime two ran elsewhere");
                to_one.send(v + 1).await.unwrap();
            }
        });
        one.block_on(a).unwrap();
        two.block_on(b).unwrap();
        // Spawning onto runtime two from a task of runtime one runs it on runtime two.
        let two_handle = two.handle().clone();
        let name = one
            .block_on(one.spawn(async move { two_handle.spawn(async { here() }).await.unwrap() }))
            .unwrap();
        assert_eq!(name, "rt-two");
    });
}
