//! Loom models of the worker parking protocol: the real `park::Idle` (sleeper list, searching
//! and sleeping counters, fences), driven by worker loops that follow `worker.rs` step by step
//! (`run`, `steal`, `run_task`, `park`, `Shared::notify_parked`, `Shared::begin_shutdown`).
//!
//! What loom cannot run is replaced, keeping the orderings the protocol relies on:
//! - the run queues (crossbeam `Injector` and local `Worker`s) are one counter of queued tasks:
//!   a push is a `Release` increment, a pop a compare-exchange, `has_queued_work` a `SeqCst` load
//!   (as `Injector::is_empty` does);
//! - the crossbeam `Parker` is a token under a loom `Mutex` with a `Condvar`: the same single
//!   token, and an unpark happens-before the park it ends. (Not `loom::thread::park`: loom 0.7's
//!   `Thread::unpark` also makes a thread that is blocked on a *mutex* runnable, losing the
//!   token and tripping loom's own "expected to be able to acquire lock" assertion.)
//!
//! The current-thread flavour adds `block_on`'s future to the loop of its one worker
//! (`worker::run_loop` with a main, `current_thread::MainWaker`): its waker sets a flag, then
//! notifies like a push; the worker polls the future when it finds the flag set, and re-checks
//! the flag with the queues before it sleeps.
//!
//! The property: no lost wake-up. The worker that runs the last task shuts the runtime down
//! (as `begin_shutdown`: set the flag, unpark everyone). If a task were ever left queued while
//! every worker sleeps, no one would run it, shutdown would never come, and loom reports the
//! execution as a deadlock (every thread blocked).

use super::park::Idle;
use crate::sync::{lock, AtomicBool, AtomicUsize, Mutex, Ordering};
use loom::sync::Condvar;
use loom::thread;
use std::sync::Arc;

/// crossbeam's `Parker`/`Unparker` pair: one token, consumed by `park`.
struct Parker {
    token: Mutex<bool>,
    cv: Condvar,
}

impl Parker {
    fn new() -> Parker {
        Parker {
            token: Mutex::new(false),
            cv: Condvar::new(),
        }
    }

    fn park(&self) {
        let mut token = lock(&self.token);
        while !*token {
            token = self.cv.wait(token).unwrap();
        }
        *token = false;
    }

    fn unpark(&self) {
        *lock(&self.token) = true;
        self.cv.notify_one();
    }
}

struct Model {
    idle: Idle,
    /// Queued tasks.
    queued: AtomicUsize,
    /// Tasks run so far, and how many to run before shutting down.
    done: AtomicUsize,
    total: usize,
    /// Tasks that each of the first `spawning` tasks pushes while it runs (a wake-up or spawn
    /// from inside a worker).
    spawns_per_task: usize,
    spawning: usize,
    shutdown: AtomicBool,
    /// Each worker's parker.
    parkers: Vec<Parker>,
    /// `Shared::main_woken`, and the wake-ups `block_on`'s future has been sent.
    main_woken: AtomicBool,
    signals: AtomicUsize,
}

impl Model {
    fn new(workers: usize, initial: usize, spawning: usize, spawns_per_task: usize) -> Arc<Model> {
        Arc::new(Model {
            idle: Idle::new(workers),
            queued: AtomicUsize::new(0),
            done: AtomicUsize::new(0),
            total: initial + spawning * spawns_per_task,
            spawns_per_task,
            spawning,
            shutdown: AtomicBool::new(false),
            parkers: (0..workers).map(|_| Parker::new()).collect(),
            main_woken: AtomicBool::new(false),
            signals: AtomicUsize::new(0),
        })
    }

    fn unpark(&self, worker: usize) {
        self.parkers[worker].unpark();
    }

    fn is_shutdown(&self) -> bool {
        self.shutdown.load(Ordering::Acquire)
    }

    /// `Shared::begin_shutdown`.
    fn begin_shutdown(&self) {
        self.shutdown.store(true, Ordering::SeqCst);
        for worker in 0..self.parkers.len() {
            self.unpark(worker);
        }
    }

    /// `Shared::notify_parked`.
    fn notify_parked(&self) {
        if let Some(worker) = self.idle.notify_one() {
            self.unpark(worker);
        }
    }

    /// `Shared::has_queued_work`.
    fn has_queued_work(&self) -> bool {
        self.queued.load(Ordering::SeqCst) != 0
    }

    /// A push followed by `notify_parked`, as `schedule_remote` and `schedule_back` do.
    fn push(&self) {
        self.queued.fetch_add(1, Ordering::Release);
        self.notify_parked();
    }

    /// One more wake-up for `block_on`'s future, then `MainWaker::wake_by_ref`.
    fn wake_main(&self) {
        self.signals.fetch_add(1, Ordering::SeqCst);
        // An RMW, as `MainWaker` does: ordered after the worker's last `swap(false)`.
        self.main_woken.swap(true, Ordering::SeqCst);
        self.notify_parked();
    }

    fn pop(&self) -> bool {
        let mut n = self.queued.load(Ordering::Acquire);
        while n != 0 {
            match self
                .queued
                .compare_exchange(n, n - 1, Ordering::AcqRel, Ordering::Acquire)
            {
                Ok(_) => return true,
                Err(actual) => n = actual,
            }
        }
        false
    }
}

/// One worker thread, following `worker::Core`.
struct Worker {
    model: Arc<Model>,
    index: usize,
    searching: bool,
}

impl Worker {
    /// `Core::run`.
    fn run(&mut self) {
        while !self.model.is_shutdown() {
            // `next_task` (own queues, injector) or else `steal` (others' queues, injector).
            if self.model.pop() || self.steal() {
                self.run_task();
            } else {
                self.park();
            }
        }
    }

    /// `worker::run_loop` with a main (a current-thread `block_on`): polls the future whenever
    /// its flag is set; the future is ready once it has seen `needed` wake-ups.
    fn run_with_main(&mut self, needed: usize) {
        let m = self.model.clone();
        loop {
            if m.main_woken.load(Ordering::SeqCst) && m.main_woken.swap(false, Ordering::SeqCst) {
                if m.signals.load(Ordering::SeqCst) == needed {
                    return;
                }
            }
            if m.pop() || self.steal() {
                self.run_task();
            } else {
                self.park();
            }
        }
    }

    /// `Core::steal`: only searchers steal, and at most half the workers search.
    fn steal(&mut self) -> bool {
        if !self.searching {
            if !self.model.idle.transition_to_searching() {
                return false;
            }
            self.searching = true;
        }
        self.model.pop()
    }

    /// `Core::run_task`, then the task itself.
    fn run_task(&mut self) {
        let m = &*self.model;
        if std::mem::replace(&mut self.searching, false) && m.idle.transition_from_searching() {
            m.notify_parked();
        }
        let n = m.done.fetch_add(1, Ordering::AcqRel);
        if n < m.spawning {
            for _ in 0..m.spawns_per_task {
                m.push();
            }
        }
        if n + 1 == m.total {
            m.begin_shutdown();
        }
    }

    /// `Core::park`.
    fn park(&mut self) {
        let m = &*self.model;
        m.idle
            .register_sleeper(self.index, std::mem::replace(&mut self.searching, false));
        if m.has_queued_work() || m.is_shutdown() || m.main_woken.load(Ordering::SeqCst) {
            m.idle.unregister_sleeper(self.index);
            self.searching = true;
            return;
        }
        loop {
            m.parkers[self.index].park();
            if m.is_shutdown() || !m.idle.is_sleeping(self.index) {
                break;
            }
            // A stale unpark token from an earlier notification: still asleep.
        }
        m.idle.unregister_sleeper(self.index);
        self.searching = true;
    }
}

/// `workers` worker threads; the model thread pushes `initial` tasks as a remote spawner; the
/// first `spawning` tasks to run each push `spawns_per_task` more from their worker.
fn check(workers: usize, initial: usize, spawning: usize, spawns_per_task: usize, bound: usize) {
    let mut builder = loom::model::Builder::new();
    if builder.preemption_bound.is_none() {
        builder.preemption_bound = Some(bound);
    }
    let iterations = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let it = iterations.clone();
    let start = std::time::Instant::now();
    builder.check(move || {
        it.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let model = Model::new(workers, initial, spawning, spawns_per_task);
        let handles: Vec<_> = (0..workers)
            .map(|index| {
                let model = model.clone();
                thread::spawn(move || {
                    Worker {
                        model,
                        index,
                        searching: false,
                    }
                    .run();
                })
            })
            .collect();
        for _ in 0..initial {
            model.push();
        }
        for h in handles {
            h.join().unwrap();
        }
        assert_eq!(model.done.load(Ordering::SeqCst), model.total);
        assert_eq!(model.queued.load(Ordering::SeqCst), 0);
    });
    println!(
        "loom park model: {workers} workers, {initial} remote + {spawning}x{spawns_per_task} \
         local tasks: {} executions, preemption bound {:?}, {:?}",
        iterations.load(std::sync::atomic::Ordering::Relaxed),
        builder.preemption_bound,
        start.elapsed()
    );
}

/// A remote spawn races two workers going to sleep.
#[test]
fn loom_park_remote_spawn() {
    check(2, 1, 0, 0, 3);
}

/// Two remote spawns: the second may find the first woken worker still searching.
#[test]
fn loom_park_two_remote_spawns() {
    check(2, 2, 0, 0, 2);
}

/// A task pushes another from its worker while the other worker goes to sleep: the last
/// searcher hands the search on, and the local push wakes a sleeper.
#[test]
fn loom_park_local_spawn() {
    check(2, 1, 1, 1, 2);
}

/// A current-thread worker runs `block_on`'s future, which another thread wakes `wakes` times
/// while it also spawns `initial` tasks: the future must see every wake-up (a lost one leaves
/// the worker asleep for ever, which loom reports as a deadlock).
fn check_main(initial: usize, wakes: usize, bound: usize) {
    let mut builder = loom::model::Builder::new();
    if builder.preemption_bound.is_none() {
        builder.preemption_bound = Some(bound);
    }
    builder.check(move || {
        // Tasks never shut this model down: `block_on` returning ends it.
        let model = Model::new(1, usize::MAX - 1, 0, 0);
        // `drive` polls the future first.
        model.main_woken.store(true, Ordering::SeqCst);
        let worker = {
            let model = model.clone();
            thread::spawn(move || {
                Worker {
                    model,
                    index: 0,
                    searching: false,
                }
                .run_with_main(wakes);
            })
        };
        for _ in 0..initial {
            model.push();
        }
        for _ in 0..wakes {
            model.wake_main();
        }
        worker.join().unwrap();
        assert_eq!(model.signals.load(Ordering::SeqCst), wakes);
    });
}

/// `block_on`'s waker fires from another thread while the worker goes to sleep.
#[test]
fn loom_park_current_thread_main_wake() {
    check_main(0, 1, 3);
}

/// A remote spawn and two wake-ups of the future race the worker's sleep.
#[test]
fn loom_park_current_thread_spawn_and_wakes() {
    check_main(1, 2, 3);
}
