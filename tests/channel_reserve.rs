//! Reserving room in a channel ahead of the message: `reserve`, `try_reserve`,
//! `reserve_many`, `try_reserve_many` and the permits they give, with exact counts on the
//! channel's budget.

mod common;

use common::*;
use memkit_async::{MkAllocError, MkAsyncChannel, MkBackpressure, MkSendError, MkTrySendError};
use std::future::Future;
use std::pin::pin;
use std::task::Poll;

#[test]
fn a_permit_holds_its_room_until_it_sends_or_drops() {
    let (tx, mut rx) = MkAsyncChannel::bounded(2, MkBackpressure::Fail);
    let permit = poll_once(&mut pin!(tx.reserve())).map(Result::unwrap);
    let Poll::Ready(permit) = permit else {
        panic!("room is there: reserve completes at once")
    };
    assert_eq!(permit.reserved(), 1);
    assert_eq!(tx.budget().used(), 1);
    tx.try_send(10u32).unwrap();
    assert_eq!(tx.budget().used(), 2);
    assert!(matches!(
        tx.try_send(11),
        Err(MkTrySendError::Full(
            11,
            MkAllocError::CapacityReached { .. }
        ))
    ));
    assert!(matches!(
        tx.try_reserve(),
        Err(MkTrySendError::Full(
            (),
            MkAllocError::CapacityReached { .. }
        ))
    ));
    permit.send(12).unwrap();
    assert_eq!(tx.budget().used(), 2);
    assert_eq!(
        rx.try_recv(),
        Ok(10),
        "queued in send order, not reservation order"
    );
    assert_eq!(rx.try_recv(), Ok(12));
    assert_eq!(tx.budget().used(), 0);

    let permit = tx.try_reserve().unwrap();
    assert_eq!(tx.budget().used(), 1);
    drop(permit);
    assert_eq!(tx.budget().used(), 0);
    assert!(rx.try_recv().is_err());
}

#[test]
fn reserve_waits_for_room_in_fifo_order_with_senders() {
    with_timeout(DEADLINE, || {
        let rt = runtime(2);
        let (tx, mut rx) = MkAsyncChannel::bounded(1, MkBackpressure::Wait);
        tx.try_send(0u32).unwrap();
        let tx2 = tx.clone();
        let reserver = rt.spawn(async move {
            let permit = tx2.reserve().await.unwrap();
            permit.send(1).unwrap();
        });
        wait_until("the reservation waits", || tx.budget().waiting() == 1);
        // Room is served to the queued reservation first: a later try_send is refused.
        assert!(tx.try_send(99).is_err());
        assert_eq!(rx.try_recv(), Ok(0));
        rt.block_on(reserver).unwrap();
        assert_eq!(rx.try_recv(), Ok(1));
        assert_eq!(tx.budget().used(), 0);
    });
}

#[test]
fn a_waiting_reservation_gets_closed_when_the_receiver_goes() {
    with_timeout(DEADLINE, || {
        let rt = runtime(2);
        let (tx, rx) = MkAsyncChannel::bounded(1, MkBackpressure::Wait);
        tx.try_send(0u32).unwrap();
        let budget = tx.budget().clone();
        let reserver = rt.spawn(async move { tx.reserve().await.map(|_| ()) });
        wait_until("the reservation waits", || budget.waiting() == 1);
        drop(rx);
        assert_eq!(rt.block_on(reserver).unwrap(), Err(MkSendError::Closed(())));
        assert_eq!((budget.used(), budget.waiting()), (0, 0));
    });
}

#[test]
fn a_permit_sent_after_the_receiver_left_returns_the_message() {
    let drops = Counter::new();
    let (tx, rx) = MkAsyncChannel::bounded_bytes(1000, MkBackpressure::Fail);
    let permit = tx.try_reserve().unwrap();
    drop(rx);
    let err = permit.send(msg(5, 10, &drops)).unwrap_err();
    assert!(err.is_closed());
    assert_eq!(err.into_inner().id, 5);
    assert_eq!(drops.get(), 1);
    assert_eq!(tx.budget().used(), 0);
    assert!(matches!(tx.try_reserve(), Err(MkTrySendError::Closed(()))));
    let res = poll_once(&mut pin!(tx.reserve_many(2))).map(|r| r.map(|p| p.len()));
    assert_eq!(res, Poll::Ready(Err(MkSendError::Closed(()))));
}

#[test]
fn on_a_byte_channel_a_permit_counts_the_message_it_sends() {
    let drops = Counter::new();
    let unit = std::mem::size_of::<Msg>();
    let (tx, mut rx) = MkAsyncChannel::bounded_bytes(200, MkBackpressure::Fail);
    // Smaller than reserved: the rest goes back.
    let permit = tx.try_reserve().unwrap();
    assert_eq!((permit.reserved(), tx.budget().used()), (unit, unit));
    permit.send(msg(0, 3, &drops)).unwrap();
    assert_eq!(tx.budget().used(), 3);
    // Larger than reserved: the difference is taken when it is sent.
    let permit = tx.try_reserve().unwrap();
    permit.send(msg(1, 150, &drops)).unwrap();
    assert_eq!(tx.budget().used(), 153);
    // Larger, and the difference does not fit: refused with the message, the room given back.
    let permit = tx.try_reserve().unwrap();
    let err = permit.send(msg(2, 100, &drops)).unwrap_err();
    assert!(matches!(
        err,
        MkTrySendError::Full(_, MkAllocError::CapacityReached { .. })
    ));
    assert_eq!(err.into_inner().id, 2);
    assert_eq!(tx.budget().used(), 153);
    assert_eq!(rx.try_recv().unwrap().id, 0);
    assert_eq!(tx.budget().used(), 150);
    assert_eq!(rx.try_recv().unwrap().id, 1);
    assert_eq!(tx.budget().used(), 0);
    assert_eq!(drops.get(), 3);
}

#[test]
fn reserve_many_takes_all_the_room_at_once() {
    let (tx, mut rx) = MkAsyncChannel::bounded(5, MkBackpressure::Fail);
    let mut permits = tx.try_reserve_many(3).unwrap();
    assert_eq!(permits.len(), 3);
    assert_eq!(tx.budget().used(), 3);
    permits.next().unwrap().send(1u32).unwrap();
    permits.next().unwrap().send(2).unwrap();
    assert_eq!(permits.len(), 1);
    assert_eq!(tx.budget().used(), 3);
    drop(permits);
    assert_eq!(
        tx.budget().used(),
        2,
        "the permit not taken gives its room back"
    );
    assert!(matches!(
        tx.try_reserve_many(4),
        Err(MkTrySendError::Full(
            (),
            MkAllocError::CapacityReached { .. }
        ))
    ));
    assert_eq!(tx.budget().used(), 2, "a refused reservation holds nothing");
    assert!(matches!(
        tx.try_reserve_many(6),
        Err(MkTrySendError::Full(
            (),
            MkAllocError::ExceedsLimit {
                requested: 6,
                limit: 5
            }
        ))
    ));
    let res = poll_once(&mut pin!(tx.reserve_many(6))).map(|r| r.map(|p| p.len()));
    assert!(matches!(
        res,
        Poll::Ready(Err(MkSendError::Refused(
            (),
            MkAllocError::ExceedsLimit { .. }
        )))
    ));
    let none = tx.try_reserve_many(0).unwrap();
    assert_eq!(none.len(), 0);
    assert_eq!(rx.try_recv(), Ok(1));
    assert_eq!(rx.try_recv(), Ok(2));
    assert_eq!(tx.budget().used(), 0);
}

#[test]
fn reserve_many_waits_as_one_request_ahead_of_later_ones() {
    with_timeout(DEADLINE, || {
        let rt = runtime(2);
        let (tx, mut rx) = MkAsyncChannel::bounded(4, MkBackpressure::Wait);
        for i in 0..3u32 {
            tx.try_send(i).unwrap();
        }
        let tx2 = tx.clone();
        let reserver = rt.spawn(async move {
            let permits = tx2.reserve_many(3).await.unwrap();
            assert_eq!(permits.len(), 3);
            for (i, permit) in permits.enumerate() {
                permit.send(10 + i as u32).unwrap();
            }
        });
        wait_until("the reservation waits", || tx.budget().waiting() == 1);
        // One unit is free, but the queued request for three comes first.
        assert!(tx.try_send(99).is_err());
        assert_eq!(rx.try_recv(), Ok(0));
        assert_eq!(
            tx.budget().waiting(),
            1,
            "2 free of the 3 wanted: still waiting"
        );
        assert_eq!(rx.try_recv(), Ok(1));
        rt.block_on(reserver).unwrap();
        let mut got = Vec::new();
        while let Ok(v) = rx.try_recv() {
            got.push(v);
        }
        assert_eq!(got, [2, 10, 11, 12]);
        assert_eq!(tx.budget().used(), 0);
    });
}

#[test]
fn reserve_under_evict_makes_room_by_dropping_the_oldest() {
    let drops = Counter::new();
    let (tx, mut rx) = MkAsyncChannel::bounded(2, MkBackpressure::Evict);
    tx.try_send(msg(0, 1, &drops)).unwrap();
    tx.try_send(msg(1, 1, &drops)).unwrap();
    let permit = tx.try_reserve().unwrap();
    assert_eq!(drops.get(), 1, "the oldest message was evicted");
    permit.send(msg(2, 1, &drops)).unwrap();
    assert_eq!(rx.try_recv().unwrap().id, 1);
    assert_eq!(rx.try_recv().unwrap().id, 2);
    assert_eq!(drops.get(), 3);
}

#[test]
fn dropping_a_waiting_reserve_withdraws_it() {
    with_timeout(DEADLINE, || {
        let rt = runtime(1);
        let (tx, _rx) = MkAsyncChannel::bounded(1, MkBackpressure::Wait);
        tx.try_send(0u8).unwrap();
        rt.block_on(async {
            let mut reserve = pin!(tx.reserve_many(1));
            let polled = std::future::poll_fn(|cx| {
                Poll::Ready(reserve.as_mut().poll(cx).map(|r| r.map(|p| p.len())))
            })
            .await;
            assert!(polled.is_pending());
            assert_eq!(tx.budget().waiting(), 1);
        });
        assert_eq!(tx.budget().waiting(), 0);
        assert_eq!(tx.budget().used(), 1);
    });
}

#[test]
fn permits_are_send_for_send_messages() {
    fn is_send<T: Send>(_: &T) {}
    let (tx, _rx) = MkAsyncChannel::<u32>::bounded(4, MkBackpressure::Wait);
    is_send(&tx.reserve());
    is_send(&tx.reserve_many(2));
    is_send(&tx.try_reserve().unwrap());
    is_send(&tx.try_reserve_many(2).unwrap());
    is_send(&tx.downgrade());
}
