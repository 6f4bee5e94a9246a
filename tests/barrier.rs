//! `MkAsyncBarrier`: one leader per generation, reuse, `n == 0`, and withdrawn arrivals.

mod common;

use common::{poll_once, runtime, with_timeout, DEADLINE};
use memkit_async::MkAsyncBarrier;
use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
use std::sync::Arc;
use std::task::Poll;

#[test]
fn nobody_passes_before_n_arrive_and_the_last_is_the_leader() {
    let barrier = MkAsyncBarrier::new(3);
    let mut a = Box::pin(barrier.wait());
    let mut b = Box::pin(barrier.wait());
    assert!(poll_once(&mut a).is_pending());
    assert!(poll_once(&mut b).is_pending());
    assert!(
        poll_once(&mut a).is_pending(),
        "a repoll does not count twice"
    );
    assert_eq!(barrier.waiting(), 2);
    let mut c = Box::pin(barrier.wait());
    let Poll::Ready(c) = poll_once(&mut c) else {
        panic!("the third arrival releases the barrier")
    };
    assert!(c.is_leader());
    let (Poll::Ready(a), Poll::Ready(b)) = (poll_once(&mut a), poll_once(&mut b)) else {
        panic!("the earlier arrivals are released")
    };
    assert!(!a.is_leader() && !b.is_leader());
    assert_eq!((barrier.waiting(), barrier.generation()), (0, 1));
}

#[test]
fn reusable_across_generations_with_exactly_one_leader_each() {
    with_timeout(DEADLINE, || {
        let rt = runtime(2);
        let barrier = Arc::new(MkAsyncBarrier::new(4));
        let leaders = Arc::new(AtomicUsize::new(0));
        let phase = Arc::new(AtomicUsize::new(0));
        let tasks: Vec<_> = (0..4)
            .map(|_| {
                let (barrier, leaders, phase) = (barrier.clone(), leaders.clone(), phase.clone());
                rt.spawn(async move {
                    for round in 0..100 {
                        // Everyone of round r arrives before anyone passes to round r + 1.
                        phase.fetch_add(1, SeqCst);
                        let r = barrier.wait().await;
                        assert!(phase.load(SeqCst) >= 4 * (round + 1));
                        if r.is_leader() {
                            leaders.fetch_add(1, SeqCst);
                        }
                    }
                })
            })
            .collect();
        for t in tasks {
            rt.block_on(t).unwrap();
        }
        assert_eq!(leaders.load(SeqCst), 100);
        assert_eq!((barrier.generation(), barrier.waiting()), (100, 0));
    });
}

#[test]
fn zero_parties_behaves_as_one() {
    let barrier = MkAsyncBarrier::new(0);
    assert_eq!(barrier.parties(), 1);
    let rt = runtime(1);
    for _ in 0..3 {
        assert!(rt.block_on(barrier.wait()).is_leader());
    }
    assert_eq!(barrier.generation(), 3);
}

#[test]
fn a_dropped_wait_withdraws_its_arrival() {
    let barrier = MkAsyncBarrier::new(2);
    let mut gone = Box::pin(barrier.wait());
    assert!(poll_once(&mut gone).is_pending());
    drop(gone);
    assert_eq!(barrier.waiting(), 0);
    let mut a = Box::pin(barrier.wait());
    assert!(
        poll_once(&mut a).is_pending(),
        "one live waiter is not enough"
    );
    let mut b = Box::pin(barrier.wait());
    assert!(matches!(poll_once(&mut b), Poll::Ready(r) if r.is_leader()));
    assert!(matches!(poll_once(&mut a), Poll::Ready(r) if !r.is_leader()));
    // Dropping a future whose generation completed changes nothing.
    let mut c = Box::pin(barrier.wait());
    assert!(poll_once(&mut c).is_pending());
    let mut d = Box::pin(barrier.wait());
    assert!(poll_once(&mut d).is_ready());
    drop(c);
    assert_eq!((barrier.waiting(), barrier.generation()), (0, 2));
}
