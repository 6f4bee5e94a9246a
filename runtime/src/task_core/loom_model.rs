//! Loom models of the task state machine (`state.rs`) driven through the real task code:
//! `new_task`, `Notified::run`, the task wakers, `JoinHandle` and `OwnedTasks`, with a small
//! test scheduler (a locked `VecDeque` run queue) in place of the work-stealing one.
//!
//! Run with
//! `RUSTFLAGS="--cfg loom" CARGO_TARGET_DIR=target/loom cargo test -p memkit-async-runtime --release --lib loom`.
//!
//! Every model checks, on every interleaving:
//! - the future is dropped exactly once, every output that was produced is dropped exactly once,
//!   and the task allocation is freed (the scheduler handle stored in it is dropped), with the
//!   owned-task list and the run queue empty at the end;
//! - no lost wake-up: after the threads join, the queue is drained, and a task woken after its
//!   last `Pending` has been polled again (it completed);
//! - no data race on the task's memory: the future, the output and every join-waker clone carry
//!   a loom `UnsafeCell` that is written on poll and drop, so an access not ordered by the
//!   state machine is reported as a causality violation. The engine catches panics from user
//!   code, so such violations are also recorded in `Counters` and re-checked at the end.
//!
//! The instrumentation counters are plain std atomics: they only record what happened and need
//! no exploring. All synchronisation between the model threads goes through loom types.

use super::{new_task, Header, Id, JoinError, JoinHandle, Notified, OwnedTasks, Schedule, Task};
use loom::cell::UnsafeCell;
use loom::sync::Mutex;
use loom::thread;
use std::any::Any;
use std::collections::VecDeque;
use std::future::Future;
use std::panic::{catch_unwind, resume_unwind, AssertUnwindSafe};
use std::pin::Pin;
use std::ptr::NonNull;
use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
use std::sync::Arc;
use std::task::{Context, Poll, RawWaker, RawWakerVTable, Waker};

// ---------------------------------------------------------------------------------------------
// Instrumentation
// ---------------------------------------------------------------------------------------------

/// What happened to one task in one execution.
#[derive(Default)]
struct Counters {
    /// Times the future was polled.
    polls: AtomicUsize,
    /// Times the future returned `Ready` (each produces one output).
    ready: AtomicUsize,
    future_drops: AtomicUsize,
    output_drops: AtomicUsize,
    /// Drops of the scheduler handle stored in the task cell: 1 once the task is deallocated.
    sched_drops: AtomicUsize,
    /// Wake-ups received by the join wakers, by waker number.
    join_woken: [AtomicUsize; 2],
    /// Loom failures raised inside code whose panics the engine catches.
    violations: std::sync::Mutex<Vec<String>>,
}

impl Counters {
    fn new() -> Arc<Counters> {
        Arc::new(Counters::default())
    }

    fn get(counter: &AtomicUsize) -> usize {
        counter.load(SeqCst)
    }

    fn record(&self, payload: &(dyn Any + Send)) {
        let msg = payload
            .downcast_ref::<String>()
            .cloned()
            .or_else(|| payload.downcast_ref::<&str>().map(|s| s.to_string()))
            .unwrap_or_else(|| "non-string panic".to_string());
        self.violations.lock().unwrap().push(msg);
    }

    /// A tracked write to `cell`: loom panics if it is not ordered after every earlier access.
    fn write(&self, cell: &UnsafeCell<()>) {
        self.track(|| cell.with_mut(|_| ()));
    }

    /// A tracked read of `cell`.
    fn read(&self, cell: &UnsafeCell<()>) {
        self.track(|| cell.with(|_| ()));
    }

    /// Records a loom failure in `access` and re-raises it, unless the thread is already
    /// unwinding (a second panic in a destructor would abort the whole test binary).
    fn track(&self, access: impl FnOnce()) {
        if let Err(payload) = catch_unwind(AssertUnwindSafe(access)) {
            self.record(&*payload);
            if !std::thread::panicking() {
                resume_unwind(payload);
            }
        }
    }

    fn assert_no_violation(&self) {
        let v = self.violations.lock().unwrap();
        assert!(v.is_empty(), "loom violations inside task code: {v:?}");
    }
}

// ---------------------------------------------------------------------------------------------
// Test scheduler
// ---------------------------------------------------------------------------------------------

/// The run queue and owned-task list shared by the model threads.
struct Rt {
    queue: Mutex<VecDeque<Notified>>,
    owned: OwnedTasks,
}

/// The scheduler handle stored in the task cell; its drop marks the task's deallocation.
struct TestSched {
    rt: Arc<Rt>,
    counters: Arc<Counters>,
}

impl Drop for TestSched {
    fn drop(&mut self) {
        self.counters.sched_drops.fetch_add(1, SeqCst);
    }
}

impl Schedule for TestSched {
    fn schedule(&self, task: Notified) {
        self.rt.queue.lock().unwrap().push_back(task);
    }

    unsafe fn release(&self, task: NonNull<Header>) -> Option<Task> {
        // SAFETY: forwarded caller contract.
        unsafe { self.rt.owned.remove(task) }
    }
}

impl Rt {
    fn new() -> Arc<Rt> {
        Arc::new(Rt {
            queue: Mutex::new(VecDeque::new()),
            owned: OwnedTasks::new(1),
        })
    }

    /// Spawns as the runtime does: bind to the owned list, then queue the first `Notified`.
    fn spawn(self: &Arc<Self>, future: TestFuture) -> JoinHandle<Output> {
        let counters = future.counters.clone();
        let sched = TestSched {
            rt: self.clone(),
            counters,
        };
        let (task, notified, join) = new_task(future, sched, fixed_shard_id(), None);
        match self.owned.bind(task) {
            Ok(()) => self.queue.lock().unwrap().push_back(notified),
            Err(task) => {
                // As `Handle::spawn_task` after shutdown: the task completes as cancelled.
                drop(notified);
                task.shutdown();
            }
        }
        join
    }

    fn pop(&self) -> Option<Notified> {
        self.queue.lock().unwrap().pop_front()
    }

    /// Runs queued tasks until the queue is empty.
    fn run_all(&self) {
        while let Some(task) = self.pop() {
            task.run();
        }
    }

    /// Drops the queued references without running them (a scheduler that went away).
    fn drop_queued(&self) {
        let queued: Vec<Notified> = self.queue.lock().unwrap().drain(..).collect();
        drop(queued);
    }
}

/// A fresh id that lands in shard 0 of the owned list: the shard (and so the order of the
/// lock operations in `close_and_shutdown_all`) must be the same in every execution, or loom
/// sees a non-deterministic model. Ids are process-global and tests run in parallel, so draw
/// until one fits.
fn fixed_shard_id() -> Id {
    loop {
        let id = Id::next();
        if id.as_u64() % 256 == 0 {
            return id;
        }
    }
}

/// End-of-execution checks, after every thread joined and every handle and waker is gone.
fn finish(rt: &Arc<Rt>, c: &Counters) {
    // No lost wake-up and nothing left behind: whatever is still queued runs now.
    rt.run_all();
    assert!(rt.queue.lock().unwrap().is_empty());
    assert_eq!(
        rt.owned.len(),
        0,
        "a completed task is still in the owned list"
    );
    assert_eq!(Counters::get(&c.future_drops), 1, "future dropped != once");
    assert_eq!(
        Counters::get(&c.output_drops),
        Counters::get(&c.ready),
        "output dropped != once per output produced"
    );
    assert!(Counters::get(&c.ready) <= 1, "future returned Ready twice");
    assert_eq!(
        Counters::get(&c.sched_drops),
        1,
        "task not deallocated (or twice)"
    );
    assert_eq!(Arc::strong_count(rt), 1, "a scheduler handle leaked");
    c.assert_no_violation();
}

// ---------------------------------------------------------------------------------------------
// Future, output and wakers
// ---------------------------------------------------------------------------------------------

/// The task's output: tracked memory, counted drop.
struct Output {
    counters: Arc<Counters>,
    cell: UnsafeCell<()>,
}

impl Drop for Output {
    fn drop(&mut self) {
        self.counters.write(&self.cell);
        self.counters.output_drops.fetch_add(1, SeqCst);
    }
}

/// Wakes the task once opened; the standard register-then-check pattern under a lock, so any
/// lost wake-up is the engine's.
struct Gate {
    state: Mutex<(bool, Option<Waker>)>,
}

impl Gate {
    fn new() -> Arc<Gate> {
        Arc::new(Gate {
            state: Mutex::new((false, None)),
        })
    }

    fn open(&self) {
        let waker = {
            let mut s = self.state.lock().unwrap();
            s.0 = true;
            s.1.take()
        };
        if let Some(waker) = waker {
            waker.wake();
        }
    }

    /// `true` once open; otherwise registers the task's waker.
    fn poll(&self, cx: &Context<'_>) -> bool {
        let mut s = self.state.lock().unwrap();
        if s.0 {
            return true;
        }
        s.1 = Some(cx.waker().clone());
        false
    }
}

enum Behaviour {
    /// `Ready` once the gate is open.
    Gate(Arc<Gate>),
    /// Wakes itself and returns `Pending` this many times (a `yield_now`), then `Ready`.
    Yield(usize),
    /// Leaves a clone of its waker in the slot and returns `Ready` at once.
    Stash(Arc<Mutex<Option<Waker>>>),
}

struct TestFuture {
    counters: Arc<Counters>,
    cell: UnsafeCell<()>,
    behaviour: Behaviour,
}

impl TestFuture {
    fn new(counters: &Arc<Counters>, behaviour: Behaviour) -> TestFuture {
        TestFuture {
            counters: counters.clone(),
            cell: UnsafeCell::new(()),
            behaviour,
        }
    }
}

impl Future for TestFuture {
    type Output = Output;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Output> {
        let this = self.get_mut();
        let c = &*this.counters;
        c.write(&this.cell);
        c.polls.fetch_add(1, SeqCst);
        assert_eq!(Counters::get(&c.ready), 0, "future polled after Ready");
        let ready = match &mut this.behaviour {
            Behaviour::Gate(gate) => gate.poll(cx),
            Behaviour::Yield(0) => true,
            Behaviour::Yield(n) => {
                *n -= 1;
                cx.waker().wake_by_ref();
                false
            }
            Behaviour::Stash(slot) => {
                *slot.lock().unwrap() = Some(cx.waker().clone());
                true
            }
        };
        if !ready {
            return Poll::Pending;
        }
        c.ready.fetch_add(1, SeqCst);
        Poll::Ready(Output {
            counters: this.counters.clone(),
            cell: UnsafeCell::new(()),
        })
    }
}

impl Drop for TestFuture {
    fn drop(&mut self) {
        self.counters.write(&self.cell);
        self.counters.future_drops.fetch_add(1, SeqCst);
    }
}

/// One clone of a counting waker: every clone is its own allocation with tracked memory, so a
/// join-waker slot read racing its overwrite shows up as a causality violation.
struct WakerData {
    counters: Arc<Counters>,
    which: usize,
    cell: UnsafeCell<()>,
}

static COUNTING: RawWakerVTable = RawWakerVTable::new(cw_clone, cw_wake, cw_wake_by_ref, cw_drop);

fn counting_waker(counters: &Arc<Counters>, which: usize) -> Waker {
    let data = Box::new(WakerData {
        counters: counters.clone(),
        which,
        cell: UnsafeCell::new(()),
    });
    // SAFETY: `COUNTING` treats the data pointer as the `Box<WakerData>` made here.
    unsafe { Waker::from_raw(RawWaker::new(Box::into_raw(data).cast(), &COUNTING)) }
}

unsafe fn cw_clone(data: *const ()) -> RawWaker {
    // SAFETY: `data` is a live `WakerData` (vtable contract).
    let d = unsafe { &*data.cast::<WakerData>() };
    d.counters.read(&d.cell);
    let new = Box::new(WakerData {
        counters: d.counters.clone(),
        which: d.which,
        cell: UnsafeCell::new(()),
    });
    RawWaker::new(Box::into_raw(new).cast(), &COUNTING)
}

unsafe fn cw_wake(data: *const ()) {
    // SAFETY: forwarded vtable contract; `wake` consumes the waker.
    unsafe {
        cw_wake_by_ref(data);
        cw_drop(data);
    }
}

unsafe fn cw_wake_by_ref(data: *const ()) {
    // SAFETY: `data` is a live `WakerData` (vtable contract).
    let d = unsafe { &*data.cast::<WakerData>() };
    d.counters.read(&d.cell);
    d.counters.join_woken[d.which].fetch_add(1, SeqCst);
}

unsafe fn cw_drop(data: *const ()) {
    // SAFETY: `data` came from `Box::into_raw` and this is its last use.
    let d = unsafe { Box::from_raw(data.cast::<WakerData>().cast_mut()) };
    d.counters.write(&d.cell);
}

fn poll_join(jh: &mut JoinHandle<Output>, waker: &Waker) -> Poll<Result<Output, JoinError>> {
    Pin::new(jh).poll(&mut Context::from_waker(waker))
}

/// The join handle of a finished task must be ready; `Ok` iff the future returned `Ready`.
fn expect_joined(c: &Counters, res: Poll<Result<Output, JoinError>>) {
    match res {
        Poll::Ready(Ok(out)) => {
            assert_eq!(Counters::get(&c.ready), 1);
            drop(out);
        }
        Poll::Ready(Err(e)) => {
            assert!(e.is_cancelled(), "unexpected join error: {e:?}");
            assert_eq!(Counters::get(&c.ready), 0, "output produced but cancelled");
        }
        Poll::Pending => panic!("join handle pending after the task was drained"),
    }
}

/// Runs `f` under loom, with a preemption bound unless `LOOM_MAX_PREEMPTIONS` sets one, and
/// prints the number of executions explored.
fn model<F>(name: &str, preemptions: Option<usize>, f: F)
where
    F: Fn() + Sync + Send + 'static,
{
    let iterations = Arc::new(AtomicUsize::new(0));
    let mut builder = loom::model::Builder::new();
    if builder.preemption_bound.is_none() {
        builder.preemption_bound = preemptions;
    }
    let bound = builder.preemption_bound;
    let start = std::time::Instant::now();
    let it = iterations.clone();
    builder.check(move || {
        it.fetch_add(1, SeqCst);
        f();
    });
    println!(
        "loom model {name}: {} executions, preemption bound {bound:?}, {:?}",
        iterations.load(SeqCst),
        start.elapsed()
    );
}

// ---------------------------------------------------------------------------------------------
// Models
// ---------------------------------------------------------------------------------------------

/// 1. A worker polls (the future registers its waker and returns `Pending`) while another thread
///    wakes the task through the registered waker: the task must be polled again and complete.
#[test]
fn loom_wake_racing_poll() {
    model("wake_racing_poll", None, || {
        let c = Counters::new();
        let rt = Rt::new();
        let gate = Gate::new();
        let mut jh = rt.spawn(TestFuture::new(&c, Behaviour::Gate(gate.clone())));

        let worker = {
            let rt = rt.clone();
            thread::spawn(move || rt.run_all())
        };
        let waker = thread::spawn(move || gate.open());
        worker.join().unwrap();
        waker.join().unwrap();

        // Whatever the interleaving, the wake-up was not lost.
        rt.run_all();
        assert_eq!(
            Counters::get(&c.ready),
            1,
            "lost wake-up: task never completed"
        );
        let res = poll_join(&mut jh, Waker::noop());
        assert!(matches!(res, Poll::Ready(Ok(_))));
        expect_joined(&c, res);
        drop(jh);
        finish(&rt, &c);
    });
}

/// 1b. Two wake-ups of an idle task race each other and the re-poll: a worker wakes it by
///     reference through a waker clone and runs the queue, while the gate opens (a wake by
///     value). At most one `Notified` per `idle -> notified` edge (never a double submission),
///     and the last wake-up is not lost.
#[test]
fn loom_double_wake_racing_poll() {
    model("double_wake_racing_poll", None, || {
        let c = Counters::new();
        let rt = Rt::new();
        let gate = Gate::new();
        let jh = rt.spawn(TestFuture::new(&c, Behaviour::Gate(gate.clone())));
        // First poll here: the waker is registered.
        rt.run_all();
        assert_eq!(Counters::get(&c.polls), 1);

        let worker = {
            let rt = rt.clone();
            let gate = gate.clone();
            thread::spawn(move || {
                // A wake-up through a second route (wake_by_ref of a clone) while the gate opens.
                let w = gate.state.lock().unwrap().1.clone();
                if let Some(w) = w {
                    w.wake_by_ref();
                }
                rt.run_all();
            })
        };
        gate.open();
        worker.join().unwrap();

        rt.run_all();
        assert_eq!(
            Counters::get(&c.ready),
            1,
            "lost wake-up: task never completed"
        );
        // One poll per distinct `idle -> notified` edge at most: 1 + at most 2.
        assert!(Counters::get(&c.polls) <= 3);
        drop(jh);
        finish(&rt, &c);
    });
}

/// 2. The future leaves a waker clone behind and completes; another thread wakes it (by value
///    or by reference, then drops it) while the join handle is dropped on a third: no second
///    poll, and the allocation is freed by whoever drops the last reference.
fn wake_after_complete(by_val: bool) {
    let c = Counters::new();
    let rt = Rt::new();
    let slot = Arc::new(Mutex::new(None::<Waker>));
    let jh = rt.spawn(TestFuture::new(&c, Behaviour::Stash(slot.clone())));

    let worker = {
        let rt = rt.clone();
        thread::spawn(move || rt.run_all())
    };
    let waker = {
        let slot = slot.clone();
        thread::spawn(move || {
            let w = slot.lock().unwrap().take();
            if let Some(w) = w {
                if by_val {
                    w.wake();
                } else {
                    w.wake_by_ref();
                    drop(w);
                }
            }
        })
    };
    // The output is dropped either here or by the runtime.
    drop(jh);
    worker.join().unwrap();
    waker.join().unwrap();

    // If the waker thread ran before the poll, the waker is dropped here, after completion.
    drop(slot.lock().unwrap().take());
    rt.run_all();
    assert_eq!(Counters::get(&c.polls), 1, "task polled after it completed");
    finish(&rt, &c);
}

#[test]
fn loom_wake_by_val_after_complete() {
    model("wake_by_val_after_complete", None, || {
        wake_after_complete(true)
    });
}

#[test]
fn loom_wake_by_ref_after_complete() {
    model("wake_by_ref_after_complete", None, || {
        wake_after_complete(false)
    });
}

/// 3. `JoinHandle::abort` races the worker's poll (which completes, or first yields once):
///    the handle sees exactly one of output or cancellation, everything dropped once.
fn abort_racing_completion(yields: usize) {
    let c = Counters::new();
    let rt = Rt::new();
    let mut jh = rt.spawn(TestFuture::new(&c, Behaviour::Yield(yields)));

    let worker = {
        let rt = rt.clone();
        thread::spawn(move || rt.run_all())
    };
    jh.abort();
    worker.join().unwrap();

    rt.run_all();
    expect_joined(&c, poll_join(&mut jh, Waker::noop()));
    assert!(jh.is_finished());
    drop(jh);
    finish(&rt, &c);
}

#[test]
fn loom_abort_racing_completion() {
    model("abort_racing_completion", None, || {
        abort_racing_completion(0)
    });
}

#[test]
fn loom_abort_racing_yield() {
    model("abort_racing_yield", None, || abort_racing_completion(1));
}

/// 3b. Abort of a task that is idle (its first poll returned `Pending` and nobody else wakes
///     it), racing a worker that runs the queue and, with `open`, a wake-up through the
///     registered waker: the abort alone must get the future dropped.
fn abort_idle(open: bool) {
    let c = Counters::new();
    let rt = Rt::new();
    let gate = Gate::new();
    let mut jh = rt.spawn(TestFuture::new(&c, Behaviour::Gate(gate.clone())));
    rt.run_all();
    assert_eq!(Counters::get(&c.polls), 1);

    let worker = {
        let rt = rt.clone();
        let gate = gate.clone();
        thread::spawn(move || {
            if open {
                gate.open();
            }
            rt.run_all();
        })
    };
    jh.abort();
    worker.join().unwrap();

    rt.run_all();
    let res = poll_join(&mut jh, Waker::noop());
    if !open {
        assert!(matches!(&res, Poll::Ready(Err(e)) if e.is_cancelled()));
    }
    expect_joined(&c, res);
    drop(jh);
    // The gate still holds the task's waker when it never opened.
    drop(gate.state.lock().unwrap().1.take());
    finish(&rt, &c);
}

#[test]
fn loom_abort_idle() {
    model("abort_idle", None, || abort_idle(false));
}

#[test]
fn loom_abort_racing_wake() {
    model("abort_racing_wake", None, || abort_idle(true));
}

/// 3c. Abort from another thread while the join handle is dropped: the output (if produced)
///     is dropped by the runtime, the future exactly once.
#[test]
fn loom_abort_racing_join_drop() {
    model("abort_racing_join_drop", None, || {
        let c = Counters::new();
        let rt = Rt::new();
        let jh = Arc::new(rt.spawn(TestFuture::new(&c, Behaviour::Yield(0))));

        let worker = {
            let rt = rt.clone();
            thread::spawn(move || rt.run_all())
        };
        let aborter = {
            let jh = jh.clone();
            thread::spawn(move || jh.abort())
        };
        drop(jh);
        worker.join().unwrap();
        aborter.join().unwrap();
        finish(&rt, &c);
    });
}

/// 4. The join handle is dropped while the worker completes the task: the output is dropped
///    exactly once, by the runtime or by the handle.
fn join_drop_racing_completion(yields: usize) {
    let c = Counters::new();
    let rt = Rt::new();
    let jh = rt.spawn(TestFuture::new(&c, Behaviour::Yield(yields)));

    let worker = {
        let rt = rt.clone();
        thread::spawn(move || rt.run_all())
    };
    drop(jh);
    worker.join().unwrap();

    rt.run_all();
    assert_eq!(
        Counters::get(&c.ready),
        1,
        "lost wake-up: task never completed"
    );
    finish(&rt, &c);
}

#[test]
fn loom_join_drop_racing_completion() {
    model("join_drop_racing_completion", None, || {
        join_drop_racing_completion(0)
    });
}

#[test]
fn loom_join_drop_racing_yield() {
    model("join_drop_racing_yield", None, || {
        join_drop_racing_completion(1)
    });
}

/// 5. The join handle is polled (registering its waker, then re-registering a different one)
///    while the worker completes the task: either a poll returns the output, or the last
///    registered waker is woken. Never both missed.
fn join_poll_racing_completion(two_polls: bool) {
    let c = Counters::new();
    let rt = Rt::new();
    let mut jh = rt.spawn(TestFuture::new(&c, Behaviour::Yield(0)));

    let worker = {
        let rt = rt.clone();
        thread::spawn(move || rt.run_all())
    };
    let mut last = None;
    let mut got = None;
    for which in 0..if two_polls { 2 } else { 1 } {
        let waker = counting_waker(&c, which);
        match poll_join(&mut jh, &waker) {
            Poll::Ready(res) => {
                got = Some(res);
                break;
            }
            Poll::Pending => last = Some(which),
        }
    }
    worker.join().unwrap();

    match got {
        Some(res) => expect_joined(&c, Poll::Ready(res)),
        None => {
            let which = last.unwrap();
            assert!(
                Counters::get(&c.join_woken[which]) >= 1,
                "join handle returned Pending and its waker was never woken"
            );
            expect_joined(&c, poll_join(&mut jh, Waker::noop()));
        }
    }
    drop(jh);
    finish(&rt, &c);
}

#[test]
fn loom_join_poll_racing_completion() {
    model("join_poll_racing_completion", None, || {
        join_poll_racing_completion(false)
    });
}

#[test]
fn loom_join_repoll_racing_completion() {
    model("join_repoll_racing_completion", None, || {
        join_poll_racing_completion(true)
    });
}

/// 6. `OwnedTasks::close_and_shutdown_all` races a wake-up of an idle task (and, when
///    `run`, a worker that polls the woken task). The future is dropped exactly once,
///    whoever wins; queued references left after shutdown are run or dropped; no leak.
fn shutdown_racing_wake(run: bool, detached: bool) {
    let c = Counters::new();
    let rt = Rt::new();
    let gate = Gate::new();
    let mut jh = Some(rt.spawn(TestFuture::new(&c, Behaviour::Gate(gate.clone()))));
    // First poll: `Pending`, the waker is registered in the gate.
    rt.run_all();
    assert_eq!(Counters::get(&c.polls), 1);
    if detached {
        jh = None;
    }

    let waker = {
        let rt = rt.clone();
        thread::spawn(move || {
            gate.open();
            if run {
                rt.run_all();
            }
        })
    };
    let shutdown = {
        let rt = rt.clone();
        thread::spawn(move || rt.owned.close_and_shutdown_all())
    };
    waker.join().unwrap();
    shutdown.join().unwrap();

    if run {
        rt.run_all();
    } else {
        // As a scheduler that shut down: queued references are dropped, never run.
        rt.drop_queued();
    }
    if let Some(mut jh) = jh {
        expect_joined(&c, poll_join(&mut jh, Waker::noop()));
    }
    finish(&rt, &c);
}

#[test]
fn loom_shutdown_racing_wake() {
    model("shutdown_racing_wake", None, || {
        shutdown_racing_wake(false, false)
    });
}

#[test]
fn loom_shutdown_racing_wake_and_poll() {
    model("shutdown_racing_wake_and_poll", None, || {
        shutdown_racing_wake(true, false)
    });
}

#[test]
fn loom_shutdown_racing_wake_detached() {
    model("shutdown_racing_wake_detached", None, || {
        shutdown_racing_wake(true, true)
    });
}

/// 6b. Shutdown races the worker's poll of a task that yields once (`Pending` with a wake-up
///     to itself): shutdown finds the task queued, running or complete; a `Pending` poll that
///     finds it cancelled drops the future itself.
fn shutdown_racing_poll(detached: bool) {
    let c = Counters::new();
    let rt = Rt::new();
    let jh = rt.spawn(TestFuture::new(&c, Behaviour::Yield(1)));
    let mut jh = if detached {
        drop(jh);
        None
    } else {
        Some(jh)
    };

    let worker = {
        let rt = rt.clone();
        thread::spawn(move || rt.run_all())
    };
    let shutdown = {
        let rt = rt.clone();
        thread::spawn(move || rt.owned.close_and_shutdown_all())
    };
    worker.join().unwrap();
    shutdown.join().unwrap();

    rt.drop_queued();
    if let Some(jh) = &mut jh {
        expect_joined(&c, poll_join(jh, Waker::noop()));
    }
    drop(jh);
    finish(&rt, &c);
}

#[test]
fn loom_shutdown_racing_poll() {
    model("shutdown_racing_poll", None, || shutdown_racing_poll(false));
}

#[test]
fn loom_shutdown_racing_poll_detached() {
    model("shutdown_racing_poll_detached", None, || {
        shutdown_racing_poll(true)
    });
}

/// 7. A spawn races `close_and_shutdown_all`: the task is either bound before the list closes
///    (and shut down by it, or run first), or refused and shut down at spawn. Never run after
///    shutdown without being cancelled or completed, never leaked in a closed list.
#[test]
fn loom_spawn_racing_shutdown() {
    model("spawn_racing_shutdown", None, || {
        let c = Counters::new();
        let rt = Rt::new();

        let spawner = {
            let rt = rt.clone();
            let c = c.clone();
            thread::spawn(move || {
                let mut jh = rt.spawn(TestFuture::new(&c, Behaviour::Yield(0)));
                rt.run_all();
                let res = poll_join(&mut jh, Waker::noop());
                // Pending only while the shutdown thread, which claimed the task, is still
                // cancelling it: checked again after the join.
                if let Poll::Ready(res) = res {
                    expect_joined(&c, Poll::Ready(res));
                    None
                } else {
                    Some(jh)
                }
            })
        };
        rt.owned.close_and_shutdown_all();
        let jh = spawner.join().unwrap();

        rt.run_all();
        if let Some(mut jh) = jh {
            expect_joined(&c, poll_join(&mut jh, Waker::noop()));
        }
        finish(&rt, &c);
    });
}
