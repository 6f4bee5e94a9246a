//! `MkGlobalAlloc` against the allocator it wraps: `MkGlobalAlloc<System>` against `System`,
//! and `MkGlobalAlloc<MiMalloc>` against `MiMalloc`, on allocation-heavy task code.
//!
//! A process has one global allocator, so each of the four configurations runs in a child
//! process of this bench (`MK_ALLOC=system|mk-system|mimalloc|mk-mimalloc` selects one), and
//! the parent prints the ratios of the medians when all four are done:
//!
//! ```sh
//! cargo bench --bench global_alloc
//! ```
//!
//! Every configuration runs the same code on a memkit runtime with one worker (so the
//! accounting scope of the task is entered exactly as in production):
//! - 64 B and 4 KiB allocation and free inside a task;
//! - a cross-task free: task A allocates, task B frees (the foreign-account path);
//! - a `Vec<u8>` grown to 1 MiB by pushes (the realloc path);
//! - a realistic workload: 8 tasks each parse a ~1 MB JSON document with serde_json and
//!   serialize it back, on a runtime with one worker per core.
//!
//! Each child first measures the memory cost per allocation, in its fresh heap: the
//! resident-set growth of 1,000,000 live 64-byte boxes.

use criterion::{black_box, BenchmarkId, Criterion};
use std::alloc::{GlobalAlloc, Layout, System};
use std::process::Command;
use std::sync::atomic::{AtomicU8, Ordering::Relaxed};
use std::time::{Duration, Instant};

const UNDECIDED: u8 = 0;
const DECIDING: u8 = 1;
const MODES: [&str; 4] = ["system", "mk-system", "mimalloc", "mk-mimalloc"];

static MODE: AtomicU8 = AtomicU8::new(UNDECIDED);
static MK_SYSTEM: memkit_async::MkGlobalAlloc = memkit_async::MkGlobalAlloc::system();
static MK_MIMALLOC: memkit_async::MkGlobalAlloc<mimalloc::MiMalloc> =
    memkit_async::MkGlobalAlloc::new(mimalloc::MiMalloc);

/// The global allocator of this bench: one of the four configurations, chosen from `MK_ALLOC`
/// at the first allocation (the parent runs as plain `System`).
struct Switch;

fn mode() -> u8 {
    match MODE.load(Relaxed) {
        UNDECIDED => {
            // Reading the variable allocates: those allocations (freed before the mode is set)
            // are served by `System` while deciding.
            MODE.store(DECIDING, Relaxed);
            let chosen = std::env::var("MK_ALLOC")
                .ok()
                .and_then(|m| MODES.iter().position(|&n| n == m))
                .map_or(2, |i| i as u8 + 2);
            MODE.store(chosen, Relaxed);
            chosen
        }
        m => m,
    }
}

// SAFETY: each block is freed by the allocator that made it: the mode is fixed before any
// block outlives the decision, and `DECIDING` blocks are freed while still deciding.
unsafe impl GlobalAlloc for Switch {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: forwarded contract.
        unsafe {
            match mode() {
                3 => MK_SYSTEM.alloc(layout),
                4 => mimalloc::MiMalloc.alloc(layout),
                5 => MK_MIMALLOC.alloc(layout),
                _ => System.alloc(layout),
            }
        }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: forwarded contract; see the impl's comment.
        unsafe {
            match MODE.load(Relaxed) {
                3 => MK_SYSTEM.dealloc(ptr, layout),
                4 => mimalloc::MiMalloc.dealloc(ptr, layout),
                5 => MK_MIMALLOC.dealloc(ptr, layout),
                _ => System.dealloc(ptr, layout),
            }
        }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: forwarded contract.
        unsafe {
            match MODE.load(Relaxed) {
                3 => MK_SYSTEM.realloc(ptr, layout, new_size),
                4 => mimalloc::MiMalloc.realloc(ptr, layout, new_size),
                5 => MK_MIMALLOC.realloc(ptr, layout, new_size),
                _ => System.realloc(ptr, layout, new_size),
            }
        }
    }
}

#[global_allocator]
static GLOBAL: Switch = Switch;

fn main() {
    match std::env::var("MK_ALLOC") {
        Ok(name) => child(&name),
        Err(_) => parent(),
    }
}

/// Runs every configuration in its own process, then prints the ratios.
fn parent() {
    let exe = std::env::current_exe().expect("the bench's own path");
    let args: Vec<String> = std::env::args().skip(1).collect();
    for name in MODES {
        let status = Command::new(&exe)
            .args(&args)
            .env("MK_ALLOC", name)
            .status()
            .expect("start the bench for one allocator");
        assert!(status.success(), "the {name} run failed: {status}");
    }
    summary();
}

fn runtime(workers: usize) -> memkit_async::Runtime {
    memkit_async::runtime::Builder::new()
        .worker_threads(workers)
        .build()
        .unwrap()
}

/// Times `iters` runs of `f` inside one task.
fn in_task(
    rt: &memkit_async::Runtime,
    iters: u64,
    f: impl Fn() + Send + Sync + 'static,
) -> Duration {
    rt.block_on(rt.spawn(async move {
        let start = Instant::now();
        for _ in 0..iters {
            f();
        }
        start.elapsed()
    }))
    .unwrap()
}

fn child(name: &str) {
    // First, in a fresh heap: later benchmarks leave memory the allocator keeps for reuse.
    rss_per_allocation(name);
    let mut c = Criterion::default()
        .configure_from_args()
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2));
    let rt = runtime(1);
    let mut g = c.benchmark_group(format!("global_alloc/{name}"));
    for size in [64usize, 4096] {
        g.bench_function(BenchmarkId::new("alloc_free_in_task", size), |b| {
            b.iter_custom(|iters| {
                in_task(&rt, iters, move || {
                    drop(black_box(Vec::<u8>::with_capacity(black_box(size))));
                })
            })
        });
    }
    g.bench_function("cross_task_free_64", |b| {
        b.iter_custom(|iters| {
            let boxes = rt
                .block_on(rt.spawn(async move {
                    (0..iters)
                        .map(|i| Box::new([i as u8; 64]))
                        .collect::<Vec<_>>()
                }))
                .unwrap();
            rt.block_on(rt.spawn(async move {
                let start = Instant::now();
                for b in boxes {
                    drop(black_box(b));
                }
                start.elapsed()
            }))
            .unwrap()
        })
    });
    g.bench_function("realloc_growth_to_1MiB", |b| {
        b.iter_custom(|iters| {
            in_task(&rt, iters, || {
                let mut v = Vec::new();
                while v.len() < 1 << 20 {
                    v.extend_from_slice(black_box(&[7u8; 256]));
                }
                black_box(v);
            })
        })
    });
    let workers = std::thread::available_parallelism().map_or(2, |n| n.get());
    let wide = runtime(workers);
    let doc: std::sync::Arc<str> = document().into();
    g.sample_size(20);
    g.bench_function("serde_json_8_tasks_1MB", |b| {
        b.iter(|| {
            let doc = doc.clone();
            wide.block_on(async move {
                let tasks: Vec<_> = (0..8)
                    .map(|_| {
                        let doc = doc.clone();
                        memkit_async::spawn(async move {
                            let value: serde_json::Value = serde_json::from_str(&doc).unwrap();
                            serde_json::to_string(&value).unwrap().len()
                        })
                    })
                    .collect();
                for t in tasks {
                    black_box(t.await.unwrap());
                }
            })
        })
    });
    g.finish();
}

/// A JSON document of about 1 MB: an array of records with strings, numbers and nesting.
fn document() -> String {
    let mut out = String::from("[");
    let mut i = 0u64;
    while out.len() < 1 << 20 {
        if i > 0 {
            out.push(',');
        }
        out.push_str(&format!(
            r#"{{"id":{i},"name":"record number {i}","score":{},"tags":["a{}","b{}","c"],"nested":{{"ok":{},"ratio":{}}}}}"#,
            i * 7 % 1000,
            i % 13,
            i % 17,
            i % 2 == 0,
            i as f64 / 3.0
        ));
        i += 1;
    }
    out.push(']');
    out
}

/// Resident-set growth per live 64-byte box, from 1,000,000 of them.
fn rss_per_allocation(name: &str) {
    const N: usize = 1_000_000;
    let before = rss();
    let boxes: Vec<Box<[u8; 64]>> = (0..N).map(|i| Box::new([i as u8; 64])).collect();
    let after = rss();
    black_box(&boxes);
    let per = after.saturating_sub(before) as f64 / N as f64 - 8.0; // minus the Vec's slot
    println!("global_alloc/{name}: resident bytes per live 64 B box: {per:.1}");
    let dir = std::path::Path::new("target/criterion/global_alloc-rss");
    let _ = std::fs::create_dir_all(dir);
    let _ = std::fs::write(dir.join(name), format!("{per:.1}\n"));
}

fn rss() -> usize {
    let statm = std::fs::read_to_string("/proc/self/statm").unwrap_or_default();
    let pages: usize = statm
        .split_whitespace()
        .nth(1)
        .and_then(|p| p.parse().ok())
        .unwrap_or(0);
    pages * 4096
}

/// The median of one benchmark, from criterion's estimates, in nanoseconds.
fn median(mode: &str, bench: &str) -> Option<f64> {
    let path = format!("target/criterion/global_alloc_{mode}/{bench}/new/estimates.json");
    let text = std::fs::read_to_string(path).ok()?;
    let at = text.find("\"median\"")?;
    let rest = &text[at..];
    let at = rest.find("\"point_estimate\":")? + "\"point_estimate\":".len();
    let rest = &rest[at..];
    let end = rest.find([',', '}'])?;
    rest[..end].trim().parse().ok()
}

fn summary() {
    let benches = [
        "alloc_free_in_task/64",
        "alloc_free_in_task/4096",
        "cross_task_free_64",
        "realloc_growth_to_1MiB",
        "serde_json_8_tasks_1MB",
    ];
    println!("\nmedian time, MkGlobalAlloc<inner> / inner:");
    println!(
        "{:<28} {:>12} {:>12} {:>7} {:>12} {:>12} {:>7}",
        "bench", "System", "Mk<System>", "ratio", "MiMalloc", "Mk<MiMalloc>", "ratio"
    );
    for bench in benches {
        let [s, ms, m, mm] = MODES.map(|mode| median(mode, bench));
        let ratio = |a: Option<f64>, b: Option<f64>| match (a, b) {
            (Some(a), Some(b)) => format!("{:.2}", b / a),
            _ => "-".into(),
        };
        let ns = |v: Option<f64>| v.map_or("-".into(), |v| format!("{v:.1} ns"));
        println!(
            "{bench:<28} {:>12} {:>12} {:>7} {:>12} {:>12} {:>7}",
            ns(s),
            ns(ms),
            ratio(s, ms),
            ns(m),
            ns(mm),
            ratio(m, mm)
        );
    }
    for mode in MODES {
        if let Ok(v) = std::fs::read_to_string(format!("target/criterion/global_alloc-rss/{mode}"))
        {
            println!("{mode}: resident bytes per live 64 B box: {}", v.trim());
        }
    }
}
