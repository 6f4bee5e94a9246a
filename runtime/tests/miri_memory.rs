//! Task arenas, boxes, vectors and `MkArena`s escaping their task, sized to run under Miri
//! (`cargo +nightly miri test -p memkit-async-runtime --test miri_memory`), which checks the
//! chunk counting protocol and the arena's unsafe code for undefined behaviour across real
//! thread interleavings. Standard library only.

mod common;

use common::{block_on, runtime_with_limit, DropCount, CHUNK};
use memkit_async_runtime::memory::{MkAllocError, MkArena, MkAsyncBox, MkAsyncVec, MkBudget};
use memkit_async_runtime::spawn_with_budget;
use memkit_async_runtime::task::yield_now;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

/// A one-slot mailbox: the receiver yields until the value arrives.
type Mailbox<T> = Arc<Mutex<Option<T>>>;

async fn receive<T>(mailbox: &Mailbox<T>) -> T {
    loop {
        if let Some(v) = mailbox.lock().unwrap().take() {
            return v;
        }
        yield_now().await;
    }
}

#[test]
fn boxes_and_vectors_escape_to_other_tasks_and_threads() {
    let rt = runtime_with_limit(2, 1 << 20);
    let mailbox: Mailbox<(MkAsyncBox<[u64; 8]>, usize)> = Arc::default();
    let sent = mailbox.clone();
    let _enter = rt.enter();
    let producer = spawn_with_budget(64 << 10, async move {
        let b = MkAsyncBox::new([7u64; 8]).await.unwrap();
        let addr = MkAsyncBox::as_ptr(&b) as usize;
        let mut v = MkAsyncVec::new();
        for i in 0..10u32 {
            v.push(i).await.unwrap();
        }
        yield_now().await;
        *sent.lock().unwrap() = Some((b, addr));
        let budget = MkBudget::current().unwrap();
        (v, budget)
    });
    let consumer = rt.spawn(async move {
        let (b, addr) = receive(&mailbox).await;
        assert_eq!(MkAsyncBox::as_ptr(&b) as usize, addr);
        assert_eq!(*b, [7; 8]);
        drop(b); // freed by another task, maybe while the producer still runs
    });
    let (v, budget) = rt.block_on(producer).unwrap();
    rt.block_on(consumer).unwrap();
    assert_eq!(budget.used(), CHUNK, "the vector keeps the chunk");
    let sum = std::thread::spawn(move || {
        let sum: u32 = v.iter().sum();
        drop(v); // freed on a plain thread after its task ended
        sum
    })
    .join()
    .unwrap();
    assert_eq!(sum, 45);
    assert_eq!((budget.used(), rt.memory_budget().used()), (0, 0));
}

#[test]
fn a_box_freed_remotely_while_its_owner_keeps_allocating() {
    let rt = runtime_with_limit(2, 1 << 20);
    let mailbox: Mailbox<MkAsyncBox<u64>> = Arc::default();
    let back: Mailbox<()> = Arc::default();
    let (sent, done) = (mailbox.clone(), back.clone());
    let owner = rt.spawn(async move {
        let first = MkAsyncBox::new(1u64).await.unwrap();
        *sent.lock().unwrap() = Some(first);
        receive(&done).await;
        // The remote free is seen: once this one is gone too, the chunk is empty and reused.
        let second = MkAsyncBox::new(2u64).await.unwrap();
        let v = *second;
        drop(second);
        let third = MkAsyncBox::new([3u8; 4090]).await.unwrap();
        assert_eq!(
            memkit_async_runtime::Handle::current()
                .memory_budget()
                .used(),
            CHUNK
        );
        v + third[4089] as u64
    });
    let freer = std::thread::spawn(move || {
        let b = block_on(async {
            loop {
                if let Some(b) = mailbox.lock().unwrap().take() {
                    return b;
                }
                std::thread::yield_now();
            }
        });
        assert_eq!(*b, 1);
        drop(b);
        *back.lock().unwrap() = Some(());
    });
    freer.join().unwrap();
    assert_eq!(rt.block_on(owner).unwrap(), 5);
    assert_eq!(rt.memory_budget().used(), 0);
}

#[test]
fn arenas_move_between_tasks_and_threads_and_drop_values_once() {
    let rt = runtime_with_limit(2, 1 << 20);
    let drops = Arc::new(AtomicUsize::new(0));
    let budget = rt.memory_budget().child(64 << 10);
    let (b, d) = (budget.clone(), drops.clone());
    let (arena, addrs) = rt
        .block_on(rt.spawn(async move {
            let arena = MkArena::new(&b);
            let mut addrs = Vec::new();
            for i in 0..4u64 {
                let v = arena.alloc([i; 4]).unwrap();
                addrs.push(v as *const [u64; 4] as usize);
            }
            arena.alloc(DropCount(d.clone())).unwrap();
            arena.alloc(String::from("in the arena")).unwrap();
            yield_now().await;
            (arena, addrs)
        }))
        .unwrap();
    assert_eq!(budget.used(), CHUNK);
    let d = drops.clone();
    let arena = std::thread::scope(|s| {
        s.spawn(move || {
            let x = arena.alloc(DropCount(d)).unwrap() as *const DropCount as usize;
            assert!(!addrs.contains(&x));
            arena
        })
        .join()
        .unwrap()
    });
    let dropper = rt.spawn(async move { drop(arena) });
    rt.block_on(dropper).unwrap();
    assert_eq!(drops.load(Ordering::SeqCst), 2);
    assert_eq!(budget.used(), 0);
}

#[test]
fn forget_zero_sized_and_refused_requests() {
    let rt = runtime_with_limit(2, 1 << 20);
    let out = rt.block_on(async {
        spawn_with_budget(64 << 10, async {
            let budget = MkBudget::current().unwrap();
            // Allocate and free until the first chunk is reused a few times.
            for i in 0..300u64 {
                let b = MkAsyncBox::try_new([i; 4]).unwrap();
                assert_eq!(b[3], i);
            }
            std::mem::forget(MkAsyncBox::new([1u8; 100]).await.unwrap());
            let unit = MkAsyncBox::new(()).await.unwrap();
            let mut units = MkAsyncVec::new();
            for _ in 0..100 {
                units.push(()).await.unwrap();
            }
            let overflow = MkAsyncVec::<u64>::try_with_capacity(usize::MAX).map(drop);
            #[repr(align(8192))]
            struct Big(#[allow(dead_code)] u8);
            let aligned = MkAsyncBox::try_new(Big(0)).map(drop);
            drop((unit, units));
            (budget, overflow, aligned)
        })
        .await
        .unwrap()
    });
    let (budget, overflow, aligned) = out;
    assert_eq!(
        overflow,
        Err(MkAllocError::SizeOverflow {
            requested: usize::MAX
        })
    );
    assert_eq!(
        aligned,
        Err(MkAllocError::AlignmentTooLarge {
            align: 8192,
            max: 4096
        })
    );
    // The forgotten box keeps its chunk: only budget bytes leak.
    assert_eq!((budget.used(), budget.peak()), (CHUNK, CHUNK));
    assert_eq!(
        MkAsyncBox::try_new(0u8).map(drop),
        Err(MkAllocError::NoTask)
    );
    drop(rt);
    assert_eq!(budget.used(), CHUNK);
}

#[test]
fn frame_objects_escape_their_frame_and_are_freed_on_another_thread() {
    use memkit_async_runtime::memory::{MkAsyncFrameAlloc, MkAsyncFrameConfig};
    let rt = runtime_with_limit(2, 1 << 20);
    let alloc = MkAsyncFrameAlloc::new(MkAsyncFrameConfig::new(64 << 10));
    let a2 = alloc.clone();
    let drops = Arc::new(AtomicUsize::new(0));
    let d2 = drops.clone();
    let (kept, slice) = rt
        .block_on(rt.spawn(async move {
            let outer = a2.begin_frame().await.unwrap();
            let inner = a2.begin_frame().await.unwrap();
            let kept = a2.alloc_with(DropCount(d2)).await.unwrap();
            yield_now().await;
            let slice = a2.alloc_slice::<u16>(100).await.unwrap();
            drop(outer); // out of order
            drop(inner);
            (kept, slice)
        }))
        .unwrap();
    assert_eq!(alloc.used(), CHUNK);
    std::thread::spawn(move || {
        assert_eq!(slice.iter().map(|&x| x as usize).sum::<usize>(), 0);
        drop((kept, slice));
    })
    .join()
    .unwrap();
    assert_eq!(drops.load(Ordering::SeqCst), 1);
    assert_eq!(alloc.used(), 0);
}

#[test]
fn cache_entries_evicted_and_removed_from_several_threads() {
    use memkit_async_runtime::memory::{MkAsyncCache, MkBackpressure};
    let budget = MkBudget::new(2 * CHUNK).with_policy(MkBackpressure::Evict);
    let cache = MkAsyncCache::<u32, [u8; 1000]>::with_budget(&budget);
    let threads: Vec<_> = (0..2u32)
        .map(|t| {
            let cache = cache.clone();
            std::thread::spawn(move || {
                for i in 0..6 {
                    cache.try_insert(t * 100 + i, [i as u8; 1000]).unwrap();
                    cache.remove(&(t * 100 + i / 2));
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    assert!(budget.peak() <= 2 * CHUNK);
    drop(cache);
    assert_eq!(budget.used(), 0);
}
