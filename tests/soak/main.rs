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
//! back only to `Evict` requests; every other wait is bounded by its policy or by `bounded`.
//!
//! Layout: `ops` (the operations, their weights, how each is issued) and `tasks/` (what they run:
//! generic work, memory waits, panics, channel hand-offs, panicking wakers and socket waits) on
//! top of `alloc` (allocation under a policy), `cache`, `counted` (drop-counted futures and
//! objects), `timer` (a foreign-thread timer) and `env` (one runtime's budgets); `epoch` runs
//! one runtime's life and its checks; `counters`, `state`, `rng` and `report` (the watchdog and
//! summary) serve them all.

#[path = "../common/mod.rs"]
mod common;

mod alloc;
mod cache;
mod counted;
mod counters;
mod env;
mod epoch;
mod ops;
mod report;
mod rng;
mod state;
mod tasks;
mod timer;

use crate::common::{KIB, MIB};
use crate::counted::install_panic_filter;
use crate::counters::{get, C};
use crate::epoch::run_epoch;
use crate::report::{counter_summary, env_u64, report, start_watchdog, vm_rss, DONE};
use crate::rng::Rng;
use crate::state::{lk, say, set_phase, FAILURES, SEED};
use crate::timer::flush_timer;
use std::fmt::Write as _;
use std::sync::atomic::Ordering::SeqCst;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// Default run time when `MEMKIT_SOAK_SECS` is unset (CI sets 60).
pub const DEFAULT_SECS: u64 = 5;
/// The watchdog fails the run when no progress counter moved for this long.
pub const STALL: Duration = Duration::from_secs(15);
/// Bound on any single wait inside the test (a join, a receive, a foreign wake-up).
pub const WAIT_LIMIT: Duration = Duration::from_secs(10);
/// Bound on the end-of-runtime checks that wait for things to settle (below `STALL`).
pub const SETTLE: Duration = Duration::from_secs(10);
/// Allowed RSS growth over the whole run.
pub const RSS_SLACK: usize = 64 * MIB;
/// Top-level join handles the driver keeps before it waits for some to finish.
pub const MAX_OUTSTANDING: usize = 192;
/// Live futures (top-level and nested) before the driver waits.
pub const MAX_LIVE: u64 = 384;
/// Prefix of every injected panic's message (the panic hook keeps these quiet).
pub const INJECTED: &str = "soak: injected panic";

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
