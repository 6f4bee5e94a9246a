//! Channel operations beyond send and recv: `recv_many`, `send_timeout`, weak senders, and the
//! receiver letting go of its waker when it is dropped.

mod common;

use common::*;
use memkit_async::{MkAllocError, MkAsyncChannel, MkBackpressure, MkSendError, MkTryRecvError};
use std::future::Future;
use std::pin::pin;
use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
use std::sync::Arc;
use std::task::{Context, Poll, Wake, Waker};
use std::time::Duration;

/// A waker that counts its wake-ups and the drop of its last clone.
struct Tally {
    wakes: AtomicUsize,
    drops: Counter,
}

impl Wake for Tally {
    fn wake(self: Arc<Self>) {
        self.wakes.fetch_add(1, SeqCst);
    }
}

impl Drop for Tally {
    fn drop(&mut self) {
        self.drops.inc();
    }
}

fn tally() -> (Waker, Arc<Tally>, Counter) {
    let drops = Counter::new();
    let tally = Arc::new(Tally {
        wakes: AtomicUsize::new(0),
        drops: drops.clone(),
    });
    (Waker::from(tally.clone()), tally, drops)
}

fn poll_with<F: Future>(future: std::pin::Pin<&mut F>, waker: &Waker) -> Poll<F::Output> {
    future.poll(&mut Context::from_waker(waker))
}

#[test]
fn dropping_a_parked_receiver_releases_its_waker_while_senders_remain() {
    let (tx, mut rx) = MkAsyncChannel::<u32>::bounded(4, MkBackpressure::Wait);
    let (waker, tally, drops) = tally();
    {
        let recv = pin!(rx.recv());
        assert!(poll_with(recv, &waker).is_pending());
    }
    drop(waker);
    let wakes = Arc::downgrade(&tally);
    drop(tally);
    assert_eq!(
        drops.get(),
        0,
        "the channel holds the parked receiver's waker"
    );
    drop(rx);
    assert_eq!(drops.get(), 1, "dropping the receiver lets go of its waker");
    assert!(wakes.upgrade().is_none());
    // The sender lives on; its sends fail, and the last one leaving wakes nobody.
    assert_eq!(tx.try_send(1).unwrap_err().into_inner(), 1);
    drop(tx);
    assert_eq!(drops.get(), 1);
}

#[test]
fn dropping_a_receiver_parked_in_recv_many_releases_its_waker_and_wakes_nobody() {
    let (tx, mut rx) = MkAsyncChannel::<u32>::unbounded();
    let (waker, tally, drops) = tally();
    let mut buf = Vec::new();
    {
        let recv = pin!(rx.recv_many(&mut buf, 8));
        assert!(poll_with(recv, &waker).is_pending());
    }
    drop(waker);
    drop(rx);
    assert_eq!(drops.get(), 0, "the test still holds the waker's state");
    assert_eq!(
        Arc::strong_count(&tally),
        1,
        "no clone of the waker is left"
    );
    drop(tx);
    assert_eq!(tally.wakes.load(SeqCst), 0);
    drop(tally);
    assert_eq!(drops.get(), 1);
}

#[test]
fn recv_many_takes_up_to_the_limit_in_order_and_releases_their_bytes() {
    let drops = Counter::new();
    let (tx, mut rx) = MkAsyncChannel::bounded_bytes(1000, MkBackpressure::Fail);
    for id in 0..5 {
        tx.try_send(msg(id, 100, &drops)).unwrap();
    }
    assert_eq!(rx.budget().used(), 500);
    let mut buf = Vec::new();
    assert_eq!(
        poll_once(&mut pin!(rx.recv_many(&mut buf, 3))),
        Poll::Ready(3)
    );
    assert_eq!(ids(&buf), [0, 1, 2]);
    assert_eq!(rx.budget().used(), 200);
    assert_eq!(
        poll_once(&mut pin!(rx.recv_many(&mut buf, 10))),
        Poll::Ready(2)
    );
    assert_eq!(
        ids(&buf),
        [0, 1, 2, 3, 4],
        "appended after what the buffer held"
    );
    assert_eq!(rx.budget().used(), 0);
    assert_eq!(
        poll_once(&mut pin!(rx.recv_many(&mut buf, 0))),
        Poll::Ready(0)
    );
    assert_eq!(drops.get(), 0);
    drop(buf);
    assert_eq!(drops.get(), 5);

    // Empty with a sender left: waits, and a send wakes it once.
    let (waker, tally, _drops) = tally();
    let mut buf = Vec::new();
    {
        let mut recv = pin!(rx.recv_many(&mut buf, 4));
        assert!(poll_with(recv.as_mut(), &waker).is_pending());
        tx.try_send(msg(7, 1, &drops)).unwrap();
        tx.try_send(msg(8, 1, &drops)).unwrap();
        assert_eq!(tally.wakes.load(SeqCst), 1);
        assert_eq!(poll_with(recv, &waker), Poll::Ready(2));
    }
    assert_eq!(ids(&buf), [7, 8]);
    // Every sender gone and nothing queued: 0, as `recv` gives `None`.
    drop(tx);
    assert_eq!(
        poll_once(&mut pin!(rx.recv_many(&mut buf, 4))),
        Poll::Ready(0)
    );
    assert_eq!(buf.len(), 2);
}

#[test]
fn recv_many_receives_what_was_queued_before_close() {
    let (tx, mut rx) = MkAsyncChannel::bounded(8, MkBackpressure::Fail);
    for i in 0..3u8 {
        tx.try_send(i).unwrap();
    }
    rx.close();
    let mut buf = Vec::new();
    assert_eq!(
        poll_once(&mut pin!(rx.recv_many(&mut buf, 8))),
        Poll::Ready(3)
    );
    assert_eq!(buf, [0, 1, 2]);
    assert_eq!(
        poll_once(&mut pin!(rx.recv_many(&mut buf, 8))),
        Poll::Ready(0)
    );
    assert_eq!(rx.try_recv(), Err(MkTryRecvError::Closed));
}

#[test]
fn send_timeout_gives_the_message_back_when_no_room_comes_in_time() {
    with_timeout(DEADLINE, || {
        let rt = runtime(1);
        let drops = Counter::new();
        let (tx, rx) = MkAsyncChannel::bounded_bytes(100, MkBackpressure::Wait);
        tx.try_send(msg(0, 80, &drops)).unwrap();
        let err = rt
            .block_on(tx.send_timeout(msg(1, 50, &drops), Duration::from_millis(20)))
            .unwrap_err();
        match err.alloc_error() {
            Some(&MkAllocError::TimedOut {
                requested,
                limit,
                used,
                waited,
            }) => {
                assert_eq!((requested, limit, used), (50, 100, 80));
                assert!(waited >= Duration::from_millis(20), "{waited:?}");
            }
            other => panic!("expected TimedOut, got {other:?}"),
        }
        assert_eq!(err.into_inner().id, 1);
        assert_eq!(
            drops.get(),
            1,
            "only the returned message, dropped by the test"
        );
        assert_eq!(rx.budget().waiting(), 0, "the request was withdrawn");
        assert_eq!(rx.budget().used(), 80);
    });
}

#[test]
fn send_timeout_sends_when_room_comes_in_time_or_is_there() {
    with_timeout(DEADLINE, || {
        let rt = runtime(2);
        let (tx, mut rx) = MkAsyncChannel::bounded(1, MkBackpressure::Wait);
        rt.block_on(tx.send_timeout(1u32, Duration::from_millis(1)))
            .unwrap();
        let sender = rt.spawn(async move {
            tx.send_timeout(2, DEADLINE).await.unwrap();
        });
        wait_until("the sender waits for room", || rx.budget().waiting() == 1);
        assert_eq!(rx.try_recv(), Ok(1));
        rt.block_on(sender).unwrap();
        assert_eq!(rx.try_recv(), Ok(2));
        assert_eq!(rx.try_recv(), Err(MkTryRecvError::Closed));
    });
}

#[test]
fn send_timeout_on_a_closed_or_refusing_channel_answers_at_once() {
    let (tx, mut rx) = MkAsyncChannel::bounded(1, MkBackpressure::Fail);
    tx.try_send(1u8).unwrap();
    // No runtime needed: nothing waits.
    let res = poll_once(&mut pin!(tx.send_timeout(2, Duration::from_secs(60))));
    assert!(matches!(
        res,
        Poll::Ready(Err(MkSendError::Refused(
            2,
            MkAllocError::CapacityReached { .. }
        )))
    ));
    rx.close();
    let res = poll_once(&mut pin!(tx.send_timeout(3, Duration::from_secs(60))));
    assert!(matches!(res, Poll::Ready(Err(MkSendError::Closed(3)))));
}

#[test]
fn a_weak_sender_does_not_keep_the_stream_open_and_upgrades_while_senders_remain() {
    let (tx, mut rx) = MkAsyncChannel::bounded(4, MkBackpressure::Fail);
    let weak = tx.downgrade();
    assert_eq!(weak.strong_count(), 1);
    let tx2 = weak.upgrade().expect("a sender is alive");
    assert_eq!(weak.strong_count(), 2);
    assert!(tx2.same_channel(&tx));
    tx2.try_send(1u32).unwrap();
    drop(tx);
    tx2.try_send(2).unwrap();
    let weak2 = weak.clone();
    drop(tx2);
    assert_eq!(weak.strong_count(), 0);
    assert!(weak.upgrade().is_none());
    assert!(weak2.upgrade().is_none());
    assert_eq!(rx.try_recv(), Ok(1));
    assert_eq!(rx.try_recv(), Ok(2));
    assert_eq!(
        rx.try_recv(),
        Err(MkTryRecvError::Closed),
        "weak senders do not count"
    );
    assert_eq!(format!("{weak:?}"), "MkWeakSender { strong_count: 0, .. }");
}

#[test]
fn a_parked_receiver_is_woken_when_the_last_strong_sender_goes_despite_weak_ones() {
    let (tx, mut rx) = MkAsyncChannel::<u32>::unbounded();
    let weak = tx.downgrade();
    let (waker, tally, _drops) = tally();
    let mut recv = pin!(rx.recv());
    assert!(poll_with(recv.as_mut(), &waker).is_pending());
    drop(tx);
    assert_eq!(tally.wakes.load(SeqCst), 1);
    assert_eq!(poll_with(recv, &waker), Poll::Ready(None));
    assert!(weak.upgrade().is_none());
}

/// A waker that holds the channel's last sender: its drop re-enters the channel.
struct HoldsSender(
    std::sync::Mutex<Option<memkit_async::MkAsyncSender<u32>>>,
    Counter,
);

impl Wake for HoldsSender {
    fn wake(self: Arc<Self>) {}
}

impl Drop for HoldsSender {
    fn drop(&mut self) {
        drop(self.0.lock().unwrap().take());
        self.1.inc();
    }
}

#[test]
fn a_receiver_waker_whose_drop_drops_the_last_sender_is_released_without_a_deadlock() {
    with_timeout(DEADLINE, || {
        let (tx, mut rx) = MkAsyncChannel::<u32>::bounded(4, MkBackpressure::Wait);
        let drops = Counter::new();
        let waker = Waker::from(Arc::new(HoldsSender(
            std::sync::Mutex::new(Some(tx)),
            drops.clone(),
        )));
        assert!(poll_with(pin!(rx.recv()), &waker).is_pending());
        drop(waker);
        assert_eq!(drops.get(), 0);
        drop(rx);
        assert_eq!(drops.get(), 1);
    });
}
