//! Frames: opening, nesting, closing in any order, handles that outlive their frame or move to
//! other tasks, the four policies on the shared capacity, and bad input. Every test ends with
//! the capacity back at zero bytes.

mod common;

use common::*;
use memkit_async::{
    spawn, MkAllocError, MkAsyncBox, MkAsyncCache, MkAsyncFrameAlloc, MkAsyncFrameConfig,
    MkBackpressure,
};
use std::time::{Duration, Instant};

/// Runs `future` as a task on a fresh two-worker runtime.
fn run<F: std::future::Future + Send + 'static>(
    future: F,
) -> Result<F::Output, memkit_async::JoinError>
where
    F::Output: Send + 'static,
{
    let rt = runtime(2);
    rt.block_on(rt.spawn(future))
}

fn frames(arena_size: usize, backpressure: MkBackpressure) -> MkAsyncFrameAlloc {
    MkAsyncFrameAlloc::new(MkAsyncFrameConfig::new(arena_size).backpressure(backpressure))
}

#[test]
fn default_config_is_16_mib_wait() {
    let config = MkAsyncFrameConfig::default();
    assert_eq!(config.arena_size, 16 << 20);
    assert_eq!(config.backpressure, MkBackpressure::Wait);
    let alloc = MkAsyncFrameAlloc::new(config);
    assert_eq!(alloc.remaining(), 16 << 20);
    assert_eq!((alloc.used(), alloc.frame()), (0, 0));
}

#[test]
fn a_frame_takes_one_chunk_and_gives_it_back_on_close() {
    with_timeout(DEADLINE, || {
        run(async {
            let alloc = frames(1 << 20, MkBackpressure::Wait);
            let frame = alloc.begin_frame().await.unwrap();
            assert_eq!(frame.number(), 1);
            assert_eq!(alloc.used(), CHUNK);
            let a = alloc.alloc::<u64>().await.unwrap();
            let b = alloc.alloc_with([7u8; 100]).await.unwrap();
            assert_eq!((*a, b[99]), (0, 7));
            // Both fit the first chunk.
            assert_eq!(alloc.used(), CHUNK);
            assert_eq!(alloc.remaining(), (1 << 20) - CHUNK);
            drop((a, b));
            drop(frame);
            assert_eq!(alloc.used(), 0);
            assert_eq!(alloc.frame(), 1);
        })
        .unwrap();
    });
}

#[test]
fn frame_objects_stay_valid_across_awaits_and_worker_changes() {
    with_timeout(DEADLINE, || {
        let rt = runtime(2);
        let (moved, used) = rt
            .block_on(rt.spawn(async {
                let alloc = frames(1 << 20, MkBackpressure::Wait);
                let frame = alloc.begin_frame().await.unwrap();
                let data = alloc.alloc_with([0xA5u8; 1000]).await.unwrap();
                let addr = MkAsyncBox::as_ptr(&data) as usize;
                let moved = migrate(|| {
                    assert!(data.iter().all(|&b| b == 0xA5));
                    assert_eq!(MkAsyncBox::as_ptr(&data) as usize, addr);
                })
                .await;
                drop(data);
                drop(frame);
                (moved, alloc.used())
            }))
            .unwrap();
        assert!(moved, "the task never ran on another worker");
        assert_eq!(used, 0);
    });
}

#[test]
fn objects_outlive_their_frame_and_free_its_memory_when_dropped() {
    with_timeout(DEADLINE, || {
        let rt = runtime(2);
        let alloc = frames(1 << 20, MkBackpressure::Wait);
        let a2 = alloc.clone();
        let kept = rt
            .block_on(rt.spawn(async move {
                let frame = a2.begin_frame().await.unwrap();
                let kept = a2.alloc_with(String::from("outlives")).await.unwrap();
                drop(frame);
                kept
            }))
            .unwrap();
        // The frame is closed, but its chunk holds a live object.
        assert_eq!(alloc.used(), CHUNK);
        assert_eq!(*kept, "outlives");
        drop(kept);
        assert_eq!(alloc.used(), 0);
    });
}

#[test]
fn frames_nest_and_allocation_goes_to_the_innermost_open_frame() {
    with_timeout(DEADLINE, || {
        run(async {
            let alloc = frames(1 << 20, MkBackpressure::Wait);
            let outer = alloc.begin_frame().await.unwrap();
            let x = alloc.alloc_with(1u32).await.unwrap();
            let inner = alloc.begin_frame().await.unwrap();
            assert_eq!((outer.number(), inner.number()), (1, 2));
            let y = alloc.alloc_with(2u32).await.unwrap();
            assert_eq!(alloc.used(), 2 * CHUNK);
            let (px, py) = (
                MkAsyncBox::as_ptr(&x) as usize,
                MkAsyncBox::as_ptr(&y) as usize,
            );
            assert!(px.abs_diff(py) >= CHUNK, "inner frame uses its own chunk");
            drop(y);
            drop(inner);
            assert_eq!(alloc.used(), CHUNK);
            // Back in the outer frame: the next object follows `x` in its chunk.
            let z = alloc.alloc_with(3u32).await.unwrap();
            assert_eq!(MkAsyncBox::as_ptr(&z) as usize, px + 4);
            drop((x, z));
            drop(outer);
            assert_eq!(alloc.used(), 0);
        })
        .unwrap();
    });
}

#[test]
fn frames_closed_out_of_order_leave_the_inner_one_open() {
    with_timeout(DEADLINE, || {
        run(async {
            let alloc = frames(1 << 20, MkBackpressure::Wait);
            let outer = alloc.begin_frame().await.unwrap();
            let inner = alloc.begin_frame().await.unwrap();
            drop(outer);
            assert_eq!(alloc.used(), CHUNK);
            let v = alloc.alloc_with(9u64).await.unwrap();
            assert_eq!(alloc.used(), CHUNK);
            drop(inner);
            assert_eq!(alloc.used(), CHUNK, "the object keeps the inner chunk");
            assert_eq!(
                alloc.alloc::<u8>().await.unwrap_err(),
                MkAllocError::NoFrame
            );
            drop(v);
            assert_eq!(alloc.used(), 0);
        })
        .unwrap();
    });
}

#[test]
fn frames_belong_to_their_task() {
    with_timeout(DEADLINE, || {
        let rt = runtime(2);
        rt.block_on(async {
            let alloc = frames(1 << 20, MkBackpressure::Wait);
            let a2 = alloc.clone();
            let guard = spawn(async move { a2.begin_frame().await.unwrap() })
                .await
                .unwrap();
            // Another task has no frame of its own.
            let a3 = alloc.clone();
            let err = spawn(async move { a3.alloc::<u64>().await.unwrap_err() })
                .await
                .unwrap();
            assert_eq!(err, MkAllocError::NoFrame);
            assert_eq!(alloc.used(), CHUNK);
            // A guard dropped in another task still closes its frame.
            spawn(async move { drop(guard) }).await.unwrap();
            assert_eq!(alloc.used(), 0);
        });
    });
}

#[test]
fn allocating_with_no_frame_is_a_clear_error() {
    with_timeout(DEADLINE, || {
        run(async {
            let alloc = frames(1 << 20, MkBackpressure::Wait);
            let err = alloc.alloc_with(5u8).await.unwrap_err();
            assert_eq!(err, MkAllocError::NoFrame);
            assert!(err.to_string().contains("begin_frame().await"));
        })
        .unwrap();
    });
}

#[test]
fn alloc_slice_is_contiguous_and_defaulted() {
    with_timeout(DEADLINE, || {
        run(async {
            let alloc = frames(1 << 20, MkBackpressure::Wait);
            let frame = alloc.begin_frame().await.unwrap();
            let mut s = alloc.alloc_slice::<u32>(500).await.unwrap();
            assert_eq!((s.len(), s.capacity()), (500, 500));
            assert!(s.iter().all(|&x| x == 0));
            s[499] = 42;
            assert_eq!(s[499], 42);
            // 2000 bytes fit the first chunk.
            assert_eq!(alloc.used(), CHUNK);
            let err = alloc.alloc_slice::<u64>(usize::MAX).await.unwrap_err();
            assert!(matches!(err, MkAllocError::SizeOverflow { .. }));
            drop(s);
            drop(frame);
            assert_eq!(alloc.used(), 0);
        })
        .unwrap();
    });
}

#[test]
fn a_capacity_below_one_chunk_cannot_open_a_frame() {
    with_timeout(DEADLINE, || {
        run(async {
            for size in [0, 1024] {
                let alloc = frames(size, MkBackpressure::Wait);
                let err = alloc.begin_frame().await.unwrap_err();
                assert_eq!(
                    err,
                    MkAllocError::ExceedsLimit {
                        requested: CHUNK,
                        limit: size
                    }
                );
                assert_eq!(alloc.used(), 0);
            }
        })
        .unwrap();
    });
}

#[test]
fn an_object_larger_than_the_capacity_fails_at_once_under_wait() {
    with_timeout(DEADLINE, || {
        run(async {
            let alloc = frames(16 << 10, MkBackpressure::Wait);
            let frame = alloc.begin_frame().await.unwrap();
            let err = alloc.alloc_with([0u8; 32 << 10]).await.unwrap_err();
            assert!(matches!(err, MkAllocError::ExceedsLimit { .. }), "{err:?}");
            drop(frame);
            assert_eq!(alloc.used(), 0);
        })
        .unwrap();
    });
}

#[test]
fn fail_policy_refuses_a_frame_when_the_capacity_is_exhausted() {
    with_timeout(DEADLINE, || {
        run(async {
            let alloc = frames(2 * CHUNK, MkBackpressure::Fail);
            let a = alloc.begin_frame().await.unwrap();
            let b = alloc.begin_frame().await.unwrap();
            let err = alloc.begin_frame().await.unwrap_err();
            assert_eq!(
                err,
                MkAllocError::CapacityReached {
                    requested: CHUNK,
                    limit: 2 * CHUNK,
                    used: 2 * CHUNK
                }
            );
            drop((a, b));
            assert_eq!(alloc.used(), 0);
        })
        .unwrap();
    });
}

#[test]
fn wait_policy_parks_begin_frame_until_a_frame_closes() {
    with_timeout(DEADLINE, || {
        let rt = runtime(2);
        rt.block_on(async {
            let alloc = frames(CHUNK, MkBackpressure::Wait);
            let a2 = alloc.clone();
            let (tx, rx) = std::sync::mpsc::channel();
            let holder = spawn(async move {
                let frame = a2.begin_frame().await.unwrap();
                tx.send(()).unwrap();
                frame
            })
            .await
            .unwrap();
            rx.recv().unwrap();
            let a3 = alloc.clone();
            let waiter = spawn(async move {
                let frame = a3.begin_frame().await.unwrap();
                let n = frame.number();
                drop(frame);
                n
            });
            let budget = alloc.budget().clone();
            wait_until("the second frame waits", || budget.waiting() == 1);
            assert!(!waiter.is_finished());
            drop(holder);
            assert_eq!(waiter.await.unwrap(), 2);
            assert_eq!(alloc.used(), 0);
        });
    });
}

#[test]
fn timeout_policy_gives_up_after_its_duration() {
    with_timeout(DEADLINE, || {
        run(async {
            let wait = Duration::from_millis(50);
            let alloc = frames(CHUNK, MkBackpressure::Timeout(wait));
            let held = alloc.begin_frame().await.unwrap();
            let start = Instant::now();
            let err = alloc.begin_frame().await.unwrap_err();
            assert!(start.elapsed() >= wait);
            let (request, waited) = expect_timed_out(err);
            assert_eq!(request, (CHUNK, CHUNK, CHUNK));
            assert!(waited >= wait);
            drop(held);
            assert_eq!(alloc.used(), 0);
        })
        .unwrap();
    });
}

#[test]
fn evict_policy_reclaims_from_a_cache_on_the_same_capacity() {
    with_timeout(DEADLINE, || {
        run(async {
            let alloc = frames(4 * CHUNK, MkBackpressure::Evict);
            let cache = MkAsyncCache::<u32, [u8; 1000]>::with_budget(alloc.budget());
            // Four entries per 4 KiB chunk: 16 entries fill the capacity.
            for i in 0..16 {
                cache.try_insert(i, [i as u8; 1000]).unwrap();
            }
            assert_eq!(alloc.used(), 4 * CHUNK);
            let frame = alloc.begin_frame().await.unwrap();
            // The four oldest entries emptied the oldest chunk.
            assert_eq!(cache.evicted(), 4);
            assert!(!cache.contains_key(&3) && cache.contains_key(&4));
            assert_eq!(alloc.used(), 4 * CHUNK);
            drop(frame);
            cache.clear();
            assert_eq!(alloc.used(), 0);
            // With nothing left to evict, Evict fails like Fail.
            let frames: Vec<_> = futures::future::join_all((0..4).map(|_| alloc.begin_frame()))
                .await
                .into_iter()
                .map(Result::unwrap)
                .collect();
            let err = alloc.begin_frame().await.unwrap_err();
            assert!(
                matches!(err, MkAllocError::CapacityReached { .. }),
                "{err:?}"
            );
            drop(frames);
            assert_eq!(alloc.used(), 0);
        })
        .unwrap();
    });
}

#[test]
fn inside_a_runtime_frames_count_against_the_memory_limit() {
    with_timeout(DEADLINE, || {
        let rt = memkit_async::Builder::new()
            .worker_threads(2)
            .memory_limit(1 << 20)
            .build()
            .unwrap();
        let root = rt.handle().memory_budget().clone();
        rt.block_on(rt.spawn(async move {
            let alloc = frames(64 << 10, MkBackpressure::Fail);
            let frame = alloc.begin_frame().await.unwrap();
            assert_eq!(root.used(), CHUNK);
            drop(frame);
            assert_eq!(root.used(), 0);
        }))
        .unwrap();
    });
}

#[test]
fn frames_work_in_block_on_for_the_calling_thread() {
    with_timeout(DEADLINE, || {
        runtime(2).block_on(async {
            let alloc = frames(1 << 20, MkBackpressure::Wait);
            let frame = alloc.begin_frame().await.unwrap();
            let v = alloc.alloc_with(11u16).await.unwrap();
            assert_eq!(*v, 11);
            drop(v);
            drop(frame);
            assert_eq!(alloc.used(), 0);
        });
    });
}
