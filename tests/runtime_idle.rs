//! An idle runtime's workers sleep in the OS: they use no CPU and do not wake up on their own.
// Not under Miri: it reads thread ids and CPU ticks from /proc, which Miri's isolation forbids,
// and Miri's threads use no OS CPU time to measure.
#![cfg(all(target_os = "linux", not(miri)))]

mod common;

use common::*;
use futures::channel::oneshot;
use memkit_async::{Builder, Runtime};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::Duration;

const WORKERS: usize = 4;

/// This thread's kernel thread id.
fn current_tid() -> u32 {
    let link = std::fs::read_link("/proc/thread-self").expect("read /proc/thread-self");
    link.file_name()
        .and_then(|n| n.to_str())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("unexpected /proc/thread-self target {link:?}"))
}

/// utime + stime of thread `tid`, in clock ticks (fields 14 and 15 of its stat file).
fn cpu_ticks(tid: u32) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/self/task/{tid}/stat"))
        .unwrap_or_else(|e| panic!("read the stat of thread {tid}: {e}"));
    // The command name (field 2) is in parentheses and may contain spaces: split after it.
    let rest = &stat[stat.rfind(')').expect("malformed stat") + 1..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // `rest` starts at field 3, so field 14 is at index 11 and field 15 at index 12.
    let utime: u64 = fields[11].parse().unwrap();
    let stime: u64 = fields[12].parse().unwrap();
    utime + stime
}

/// A runtime of `WORKERS` workers and the thread ids of its workers.
fn runtime_with_tids() -> (Runtime, Vec<u32>) {
    let tids = Arc::new(Mutex::new(Vec::new()));
    let t = tids.clone();
    let rt = Builder::new()
        .worker_threads(WORKERS)
        .on_thread_start(move || t.lock().unwrap().push(current_tid()))
        .build()
        .unwrap();
    wait_until("every worker recorded its tid", || {
        tids.lock().unwrap().len() == WORKERS
    });
    let tids = tids.lock().unwrap().clone();
    (rt, tids)
}

/// Waits until every worker is parked, then checks that over 300 ms none of them used CPU
/// or went through another park (which a spinning or re-waking worker would).
fn assert_idle(rt: &Runtime, tids: &[u32]) {
    let m = rt.metrics();
    // A worker that was just notified still reads as parked until the OS runs it; it then
    // looks for work and parks again. Let such in-flight wake-ups settle first: every worker
    // parked, and no new park for 100 ms.
    let park_counts = || {
        (0..WORKERS)
            .map(|i| m.worker_park_count(i))
            .collect::<Vec<u64>>()
    };
    wait_until("every worker is parked and stays parked for 100 ms", || {
        let before = park_counts();
        if m.num_parked_workers() != WORKERS {
            return false;
        }
        thread::sleep(Duration::from_millis(100));
        m.num_parked_workers() == WORKERS && park_counts() == before
    });
    let ticks: Vec<u64> = tids.iter().map(|&t| cpu_ticks(t)).collect();
    let parks: Vec<u64> = (0..WORKERS).map(|i| m.worker_park_count(i)).collect();
    let polls: Vec<u64> = (0..WORKERS).map(|i| m.worker_poll_count(i)).collect();
    thread::sleep(Duration::from_millis(300));
    let ticks_after: Vec<u64> = tids.iter().map(|&t| cpu_ticks(t)).collect();
    let parks_after: Vec<u64> = (0..WORKERS).map(|i| m.worker_park_count(i)).collect();
    let polls_after: Vec<u64> = (0..WORKERS).map(|i| m.worker_poll_count(i)).collect();
    assert_eq!(
        ticks, ticks_after,
        "idle workers used CPU (utime+stime ticks per worker)"
    );
    assert_eq!(parks, parks_after, "idle workers woke up and parked again");
    assert_eq!(polls, polls_after, "idle workers polled tasks");
    assert_eq!(m.num_parked_workers(), WORKERS);
}

#[test]
fn a_fresh_runtime_sleeps() {
    with_timeout(DEADLINE, || {
        let (rt, tids) = runtime_with_tids();
        assert_idle(&rt, &tids);
    });
}

#[test]
fn a_runtime_sleeps_again_after_a_burst_of_work() {
    with_timeout(DEADLINE, || {
        let (rt, tids) = runtime_with_tids();
        let sum = rt.block_on(async {
            let hs: Vec<_> = (0..20_000u64)
                .map(|i| {
                    memkit_async::spawn(async move {
                        memkit_async::task::yield_now().await;
                        i
                    })
                })
                .collect();
            let mut sum = 0;
            for h in hs {
                sum += h.await.unwrap();
            }
            sum
        });
        assert_eq!(sum, (0..20_000u64).sum::<u64>());
        assert_idle(&rt, &tids);
    });
}

#[test]
fn a_runtime_with_only_waiting_tasks_sleeps_and_wakes_for_them() {
    with_timeout(DEADLINE, || {
        let (rt, tids) = runtime_with_tids();
        let mut senders = Vec::new();
        let probe = Probe::new();
        let handles: Vec<_> = (0..100u32)
            .map(|i| {
                let (tx, rx) = oneshot::channel::<u32>();
                senders.push(tx);
                rt.spawn(probe.track(async move { rx.await.unwrap() + i }))
            })
            .collect();
        wait_until("every task waits on its channel", || {
            probe.polls.get() == 100
        });
        assert_idle(&rt, &tids);
        for tx in senders {
            tx.send(1).unwrap();
        }
        let outs: Vec<u32> = rt.block_on(async {
            let mut v = Vec::new();
            for h in handles {
                v.push(h.await.unwrap());
            }
            v
        });
        assert_eq!(outs, (1..=100).collect::<Vec<u32>>());
        assert_idle(&rt, &tids);
    });
}

#[test]
fn a_single_wake_up_does_not_wake_every_worker() {
    // One task woken from outside needs one worker, not four.
    with_timeout(DEADLINE, || {
        let (rt, _tids) = runtime_with_tids();
        let m = rt.metrics();
        wait_until("every worker is parked", || {
            m.num_parked_workers() == WORKERS
        });
        let parks: u64 = (0..WORKERS).map(|i| m.worker_park_count(i)).sum();
        for round in 0..20u32 {
            assert_eq!(rt.block_on(rt.spawn(async move { round })).unwrap(), round);
            wait_until("every worker is parked", || {
                m.num_parked_workers() == WORKERS
            });
        }
        let parks_after: u64 = (0..WORKERS).map(|i| m.worker_park_count(i)).sum();
        // Each round wakes at most 2 workers (the one that runs it plus at most one searcher
        // it hands the search on to); waking all 4 would add 80 parks.
        assert!(
            parks_after - parks <= 2 * 20,
            "20 single-task rounds caused {} parks: more workers woke than needed",
            parks_after - parks
        );
    });
}
