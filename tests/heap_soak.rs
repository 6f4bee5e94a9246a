//! Soak of heap accounting and its enforcement, with `MkGlobalAlloc` installed: a chain of
//! runtimes, each running random tasks under budgets of every policy that grow, shrink and
//! reallocate plain vectors, hand them to other tasks and to a plain thread to free (some after
//! the runtime is gone), allocate in `spawn_blocking`, spawn children, panic and get aborted.
//!
//! Checked after each runtime and its frees: every budget (the runtime's root included) is back
//! to 0 bytes with no task parked and no request waiting; every future was dropped exactly once;
//! a task ends only as done, cancelled for memory (on `Fail`, `Timeout` and `Evict` budgets,
//! never on `Wait` ones), aborted or panicked by the test. A watchdog fails the run if no task
//! finishes for `STALL`.
//!
//! `MEMKIT_SOAK_SECS` sets the run time (3 s unset; CI runs 60 s in release);
//! `MEMKIT_SOAK_SEED` replays a sequence of operations.

use memkit_async::runtime::Builder;
use memkit_async::{task, MkBackpressure, MkBudget, MkGlobalAlloc, Runtime};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::SeqCst};
use std::sync::{mpsc, Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

#[global_allocator]
static GLOBAL: MkGlobalAlloc = MkGlobalAlloc::system();

const STALL: Duration = Duration::from_secs(20);
const INJECTED: &str = "heap soak: injected panic";
const KIB: usize = 1 << 10;

static CREATED: AtomicU64 = AtomicU64::new(0);
static DROPPED: AtomicU64 = AtomicU64::new(0);
static FINISHED: AtomicU64 = AtomicU64::new(0);
static DONE: AtomicBool = AtomicBool::new(false);
/// The running runtime's budgets and metrics, for the watchdog's report.
static WATCHED: Mutex<Option<(Vec<MkBudget>, memkit_async::runtime::RuntimeMetrics)>> =
    Mutex::new(None);

struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        // xorshift64*
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
    fn range(&mut self, lo: usize, hi: usize) -> usize {
        lo + self.below(hi - lo)
    }
    fn one_in(&mut self, n: usize) -> bool {
        self.below(n) == 0
    }
    fn fork(&mut self) -> Rng {
        Rng(self.next() | 1)
    }
}

/// Counts its drop: every task's future carries one.
struct Tracked;

impl Tracked {
    fn new() -> Tracked {
        CREATED.fetch_add(1, SeqCst);
        Tracked
    }
}

impl Drop for Tracked {
    fn drop(&mut self) {
        DROPPED.fetch_add(1, SeqCst);
    }
}

/// Where vectors go to be freed by someone else.
struct Shared {
    /// Taken and dropped by other tasks.
    mailbox: Mutex<Vec<Vec<u8>>>,
    /// Freed by a plain thread, some after the runtime is gone.
    graveyard: Mutex<mpsc::Sender<Vec<u8>>>,
}

fn policy(rng: &mut Rng) -> MkBackpressure {
    match rng.below(4) {
        0 => MkBackpressure::Wait,
        1 => MkBackpressure::Fail,
        2 => MkBackpressure::Timeout(Duration::from_millis(rng.range(1, 30) as u64)),
        _ => MkBackpressure::Evict,
    }
}

/// One task's life: random heap work for a few steps.
async fn work(shared: Arc<Shared>, mut rng: Rng, depth: usize) -> usize {
    let _tracked = Tracked::new();
    let mut held: Vec<Vec<u8>> = Vec::new();
    let mut touched = 0;
    for _ in 0..rng.range(1, 24) {
        match rng.below(12) {
            0..=2 => {
                let size = rng.range(1, 256 * KIB);
                held.push(vec![size as u8; size]);
            }
            3 => drop(held.pop()),
            4 => {
                if let Some(v) = held.last_mut() {
                    // Grows in place or moves; shrinks keep the charge exact either way.
                    let size = rng.range(0, 512 * KIB);
                    v.resize(size, 1);
                    v.shrink_to_fit();
                }
            }
            5 => {
                if let Some(v) = held.pop() {
                    shared.mailbox.lock().unwrap().push(v);
                }
            }
            6 => {
                let taken = shared.mailbox.lock().unwrap().pop();
                touched += taken.map_or(0, |v| v.len());
            }
            7 => {
                if let Some(v) = held.pop() {
                    let _ = shared.graveyard.lock().unwrap().send(v);
                }
            }
            8 => {
                let size = rng.range(1, 128 * KIB);
                let v = memkit_async::spawn_blocking(move || vec![3u8; size]).await;
                if let Ok(v) = v {
                    held.push(v);
                }
            }
            9 if depth < 2 => {
                let child = memkit_async::spawn(boxed(shared.clone(), rng.fork(), depth + 1));
                if rng.one_in(3) {
                    child.abort();
                }
                touched += child.await.unwrap_or(0);
            }
            10 => memkit_async::time::sleep(Duration::from_millis(rng.below(3) as u64)).await,
            _ => task::yield_now().await,
        }
        if rng.one_in(400) {
            panic!("{INJECTED}");
        }
    }
    touched + held.iter().map(Vec::len).sum::<usize>()
}

/// `work` behind a pointer, for the recursion.
fn boxed(
    shared: Arc<Shared>,
    rng: Rng,
    depth: usize,
) -> std::pin::Pin<Box<dyn std::future::Future<Output = usize> + Send>> {
    Box::pin(work(shared, rng, depth))
}

/// One runtime: budgets, tasks, their ends, and the checks once everything is freed.
fn run_epoch(rng: &mut Rng, epoch: usize) {
    let workers = rng.range(1, 4);
    let root_policy = if rng.one_in(2) {
        MkBackpressure::Wait
    } else {
        policy(rng)
    };
    let root_limit = rng.range(32, 256) << 20;
    let rt: Runtime = Builder::new()
        .worker_threads(workers)
        .memory_limit(root_limit)
        .memory_policy(root_policy)
        .build()
        .unwrap();
    let root = rt.memory_budget().clone();
    let budgets: Vec<MkBudget> = (0..rng.range(1, 5))
        .map(|_| {
            let limit = rng.range(256 * KIB, 8 << 20);
            let p = policy(rng);
            if rng.one_in(2) {
                root.child(limit).with_policy(p)
            } else {
                MkBudget::new(limit).with_policy(p)
            }
        })
        .collect();
    let (tx, rx) = mpsc::channel::<Vec<u8>>();
    let graveyard = std::thread::spawn(move || {
        // Frees as they come, except some kept until the sender is gone (after the runtime).
        let mut kept = Vec::new();
        for (i, v) in rx.into_iter().enumerate() {
            if i % 3 == 0 {
                kept.push(v);
            }
        }
        drop(kept);
    });
    let shared = Arc::new(Shared {
        mailbox: Mutex::new(Vec::new()),
        graveyard: Mutex::new(tx),
    });
    *WATCHED.lock().unwrap() = Some((
        budgets.iter().chain([&root]).cloned().collect(),
        rt.metrics(),
    ));
    let mut handles = Vec::new();
    for _ in 0..rng.range(8, 64) {
        let future = work(shared.clone(), rng.fork(), 0);
        let handle = match rng.below(3) {
            0 => rt.spawn(future),
            _ => {
                let budget = &budgets[rng.below(budgets.len())];
                task::Builder::new()
                    .name("soak")
                    .budget(budget)
                    .spawn_on(future, rt.handle())
                    .unwrap()
            }
        };
        if rng.one_in(10) {
            handle.abort();
        }
        handles.push(handle);
    }
    for handle in handles {
        match rt.block_on(handle) {
            Ok(_) => {}
            Err(e) if e.is_panic() => assert!(format!("{e:?}").contains(INJECTED), "{e:?}"),
            Err(e) if e.is_memory_exceeded() => {
                // Only a budget that gives up cancels: never one that waits.
                assert!(!e.to_string().contains("with the Wait policy"), "{e}");
            }
            Err(e) => assert!(e.is_cancelled(), "{e}"),
        }
        FINISHED.fetch_add(1, SeqCst);
    }
    drop(rt);
    // Every task is gone; what is still alive was handed on, and is freed now.
    drop(
        Arc::try_unwrap(shared)
            .ok()
            .expect("the tasks held the last other handles"),
    );
    graveyard.join().unwrap();
    for (i, b) in budgets.iter().chain([&root]).enumerate() {
        assert_eq!(
            (b.used(), b.parked(), b.waiting()),
            (0, 0, 0),
            "runtime {epoch}: budget {i} ({b:?}) is not back to its baseline"
        );
    }
    assert_eq!(
        CREATED.load(SeqCst),
        DROPPED.load(SeqCst),
        "runtime {epoch}"
    );
}

#[test]
#[cfg_attr(miri, ignore = "a soak: seconds of threads and real memory")]
fn heap_accounting_soak() {
    let secs: u64 = std::env::var("MEMKIT_SOAK_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(3);
    let seed: u64 = std::env::var("MEMKIT_SOAK_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| {
            SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .unwrap_or_default()
                .as_nanos() as u64
                | 1
        });
    eprintln!("heap soak: {secs} s, seed {seed} (replay: MEMKIT_SOAK_SEED={seed})");
    let quiet = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        if !info.to_string().contains(INJECTED) {
            quiet(info);
        }
    }));
    let watchdog = std::thread::spawn(move || {
        let mut last = (FINISHED.load(SeqCst), Instant::now());
        while !DONE.load(SeqCst) {
            std::thread::sleep(Duration::from_millis(100));
            let now = FINISHED.load(SeqCst);
            if now != last.0 {
                last = (now, Instant::now());
            } else if last.1.elapsed() > STALL {
                eprintln!("heap soak: no task finished for {STALL:?}: a hang (seed {seed})");
                if let Some((budgets, m)) = WATCHED.lock().unwrap().as_ref() {
                    for b in budgets {
                        eprintln!("  {b:?} parked {}", b.parked());
                    }
                    eprintln!(
                        "  alive {} held {} waiting {} stalls {} parked workers {}",
                        m.num_alive_tasks(),
                        m.tasks_held_for_memory(),
                        m.tasks_waiting_for_memory(),
                        m.memory_stalls(),
                        m.num_parked_workers()
                    );
                    for t in m.tasks_by_memory() {
                        eprintln!("  {t:?}");
                    }
                }
                std::process::exit(1);
            }
        }
    });
    let start = Instant::now();
    let mut rng = Rng(seed);
    let mut epochs = 0;
    while epochs == 0 || start.elapsed() < Duration::from_secs(secs) {
        run_epoch(&mut rng, epochs);
        epochs += 1;
    }
    DONE.store(true, SeqCst);
    watchdog.join().unwrap();
    eprintln!(
        "heap soak: {epochs} runtimes, {} tasks in {:.1?}; unattributed bytes now {}",
        CREATED.load(SeqCst),
        start.elapsed(),
        memkit_async::heap::unattributed_bytes()
    );
}
