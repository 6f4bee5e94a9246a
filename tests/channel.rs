//! `MkAsyncChannel`: the four policies with exact byte accounting, FIFO service of waiting
//! senders, and zero-copy moves of arena memory.

mod common;

use common::*;
use memkit_async::{
    MkAllocError, MkArena, MkAsyncBox, MkAsyncChannel, MkAsyncVec, MkBackpressure, MkBudget,
    MkTrySendError,
};
use std::time::{Duration, Instant};

#[test]
fn wait_parks_a_full_sender_until_the_receiver_makes_room() {
    with_timeout(DEADLINE, || {
        let rt = runtime(2);
        let drops = Counter::new();
        let (tx, mut rx) = MkAsyncChannel::bounded_bytes(3 * KIB, MkBackpressure::Wait);
        assert_eq!((tx.capacity(), rx.capacity()), (3 * KIB, 3 * KIB));
        rt.block_on(async {
            for i in 0..3 {
                tx.send(msg(i, KIB, &drops)).await.unwrap();
            }
        });
        let budget = tx.budget().clone();
        assert_eq!((budget.used(), rx.len()), (3 * KIB, 3));

        // A 2 KiB message does not fit: its sender parks, charged nothing.
        let tx2 = tx.clone();
        let d = drops.clone();
        let parked = rt.spawn(async move { tx2.send(msg(3, 2 * KIB, &d)).await.is_ok() });
        wait_until("the 2 KiB sender is parked", || budget.waiting() == 1);
        assert_eq!(budget.used(), 3 * KIB);

        // 1 KiB released: still not enough for the head of the queue.
        assert_eq!(rt.block_on(rx.recv()).unwrap().id, 0);
        assert_eq!((budget.used(), budget.waiting()), (2 * KIB, 1));
        assert!(!parked.is_finished());

        // 2 KiB free: the parked sender is served, then completes.
        assert_eq!(rt.block_on(rx.recv()).unwrap().id, 1);
        assert!(rt.block_on(parked).unwrap());
        assert_eq!((budget.used(), budget.waiting(), rx.len()), (3 * KIB, 0, 2));

        drop(tx);
        let rest: Vec<Msg> = rt.block_on(async {
            let mut v = Vec::new();
            while let Some(m) = rx.recv().await {
                v.push(m);
            }
            v
        });
        assert_eq!(ids(&rest), [2, 3]);
        drop(rest);
        assert_eq!(drops.get(), 4);
        assert_eq!(
            (budget.used(), budget.peak(), budget.waiting()),
            (0, 3 * KIB, 0)
        );
    });
}

#[test]
fn wait_serves_parked_senders_in_fifo_order() {
    with_timeout(DEADLINE, || {
        let rt = runtime(2);
        let drops = Counter::new();
        let (tx, mut rx) = MkAsyncChannel::bounded_bytes(KIB, MkBackpressure::Wait);
        tx.try_send(msg(0, KIB, &drops)).unwrap();
        let budget = tx.budget().clone();
        let mut senders = Vec::new();
        for i in 1..=5 {
            let tx = tx.clone();
            let d = drops.clone();
            senders.push(rt.spawn(async move { tx.send(msg(i, KIB, &d)).await.is_ok() }));
            wait_until("the new sender is parked behind the others", || {
                budget.waiting() == i
            });
        }
        drop(tx);
        let got: Vec<usize> = rt.block_on(async {
            let mut v = Vec::new();
            while let Some(m) = rx.recv().await {
                v.push(m.id);
            }
            v
        });
        assert_eq!(got, [0, 1, 2, 3, 4, 5]);
        for s in senders {
            assert!(rt.block_on(s).unwrap());
        }
        assert_eq!(drops.get(), 6);
        assert_eq!(
            (budget.used(), budget.peak(), budget.waiting()),
            (0, KIB, 0)
        );
    });
}

#[test]
fn fail_refuses_a_full_channel_at_once_and_returns_the_message() {
    with_timeout(DEADLINE, || {
        let rt = runtime(1);
        let drops = Counter::new();
        let (tx, mut rx) = MkAsyncChannel::bounded_bytes(3 * KIB, MkBackpressure::Fail);
        let budget = tx.budget().clone();
        rt.block_on(async {
            for i in 0..3 {
                tx.send(msg(i, KIB, &drops)).await.unwrap();
            }
            let err = tx.send(msg(3, 512, &drops)).await.unwrap_err();
            assert_eq!(
                err.alloc_error(),
                Some(&MkAllocError::CapacityReached {
                    requested: 512,
                    limit: 3 * KIB,
                    used: 3 * KIB
                })
            );
            assert!(err.to_string().starts_with("channel full: "), "{err}");
            let back = err.into_inner();
            assert_eq!(
                (back.id, drops.get()),
                (3, 0),
                "returned intact, not dropped"
            );
            match tx.try_send(back) {
                Err(MkTrySendError::Full(m, MkAllocError::CapacityReached { .. })) => {
                    assert_eq!(m.id, 3);
                    drop(m);
                }
                other => panic!("expected Full, got {other:?}"),
            }
            assert_eq!(
                (budget.used(), budget.waiting(), drops.get()),
                (3 * KIB, 0, 1)
            );

            // Room again after one receive.
            assert_eq!(rx.recv().await.unwrap().id, 0);
            tx.send(msg(4, KIB, &drops)).await.unwrap();
            assert_eq!(budget.used(), 3 * KIB);
        });
        drop(tx);
        let got: Vec<usize> = rt.block_on(async {
            let mut v = Vec::new();
            while let Some(m) = rx.recv().await {
                v.push(m.id);
            }
            v
        });
        assert_eq!(got, [1, 2, 4]);
        assert_eq!(drops.get(), 5);
        assert_eq!((budget.used(), budget.peak()), (0, 3 * KIB));
    });
}

#[test]
fn timeout_waits_its_duration_then_returns_the_message_or_succeeds_if_room_is_made() {
    with_timeout(DEADLINE, || {
        let rt = runtime(2);
        let drops = Counter::new();
        let d = Duration::from_millis(50);
        let (tx, mut rx) = MkAsyncChannel::bounded_bytes(2 * KIB, MkBackpressure::Timeout(d));
        let budget = tx.budget().clone();
        rt.block_on(async {
            tx.send(msg(0, KIB, &drops)).await.unwrap();
            tx.send(msg(1, KIB, &drops)).await.unwrap();
            let start = Instant::now();
            let err = tx.send(msg(2, KIB, &drops)).await.unwrap_err();
            let elapsed = start.elapsed();
            let Some(&MkAllocError::TimedOut {
                requested,
                limit,
                used,
                waited,
            }) = err.alloc_error()
            else {
                panic!("expected TimedOut, got {err:?}");
            };
            assert_eq!((requested, limit, used), (KIB, 2 * KIB, 2 * KIB));
            assert!(waited >= d && elapsed >= d, "gave up after {elapsed:?}");
            assert!(elapsed < DEADLINE, "gave up only after {elapsed:?}");
            let back = err.into_inner();
            assert_eq!(
                (back.id, drops.get()),
                (2, 0),
                "returned intact, not dropped"
            );
            drop(back);
        });
        assert_eq!((budget.used(), budget.waiting()), (2 * KIB, 0));

        // Room made within the timeout: the send succeeds.
        let (tx, mut rx2) = {
            drop(tx);
            MkAsyncChannel::bounded_bytes(2 * KIB, MkBackpressure::Timeout(DEADLINE))
        };
        let budget2 = tx.budget().clone();
        rt.block_on(async {
            tx.send(msg(10, 2 * KIB, &drops)).await.unwrap();
        });
        let d2 = drops.clone();
        let sender = rt.spawn(async move { tx.send(msg(11, KIB, &d2)).await.is_ok() });
        wait_until("the sender is parked", || budget2.waiting() == 1);
        assert_eq!(rt.block_on(rx2.recv()).unwrap().id, 10);
        assert!(rt.block_on(sender).unwrap());
        assert_eq!(rt.block_on(rx2.recv()).unwrap().id, 11);
        assert_eq!(rt.block_on(rx2.recv()).map(|m| m.id), None);

        let got: Vec<usize> = rt.block_on(async {
            let mut v = Vec::new();
            while let Some(m) = rx.recv().await {
                v.push(m.id);
            }
            v
        });
        assert_eq!(got, [0, 1]);
        assert_eq!(drops.get(), 5);
        assert_eq!((budget.used(), budget.peak()), (0, 2 * KIB));
        assert_eq!(
            (budget2.used(), budget2.peak(), budget2.waiting()),
            (0, 2 * KIB, 0)
        );
    });
}

#[test]
fn evict_drops_the_oldest_queued_messages_to_make_room() {
    with_timeout(DEADLINE, || {
        let rt = runtime(1);
        let drops = Counter::new();
        let (tx, mut rx) = MkAsyncChannel::bounded_bytes(3 * KIB, MkBackpressure::Evict);
        let budget = tx.budget().clone();
        rt.block_on(async {
            for i in 0..3 {
                tx.send(msg(i, KIB, &drops)).await.unwrap();
            }
            // 2 KiB wanted, 0 free: the two oldest go.
            tx.send(msg(3, 2 * KIB, &drops)).await.unwrap();
            assert_eq!((drops.get(), rx.len(), budget.used()), (2, 2, 3 * KIB));
            // try_send evicts too: 1 KiB wanted, the oldest (id 2, 1 KiB) goes.
            tx.try_send(msg(4, KIB, &drops)).unwrap();
            assert_eq!((drops.get(), rx.len(), budget.used()), (3, 2, 3 * KIB));
            // Larger than the whole capacity: refused at once, nothing evicted.
            let err = tx.send(msg(5, 4 * KIB, &drops)).await.unwrap_err();
            assert_eq!(
                err.alloc_error(),
                Some(&MkAllocError::ExceedsLimit {
                    requested: 4 * KIB,
                    limit: 3 * KIB
                })
            );
            drop(err);
            assert_eq!((drops.get(), rx.len(), budget.used()), (4, 2, 3 * KIB));
        });
        drop(tx);
        let got: Vec<usize> = rt.block_on(async {
            let mut v = Vec::new();
            while let Some(m) = rx.recv().await {
                v.push(m.id);
            }
            v
        });
        assert_eq!(got, [3, 4]);
        assert_eq!(drops.get(), 6);
        assert_eq!(
            (budget.used(), budget.peak(), budget.waiting()),
            (0, 3 * KIB, 0)
        );
    });
}

#[test]
fn evict_bounded_by_messages_keeps_the_newest() {
    with_timeout(DEADLINE, || {
        let rt = runtime(1);
        let (tx, mut rx) = MkAsyncChannel::bounded(4, MkBackpressure::Evict);
        rt.block_on(async {
            for i in 0..100u32 {
                tx.send(i).await.unwrap();
            }
            assert_eq!((tx.budget().used(), tx.budget().peak()), (4, 4));
            drop(tx);
            let mut got = Vec::new();
            while let Some(i) = rx.recv().await {
                got.push(i);
            }
            assert_eq!(got, [96, 97, 98, 99]);
            assert_eq!(rx.budget().used(), 0);
        });
    });
}

#[test]
fn an_mk_async_box_arrives_at_the_same_address() {
    with_timeout(DEADLINE, || {
        let rt = runtime(2);
        let (sent, received) = rt
            .block_on(rt.spawn(async {
                let (tx, mut rx) = MkAsyncChannel::bounded_bytes(4 * KIB, MkBackpressure::Wait);
                let consumer = memkit_async::spawn(async move {
                    let mut seen = Vec::new();
                    while let Some(b) = rx.recv().await {
                        let b: MkAsyncBox<[u8; 1024]> = b;
                        let first = b[0];
                        assert!(b.iter().all(|&x| x == first), "payload intact");
                        seen.push(MkAsyncBox::as_ptr(&b) as usize);
                    }
                    assert_eq!(rx.budget().used(), 0);
                    seen
                });
                let mut sent = Vec::new();
                for i in 0..16u8 {
                    let b = MkAsyncBox::new([i; 1024]).await.unwrap();
                    sent.push(MkAsyncBox::as_ptr(&b) as usize);
                    tx.send(b).await.unwrap();
                    assert!(tx.budget().used() <= 4 * KIB);
                }
                drop(tx);
                (sent, consumer.await.unwrap())
            }))
            .unwrap();
        assert_eq!(sent, received, "every box received where it was allocated");
    });
}

#[test]
fn mk_async_vec_and_mk_arena_move_without_copying_and_count_their_bytes() {
    with_timeout(DEADLINE, || {
        let rt = runtime(2);
        rt.block_on(rt.spawn(async {
            // A vector counts its capacity.
            let (tx, mut rx) = MkAsyncChannel::bounded_bytes(8 * KIB, MkBackpressure::Fail);
            let mut v = MkAsyncVec::<u8>::with_capacity(3 * KIB).await.unwrap();
            v.push(42).await.unwrap();
            let addr = v.as_ptr() as usize;
            tx.send(v).await.unwrap();
            assert_eq!(tx.budget().used(), 3 * KIB);
            let v = memkit_async::spawn(async move { rx.recv().await.unwrap() })
                .await
                .unwrap();
            assert_eq!((v.as_ptr() as usize, v[0], v.len()), (addr, 42, 1));
            assert_eq!(tx.budget().used(), 0);

            // An arena counts the chunk bytes it holds; its owner budget keeps them charged
            // until the receiver drops it.
            let arena_budget = MkBudget::new(1 << 20);
            let arena = MkArena::new(&arena_budget);
            let value: &mut [u64; 8] = arena.alloc([9u64; 8]).unwrap();
            assert_eq!(value[7], 9);
            let (tx, mut rx) = MkAsyncChannel::bounded_bytes(8 * KIB, MkBackpressure::Fail);
            tx.send(arena).await.unwrap();
            assert_eq!(
                (tx.budget().used(), arena_budget.used()),
                (4 * KIB, 4 * KIB)
            );
            let arena = memkit_async::spawn(async move { rx.recv().await.unwrap() })
                .await
                .unwrap();
            assert_eq!(tx.budget().used(), 0);
            assert_eq!(arena.allocated_bytes(), 4 * KIB);
            drop(arena);
            assert_eq!(arena_budget.used(), 0);
        }))
        .unwrap();
    });
}

#[test]
fn many_producers_keep_their_own_order_and_the_bound() {
    with_timeout(DEADLINE, || {
        const PRODUCERS: usize = 4;
        // Fewer under Miri, where 8 000 messages take many minutes; still far over the bound.
        const EACH: usize = if cfg!(miri) { 50 } else { 2_000 };
        let rt = runtime(2);
        let (tx, mut rx) = MkAsyncChannel::bounded(8, MkBackpressure::Wait);
        let budget = tx.budget().clone();
        let producers: Vec<_> = (0..PRODUCERS)
            .map(|p| {
                let tx = tx.clone();
                rt.spawn(async move {
                    for i in 0..EACH {
                        tx.send((p, i)).await.unwrap();
                    }
                })
            })
            .collect();
        drop(tx);
        let mut next = [0usize; PRODUCERS];
        let total = rt.block_on(async {
            let mut n = 0;
            while let Some((p, i)) = rx.recv().await {
                assert_eq!(i, next[p], "producer {p} out of order");
                next[p] += 1;
                n += 1;
            }
            n
        });
        for p in producers {
            rt.block_on(p).unwrap();
        }
        assert_eq!(total, PRODUCERS * EACH);
        assert_eq!((budget.used(), budget.waiting()), (0, 0));
        assert!(budget.peak() <= 8);
    });
}

#[test]
fn a_zero_byte_message_still_counts_one_byte() {
    let (tx, mut rx) = MkAsyncChannel::bounded_bytes(2, MkBackpressure::Fail);
    tx.try_send(Vec::<u8>::new()).unwrap();
    tx.try_send(Vec::new()).unwrap();
    assert!(matches!(
        tx.try_send(Vec::new()),
        Err(MkTrySendError::Full(
            _,
            MkAllocError::CapacityReached { .. }
        ))
    ));
    assert_eq!(tx.budget().used(), 2);
    assert_eq!(rx.try_recv().unwrap(), Vec::<u8>::new());
    assert_eq!(tx.budget().used(), 1);
}
