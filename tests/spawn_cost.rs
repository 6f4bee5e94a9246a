//! The cost of an empty spawn, in heap bytes, must not exceed tokio's (DESIGN.md): measured
//! with a counting global allocator around the same number of spawns on each runtime.

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering};

struct Counting;

static ALLOCATED: AtomicUsize = AtomicUsize::new(0);

// SAFETY: forwards to the system allocator unchanged, only counting requested bytes.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        ALLOCATED.fetch_add(layout.size(), Ordering::Relaxed);
        // SAFETY: same contract as the caller's.
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: same contract as the caller's.
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

const SPAWNS: usize = 10_000;

fn allocated() -> usize {
    ALLOCATED.load(Ordering::SeqCst)
}

#[test]
#[cfg_attr(miri, ignore = "10k spawns on two runtimes take minutes under Miri")]
fn empty_spawn_allocates_no_more_than_tokio() {
    let memkit = memkit_async::runtime::Builder::new()
        .worker_threads(1)
        .build()
        .unwrap();
    let tokio = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .build()
        .unwrap();
    // Warm both up so lazily created queues and thread-locals are not counted.
    memkit.block_on(memkit.spawn(async {})).unwrap();
    tokio.block_on(tokio.spawn(async {})).unwrap();

    // Heap bytes allocated while spawning (task and queue growth included), per task.
    let mut handles = Vec::with_capacity(SPAWNS);
    let before = allocated();
    handles.extend((0..SPAWNS).map(|_| memkit.spawn(async {})));
    let m = (allocated() - before) / SPAWNS;
    for h in handles {
        memkit.block_on(h).unwrap();
    }
    let mut handles = Vec::with_capacity(SPAWNS);
    let before = allocated();
    handles.extend((0..SPAWNS).map(|_| tokio.spawn(async {})));
    let t = (allocated() - before) / SPAWNS;
    for h in handles {
        tokio.block_on(h).unwrap();
    }
    println!("heap bytes per empty spawn: memkit {m}, tokio {t}");
    assert!(
        m <= t,
        "memkit allocates {m} bytes per empty spawn, tokio {t}"
    );
}
