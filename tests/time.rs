//! Timers: `sleep`, `timeout`, `interval` on the runtime's wheel, and the fallback driver used
//! outside a runtime.

mod common;

use common::*;
use memkit_async::time::{
    interval, interval_at, sleep, sleep_until, timeout, Instant, MissedTickBehavior,
};
use std::future::{pending, poll_fn, Future};
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering::SeqCst};
use std::sync::{Arc, Mutex};
use std::task::{Context, Wake, Waker};
use std::time::Duration;

/// Lateness allowed for a timer on a loaded 2-core machine: generous, it only catches a timer
/// that was not fired by its deadline turn at all.
const LATE: Duration = Duration::from_millis(250);

struct LogWaker(usize, Arc<Mutex<Vec<(usize, Instant)>>>);

impl Wake for LogWaker {
    fn wake(self: Arc<Self>) {
        self.1.lock().unwrap().push((self.0, Instant::now()));
    }
}

#[test]
fn timers_fire_in_deadline_order_never_early_and_with_bounded_lateness() {
    with_timeout(DEADLINE, || {
        let rt = runtime(2);
        let _enter = rt.enter();
        let log = Arc::new(Mutex::new(Vec::new()));
        // Deadlines start 200 ms out, so registering all 300 (slow under sanitizers) never
        // outruns the first one.
        let start = Instant::now() + Duration::from_millis(200);
        // 300 timers, deadlines 0..150 ms after `start` in a scrambled order, several per
        // millisecond.
        let offsets: Vec<u64> = (0..300u64).map(|i| (i * 37) % 150 + 1).collect();
        let mut sleeps: Vec<_> = offsets
            .iter()
            .map(|&ms| Box::pin(sleep_until(start + Duration::from_millis(ms))))
            .collect();
        for (i, s) in sleeps.iter_mut().enumerate() {
            let waker = Waker::from(Arc::new(LogWaker(i, log.clone())));
            assert!(s
                .as_mut()
                .poll(&mut Context::from_waker(&waker))
                .is_pending());
        }
        assert_eq!(rt.metrics().num_timers(), 300);
        wait_until("every timer fired", || log.lock().unwrap().len() == 300);
        let log = log.lock().unwrap().clone();
        let mut last = 0;
        for &(i, fired) in &log {
            let deadline = start + Duration::from_millis(offsets[i]);
            assert!(
                fired >= deadline,
                "timer {i} fired {:?} early",
                deadline - fired
            );
            assert!(
                fired - deadline < LATE,
                "timer {i} fired {:?} late",
                fired - deadline
            );
            assert!(
                offsets[i] >= last,
                "timer {i} ({} ms) fired after a {last} ms one",
                offsets[i]
            );
            last = offsets[i];
        }
        // Fired sleeps complete on their next poll; the wheel holds nothing.
        let waker = Waker::noop();
        for s in &mut sleeps {
            assert!(s.as_mut().poll(&mut Context::from_waker(waker)).is_ready());
        }
        assert_eq!(rt.metrics().num_timers(), 0);
    });
}

#[test]
fn sleeping_tasks_wake_after_their_deadline() {
    with_timeout(DEADLINE, || {
        let rt = runtime(2);
        let lateness = rt.block_on(async {
            let hs: Vec<_> = (0..1000u64)
                .map(|i| {
                    memkit_async::spawn(async move {
                        let deadline = Instant::now() + Duration::from_millis(i % 50);
                        sleep_until(deadline).await;
                        Instant::now().checked_duration_since(deadline)
                    })
                })
                .collect();
            let mut worst = Duration::ZERO;
            for h in hs {
                let late = h
                    .await
                    .unwrap()
                    .expect("a sleep completed before its deadline");
                worst = worst.max(late);
            }
            worst
        });
        assert!(lateness < LATE, "worst lateness {lateness:?}");
        assert_eq!(rt.metrics().num_timers(), 0);
    });
}

#[test]
fn timers_fire_while_every_worker_is_busy() {
    // Nobody parks, so nobody blocks in the driver: busy workers must fire timers themselves.
    with_timeout(DEADLINE, || {
        let rt = runtime(2);
        let stop = Arc::new(AtomicBool::new(false));
        let spinners: Vec<_> = (0..4)
            .map(|_| {
                let stop = stop.clone();
                rt.spawn(async move {
                    while !stop.load(SeqCst) {
                        memkit_async::task::yield_now().await;
                    }
                })
            })
            .collect();
        let start = Instant::now();
        let slept = rt.spawn(async move {
            sleep(Duration::from_millis(20)).await;
            start.elapsed()
        });
        let took = rt.block_on(slept).unwrap();
        stop.store(true, SeqCst);
        for s in spinners {
            rt.block_on(s).unwrap();
        }
        assert!(
            took >= Duration::from_millis(20) && took < Duration::from_millis(20) + LATE,
            "{took:?}"
        );
    });
}

#[test]
fn timeout_zero_polls_the_future_once_first() {
    with_timeout(DEADLINE, || {
        let rt = runtime(1);
        rt.block_on(async {
            assert_eq!(timeout(Duration::ZERO, async { 5 }).await, Ok(5));
            let probe = Probe::new();
            let res = timeout(Duration::ZERO, probe.track(pending::<()>())).await;
            let err = res.unwrap_err();
            assert_eq!(probe.polls.get(), 1);
            assert_eq!(probe.drops.get(), 1);
            assert!(err.to_string().contains("deadline has elapsed"), "{err}");
            let io: std::io::Error = err.into();
            assert_eq!(io.kind(), std::io::ErrorKind::TimedOut);
        });
        assert_eq!(rt.metrics().num_timers(), 0);
    });
}

#[test]
fn timeout_cancels_the_inner_future_and_its_timers() {
    with_timeout(DEADLINE, || {
        let rt = runtime(2);
        let m = rt.metrics();
        let drops = Counter::new();
        let d = DropCount(drops.clone());
        let res = rt.block_on(rt.spawn(async move {
            let inner = async move {
                let _d = d;
                sleep(Duration::from_secs(3600)).await;
                "finished"
            };
            timeout(Duration::from_millis(10), inner).await
        }));
        assert!(res.unwrap().is_err());
        assert_eq!(drops.get(), 1, "the inner future was dropped exactly once");
        assert_eq!(m.num_timers(), 0, "the inner sleep's timer was cancelled");
        // In time: the output comes through.
        let ok = rt.block_on(timeout(Duration::from_secs(5), async {
            sleep(Duration::from_millis(5)).await;
            7
        }));
        assert_eq!(ok, Ok(7));
    });
}

#[test]
fn a_timer_for_duration_max_saturates_and_is_cancelled_cleanly() {
    with_timeout(DEADLINE, || {
        let rt = runtime(2);
        let m = rt.metrics();
        rt.block_on(async {
            let s = sleep(Duration::MAX);
            assert!(s.deadline() > Instant::now() + Duration::from_secs(86_400 * 365 * 29));
            assert!(timeout(Duration::from_millis(10), s).await.is_err());
            assert!(timeout(Duration::MAX, async { 1 }).await.is_ok());
            let far = memkit_async::spawn(sleep(Duration::MAX));
            wait_until_async(|| m.num_timers() == 1).await;
            far.abort();
            assert!(far.await.unwrap_err().is_cancelled());
        });
        assert_eq!(m.num_timers(), 0);
    });
}

async fn wait_until_async(mut cond: impl FnMut() -> bool) {
    let end = Instant::now() + DEADLINE;
    while !cond() {
        assert!(
            Instant::now() < end,
            "condition not reached in {DEADLINE:?}"
        );
        sleep(Duration::from_millis(1)).await;
    }
}

#[test]
fn ten_thousand_dropped_sleeps_leave_nothing_registered() {
    with_timeout(DEADLINE, || {
        let rt = runtime(2);
        let m = rt.metrics();
        let hs: Vec<_> = (0..10_000u64)
            .map(|i| rt.spawn(sleep(Duration::from_secs(60 + i))))
            .collect();
        wait_until("all 10 000 timers are registered", || {
            m.num_timers() == 10_000
        });
        for h in &hs {
            h.abort();
        }
        wait_until("every aborted sleep cancelled its timer", || {
            m.num_timers() == 0
        });
        for h in hs {
            assert!(rt.block_on(h).unwrap_err().is_cancelled());
        }
    });
}

#[test]
fn interval_burst_catches_up_on_the_original_schedule() {
    with_timeout(DEADLINE, || {
        let rt = runtime(1);
        rt.block_on(async {
            let start = Instant::now();
            let p = Duration::from_millis(10);
            let mut iv = interval_at(start, p);
            assert_eq!(iv.missed_tick_behavior(), MissedTickBehavior::Burst);
            assert_eq!(iv.tick().await, start);
            std::thread::sleep(Duration::from_millis(35)); // miss three ticks
            for k in 1..=5u32 {
                assert_eq!(iv.tick().await, start + p * k);
            }
            assert!(Instant::now() >= start + p * 5);
        });
    });
}

#[test]
fn interval_delay_restarts_from_the_late_tick() {
    with_timeout(DEADLINE, || {
        let rt = runtime(1);
        rt.block_on(async {
            let start = Instant::now();
            let p = Duration::from_millis(10);
            let mut iv = interval_at(start, p);
            iv.set_missed_tick_behavior(MissedTickBehavior::Delay);
            assert_eq!(iv.tick().await, start);
            std::thread::sleep(Duration::from_millis(35));
            let late = iv.tick().await;
            assert_eq!(late, start + p);
            let resumed_at = Instant::now();
            let next = iv.tick().await;
            // Scheduled one period after the late tick was taken (after the 35 ms stall).
            assert!(next >= start + Duration::from_millis(35) + p && next <= resumed_at + p);
            assert_eq!(iv.tick().await, next + p);
        });
    });
}

#[test]
fn interval_skip_drops_missed_ticks() {
    with_timeout(DEADLINE, || {
        let rt = runtime(1);
        rt.block_on(async {
            let start = Instant::now();
            let p = Duration::from_millis(10);
            let mut iv = interval_at(start, p);
            iv.set_missed_tick_behavior(MissedTickBehavior::Skip);
            assert_eq!(iv.tick().await, start);
            std::thread::sleep(Duration::from_millis(35));
            assert_eq!(iv.tick().await, start + p);
            let after = Instant::now();
            let next = iv.tick().await;
            let k = (next - start).as_nanos() / p.as_nanos();
            assert_eq!(next, start + p * k as u32, "still on the original schedule");
            assert!(
                next > after && next <= after + p,
                "the next future tick, not a missed one"
            );
        });
    });
}

#[test]
#[should_panic(expected = "the period must be greater than zero")]
fn interval_rejects_a_zero_period() {
    let _ = interval(Duration::ZERO);
}

#[test]
fn timers_work_outside_any_runtime() {
    with_timeout(DEADLINE, || {
        let start = Instant::now();
        futures::executor::block_on(sleep(Duration::from_millis(15)));
        assert!(start.elapsed() >= Duration::from_millis(15));
        let res = futures::executor::block_on(timeout(Duration::from_millis(10), pending::<()>()));
        assert!(res.is_err());
        // From several plain threads at once.
        let threads: Vec<_> = (0..4u64)
            .map(|i| {
                std::thread::spawn(move || {
                    let deadline = Instant::now() + Duration::from_millis(5 * i);
                    futures::executor::block_on(sleep_until(deadline));
                    Instant::now() >= deadline
                })
            })
            .collect();
        for t in threads {
            assert!(t.join().unwrap());
        }
    });
}

#[test]
fn a_sleep_outliving_its_runtime_still_completes() {
    with_timeout(DEADLINE, || {
        let rt = runtime(1);
        let mut s = Box::pin(sleep(Duration::from_millis(30)));
        {
            let _enter = rt.enter();
            let waker = Waker::noop();
            assert!(s
                .as_mut()
                .poll(&mut Context::from_waker(waker))
                .is_pending());
        }
        assert_eq!(rt.metrics().num_timers(), 1);
        drop(rt);
        // The runtime's driver is gone; the sleep moves to the fallback driver.
        let start = Instant::now();
        futures::executor::block_on(poll_fn(|cx| s.as_mut().poll(cx)));
        assert!(start.elapsed() < LATE + Duration::from_millis(30));
    });
}

#[test]
fn an_idle_runtime_with_a_pending_timer_does_not_wake_up() {
    with_timeout(DEADLINE, || {
        let rt = runtime(2);
        let m = rt.metrics();
        let h = rt.spawn(sleep(Duration::from_secs(3600)));
        wait_until("the timer is registered", || m.num_timers() == 1);
        wait_all_parked(&rt);
        let parks: Vec<u64> = (0..2).map(|i| m.worker_park_count(i)).collect();
        std::thread::sleep(Duration::from_millis(300));
        let after: Vec<u64> = (0..2).map(|i| m.worker_park_count(i)).collect();
        assert_eq!(parks, after, "a worker woke up with nothing due");
        h.abort();
    });
}

#[test]
fn reset_moves_the_deadline() {
    with_timeout(DEADLINE, || {
        let rt = runtime(1);
        rt.block_on(async {
            let mut s = sleep(Duration::from_secs(3600));
            assert!(timeout(Duration::from_millis(5), &mut s).await.is_err());
            let target = Instant::now() + Duration::from_millis(10);
            s.reset(target);
            (&mut s).await;
            assert!(Instant::now() >= target && s.is_elapsed());
            // Polling a completed sleep again is Ready at once.
            poll_fn(|cx| Pin::new(&mut s).poll(cx)).await;
        });
    });
}

#[test]
fn budget_timeouts_still_use_their_duration() {
    use memkit_async::{MkAllocError, MkBackpressure, MkBudget};
    with_timeout(DEADLINE, || {
        let rt = runtime(2);
        rt.block_on(async {
            let budget =
                MkBudget::new(1000).with_policy(MkBackpressure::Timeout(Duration::from_millis(30)));
            let held = budget.try_acquire(1000).unwrap();
            let start = Instant::now();
            let err = budget.acquire(10).await.unwrap_err();
            assert!(matches!(err, MkAllocError::TimedOut { .. }), "{err:?}");
            assert!(start.elapsed() >= Duration::from_millis(30));
            drop(held);
        });
        assert_eq!(rt.metrics().num_timers(), 0);
    });
}
