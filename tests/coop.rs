//! The cooperative budget: a task whose resources are always ready gives its worker back after
//! a bounded number of operations, so the other tasks, the timers and `block_on` make progress.

use memkit_async::runtime::Builder;
use memkit_async::task::{self, coop};
use memkit_async::{MkAsyncChannel, MkBackpressure};
use std::future::Future;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering::SeqCst};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Units a poll starts with.
const UNITS: usize = 128;

/// Runs `f` on a thread and fails the test if it has not finished after `limit`.
fn within<T: Send + 'static>(limit: Duration, f: impl FnOnce() -> T + Send + 'static) -> T {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(f());
    });
    rx.recv_timeout(limit)
        .expect("did not finish within its bound: a task kept its worker")
}

/// Spawns, from a task, a sibling that only raises the returned flag when it runs.
fn spawn_sibling() -> Arc<AtomicBool> {
    let ran = Arc::new(AtomicBool::new(false));
    let flag = ran.clone();
    memkit_async::spawn(async move { flag.store(true, SeqCst) });
    ran
}

/// On one worker: a task pings itself over a channel `rounds` times and returns the round at
/// which it first saw a task it spawned before the loop run (`rounds` if never).
fn rounds_before_a_sibling_ran(rounds: usize, unconstrained: bool) -> usize {
    let rt = Builder::new().worker_threads(1).build().unwrap();
    let ran = Arc::new(AtomicBool::new(false));
    let hot = {
        let ran = ran.clone();
        async move {
            let flag = ran.clone();
            memkit_async::spawn(async move { flag.store(true, SeqCst) });
            let (tx, mut rx) = MkAsyncChannel::bounded(1, MkBackpressure::Wait);
            for i in 0..rounds {
                if ran.load(SeqCst) {
                    return i;
                }
                tx.send(i).await.unwrap();
                assert_eq!(rx.recv().await, Some(i));
            }
            rounds
        }
    };
    let handle = if unconstrained {
        rt.spawn(task::unconstrained(hot))
    } else {
        rt.spawn(hot)
    };
    rt.block_on(handle).unwrap()
}

#[test]
#[cfg_attr(miri, ignore = "10 000 channel round trips")]
fn a_task_that_never_waits_lets_its_sibling_run_once_its_units_are_spent() {
    // Each round spends two units (a send and a receive): the 65th round's send finds none
    // left, the task yields, the sibling runs, and the task sees it at the top of round 65.
    let seen = within(Duration::from_secs(30), || {
        rounds_before_a_sibling_ran(10_000, false)
    });
    assert_eq!(seen, UNITS / 2 + 1);
}

#[test]
#[cfg_attr(miri, ignore = "10 000 channel round trips")]
fn unconstrained_code_keeps_its_worker_until_it_is_done() {
    let seen = within(Duration::from_secs(30), || {
        rounds_before_a_sibling_ran(10_000, true)
    });
    assert_eq!(seen, 10_000, "the sibling ran only after the loop");
}

#[test]
#[cfg_attr(miri, ignore = "waits on a timer")]
fn a_timer_fires_on_a_worker_held_by_a_busy_task() {
    let stopped_at = within(Duration::from_secs(30), || {
        let rt = Builder::new().worker_threads(1).build().unwrap();
        let stop = Arc::new(AtomicBool::new(false));
        let rounds = Arc::new(AtomicUsize::new(0));
        const CAP: usize = 50_000_000;
        let hot = {
            let (stop, rounds) = (stop.clone(), rounds.clone());
            rt.spawn(async move {
                let (tx, mut rx) = MkAsyncChannel::bounded(1, MkBackpressure::Wait);
                let mut i = 0;
                while !stop.load(SeqCst) && i < CAP {
                    tx.send(i).await.unwrap();
                    rx.recv().await.unwrap();
                    i += 1;
                    rounds.store(i, SeqCst);
                }
                i
            })
        };
        // The sleep's timer is on the runtime's worker, which the loop occupies.
        let timer = {
            let stop = stop.clone();
            rt.spawn(async move {
                memkit_async::time::sleep(Duration::from_millis(10)).await;
                stop.store(true, SeqCst);
            })
        };
        rt.block_on(timer).unwrap();
        rt.block_on(hot).unwrap()
    });
    assert!(stopped_at < 50_000_000, "the loop ran to its cap");
}

#[test]
#[cfg_attr(miri, ignore = "128 polls of a busy loop")]
fn consume_budget_yields_after_the_units_of_one_poll() {
    let rt = Builder::new().worker_threads(1).build().unwrap();
    let seen = rt
        .block_on(rt.spawn(async {
            let ran = spawn_sibling();
            let mut steps = 0;
            while !ran.load(SeqCst) {
                task::consume_budget().await;
                steps += 1;
            }
            steps
        }))
        .unwrap();
    // 128 units spent, the 129th call yields, and completes on the next poll.
    assert_eq!(seen, UNITS + 1);
}

#[test]
#[cfg_attr(miri, ignore = "waits on a timer")]
fn a_timeout_fires_around_a_future_that_spends_every_unit() {
    let rt = Builder::new().worker_threads(1).build().unwrap();
    let res = within(Duration::from_secs(30), move || {
        rt.block_on(rt.spawn(async {
            memkit_async::time::timeout(Duration::from_millis(10), async {
                loop {
                    task::consume_budget().await;
                }
            })
            .await
        }))
        .unwrap()
    });
    assert!(res.is_err(), "timed out");
}

#[test]
fn the_budget_applies_inside_tasks_and_block_on_only() {
    assert!(coop::has_budget_remaining(), "no limit outside a poll");
    let rt = Builder::new().worker_threads(1).build().unwrap();
    let left = rt.block_on(async {
        for _ in 0..UNITS {
            task::consume_budget().await;
        }
        (
            coop::has_budget_remaining(),
            task::unconstrained(async { coop::has_budget_remaining() }).await,
        )
    });
    assert_eq!(left, (false, true));
}

/// On one worker: a task starts a sibling's 1 ms sleep, keeps the worker past its deadline,
/// then gives the worker back with `give_back`; whether the sleep had fired when it resumed.
fn a_due_timer_fired_before_resuming<F>(give_back: fn() -> F) -> bool
where
    F: Future<Output = ()> + Send + 'static,
{
    let rt = Builder::new().worker_threads(1).build().unwrap();
    rt.block_on(rt.spawn(async move {
        let fired = Arc::new(AtomicBool::new(false));
        let flag = fired.clone();
        memkit_async::spawn(async move {
            memkit_async::time::sleep(Duration::from_millis(1)).await;
            flag.store(true, SeqCst);
        });
        // Lets the sibling start its sleep.
        task::yield_now().await;
        // Keeps the worker past the sleep's deadline without giving it back.
        let start = Instant::now();
        while start.elapsed() < Duration::from_millis(5) {
            std::hint::spin_loop();
        }
        give_back().await;
        fired.load(SeqCst)
    }))
    .unwrap()
}

#[test]
#[cfg_attr(miri, ignore = "waits on a timer")]
fn yield_now_lets_a_timer_that_came_due_run_first() {
    assert!(
        a_due_timer_fired_before_resuming(task::yield_now),
        "the worker turned its driver before resuming the yielder"
    );
}

#[test]
#[cfg_attr(miri, ignore = "waits on a timer")]
fn a_spent_budget_lets_a_timer_that_came_due_run_first() {
    async fn spend_the_budget() {
        for _ in 0..=UNITS {
            task::consume_budget().await;
        }
    }
    assert!(
        a_due_timer_fired_before_resuming(spend_the_budget),
        "the worker turned its driver before resuming the task that spent its budget"
    );
}

#[test]
#[cfg_attr(miri, ignore = "a thousand timer ticks")]
fn a_one_nanosecond_interval_in_burst_mode_gives_its_worker_back() {
    let rt = Builder::new().worker_threads(1).build().unwrap();
    let seen = rt
        .block_on(rt.spawn(async {
            let ran = spawn_sibling();
            let mut every = memkit_async::time::interval(Duration::from_nanos(1));
            let mut ticks = 0;
            while !ran.load(SeqCst) && ticks < 100_000 {
                every.tick().await;
                ticks += 1;
            }
            ticks
        }))
        .unwrap();
    // Every tick is due at once (missed ticks burst), one unit each: the 129th yields.
    assert_eq!(seen, UNITS + 1);
}

/// A one-worker runtime whose worker is held by `hot(stop, rounds)`, a loop on resources that
/// are always ready which counts its rounds in `rounds` until `stop` is set. Returns how long a
/// 10 ms sleep took in a task and in `block_on`, and how many rounds the loop made while each
/// slept (more than none: the worker was held all along).
fn sleeps_beside<F>(
    hot: impl FnOnce(Arc<AtomicBool>, Arc<AtomicUsize>) -> F + Send + 'static,
) -> [(Duration, usize); 2]
where
    F: Future<Output = ()> + Send + 'static,
{
    within(Duration::from_secs(60), move || {
        let (stop, rounds) = (
            Arc::new(AtomicBool::new(false)),
            Arc::new(AtomicUsize::new(0)),
        );
        let rt = Builder::new().worker_threads(1).build().unwrap();
        let busy = rt.spawn(hot(stop.clone(), rounds.clone()));
        while rounds.load(SeqCst) == 0 {
            std::thread::yield_now();
        }
        let timed_sleep = |rounds: Arc<AtomicUsize>| async move {
            let (at, before) = (Instant::now(), rounds.load(SeqCst));
            memkit_async::time::sleep(Duration::from_millis(10)).await;
            (at.elapsed(), rounds.load(SeqCst) - before)
        };
        let in_task = rt.block_on(rt.spawn(timed_sleep(rounds.clone()))).unwrap();
        let in_block_on = rt.block_on(timed_sleep(rounds.clone()));
        stop.store(true, SeqCst);
        rt.block_on(busy).unwrap();
        [in_task, in_block_on]
    })
}

fn assert_on_time(sleeps: [(Duration, usize); 2]) {
    for ((took, rounds), place) in sleeps.into_iter().zip(["in a task", "in block_on"]) {
        assert!(
            rounds > 0,
            "{place}: the loop did not run while the sleep was pending"
        );
        assert!(
            took >= Duration::from_millis(10) && took < Duration::from_millis(50),
            "{place}: a 10 ms sleep took {took:?} beside the loop"
        );
    }
}

#[test]
#[cfg_attr(miri, ignore = "waits on a timer")]
fn an_always_ready_channel_loop_delays_no_10ms_sleep_past_50ms() {
    assert_on_time(sleeps_beside(|stop, rounds| async move {
        let (tx, mut rx) = MkAsyncChannel::bounded(1, MkBackpressure::Wait);
        while !stop.load(SeqCst) {
            tx.send(1u8).await.unwrap();
            rx.recv().await.unwrap();
            rounds.fetch_add(1, SeqCst);
        }
    }));
}

#[test]
#[cfg_attr(miri, ignore = "sockets")]
fn an_always_readable_tcp_loop_delays_no_10ms_sleep_past_50ms() {
    use futures::io::AsyncReadExt;
    use std::io::Write;
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    // Keeps the socket's receive buffer full: the reader below finds bytes on every read.
    let writer = std::thread::spawn(move || {
        let (mut conn, _) = listener.accept().unwrap();
        let chunk = [7u8; 64 * 1024];
        while conn.write_all(&chunk).is_ok() {}
    });
    assert_on_time(sleeps_beside(move |stop, rounds| async move {
        let mut conn = memkit_async::net::TcpStream::connect(addr).await.unwrap();
        let mut buf = [0u8; 16];
        while !stop.load(SeqCst) {
            let n = conn.read(&mut buf).await.unwrap();
            assert!(n > 0, "the writer never closes first");
            rounds.fetch_add(1, SeqCst);
        }
        // Dropping the stream fails the writer's next write, which ends its thread.
    }));
    writer.join().unwrap();
}
