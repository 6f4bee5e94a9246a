//! Memory pressure: 10 000 tasks that each need 1 MiB, on a runtime allowed 64 MiB.
//!
//! Two variants, same worker count (2, or `MEMKIT_BENCH_WORKERS`):
//!
//! - `memkit`: `Builder::memory_limit(64 << 20)` (root policy `Wait`, the default). Each task
//!   allocates its 1 MiB buffer with `MkAsyncVec::with_capacity(..).await` in its own arena (one
//!   1 MiB chunk charged to the root budget), so a task whose buffer does not fit under the limit
//!   is parked by the scheduler until another task's buffer is released.
//! - `tokio`: the multi-thread runtime, with a `tokio::sync::Semaphore` of 64 permits standing for
//!   64 MiB (one 1 MiB permit per task): acquire, then allocate a 1 MiB `Vec<u8>`.
//!
//! Every task first waits at a start gate (a `tokio::sync::watch`, runtime-agnostic) that opens
//! once all of them are spawned, so all 10 000 want memory at once: without it, on a fast
//! runtime the workers finish tasks about as fast as the spawning task creates them, and the
//! limit is never contended. Each task then allocates, touches its buffer, yields twice while
//! holding it (so tasks overlap), and drops it. The children count the most buffers held at once
//! (64 when the limit is contended) and print it with their results.
//!
//! Touching (`MEMKIT_PRESSURE_TOUCH`):
//! - `fill` (default): both variants write the whole 1 MiB with `resize` (memkit:
//!   `MkAsyncVec::<u8>::try_resize`, within the capacity so it never allocates; tokio:
//!   `Vec::<u8>::resize`), so every page is resident and RSS is real. Writing only one byte in
//!   every 4096 would be cheaper, but `MkAsyncVec` has no way to write into its spare capacity
//!   (no `spare_capacity_mut` or `as_mut_ptr`): elements must be initialised in order, so both
//!   sides pay the same full write instead. Expect this 1 MiB memset per task (memory bandwidth)
//!   to be a large part of both wall times.
//! - `none`: `with_capacity` and nothing written: the cost of the runtime, the budget or
//!   semaphore and the allocator alone (peak RSS is then not meaningful: untouched pages are not
//!   resident).
//!
//! What is reported per variant: wall time from the first spawn until every task is done
//! (runtime start and shutdown excluded), and peak RSS (`VmHWM` from `/proc/self/status`). Both
//! variants cannot share a process (peak RSS is per process), so the bench re-executes itself
//! (`std::env::current_exe()`) once per variant and round, with `--variant <name>`; the child
//! prints one `RESULT` line and the parent prints medians and the memkit/tokio ratios. Rounds
//! alternate which variant goes first (5 rounds by default, `MEMKIT_PRESSURE_ROUNDS`).
//!
//! Targets (from the issue): memkit peak RSS under the limit + 16 MiB (80 MiB, whole process),
//! and memkit wall time at most tokio's.
//!
//! Run with:
//!
//! ```text
//! cargo bench --bench memory_pressure
//! MEMKIT_PRESSURE_TOUCH=none cargo bench --bench memory_pressure
//! MEMKIT_PRESSURE_ROUNDS=9 cargo bench --bench memory_pressure
//! ```
//!
//! Without `--bench` (as `cargo test --benches` runs it) it does a quick smoke run of 256 tasks
//! and one round.

use memkit_async::MkAsyncVec;
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::{watch, Semaphore};

/// Tasks in a full run.
const TASKS: usize = 10_000;
/// Tasks in a smoke run (no `--bench` argument).
const SMOKE_TASKS: usize = 256;
/// Bytes each task holds.
const TASK_BYTES: usize = 1 << 20;
/// The runtime's memory limit (memkit) and the bytes the semaphore stands for (tokio).
const LIMIT: usize = 64 << 20;
/// Semaphore permits for tokio: one per `TASK_BYTES` under `LIMIT`.
const PERMITS: usize = LIMIT / TASK_BYTES;
/// Page size: the unit of `Touch::pages`.
const PAGE: usize = 4096;
/// Pages per task buffer.
const PAGES: usize = TASK_BYTES / PAGE;
/// `yield_now().await` calls per task while it holds its buffer.
const YIELDS: usize = 2;
/// Peak-RSS target for memkit: the limit plus this slack.
const RSS_SLACK: usize = 16 << 20;

/// How tasks touch their buffers (see the file docs).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Touch {
    /// Write the whole buffer, one page at a time.
    Fill,
    /// Write nothing.
    None,
}

impl Touch {
    fn from_env() -> Touch {
        match std::env::var("MEMKIT_PRESSURE_TOUCH").as_deref() {
            Err(_) | Ok("" | "fill") => Touch::Fill,
            Ok("none") => Touch::None,
            Ok(other) => panic!("MEMKIT_PRESSURE_TOUCH: `{other}` is not `fill` or `none`"),
        }
    }

    /// Pages each task writes.
    fn pages(self) -> usize {
        match self {
            Touch::Fill => PAGES,
            Touch::None => 0,
        }
    }
}

/// Counts the tasks holding a buffer, and the most that ever did at once.
#[derive(Default)]
struct Holders {
    now: AtomicUsize,
    max: AtomicUsize,
}

impl Holders {
    fn enter(&self) {
        let n = self.now.fetch_add(1, Ordering::Relaxed) + 1;
        self.max.fetch_max(n, Ordering::Relaxed);
    }

    fn leave(&self) {
        self.now.fetch_sub(1, Ordering::Relaxed);
    }
}

/// What a child reports.
#[derive(Clone, Debug, Default)]
struct Sample {
    wall: Duration,
    /// Peak resident set (`VmHWM`), KiB.
    hwm_kib: u64,
    /// Resident set just before the first spawn (`VmRSS`), KiB.
    base_kib: u64,
    /// Most tasks that held their buffer at the same time.
    max_holders: u64,
    /// memkit only: the root budget's peak, bytes.
    budget_peak: u64,
    /// memkit only: arena chunks taken from the system.
    chunks_from_system: u64,
}

/// A line of `/proc/self/status` such as `VmHWM:  81234 kB`, in KiB (0 where unavailable).
fn proc_status_kib(key: &str) -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix(key)?.strip_prefix(':').map(str::to_owned))
        })
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

/// Worker count: `MEMKIT_BENCH_WORKERS` (one number), default 2.
fn workers() -> usize {
    match std::env::var("MEMKIT_BENCH_WORKERS") {
        Ok(s) if !s.trim().is_empty() => match s.trim().parse::<usize>() {
            Ok(n) if n > 0 => n,
            _ => panic!("MEMKIT_BENCH_WORKERS: `{s}` is not one positive integer"),
        },
        _ => 2,
    }
}

// ---------------------------------------------------------------------------------------------
// Children: one variant each.
// ---------------------------------------------------------------------------------------------

/// Writes `pages` pages of `byte` (within the capacity: never allocates).
fn fill_memkit(buf: &mut MkAsyncVec<u8>, pages: usize, byte: u8) {
    buf.try_resize(pages * PAGE, byte)
        .expect("resize within capacity failed");
}

/// As [`fill_memkit`], for the tokio side's `Vec<u8>`.
fn fill_vec(buf: &mut Vec<u8>, pages: usize, byte: u8) {
    buf.resize(pages * PAGE, byte);
}

fn run_memkit(tasks: usize, workers: usize, touch: Touch) -> Sample {
    let pages = touch.pages();
    let rt = memkit_async::Builder::new()
        .worker_threads(workers)
        .memory_limit(LIMIT)
        .build()
        .expect("build memkit runtime");
    let holders = Arc::new(Holders::default());
    let h = Arc::clone(&holders);
    let base_kib = proc_status_kib("VmRSS");
    let start = Instant::now();
    rt.block_on(rt.spawn(async move {
        let (go_tx, go_rx) = watch::channel(false);
        let handles: Vec<_> = (0..tasks)
            .map(|i| {
                let holders = Arc::clone(&h);
                let mut go = go_rx.clone();
                memkit_async::spawn(async move {
                    go.wait_for(|&go| go).await.expect("gate dropped");
                    let mut buf = MkAsyncVec::<u8>::with_capacity(TASK_BYTES)
                        .await
                        .expect("memkit allocation failed");
                    holders.enter();
                    fill_memkit(&mut buf, pages, i as u8);
                    std::hint::black_box(&mut buf);
                    for _ in 0..YIELDS {
                        memkit_async::task::yield_now().await;
                    }
                    holders.leave();
                    drop(buf);
                })
            })
            .collect();
        go_tx.send(true).expect("every task gone");
        for h in handles {
            h.await.expect("task panicked");
        }
    }))
    .expect("root task panicked");
    let wall = start.elapsed();
    let m = rt.metrics();
    Sample {
        wall,
        hwm_kib: proc_status_kib("VmHWM"),
        base_kib,
        max_holders: holders.max.load(Ordering::Relaxed) as u64,
        budget_peak: m.memory_peak() as u64,
        chunks_from_system: m.chunks_allocated(),
    }
}

fn run_tokio(tasks: usize, workers: usize, touch: Touch) -> Sample {
    let pages = touch.pages();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(workers)
        .build()
        .expect("build tokio runtime");
    let sem = Arc::new(Semaphore::new(PERMITS));
    let holders = Arc::new(Holders::default());
    let h = Arc::clone(&holders);
    let base_kib = proc_status_kib("VmRSS");
    let start = Instant::now();
    rt.block_on(rt.spawn(async move {
        let (go_tx, go_rx) = watch::channel(false);
        let handles: Vec<_> = (0..tasks)
            .map(|i| {
                let sem = Arc::clone(&sem);
                let holders = Arc::clone(&h);
                let mut go = go_rx.clone();
                tokio::spawn(async move {
                    go.wait_for(|&go| go).await.expect("gate dropped");
                    let permit = sem.acquire().await.expect("semaphore closed");
                    let mut buf: Vec<u8> = Vec::with_capacity(TASK_BYTES);
                    holders.enter();
                    fill_vec(&mut buf, pages, i as u8);
                    std::hint::black_box(&mut buf);
                    for _ in 0..YIELDS {
                        tokio::task::yield_now().await;
                    }
                    holders.leave();
                    drop(buf);
                    drop(permit);
                })
            })
            .collect();
        go_tx.send(true).expect("every task gone");
        for h in handles {
            h.await.expect("task panicked");
        }
    }))
    .expect("root task panicked");
    let wall = start.elapsed();
    Sample {
        wall,
        hwm_kib: proc_status_kib("VmHWM"),
        base_kib,
        max_holders: holders.max.load(Ordering::Relaxed) as u64,
        ..Sample::default()
    }
}

fn child(variant: &str, tasks: usize, workers: usize) {
    let touch = Touch::from_env();
    let s = match variant {
        "memkit" => run_memkit(tasks, workers, touch),
        "tokio" => run_tokio(tasks, workers, touch),
        other => panic!("unknown variant `{other}` (memkit or tokio)"),
    };
    println!(
        "RESULT wall_ns={} hwm_kib={} base_kib={} max_holders={} budget_peak={} \
         chunks_from_system={}",
        s.wall.as_nanos(),
        s.hwm_kib,
        s.base_kib,
        s.max_holders,
        s.budget_peak,
        s.chunks_from_system
    );
}

// ---------------------------------------------------------------------------------------------
// Parent: runs the children and reports.
// ---------------------------------------------------------------------------------------------

fn spawn_child(variant: &str, tasks: usize, workers: usize) -> Sample {
    let exe = std::env::current_exe().expect("current_exe");
    let out = Command::new(exe)
        .args(["--variant", variant, "--tasks"])
        .arg(tasks.to_string())
        .arg("--workers")
        .arg(workers.to_string())
        .output()
        .expect("re-exec the bench binary");
    let stdout = String::from_utf8_lossy(&out.stdout);
    if !out.status.success() {
        panic!(
            "`{variant}` child failed ({}):\n{stdout}\n{}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let line = stdout
        .lines()
        .find_map(|l| l.strip_prefix("RESULT "))
        .unwrap_or_else(|| panic!("`{variant}` child printed no RESULT line:\n{stdout}"));
    let mut s = Sample::default();
    for field in line.split_whitespace() {
        let (k, v) = field.split_once('=').expect("key=value");
        let v: u64 = v.parse().expect("a number");
        match k {
            "wall_ns" => s.wall = Duration::from_nanos(v),
            "hwm_kib" => s.hwm_kib = v,
            "base_kib" => s.base_kib = v,
            "max_holders" => s.max_holders = v,
            "budget_peak" => s.budget_peak = v,
            "chunks_from_system" => s.chunks_from_system = v,
            _ => {}
        }
    }
    s
}

fn median<T: Copy + Ord>(mut v: Vec<T>) -> T {
    v.sort_unstable();
    v[v.len() / 2]
}

fn mib(kib: u64) -> f64 {
    kib as f64 / 1024.0
}

fn parent(tasks: usize, rounds: usize, workers: usize) {
    let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    println!(
        "memory_pressure: {tasks} tasks x {} KiB, limit {} MiB ({PERMITS} tokio permits), \
         touch {:?}, {workers} workers, {rounds} round(s); {} CPUs, loadavg {}",
        TASK_BYTES >> 10,
        LIMIT >> 20,
        Touch::from_env(),
        std::thread::available_parallelism().map_or(0, std::num::NonZero::get),
        load.split_whitespace()
            .take(3)
            .collect::<Vec<_>>()
            .join(" "),
    );
    let variants = ["memkit", "tokio"];
    let mut samples: [Vec<Sample>; 2] = [Vec::new(), Vec::new()];
    for round in 0..rounds {
        // Alternate which variant goes first, so drift hits both alike.
        let order: [usize; 2] = if round % 2 == 0 { [0, 1] } else { [1, 0] };
        for v in order {
            let s = spawn_child(variants[v], tasks, workers);
            println!(
                "  round {round} {:<6}  wall {:>8.1} ms  peak RSS {:>6.1} MiB (base {:>5.1} MiB)  \
                 most buffers held at once {}",
                variants[v],
                s.wall.as_secs_f64() * 1e3,
                mib(s.hwm_kib),
                mib(s.base_kib),
                s.max_holders,
            );
            samples[v].push(s);
        }
    }
    let wall: Vec<Duration> = samples
        .iter()
        .map(|s| median(s.iter().map(|x| x.wall).collect()))
        .collect();
    let hwm: Vec<u64> = samples
        .iter()
        .map(|s| median(s.iter().map(|x| x.hwm_kib).collect()))
        .collect();
    let hwm_max: Vec<u64> = samples
        .iter()
        .map(|s| s.iter().map(|x| x.hwm_kib).max().unwrap_or(0))
        .collect();
    let base: Vec<u64> = samples
        .iter()
        .map(|s| median(s.iter().map(|x| x.base_kib).collect()))
        .collect();
    println!();
    println!("variant  median wall   per task   median peak RSS   max peak RSS   RSS above base");
    for v in 0..2 {
        println!(
            "{:<7} {:>9.1} ms {:>7.2} us {:>13.1} MiB {:>10.1} MiB {:>12.1} MiB",
            variants[v],
            wall[v].as_secs_f64() * 1e3,
            wall[v].as_secs_f64() * 1e6 / tasks as f64,
            mib(hwm[v]),
            mib(hwm_max[v]),
            mib(hwm[v].saturating_sub(base[v])),
        );
    }
    let mk = &samples[0];
    println!(
        "memkit budget peak {:.1} MiB, arena chunks from the system (median) {}",
        median(mk.iter().map(|x| x.budget_peak).collect()) as f64 / (1 << 20) as f64,
        median(mk.iter().map(|x| x.chunks_from_system).collect()),
    );
    let time_ratio = wall[0].as_secs_f64() / wall[1].as_secs_f64();
    let rss_ratio = hwm[0] as f64 / hwm[1] as f64;
    println!("memkit / tokio: wall {time_ratio:.3}x, peak RSS {rss_ratio:.3}x");
    let rss_target_kib = ((LIMIT + RSS_SLACK) >> 10) as u64;
    println!(
        "target memkit peak RSS < {} MiB: {} (max {:.1} MiB)",
        rss_target_kib >> 10,
        if hwm_max[0] < rss_target_kib {
            "met"
        } else {
            "NOT met"
        },
        mib(hwm_max[0]),
    );
    println!(
        "target memkit wall <= tokio wall: {}",
        if time_ratio <= 1.0 { "met" } else { "NOT met" },
    );
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let value = |flag: &str| {
        args.iter()
            .position(|a| a == flag)
            .and_then(|i| args.get(i + 1))
            .cloned()
    };
    if let Some(variant) = value("--variant") {
        let tasks = value("--tasks").map_or(TASKS, |t| t.parse().expect("--tasks N"));
        let workers = value("--workers").map_or(2, |w| w.parse().expect("--workers N"));
        child(&variant, tasks, workers);
        return;
    }
    let bench = args.iter().any(|a| a == "--bench");
    let rounds = if bench {
        std::env::var("MEMKIT_PRESSURE_ROUNDS")
            .ok()
            .and_then(|r| r.trim().parse().ok())
            .filter(|&r| r > 0)
            .unwrap_or(5)
    } else {
        1
    };
    let tasks = if bench { TASKS } else { SMOKE_TASKS };
    parent(tasks, rounds, workers());
}
