//! No task leaks: after tasks complete, panic, get aborted, detached, woken after completion or
//! cancelled by shutdown, and the runtime is dropped, every allocation is returned.
//!
//! This binary counts live allocations with its own global allocator, so it holds one test
//! only (a concurrent test would allocate at the same time).

mod common;

use common::*;
use futures::channel::oneshot;
use memkit_async::{spawn, task};
use std::alloc::{GlobalAlloc, Layout, System};
use std::future::{pending, poll_fn};
use std::sync::atomic::{AtomicIsize, Ordering::SeqCst};
use std::sync::{Arc, Mutex};
use std::task::{Poll, Waker};

struct Counting;

static LIVE: AtomicIsize = AtomicIsize::new(0);

// SAFETY: forwards to the system allocator, only counting calls.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        LIVE.fetch_add(1, SeqCst);
        // SAFETY: forwarded caller contract.
        unsafe { System.alloc(layout) }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        LIVE.fetch_add(1, SeqCst);
        // SAFETY: forwarded caller contract.
        unsafe { System.alloc_zeroed(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        LIVE.fetch_sub(1, SeqCst);
        // SAFETY: forwarded caller contract.
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: forwarded caller contract.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static ALLOC: Counting = Counting;

/// Fewer under Miri, where 14 000 tasks take hours; every way to end is still covered.
const TASKS_PER_KIND: usize = if cfg!(miri) { 50 } else { 2000 };
const KINDS: usize = 7;

/// Runs every way a task can end, then drops the runtime.
fn every_way_a_task_ends() {
    let rt = runtime(2);
    // Completed and awaited.
    let hs: Vec<_> = (0..TASKS_PER_KIND)
        .map(|i| rt.spawn(async move { vec![i; 4] }))
        .collect();
    rt.block_on(async {
        for (i, h) in hs.into_iter().enumerate() {
            assert_eq!(h.await.unwrap(), vec![i; 4]);
        }
    });
    // Detached before completion, and after.
    let out_drops = Counter::new();
    let mut finished_later = Vec::new();
    for i in 0..TASKS_PER_KIND {
        let d = DropCount(out_drops.clone());
        let h = rt.spawn(async move {
            task::yield_now().await;
            d
        });
        if i % 2 == 0 {
            drop(h);
        } else {
            finished_later.push(h);
        }
    }
    wait_until("the tasks finished", || {
        finished_later.iter().all(|h| h.is_finished())
    });
    drop(finished_later);
    wait_until("every detached output dropped", || {
        out_drops.get() == TASKS_PER_KIND
    });
    // Panicked.
    let hs: Vec<_> = (0..TASKS_PER_KIND)
        .map(|_| rt.spawn(async { panic!("leak test panic") }))
        .collect();
    rt.block_on(async {
        for h in hs {
            assert!(h.await.unwrap_err().is_panic());
        }
    });
    // Aborted while pending.
    let hs: Vec<_> = (0..TASKS_PER_KIND)
        .map(|_| rt.spawn(pending::<()>()))
        .collect();
    for h in &hs {
        h.abort();
    }
    rt.block_on(async {
        for h in hs {
            assert!(h.await.unwrap_err().is_cancelled());
        }
    });
    // Wakers that outlive their tasks, woken after completion.
    let wakers = Arc::new(Mutex::new(Vec::<Waker>::new()));
    let hs: Vec<_> = (0..TASKS_PER_KIND)
        .map(|_| {
            let wakers = wakers.clone();
            rt.spawn(poll_fn(move |cx| {
                wakers.lock().unwrap().push(cx.waker().clone());
                Poll::Ready(())
            }))
        })
        .collect();
    rt.block_on(async {
        for h in hs {
            h.await.unwrap();
        }
    });
    for w in wakers.lock().unwrap().drain(..) {
        w.wake_by_ref();
        w.wake();
    }
    // Blocking closures.
    let hs: Vec<_> = (0..TASKS_PER_KIND / 10)
        .map(|i| rt.spawn_blocking(move || i))
        .collect();
    rt.block_on(async {
        for (i, h) in hs.into_iter().enumerate() {
            assert_eq!(h.await.unwrap(), i);
        }
    });
    // Pending at shutdown, some waiting on channels, some spawned by tasks.
    let mut senders = Vec::new();
    let mut hs = Vec::new();
    for _ in 0..TASKS_PER_KIND / 2 {
        let (tx, rx) = oneshot::channel::<()>();
        senders.push(tx);
        hs.push(rt.spawn(async move {
            let _ = rx.await;
        }));
        hs.push(rt.spawn(async { spawn(pending::<()>()).await.unwrap() }));
    }
    drop(rt);
    for h in hs {
        assert!(futures::executor::block_on(h).unwrap_err().is_cancelled());
    }
    drop(senders);
}

#[test]
fn no_task_memory_is_leaked() {
    // Panics in tasks are expected here; printing them would allocate into the test
    // harness's capture buffer, which outlives the measurement.
    std::panic::set_hook(Box::new(|_| {}));
    with_timeout(DEADLINE, || {
        // Warm-up: lazily initialised statics and thread-locals allocate once.
        every_way_a_task_ends();
        let before = LIVE.load(SeqCst);
        const ROUNDS: usize = 3;
        for _ in 0..ROUNDS {
            every_way_a_task_ends();
        }
        let after = LIVE.load(SeqCst);
        let leaked = after - before;
        // One leaked allocation per task would be ROUNDS * KINDS * TASKS_PER_KIND (~40k).
        // Allow 1% of that for allocator-independent noise (deferred frees in lock-free
        // queues).
        let budget = (ROUNDS * KINDS * TASKS_PER_KIND / 100) as isize;
        assert!(
            leaked <= budget,
            "{leaked} allocations still live after {ROUNDS} rounds of {} tasks each \
             (budget {budget}): tasks or wakers leak",
            KINDS * TASKS_PER_KIND
        );
    });
    let _ = std::panic::take_hook();
}
