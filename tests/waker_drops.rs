//! A waker's drop is user code: when a request is polled with a new waker, or leaves a queue,
//! the waker it no longer needs is dropped with no internal lock held. Each test hands the
//! last reference to a waker that, as it drops, gives back what it holds to the very object
//! that is dropping it (which takes that object's lock again).

mod common;

use common::*;
use memkit_async::{
    MkAsyncChannel, MkAsyncPool, MkAsyncReceiver, MkAsyncSemaphore, MkBackpressure, MkBudget,
    MkBudgetGuard, MkOwnedSemaphorePermit, MkPoolGuard,
};
use std::future::Future;
use std::pin::pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Wake, Waker};

/// A waker that owns something, given back when the waker's last reference drops.
struct Holding<T>(Mutex<Option<T>>);

impl<T: Send> Wake for Holding<T> {
    fn wake(self: Arc<Self>) {}
}

fn holding<T: Send + 'static>(value: T) -> (Arc<Holding<T>>, Waker) {
    let holder = Arc::new(Holding(Mutex::new(Some(value))));
    let waker = Waker::from(holder.clone());
    (holder, waker)
}

#[test]
fn budget_request_drops_a_replaced_waker_outside_its_lock() {
    with_timeout(DEADLINE, || {
        let budget = MkBudget::new(10);
        // The first waker holds every byte: dropping it releases them, serving this request.
        let (holder, first) = holding(budget.try_acquire(10).unwrap());
        let mut request = pin!(budget.acquire(4));
        assert!(request
            .as_mut()
            .poll(&mut Context::from_waker(&first))
            .is_pending());
        drop((holder, first));
        let second = Waker::noop();
        let mut cx = Context::from_waker(second);
        // Replacing the waker drops its last reference.
        assert!(request.as_mut().poll(&mut cx).is_pending());
        let Poll::Ready(Ok(guard)) = request.as_mut().poll(&mut cx) else {
            panic!("the released bytes were granted to the request");
        };
        assert_eq!((budget.used(), budget.waiting()), (4, 0));
        drop(guard);
    });
}

#[test]
fn semaphore_request_drops_a_replaced_waker_outside_its_lock() {
    with_timeout(DEADLINE, || {
        let sem = Arc::new(MkAsyncSemaphore::new(1));
        let permit: MkOwnedSemaphorePermit = sem.clone().try_acquire_many_owned(1).unwrap();
        let (holder, first) = holding(permit);
        let mut request = pin!(sem.acquire());
        assert!(request
            .as_mut()
            .poll(&mut Context::from_waker(&first))
            .is_pending());
        drop((holder, first));
        let mut cx = Context::from_waker(Waker::noop());
        assert!(request.as_mut().poll(&mut cx).is_pending());
        let Poll::Ready(Ok(permit)) = request.as_mut().poll(&mut cx) else {
            panic!("the released permit was granted to the request");
        };
        assert_eq!((sem.available_permits(), sem.waiting()), (0, 0));
        drop(permit);
        assert_eq!(sem.available_permits(), 1);
    });
}

#[test]
fn channel_receiver_drops_a_replaced_waker_outside_its_lock() {
    with_timeout(DEADLINE, || {
        let (tx, mut rx) = MkAsyncChannel::<u8>::bounded(4, MkBackpressure::Fail);
        // The first waker holds the only sender: dropping it ends the stream.
        let (holder, first) = holding(tx);
        assert!(rx.poll_recv(&mut Context::from_waker(&first)).is_pending());
        drop((holder, first));
        let mut cx = Context::from_waker(Waker::noop());
        let _ = rx.poll_recv(&mut cx);
        assert_eq!(rx.poll_recv(&mut cx), Poll::Ready(None));
    });
}

#[test]
fn parked_channel_sender_drops_a_replaced_waker_outside_its_lock() {
    with_timeout(DEADLINE, || {
        let (tx, rx) = MkAsyncChannel::<u8>::bounded(1, MkBackpressure::Wait);
        tx.try_send(1).unwrap();
        // The first waker holds the receiver: dropping it closes the channel.
        let (holder, first) = holding::<MkAsyncReceiver<u8>>(rx);
        let mut send = pin!(tx.send(2));
        assert!(send
            .as_mut()
            .poll(&mut Context::from_waker(&first))
            .is_pending());
        // A receive frees the room: the sender's budget request is granted, and its waker
        // there is woken and dropped; the close signal keeps the last reference.
        let received = holder.0.lock().unwrap().as_mut().unwrap().try_recv();
        assert_eq!(received, Ok(1));
        drop((holder, first));
        let res = send.as_mut().poll(&mut Context::from_waker(Waker::noop()));
        assert!(
            matches!(res, Poll::Ready(Err(memkit_async::MkSendError::Closed(2)))),
            "the receiver dropped with the waker, closing the channel: {res:?}"
        );
    });
}

#[test]
fn pool_request_drops_a_replaced_waker_outside_its_lock() {
    with_timeout(DEADLINE, || {
        let budget = MkBudget::new(200).with_policy(MkBackpressure::Wait);
        let pool = MkAsyncPool::builder(2, || 0u64)
            .budget(budget.clone(), 100)
            .build();
        let other = budget.try_acquire(100).unwrap();
        // The first waker holds the pool's first object: dropping it returns the object,
        // which notifies the requests waiting for bytes.
        let (holder, first) = holding::<MkPoolGuard<u64>>(pool.try_acquire().unwrap());
        let mut request = pin!(pool.acquire());
        assert!(request
            .as_mut()
            .poll(&mut Context::from_waker(&first))
            .is_pending());
        // Bytes for a second object: the budget grants them and lets go of its waker; the
        // pool's return listeners keep the last reference.
        drop::<MkBudgetGuard>(other);
        drop((holder, first));
        let Poll::Ready(Ok(guard)) = request
            .as_mut()
            .poll(&mut Context::from_waker(Waker::noop()))
        else {
            panic!("the request got an object");
        };
        assert_eq!(*guard, 0);
        drop(guard);
        assert!(pool.live() <= 2);
    });
}
