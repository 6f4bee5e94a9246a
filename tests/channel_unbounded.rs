//! Unbounded channels: sends never wait, and the queued messages or bytes stay visible on a
//! budget (the channel's own, or one it is charged into, which may refuse).

mod common;

use common::*;
use memkit_async::{
    MkAllocError, MkAsyncChannel, MkBackpressure, MkBudget, MkSendError, MkTryRecvError,
    MkTrySendError,
};
use std::pin::pin;
use std::sync::Arc;
use std::task::Poll;

#[test]
fn unbounded_never_refuses_and_counts_its_messages() {
    let (tx, mut rx) = MkAsyncChannel::unbounded();
    let n = if cfg!(miri) { 100 } else { 10_000 };
    for i in 0..n {
        tx.try_send(i).unwrap();
    }
    // `send` completes in its first poll, with no runtime.
    assert!(matches!(
        poll_once(&mut pin!(tx.send(n))),
        Poll::Ready(Ok(()))
    ));
    assert_eq!(rx.len(), n + 1);
    assert_eq!(rx.budget().used(), n + 1);
    assert_eq!(rx.capacity(), usize::MAX);
    for i in 0..=n {
        assert_eq!(rx.try_recv(), Ok(i));
    }
    assert_eq!((rx.budget().used(), rx.budget().peak()), (0, n + 1));
    drop(tx);
    assert_eq!(rx.try_recv(), Err(MkTryRecvError::Closed));
}

#[test]
fn unbounded_bytes_counts_the_queued_bytes_and_drops_them_with_the_receiver() {
    let drops = Counter::new();
    let (tx, mut rx) = MkAsyncChannel::unbounded_bytes();
    for id in 0..10 {
        tx.try_send(msg(id, 1000 * (id + 1), &drops)).unwrap();
    }
    assert_eq!(tx.budget().used(), 55_000);
    assert_eq!(rx.try_recv().unwrap().id, 0);
    assert_eq!(tx.budget().used(), 54_000);
    assert_eq!(drops.get(), 1);
    drop(rx);
    assert_eq!(drops.get(), 10);
    assert_eq!(tx.budget().used(), 0);
    let err = tx.try_send(msg(10, 1, &drops)).unwrap_err();
    assert!(err.is_closed());
}

#[test]
fn unbounded_bytes_in_a_budget_shows_there_and_is_refused_at_once_when_it_does_not_fit() {
    let drops = Counter::new();
    // A `Wait` parent: the channel still never waits.
    let service = MkBudget::new(1000);
    let (tx, mut rx) = MkAsyncChannel::unbounded_bytes_in(&service);
    tx.try_send(msg(0, 600, &drops)).unwrap();
    assert_eq!((service.used(), rx.budget().used()), (600, 600));
    let parked_sends = service.waiting();
    let res = poll_once(&mut pin!(tx.send(msg(1, 500, &drops))));
    let Poll::Ready(Err(MkSendError::Refused(back, err))) = res else {
        panic!("refused at once, not waiting")
    };
    assert_eq!(
        err,
        MkAllocError::CapacityReached {
            requested: 500,
            limit: 1000,
            used: 600
        }
    );
    assert_eq!(back.id, 1);
    assert_eq!(
        service.waiting(),
        parked_sends,
        "nothing queued on the parent"
    );
    drop(back);
    let err = tx.try_send(msg(2, 2000, &drops)).unwrap_err();
    assert!(matches!(
        err,
        MkTrySendError::Full(
            _,
            MkAllocError::ExceedsLimit {
                requested: 2000,
                limit: 1000
            }
        )
    ));
    drop(err);
    tx.try_send(msg(3, 400, &drops)).unwrap();
    assert_eq!(service.used(), 1000);
    assert_eq!(rx.try_recv().unwrap().id, 0);
    assert_eq!(rx.try_recv().unwrap().id, 3);
    assert_eq!(service.used(), 0);
    assert_eq!(drops.get(), 4);
}

#[test]
fn unbounded_bytes_in_an_evict_budget_evicts_the_budgets_consumers_first() {
    let drops = Counter::new();
    let service = MkBudget::new(1000).with_policy(MkBackpressure::Evict);
    let cache = Arc::new(FifoCache::default());
    let evictable: Arc<dyn memkit_async::MkEvictable> = cache.clone();
    service.register_evictable(&evictable);
    cache.insert(1, service.try_acquire(300).unwrap());
    cache.insert(2, service.try_acquire(300).unwrap());
    let (tx, mut rx) = MkAsyncChannel::unbounded_bytes_in(&service);
    tx.try_send(msg(0, 600, &drops)).unwrap();
    assert_eq!(
        cache.evicted(),
        [1],
        "600 bytes wanted, 400 free: the oldest entry goes"
    );
    assert_eq!(cache.keys(), [2]);
    assert_eq!(service.used(), 900);
    assert_eq!(rx.try_recv().unwrap().id, 0);
    assert_eq!(service.used(), 300);
    assert_eq!(drops.get(), 1);
}

#[test]
fn a_receiver_waiting_on_an_unbounded_channel_is_woken_by_each_send() {
    with_timeout(DEADLINE, || {
        let rt = runtime(2);
        let (tx, mut rx) = MkAsyncChannel::unbounded();
        let consumer = rt.spawn(async move {
            let mut got = Vec::new();
            while let Some(v) = rx.recv().await {
                got.push(v);
            }
            got
        });
        for i in 0..100u32 {
            tx.try_send(i).unwrap();
        }
        drop(tx);
        assert_eq!(rt.block_on(consumer).unwrap(), (0..100).collect::<Vec<_>>());
    });
}
