//! Admission control: a task spawned with `task::Builder::reserve(bytes)` is first polled only
//! once its reservation fits under its parent budget, and holds it until it ends.

mod common;

use common::*;
use memkit_async::task::{self, yield_now};
use memkit_async::{spawn_with_budget, MkAllocError};
use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
use std::sync::Arc;

const LIMIT: usize = 1 << 20;
const RESERVE: usize = LIMIT / 4;

/// Counts task bodies running at once and the most seen.
#[derive(Clone, Default)]
struct Meter {
    now: Arc<AtomicUsize>,
    max: Arc<AtomicUsize>,
}

impl Meter {
    fn enter(&self) {
        let now = self.now.fetch_add(1, SeqCst) + 1;
        self.max.fetch_max(now, SeqCst);
    }

    fn leave(&self) {
        self.now.fetch_sub(1, SeqCst);
    }

    fn now(&self) -> usize {
        self.now.load(SeqCst)
    }

    fn max(&self) -> usize {
        self.max.load(SeqCst)
    }
}

#[test]
fn reservations_of_a_quarter_of_the_limit_admit_exactly_four_tasks_at_once() {
    with_timeout(DEADLINE, || {
        const TASKS: usize = 32;
        let rt = runtime_with_limit(2, LIMIT);
        let meter = Meter::default();
        let gate = Gate::new();
        let handles: Vec<_> = (0..TASKS)
            .map(|i| {
                let (meter, gate) = (meter.clone(), gate.clone());
                task::Builder::new()
                    .reserve(RESERVE)
                    .spawn_on(
                        async move {
                            meter.enter();
                            gate.wait().await;
                            for _ in 0..3 {
                                yield_now().await;
                            }
                            meter.leave();
                            i
                        },
                        rt.handle(),
                    )
                    .expect("a quarter of the limit can be admitted")
            })
            .collect();

        let m = rt.metrics();
        wait_until("four tasks run and the others queue for admission", || {
            meter.now() == 4
                && m.tasks_awaiting_admission() == TASKS - 4
                && m.memory_waiting() == TASKS - 4
        });
        assert_eq!(m.memory_used(), LIMIT, "four reservations fill the limit");
        assert_eq!(meter.max(), 4);

        gate.open();
        let outputs: Vec<usize> = handles
            .into_iter()
            .map(|h| rt.block_on(h).expect("task"))
            .collect();
        assert_eq!(outputs, (0..TASKS).collect::<Vec<_>>());
        assert_eq!(meter.max(), 4, "never more than four at once");
        assert_eq!(meter.now(), 0);
        assert_eq!(m.tasks_awaiting_admission(), 0);
        assert_eq!(
            (m.memory_used(), m.memory_peak(), m.memory_waiting()),
            (0, LIMIT, 0)
        );
    });
}

#[test]
fn a_task_waiting_for_admission_is_not_polled_and_can_be_aborted() {
    with_timeout(DEADLINE, || {
        let rt = runtime_with_limit(2, LIMIT);
        let m = rt.metrics();
        let gate = Gate::new();
        let g = gate.clone();
        let holder = task::Builder::new()
            .reserve(LIMIT)
            .spawn_on(async move { g.wait().await }, rt.handle())
            .unwrap();
        wait_until("the holder is admitted", || {
            m.tasks_awaiting_admission() == 0 && m.memory_used() == LIMIT
        });

        let queued: Vec<(Probe, _)> = (0..2)
            .map(|i| {
                let probe = Probe::new();
                let handle = task::Builder::new()
                    .reserve(1)
                    .spawn_on(probe.track(async move { i }), rt.handle())
                    .unwrap();
                (probe, handle)
            })
            .collect();
        assert_eq!(m.tasks_awaiting_admission(), 2, "counted from spawn");
        wait_until("both queue on the runtime budget", || {
            m.memory_waiting() == 2
        });
        assert_eq!(queued[0].0.polls.get(), 0, "not admitted, not polled");
        assert_eq!(queued[1].0.polls.get(), 0, "not admitted, not polled");

        let (probe0, first) = &queued[0];
        first.abort();
        // The worker running the abort leaves the queues just before it drops the future:
        // wait for both.
        wait_until(
            "the aborted task leaves the queues and its future is dropped",
            || {
                m.tasks_awaiting_admission() == 1
                    && m.memory_waiting() == 1
                    && probe0.drops.get() == 1
            },
        );
        assert_eq!(probe0.polls.get(), 0, "its future is dropped unpolled");

        gate.open();
        rt.block_on(holder).unwrap();
        let mut queued = queued.into_iter();
        let (_, first) = queued.next().unwrap();
        assert!(rt.block_on(first).unwrap_err().is_cancelled());
        let (probe1, second) = queued.next().unwrap();
        assert_eq!(rt.block_on(second).unwrap(), 1);
        assert_eq!(
            probe1.polls.get(),
            1,
            "admitted, then run once to completion"
        );
        assert_eq!(m.tasks_awaiting_admission(), 0);
        assert_eq!((m.memory_used(), m.memory_waiting()), (0, 0));
    });
}

#[test]
fn a_reservation_above_the_limit_is_refused_by_spawn() {
    with_timeout(DEADLINE, || {
        let rt = runtime_with_limit(2, LIMIT);
        let m = rt.metrics();
        let err = task::Builder::new()
            .reserve(LIMIT + 1)
            .spawn_on(async {}, rt.handle())
            .map(drop)
            .unwrap_err();
        assert_eq!(
            err,
            MkAllocError::ExceedsLimit {
                requested: LIMIT + 1,
                limit: LIMIT
            }
        );
        assert!(err.to_string().contains("never fit"), "{err}");
        assert_eq!(m.tasks_awaiting_admission(), 0);
        assert_eq!(m.num_alive_tasks(), 0, "nothing was spawned");

        // Exactly the limit is fine.
        let ok = task::Builder::new()
            .reserve(LIMIT)
            .spawn_on(async { 5 }, rt.handle())
            .unwrap();
        assert_eq!(rt.block_on(ok).unwrap(), 5);

        // Inside a task with a budget, the reservation is checked against that budget.
        let nested = rt.block_on(async {
            spawn_with_budget(64 << 10, async {
                task::Builder::new()
                    .reserve(128 << 10)
                    .spawn(async {})
                    .map(drop)
            })
            .await
            .unwrap()
        });
        assert_eq!(
            nested,
            Err(MkAllocError::ExceedsLimit {
                requested: 128 << 10,
                limit: 64 << 10
            })
        );
        assert_eq!(m.tasks_awaiting_admission(), 0);
        assert_eq!((m.memory_used(), m.memory_peak()), (0, LIMIT));
    });
}
