//! Ordinary `Vec`s bounded by the runtime's memory limit.
//!
//! 2000 tasks each hold a plain `vec![_; 1 MiB]` across a 200 ms sleep, on a runtime whose
//! `memory_limit` is 64 MiB under the `Wait` policy. With `MkGlobalAlloc` installed, the heap
//! bytes each task allocates are charged to the runtime's budget; while it is full, tasks that
//! have not started are held back (in FIFO order) and tasks that grew are parked, so the
//! process's peak resident memory stays near the limit and every task still completes.
//!
//! The program then runs itself again in a child process with the plain system allocator, to
//! show the peak the same code reaches when nothing counts its memory.
//!
//! ```sh
//! cargo run --release --example bounded_std
//! ```

use std::alloc::{GlobalAlloc, Layout, System};
use std::process::Command;
use std::sync::atomic::{AtomicU8, Ordering::Relaxed};
use std::time::{Duration, Instant};

const TASKS: usize = 2000;
const PER_TASK: usize = 1 << 20;
const LIMIT: usize = 64 << 20;
/// Set in the child process that runs without `MkGlobalAlloc`.
const UNBOUNDED: &str = "MEMKIT_BOUNDED_STD_UNBOUNDED";

// In your own program, these two lines are all it takes:
//
//     #[global_allocator]
//     static GLOBAL: memkit_async::MkGlobalAlloc = memkit_async::MkGlobalAlloc::system();
//
// This example also runs itself without it, so it picks one of the two at its first allocation.
static ACCOUNTED: memkit_async::MkGlobalAlloc = memkit_async::MkGlobalAlloc::system();

#[global_allocator]
static GLOBAL: Chosen = Chosen;

fn main() {
    if std::env::var_os(UNBOUNDED).is_some() {
        let (peak, wall) = run(None);
        println!("{} {}", peak, wall.as_millis());
        return;
    }
    let (peak, wall) = run(Some(LIMIT));
    println!(
        "with MkGlobalAlloc and memory_limit = 64 MiB: {TASKS} tasks x 1 MiB done in {:.2} s, \
         peak RSS {} MiB",
        wall.as_secs_f64(),
        peak >> 20
    );
    let out = Command::new(std::env::current_exe().expect("own path"))
        .env(UNBOUNDED, "1")
        .output()
        .expect("run the comparison");
    let text = String::from_utf8_lossy(&out.stdout);
    let mut fields = text
        .split_whitespace()
        .map(|f| f.parse::<u64>().unwrap_or(0));
    let (unbounded, ms) = (fields.next().unwrap_or(0), fields.next().unwrap_or(0));
    println!(
        "without it (system allocator, no accounting): done in {:.2} s, peak RSS {} MiB",
        ms as f64 / 1000.0,
        unbounded >> 20
    );
    let bound = LIMIT + (32 << 20);
    assert!(
        peak <= bound as u64,
        "peak RSS {} MiB is above the limit + 32 MiB",
        peak >> 20
    );
}

/// Runs the workload; returns the process's peak RSS (VmHWM) in bytes and the wall time.
fn run(limit: Option<usize>) -> (u64, Duration) {
    let mut builder = memkit_async::runtime::Builder::new();
    if let Some(limit) = limit {
        builder.memory_limit(limit);
    }
    let rt = builder.build().expect("start the runtime");
    let start = Instant::now();
    let done = rt.block_on(async {
        let tasks: Vec<_> = (0..TASKS)
            .map(|i| {
                memkit_async::spawn(async move {
                    // Written, so the pages are resident.
                    let buf = vec![(i % 251) as u8 + 1; PER_TASK];
                    memkit_async::time::sleep(Duration::from_millis(200)).await;
                    buf.iter().step_by(4096).map(|&b| b as usize).sum::<usize>()
                })
            })
            .collect();
        let mut done = 0;
        for t in tasks {
            t.await.expect("every task completes");
            done += 1;
        }
        done
    });
    assert_eq!(done, TASKS);
    let peak_budget = rt.memory_budget().peak();
    if limit.is_some() {
        println!("runtime budget peak: {} KiB", peak_budget >> 10);
    }
    (peak_rss(), start.elapsed())
}

/// The process's peak resident set, from `/proc/self/status`.
fn peak_rss() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .map_or(0, |kb| kb * 1024)
}

/// `MkGlobalAlloc`, or the system allocator in the comparison child, decided once at the first
/// allocation (the variable is read by the system allocator, and its bytes freed, before the
/// choice is made).
struct Chosen;

const UNDECIDED: u8 = 0;
const DECIDING: u8 = 1;
const MK: u8 = 2;
const PLAIN: u8 = 3;
static CHOICE: AtomicU8 = AtomicU8::new(UNDECIDED);

fn choice() -> u8 {
    match CHOICE.load(Relaxed) {
        UNDECIDED => {
            CHOICE.store(DECIDING, Relaxed);
            let c = if std::env::var_os(UNBOUNDED).is_some() {
                PLAIN
            } else {
                MK
            };
            CHOICE.store(c, Relaxed);
            c
        }
        c => c,
    }
}

// SAFETY: a block is always freed by the allocator that made it: blocks made while deciding
// are freed while deciding, and the choice never changes afterwards.
unsafe impl GlobalAlloc for Chosen {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: forwarded contract.
        unsafe {
            match choice() {
                MK => ACCOUNTED.alloc(layout),
                _ => System.alloc(layout),
            }
        }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: forwarded contract (see the impl's comment).
        unsafe {
            match CHOICE.load(Relaxed) {
                MK => ACCOUNTED.dealloc(ptr, layout),
                _ => System.dealloc(ptr, layout),
            }
        }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: forwarded contract.
        unsafe {
            match CHOICE.load(Relaxed) {
                MK => ACCOUNTED.realloc(ptr, layout, new_size),
                _ => System.realloc(ptr, layout, new_size),
            }
        }
    }
}
