//! Helpers shared by the `runtime_*` integration tests: time bounds, drop and poll counters,
//! and panic-message extraction. Each test file uses a different subset.
#![allow(dead_code)]

use std::any::Any;
use std::future::Future;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering::SeqCst};
use std::sync::{mpsc, Arc};
use std::task::{Context, Poll, Wake, Waker};
use std::thread;
use std::time::{Duration, Instant};

use memkit_async::{Builder, Runtime};

pub mod echo;

/// The bound on any single wait in these tests. Generous on purpose: exceeding it means a hang
/// (a lost wake-up, a deadlock), not a slow machine.
#[cfg(not(miri))]
pub const DEADLINE: Duration = Duration::from_secs(10);

/// Under Miri the clock advances 5 µs per interpreted basic block, so ordinary work reads as
/// seconds; a real hang still fails fast, since Miri skips its clock ahead while every thread
/// is blocked.
#[cfg(miri)]
pub const DEADLINE: Duration = Duration::from_secs(600);

/// Runs `body` on a thread of its own and fails the test if it has not returned within
/// `limit`, so a hang fails with a message instead of blocking the whole test binary.
/// A panic in `body` is re-raised here.
pub fn with_timeout<T: Send + 'static>(
    limit: Duration,
    body: impl FnOnce() -> T + Send + 'static,
) -> T {
    let (tx, rx) = mpsc::channel();
    let name = format!("{}-body", thread::current().name().unwrap_or("test"));
    thread::Builder::new()
        .name(name)
        .spawn(move || {
            let _ = tx.send(catch_unwind(AssertUnwindSafe(body)));
        })
        .expect("spawn the test body thread");
    match rx.recv_timeout(limit) {
        Ok(Ok(value)) => value,
        Ok(Err(payload)) => std::panic::resume_unwind(payload),
        Err(_) => panic!(
            "the test body did not finish within {limit:?}: the runtime hung (lost wake-up, \
             deadlock or a shutdown that never returns)"
        ),
    }
}

/// Polls `cond` every millisecond until it holds; fails with `what` after [`DEADLINE`].
#[track_caller]
pub fn wait_until(what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + DEADLINE;
    while !cond() {
        if Instant::now() > deadline {
            panic!("timed out after {DEADLINE:?} waiting until {what}");
        }
        thread::sleep(Duration::from_millis(1));
    }
}

/// A shared counter.
#[derive(Clone, Default)]
pub struct Counter(pub Arc<AtomicUsize>);

impl Counter {
    pub fn new() -> Counter {
        Counter::default()
    }

    pub fn get(&self) -> usize {
        self.0.load(SeqCst)
    }

    pub fn inc(&self) -> usize {
        self.0.fetch_add(1, SeqCst) + 1
    }
}

/// A shared flag.
#[derive(Clone, Default)]
pub struct Flag(pub Arc<AtomicBool>);

impl Flag {
    pub fn new() -> Flag {
        Flag::default()
    }

    pub fn get(&self) -> bool {
        self.0.load(SeqCst)
    }

    pub fn set(&self) {
        self.0.store(true, SeqCst)
    }
}

/// Increments its counter when dropped: put one in a future or an output to count drops.
pub struct DropCount(pub Counter);

impl Drop for DropCount {
    fn drop(&mut self) {
        self.0.inc();
    }
}

/// Wraps a future, counting its polls and its drop. Reports a poll after `Ready` (which a
/// correct executor never does) through `polled_after_ready`, and a poll that overlaps another
/// poll of the same future (two threads running one task) through `concurrent_polls`.
pub struct Tracked<F> {
    /// `None` only inside `drop`, which drops the future before counting the drop.
    inner: Option<Pin<Box<F>>>,
    pub polls: Counter,
    pub pending_seen: Flag,
    pub drops: Counter,
    done: bool,
    in_poll: Arc<AtomicBool>,
    pub polled_after_ready: Flag,
    pub concurrent_polls: Flag,
}

/// The counters of a [`Tracked`] future, kept by the test while the future moves into a task.
#[derive(Clone, Default)]
pub struct Probe {
    pub polls: Counter,
    pub pending_seen: Flag,
    pub drops: Counter,
    pub polled_after_ready: Flag,
    pub concurrent_polls: Flag,
}

impl Probe {
    pub fn new() -> Probe {
        Probe::default()
    }

    /// Wraps `future` so this probe observes it.
    pub fn track<F: Future>(&self, future: F) -> Tracked<F> {
        Tracked {
            inner: Some(Box::pin(future)),
            polls: self.polls.clone(),
            pending_seen: self.pending_seen.clone(),
            drops: self.drops.clone(),
            done: false,
            in_poll: Arc::new(AtomicBool::new(false)),
            polled_after_ready: self.polled_after_ready.clone(),
            concurrent_polls: self.concurrent_polls.clone(),
        }
    }

    /// Fails if the executor misbehaved with any future tracked by this probe.
    #[track_caller]
    pub fn assert_sound(&self) {
        assert!(
            !self.polled_after_ready.get(),
            "a future was polled after it returned Ready"
        );
        assert!(
            !self.concurrent_polls.get(),
            "a future was polled by two threads at once"
        );
    }
}

impl<F: Future> Future for Tracked<F> {
    type Output = F::Output;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        if self.done {
            self.polled_after_ready.set();
        }
        if self.in_poll.swap(true, SeqCst) {
            self.concurrent_polls.set();
        }
        self.polls.inc();
        let out = self
            .inner
            .as_mut()
            .expect("polled during drop")
            .as_mut()
            .poll(cx);
        match out {
            Poll::Ready(_) => self.done = true,
            Poll::Pending => self.pending_seen.set(),
        }
        self.in_poll.store(false, SeqCst);
        out
    }
}

impl<F> Drop for Tracked<F> {
    fn drop(&mut self) {
        // The future (and whatever it owns) is gone before the drop is counted, so a test that
        // sees the count also sees the future's captures released.
        self.inner = None;
        self.drops.inc();
    }
}

/// A waker that counts its wake-ups.
pub struct CountingWaker(pub Counter);

impl Wake for CountingWaker {
    fn wake(self: Arc<Self>) {
        self.0.inc();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        self.0.inc();
    }
}

/// A waker and the counter of its wake-ups.
pub fn counting_waker() -> (Waker, Counter) {
    let count = Counter::new();
    (Waker::from(Arc::new(CountingWaker(count.clone()))), count)
}

/// The message of a panic payload (`&str` or `String`), or `"<non-string payload>"`.
pub fn panic_message(payload: &(dyn Any + Send)) -> String {
    if let Some(s) = payload.downcast_ref::<&str>() {
        s.to_string()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "<non-string payload>".to_string()
    }
}

/// Runs `f`, which must panic, and returns its panic message.
#[track_caller]
pub fn expect_panic<R>(f: impl FnOnce() -> R) -> String {
    match catch_unwind(AssertUnwindSafe(f)) {
        Ok(_) => panic!("expected a panic, but the call returned"),
        Err(payload) => panic_message(&*payload),
    }
}

/// Thread start and stop counters hooked into a runtime's builder.
#[derive(Clone, Default)]
pub struct ThreadCounts {
    pub starts: Counter,
    pub stops: Counter,
}

impl ThreadCounts {
    /// Installs the counters as `on_thread_start` / `on_thread_stop`.
    pub fn install(builder: &mut Builder) -> ThreadCounts {
        let counts = ThreadCounts::default();
        let starts = counts.starts.clone();
        let stops = counts.stops.clone();
        builder
            .on_thread_start(move || {
                starts.inc();
            })
            .on_thread_stop(move || {
                stops.inc();
            });
        counts
    }
}

/// A runtime with `workers` worker threads.
pub fn runtime(workers: usize) -> Runtime {
    Builder::new()
        .worker_threads(workers)
        .build()
        .expect("build a runtime")
}

/// A runtime with `workers` worker threads and thread start/stop counters; returns once every
/// worker has started.
pub fn counted_runtime(workers: usize) -> (Runtime, ThreadCounts) {
    let mut builder = Builder::new();
    builder.worker_threads(workers);
    let counts = ThreadCounts::install(&mut builder);
    let rt = builder.build().expect("build a runtime");
    wait_until("every worker ran on_thread_start", || {
        counts.starts.get() == workers
    });
    (rt, counts)
}

/// Waits until every worker of `rt` is parked.
#[track_caller]
pub fn wait_all_parked(rt: &Runtime) {
    let m = rt.metrics();
    let n = m.num_workers();
    wait_until("every worker is parked", || m.num_parked_workers() == n);
}

/// A one-way gate: futures from [`Gate::wait`] stay pending (without being polled again) until
/// the test calls [`Gate::open`], which wakes them all once. Bound waits on it with the test's
/// own deadline ([`with_timeout`], [`wait_until`]).
#[derive(Clone, Default)]
pub struct Gate(Arc<std::sync::Mutex<GateState>>);

#[derive(Default)]
pub struct GateState {
    open: bool,
    waiters: Vec<Waker>,
}

impl Gate {
    pub fn new() -> Gate {
        Gate::default()
    }

    /// Opens the gate for good and wakes every waiting future.
    pub fn open(&self) {
        let waiters = {
            let mut state = self.0.lock().unwrap();
            state.open = true;
            std::mem::take(&mut state.waiters)
        };
        for waker in waiters {
            waker.wake();
        }
    }

    pub fn is_open(&self) -> bool {
        self.0.lock().unwrap().open
    }

    /// Resolves once the gate is open (at once if it already is).
    pub fn wait(&self) -> GateWait {
        GateWait(self.clone())
    }
}

/// The future returned by [`Gate::wait`].
pub struct GateWait(Gate);

impl Future for GateWait {
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let mut state = (self.0).0.lock().unwrap();
        if state.open {
            return Poll::Ready(());
        }
        if !state.waiters.iter().any(|w| w.will_wake(cx.waker())) {
            state.waiters.push(cx.waker().clone());
        }
        Poll::Pending
    }
}

/// A runtime with `workers` worker threads and a root budget (`memory_limit`) of `limit` bytes.
pub fn runtime_with_limit(workers: usize, limit: usize) -> Runtime {
    Builder::new()
        .worker_threads(workers)
        .memory_limit(limit)
        .build()
        .expect("build a runtime")
}

/// `spawn_with_budget(bytes, future)` on `rt`, called from outside the runtime.
pub fn spawn_budgeted<F>(
    rt: &Runtime,
    bytes: usize,
    future: F,
) -> memkit_async::JoinHandle<F::Output>
where
    F: Future + Send + 'static,
    F::Output: Send + 'static,
{
    let _enter = rt.enter();
    memkit_async::spawn_with_budget(bytes, future)
}

/// Yields, spawning a task that blocks this worker's thread for a millisecond before each
/// yield (so the other worker steals from this queue), until the calling task resumes on
/// another worker: `true`, or `false` after 1000 tries. `check` runs after every resumption.
pub async fn migrate(mut check: impl FnMut()) -> bool {
    let first = memkit_async::runtime::worker_index().expect("called inside a task");
    for _ in 0..1000 {
        let _hog = memkit_async::spawn(async { thread::sleep(Duration::from_millis(1)) });
        memkit_async::task::yield_now().await;
        check();
        if memkit_async::runtime::worker_index() != Some(first) {
            return true;
        }
    }
    false
}
