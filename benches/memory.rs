//! Per-object allocation cost: memkit's task arena (`MkAsyncBox`) against the global allocator
//! (`Box`) and a plain bump allocator (`bumpalo`, the physical-limit reference), same process,
//! same run.
//!
//! Every variant runs inside ONE task spawned on the same memkit-async runtime (2 workers, or
//! `MEMKIT_BENCH_WORKERS`), and is timed with `iter_custom` around its allocation loop only
//! (`Instant` read inside the task), so spawn, `block_on` and wake-up overhead is outside every
//! measurement and the comparison is per object. One iteration is [`N`] objects of 64 bytes
//! (`[u8; 64]`); throughput is `Elements(N)`, so criterion's "thrpt" is objects per second and
//! `time / N` is the per-object cost. `std::hint::black_box` keeps every value and handle alive
//! as far as the optimiser can tell.
//!
//! | group / function | what one iteration measures |
//! |---|---|
//! | `alloc_drop_64b/memkit_try_new` | `MkAsyncBox::try_new(v)` then drop, N times in a row |
//! | `alloc_drop_64b/memkit_new_await` | `MkAsyncBox::new(v).await` then drop, N times in a row |
//! | `alloc_drop_64b/box` | `Box::new(v)` then drop, N times in a row |
//! | `alloc_drop_64b/bumpalo` | `Bump::alloc(v)` N times (dropping the `&mut` frees nothing), then `Bump::reset` (the `Bump` is pre-sized to hold all N, so no chunk is allocated while timed); this streams 64 MB of fresh writes per iteration, so it is bound by memory bandwidth, not by the allocator |
//! | `alloc_drop_64b/bumpalo_hot` | `Bump::alloc(v)` N times with a `Bump::reset` after every 64 (4 KiB, the footprint of memkit's first chunk, which `alloc_drop` keeps reusing): the cache-resident floor |
//! | `alloc_keep_drop_64b/memkit_try_new` | N `MkAsyncBox::try_new(v)` kept in a `Vec` of handles, then the `Vec` cleared (every box dropped) |
//! | `alloc_keep_drop_64b/box` | the same with `Box::new(v)` |
//! | `alloc_keep_drop_64b/bumpalo` | a fresh `Bump`, N `Bump::alloc(v)` kept in a `Vec` of `&mut`, then the `Vec` cleared and the `Bump` dropped (its chunks go back to the system allocator, and the next iteration gets new ones) |
//! | `alloc_keep_drop_64b/bumpalo_reset` | a reused, pre-sized `Bump`: N `Bump::alloc(v)` kept, then the `Vec` cleared and `Bump::reset` (no system allocation at all: the floor) |
//!
//! The `Vec` of handles is allocated once per sample with room for N, outside the timing, and
//! reused. Targets (from the issue): memkit per-object cost at most 1/3 of `Box` and at most 1.5x
//! `bumpalo`.
//!
//! Run with:
//!
//! ```text
//! cargo bench --bench memory
//! cargo bench --bench memory -- alloc_drop_64b          # one group
//! ```
//!
//! Medians: `target/criterion/<group>/<function>/new/estimates.json`, `median.point_estimate`
//! (nanoseconds per iteration of N objects).
// `criterion_group!` defines a public function without a doc comment.
#![allow(missing_docs)]

use bumpalo::Bump;
use criterion::{criterion_group, criterion_main, Criterion, SamplingMode, Throughput};
use memkit_async::{MkAsyncBox, Runtime};
use std::future::Future;
use std::hint::black_box;
use std::time::{Duration, Instant};

/// Objects allocated per iteration.
const N: usize = 1_000_000;

/// The 64-byte value every variant allocates.
type Obj = [u8; 64];

/// A fresh value, different for each `i` so that no variant can share or hoist it.
#[inline(always)]
fn obj(i: usize) -> Obj {
    [i as u8; 64]
}

/// Bytes a `Bump` needs to hold N objects without growing (plus slack for its footer).
const BUMP_CAPACITY: usize = N * size_of::<Obj>() + (1 << 20);

// ---------------------------------------------------------------------------------------------
// alloc_drop_64b: allocate and drop at once, N times.
// ---------------------------------------------------------------------------------------------

async fn alloc_drop_memkit_try_new(iters: u64) -> Duration {
    let start = Instant::now();
    for _ in 0..iters {
        for i in 0..N {
            let b = MkAsyncBox::try_new(obj(i)).expect("memkit allocation failed");
            drop(black_box(b));
        }
    }
    start.elapsed()
}

async fn alloc_drop_memkit_new_await(iters: u64) -> Duration {
    let start = Instant::now();
    for _ in 0..iters {
        for i in 0..N {
            let b = MkAsyncBox::new(obj(i))
                .await
                .expect("memkit allocation failed");
            drop(black_box(b));
        }
    }
    start.elapsed()
}

async fn alloc_drop_box(iters: u64) -> Duration {
    let start = Instant::now();
    for _ in 0..iters {
        for i in 0..N {
            drop(black_box(Box::new(obj(i))));
        }
    }
    start.elapsed()
}

async fn alloc_drop_bumpalo(iters: u64) -> Duration {
    let mut bump = Bump::with_capacity(BUMP_CAPACITY);
    let start = Instant::now();
    for _ in 0..iters {
        for i in 0..N {
            black_box(bump.alloc(obj(i)));
        }
        bump.reset();
    }
    start.elapsed()
}

async fn alloc_drop_bumpalo_hot(iters: u64) -> Duration {
    const BATCH: usize = 4096 / size_of::<Obj>();
    const { assert!(N % BATCH == 0) };
    let mut bump = Bump::with_capacity(2 * 4096);
    let start = Instant::now();
    for _ in 0..iters {
        for batch in 0..N / BATCH {
            for i in 0..BATCH {
                black_box(bump.alloc(obj(batch * BATCH + i)));
            }
            bump.reset();
        }
    }
    start.elapsed()
}

// ---------------------------------------------------------------------------------------------
// alloc_keep_drop_64b: allocate N, keep them all, then drop them all.
// ---------------------------------------------------------------------------------------------

async fn keep_drop_memkit_try_new(iters: u64) -> Duration {
    let mut handles: Vec<MkAsyncBox<Obj>> = Vec::with_capacity(N);
    let mut total = Duration::ZERO;
    for _ in 0..iters {
        let start = Instant::now();
        for i in 0..N {
            handles.push(MkAsyncBox::try_new(obj(i)).expect("memkit allocation failed"));
        }
        black_box(&mut handles);
        handles.clear();
        total += start.elapsed();
    }
    total
}

async fn keep_drop_box(iters: u64) -> Duration {
    let mut handles: Vec<Box<Obj>> = Vec::with_capacity(N);
    let mut total = Duration::ZERO;
    for _ in 0..iters {
        let start = Instant::now();
        for i in 0..N {
            handles.push(Box::new(obj(i)));
        }
        black_box(&mut handles);
        handles.clear();
        total += start.elapsed();
    }
    total
}

/// Empties `v` and hands its buffer back for references of another lifetime (the collect is
/// done in place: no allocation).
fn recycle<'b, T>(mut v: Vec<&mut T>) -> Vec<&'b mut T> {
    v.clear();
    v.into_iter().map(|_| unreachable!()).collect()
}

async fn keep_drop_bumpalo(iters: u64) -> Duration {
    // Empty between iterations; each iteration borrows it for its own `Bump`'s lifetime.
    let mut spare: Vec<&mut Obj> = Vec::with_capacity(N);
    let mut total = Duration::ZERO;
    for _ in 0..iters {
        let start = Instant::now();
        let bump = Bump::new();
        let mut handles = recycle(spare);
        for i in 0..N {
            handles.push(bump.alloc(obj(i)));
        }
        black_box(&mut handles);
        spare = recycle(handles);
        drop(bump);
        total += start.elapsed();
    }
    assert!(spare.capacity() >= N, "handle buffer was not reused");
    total
}

async fn keep_drop_bumpalo_reset(iters: u64) -> Duration {
    let mut bump = Bump::with_capacity(BUMP_CAPACITY);
    let mut spare: Vec<&mut Obj> = Vec::with_capacity(N);
    let mut total = Duration::ZERO;
    for _ in 0..iters {
        let start = Instant::now();
        let mut handles = recycle(spare);
        for i in 0..N {
            handles.push(bump.alloc(obj(i)));
        }
        black_box(&mut handles);
        spare = recycle(handles);
        bump.reset();
        total += start.elapsed();
    }
    assert!(spare.capacity() >= N, "handle buffer was not reused");
    total
}

// ---------------------------------------------------------------------------------------------
// Harness.
// ---------------------------------------------------------------------------------------------

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

/// Runs `variant(iters)` inside one task on `rt` and returns the time it measured itself.
fn in_task<F, Fut>(rt: &Runtime, variant: F, iters: u64) -> Duration
where
    F: FnOnce(u64) -> Fut,
    Fut: Future<Output = Duration> + Send + 'static,
{
    rt.block_on(rt.spawn(variant(iters)))
        .expect("bench task panicked")
}

fn benches(c: &mut Criterion) {
    let rt = memkit_async::Builder::new()
        .worker_threads(workers())
        .build()
        .expect("build memkit runtime");

    let mut group = c.benchmark_group("alloc_drop_64b");
    group.throughput(Throughput::Elements(N as u64));
    group.sampling_mode(SamplingMode::Flat);
    group.bench_function("memkit_try_new", |b| {
        b.iter_custom(|iters| in_task(&rt, alloc_drop_memkit_try_new, iters))
    });
    group.bench_function("memkit_new_await", |b| {
        b.iter_custom(|iters| in_task(&rt, alloc_drop_memkit_new_await, iters))
    });
    group.bench_function("box", |b| {
        b.iter_custom(|iters| in_task(&rt, alloc_drop_box, iters))
    });
    group.bench_function("bumpalo", |b| {
        b.iter_custom(|iters| in_task(&rt, alloc_drop_bumpalo, iters))
    });
    group.bench_function("bumpalo_hot", |b| {
        b.iter_custom(|iters| in_task(&rt, alloc_drop_bumpalo_hot, iters))
    });
    group.finish();

    let mut group = c.benchmark_group("alloc_keep_drop_64b");
    group.throughput(Throughput::Elements(N as u64));
    group.sampling_mode(SamplingMode::Flat);
    group.bench_function("memkit_try_new", |b| {
        b.iter_custom(|iters| in_task(&rt, keep_drop_memkit_try_new, iters))
    });
    group.bench_function("box", |b| {
        b.iter_custom(|iters| in_task(&rt, keep_drop_box, iters))
    });
    group.bench_function("bumpalo", |b| {
        b.iter_custom(|iters| in_task(&rt, keep_drop_bumpalo, iters))
    });
    group.bench_function("bumpalo_reset", |b| {
        b.iter_custom(|iters| in_task(&rt, keep_drop_bumpalo_reset, iters))
    });
    group.finish();
}

/// Each iteration is a million objects (milliseconds), so a small flat sample is enough; command
/// line flags such as `--measurement-time` still override these (`configure_from_args` runs
/// after this config).
fn config() -> Criterion {
    Criterion::default()
        .sample_size(20)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(4))
}

criterion_group! {
    name = memory;
    config = config();
    targets = benches
}
criterion_main!(memory);
