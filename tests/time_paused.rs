//! The paused clock: `time::{pause, resume, advance}`, `Builder::start_paused` and
//! `#[memkit_async::test(start_paused = true)]`. Every instant is checked exactly, on the
//! runtime's clock; the only real-time check is that an hour of paused time takes well under a
//! second.

mod common;

use common::*;
use memkit_async::runtime::Builder;
use memkit_async::time::{
    self, interval, interval_at, sleep, sleep_until, timeout, timeout_at, Instant,
    MissedTickBehavior,
};
use memkit_async::{
    spawn, spawn_blocking, MkAllocError, MkAsyncChannel, MkAsyncPool, MkBackpressure, MkBudget,
    MkPoolError, Runtime,
};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::{Arc, Mutex};
use std::time::Duration;

const MS: Duration = Duration::from_millis(1);
const SEC: Duration = Duration::from_secs(1);

/// A runtime of `workers` workers whose clock starts paused.
fn paused(workers: usize) -> Runtime {
    Builder::new()
        .worker_threads(workers)
        .start_paused(true)
        .build()
        .unwrap()
}

#[memkit_async::test(start_paused = true)]
async fn an_hour_of_sleep_takes_no_real_time() {
    let real = std::time::Instant::now();
    let start = Instant::now();
    sleep(Duration::from_secs(3600)).await;
    assert_eq!(start.elapsed(), Duration::from_secs(3600));
    assert!(
        real.elapsed() < SEC,
        "an hour of paused time took {:?} of real time",
        real.elapsed()
    );
}

#[memkit_async::test(start_paused = true, worker_threads = 2)]
async fn sleep_until_wakes_exactly_at_its_deadline() {
    let start = Instant::now();
    sleep_until(start + Duration::from_secs(90)).await;
    assert_eq!(Instant::now() - start, Duration::from_secs(90));
    // A deadline in the past completes at once, without moving the clock.
    sleep_until(start).await;
    assert_eq!(Instant::now() - start, Duration::from_secs(90));
    // Sub-millisecond deadlines are rounded up to the wheel's next millisecond.
    sleep(Duration::from_micros(1500)).await;
    assert_eq!(Instant::now() - start, Duration::from_secs(90) + 2 * MS);
}

#[test]
fn instant_now_moves_exactly_by_advance() {
    with_timeout(DEADLINE, || {
        let rt = runtime(2);
        rt.block_on(async {
            time::pause();
            let start = Instant::now();
            std::thread::sleep(2 * MS);
            assert_eq!(Instant::now(), start, "a paused clock stands still");
            time::advance(Duration::from_micros(1500)).await;
            assert_eq!(Instant::now() - start, Duration::from_micros(1500));
            time::advance(Duration::from_secs(7)).await;
            assert_eq!(
                Instant::now() - start,
                Duration::from_secs(7) + Duration::from_micros(1500)
            );
            time::advance(Duration::ZERO).await;
            assert_eq!(
                Instant::now() - start,
                Duration::from_secs(7) + Duration::from_micros(1500)
            );
            // Tasks on the workers read the same clock.
            let seen = spawn(async { Instant::now() }).await.unwrap();
            assert_eq!(
                seen - start,
                Duration::from_secs(7) + Duration::from_micros(1500)
            );
            time::resume();
            // Running again from where it stood, never backwards.
            assert!(Instant::now() >= start + Duration::from_secs(7));
            sleep(MS).await;
        });
        // Outside the runtime the clock is the system's.
        let outside = Instant::now();
        assert!(outside.into_std() <= std::time::Instant::now());
    })
}

#[test]
fn advance_fires_the_timers_that_come_due_and_no_others() {
    with_timeout(DEADLINE, || {
        let rt = paused(2);
        rt.block_on(async {
            let start = Instant::now();
            let (tx, mut rx) = futures::channel::mpsc::unbounded();
            for secs in [5u64, 10] {
                let tx = tx.clone();
                // An absolute deadline: the task may first run after the clock has moved.
                spawn(async move {
                    sleep_until(start + Duration::from_secs(secs)).await;
                    tx.unbounded_send((secs, Instant::now() - start)).unwrap();
                });
            }
            drop(tx);
            time::advance(Duration::from_millis(4999)).await;
            assert!(rx.try_recv().is_err(), "nothing is due before 5 s");
            time::advance(MS).await;
            use futures::StreamExt;
            assert_eq!(rx.next().await, Some((5, Duration::from_secs(5))));
            assert_eq!(Instant::now() - start, Duration::from_secs(5));
            // The 10 s timer is next; with nothing else to do the clock jumps to it.
            assert_eq!(rx.next().await, Some((10, Duration::from_secs(10))));
            assert_eq!(rx.next().await, None);
            assert_eq!(Instant::now() - start, Duration::from_secs(10));
        });
    })
}

#[test]
fn advance_on_a_worker_runs_the_woken_tasks_before_its_caller() {
    with_timeout(DEADLINE, || {
        // One worker: the sleeper can only run when the advancing task yields to it.
        let rt = paused(1);
        rt.block_on(async {
            spawn(async {
                let start = Instant::now();
                let woke = Arc::new(Mutex::new(None));
                let w = woke.clone();
                spawn(async move {
                    sleep(5 * SEC).await;
                    *w.lock().unwrap() = Some(Instant::now() - start);
                });
                // Lets the sleeper register its timer.
                memkit_async::task::yield_now().await;
                time::advance(5 * SEC).await;
                assert_eq!(*woke.lock().unwrap(), Some(5 * SEC));
            })
            .await
            .unwrap();
        });
    })
}

/// The instants (relative to `start`) of `n` ticks of a 10 ms interval whose consumer comes
/// back `away` after the first tick.
async fn ticks_after(behavior: MissedTickBehavior, away: Duration, n: usize) -> Vec<Duration> {
    let start = Instant::now();
    let mut ticks = interval(10 * MS);
    ticks.set_missed_tick_behavior(behavior);
    let mut seen = vec![ticks.tick().await - start];
    time::advance(away).await;
    for _ in 1..n {
        let at = ticks.tick().await;
        assert!(at <= Instant::now(), "a tick is never returned early");
        seen.push(at - start);
    }
    seen
}

/// The same, 35 ms away: three ticks (10, 20, 30) are missed.
async fn late_ticks(behavior: MissedTickBehavior, n: usize) -> Vec<Duration> {
    ticks_after(behavior, 35 * MS, n).await
}

fn ms(list: &[u64]) -> Vec<Duration> {
    list.iter().map(|&m| Duration::from_millis(m)).collect()
}

#[test]
fn interval_ticks_on_schedule_under_advance() {
    with_timeout(DEADLINE, || {
        paused(2).block_on(async {
            let start = Instant::now();
            let mut ticks = interval_at(start + 5 * MS, 10 * MS);
            let mut seen = Vec::new();
            for _ in 0..4 {
                seen.push(ticks.tick().await - start);
            }
            assert_eq!(seen, ms(&[5, 15, 25, 35]));
            assert_eq!(Instant::now() - start, 35 * MS);
        });
    })
}

#[test]
fn interval_burst_catches_up_on_the_original_schedule() {
    with_timeout(DEADLINE, || {
        paused(2).block_on(async {
            let start = Instant::now();
            // Three missed ticks fire at once (10, 20, 30), then the schedule goes on.
            assert_eq!(
                late_ticks(MissedTickBehavior::Burst, 6).await,
                ms(&[0, 10, 20, 30, 40, 50])
            );
            assert_eq!(Instant::now() - start, 50 * MS);
        });
    })
}

#[test]
fn interval_delay_restarts_the_schedule_from_the_late_tick() {
    with_timeout(DEADLINE, || {
        paused(2).block_on(async {
            let start = Instant::now();
            // The late tick (scheduled at 10) is taken at 35; the next is a period after that.
            assert_eq!(
                late_ticks(MissedTickBehavior::Delay, 4).await,
                ms(&[0, 10, 45, 55])
            );
            assert_eq!(Instant::now() - start, 55 * MS);
        });
    })
}

#[test]
fn interval_skip_drops_the_missed_ticks() {
    with_timeout(DEADLINE, || {
        paused(2).block_on(async {
            let start = Instant::now();
            // Ticks 20 and 30 are skipped: the next is 40, the first still ahead at 35.
            assert_eq!(
                late_ticks(MissedTickBehavior::Skip, 4).await,
                ms(&[0, 10, 40, 50])
            );
            assert_eq!(Instant::now() - start, 50 * MS);
        });
    })
}

#[test]
fn a_tick_counts_as_missed_once_more_than_5_ms_late() {
    with_timeout(DEADLINE, || {
        paused(2).block_on(async {
            for behavior in [
                MissedTickBehavior::Burst,
                MissedTickBehavior::Delay,
                MissedTickBehavior::Skip,
            ] {
                // The tick due at 10 is taken at 15: on time, for every behavior.
                assert_eq!(
                    ticks_after(behavior, 15 * MS, 4).await,
                    ms(&[0, 10, 20, 30]),
                    "{behavior:?}"
                );
            }
            // Taken at 16, it is missed: only `Delay` moves the schedule (Burst and Skip have
            // no tick to catch up or drop).
            assert_eq!(
                ticks_after(MissedTickBehavior::Delay, 16 * MS, 4).await,
                ms(&[0, 10, 26, 36])
            );
            assert_eq!(
                ticks_after(MissedTickBehavior::Burst, 16 * MS, 4).await,
                ms(&[0, 10, 20, 30])
            );
            assert_eq!(
                ticks_after(MissedTickBehavior::Skip, 16 * MS, 4).await,
                ms(&[0, 10, 20, 30])
            );
        });
    })
}

#[test]
fn timeout_elapses_on_the_paused_clock() {
    with_timeout(DEADLINE, || {
        paused(2).block_on(async {
            let start = Instant::now();
            let late = timeout(5 * SEC, sleep(10 * SEC)).await;
            assert!(late.is_err());
            assert_eq!(Instant::now() - start, 5 * SEC);
            let on_time = timeout(10 * SEC, async {
                sleep(3 * SEC).await;
                7
            })
            .await;
            assert_eq!(on_time, Ok(7));
            assert_eq!(Instant::now() - start, 8 * SEC);
            let at = timeout_at(start + 20 * SEC, std::future::pending::<()>()).await;
            assert!(at.is_err());
            assert_eq!(Instant::now() - start, 20 * SEC);
        });
    })
}

#[test]
fn auto_advance_with_many_tasks_on_many_workers() {
    with_timeout(DEADLINE, || {
        let rt = paused(4);
        let log = Arc::new(Mutex::new(Vec::new()));
        let l = log.clone();
        rt.block_on(async move {
            // Spawned from `block_on`, which holds the clock until every task is queued.
            let start = Instant::now();
            let tasks: Vec<_> = (1..=8u64)
                .map(|id| {
                    let log = l.clone();
                    spawn(async move {
                        for round in 1..=3u64 {
                            sleep(Duration::from_secs(id)).await;
                            log.lock()
                                .unwrap()
                                .push((id, round, Instant::now() - start));
                        }
                    })
                })
                .collect();
            for t in tasks {
                t.await.unwrap();
            }
            // The last wake-up is task 8's third, at 24 s.
            assert_eq!(Instant::now() - start, Duration::from_secs(24));
        });
        let mut log = log.lock().unwrap().clone();
        log.sort();
        let expected: Vec<_> = (1..=8u64)
            .flat_map(|id| (1..=3u64).map(move |r| (id, r, Duration::from_secs(id * r))))
            .collect();
        assert_eq!(log, expected, "every task woke exactly at its deadlines");
    })
}

#[test]
fn auto_advance_without_block_on() {
    with_timeout(DEADLINE, || {
        // Nothing drives a future on the test thread: the workers alone move the clock.
        let rt = paused(2);
        let (tx, rx) = std::sync::mpsc::channel();
        rt.spawn(async move {
            let start = Instant::now();
            sleep(Duration::from_secs(600)).await;
            let first = Instant::now() - start;
            let second = spawn(async move {
                sleep(Duration::from_secs(60)).await;
                Instant::now() - start
            })
            .await
            .unwrap();
            tx.send((first, second)).unwrap();
        });
        let got = rx.recv_timeout(DEADLINE).expect("the task finished");
        assert_eq!(got, (Duration::from_secs(600), Duration::from_secs(660)));
    })
}

#[test]
fn budget_timeout_fails_after_exactly_its_paused_duration() {
    with_timeout(DEADLINE, || {
        paused(2).block_on(async {
            let budget = MkBudget::new(100).with_policy(MkBackpressure::Timeout(60 * SEC));
            let held = budget.try_acquire(80).unwrap();
            let start = Instant::now();
            let err = budget.acquire(50).await.unwrap_err();
            assert_eq!(
                err,
                MkAllocError::TimedOut {
                    requested: 50,
                    limit: 100,
                    used: 80,
                    waited: 60 * SEC,
                }
            );
            assert_eq!(Instant::now() - start, 60 * SEC);
            assert_eq!(budget.waiting(), 0, "the request was withdrawn");
            drop(held);
            assert_eq!(budget.used(), 0);
        });
    })
}

#[test]
fn channel_send_timeout_times_out_on_the_paused_clock() {
    with_timeout(DEADLINE, || {
        paused(2).block_on(async {
            let drops = Counter::new();
            let (tx, rx) = MkAsyncChannel::bounded_bytes(100, MkBackpressure::Wait);
            tx.try_send(msg(0, 80, &drops)).unwrap();
            let start = Instant::now();
            let err = tx
                .send_timeout(msg(1, 50, &drops), 30 * SEC)
                .await
                .unwrap_err();
            assert_eq!(Instant::now() - start, 30 * SEC);
            match err.alloc_error() {
                Some(&MkAllocError::TimedOut {
                    requested,
                    limit,
                    used,
                    waited,
                }) => assert_eq!((requested, limit, used, waited), (50, 100, 80, 30 * SEC)),
                other => panic!("expected TimedOut, got {other:?}"),
            }
            assert_eq!(err.into_inner().id, 1);
            assert_eq!(drops.get(), 1, "only the returned message was dropped");
            drop(rx);
        });
    })
}

#[test]
fn pool_acquire_times_out_on_the_paused_clock() {
    with_timeout(DEADLINE, || {
        paused(2).block_on(async {
            let pool = MkAsyncPool::<u32>::new(1, MkBackpressure::Timeout(45 * SEC));
            let held = pool.acquire().await.unwrap();
            let start = Instant::now();
            let err = pool.acquire().await.unwrap_err();
            assert_eq!(
                err,
                MkPoolError::TimedOut {
                    capacity: 1,
                    waited: 45 * SEC,
                }
            );
            assert_eq!(Instant::now() - start, 45 * SEC);
            drop(held);
        });
    })
}

#[test]
fn no_auto_advance_while_a_blocking_closure_runs() {
    with_timeout(DEADLINE, || {
        paused(2).block_on(async {
            let start = Instant::now();
            let sleeper = spawn(async move {
                sleep(Duration::from_secs(3600)).await;
                Instant::now() - start
            });
            // While the closure runs, the runtime looks idle but is not: the clock must wait.
            let seen = spawn_blocking(move || {
                std::thread::sleep(Duration::from_millis(100));
                Instant::now() - start
            })
            .await
            .unwrap();
            assert_eq!(
                seen,
                Duration::ZERO,
                "the clock moved under a blocking closure"
            );
            assert_eq!(Instant::now() - start, Duration::ZERO);
            // Once it is done, the sleeper's hour passes at once.
            assert_eq!(sleeper.await.unwrap(), Duration::from_secs(3600));
        });
    })
}

#[test]
#[cfg_attr(miri, ignore = "Miri cannot open sockets")]
fn auto_advance_while_a_socket_waits_for_input() {
    with_timeout(DEADLINE, || {
        paused(2).block_on(async {
            let socket = memkit_async::net::UdpSocket::bind("127.0.0.1:0")
                .await
                .unwrap();
            let receiver = spawn(async move {
                let mut buf = [0u8; 16];
                socket.recv_from(&mut buf).await.map(|(n, _)| n)
            });
            let start = Instant::now();
            // I/O that may come in real time does not hold the paused clock back.
            sleep(Duration::from_secs(3600)).await;
            assert_eq!(Instant::now() - start, Duration::from_secs(3600));
            assert!(!receiver.is_finished());
            receiver.abort();
        });
    })
}

fn panic_message(f: impl FnOnce()) -> String {
    let payload = catch_unwind(AssertUnwindSafe(f)).expect_err("expected a panic");
    payload
        .downcast_ref::<String>()
        .cloned()
        .or_else(|| payload.downcast_ref::<&str>().map(|s| s.to_string()))
        .unwrap_or_default()
}

#[test]
fn pause_resume_and_advance_misuse_panics_with_what_to_do() {
    let msg = panic_message(time::pause);
    assert!(msg.contains("outside a memkit-async runtime"), "{msg}");
    let msg = panic_message(time::resume);
    assert!(msg.contains("outside a memkit-async runtime"), "{msg}");
    let msg = panic_message(|| futures::executor::block_on(time::advance(SEC)));
    assert!(msg.contains("outside a memkit-async runtime"), "{msg}");

    let rt = runtime(1);
    let msg = panic_message(|| rt.block_on(async { time::resume() }));
    assert!(msg.contains("the clock is not paused"), "{msg}");
    let msg = panic_message(|| rt.block_on(time::advance(SEC)));
    assert!(msg.contains("the clock is not paused"), "{msg}");
    assert!(msg.contains("time::pause()"), "{msg}");
    let msg = panic_message(|| {
        rt.block_on(async {
            time::pause();
            time::pause();
        })
    });
    assert!(msg.contains("already paused"), "{msg}");
    // The first pause took effect; resuming once is fine, twice is not.
    rt.block_on(async { time::resume() });
    let msg = panic_message(|| rt.block_on(async { time::resume() }));
    assert!(msg.contains("the clock is not paused"), "{msg}");
}

#[test]
fn each_runtime_has_its_own_clock() {
    with_timeout(DEADLINE, || {
        let frozen = paused(1);
        let running = runtime(1);
        let start = frozen.block_on(async { Instant::now() });
        frozen.block_on(time::advance(Duration::from_secs(3600)));
        assert_eq!(
            frozen.block_on(async { Instant::now() }) - start,
            Duration::from_secs(3600)
        );
        let real = running.block_on(async { Instant::now() });
        assert!(real < start + Duration::from_secs(3600));
        assert!(real.into_std() <= std::time::Instant::now());
    })
}

#[memkit_async::test(flavor = "current_thread", start_paused = true)]
async fn a_current_thread_test_sleeps_an_hour_on_the_paused_clock() {
    let start = Instant::now();
    let thread = std::thread::current().id();
    let sleeper = spawn(async move {
        sleep(Duration::from_secs(3600)).await;
        (Instant::now() - start, std::thread::current().id())
    });
    sleep(Duration::from_secs(60)).await;
    assert_eq!(Instant::now() - start, Duration::from_secs(60));
    assert_eq!(
        sleeper.await.unwrap(),
        (Duration::from_secs(3600), thread),
        "the task woke at its deadline, on the block_on thread"
    );
}

#[test]
fn auto_advance_on_a_current_thread_runtime_with_many_tasks() {
    with_timeout(DEADLINE, || {
        let rt = Builder::new_current_thread()
            .start_paused(true)
            .build()
            .unwrap();
        let woke = rt.block_on(async {
            let start = Instant::now();
            let tasks: Vec<_> = (1..=5u64)
                .map(|id| {
                    spawn(async move {
                        sleep(Duration::from_secs(10 * id)).await;
                        Instant::now() - start
                    })
                })
                .collect();
            let mut woke = Vec::new();
            for t in tasks {
                woke.push(t.await.unwrap());
            }
            woke
        });
        let expected: Vec<_> = (1..=5u64).map(|id| Duration::from_secs(10 * id)).collect();
        assert_eq!(woke, expected);
    })
}
