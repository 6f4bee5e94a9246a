//! Task arenas across `.await` and worker migration, and zero-copy hand-off: boxes sent through
//! channels and `MkArena`s moved between tasks and threads keep their addresses and contents.

mod common;

use common::*;
use futures::{SinkExt, StreamExt};
use memkit_async::runtime::worker_index;
use memkit_async::task::yield_now;
use memkit_async::{spawn, MkArena, MkAsyncBox, MkAsyncVec, MkBudget};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// A recognisable byte pattern, different for each `seed`.
fn pattern(seed: usize) -> [u8; 1024] {
    std::array::from_fn(|i| (i * 31 + seed * 7 + 1) as u8)
}

/// What one migration attempt saw.
struct Attempt {
    before: usize,
    after: usize,
}

/// Allocates a box and a vector, then yields (while other tasks keep this worker busy) until
/// the task runs on another worker, checking its data after every resumption.
async fn migrate_once(seed: usize) -> Attempt {
    let before = worker_index().expect("tasks run on workers");
    let budget = MkBudget::current().expect("spawned with a budget");
    let mut boxed = MkAsyncBox::new(pattern(seed)).await.unwrap();
    let mut vec = MkAsyncVec::with_capacity(1000).await.unwrap();
    for i in 0..1000u64 {
        vec.push(i * seed as u64).await.unwrap();
    }
    // 1 KiB at the start of a 4 KiB chunk; 8000 bytes do not fit in the 3 KiB left, so the
    // vector takes the next chunk, 8 KiB.
    assert_eq!(budget.used(), CHUNK + 2 * CHUNK);
    let (box_addr, vec_addr) = (MkAsyncBox::as_ptr(&boxed) as usize, vec.as_ptr() as usize);

    // Tasks spawned here queue on this worker; the ones that block its thread make the idle
    // worker steal from this queue, where this task waits after each yield.
    let hogs: Vec<_> = (0..4)
        .map(|_| {
            spawn(async {
                for _ in 0..20 {
                    std::thread::sleep(Duration::from_millis(1));
                    yield_now().await;
                }
            })
        })
        .collect();
    let mut after = before;
    for _ in 0..200 {
        yield_now().await;
        after = worker_index().unwrap();
        assert_eq!(*boxed, pattern(seed), "box changed across an await");
        assert!(vec.iter().copied().eq((0..1000).map(|i| i * seed as u64)));
        if after != before {
            break;
        }
    }
    // Still the same memory, still writable from the new worker.
    assert_eq!(MkAsyncBox::as_ptr(&boxed) as usize, box_addr);
    assert_eq!(vec.as_ptr() as usize, vec_addr);
    boxed[0] ^= 0xff;
    vec[999] = 7;
    assert_eq!(boxed[0], pattern(seed)[0] ^ 0xff);
    assert_eq!(&boxed[1..], &pattern(seed)[1..]);
    assert_eq!(vec[999], 7);
    assert_eq!(budget.used(), 3 * CHUNK);
    for hog in hogs {
        hog.await.unwrap();
    }
    Attempt { before, after }
}

#[test]
fn arena_data_stays_valid_when_the_task_moves_to_another_worker() {
    with_timeout(DEADLINE * 6, || {
        let rt = runtime_with_limit(2, 1 << 20);
        let mut migrations = 0;
        for attempt in 0..20 {
            let handle = spawn_budgeted(&rt, 64 * KIB, async move {
                let budget = MkBudget::current().unwrap();
                (migrate_once(attempt + 1).await, budget)
            });
            let (seen, budget) = rt.block_on(handle).unwrap();
            assert_eq!(budget.used(), 0, "attempt {attempt}");
            assert!(seen.before < 2 && seen.after < 2);
            if seen.before != seen.after {
                eprintln!(
                    "attempt {attempt}: moved from worker {} to worker {}",
                    seen.before, seen.after
                );
                migrations += 1;
                break;
            }
        }
        assert!(
            migrations > 0,
            "no task moved between workers in 20 attempts"
        );
        assert_eq!(rt.memory_budget().used(), 0);
    });
}

#[test]
fn a_box_sent_through_a_channel_arrives_at_the_same_address() {
    with_timeout(DEADLINE, || {
        const N: usize = 200;
        let rt = runtime_with_limit(2, 1 << 20);
        let (mut tx, mut rx) =
            futures::channel::mpsc::channel::<(usize, MkAsyncBox<[u8; 1024]>)>(4);
        let producer = spawn_budgeted(&rt, 256 * KIB, async move {
            for i in 0..N {
                let b = MkAsyncBox::new(pattern(i)).await.unwrap();
                let addr = MkAsyncBox::as_ptr(&b) as usize;
                tx.send((addr, b)).await.unwrap();
            }
            MkBudget::current().unwrap()
        });
        let consumer = rt.spawn(async move {
            let mut n = 0;
            while let Some((addr, b)) = rx.next().await {
                assert_eq!(MkAsyncBox::as_ptr(&b) as usize, addr, "box {n} was copied");
                assert_eq!(*b, pattern(n));
                n += 1;
                yield_now().await;
            }
            n
        });
        let budget = rt.block_on(producer).unwrap();
        assert_eq!(rt.block_on(consumer).unwrap(), N);
        assert_eq!((budget.used(), rt.memory_budget().used()), (0, 0));
    });
}

#[test]
fn a_box_held_by_another_task_keeps_its_chunk_charged_until_it_drops() {
    with_timeout(DEADLINE, || {
        let rt = runtime_with_limit(2, 1 << 20);
        let (tx, rx) = tokio::sync::oneshot::channel::<(usize, MkAsyncBox<[u8; 1024]>)>();
        let gate = Gate::new();
        let g = gate.clone();
        let holder = rt.spawn(async move {
            let (addr, b) = rx.await.unwrap();
            assert_eq!(MkAsyncBox::as_ptr(&b) as usize, addr);
            g.wait().await;
            assert_eq!(*b, pattern(3));
            addr
        });
        let producer = spawn_budgeted(&rt, 64 * KIB, async move {
            let b = MkAsyncBox::new(pattern(3)).await.unwrap();
            let addr = MkAsyncBox::as_ptr(&b) as usize;
            tx.send((addr, b)).map_err(|_| ()).unwrap();
            (addr, MkBudget::current().unwrap())
        });
        let (addr, budget) = rt.block_on(producer).unwrap();
        // The producer is gone; its chunk lives on for the box.
        assert_eq!((budget.used(), rt.memory_budget().used()), (CHUNK, CHUNK));
        gate.open();
        assert_eq!(rt.block_on(holder).unwrap(), addr);
        assert_eq!((budget.used(), rt.memory_budget().used()), (0, 0));
    });
}

/// Where each record was dropped: id, address, payload intact.
type Log = Arc<Mutex<Vec<(usize, usize, bool)>>>;

/// A value that reports, when dropped, where it was and whether its payload was intact.
struct Rec {
    id: usize,
    payload: [u64; 8],
    log: Log,
}

impl Rec {
    fn new(id: usize, log: &Log) -> Rec {
        Rec {
            id,
            payload: Rec::payload(id),
            log: log.clone(),
        }
    }

    fn payload(id: usize) -> [u64; 8] {
        std::array::from_fn(|i| (id * 1000 + i) as u64)
    }
}

impl Drop for Rec {
    fn drop(&mut self) {
        let intact = self.payload == Rec::payload(self.id);
        let addr = self as *const Rec as usize;
        self.log.lock().unwrap().push((self.id, addr, intact));
    }
}

/// Fills `arena` with `n` records and returns their addresses. 80-byte records: 51 fit in the
/// first 4 KiB chunk, the rest go to the next one, 8 KiB.
fn fill(arena: &MkArena, n: usize, log: &Log) -> Vec<usize> {
    (0..n)
        .map(|id| {
            let rec = arena.alloc(Rec::new(id, log)).unwrap();
            assert_eq!(rec.payload, Rec::payload(id));
            rec as *const Rec as usize
        })
        .collect()
}

/// Each record was dropped exactly once, where it was allocated, with its payload intact.
#[track_caller]
fn assert_dropped_in_place(log: &Log, addrs: &[usize]) {
    let mut seen = log.lock().unwrap().clone();
    seen.sort();
    let expected: Vec<(usize, usize, bool)> = addrs
        .iter()
        .enumerate()
        .map(|(id, &a)| (id, a, true))
        .collect();
    assert_eq!(seen, expected);
}

#[test]
fn an_arena_filled_in_one_task_and_moved_to_another_keeps_its_values_in_place() {
    with_timeout(DEADLINE, || {
        const N: usize = 100;
        assert_eq!(size_of::<Rec>(), 80);
        let rt = runtime_with_limit(2, 1 << 20);
        let budget = rt.memory_budget().child(64 * KIB);
        let log = Log::default();
        let (tx, rx) = futures::channel::oneshot::channel::<(MkArena, Vec<usize>)>();

        let (b, l) = (budget.clone(), log.clone());
        let filler = rt.spawn(async move {
            let arena = MkArena::new(&b);
            let addrs = fill(&arena, N, &l);
            yield_now().await;
            tx.send((arena, addrs)).map_err(|_| ()).unwrap();
            worker_index()
        });
        let l = log.clone();
        let receiver = rt.spawn(async move {
            let (arena, addrs) = rx.await.unwrap();
            let budget = arena.budget().clone();
            assert_eq!(budget.used(), CHUNK + 2 * CHUNK);
            // Still usable here: one more record fits in the second chunk.
            let extra = arena.alloc(Rec::new(N, &l)).unwrap() as *const Rec as usize;
            assert_eq!(budget.used(), 3 * CHUNK);
            assert!(
                l.lock().unwrap().is_empty(),
                "nothing dropped before the arena"
            );
            drop(arena);
            (addrs, extra)
        });
        rt.block_on(filler).unwrap();
        let (mut addrs, extra) = rt.block_on(receiver).unwrap();
        addrs.push(extra);
        assert_dropped_in_place(&log, &addrs);
        assert_eq!((budget.used(), budget.peak()), (0, 3 * CHUNK));
        assert_eq!(rt.memory_budget().used(), 0);
    });
}

#[test]
fn an_arena_moved_to_a_plain_thread_keeps_its_values_in_place() {
    with_timeout(DEADLINE, || {
        let rt = runtime_with_limit(2, 1 << 20);
        let budget = rt.memory_budget().child(64 * KIB);
        let log = Log::default();
        let (b, l) = (budget.clone(), log.clone());
        let (arena, addrs) = rt
            .block_on(rt.spawn(async move {
                let arena = MkArena::new(&b);
                let addrs = fill(&arena, 40, &l);
                (arena, addrs)
            }))
            .unwrap();
        assert_eq!(budget.used(), CHUNK);
        let dropper = std::thread::spawn(move || drop(arena));
        dropper.join().unwrap();
        assert_dropped_in_place(&log, &addrs);
        assert_eq!(budget.used(), 0);
    });
}

#[test]
fn an_arena_allocation_waits_for_memory_released_by_another_thread() {
    with_timeout(DEADLINE, || {
        let rt = runtime_with_limit(2, 1 << 20);
        let budget = rt.memory_budget().child(CHUNK);
        let full = MkArena::new(&budget);
        full.alloc([1u8; CHUNK]).unwrap();
        assert_eq!(budget.used(), CHUNK);

        let mut waiting = MkArena::new(&budget);
        let b = budget.clone();
        let releaser = std::thread::spawn(move || {
            wait_until("the arena allocation waits", || b.waiting() == 1);
            drop(full);
        });
        // Awaited inside a spawned task: the future is `Send`.
        let (value, waiting) = rt
            .block_on(rt.spawn(async move {
                let value = *waiting.alloc_async(7u64).await.unwrap();
                (value, waiting)
            }))
            .unwrap();
        assert_eq!(value, 7);
        releaser.join().unwrap();
        assert_eq!(
            (budget.used(), budget.peak(), budget.waiting()),
            (CHUNK, CHUNK, 0)
        );
        drop(waiting);
        assert_eq!(budget.used(), 0);
    });
}
