//! The watchdog, RSS and the summary printed at the end (or when stuck).

use crate::common::KIB;
use crate::counters::{live_futures, PROGRESS};
use crate::counters::{COUNTS, LABELS};
use crate::state::FAILURES;
use crate::state::{say, BUDGETS, METRICS, OUTSTANDING, PHASE, SEED};
use crate::STALL;
use std::fmt::Write as _;
use std::sync::atomic::AtomicBool;
use std::sync::atomic::Ordering::SeqCst;
use std::thread;
use std::time::{Duration, Instant};

pub static DONE: AtomicBool = AtomicBool::new(false);

pub fn start_watchdog() -> thread::JoinHandle<()> {
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
pub fn report() -> String {
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
pub fn counter_summary() -> String {
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
pub fn vm_rss() -> Option<usize> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    let kib: usize = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * KIB)
}

pub fn env_u64(name: &str) -> Option<u64> {
    let v = std::env::var(name).ok()?;
    match v.trim().parse() {
        Ok(n) => Some(n),
        Err(_) => panic!("{name}={v:?} is not a number"),
    }
}
