//! `MkAsyncChannel`: closing, bad input (capacity 0, messages larger than the bound, a closed
//! channel, a gone receiver), and the `Stream` and `Sink` implementations.

mod common;

use common::*;
use futures::{SinkExt, StreamExt};
use memkit_async::{
    MkAllocError, MkAsyncChannel, MkBackpressure, MkSendError, MkTryRecvError, MkTrySendError,
};
use std::future::Future;
use std::pin::pin;
use std::task::{Context, Waker};
use std::time::Duration;

const POLICIES: [MkBackpressure; 4] = [
    MkBackpressure::Wait,
    MkBackpressure::Fail,
    MkBackpressure::Timeout(Duration::from_secs(60)),
    MkBackpressure::Evict,
];

#[test]
fn capacity_zero_refuses_every_message_at_once_under_every_policy() {
    with_timeout(DEADLINE, || {
        let rt = runtime(1);
        for policy in POLICIES {
            let (tx, mut rx) = MkAsyncChannel::<u32>::bounded(0, policy);
            let err = rt.block_on(tx.send(7)).unwrap_err();
            assert_eq!(
                err.alloc_error(),
                Some(&MkAllocError::ExceedsLimit {
                    requested: 1,
                    limit: 0
                }),
                "{policy:?}"
            );
            let text = err.to_string();
            assert!(text.contains("capacity of 0"), "{text}");
            assert_eq!(err.into_inner(), 7);
            assert!(matches!(
                tx.try_send(8),
                Err(MkTrySendError::Full(8, MkAllocError::ExceedsLimit { .. }))
            ));

            let (tx, _rx) = MkAsyncChannel::<Vec<u8>>::bounded_bytes(0, policy);
            let err = rt.block_on(tx.send(Vec::new())).unwrap_err();
            assert_eq!(
                err.alloc_error(),
                Some(&MkAllocError::ExceedsLimit {
                    requested: 1,
                    limit: 0
                })
            );
            assert_eq!(rx.try_recv(), Err(MkTryRecvError::Empty));
        }
    });
}

#[test]
fn a_message_larger_than_the_byte_bound_is_refused_at_once_under_every_policy() {
    with_timeout(DEADLINE, || {
        let rt = runtime(1);
        for policy in POLICIES {
            let drops = Counter::new();
            let (tx, mut rx) = MkAsyncChannel::bounded_bytes(4 * KIB, policy);
            // Full, so a policy that waits would wait forever if it tried.
            tx.try_send(msg(0, 4 * KIB, &drops)).unwrap();
            let err = rt.block_on(tx.send(msg(1, 5 * KIB, &drops))).unwrap_err();
            assert_eq!(
                err.alloc_error(),
                Some(&MkAllocError::ExceedsLimit {
                    requested: 5 * KIB,
                    limit: 4 * KIB
                }),
                "{policy:?}"
            );
            let text = err.to_string();
            assert!(
                text.contains("5120 units") && text.contains("4096 units"),
                "{text}"
            );
            assert_eq!(err.into_inner().id, 1);
            assert_eq!(drops.get(), 1, "{policy:?}: nothing evicted for it");
            assert_eq!((tx.budget().used(), tx.budget().waiting()), (4 * KIB, 0));
            assert_eq!(rx.try_recv().unwrap().id, 0);
            assert_eq!(tx.budget().used(), 0);
        }
    });
}

#[test]
fn queued_messages_are_received_after_every_sender_is_gone_then_none() {
    with_timeout(DEADLINE, || {
        let rt = runtime(2);
        let (tx, mut rx) = MkAsyncChannel::bounded(4, MkBackpressure::Wait);
        let tx2 = tx.clone();
        tx.try_send(1).unwrap();
        tx2.try_send(2).unwrap();
        drop(tx);
        assert!(!rx.is_closed(), "one sender remains");
        drop(tx2);
        assert!(rx.is_closed());
        assert_eq!(rx.try_recv(), Ok(1));
        assert_eq!(rt.block_on(rx.recv()), Some(2));
        assert_eq!(rt.block_on(rx.recv()), None);
        assert_eq!(rt.block_on(rx.recv()), None, "stays ended");
        assert_eq!(rx.try_recv(), Err(MkTryRecvError::Closed));
        assert_eq!(rx.budget().used(), 0);
    });
}

#[test]
fn a_parked_receiver_is_woken_by_a_send_and_by_the_last_sender_leaving() {
    with_timeout(DEADLINE, || {
        let rt = runtime(2);
        let (tx, mut rx) = MkAsyncChannel::bounded(1, MkBackpressure::Wait);
        let receiver = rt.spawn(async move {
            let first = rx.recv().await;
            let second = rx.recv().await;
            (first, second)
        });
        std::thread::sleep(Duration::from_millis(20)); // let it park (not required for success)
        rt.block_on(tx.send(5u8)).unwrap();
        std::thread::sleep(Duration::from_millis(20));
        drop(tx);
        assert_eq!(rt.block_on(receiver).unwrap(), (Some(5), None));
    });
}

#[test]
fn close_keeps_queued_messages_and_refuses_new_ones() {
    with_timeout(DEADLINE, || {
        let rt = runtime(1);
        let (tx, mut rx) = MkAsyncChannel::bounded(4, MkBackpressure::Wait);
        tx.try_send(1).unwrap();
        tx.try_send(2).unwrap();
        assert_eq!(rx.try_recv(), Ok(1));
        rx.close();
        assert!(tx.is_closed() && rx.is_closed());
        let err = rt.block_on(tx.send(3)).unwrap_err();
        assert!(err.is_closed());
        assert!(err.to_string().starts_with("channel closed"), "{err}");
        assert_eq!(err.into_inner(), 3);
        assert!(matches!(tx.try_send(4), Err(MkTrySendError::Closed(4))));
        assert_eq!(rx.try_recv(), Ok(2), "queued before close: still received");
        assert_eq!(rx.try_recv(), Err(MkTryRecvError::Closed));
        assert_eq!(rt.block_on(rx.recv()), None);
        assert_eq!(tx.budget().used(), 0);
    });
}

#[test]
fn sending_after_the_receiver_is_gone_returns_the_message_and_queued_ones_are_dropped() {
    with_timeout(DEADLINE, || {
        let rt = runtime(1);
        let drops = Counter::new();
        let (tx, rx) = MkAsyncChannel::bounded_bytes(4 * KIB, MkBackpressure::Wait);
        for i in 0..3 {
            tx.try_send(msg(i, KIB, &drops)).unwrap();
        }
        assert_eq!(tx.budget().used(), 3 * KIB);
        drop(rx);
        assert_eq!(drops.get(), 3, "queued messages dropped with the receiver");
        assert_eq!(tx.budget().used(), 0);
        assert!(tx.is_closed());
        match rt.block_on(tx.send(msg(3, KIB, &drops))) {
            Err(MkSendError::Closed(m)) => assert_eq!((m.id, drops.get()), (3, 3)),
            other => panic!("expected Closed, got {other:?}"),
        }
        assert!(matches!(
            tx.try_send(msg(4, KIB, &drops)),
            Err(MkTrySendError::Closed(_))
        ));
        assert_eq!((drops.get(), tx.budget().used()), (5, 0));
    });
}

#[test]
fn closing_or_dropping_the_receiver_wakes_parked_senders_with_their_messages() {
    for drop_it in [false, true] {
        with_timeout(DEADLINE, move || {
            let rt = runtime(2);
            let drops = Counter::new();
            let policy = MkBackpressure::Timeout(DEADLINE * 2); // waits, but never past the test
            let (tx, rx) = MkAsyncChannel::bounded_bytes(KIB, policy);
            let mut rx = Some(rx);
            tx.try_send(msg(0, KIB, &drops)).unwrap();
            let budget = tx.budget().clone();
            let senders: Vec<_> = (1..=3)
                .map(|i| {
                    let tx = tx.clone();
                    let d = drops.clone();
                    rt.spawn(async move {
                        match tx.send(msg(i, KIB, &d)).await {
                            Err(MkSendError::Closed(m)) => m.id,
                            other => panic!("expected Closed, got {:?}", other.map(|_| ())),
                        }
                    })
                })
                .collect();
            wait_until("three senders are parked", || budget.waiting() == 3);
            if drop_it {
                rx = None; // drops message 0; the woken senders drop theirs concurrently
            } else if let Some(rx) = rx.as_mut() {
                rx.close();
            }
            let back: Vec<usize> = senders
                .into_iter()
                .map(|s| rt.block_on(s).unwrap())
                .collect();
            assert_eq!(back, [1, 2, 3]);
            assert_eq!(drops.get(), if drop_it { 4 } else { 3 });
            assert_eq!(budget.waiting(), 0);
            if let Some(mut rx) = rx {
                assert_eq!(rx.try_recv().unwrap().id, 0);
                assert_eq!(rx.try_recv().err(), Some(MkTryRecvError::Closed));
            }
            assert_eq!((budget.used(), drops.get()), (0, 4));
        });
    }
}

#[test]
fn dropping_a_parked_send_withdraws_it_without_leaking_bytes() {
    let drops = Counter::new();
    let (tx, mut rx) = MkAsyncChannel::bounded_bytes(KIB, MkBackpressure::Wait);
    tx.try_send(msg(0, KIB, &drops)).unwrap();
    let mut cx = Context::from_waker(Waker::noop());
    {
        let mut send = pin!(tx.send(msg(1, KIB, &drops)));
        assert!(send.as_mut().poll(&mut cx).is_pending());
        assert_eq!(tx.budget().waiting(), 1);
        assert_eq!(rx.try_recv().unwrap().id, 0); // grants the parked send its bytes
        assert_eq!(tx.budget().used(), KIB);
    } // dropped before it was polled again: the granted bytes go back
    assert_eq!(drops.get(), 2);
    assert_eq!((tx.budget().used(), tx.budget().waiting()), (0, 0));
    assert_eq!(rx.try_recv().err(), Some(MkTryRecvError::Empty));
}

#[test]
fn the_receiver_is_a_fused_stream() {
    with_timeout(DEADLINE, || {
        let rt = runtime(2);
        let (tx, rx) = MkAsyncChannel::bounded(3, MkBackpressure::Wait);
        // Full before the consumer starts, so the stream also drains a channel at its bound.
        rt.block_on(async {
            for i in 0..3u32 {
                tx.send(i).await.unwrap();
            }
        });
        assert!(matches!(tx.try_send(3), Err(MkTrySendError::Full(3, _))));
        let producer = rt.spawn(async move {
            for i in 3..100u32 {
                tx.send(i).await.unwrap();
            }
        });
        let (got, rx) = rt.block_on(async move {
            let mut rx = rx;
            let got: Vec<u32> = rx.by_ref().collect().await;
            (got, rx)
        });
        rt.block_on(producer).unwrap();
        assert_eq!(got, (0..100).collect::<Vec<_>>());
        assert!(futures::stream::FusedStream::is_terminated(&rx));
        assert_eq!(rx.budget().peak(), 3);
    });
}

#[test]
fn the_sender_is_a_sink_and_closing_it_ends_the_stream() {
    with_timeout(DEADLINE, || {
        let rt = runtime(2);
        let (mut tx, rx) = MkAsyncChannel::bounded(2, MkBackpressure::Wait);
        let consumer = rt.spawn(rx.collect::<Vec<u32>>());
        rt.block_on(async {
            let mut items = futures::stream::iter(0..50u32).map(Ok);
            tx.send_all(&mut items).await.unwrap();
            SinkExt::close(&mut tx).await.unwrap(); // detaches: the receiver's stream ends
            assert!(tx.is_closed());
            match SinkExt::send(&mut tx, 99).await {
                Err(MkSendError::Closed(99)) => {}
                other => panic!("expected Closed, got {other:?}"),
            }
        });
        assert_eq!(rt.block_on(consumer).unwrap(), (0..50).collect::<Vec<_>>());
        assert_eq!(tx.budget().used(), 0);
    });
}

#[test]
fn the_sink_returns_refused_messages_under_fail() {
    with_timeout(DEADLINE, || {
        let rt = runtime(1);
        let (mut tx, mut rx) = MkAsyncChannel::bounded(1, MkBackpressure::Fail);
        rt.block_on(async {
            SinkExt::send(&mut tx, 1u8).await.unwrap();
            match SinkExt::send(&mut tx, 2).await {
                Err(MkSendError::Refused(2, MkAllocError::CapacityReached { .. })) => {}
                other => panic!("expected Refused, got {other:?}"),
            }
            assert_eq!(rx.recv().await, Some(1));
            SinkExt::send(&mut tx, 3).await.unwrap();
            assert_eq!(rx.recv().await, Some(3));
        });
    });
}

#[test]
fn a_waiting_sink_message_is_finished_by_flush() {
    with_timeout(DEADLINE, || {
        let rt = runtime(2);
        let (mut tx, mut rx) = MkAsyncChannel::bounded(1, MkBackpressure::Wait);
        tx.try_send(1u8).unwrap();
        let budget = tx.budget().clone();
        let sender = rt.spawn(async move {
            // `feed` queues or holds the message; `flush` waits until it is in the channel.
            tx.feed(2).await.unwrap();
            tx.flush().await.unwrap();
            tx
        });
        wait_until("the sink's message waits for room", || {
            budget.waiting() == 1
        });
        assert_eq!(rt.block_on(rx.recv()), Some(1));
        let tx = rt.block_on(sender).unwrap();
        assert_eq!(rt.block_on(rx.recv()), Some(2));
        drop(tx);
        assert_eq!(rt.block_on(rx.recv()), None);
        assert_eq!(budget.used(), 0);
    });
}

#[test]
fn error_messages_say_what_to_change() {
    let closed = MkSendError::Closed(1u8).to_string();
    assert!(
        closed.contains("receiver was dropped or closed"),
        "{closed}"
    );
    let exceeds = MkSendError::Refused(
        1u8,
        MkAllocError::ExceedsLimit {
            requested: 10,
            limit: 4,
        },
    )
    .to_string();
    assert!(exceeds.contains("capacity of at least 10"), "{exceeds}");
    let empty = MkTryRecvError::Empty.to_string();
    assert!(empty.contains("empty"), "{empty}");
    assert_eq!(
        format!("{:?}", MkTrySendError::Closed(String::new())),
        "Closed(..)"
    );
    let full: MkSendError<u8> = MkTrySendError::Full(
        3,
        MkAllocError::CapacityReached {
            requested: 1,
            limit: 1,
            used: 1,
        },
    )
    .into();
    assert!(matches!(full, MkSendError::Refused(3, _)));
}

#[test]
fn dropping_the_receiver_mid_stream_loses_no_byte_and_no_message() {
    with_timeout(DEADLINE, || {
        const PRODUCERS: usize = 4;
        const EACH: usize = 1_000;
        let rt = runtime(2);
        let drops = Counter::new();
        let made = Counter::new();
        let (tx, mut rx) = MkAsyncChannel::bounded_bytes(8 * KIB, MkBackpressure::Wait);
        let budget = tx.budget().clone();
        let producers: Vec<_> = (0..PRODUCERS)
            .map(|p| {
                let tx = tx.clone();
                let drops = drops.clone();
                let made = made.clone();
                rt.spawn(async move {
                    let mut sent = 0;
                    for i in 0..EACH {
                        made.inc();
                        match tx.send(msg(p * EACH + i, 1 + i % KIB, &drops)).await {
                            Ok(()) => sent += 1,
                            Err(MkSendError::Closed(_)) => break,
                            Err(e) => panic!("unexpected {e}"),
                        }
                    }
                    sent
                })
            })
            .collect();
        drop(tx);
        let received = rt.block_on(async {
            for _ in 0..500 {
                rx.recv().await.expect("producers are still sending");
            }
            drop(rx);
            500
        });
        let sent: usize = producers.into_iter().map(|p| rt.block_on(p).unwrap()).sum();
        assert!(sent >= received);
        // Every message made was dropped exactly once: received, queued when the receiver
        // went, or returned in a `Closed` error.
        assert_eq!(drops.get(), made.get());
        assert!(
            made.get() < PRODUCERS * EACH,
            "the producers were stopped early"
        );
        assert_eq!((budget.used(), budget.waiting()), (0, 0));
        assert!(budget.peak() <= 8 * KIB);
    });
}

/// Send futures are `Send` whenever the message is, even for `!Sync` messages such as
/// `MkArena`, so they can be awaited in spawned tasks.
#[test]
fn send_and_recv_futures_are_send_for_send_messages() {
    fn is_send<T: Send>(_: &T) {}
    let (tx, mut rx) = MkAsyncChannel::<memkit_async::MkArena>::bounded(1, MkBackpressure::Wait);
    let arena = memkit_async::MkArena::new(&memkit_async::MkBudget::new(1 << 20));
    let send = tx.send(arena);
    is_send(&send);
    drop(send);
    is_send(&rx.recv());
    is_send(&tx);
}
