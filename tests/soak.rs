//! Soak test ("Correctness under stress"): random mixes of everything the runtime does, for a
//! bounded time, on a chain of runtimes that are each shut down either gracefully or mid-flight.
//!
//! Operations, picked at random with weights: `spawn` (sometimes an orchestrator that spawns and
//! awaits or aborts nested children), `spawn_with_budget`, `task::Builder` with a name, a byte or
//! shared budget, any of the four policies and an admission reservation, admission batches,
//! `abort`, panics injected inside tasks and blocking closures, wake-ups from foreign std threads
//! (oneshots completed from a thread, boxes sent to a thread and back, tasks spawned from a
//! thread), `MkAsyncBox` / `MkAsyncVec` allocations under `Wait`, `Fail`, `Timeout(short)` and
//! `Evict` (with a registered `MkEvictable` cache), channel hand-offs of boxes and of whole
//! `MkArena`s between tasks, `spawn_blocking`, `block_on` of a join handle, wakers that panic
//! (fired by the runtime's timers, its reactor, its shutdown and the fallback timer thread),
//! socket waits cancelled every way (polled once and dropped, timed out, aborted), and runtime
//! shutdown with tasks still running (`drop`, `shutdown_timeout`, `shutdown_background`, drop on
//! another thread).
//!
//! Checked: every spawned future (and blocking closure) created is dropped exactly once; every
//! object put in a box, vector or arena is dropped exactly once and unchanged; every budget (the
//! runtime roots included) is back to 0 bytes used and 0 requests waiting after each runtime;
//! every abandoned socket wait drops its waker at once, and a socket whose waits were cancelled
//! still receives every datagram sent to it;
//! `num_alive_tasks`, `tasks_waiting_for_memory` and `tasks_awaiting_admission` are 0 before a
//! graceful drop; RSS stays near its baseline; no panic other than the injected ones; no wait
//! runs past its bound. A watchdog thread prints the stuck state and exits the process with
//! status 1 if no progress counter moves for 15 s.
//!
//! Duration: `MEMKIT_SOAK_SECS` seconds. Unset, the test runs 5 s so that `cargo test
//! --workspace` stays short; CI runs the long soak in a separate step:
//! `MEMKIT_SOAK_SECS=60 cargo test --release --test soak`.
//! Seed: printed at start (with the summary, on stderr even when output is captured); replay the
//! same sequence of operations with `MEMKIT_SOAK_SEED=<seed>` (thread timing still varies).
//!
//! Rules the operations follow so that the test itself never deadlocks (a hang is then always
//! the engine's): a task never makes a `Wait` request while it holds memory in a budget shared
//! with others, except under a private budget far larger than all it allocates (and then only
//! when the runtime's root is large); a task holding an admission reservation never makes a
//! `Wait` request; nothing awaits a `Wait` request on the `Evict` pool, whose cache gives memory
//! back only to `Evict` requests; every other wait is bounded by its policy or by [`bounded`].

mod common;

use common::panic_message;
use futures::channel::{mpsc, oneshot};
use futures::future::{select, Either};
use futures::{FutureExt, StreamExt};
use memkit_async::net::UdpSocket;
use memkit_async::runtime::RuntimeMetrics;
use memkit_async::task::{self, yield_now};
use memkit_async::{
    spawn_with_budget, Builder, Handle, JoinError, JoinHandle, MkAllocError, MkArena, MkAsyncBox,
    MkAsyncChannel, MkAsyncReceiver, MkAsyncSender, MkAsyncVec, MkBackpressure, MkBudget,
    MkBudgetGuard, MkEvictable, MkSendError, Runtime,
};
use std::cmp::Reverse;
use std::collections::{BinaryHeap, VecDeque};
use std::fmt::Write as _;
use std::future::Future;
use std::io::Write as _;
use std::pin::{pin, Pin};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering::SeqCst};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, Once};
use std::task::{Context, Poll, Wake, Waker};
use std::thread;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

const KIB: usize = 1024;
const MIB: usize = 1024 * KIB;
/// Default run time when `MEMKIT_SOAK_SECS` is unset (CI sets 60).
const DEFAULT_SECS: u64 = 5;
/// The watchdog fails the run when no progress counter moved for this long.
const STALL: Duration = Duration::from_secs(15);
/// Bound on any single wait inside the test (a join, a receive, a foreign wake-up).
const WAIT_LIMIT: Duration = Duration::from_secs(10);
/// Bound on the end-of-runtime checks that wait for things to settle (below `STALL`).
const SETTLE: Duration = Duration::from_secs(10);
/// Allowed RSS growth over the whole run.
const RSS_SLACK: usize = 64 * MIB;
/// Top-level join handles the driver keeps before it waits for some to finish.
const MAX_OUTSTANDING: usize = 192;
/// Live futures (top-level and nested) before the driver waits.
const MAX_LIVE: u64 = 384;
/// Prefix of every injected panic's message (the panic hook keeps these quiet).
const INJECTED: &str = "soak: injected panic";

// ------------------------------------------------------------------------------------------
// Counters
// ------------------------------------------------------------------------------------------

macro_rules! counters {
    ($($name:ident => $label:literal,)*) => {
        /// A named counter; its label's first word groups it in the summary.
        #[derive(Clone, Copy, Debug, PartialEq, Eq)]
        enum C { $($name,)* }
        const LABELS: &[&str] = &[$($label,)*];
    };
}

counters! {
    OpSpawn => "op spawn",
    OpNest => "op spawn + nested children",
    OpSpawnBudget => "op spawn_with_budget",
    OpBuilder => "op task::Builder (name/budget/policy/reserve)",
    OpReserve => "op admission batch (reserve)",
    OpAbort => "op abort",
    OpPanic => "op panicking task",
    OpForeign => "op foreign-thread wake-ups",
    OpWait => "op alloc Wait",
    OpFail => "op alloc Fail",
    OpTimeout => "op alloc Timeout",
    OpEvict => "op alloc Evict",
    OpBoxes => "op channel of boxes",
    OpArenas => "op channel of arenas",
    OpBlocking => "op spawn_blocking",
    OpBlockOn => "op block_on(join handle)",
    OpWakerPanic => "op panicking wakers",
    OpSockets => "op cancelled socket waits",
    FaultPanic => "fault panics injected",
    FaultAbort => "fault aborts requested",
    FaultExceeds => "fault oversize requests refused (ExceedsLimit)",
    FaultWakerPanic => "fault panicking wakers fired",
    ShutdownDrop => "fault mid-flight shutdown: drop",
    ShutdownTimeout => "fault mid-flight shutdown: shutdown_timeout",
    ShutdownBackground => "fault mid-flight shutdown: shutdown_background",
    ShutdownThread => "fault mid-flight shutdown: drop on another thread",
    JoinOk => "join ok",
    JoinPanic => "join panicked (injected)",
    JoinCancelled => "join cancelled",
    AllocWait => "alloc ok under Wait",
    AllocFail => "alloc ok under Fail",
    AllocTimeout => "alloc ok under Timeout",
    AllocEvict => "alloc ok under Evict",
    ErrFail => "alloc Fail -> CapacityReached",
    ErrTimeout => "alloc Timeout -> TimedOut",
    ErrEvict => "alloc Evict -> CapacityReached",
    ErrTry => "alloc try_ refused (never waits)",
    Evicted => "alloc cache entries evicted",
    Acquired => "alloc MkBudget acquire/try_acquire served",
    BoxesSent => "flow boxes sent",
    BoxesReceived => "flow boxes received",
    SendsRefused => "flow channel sends refused (Fail, Timeout)",
    ArenasSent => "flow arenas sent",
    ArenasReceived => "flow arenas received",
    RemoteFrees => "flow boxes/arenas dropped on a foreign thread",
    ForeignWakes => "flow wake-ups from foreign threads",
    ForeignCanceled => "flow oneshots dropped by a foreign thread",
    ForeignSpawns => "flow tasks spawned from foreign threads",
    ForeignBlockOn => "flow memory waits on foreign threads",
    Admitted => "flow tasks admitted after reserve",
    SocketAbandoned => "flow socket waits polled once and dropped",
    SocketTimedOut => "flow socket waits timed out",
    Datagrams => "flow datagrams received after cancelled waits",
    Runtimes => "runtime created",
    Graceful => "runtime drained and dropped",
    FutCreated => "check futures created",
    FutDropped => "check futures dropped",
    ObjCreated => "check objects created",
    ObjDropped => "check objects dropped",
    BudgetsChecked => "check budgets back to 0",
    Failures => "check failures",
}

static COUNTS: [AtomicU64; LABELS.len()] = [const { AtomicU64::new(0) }; LABELS.len()];
/// Moves whenever anything happens; the watchdog watches it.
static PROGRESS: AtomicU64 = AtomicU64::new(0);

fn bump(c: C) {
    COUNTS[c as usize].fetch_add(1, SeqCst);
    PROGRESS.fetch_add(1, SeqCst);
}

fn get(c: C) -> u64 {
    COUNTS[c as usize].load(SeqCst)
}

fn live_futures() -> u64 {
    // Dropped first: a drop is never counted before its creation.
    let dropped = get(C::FutDropped);
    get(C::FutCreated).saturating_sub(dropped)
}

// ------------------------------------------------------------------------------------------
// Shared state for failures and the watchdog
// ------------------------------------------------------------------------------------------

static FAILURES: Mutex<Vec<String>> = Mutex::new(Vec::new());
static PHASE: Mutex<String> = Mutex::new(String::new());
static BUDGETS: Mutex<Vec<(String, MkBudget)>> = Mutex::new(Vec::new());
static METRICS: Mutex<Option<RuntimeMetrics>> = Mutex::new(None);
static OUTSTANDING: AtomicUsize = AtomicUsize::new(0);
static SEED: AtomicU64 = AtomicU64::new(0);

fn lk<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// Records a failure; the test fails at the end with every message.
fn fail(msg: String) {
    bump(C::Failures);
    let mut failures = lk(&FAILURES);
    if failures.len() < 64 {
        failures.push(msg);
    }
}

fn set_phase(phase: String) {
    *lk(&PHASE) = phase;
    PROGRESS.fetch_add(1, SeqCst);
}

/// Writes to the process's stderr directly: visible even when the harness captures output
/// (and from the watchdog, which exits the process).
fn say(msg: &str) {
    let _ = writeln!(std::io::stderr().lock(), "{msg}");
}

/// Keeps `budget` for the end-of-runtime check (and the watchdog's report).
fn track_budget(name: &str, budget: &MkBudget) {
    let mut list = lk(&BUDGETS);
    if list.len() < 4096 {
        list.push((name.to_string(), budget.clone()));
    }
}

/// Keeps the current task's budget, if it has one.
fn track_current(name: &str) {
    if let Some(b) = MkBudget::current() {
        track_budget(name, &b);
    }
}

// ------------------------------------------------------------------------------------------
// A small PRNG
// ------------------------------------------------------------------------------------------

/// xorshift64*, seeded through splitmix64.
#[derive(Clone, Debug)]
struct Rng(u64);

impl Rng {
    fn new(seed: u64) -> Rng {
        let mut z = seed.wrapping_add(0x9E37_79B9_7F4A_7C15);
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^= z >> 31;
        Rng(if z == 0 { 1 } else { z })
    }

    fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// Uniform in `0..n` (`n > 0`).
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }

    /// Uniform in `lo..=hi`.
    fn range(&mut self, lo: usize, hi: usize) -> usize {
        lo + self.below(hi - lo + 1)
    }

    fn one_in(&mut self, n: usize) -> bool {
        self.below(n) == 0
    }

    fn micros(&mut self, max: usize) -> Duration {
        Duration::from_micros(self.range(0, max) as u64)
    }

    /// An independent generator for a task.
    fn fork(&mut self) -> Rng {
        Rng::new(self.next())
    }

    fn policy(&mut self) -> MkBackpressure {
        match self.below(4) {
            0 => MkBackpressure::Wait,
            1 => MkBackpressure::Fail,
            2 => MkBackpressure::Timeout(Duration::from_millis(self.range(1, 5) as u64)),
            _ => MkBackpressure::Evict,
        }
    }
}

// ------------------------------------------------------------------------------------------
// Counted futures and objects
// ------------------------------------------------------------------------------------------

/// Bumps one counter when made and another when dropped.
struct Life(C);

impl Life {
    fn new(created: C, dropped: C) -> Life {
        bump(created);
        Life(dropped)
    }
}

impl Drop for Life {
    fn drop(&mut self) {
        bump(self.0);
    }
}

/// `future`, counted: created now, dropped with the future (polled or not).
fn counted<F: Future>(future: F) -> impl Future<Output = F::Output> {
    let life = Life::new(C::FutCreated, C::FutDropped);
    async move {
        let _life = life;
        future.await
    }
}

/// A blocking closure, counted like a future.
fn counted_fn<R>(f: impl FnOnce() -> R) -> impl FnOnce() -> R {
    let life = Life::new(C::FutCreated, C::FutDropped);
    move || {
        let _life = life;
        f()
    }
}

fn mix(tag: u64) -> u64 {
    tag.rotate_left(17) ^ 0xA5A5_5A5A_DEAD_BEEF
}

/// A value that checks its own contents when dropped, and is counted.
struct Obj {
    tag: u64,
    check: u64,
    _life: Life,
}

impl Obj {
    fn new(tag: u64) -> Obj {
        Obj {
            tag,
            check: mix(tag),
            _life: Life::new(C::ObjCreated, C::ObjDropped),
        }
    }

    fn ok(&self) -> bool {
        self.check == mix(self.tag)
    }
}

impl Drop for Obj {
    fn drop(&mut self) {
        if !self.ok() {
            fail(format!(
                "an object's contents changed: tag {:#x}, check {:#x}",
                self.tag, self.check
            ));
        }
    }
}

type Blob = [u64; 64];

/// What a top-level task hands back through its join handle (outputs that outlive the task).
enum Out {
    Unit,
    Obj(MkAsyncBox<Obj>),
    Blob(MkAsyncBox<Blob>),
    Vec(MkAsyncVec<u64>, u64),
    Arena(MkArena),
}

fn blob_ok(blob: &Blob) -> bool {
    blob.iter().all(|&x| x == blob[0])
}

fn vec_ok(v: &[u64], tag: u64) -> bool {
    v.iter()
        .enumerate()
        .all(|(i, &x)| x == tag.wrapping_add(i as u64))
}

fn check_out(out: Out, what: &str) {
    let ok = match &out {
        Out::Unit => true,
        // Its objects check themselves when dropped; its budget never goes above its limit.
        Out::Arena(a) => a.budget().used() <= a.budget().limit(),
        Out::Obj(b) => b.ok(),
        Out::Blob(b) => blob_ok(b),
        Out::Vec(v, tag) => vec_ok(v, *tag),
    };
    if !ok {
        fail(format!("{what}: the task's output changed after it ended"));
    }
}

/// Accounts for a join result: outputs are checked, panics must be injected ones.
fn note_join(res: Result<Out, JoinError>, what: &str) {
    match res {
        Ok(out) => {
            bump(C::JoinOk);
            check_out(out, what);
        }
        Err(e) if e.is_cancelled() => bump(C::JoinCancelled),
        Err(e) => note_panic(e, what),
    }
}

fn note_panic(e: JoinError, what: &str) {
    match e.try_into_panic() {
        Ok(payload) => {
            let msg = panic_message(&*payload);
            if msg.starts_with(INJECTED) {
                bump(C::JoinPanic);
            } else {
                fail(format!("{what}: a task panicked unexpectedly: {msg}"));
            }
        }
        Err(e) => fail(format!(
            "{what}: a JoinError neither cancelled nor panic: {e:?}"
        )),
    }
}

fn inject_panic(site: &str) -> ! {
    bump(C::FaultPanic);
    panic!("{INJECTED} ({site})")
}

fn maybe_panic(rng: &mut Rng, one_in: usize, site: &str) {
    if rng.one_in(one_in) {
        inject_panic(site);
    }
}

/// Keeps injected panics quiet; every other panic goes to the default hook.
fn install_panic_filter() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        let default = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            if !panic_message(info.payload()).starts_with(INJECTED) {
                default(info);
            }
        }));
    });
}

// ------------------------------------------------------------------------------------------
// A timer on a foreign thread (the runtime has no public one): sleeps and bounded waits
// ------------------------------------------------------------------------------------------

type Slot = Arc<Mutex<Option<Waker>>>;

struct Entry {
    at: Instant,
    seq: u64,
    slot: Slot,
}

impl PartialEq for Entry {
    fn eq(&self, other: &Entry) -> bool {
        (self.at, self.seq) == (other.at, other.seq)
    }
}

impl Eq for Entry {}

impl PartialOrd for Entry {
    fn partial_cmp(&self, other: &Entry) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Entry {
    fn cmp(&self, other: &Entry) -> std::cmp::Ordering {
        (self.at, self.seq).cmp(&(other.at, other.seq))
    }
}

struct Timer {
    heap: Mutex<BinaryHeap<Reverse<Entry>>>,
    changed: Condvar,
    seq: AtomicU64,
}

static TIMER: Timer = Timer {
    heap: Mutex::new(BinaryHeap::new()),
    changed: Condvar::new(),
    seq: AtomicU64::new(0),
};

fn timer_thread() {
    let mut heap = lk(&TIMER.heap);
    loop {
        let now = Instant::now();
        let mut due = Vec::new();
        while heap.peek().is_some_and(|Reverse(e)| e.at <= now) {
            if let Some(Reverse(e)) = heap.pop() {
                due.push(e.slot);
            }
        }
        if !due.is_empty() {
            drop(heap);
            for slot in due {
                let waker = lk(&slot).take();
                if let Some(w) = waker {
                    w.wake();
                }
            }
            heap = lk(&TIMER.heap);
            continue;
        }
        heap = match heap.peek().map(|Reverse(e)| e.at) {
            Some(at) => {
                TIMER
                    .changed
                    .wait_timeout(heap, at.saturating_duration_since(now))
                    .unwrap_or_else(|e| e.into_inner())
                    .0
            }
            None => TIMER.changed.wait(heap).unwrap_or_else(|e| e.into_inner()),
        };
    }
}

/// Wakes every registered sleeper now (between runtimes: drops the wakers of dead tasks).
fn flush_timer() {
    let entries: Vec<_> = lk(&TIMER.heap).drain().collect();
    for Reverse(e) in entries {
        let waker = lk(&e.slot).take();
        if let Some(w) = waker {
            w.wake();
        }
    }
}

struct Sleep {
    at: Instant,
    slot: Option<Slot>,
}

fn sleep(d: Duration) -> Sleep {
    Sleep {
        at: Instant::now() + d,
        slot: None,
    }
}

impl Future for Sleep {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        if Instant::now() >= self.at {
            return Poll::Ready(());
        }
        if let Some(slot) = &self.slot {
            let mut w = lk(slot);
            if w.is_some() {
                if !w.as_ref().is_some_and(|w| w.will_wake(cx.waker())) {
                    *w = Some(cx.waker().clone());
                }
                return Poll::Pending;
            }
        }
        // First poll, or woken early by `flush_timer`: (re-)register.
        static START: Once = Once::new();
        START.call_once(|| {
            thread::Builder::new()
                .name("soak-timer".into())
                .spawn(timer_thread)
                .expect("start the soak timer thread");
        });
        let slot: Slot = Arc::new(Mutex::new(Some(cx.waker().clone())));
        self.slot = Some(slot.clone());
        let entry = Entry {
            at: self.at,
            seq: TIMER.seq.fetch_add(1, SeqCst),
            slot,
        };
        lk(&TIMER.heap).push(Reverse(entry));
        TIMER.changed.notify_one();
        Poll::Pending
    }
}

impl Drop for Sleep {
    fn drop(&mut self) {
        if let Some(slot) = &self.slot {
            let waker = lk(slot).take();
            drop(waker);
        }
    }
}

/// `future`, or `None` (and a recorded failure) if it has not finished within `limit`.
async fn bounded<F: Future>(limit: Duration, what: &'static str, future: F) -> Option<F::Output> {
    let future = pin!(future);
    let timer = pin!(sleep(limit));
    match select(future, timer).await {
        Either::Left((out, _)) => Some(out),
        Either::Right(((), _)) => {
            fail(format!(
                "stuck: {what} did not finish within {limit:?}; state then:\n{}",
                report()
            ));
            None
        }
    }
}

// ------------------------------------------------------------------------------------------
// The evictable cache
// ------------------------------------------------------------------------------------------

/// Bytes held from the `Evict` budget, oldest first; gives them back when asked.
#[derive(Default)]
struct Cache {
    entries: Mutex<VecDeque<MkBudgetGuard>>,
}

impl Cache {
    fn insert(&self, guard: MkBudgetGuard) {
        let old = {
            let mut entries = lk(&self.entries);
            entries.push_back(guard);
            if entries.len() > 32 {
                entries.pop_front()
            } else {
                None
            }
        };
        drop(old);
    }

    fn clear(&self) {
        let all = std::mem::take(&mut *lk(&self.entries));
        drop(all);
    }
}

impl MkEvictable for Cache {
    fn evict(&self, bytes_wanted: usize) -> usize {
        let mut evicted = Vec::new();
        let mut freed = 0;
        {
            let mut entries = lk(&self.entries);
            while freed < bytes_wanted {
                let Some(guard) = entries.pop_front() else {
                    break;
                };
                freed += guard.bytes();
                evicted.push(guard);
            }
        }
        for guard in evicted {
            bump(C::Evicted);
            drop(guard); // released before returning, outside the cache's lock
        }
        freed
    }
}

// ------------------------------------------------------------------------------------------
// One runtime's environment
// ------------------------------------------------------------------------------------------

struct Env {
    handle: Handle,
    /// Small root limit: every `Wait` request must be made holding nothing.
    tight: bool,
    root: MkBudget,
    /// Children of a 24 KiB `Wait` parent, 16 KiB each: waiters move between the queues.
    wait_a: MkBudget,
    wait_b: MkBudget,
    fail_pool: MkBudget,
    timeout_pool: MkBudget,
    /// `Evict`, with `cache` registered on it.
    evict_pool: MkBudget,
    /// Child of `evict_pool`, for `MkArena`s; `Fail`, `Timeout` or `Evict`.
    arena_pool: MkBudget,
    /// `Wait`: the parent of admission reservations in admission batches.
    admit_pool: MkBudget,
    cache: Arc<Cache>,
    threads: Mutex<Vec<thread::JoinHandle<()>>>,
}

impl Env {
    /// How many `Wait` requests a task charged to a large private budget may await.
    fn waits(&self) -> u32 {
        if self.tight {
            1
        } else {
            u32::MAX
        }
    }

    /// Starts a foreign std thread, joined before the runtime's end-of-life checks.
    fn thread(&self, f: impl FnOnce() + Send + 'static) {
        let mut threads = lk(&self.threads);
        let mut i = 0;
        while i < threads.len() {
            if threads[i].is_finished() {
                if threads.swap_remove(i).join().is_err() {
                    fail("a foreign thread panicked".into());
                }
            } else {
                i += 1;
            }
        }
        threads.push(
            thread::Builder::new()
                .name("soak-foreign".into())
                .spawn(f)
                .expect("start a foreign thread"),
        );
    }

    fn join_threads(&self) {
        loop {
            let threads = std::mem::take(&mut *lk(&self.threads));
            if threads.is_empty() {
                return;
            }
            for t in threads {
                if t.join().is_err() {
                    fail("a foreign thread panicked".into());
                }
            }
        }
    }
}

fn build_env(rng: &mut Rng, epoch: u64) -> (Runtime, Arc<Env>, String) {
    let workers = rng.range(1, 4);
    let tight = rng.one_in(4);
    let limit = if tight { 2 * MIB } else { 256 * MIB };
    let root_policy = match rng.below(6) {
        0 => MkBackpressure::Fail,
        1 => MkBackpressure::Timeout(Duration::from_millis(2)),
        2 => MkBackpressure::Evict,
        _ => MkBackpressure::Wait,
    };
    let mut builder = Builder::new();
    builder
        .worker_threads(workers)
        .memory_limit(limit)
        .memory_policy(root_policy)
        .thread_name(format!("soak-{epoch}"))
        .max_blocking_threads(rng.range(1, 8))
        .thread_keep_alive(Duration::from_millis(rng.range(1, 100) as u64));
    let pool_cap = match rng.below(4) {
        0 => 0,
        1 => 64 * KIB,
        2 => MIB,
        _ => 32 * MIB,
    };
    builder.chunk_pool_cap(pool_cap);
    let rt = builder.build().expect("build a runtime");
    bump(C::Runtimes);

    let root = rt.memory_budget().clone();
    let wait_parent = root.child(24 * KIB).with_policy(MkBackpressure::Wait);
    let wait_a = wait_parent.child(16 * KIB);
    let wait_b = wait_parent.child(16 * KIB);
    let fail_pool = root.child(32 * KIB).with_policy(MkBackpressure::Fail);
    let timeout_pool =
        root.child(32 * KIB)
            .with_policy(MkBackpressure::Timeout(Duration::from_millis(
                rng.range(1, 8) as u64,
            )));
    let evict_pool = root.child(128 * KIB).with_policy(MkBackpressure::Evict);
    let arena_policy = match rng.below(3) {
        0 => MkBackpressure::Fail,
        1 => MkBackpressure::Timeout(Duration::from_millis(3)),
        _ => MkBackpressure::Evict,
    };
    let arena_pool = evict_pool.child(96 * KIB).with_policy(arena_policy);
    let admit_pool = root.child(64 * KIB).with_policy(MkBackpressure::Wait);
    let cache = Arc::new(Cache::default());
    let consumer: Arc<dyn MkEvictable> = cache.clone();
    evict_pool.register_evictable(&consumer);
    if root_policy == MkBackpressure::Evict {
        root.register_evictable(&consumer);
    }
    for (name, b) in [
        ("root", &root),
        ("wait_parent", &wait_parent),
        ("wait_a", &wait_a),
        ("wait_b", &wait_b),
        ("fail_pool", &fail_pool),
        ("timeout_pool", &timeout_pool),
        ("evict_pool", &evict_pool),
        ("arena_pool", &arena_pool),
        ("admit_pool", &admit_pool),
    ] {
        track_budget(name, b);
    }
    let desc = format!(
        "{workers} workers, root {} KiB {root_policy:?}{}, chunk_pool_cap {} KiB, arenas {arena_policy:?}",
        limit / KIB,
        if tight { " (tight)" } else { "" },
        pool_cap / KIB,
    );
    let env = Arc::new(Env {
        handle: rt.handle().clone(),
        tight,
        root,
        wait_a,
        wait_b,
        fail_pool,
        timeout_pool,
        evict_pool,
        arena_pool,
        admit_pool,
        cache,
        threads: Mutex::new(Vec::new()),
    });
    (rt, env, desc)
}

// ------------------------------------------------------------------------------------------
// Allocation under a policy, with outcome accounting
// ------------------------------------------------------------------------------------------

/// The allocation policy of a task, and how many more `Wait` requests it may await (the rest
/// use the `try_` forms, which never wait).
struct Al {
    policy: MkBackpressure,
    waits_left: u32,
}

impl Al {
    fn new(policy: MkBackpressure, waits: u32) -> Al {
        Al {
            policy,
            waits_left: waits,
        }
    }

    /// For the current task: its budget's policy, or the root's for a task without one.
    fn current(env: &Env, waits: u32) -> Al {
        let policy = MkBudget::current().map_or_else(|| env.root.policy(), |b| b.policy());
        Al::new(policy, waits)
    }

    fn many(&self) -> bool {
        self.policy != MkBackpressure::Wait || self.waits_left == u32::MAX
    }

    fn may_await(&mut self) -> bool {
        if self.policy != MkBackpressure::Wait || self.waits_left == u32::MAX {
            return true;
        }
        if self.waits_left == 0 {
            return false;
        }
        self.waits_left -= 1;
        true
    }

    fn note<T>(&self, awaited: bool, res: Result<T, MkAllocError>) -> Option<T> {
        let policy = self.policy;
        match res {
            Ok(v) => {
                bump(match policy {
                    MkBackpressure::Wait => C::AllocWait,
                    MkBackpressure::Fail => C::AllocFail,
                    MkBackpressure::Timeout(_) => C::AllocTimeout,
                    MkBackpressure::Evict => C::AllocEvict,
                });
                Some(v)
            }
            Err(MkAllocError::CapacityReached { .. }) if !awaited => {
                bump(C::ErrTry);
                None
            }
            Err(MkAllocError::CapacityReached { .. }) if policy == MkBackpressure::Fail => {
                bump(C::ErrFail);
                None
            }
            Err(MkAllocError::CapacityReached { .. }) if policy == MkBackpressure::Evict => {
                bump(C::ErrEvict);
                None
            }
            Err(MkAllocError::TimedOut { .. })
                if awaited && matches!(policy, MkBackpressure::Timeout(_)) =>
            {
                bump(C::ErrTimeout);
                None
            }
            Err(e) => {
                fail(format!(
                    "unexpected allocation error under {policy:?} (awaited: {awaited}): {e}"
                ));
                None
            }
        }
    }

    async fn obj(&mut self, tag: u64) -> Option<MkAsyncBox<Obj>> {
        let awaited = self.may_await();
        let res = if awaited {
            MkAsyncBox::new(Obj::new(tag)).await
        } else {
            MkAsyncBox::try_new(Obj::new(tag))
        };
        self.note(awaited, res)
    }

    async fn blob(&mut self, tag: u64) -> Option<MkAsyncBox<Blob>> {
        let awaited = self.may_await();
        let res = if awaited {
            MkAsyncBox::new([tag; 64]).await
        } else {
            MkAsyncBox::try_new([tag; 64])
        };
        self.note(awaited, res)
    }

    /// `n` values `tag, tag + 1, ...`; grows (awaiting) only when many waits are allowed,
    /// otherwise takes its whole capacity in one request.
    async fn vec(&mut self, n: usize, tag: u64) -> Option<(MkAsyncVec<u64>, u64)> {
        let many = self.many();
        let awaited = self.may_await();
        let res = match (awaited, many) {
            (true, true) => MkAsyncVec::with_capacity(n.min(8)).await,
            (true, false) => MkAsyncVec::with_capacity(n).await,
            (false, _) => MkAsyncVec::try_with_capacity(n),
        };
        let mut v = self.note(awaited, res)?;
        for i in 0..n {
            let x = tag.wrapping_add(i as u64);
            if awaited && many {
                if let Err(e) = v.push(x).await {
                    self.note::<()>(true, Err(e));
                    break;
                }
            } else if let Err((_, e)) = v.try_push(x) {
                self.note::<()>(false, Err(e));
                break;
            }
        }
        Some((v, tag))
    }
}

// ------------------------------------------------------------------------------------------
// Task bodies
// ------------------------------------------------------------------------------------------

/// Generic work: allocations, yields, sleeps, checks; may panic; may return what it holds.
async fn work(env: Arc<Env>, mut rng: Rng, waits: u32, site: &'static str) -> Out {
    let mut al = Al::current(&env, waits);
    let mut objs: Vec<MkAsyncBox<Obj>> = Vec::new();
    let mut blobs: Vec<MkAsyncBox<Blob>> = Vec::new();
    let mut vecs: Vec<(MkAsyncVec<u64>, u64)> = Vec::new();
    for _ in 0..rng.range(1, 6) {
        match rng.below(10) {
            0..=2 => {
                if let Some(b) = al.obj(rng.next()).await {
                    objs.push(b);
                }
            }
            3 => {
                if let Some(b) = al.blob(rng.next()).await {
                    blobs.push(b);
                }
            }
            4 if vecs.len() < 2 => {
                let (n, tag) = (rng.range(1, 256), rng.next());
                if let Some(v) = al.vec(n, tag).await {
                    vecs.push(v);
                }
            }
            5 | 6 => yield_now().await,
            7 => sleep(rng.micros(2000)).await,
            8 if !objs.is_empty() => {
                let gone = objs.swap_remove(rng.below(objs.len()));
                if !gone.ok() {
                    fail(format!("{site}: a box changed while its task held it"));
                }
            }
            _ => {
                for _ in 0..3 {
                    yield_now().await;
                }
            }
        }
        maybe_panic(&mut rng, 50, site);
    }
    let ok = objs.iter().all(|b| b.ok())
        && blobs.iter().all(|b| blob_ok(b))
        && vecs.iter().all(|(v, tag)| vec_ok(v, *tag));
    if !ok {
        fail(format!("{site}: memory changed while its task held it"));
    }
    match rng.below(5) {
        0 => objs.pop().map_or(Out::Unit, Out::Obj),
        1 => blobs.pop().map_or(Out::Unit, Out::Blob),
        2 => vecs.pop().map_or(Out::Unit, |(v, tag)| Out::Vec(v, tag)),
        _ => Out::Unit,
    }
}

/// Spawns nested children of every kind, aborts some, awaits all.
async fn nest(env: Arc<Env>, mut rng: Rng) -> Out {
    let mut kids: Vec<JoinHandle<Out>> = Vec::new();
    for _ in 0..rng.range(1, 6) {
        let (e, r, waits) = (env.clone(), rng.fork(), env.waits());
        let kid = match rng.below(6) {
            0 => memkit_async::spawn(counted(work(e, r, waits, "nested spawn"))),
            1 => spawn_with_budget(
                rng.range(128 * KIB, 512 * KIB),
                counted(async move {
                    track_current("nested spawn_with_budget");
                    work(e, r, waits, "nested spawn_with_budget").await
                }),
            ),
            2 => memkit_async::spawn_blocking(counted_fn(move || blocking_body(e, r))),
            3 => task::Builder::new()
                .name("nested")
                .policy(rng.policy())
                .spawn(counted(work(e, r, waits, "nested builder")))
                .expect("a task without a reservation always spawns"),
            4 => memkit_async::spawn(counted(foreign(e, r))),
            _ => memkit_async::spawn(counted(victim(e, r))),
        };
        kids.push(kid);
    }
    for kid in &kids {
        if rng.one_in(4) {
            kid.abort();
            bump(C::FaultAbort);
        }
    }
    yield_now().await;
    for kid in kids {
        if let Some(res) = bounded(WAIT_LIMIT, "a nested child", kid).await {
            note_join(res, "nested child");
        }
    }
    maybe_panic(&mut rng, 20, "orchestrator");
    Out::Unit
}

/// A blocking closure: sleeps, may panic, may fill an arena and hand it back.
fn blocking_body(env: Arc<Env>, mut rng: Rng) -> Out {
    thread::sleep(rng.micros(2000));
    maybe_panic(&mut rng, 16, "spawn_blocking");
    if rng.one_in(2) {
        let arena = MkArena::new(&env.arena_pool);
        let al = Al::new(env.arena_pool.policy(), 0);
        for _ in 0..rng.range(1, 32) {
            let res = arena.alloc(Obj::new(rng.next())).map(|_| ());
            if al.note(false, res).is_none() {
                break;
            }
        }
        Out::Arena(arena)
    } else {
        Out::Unit
    }
}

/// Wake-ups from foreign std threads.
async fn foreign(env: Arc<Env>, mut rng: Rng) -> Out {
    let mut al = Al::current(&env, env.waits());
    let mut kept = None;
    for _ in 0..rng.range(1, 3) {
        let delay = rng.micros(2000);
        match rng.below(6) {
            0 => {
                let (tx, rx) = oneshot::channel();
                let v = rng.next();
                env.thread(move || {
                    thread::sleep(delay);
                    let _ = tx.send(v);
                });
                match bounded(WAIT_LIMIT, "a oneshot completed by a thread", rx).await {
                    Some(Ok(got)) if got == v => bump(C::ForeignWakes),
                    Some(Ok(got)) => fail(format!("a oneshot carried {got}, not {v}")),
                    Some(Err(_)) => fail("a thread dropped a oneshot it completes".into()),
                    None => {}
                }
            }
            1 => {
                let Some(b) = al.obj(rng.next()).await else {
                    continue;
                };
                let (tx, rx) = oneshot::channel();
                env.thread(move || {
                    thread::sleep(delay);
                    if !b.ok() {
                        fail("a box changed on its way to a thread".into());
                    }
                    let _ = tx.send(b);
                });
                match bounded(WAIT_LIMIT, "a box sent back by a thread", rx).await {
                    Some(Ok(b)) => {
                        bump(C::ForeignWakes);
                        if !b.ok() {
                            fail("a box changed on its way back from a thread".into());
                        }
                        kept = Some(b);
                    }
                    Some(Err(_)) => fail("a thread dropped a oneshot it completes".into()),
                    None => {}
                }
            }
            2 => {
                let (tx, rx) = oneshot::channel::<u64>();
                env.thread(move || {
                    thread::sleep(delay);
                    drop(tx);
                });
                match bounded(WAIT_LIMIT, "a oneshot dropped by a thread", rx).await {
                    Some(Err(oneshot::Canceled)) => bump(C::ForeignCanceled),
                    Some(Ok(_)) => fail("a dropped oneshot delivered a value".into()),
                    None => {}
                }
            }
            3 => {
                let (tx, rx) = oneshot::channel();
                let (handle, e, r, waits) =
                    (env.handle.clone(), env.clone(), rng.fork(), env.waits());
                env.thread(move || {
                    thread::sleep(delay);
                    let task = handle.spawn(counted(work(e, r, waits, "spawned from a thread")));
                    bump(C::ForeignSpawns);
                    let _ = tx.send(task);
                });
                if let Some(Ok(task)) = bounded(WAIT_LIMIT, "a handle from a thread", rx).await {
                    if let Some(res) = bounded(WAIT_LIMIT, "a task spawned by a thread", task).await
                    {
                        note_join(res, "task spawned from a foreign thread");
                    }
                }
            }
            4 => {
                let (tx, mut rx) = mpsc::unbounded::<usize>();
                let n = rng.range(1, 16);
                env.thread(move || {
                    for i in 0..n {
                        thread::sleep(delay / 8);
                        let _ = tx.unbounded_send(i);
                    }
                });
                let mut next = 0;
                while let Some(Some(i)) =
                    bounded(WAIT_LIMIT, "a stream fed by a thread", rx.next()).await
                {
                    if i != next {
                        fail(format!("a thread's stream gave {i}, expected {next}"));
                    }
                    next += 1;
                    bump(C::ForeignWakes);
                }
                if next != n {
                    fail(format!("a thread's stream ended after {next} of {n} items"));
                }
            }
            _ => {
                // A box freed on a foreign thread (a remote free), maybe after its task ended.
                if let Some(b) = al.obj(rng.next()).await {
                    env.thread(move || {
                        thread::sleep(delay);
                        drop(b);
                        bump(C::RemoteFrees);
                    });
                }
            }
        }
        maybe_panic(&mut rng, 40, "foreign wake-up");
    }
    kept.map_or(Out::Unit, Out::Obj)
}

/// A task made to be aborted: sleeping, waiting on a thread, or yielding for a while.
async fn victim(env: Arc<Env>, mut rng: Rng) -> Out {
    match rng.below(3) {
        0 => {
            let mut al = Al::current(&env, env.waits());
            let held = al.obj(rng.next()).await;
            sleep(Duration::from_millis(rng.range(1, 100) as u64)).await;
            drop(held);
        }
        1 => {
            let (tx, rx) = oneshot::channel();
            let delay = Duration::from_millis(rng.range(0, 20) as u64);
            env.thread(move || {
                thread::sleep(delay);
                let _ = tx.send(());
            });
            let _ = bounded(WAIT_LIMIT, "a victim's oneshot", rx).await;
        }
        _ => {
            for _ in 0..rng.range(0, 2000) {
                yield_now().await;
            }
        }
    }
    Out::Unit
}

/// On a 16 KiB `Wait` budget shared with many tasks: one awaited request made holding nothing
/// (a box, a vector, or the budget itself), held a moment, then only `try_` requests.
async fn wait_body(mut rng: Rng) -> Out {
    let budget = MkBudget::current().expect("wait tasks have a budget");
    let mut al = Al::new(budget.policy(), 1);
    if rng.one_in(24) {
        // Can never fit: refused at once, even under `Wait`.
        let res = bounded(
            WAIT_LIMIT,
            "an oversize Wait request",
            MkAsyncVec::<u8>::with_capacity(budget.limit() + 1),
        )
        .await;
        match res {
            Some(Err(MkAllocError::ExceedsLimit { .. })) => bump(C::FaultExceeds),
            Some(Err(e)) => fail(format!("an oversize Wait request failed with {e}")),
            Some(Ok(_)) => fail("an oversize Wait request was served".into()),
            None => {}
        }
        return Out::Unit;
    }
    let tag = rng.next();
    let mut guard = None;
    let mut bytes = None;
    let mut obj = None;
    let mut blob = None;
    match rng.below(4) {
        0 => blob = al.blob(tag).await,
        1 => {
            let n = rng.range(1, 4096);
            let got = MkAsyncVec::<u8>::with_capacity(n).await;
            al.waits_left = 0;
            if let Some(mut v) = al.note(true, got) {
                for i in 0..n {
                    if v.try_push(i as u8).is_err() {
                        fail("a vector refused a push within its capacity".into());
                        break;
                    }
                }
                bytes = Some(v);
            }
        }
        2 => {
            let res = budget.acquire(rng.range(1, 4096)).await;
            al.waits_left = 0;
            match res {
                Ok(g) => {
                    bump(C::Acquired);
                    guard = Some(g);
                }
                Err(e) => fail(format!("MkBudget::acquire under Wait failed: {e}")),
            }
        }
        _ => obj = al.obj(tag).await,
    }
    if rng.one_in(2) {
        sleep(rng.micros(1500)).await;
    } else {
        yield_now().await;
    }
    let extra = al.obj(rng.next()).await; // `try_` only from here on
    maybe_panic(&mut rng, 40, "Wait task");
    let ok = blob.as_ref().is_none_or(|b| b[0] == tag && blob_ok(b))
        && bytes
            .as_ref()
            .is_none_or(|v| v.iter().enumerate().all(|(i, &x)| x == i as u8))
        && obj.as_ref().is_none_or(|b| b.ok())
        && extra.as_ref().is_none_or(|b| b.ok());
    if !ok {
        fail("a Wait task's memory changed while it held it".into());
    }
    drop((guard, bytes, blob, extra));
    obj.map_or(Out::Unit, Out::Obj)
}

/// On a `Fail`, `Timeout` or `Evict` budget: a direct `try_acquire`, then generic work.
async fn pool_body(env: Arc<Env>, mut rng: Rng, site: &'static str) -> Out {
    if let Some(budget) = MkBudget::current() {
        if rng.one_in(3) {
            match budget.try_acquire(rng.range(1, 8 * KIB)) {
                Ok(g) => {
                    bump(C::Acquired);
                    yield_now().await;
                    drop(g);
                }
                Err(MkAllocError::CapacityReached { .. }) => bump(C::ErrTry),
                Err(e) => fail(format!("{site}: try_acquire failed with {e}")),
            }
        }
    }
    work(env, rng, 0, site).await
}

/// Fills the evictable cache, then allocates under `Evict`.
async fn evict_body(env: Arc<Env>, mut rng: Rng) -> Out {
    for _ in 0..rng.range(1, 4) {
        match env.evict_pool.try_acquire(rng.range(512, 8 * KIB)) {
            Ok(g) => {
                bump(C::Acquired);
                env.cache.insert(g);
            }
            Err(MkAllocError::CapacityReached { .. }) => bump(C::ErrEvict),
            Err(e) => fail(format!("try_acquire on the Evict budget failed with {e}")),
        }
    }
    work(env, rng, 0, "Evict task").await
}

/// An admission batch: children reserve bytes of `admit_pool` (this task's budget) and run
/// only once admitted; some are aborted, maybe while still waiting for admission.
async fn admission(env: Arc<Env>, mut rng: Rng) -> Out {
    let mut kids = Vec::new();
    for i in 0..rng.range(2, 8) {
        let oversize = rng.one_in(30);
        let reserve = if oversize {
            env.admit_pool.limit() + 1
        } else {
            rng.range(2 * KIB, 24 * KIB)
        };
        let name = format!("admitted-{i}");
        let mut b = task::Builder::new().name(&name).reserve(reserve);
        if rng.one_in(2) {
            b = b.policy(rng.policy());
        }
        if rng.one_in(3) {
            b = b.budget(rng.range(32 * KIB, 64 * KIB));
        }
        let body = reserved(env.clone(), rng.fork(), name, reserve);
        match b.spawn(counted(body)) {
            Ok(kid) => kids.push(kid),
            Err(MkAllocError::ExceedsLimit { .. }) if oversize => bump(C::FaultExceeds),
            Err(e) => fail(format!("spawning with reserve({reserve}) failed: {e}")),
        }
    }
    for kid in &kids {
        if rng.one_in(4) {
            kid.abort();
            bump(C::FaultAbort);
        }
    }
    for kid in kids {
        if let Some(res) = bounded(WAIT_LIMIT, "an admitted child", kid).await {
            note_join(res, "admitted child");
        }
    }
    Out::Unit
}

/// A task with a reservation: it holds it while it runs, so it never awaits a `Wait` request.
async fn reserved(env: Arc<Env>, rng: Rng, name: String, reserve: usize) -> Out {
    bump(C::Admitted);
    if task::name().as_deref() != Some(name.as_str()) {
        fail(format!("task::name() is {:?}, not {name:?}", task::name()));
    }
    if env.admit_pool.used() < reserve {
        fail(format!(
            "a task admitted with reserve({reserve}) runs while its parent holds only {} bytes",
            env.admit_pool.used()
        ));
    }
    work(env, rng, 0, "admitted task").await
}

/// A `task::Builder` task: checks its name, then generic work.
async fn builder_body(env: Arc<Env>, rng: Rng, name: String, waits: u32) -> Out {
    if task::name().as_deref() != Some(name.as_str()) {
        fail(format!("task::name() is {:?}, not {name:?}", task::name()));
    }
    track_current("task::Builder");
    work(env, rng, waits, "task::Builder").await
}

async fn panic_later(site: &'static str) -> Out {
    yield_now().await;
    inject_panic(site)
}

/// A task that panics somewhere, or sees a child panic.
async fn panicky(env: Arc<Env>, mut rng: Rng) -> Out {
    let mut al = Al::current(&env, env.waits());
    match rng.below(6) {
        0 => inject_panic("before the first await"),
        1 => {
            let _b = al.obj(rng.next()).await;
            let _v = al.vec(rng.range(1, 128), rng.next()).await;
            yield_now().await;
            inject_panic("holding a box and a vector")
        }
        2 => {
            let kid = memkit_async::spawn(counted(panic_later("nested child")));
            expect_panic(
                bounded(WAIT_LIMIT, "a panicking child", kid).await,
                "nested child",
            );
            Out::Unit
        }
        3 => {
            let kid = memkit_async::spawn_blocking(counted_fn(|| -> Out {
                inject_panic("spawn_blocking closure")
            }));
            expect_panic(
                bounded(WAIT_LIMIT, "a panicking blocking closure", kid).await,
                "spawn_blocking",
            );
            Out::Unit
        }
        4 => {
            let arena = MkArena::new(&env.arena_pool);
            for _ in 0..rng.range(1, 16) {
                let _ = arena.alloc(Obj::new(rng.next()));
            }
            yield_now().await;
            let _keep = arena;
            inject_panic("holding an MkArena")
        }
        _ => {
            let (tx, rx) = oneshot::channel();
            env.thread(move || {
                let _ = tx.send(());
            });
            let _ = bounded(WAIT_LIMIT, "a oneshot before a panic", rx).await;
            inject_panic("after a foreign wake-up")
        }
    }
}

fn expect_panic(res: Option<Result<Out, JoinError>>, what: &str) {
    match res {
        Some(Err(e)) if e.is_panic() => note_panic(e, what),
        Some(Err(_)) => fail(format!("{what}: cancelled instead of panicking")),
        Some(Ok(_)) => fail(format!("{what}: returned instead of panicking")),
        None => {}
    }
}

/// Sends boxes down a channel; stops when the consumer is gone.
async fn box_producer(
    env: Arc<Env>,
    mut rng: Rng,
    tx: MkAsyncSender<MkAsyncBox<Obj>>,
    waits: u32,
) -> Out {
    let mut al = Al::current(&env, waits);
    for _ in 0..rng.range(1, 24) {
        let Some(b) = al.obj(rng.next()).await else {
            continue;
        };
        match bounded(WAIT_LIMIT, "a send to a box consumer", tx.send(b)).await {
            Some(Ok(())) => bump(C::BoxesSent),
            // Refused by the channel's Fail or Timeout policy: the box is dropped here.
            Some(Err(MkSendError::Refused(..))) => bump(C::SendsRefused),
            Some(Err(_)) | None => break, // the consumer is gone (aborted or panicked)
        }
        if rng.one_in(4) {
            yield_now().await;
        }
        maybe_panic(&mut rng, 60, "box producer");
    }
    Out::Unit
}

/// Receives boxes: drops, keeps, relays to a third task or frees them on a foreign thread.
async fn box_consumer(
    env: Arc<Env>,
    mut rng: Rng,
    mut rx: MkAsyncReceiver<MkAsyncBox<Obj>>,
) -> Out {
    let relay = if rng.one_in(3) {
        let (tx, rx) = mpsc::unbounded();
        drop(memkit_async::spawn(counted(box_sink(rx))));
        Some(tx)
    } else {
        None
    };
    let mut kept = Vec::new();
    while let Some(Some(b)) = bounded(WAIT_LIMIT, "a box receive", rx.recv()).await {
        bump(C::BoxesReceived);
        if !b.ok() {
            fail("a box changed in a channel".into());
        }
        match rng.below(4) {
            0 => match &relay {
                Some(relay) => {
                    if relay.unbounded_send(b).is_ok() {
                        bump(C::BoxesSent);
                    }
                }
                None => kept.push(b),
            },
            1 => kept.push(b),
            2 => env.thread(move || {
                drop(b);
                bump(C::RemoteFrees);
            }),
            _ => drop(b),
        }
        maybe_panic(&mut rng, 100, "box consumer");
    }
    kept.pop().map_or(Out::Unit, Out::Obj)
}

async fn box_sink(mut rx: mpsc::UnboundedReceiver<MkAsyncBox<Obj>>) -> Out {
    while let Some(Some(b)) = bounded(WAIT_LIMIT, "a relayed box receive", rx.next()).await {
        bump(C::BoxesReceived);
        if !b.ok() {
            fail("a box changed in a relay".into());
        }
        yield_now().await;
    }
    Out::Unit
}

/// Fills whole arenas (here, or on a foreign thread with `alloc_async`) and sends them.
async fn arena_producer(env: Arc<Env>, mut rng: Rng, tx: MkAsyncSender<MkArena>) -> Out {
    let policy = env.arena_pool.policy();
    for _ in 0..rng.range(1, 4) {
        let count = rng.range(1, 64);
        let arena = if rng.one_in(4) {
            let (otx, orx) = oneshot::channel();
            let (pool, mut r) = (env.arena_pool.clone(), rng.fork());
            env.thread(move || {
                bump(C::ForeignBlockOn);
                let mut arena = MkArena::new(&pool);
                futures::executor::block_on(async {
                    let al = Al::new(policy, 0);
                    for _ in 0..count {
                        let res = arena.alloc_async(Obj::new(r.next())).await.map(|_| ());
                        if al.note(true, res).is_none() {
                            break;
                        }
                    }
                });
                let _ = otx.send(arena);
            });
            match bounded(WAIT_LIMIT, "an arena filled by a thread", orx).await {
                Some(Ok(arena)) => arena,
                _ => continue,
            }
        } else {
            let arena = MkArena::new(&env.arena_pool);
            let al = Al::new(policy, 0);
            for _ in 0..count {
                let res = arena.alloc(Obj::new(rng.next())).map(|_| ());
                if al.note(false, res).is_none() {
                    break;
                }
            }
            arena
        };
        match bounded(WAIT_LIMIT, "a send to an arena consumer", tx.send(arena)).await {
            Some(Ok(())) => bump(C::ArenasSent),
            Some(Err(_)) | None => break,
        }
        yield_now().await;
        maybe_panic(&mut rng, 40, "arena producer");
    }
    Out::Unit
}

async fn arena_consumer(env: Arc<Env>, mut rng: Rng, mut rx: MkAsyncReceiver<MkArena>) -> Out {
    let mut kept = Vec::new();
    while let Some(Some(arena)) = bounded(WAIT_LIMIT, "an arena receive", rx.recv()).await {
        bump(C::ArenasReceived);
        match rng.below(4) {
            0 => kept.push(arena),
            1 => env.thread(move || {
                drop(arena);
                bump(C::RemoteFrees);
            }),
            2 => {
                yield_now().await;
                drop(arena);
            }
            _ => drop(arena),
        }
        maybe_panic(&mut rng, 60, "arena consumer");
    }
    kept.pop().map_or(Out::Unit, Out::Arena)
}

// ------------------------------------------------------------------------------------------
// Panicking wakers and cancelled socket waits
// ------------------------------------------------------------------------------------------

/// A waker that panics when woken (an injected fault: the thread that fires it must go on).
struct PanickingWaker(AtomicBool);

impl Wake for PanickingWaker {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        self.0.store(true, SeqCst);
        bump(C::FaultWakerPanic);
        panic!("{INJECTED} (a waker)");
    }
}

fn panicking_waker() -> (Waker, Arc<PanickingWaker>) {
    let fired = Arc::new(PanickingWaker(AtomicBool::new(false)));
    (Waker::from(fired.clone()), fired)
}

/// A waker that counts the drop of its last clone.
struct DropCounted(Arc<AtomicUsize>);

impl Wake for DropCounted {
    fn wake(self: Arc<Self>) {}
}

impl Drop for DropCounted {
    fn drop(&mut self) {
        self.0.fetch_add(1, SeqCst);
    }
}

async fn bind_udp(what: &str) -> Option<UdpSocket> {
    match UdpSocket::bind("127.0.0.1:0").await {
        Ok(s) => Some(s),
        Err(e) => {
            fail(format!(
                "{what}: binding a UDP socket on 127.0.0.1 failed: {e}"
            ));
            None
        }
    }
}

/// Waits (on the soak's own timer) until `waker` has fired; `false` with a failure after
/// [`WAIT_LIMIT`].
async fn fired(waker: &PanickingWaker, what: &str) -> bool {
    let deadline = Instant::now() + WAIT_LIMIT;
    while !waker.0.load(SeqCst) {
        if Instant::now() > deadline {
            fail(format!("stuck: {what} never fired its waker"));
            return false;
        }
        sleep(Duration::from_millis(1)).await;
    }
    true
}

/// A runtime timer, a socket wait, or (on a foreign thread) a fallback timer, each polled with
/// a waker that panics; the thread that fires it must keep serving everything else.
async fn waker_panics(env: Arc<Env>, mut rng: Rng) -> Out {
    let (waker, probe) = panicking_waker();
    match rng.below(3) {
        0 => {
            // Fired by whichever worker turns the timers, or cancelled by the drop, or drained
            // by a shutdown.
            let mut timer = pin!(memkit_async::time::sleep(rng.micros(3000)));
            if timer
                .as_mut()
                .poll(&mut Context::from_waker(&waker))
                .is_pending()
            {
                sleep(rng.micros(4000)).await;
            }
        }
        1 => {
            let (Some(sock), Some(peer)) = (
                bind_udp("a panicking socket waker").await,
                bind_udp("a panicking socket waker").await,
            ) else {
                return Out::Unit;
            };
            let addr = sock.local_addr().expect("a bound socket has an address");
            let mut buf = [0u8; 8];
            {
                let mut recv = pin!(sock.recv_from(&mut buf));
                if recv
                    .as_mut()
                    .poll(&mut Context::from_waker(&waker))
                    .is_ready()
                {
                    fail("a socket received a datagram nobody sent".into());
                    return Out::Unit;
                }
                if let Err(e) = peer.send_to(b"wake", addr).await {
                    fail(format!("send_to on loopback failed: {e}"));
                    return Out::Unit;
                }
                // The reactor's dispatch (on some worker) fires the panicking waker.
                if !fired(&probe, "a socket wait").await {
                    return Out::Unit;
                }
            }
            match bounded(
                WAIT_LIMIT,
                "a datagram after a panicking waker",
                sock.recv_from(&mut buf),
            )
            .await
            {
                Some(Ok((4, _))) if &buf[..4] == b"wake" => bump(C::Datagrams),
                Some(other) => fail(format!("a datagram after a panicking waker: {other:?}")),
                None => {}
            }
        }
        _ => {
            let delay = rng.micros(2000);
            env.thread(move || {
                // Outside any runtime: the process-wide fallback timer thread fires it.
                let (waker, probe) = panicking_waker();
                let mut timer = Box::pin(memkit_async::time::sleep(delay));
                if timer
                    .as_mut()
                    .poll(&mut Context::from_waker(&waker))
                    .is_pending()
                {
                    futures::executor::block_on(fired(&probe, "a fallback timer"));
                }
                // The fallback thread keeps firing every later timer.
                futures::executor::block_on(bounded(
                    WAIT_LIMIT,
                    "a fallback sleep after a panicking waker",
                    memkit_async::time::sleep(Duration::from_millis(1)),
                ));
            });
        }
    }
    Out::Unit
}

/// Socket waits cancelled every way: polled once and dropped (each must drop its waker at
/// once), cut off by a timeout, abandoned in a `select`, aborted with their task; the socket
/// then still receives every datagram, each once.
async fn socket_waits(mut rng: Rng) -> Out {
    let (Some(sock), Some(peer)) = (
        bind_udp("cancelled socket waits").await,
        bind_udp("cancelled socket waits").await,
    ) else {
        return Out::Unit;
    };
    let sock = Arc::new(sock);
    let addr = sock.local_addr().expect("a bound socket has an address");
    let mut buf = [0u8; 8];
    let dropped = Arc::new(AtomicUsize::new(0));
    let n = rng.range(1, 64);
    for _ in 0..n {
        let waker = Waker::from(Arc::new(DropCounted(dropped.clone())));
        let mut recv = pin!(sock.recv_from(&mut buf));
        if recv
            .as_mut()
            .poll(&mut Context::from_waker(&waker))
            .is_ready()
        {
            fail("a socket received a datagram nobody sent".into());
        }
        bump(C::SocketAbandoned);
    }
    if dropped.load(SeqCst) != n {
        fail(format!(
            "{n} socket waits polled once and dropped still hold {} wakers",
            n - dropped.load(SeqCst)
        ));
    }
    // Waiters in other tasks, aborted or left to their timeouts.
    let mut kids = Vec::new();
    for _ in 0..rng.range(0, 4) {
        let (s, limit) = (sock.clone(), rng.micros(3000));
        kids.push(memkit_async::spawn(counted(async move {
            let mut buf = [0u8; 8];
            match memkit_async::time::timeout(limit, s.recv_from(&mut buf)).await {
                Err(_) => bump(C::SocketTimedOut),
                Ok(res) => fail(format!("a datagram nobody sent reached a waiter: {res:?}")),
            }
            Out::Unit
        })));
    }
    for kid in &kids {
        if rng.one_in(2) {
            kid.abort();
            bump(C::FaultAbort);
        }
    }
    for _ in 0..rng.range(0, 3) {
        if rng.one_in(2) {
            match memkit_async::time::timeout(rng.micros(2000), sock.recv_from(&mut buf)).await {
                Err(_) => bump(C::SocketTimedOut),
                Ok(res) => fail(format!("a datagram nobody sent arrived: {res:?}")),
            }
        } else {
            let recv = pin!(sock.recv_from(&mut buf));
            match select(recv, sleep(rng.micros(2000))).await {
                Either::Right(_) => bump(C::SocketTimedOut),
                Either::Left((res, _)) => fail(format!("a datagram nobody sent arrived: {res:?}")),
            }
        }
    }
    for kid in kids {
        if let Some(res) = bounded(WAIT_LIMIT, "a socket waiter", kid).await {
            note_join(res, "socket waiter");
        }
    }
    maybe_panic(&mut rng, 30, "socket waits");
    // Every datagram arrives, once, in a wait that nobody cancels.
    let k = rng.range(1, 8);
    for i in 0..k as u64 {
        if let Err(e) = peer.send_to(&i.to_le_bytes(), addr).await {
            fail(format!("send_to on loopback failed: {e}"));
            return Out::Unit;
        }
    }
    let mut seen = vec![false; k];
    for _ in 0..k {
        match bounded(
            WAIT_LIMIT,
            "a datagram after cancelled waits",
            sock.recv_from(&mut buf),
        )
        .await
        {
            Some(Ok((8, _))) => {
                let i = u64::from_le_bytes(buf) as usize;
                if i >= k || std::mem::replace(&mut seen[i], true) {
                    fail(format!(
                        "datagram {i} of {k} arrived twice or was never sent"
                    ));
                }
                bump(C::Datagrams);
            }
            Some(other) => fail(format!("a datagram after cancelled waits: {other:?}")),
            None => return Out::Unit,
        }
    }
    Out::Unit
}

// ------------------------------------------------------------------------------------------
// The driver
// ------------------------------------------------------------------------------------------

#[derive(Clone, Copy, Debug)]
enum Op {
    Spawn,
    SpawnBudget,
    Builder,
    Reserve,
    Abort,
    Panic,
    Foreign,
    Wait,
    Fail,
    Timeout,
    Evict,
    Boxes,
    Arenas,
    Blocking,
    BlockOn,
    WakerPanic,
    Sockets,
}

const OPS: &[(Op, usize)] = &[
    (Op::Spawn, 8),
    (Op::SpawnBudget, 8),
    (Op::Builder, 8),
    (Op::Reserve, 3),
    (Op::Abort, 6),
    (Op::Panic, 4),
    (Op::Foreign, 5),
    (Op::Wait, 8),
    (Op::Fail, 5),
    (Op::Timeout, 5),
    (Op::Evict, 5),
    (Op::Boxes, 4),
    (Op::Arenas, 3),
    (Op::Blocking, 4),
    (Op::BlockOn, 1),
    (Op::WakerPanic, 2),
    (Op::Sockets, 3),
];

fn pick_op(rng: &mut Rng) -> Op {
    let total: usize = OPS.iter().map(|&(_, w)| w).sum();
    let mut x = rng.below(total);
    for &(op, w) in OPS {
        if x < w {
            return op;
        }
        x -= w;
    }
    unreachable!("weights cover the range")
}

struct Pending {
    what: String,
    handle: JoinHandle<Out>,
}

/// Issues one operation from the driver thread.
fn issue(op: Op, rt: &Runtime, env: &Arc<Env>, rng: &mut Rng, pending: &mut Vec<Pending>) {
    let h = &env.handle;
    let (e, r) = (env.clone(), rng.fork());
    let mut push = |what: &str, handle: JoinHandle<Out>| {
        pending.push(Pending {
            what: what.into(),
            handle,
        })
    };
    match op {
        Op::Spawn => {
            if rng.one_in(3) {
                bump(C::OpNest);
                push("orchestrator", h.spawn(counted(nest(e, r))));
            } else {
                bump(C::OpSpawn);
                let waits = env.waits();
                push("spawn", h.spawn(counted(work(e, r, waits, "spawn"))));
            }
        }
        Op::SpawnBudget => {
            bump(C::OpSpawnBudget);
            let bytes = rng.range(128 * KIB, 512 * KIB);
            let waits = env.waits();
            let _enter = rt.enter();
            push(
                "spawn_with_budget",
                spawn_with_budget(
                    bytes,
                    counted(async move {
                        track_current("spawn_with_budget");
                        work(e, r, waits, "spawn_with_budget").await
                    }),
                ),
            );
        }
        Op::Builder => {
            bump(C::OpBuilder);
            let name = format!("b{}", rng.below(1000));
            let mut b = task::Builder::new().name(&name);
            // `max_waits`: how many `Wait` requests the task may await (see the module docs).
            let (max_waits, budget) = match rng.below(4) {
                1 => {
                    let bytes = rng.range(128 * KIB, 512 * KIB);
                    b = b.budget(bytes);
                    (env.waits(), format!("{bytes} bytes"))
                }
                2 => {
                    // Shared: one awaited request, made holding nothing. Never on the `Evict`
                    // pool: its cache holds memory that only `Evict` requests take back, so a
                    // `Wait` request there may wait for good.
                    let pools = [
                        ("wait_a", &env.wait_a, 1),
                        ("fail_pool", &env.fail_pool, 1),
                        ("timeout_pool", &env.timeout_pool, 1),
                        ("evict_pool", &env.evict_pool, 0),
                    ];
                    let (pool, budget, waits) = pools[rng.below(pools.len())];
                    b = b.budget(budget);
                    (waits, pool.to_string())
                }
                _ => (env.waits(), "none".to_string()),
            };
            let policy = rng.one_in(2).then(|| rng.policy());
            if let Some(p) = policy {
                b = b.policy(p);
            }
            let oversize = rng.one_in(40);
            let reserve = match rng.below(3) {
                _ if oversize => env.root.limit() + 1,
                0 => rng.range(KIB, 64 * KIB),
                _ => 0,
            };
            if reserve > 0 {
                b = b.reserve(reserve);
            }
            let waits = if reserve > 0 { 0 } else { max_waits };
            match b.spawn_on(counted(builder_body(e, r, name, waits)), h) {
                Ok(handle) => push(
                    &format!(
                        "task::Builder(budget {budget}, policy {policy:?}, reserve {reserve})"
                    ),
                    handle,
                ),
                Err(MkAllocError::ExceedsLimit { .. }) if oversize => bump(C::FaultExceeds),
                Err(err) => fail(format!("task::Builder::spawn_on failed: {err}")),
            }
        }
        Op::Reserve => {
            bump(C::OpReserve);
            let spawned = task::Builder::new()
                .name("admission batch")
                .budget(&env.admit_pool)
                .spawn_on(counted(admission(e, r)), h);
            push(
                "admission batch",
                spawned.expect("no reservation, so it spawns"),
            );
        }
        Op::Abort => {
            bump(C::OpAbort);
            if !pending.is_empty() && rng.one_in(2) {
                pending[rng.below(pending.len())].handle.abort();
                bump(C::FaultAbort);
            } else {
                let handle = if rng.one_in(2) {
                    let pool = if rng.one_in(2) {
                        &env.wait_a
                    } else {
                        &env.wait_b
                    };
                    task::Builder::new()
                        .budget(pool)
                        .spawn_on(counted(wait_body(r)), h)
                        .expect("no reservation, so it spawns")
                } else {
                    h.spawn(counted(victim(e, r)))
                };
                if rng.one_in(2) {
                    handle.abort();
                    bump(C::FaultAbort);
                }
                pending.push(Pending {
                    what: "abort victim".into(),
                    handle,
                });
            }
        }
        Op::Panic => {
            bump(C::OpPanic);
            push("panicking task", h.spawn(counted(panicky(e, r))));
        }
        Op::Foreign => {
            bump(C::OpForeign);
            push("foreign wake-ups", h.spawn(counted(foreign(e, r))));
        }
        Op::Wait => {
            bump(C::OpWait);
            let pool = if rng.one_in(2) {
                &env.wait_a
            } else {
                &env.wait_b
            };
            if rng.one_in(8) {
                // A memory wait on a plain thread, outside any task.
                let (budget, bytes, hold) = (pool.clone(), rng.range(1, 4096), rng.micros(1000));
                env.thread(move || {
                    bump(C::ForeignBlockOn);
                    let what = "MkBudget::acquire on a foreign thread";
                    match futures::executor::block_on(bounded(
                        WAIT_LIMIT,
                        what,
                        budget.acquire(bytes),
                    )) {
                        Some(Ok(guard)) => {
                            bump(C::Acquired);
                            thread::sleep(hold);
                            drop(guard);
                        }
                        Some(Err(err)) => fail(format!("{what} failed: {err}")),
                        None => {}
                    }
                });
            } else {
                let spawned = task::Builder::new()
                    .budget(pool)
                    .spawn_on(counted(wait_body(r)), h);
                push("Wait task", spawned.expect("no reservation, so it spawns"));
            }
        }
        Op::Fail => {
            bump(C::OpFail);
            let b = if rng.one_in(2) {
                task::Builder::new().budget(&env.fail_pool)
            } else {
                task::Builder::new()
                    .budget(&env.timeout_pool)
                    .policy(MkBackpressure::Fail)
            };
            let spawned = b.spawn_on(counted(pool_body(e, r, "Fail task")), h);
            push("Fail task", spawned.expect("no reservation, so it spawns"));
        }
        Op::Timeout => {
            bump(C::OpTimeout);
            let d = MkBackpressure::Timeout(Duration::from_millis(rng.range(1, 5) as u64));
            let b = match rng.below(3) {
                0 => task::Builder::new().budget(&env.timeout_pool),
                1 => task::Builder::new().budget(&env.fail_pool).policy(d),
                _ => task::Builder::new()
                    .budget(rng.range(16 * KIB, 64 * KIB))
                    .policy(d),
            };
            let spawned = b.spawn_on(counted(pool_body(e, r, "Timeout task")), h);
            push(
                "Timeout task",
                spawned.expect("no reservation, so it spawns"),
            );
        }
        Op::Evict => {
            bump(C::OpEvict);
            let spawned = task::Builder::new()
                .budget(&env.evict_pool)
                .spawn_on(counted(evict_body(e, r)), h);
            push("Evict task", spawned.expect("no reservation, so it spawns"));
        }
        Op::Boxes => {
            bump(C::OpBoxes);
            // Bounded by bytes, one to four boxes' worth, under a random policy for the sender.
            let bound = rng.range(1, 5) * size_of::<Obj>();
            let (tx, rx) = MkAsyncChannel::bounded_bytes(bound, rng.policy());
            push(
                "box consumer",
                h.spawn(counted(box_consumer(e.clone(), rng.fork(), rx))),
            );
            let policy = rng.policy();
            let waits = match policy {
                MkBackpressure::Wait => env.waits(),
                _ => 0,
            };
            let spawned = task::Builder::new()
                .name("box producer")
                .budget(rng.range(128 * KIB, 256 * KIB))
                .policy(policy)
                .spawn_on(counted(box_producer(e, r, tx, waits)), h);
            push(
                "box producer",
                spawned.expect("no reservation, so it spawns"),
            );
        }
        Op::Arenas => {
            bump(C::OpArenas);
            let (tx, rx) = MkAsyncChannel::bounded(rng.range(1, 3), MkBackpressure::Wait);
            push(
                "arena consumer",
                h.spawn(counted(arena_consumer(e.clone(), rng.fork(), rx))),
            );
            push("arena producer", h.spawn(counted(arena_producer(e, r, tx))));
        }
        Op::Blocking => {
            bump(C::OpBlocking);
            push(
                "spawn_blocking",
                rt.spawn_blocking(counted_fn(move || blocking_body(e, r))),
            );
        }
        Op::WakerPanic => {
            bump(C::OpWakerPanic);
            push("panicking wakers", h.spawn(counted(waker_panics(e, r))));
        }
        Op::Sockets => {
            bump(C::OpSockets);
            push("cancelled socket waits", h.spawn(counted(socket_waits(r))));
        }
        Op::BlockOn => {
            bump(C::OpBlockOn);
            if !pending.is_empty() {
                let Pending { what, mut handle } = pending.swap_remove(rng.below(pending.len()));
                // Keeps reaping meanwhile: finished outputs may hold memory that the awaited
                // task waits for, and only this thread drops them.
                let res = rt.block_on(async {
                    let deadline = Instant::now() + WAIT_LIMIT;
                    loop {
                        let tick = sleep(Duration::from_millis(1));
                        if let Either::Left((res, _)) = select(&mut handle, tick).await {
                            break Some(res);
                        }
                        reap(pending);
                        if Instant::now() > deadline {
                            fail(format!(
                                "stuck: block_on({what}) did not finish within {WAIT_LIMIT:?}; \
                                 state then:\n{}",
                                report()
                            ));
                            break None;
                        }
                    }
                });
                if let Some(res) = res {
                    note_join(res, &what);
                }
            }
        }
    }
}

/// Accounts for every finished handle.
fn reap(pending: &mut Vec<Pending>) {
    let mut i = 0;
    while i < pending.len() {
        if pending[i].handle.is_finished() {
            let p = pending.swap_remove(i);
            match p.handle.now_or_never() {
                Some(res) => note_join(res, &p.what),
                None => fail(format!(
                    "{}: is_finished() but awaiting the handle is still pending",
                    p.what
                )),
            }
        } else {
            i += 1;
        }
    }
    OUTSTANDING.store(pending.len(), SeqCst);
}

/// Waits until `cond` holds; `false` (with a failure recorded) after [`SETTLE`].
fn settle(what: &str, mut cond: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + SETTLE;
    while !cond() {
        if Instant::now() > deadline {
            fail(format!("not settled within {SETTLE:?}: {what}"));
            return false;
        }
        thread::sleep(Duration::from_millis(1));
    }
    true
}

/// Runs one runtime from build to drop; `false` if its end-of-life checks failed.
fn run_epoch(rng: &mut Rng, epoch: u64, end: Instant) -> bool {
    let (rt, env, desc) = build_env(rng, epoch);
    *lk(&METRICS) = Some(rt.metrics());
    let epoch_end = (Instant::now() + Duration::from_millis(rng.range(100, 800) as u64)).min(end);
    let mut pending: Vec<Pending> = Vec::new();
    set_phase(format!("runtime {epoch} ({desc}): issuing operations"));
    while Instant::now() < epoch_end {
        reap(&mut pending);
        if pending.len() >= MAX_OUTSTANDING || live_futures() >= MAX_LIVE {
            thread::sleep(Duration::from_micros(200));
            continue;
        }
        let op = pick_op(rng);
        issue(op, &rt, &env, rng, &mut pending);
        if rng.one_in(16) {
            thread::sleep(rng.micros(300));
        }
    }
    let graceful = epoch_end >= end || rng.one_in(2);
    if graceful {
        set_phase(format!(
            "runtime {epoch} ({desc}): draining before a graceful drop"
        ));
        let m = rt.metrics();
        loop {
            reap(&mut pending);
            if pending.is_empty() && m.num_alive_tasks() == 0 && live_futures() == 0 {
                break;
            }
            thread::sleep(Duration::from_millis(1));
        }
        env.join_threads();
        let state = (
            m.num_alive_tasks(),
            m.tasks_waiting_for_memory(),
            m.tasks_awaiting_admission(),
            m.memory_waiting(),
        );
        if state != (0, 0, 0, 0) {
            fail(format!(
                "runtime {epoch}: drained, yet (alive tasks, waiting for memory, awaiting \
                 admission, root waiters) = {state:?}"
            ));
        }
        env.cache.clear();
        settle("the root budget is back to 0 before the drop", || {
            m.memory_used() == 0
        });
        set_phase(format!("runtime {epoch} ({desc}): graceful drop"));
        drop(rt);
        bump(C::Graceful);
    } else {
        let live = live_futures();
        set_phase(format!(
            "runtime {epoch} ({desc}): shutdown mid-flight with {} handles and {live} futures live",
            pending.len()
        ));
        match rng.below(4) {
            0 => {
                bump(C::ShutdownDrop);
                drop(rt);
            }
            1 => {
                bump(C::ShutdownTimeout);
                rt.shutdown_timeout(Duration::from_secs(5));
            }
            2 => {
                bump(C::ShutdownBackground);
                rt.shutdown_background();
            }
            _ => {
                bump(C::ShutdownThread);
                let dropper = thread::spawn(move || drop(rt));
                if dropper.join().is_err() {
                    fail("dropping a runtime on another thread panicked".into());
                }
            }
        }
    }
    finish_epoch(epoch, &desc, env, pending)
}

/// After the runtime is gone: every handle resolves, every future and object is dropped once,
/// every budget is back to 0.
fn finish_epoch(epoch: u64, desc: &str, env: Arc<Env>, mut pending: Vec<Pending>) -> bool {
    set_phase(format!("runtime {epoch} ({desc}): end-of-life checks"));
    let mut ok = settle(
        "every join handle resolves after the runtime is gone",
        || pending.iter().all(|p| p.handle.is_finished()),
    );
    reap(&mut pending);
    ok &= settle("every future created is dropped", || live_futures() == 0);
    env.join_threads();
    flush_timer();
    env.cache.clear();
    drop(env);
    *lk(&METRICS) = None;
    let budgets = std::mem::take(&mut *lk(&BUDGETS));
    ok &= settle("every budget is back to 0 used and 0 waiting", || {
        budgets
            .iter()
            .all(|(_, b)| b.used() == 0 && b.waiting() == 0)
    });
    for (name, b) in &budgets {
        if b.used() != 0 || b.waiting() != 0 {
            fail(format!(
                "runtime {epoch} ({desc}): budget {name} not released: {b:?}"
            ));
        }
        bump(C::BudgetsChecked);
    }
    ok &= settle("every object created is dropped", || {
        get(C::ObjDropped) == get(C::ObjCreated)
    });
    if !ok {
        // Keep the budgets visible to the report.
        lk(&BUDGETS).extend(budgets);
    }
    ok
}

// ------------------------------------------------------------------------------------------
// Watchdog, RSS, summary
// ------------------------------------------------------------------------------------------

static DONE: AtomicBool = AtomicBool::new(false);

fn start_watchdog() -> thread::JoinHandle<()> {
    thread::Builder::new()
        .name("soak-watchdog".into())
        .spawn(|| {
            let mut last = PROGRESS.load(SeqCst);
            let mut since = Instant::now();
            while !DONE.load(SeqCst) {
                thread::sleep(Duration::from_millis(100));
                let now = PROGRESS.load(SeqCst);
                if now != last {
                    last = now;
                    since = Instant::now();
                } else if since.elapsed() > STALL {
                    say(&format!(
                        "\n=== soak watchdog: no progress for {STALL:?}: deadlock or lost wake-up ===\n{}",
                        report()
                    ));
                    std::process::exit(1);
                }
            }
        })
        .expect("start the watchdog")
}

/// The state of the run: phase, counters, budgets, metrics.
fn report() -> String {
    let mut s = String::new();
    let seed = SEED.load(SeqCst);
    let _ = writeln!(s, "seed: {seed} (replay: MEMKIT_SOAK_SEED={seed})");
    match PHASE.try_lock() {
        Ok(p) => {
            let _ = writeln!(s, "phase: {}", *p);
        }
        Err(_) => s.push_str("phase: <locked>\n"),
    }
    let _ = writeln!(
        s,
        "live futures: {}, outstanding top-level handles: {}",
        live_futures(),
        OUTSTANDING.load(SeqCst)
    );
    s.push_str(&counter_summary());
    match BUDGETS.try_lock() {
        Ok(list) => {
            s.push_str("budgets (named pools, and any other not at 0):\n");
            let mut shown = 0;
            for (i, (name, b)) in list.iter().enumerate() {
                if (i < 9 || b.used() != 0 || b.waiting() != 0) && shown < 60 {
                    let _ = writeln!(
                        s,
                        "  {name}: used {} / {} bytes, waiting {}, peak {}, policy {:?}",
                        b.used(),
                        b.limit(),
                        b.waiting(),
                        b.peak(),
                        b.policy()
                    );
                    shown += 1;
                }
            }
        }
        Err(_) => s.push_str("budgets: <locked>\n"),
    }
    match METRICS.try_lock() {
        Ok(m) => match &*m {
            Some(m) => {
                let _ = writeln!(
                    s,
                    "metrics: num_alive_tasks {}, tasks_waiting_for_memory {}, \
                     tasks_awaiting_admission {}, injection_queue_depth {}, num_workers {}, \
                     num_parked_workers {}, memory_used {}, memory_waiting {}, \
                     blocking threads {} ({} idle), blocking_queue_depth {}",
                    m.num_alive_tasks(),
                    m.tasks_waiting_for_memory(),
                    m.tasks_awaiting_admission(),
                    m.injection_queue_depth(),
                    m.num_workers(),
                    m.num_parked_workers(),
                    m.memory_used(),
                    m.memory_waiting(),
                    m.num_blocking_threads(),
                    m.num_idle_blocking_threads(),
                    m.blocking_queue_depth(),
                );
                for w in 0..m.num_workers() {
                    let _ = writeln!(
                        s,
                        "  worker {w}: local queue {}, polls {}, parks {}, steals {}",
                        m.worker_local_queue_depth(w),
                        m.worker_poll_count(w),
                        m.worker_park_count(w),
                        m.worker_steal_count(w)
                    );
                }
            }
            None => s.push_str("metrics: no runtime alive\n"),
        },
        Err(_) => s.push_str("metrics: <locked>\n"),
    }
    if let Ok(f) = FAILURES.try_lock() {
        for msg in f.iter() {
            let _ = writeln!(s, "failure: {msg}");
        }
    }
    s
}

/// Nonzero counters, grouped by their label's first word.
fn counter_summary() -> String {
    let mut s = String::new();
    for group in ["op", "fault", "join", "alloc", "flow", "runtime", "check"] {
        let items: Vec<String> = LABELS
            .iter()
            .zip(COUNTS.iter())
            .filter(|(label, _)| label.split(' ').next() == Some(group))
            .map(|(label, n)| format!("{}: {}", &label[group.len() + 1..], n.load(SeqCst)))
            .collect();
        let _ = writeln!(s, "  {group:>7} | {}", items.join(", "));
    }
    s
}

/// Resident set size in bytes (Linux), if known.
fn vm_rss() -> Option<usize> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    let kib: usize = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * KIB)
}

fn env_u64(name: &str) -> Option<u64> {
    let v = std::env::var(name).ok()?;
    match v.trim().parse() {
        Ok(n) => Some(n),
        Err(_) => panic!("{name}={v:?} is not a number"),
    }
}

#[test]
#[cfg_attr(miri, ignore = "a soak test: seconds of real threads, timing and RSS")]
fn soak_random_mix_of_everything() {
    let secs = env_u64("MEMKIT_SOAK_SECS").unwrap_or(DEFAULT_SECS);
    let seed = env_u64("MEMKIT_SOAK_SEED").unwrap_or_else(|| {
        let t = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default();
        t.as_nanos() as u64 ^ u64::from(std::process::id()).rotate_left(32)
    });
    SEED.store(seed, SeqCst);
    say(&format!(
        "soak: {secs} s, seed {seed} (replay: MEMKIT_SOAK_SEED={seed} MEMKIT_SOAK_SECS={secs})"
    ));
    install_panic_filter();
    let rss_before = vm_rss();
    let watchdog = start_watchdog();
    let mut rng = Rng::new(seed);
    let start = Instant::now();
    let end = start + Duration::from_secs(secs);
    let mut epoch = 0;
    let mut clean = true;
    while clean && (epoch == 0 || Instant::now() < end) {
        clean = run_epoch(&mut rng, epoch, end);
        epoch += 1;
    }
    set_phase("finished".into());
    flush_timer();
    let rss_after = vm_rss();
    DONE.store(true, SeqCst);
    let _ = watchdog.join();

    let mut summary = format!(
        "soak: seed {seed}, {epoch} runtimes in {:.1?}\n{}",
        start.elapsed(),
        counter_summary()
    );
    if let (Some(before), Some(after)) = (rss_before, rss_after) {
        let _ = writeln!(
            summary,
            "  rss | before {} KiB, after {} KiB, growth {} KiB (bound {} KiB)",
            before / KIB,
            after / KIB,
            after.saturating_sub(before) / KIB,
            RSS_SLACK / KIB
        );
    }
    say(&summary);

    let failures = lk(&FAILURES).clone();
    assert!(
        failures.is_empty(),
        "soak failed (seed {seed}, replay with MEMKIT_SOAK_SEED={seed}):\n{}\n{}",
        failures.join("\n"),
        report()
    );
    assert_eq!(
        get(C::FutCreated),
        get(C::FutDropped),
        "futures created vs dropped (seed {seed})"
    );
    assert_eq!(
        get(C::ObjCreated),
        get(C::ObjDropped),
        "objects created vs dropped (seed {seed})"
    );
    assert!(
        get(C::Runtimes) >= 1 && get(C::JoinOk) > 0,
        "the soak did no work"
    );
    if let (Some(before), Some(after)) = (rss_before, rss_after) {
        assert!(
            after < before + RSS_SLACK,
            "RSS grew from {} KiB to {} KiB (seed {seed})",
            before / KIB,
            after / KIB
        );
    }
}
