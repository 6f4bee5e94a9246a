//! `MkAsyncSemaphore`: exact permit counts, FIFO order with a large head, cancel safety,
//! close, requests above the total, owned permits, and a contended run.

mod common;

use common::{poll_once, runtime, wait_until, with_timeout, DEADLINE};
use memkit_async::{MkAsyncSemaphore, MkSemaphoreError};
use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
use std::sync::Arc;
use std::task::Poll;

#[test]
fn permits_are_counted_exactly_and_come_back_on_drop() {
    let sem = MkAsyncSemaphore::new(5);
    let rt = runtime(1);
    let (a, b) = rt.block_on(async { (sem.acquire().await, sem.acquire_many(3).await) });
    let (a, b) = (a.unwrap(), b.unwrap());
    assert_eq!((a.num_permits(), b.num_permits()), (1, 3));
    assert_eq!((sem.available_permits(), sem.total_permits()), (1, 5));
    let c = sem.try_acquire().unwrap();
    assert_eq!(
        sem.try_acquire().unwrap_err(),
        MkSemaphoreError::NoPermits {
            requested: 1,
            available: 0
        }
    );
    drop((a, b, c));
    assert_eq!(sem.available_permits(), 5);
    let zero = rt.block_on(sem.acquire_many(0)).unwrap();
    assert_eq!((zero.num_permits(), sem.available_permits()), (0, 5));
}

#[test]
fn a_large_request_at_the_head_is_not_overtaken_by_small_ones() {
    let sem = MkAsyncSemaphore::new(4);
    let held: Vec<_> = (0..4).map(|_| sem.try_acquire().unwrap()).collect();
    let mut big = Box::pin(sem.acquire_many(3));
    let mut small = Box::pin(sem.acquire());
    assert!(poll_once(&mut big).is_pending());
    assert!(poll_once(&mut small).is_pending());
    assert_eq!(sem.waiting(), 2);
    let mut held = held.into_iter();
    for released in 1..=2 {
        drop(held.next());
        // The released permit goes to the head, even though `small` would fit.
        assert!(
            poll_once(&mut small).is_pending(),
            "after {released} released"
        );
        assert!(poll_once(&mut big).is_pending());
        assert_eq!(sem.available_permits(), 0);
        assert!(
            sem.try_acquire().is_err(),
            "try_acquire does not overtake the queue"
        );
    }
    drop(held.next());
    let Poll::Ready(Ok(big_permit)) = poll_once(&mut big) else {
        panic!("the head got its three permits")
    };
    assert_eq!((big_permit.num_permits(), sem.waiting()), (3, 1));
    drop(held.next());
    let Poll::Ready(Ok(small_permit)) = poll_once(&mut small) else {
        panic!("then the small request")
    };
    drop((big_permit, small_permit));
    assert_eq!((sem.available_permits(), sem.waiting()), (4, 0));
}

#[test]
fn a_dropped_request_leaves_the_queue_and_passes_on_its_permits() {
    let sem = MkAsyncSemaphore::new(3);
    let held: Vec<_> = (0..3).map(|_| sem.try_acquire().unwrap()).collect();
    let mut big = Box::pin(sem.acquire_many(3));
    let mut small = Box::pin(sem.acquire());
    assert!(poll_once(&mut big).is_pending());
    assert!(poll_once(&mut small).is_pending());
    let mut held = held.into_iter();
    drop(held.next());
    drop(held.next()); // `big` collected two permits
    drop(big);
    // One of its permits serves `small`; the other is available again.
    let Poll::Ready(Ok(p)) = poll_once(&mut small) else {
        panic!("the next request is served with the dropped one's permits")
    };
    assert_eq!((sem.available_permits(), sem.waiting()), (1, 0));
    drop(p);
    drop(held);
    assert_eq!(sem.available_permits(), 3);

    // Granted but never polled again: the permits still come back.
    let held = sem.try_acquire_many(3).unwrap();
    let mut granted = Box::pin(sem.acquire_many(2));
    assert!(poll_once(&mut granted).is_pending());
    drop(held);
    assert_eq!(sem.available_permits(), 1);
    drop(granted);
    assert_eq!((sem.available_permits(), sem.waiting()), (3, 0));
}

#[test]
fn requests_withdrawn_from_the_middle_and_the_back_keep_the_others_in_order() {
    let sem = MkAsyncSemaphore::new(4);
    let held = sem.try_acquire_many(4).unwrap();
    let mut reqs: Vec<_> = [1, 2, 1, 3, 1]
        .into_iter()
        .map(|n| Some(Box::pin(sem.acquire_many(n))))
        .collect();
    for r in reqs.iter_mut().flatten() {
        assert!(poll_once(r).is_pending());
    }
    assert_eq!(sem.waiting(), 5);
    reqs[1] = None; // the middle
    reqs[4] = None; // the back
    assert_eq!(sem.waiting(), 3);
    // A request made after the withdrawals (in a reused slot) queues behind the others.
    let mut late = Box::pin(sem.acquire());
    assert!(poll_once(&mut late).is_pending());
    assert_eq!(sem.waiting(), 4);
    // 4 permits: 1 for reqs[0], 1 for reqs[2], 2 of 3 for reqs[3], none for `late`.
    drop(held);
    let mut granted = Vec::new();
    let mut permits = Vec::new();
    for (i, r) in reqs.iter_mut().enumerate() {
        if let Some(r) = r {
            if let Poll::Ready(res) = poll_once(r) {
                let permit = res.unwrap();
                granted.push((i, permit.num_permits()));
                permits.push(permit);
            }
        }
    }
    assert_eq!(granted, [(0, 1), (2, 1)]);
    assert!(
        poll_once(&mut late).is_pending(),
        "not ahead of the head collecting permits"
    );
    assert_eq!((sem.available_permits(), sem.waiting()), (0, 2));
    // One more permit completes reqs[3]; the next goes to `late`.
    drop(permits.pop());
    let Some(r3) = reqs[3].as_mut() else {
        unreachable!()
    };
    assert_eq!(
        poll_once(r3).map(|r| r.unwrap().num_permits()),
        Poll::Ready(3)
    );
    // reqs[3]'s permits came back as it was dropped: `late` was granted one of them.
    assert!(matches!(poll_once(&mut late), Poll::Ready(Ok(_))));
    // Every permit is back but reqs[0]'s, still held.
    assert_eq!((sem.available_permits(), sem.waiting()), (3, 0));
    drop(permits);
}

#[test]
fn close_fails_waiters_and_later_requests_but_held_permits_stay_valid() {
    with_timeout(DEADLINE, || {
        let rt = runtime(2);
        let sem = Arc::new(MkAsyncSemaphore::new(2));
        let held = sem.try_acquire_many(2).unwrap();
        let waiters: Vec<_> = (0..3)
            .map(|i| {
                let s = sem.clone();
                let t = rt.spawn(async move { s.acquire_many(1).await.map(|p| p.num_permits()) });
                wait_until("queued", || sem.waiting() == i + 1);
                t
            })
            .collect();
        sem.close();
        for t in waiters {
            assert_eq!(rt.block_on(t).unwrap(), Err(MkSemaphoreError::Closed));
        }
        assert!(sem.is_closed());
        assert_eq!(
            rt.block_on(sem.acquire()).unwrap_err(),
            MkSemaphoreError::Closed
        );
        assert_eq!(sem.try_acquire().unwrap_err(), MkSemaphoreError::Closed);
        assert_eq!(held.num_permits(), 2);
        drop(held);
        assert_eq!((sem.available_permits(), sem.waiting()), (2, 0));
    });
}

#[test]
fn a_request_above_the_total_fails_at_once_instead_of_hanging() {
    with_timeout(DEADLINE, || {
        let rt = runtime(1);
        let sem = MkAsyncSemaphore::new(4);
        let err = rt.block_on(sem.acquire_many(5)).unwrap_err();
        assert_eq!(
            err,
            MkSemaphoreError::ExceedsTotal {
                requested: 5,
                total: 4
            }
        );
        assert!(err.to_string().contains("add_permits"), "{err}");
        assert!(sem.try_acquire_many(5).is_err());
        assert_eq!(sem.waiting(), 0);
        sem.add_permits(1);
        let p = rt.block_on(sem.acquire_many(5)).unwrap();
        assert_eq!((p.num_permits(), sem.total_permits()), (5, 5));
        drop(p);
        // Zero permits in total: any request for one fails too.
        let empty = MkAsyncSemaphore::new(0);
        assert!(matches!(
            rt.block_on(empty.acquire()),
            Err(MkSemaphoreError::ExceedsTotal {
                requested: 1,
                total: 0
            })
        ));
    });
}

#[test]
fn forgetting_permits_fails_waiters_that_can_no_longer_fit() {
    let sem = MkAsyncSemaphore::new(4);
    let one = sem.try_acquire().unwrap();
    let three = sem.try_acquire_many(3).unwrap();
    let mut waiter = Box::pin(sem.acquire_many(4));
    assert!(poll_once(&mut waiter).is_pending());
    drop(three); // collected by the waiter
    one.forget();
    assert_eq!(sem.total_permits(), 3);
    let Poll::Ready(Err(err)) = poll_once(&mut waiter) else {
        panic!("the waiter can no longer be served")
    };
    assert_eq!(
        err,
        MkSemaphoreError::ExceedsTotal {
            requested: 4,
            total: 3
        }
    );
    assert_eq!((sem.available_permits(), sem.waiting()), (3, 0));
}

#[test]
fn add_permits_serves_waiters_in_order() {
    let sem = MkAsyncSemaphore::new(1);
    let held = sem.try_acquire().unwrap();
    let mut a = Box::pin(sem.acquire());
    let mut b = Box::pin(sem.acquire());
    assert!(poll_once(&mut a).is_pending());
    assert!(poll_once(&mut b).is_pending());
    sem.add_permits(1);
    let Poll::Ready(Ok(pa)) = poll_once(&mut a) else {
        panic!("the added permit serves the head")
    };
    assert!(poll_once(&mut b).is_pending());
    drop(held);
    let Poll::Ready(Ok(pb)) = poll_once(&mut b) else {
        panic!("then the next")
    };
    assert_eq!((sem.total_permits(), sem.available_permits()), (2, 0));
    drop((pa, pb));
    assert_eq!(sem.available_permits(), 2);
}

#[test]
fn owned_permits_move_into_tasks_and_threads() {
    with_timeout(DEADLINE, || {
        let rt = runtime(2);
        let sem = Arc::new(MkAsyncSemaphore::new(1));
        let permit = rt.block_on(sem.clone().acquire_owned()).unwrap();
        let s = sem.clone();
        let waiter =
            rt.spawn(async move { s.acquire_many_owned(1).await.map(|p| p.num_permits()) });
        wait_until("queued", || sem.waiting() == 1);
        std::thread::spawn(move || drop(permit)).join().unwrap();
        assert_eq!(rt.block_on(waiter).unwrap(), Ok(1));
        let p = sem.clone().try_acquire_many_owned(1).unwrap();
        assert!(Arc::ptr_eq(p.semaphore(), &sem));
        drop(p);
        assert_eq!(sem.available_permits(), 1);
    });
}

#[test]
fn many_tasks_on_all_workers_never_hold_more_than_the_permits() {
    with_timeout(DEADLINE * 3, || {
        let rt = runtime(2);
        let sem = Arc::new(MkAsyncSemaphore::new(3));
        let now = Arc::new(AtomicUsize::new(0));
        let peak = Arc::new(AtomicUsize::new(0));
        // Fewer under Miri (12 800 acquisitions take many minutes there); still far more tasks
        // than permits.
        let (n_tasks, rounds) = if cfg!(miri) { (8, 25) } else { (64, 200) };
        let tasks: Vec<_> = (0..n_tasks)
            .map(|i| {
                let (sem, now, peak) = (sem.clone(), now.clone(), peak.clone());
                rt.spawn(async move {
                    for j in 0..rounds {
                        let n = 1 + (i + j) % 2;
                        let p = sem.acquire_many(n).await.unwrap();
                        let held = now.fetch_add(n, SeqCst) + n;
                        peak.fetch_max(held, SeqCst);
                        if j % 3 == 0 {
                            memkit_async::task::yield_now().await;
                        }
                        now.fetch_sub(n, SeqCst);
                        drop(p);
                    }
                })
            })
            .collect();
        for t in tasks {
            rt.block_on(t).unwrap();
        }
        assert!(peak.load(SeqCst) <= 3, "peak {}", peak.load(SeqCst));
        assert_eq!((sem.available_permits(), sem.waiting()), (3, 0));
    });
}

#[test]
fn requests_dropped_mid_wait_under_contention_never_leak_permits() {
    use futures::FutureExt;
    with_timeout(DEADLINE * 3, || {
        let rt = runtime(2);
        let sem = Arc::new(MkAsyncSemaphore::new(4));
        // Fewer under Miri (9 600 requests take many minutes there); still twice as many tasks
        // as permits.
        let (n_tasks, rounds) = if cfg!(miri) { (8, 30) } else { (32, 300) };
        let tasks: Vec<_> = (0..n_tasks)
            .map(|i| {
                let sem = sem.clone();
                rt.spawn(async move {
                    let mut served = 0;
                    for j in 0..rounds {
                        let n = 1 + (i + j) % 4;
                        if j % 2 == 0 {
                            // Polled once, then dropped: queued (and maybe served) and withdrawn.
                            served += usize::from(sem.acquire_many(n).now_or_never().is_some());
                        } else {
                            let p = sem.acquire_many(n).await.unwrap();
                            memkit_async::task::yield_now().await;
                            drop(p);
                            served += 1;
                        }
                    }
                    served
                })
            })
            .collect();
        let served: usize = tasks.into_iter().map(|t| rt.block_on(t).unwrap()).sum();
        assert!(served >= n_tasks * rounds / 2);
        assert_eq!((sem.available_permits(), sem.waiting()), (4, 0));
    });
}
