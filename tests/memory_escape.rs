//! Arena objects that escape their task (returned, sent, dropped elsewhere, forgotten), and
//! requests no arena can serve: each is handled with exact accounting, a clear error, and never
//! undefined behaviour.

mod common;

use common::*;
use memkit_async::task::yield_now;
use memkit_async::{
    spawn_with_budget, JoinHandle, MkAllocError, MkArena, MkAsyncBox, MkAsyncVec, MkBackpressure,
    MkBudget, Runtime,
};

fn pattern(seed: u8) -> [u8; 256] {
    std::array::from_fn(|i| (i as u8).wrapping_mul(13).wrapping_add(seed))
}

/// Spawns, on `rt`, a task with a 64 KiB budget that allocates a box of `pattern(seed)` and
/// returns it with its budget.
fn escaping_box(rt: &Runtime, seed: u8) -> (MkAsyncBox<[u8; 256]>, MkBudget) {
    let handle: JoinHandle<_> = spawn_budgeted(rt, 64 * KIB, async move {
        let b = MkAsyncBox::new(pattern(seed)).await.unwrap();
        yield_now().await;
        (b, MkBudget::current().unwrap())
    });
    rt.block_on(handle).unwrap()
}

#[test]
fn a_box_that_outlives_its_task_returns_its_bytes_when_it_drops() {
    with_timeout(DEADLINE, || {
        let rt = runtime_with_limit(2, 1 << 20);
        let root = rt.memory_budget().clone();
        let (b, budget) = escaping_box(&rt, 1);
        assert_eq!(rt.metrics().num_alive_tasks(), 0, "the task has ended");
        assert_eq!((budget.used(), root.used()), (CHUNK, CHUNK));
        assert_eq!(*b, pattern(1));
        drop(b);
        assert_eq!((budget.used(), root.used()), (0, 0));
    });
}

#[test]
fn a_box_dropped_on_a_plain_thread_returns_its_bytes() {
    with_timeout(DEADLINE, || {
        let rt = runtime_with_limit(2, 1 << 20);
        let (b, budget) = escaping_box(&rt, 2);
        let seen = std::thread::spawn(move || {
            let content = *b;
            drop(b);
            content
        })
        .join()
        .unwrap();
        assert_eq!(seen, pattern(2));
        assert_eq!((budget.used(), rt.memory_budget().used()), (0, 0));
    });
}

#[test]
fn a_box_dropped_inside_another_task_returns_its_bytes() {
    with_timeout(DEADLINE, || {
        let rt = runtime_with_limit(2, 1 << 20);
        let (b, budget) = escaping_box(&rt, 3);
        let dropper = rt.spawn(async move {
            yield_now().await;
            let first = b[0];
            drop(b);
            first
        });
        assert_eq!(rt.block_on(dropper).unwrap(), pattern(3)[0]);
        assert_eq!((budget.used(), rt.memory_budget().used()), (0, 0));
    });
}

#[test]
fn a_box_freed_elsewhere_while_its_task_runs_is_returned_when_the_task_ends() {
    with_timeout(DEADLINE, || {
        let rt = runtime_with_limit(2, 1 << 20);
        let gate = Gate::new();
        let g = gate.clone();
        let (tx, rx) = futures::channel::oneshot::channel::<MkAsyncBox<[u8; 256]>>();
        let owner = spawn_budgeted(&rt, 64 * KIB, async move {
            let b = MkAsyncBox::new(pattern(4)).await.unwrap();
            let v = MkAsyncVec::<u32>::try_with_capacity(100).unwrap();
            tx.send(b).map_err(|_| ()).unwrap();
            g.wait().await;
            (v.capacity(), MkBudget::current().unwrap())
        });
        let b = rt.block_on(rx).unwrap();
        // Freed by a plain thread while the owning task still allocates in that chunk.
        std::thread::spawn(move || drop(b)).join().unwrap();
        let root = rt.memory_budget().clone();
        assert_eq!(root.used(), CHUNK, "the running task still owns its chunk");
        gate.open();
        let (cap, budget) = rt.block_on(owner).unwrap();
        assert_eq!(cap, 100);
        assert_eq!((budget.used(), root.used()), (0, 0));
    });
}

#[test]
fn outputs_and_futures_dropped_by_the_runtime_return_their_bytes() {
    with_timeout(DEADLINE, || {
        let rt = runtime_with_limit(2, 1 << 20);
        let root = rt.memory_budget().clone();
        let m = rt.metrics();

        // Output of a detached task: dropped by the runtime when the task completes.
        let gate = Gate::new();
        let g = gate.clone();
        drop(spawn_budgeted(&rt, 64 * KIB, async move {
            let b = MkAsyncBox::new(pattern(5)).await.unwrap();
            g.wait().await;
            b
        }));
        wait_until("the detached task allocates", || root.used() == CHUNK);
        gate.open();
        wait_until("the detached task ends", || m.num_alive_tasks() == 0);
        assert_eq!(root.used(), 0);

        // Output never read: dropped with the join handle.
        let handle = spawn_budgeted(&rt, 64 * KIB, async {
            MkAsyncBox::new(pattern(6)).await.unwrap()
        });
        wait_until("the task finishes", || handle.is_finished());
        assert_eq!(root.used(), CHUNK);
        drop(handle);
        assert_eq!(root.used(), 0);

        // An aborted task: its future, box included, is dropped.
        let handle = spawn_budgeted(&rt, 64 * KIB, async {
            let _b = MkAsyncBox::new(pattern(7)).await.unwrap();
            std::future::pending::<()>().await
        });
        wait_until("the pending task allocates", || root.used() == CHUNK);
        handle.abort();
        assert!(rt.block_on(handle).unwrap_err().is_cancelled());
        assert_eq!(root.used(), 0);

        // A panicking task: same.
        let handle = spawn_budgeted(&rt, 64 * KIB, async {
            let b = MkAsyncBox::new(pattern(8)).await.unwrap();
            yield_now().await;
            if b[0] == pattern(8)[0] {
                panic!("expected panic while holding a box");
            }
        });
        assert!(rt.block_on(handle).unwrap_err().is_panic());
        assert_eq!(root.used(), 0);
    });
}

#[test]
fn forgetting_arena_objects_only_leaks_their_budget_bytes() {
    with_timeout(DEADLINE, || {
        let rt = runtime_with_limit(2, 1 << 20);
        let root = rt.memory_budget().clone();
        let budget = rt.block_on(async {
            spawn_with_budget(64 * KIB, async {
                let b = MkAsyncBox::new(pattern(9)).await.unwrap();
                std::mem::forget(b);
                // The rest of the chunk is still usable, and freed objects are freed.
                let c = MkAsyncBox::new(5u32).await.unwrap();
                assert_eq!(*c, 5);
                drop(c);
                let mut v = MkAsyncVec::new();
                v.push(1u8).await.unwrap();
                std::mem::forget(v);
                MkBudget::current().unwrap()
            })
            .await
            .unwrap()
        });
        // The forgotten objects keep their chunk, and its bytes, for good.
        assert_eq!((budget.used(), root.used()), (CHUNK, CHUNK));

        // A forgotten box that escaped to another thread, and a forgotten MkArena.
        let (b, other) = escaping_box(&rt, 10);
        std::thread::spawn(move || std::mem::forget(b))
            .join()
            .unwrap();
        assert_eq!(other.used(), CHUNK);
        let arena_budget = root.child(64 * KIB);
        let arena = MkArena::new(&arena_budget);
        arena.alloc(String::from("leaked, never dropped")).unwrap();
        std::mem::forget(arena);
        assert_eq!(arena_budget.used(), CHUNK);
        assert_eq!(root.used(), 3 * CHUNK);

        // Everything else goes on as usual.
        let (b, fresh) = escaping_box(&rt, 11);
        assert_eq!(*b, pattern(11));
        drop(b);
        assert_eq!(fresh.used(), 0);
        assert_eq!(root.used(), 3 * CHUNK);
        drop(rt);
        assert_eq!(root.used(), 3 * CHUNK);
    });
}

#[test]
fn arena_allocation_outside_a_task_says_what_to_do() {
    let err = MkAsyncBox::try_new(1u32).unwrap_err();
    assert_eq!(err, MkAllocError::NoTask);
    let msg = err.to_string();
    assert!(
        msg.contains("outside") && msg.contains("spawn") && msg.contains("MkArena"),
        "{msg}"
    );
    assert_eq!(
        MkAsyncVec::<u64>::try_with_capacity(4).unwrap_err(),
        MkAllocError::NoTask
    );
    let mut v = MkAsyncVec::new();
    assert_eq!(v.try_push(7u64), Err((7, MkAllocError::NoTask)));
    assert!(v.is_empty());

    // `block_on` drives a future on the calling thread, which is not a task.
    with_timeout(DEADLINE, || {
        let rt = runtime_with_limit(1, 1 << 20);
        let (boxed, pushed) = rt.block_on(async {
            let boxed = MkAsyncBox::new(1u32).await.map(|b| *b);
            let mut v = MkAsyncVec::new();
            (boxed, v.push(2u8).await)
        });
        assert_eq!(boxed, Err(MkAllocError::NoTask));
        assert_eq!(pushed, Err(MkAllocError::NoTask));
        assert_eq!(rt.memory_budget().used(), 0);
    });
}

/// Drops of `ZstDrop` values; only `zero_sized_values_charge_nothing` makes them.
static ZST_DROPS: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

/// A zero-sized value that counts its drops.
struct ZstDrop;

impl Drop for ZstDrop {
    fn drop(&mut self) {
        ZST_DROPS.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
    }
}

#[test]
fn zero_sized_values_charge_nothing() {
    with_timeout(DEADLINE, || {
        const PUSHES: usize = 10_000;
        let rt = runtime_with_limit(2, 1 << 20);
        // A budget of 0 bytes: anything that takes memory is refused.
        let (budget, zst_drops, sized) = rt.block_on(async move {
            spawn_with_budget(0, async move {
                let budget = MkBudget::current().unwrap();
                let unit = MkAsyncBox::new(()).await.unwrap();
                let try_unit = MkAsyncBox::try_new(()).unwrap();
                assert!(!MkAsyncBox::as_ptr(&unit).is_null());
                let mut units = MkAsyncVec::new();
                for _ in 0..PUSHES {
                    units.push(()).await.unwrap();
                }
                assert_eq!(units.len(), PUSHES);
                assert_eq!(units.pop(), Some(()));
                let huge: MkAsyncVec<()> = MkAsyncVec::with_capacity(usize::MAX).await.unwrap();
                assert_eq!(huge.capacity(), usize::MAX);

                let mut droppers = MkAsyncVec::new();
                for _ in 0..100 {
                    droppers.push(ZstDrop).await.unwrap();
                }
                let one = MkAsyncBox::new(ZstDrop).await.unwrap();
                assert_eq!(ZST_DROPS.load(std::sync::atomic::Ordering::SeqCst), 0);
                drop(droppers);
                drop(one);
                let zst_drops = ZST_DROPS.load(std::sync::atomic::Ordering::SeqCst);
                assert_eq!(budget.used(), 0);
                let sized = MkAsyncBox::new(1u8).await.map(|b| *b);
                drop((unit, try_unit, units, huge));
                (budget, zst_drops, sized)
            })
            .await
            .unwrap()
        });
        assert_eq!(zst_drops, 101, "each zero-sized value dropped exactly once");
        assert_eq!(
            sized,
            Err(MkAllocError::ExceedsLimit {
                requested: CHUNK,
                limit: 0
            })
        );
        assert_eq!((budget.used(), budget.peak()), (0, 0));
        assert_eq!(rt.memory_budget().peak(), 0);
    });
}

#[test]
fn empty_vectors_take_no_memory() {
    with_timeout(DEADLINE, || {
        let rt = runtime_with_limit(2, 1 << 20);
        let budget = rt.block_on(async move {
            spawn_with_budget(64 * KIB, async move {
                let mut empty = MkAsyncVec::<u64>::with_capacity(0).await.unwrap();
                assert_eq!((empty.len(), empty.capacity()), (0, 0));
                assert_eq!(&empty[..], &[] as &[u64]);
                assert_eq!(empty.pop(), None);
                empty.clear();
                let try_empty = MkAsyncVec::<u64>::try_with_capacity(0).unwrap();
                let default: MkAsyncVec<String> = MkAsyncVec::default();
                assert!(try_empty.is_empty() && default.is_empty());
                let mut reserved = MkAsyncVec::<u64>::new();
                reserved.reserve(0).await.unwrap();
                assert_eq!(reserved.capacity(), 0);
                let budget = MkBudget::current().unwrap();
                assert_eq!(budget.used(), 0);
                // The first element takes the first chunk.
                empty.push(9).await.unwrap();
                assert_eq!((empty.capacity(), budget.used()), (4, CHUNK));
                budget
            })
            .await
            .unwrap()
        });
        assert_eq!((budget.used(), budget.peak()), (0, CHUNK));
    });
}

#[test]
fn sizes_that_overflow_or_cannot_be_allocated_are_errors() {
    with_timeout(DEADLINE, || {
        let rt = runtime_with_limit(2, 1 << 20);
        let errs = rt.block_on(async {
            spawn_with_budget(64 * KIB, async {
                let capacity = MkAsyncVec::<u64>::try_with_capacity(usize::MAX).unwrap_err();
                let capacity_async = MkAsyncVec::<u64>::with_capacity(usize::MAX)
                    .await
                    .unwrap_err();
                let mut v = MkAsyncVec::<u64>::new();
                v.push(1).await.unwrap();
                let reserve = v.try_reserve(usize::MAX).unwrap_err();
                assert_eq!(&v[..], &[1]);
                // Just above what a `Layout` may hold: reported with the size asked.
                let above_isize =
                    MkAsyncVec::<u64>::try_with_capacity(isize::MAX as usize / 8 + 1).unwrap_err();
                (
                    capacity,
                    capacity_async,
                    reserve,
                    above_isize,
                    MkBudget::current().unwrap(),
                )
            })
            .await
            .unwrap()
        });
        let overflow = MkAllocError::SizeOverflow {
            requested: usize::MAX,
        };
        assert_eq!(errs.0, overflow);
        assert_eq!(errs.1, overflow);
        assert_eq!(errs.2, overflow);
        assert_eq!(
            errs.3,
            MkAllocError::SizeOverflow {
                requested: isize::MAX as usize + 1
            }
        );
        assert!(errs.0.to_string().contains("overflow"), "{}", errs.0);
        assert_eq!((errs.4.used(), rt.memory_budget().used()), (0, 0));
    });
}

#[cfg(target_pointer_width = "64")]
#[test]
fn a_chunk_larger_than_any_budget_can_count_is_an_error_not_a_crash() {
    with_timeout(DEADLINE, || {
        // No runtime limit: only the most a budget can count (64 TiB) refuses it.
        let rt = runtime(2);
        let err = rt.block_on(rt.spawn(async {
            MkAsyncVec::<u8>::try_with_capacity(isize::MAX as usize)
                .map(|v| v.capacity())
                .unwrap_err()
        }));
        // isize::MAX bytes round up to a 2^63-byte dedicated chunk.
        assert_eq!(
            err.unwrap(),
            MkAllocError::ExceedsLimit {
                requested: 1 << 63,
                limit: memkit_async::MkBudget::MAX_BYTES
            }
        );
        assert_eq!(rt.memory_budget().used(), 0);
    });
}

#[repr(align(8192))]
struct OverAligned(#[allow(dead_code)] u8);

#[repr(align(4096))]
struct Page([u8; 4096]);

#[test]
fn over_aligned_types_are_refused_and_page_aligned_ones_served() {
    with_timeout(DEADLINE, || {
        let rt = runtime_with_limit(2, 1 << 20);
        let too_large = MkAllocError::AlignmentTooLarge {
            align: 8192,
            max: 4096,
        };
        let expected = too_large.clone();
        let budget = rt.block_on(async move {
            let too_large = expected;
            spawn_with_budget(64 * KIB, async move {
                let budget = MkBudget::current().unwrap();
                assert_eq!(
                    MkAsyncBox::new(OverAligned(1)).await.map(drop),
                    Err(too_large.clone())
                );
                assert_eq!(
                    MkAsyncBox::try_new(OverAligned(1)).map(drop),
                    Err(too_large.clone())
                );
                assert_eq!(
                    MkAsyncVec::<OverAligned>::try_with_capacity(1).map(drop),
                    Err(too_large.clone())
                );
                let mut v = MkAsyncVec::new();
                assert_eq!(v.push(OverAligned(2)).await, Err(too_large.clone()));
                let arena = MkArena::new(&budget);
                assert_eq!(
                    arena.alloc(OverAligned(3)).map(drop),
                    Err(too_large.clone())
                );
                assert_eq!(budget.used(), 0, "refused before any chunk is taken");

                // Page-aligned values fit exactly at the start of a chunk.
                let p = MkAsyncBox::new(Page([5; 4096])).await.unwrap();
                assert_eq!(MkAsyncBox::as_ptr(&p) as usize % 4096, 0);
                assert_eq!(budget.used(), CHUNK);
                let q = MkAsyncBox::new(Page([6; 4096])).await.unwrap();
                assert_eq!(MkAsyncBox::as_ptr(&q) as usize % 4096, 0);
                assert_eq!(budget.used(), CHUNK + 2 * CHUNK);
                assert!(p.0.iter().all(|&b| b == 5) && q.0.iter().all(|&b| b == 6));
                drop(arena);
                budget
            })
            .await
            .unwrap()
        });
        assert_eq!(budget.used(), 0);
        assert!(too_large.to_string().contains("8192"), "{too_large}");
    });
}

#[test]
fn an_arena_moved_into_a_scoped_thread_is_used_there() {
    let budget = MkBudget::new(64 * KIB);
    let arena = MkArena::new(&budget);
    let first = arena.alloc(41u64).unwrap() as *const u64 as usize;
    let source: Vec<u64> = (0..100).collect();
    let drops = Counter::new();
    let source_ref = &source;
    let d = drops.clone();
    let (arena, sum) = std::thread::scope(|s| {
        s.spawn(move || {
            // Borrowed from the spawning stack frame, copied into the arena.
            let mut sum = 0;
            for &x in source_ref {
                sum += *arena.alloc(x).unwrap();
            }
            arena.alloc(DropCount(d)).unwrap();
            // 8 + 800 bytes and the counter: still the first chunk.
            assert_eq!(arena.budget().used(), CHUNK);
            (arena, sum)
        })
        .join()
        .unwrap()
    });
    assert_eq!(sum, 4950);
    assert_eq!(first % 8, 0);
    assert_eq!(drops.get(), 0);
    drop(arena);
    assert_eq!(drops.get(), 1);
    assert_eq!((budget.used(), budget.peak()), (0, CHUNK));
}

#[test]
fn values_in_an_arena_are_dropped_exactly_once_when_it_drops() {
    with_timeout(DEADLINE, || {
        const N: usize = 1000;
        let budget = MkBudget::new(64 * KIB);
        let drops = Counter::new();
        let arena = MkArena::new(&budget);
        for _ in 0..N {
            arena.alloc(DropCount(drops.clone())).unwrap();
        }
        // 8-byte values: 512 in the 4 KiB chunk, the rest in the 8 KiB one.
        assert_eq!(budget.used(), CHUNK + 2 * CHUNK);
        assert_eq!(drops.get(), 0);
        // Dropped inside a task on a runtime, after moving there.
        let rt = runtime(2);
        rt.block_on(rt.spawn(async move {
            yield_now().await;
            drop(arena);
        }))
        .unwrap();
        assert_eq!(drops.get(), N);
        assert_eq!(budget.used(), 0);

        // A value refused by the budget is dropped at once, and only then.
        let small = MkBudget::new(CHUNK).with_policy(MkBackpressure::Fail);
        let drops = Counter::new();
        let arena = MkArena::new(&small);
        let mut stored = 0;
        let err = loop {
            match arena.alloc(DropCount(drops.clone())) {
                Ok(_) => stored += 1,
                Err(e) => break e,
            }
        };
        assert_eq!(stored, CHUNK / size_of::<DropCount>());
        // The 8 KiB growth step does not fit, so the arena asks for the smallest chunk, which
        // the full budget refuses.
        assert_eq!(
            err,
            MkAllocError::CapacityReached {
                requested: CHUNK,
                limit: CHUNK,
                used: CHUNK
            }
        );
        assert_eq!(drops.get(), 1, "the refused value");
        drop(arena);
        assert_eq!(drops.get(), stored + 1);
        assert_eq!(small.used(), 0);
    });
}

#[test]
fn a_chunk_is_reused_once_all_its_objects_are_gone() {
    with_timeout(DEADLINE, || {
        const ROUNDS: u64 = 100_000;
        let rt = runtime_with_limit(2, 1 << 20);
        let m = rt.metrics();
        let before = m.chunks_allocated();
        let budget = rt.block_on(async {
            spawn_with_budget(64 * KIB, async {
                let budget = MkBudget::current().unwrap();
                for i in 0..ROUNDS {
                    let b = MkAsyncBox::try_new(i).unwrap();
                    assert_eq!(*b, i);
                    drop(b);
                    if i % 1000 == 0 {
                        let mut v = MkAsyncVec::with_capacity(16).await.unwrap();
                        v.push(i).await.unwrap();
                        let b = MkAsyncBox::new([i; 4]).await.unwrap();
                        assert_eq!((v[0], b[3]), (i, i));
                        yield_now().await;
                    }
                    assert_eq!(budget.used(), CHUNK);
                }
                budget
            })
            .await
            .unwrap()
        });
        assert_eq!(
            (budget.used(), budget.peak()),
            (0, CHUNK),
            "one chunk, reused"
        );
        let taken = m.chunks_allocated() - before;
        assert!(
            taken <= 1,
            "{taken} chunks from the system for one live object"
        );
        assert_eq!(rt.memory_budget().used(), 0);
    });
}
