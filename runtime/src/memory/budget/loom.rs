//! Loom models of the budget wait queue, driven through the real `MkBudget`, `Acquire`,
//! `Waiter` and wait-queue code (their atomics and locks are loom's under `--cfg loom`, see
//! sync.rs).
//!
//! Run with
//! `RUSTFLAGS="--cfg loom -C debug-assertions" CARGO_TARGET_DIR=target/loom cargo test -p memkit-async-runtime --release --lib loom`.
//!
//! Every model checks, on every interleaving explored:
//! - no lost wake-up: a request that must be served is driven by `block_on`, which blocks its
//!   thread on a loom condition variable until the waker is woken; if the wake-up were lost,
//!   every thread would end up blocked and loom reports a deadlock;
//! - bytes are never lost nor granted twice: once every thread is done and every guard dropped,
//!   `used() == 0` and `waiting() == 0`, and the peak never exceeded the limit.

use super::{Acquire, MkBackpressure, MkBudget, MkBudgetGuard};
use crate::memory::MkAllocError;
use crate::sync::{lock, loom_model, AtomicBool, Mutex, Ordering::SeqCst};
use loom::sync::Condvar;
use loom::thread;
use std::future::Future;
use std::pin::{pin, Pin};
use std::sync::Arc;
use std::task::{Context, Poll, Wake, Waker};
use std::time::Duration;

/// A waker that unblocks `block_on`: a wake-up flag under a loom mutex and condition variable.
/// (Not `loom::thread::park`: loom 0.7's unpark also wakes a thread blocked on a mutex, see
/// scheduler/loom_park.rs.)
struct Parker {
    woken: Mutex<bool>,
    cv: Condvar,
}

impl Wake for Parker {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        *lock(&self.woken) = true;
        self.cv.notify_one();
    }
}

/// Polls `future` on this loom thread until it is ready, blocking between polls until woken.
fn block_on<F: Future>(future: F) -> F::Output {
    let parker = Arc::new(Parker {
        woken: Mutex::new(false),
        cv: Condvar::new(),
    });
    let waker = Waker::from(parker.clone());
    let mut future = pin!(future);
    loop {
        if let Poll::Ready(out) = future.as_mut().poll(&mut Context::from_waker(&waker)) {
            return out;
        }
        let mut woken = lock(&parker.woken);
        while !*woken {
            woken = parker.cv.wait(woken).unwrap();
        }
        *woken = false;
    }
}

type Polled = Poll<Result<MkBudgetGuard, MkAllocError>>;

fn poll_once(request: &mut Acquire, waker: &Waker) -> Polled {
    Pin::new(request).poll(&mut Context::from_waker(waker))
}

/// Waits for `request` (no lost wake-up, or loom reports a deadlock) and checks its bytes.
fn served(request: Acquire, bytes: usize) -> MkBudgetGuard {
    let guard = block_on(request).expect("a waiting request is served once bytes are released");
    assert_eq!(guard.bytes(), bytes);
    guard
}

fn assert_settled(budget: &MkBudget, peak: usize) {
    assert_eq!((budget.used(), budget.waiting()), (0, 0), "{budget:?}");
    assert_eq!(budget.peak(), peak, "{budget:?}");
}

/// 1. A request arrives while the only holder releases: it gets the bytes at once (the release
///    came first) or queues and is woken holding them (the release serves it), never neither.
#[test]
fn loom_budget_release_racing_new_waiter() {
    loom_model("budget_release_racing_new_waiter", None, || {
        let budget = MkBudget::new(10);
        let held = budget.try_acquire(10).unwrap();
        let b = budget.clone();
        let waiter = thread::spawn(move || {
            let guard = served(b.acquire(6), 6);
            assert_eq!(b.used(), 6);
            drop(guard);
        });
        drop(held);
        waiter.join().unwrap();
        assert_settled(&budget, 10);
    });
}

/// 1b. The same race across a budget tree: the request is made on one child and blocked by the
///     root, the bytes are released by its sibling; the release serves the root's queue after
///     returning the bytes at every level.
#[test]
fn loom_budget_sibling_release_racing_new_waiter() {
    loom_model("budget_sibling_release_racing_new_waiter", None, || {
        let root = MkBudget::new(10);
        let (a, b) = (root.child(10), root.child(10));
        let held = a.try_acquire(10).unwrap();
        let waiter = thread::spawn(move || {
            let guard = served(b.acquire(6), 6);
            assert_eq!((b.used(), b.parent().unwrap().used()), (6, 6));
            drop(guard);
        });
        drop(held);
        waiter.join().unwrap();
        assert_eq!(a.used(), 0);
        assert_settled(&root, 10);
    });
}

/// Executions of model 2 in which the timed request got its bytes, and in which it timed out:
/// both must occur, or the model did not explore the race it is about.
static TIMEOUT_GRANTED: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
static TIMEOUT_EXPIRED: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

/// 2. A `Timeout` request expires while the holder releases, with a `Wait` request that may be
///    queued behind it. The expiry is the real path the timer triggers: the deadline is already
///    past when the request is polled (`Timeout(0)`), so the same poll that queues it finds the
///    deadline elapsed and withdraws it through `Waiter::cancel`, racing the release's
///    `serve_waiters`/`Waiter::grant`, without the timer thread (which loom cannot run). Either
///    the timed request gets its bytes (served before it withdrew, which the poll reports as
///    success) or it fails with `TimedOut`; a grant that lands on it after it withdrew is passed
///    on to the next waiter, which is always served.
#[test]
fn loom_budget_timeout_racing_release() {
    loom_model("budget_timeout_racing_release", Some(3), || {
        let budget = MkBudget::new(10);
        let held = budget.try_acquire(10).unwrap();
        let b = budget.clone();
        let timed = thread::spawn(move || {
            let mut request = b.acquire_with(6, MkBackpressure::Timeout(Duration::ZERO));
            match poll_once(&mut request, Waker::noop()) {
                Poll::Ready(Ok(guard)) => {
                    assert_eq!(guard.bytes(), 6);
                    TIMEOUT_GRANTED.fetch_add(1, SeqCst);
                }
                Poll::Ready(Err(MkAllocError::TimedOut {
                    requested: 6,
                    limit: 10,
                    ..
                })) => {
                    // It left the queue as it gave up: at most the other request is counted.
                    assert!(b.waiting() <= 1, "{b:?}");
                    TIMEOUT_EXPIRED.fetch_add(1, SeqCst);
                }
                other => panic!("a request past its deadline must be settled: {other:?}"),
            }
        });
        let releaser = thread::spawn(move || drop(held));
        drop(served(budget.acquire(6), 6));
        timed.join().unwrap();
        releaser.join().unwrap();
        assert_settled(&budget, 10);
    });
    assert!(TIMEOUT_GRANTED.load(SeqCst) > 0 && TIMEOUT_EXPIRED.load(SeqCst) > 0);
}

/// 3. The head request is dropped while waiting, as the holder releases; the request queued
///    behind it must then be served, whether the release saw the head withdrawn (and skipped
///    it) or granted it first (and the withdrawal gave the bytes back, serving the next one).
#[test]
fn loom_budget_cancel_racing_release() {
    loom_model("budget_cancel_racing_release", Some(5), || {
        let budget = MkBudget::new(10);
        let held = budget.try_acquire(10).unwrap();
        let mut head = budget.acquire(6);
        let mut next = budget.acquire(6);
        assert!(poll_once(&mut head, Waker::noop()).is_pending());
        assert!(poll_once(&mut next, Waker::noop()).is_pending());
        assert_eq!(budget.waiting(), 2);
        let releaser = thread::spawn(move || drop(held));
        let waiter = thread::spawn(move || drop(served(next, 6)));
        drop(head);
        // The withdrawn head left the queue (or was already served): at most `next` is counted.
        assert!(budget.waiting() <= 1, "{budget:?}");
        releaser.join().unwrap();
        waiter.join().unwrap();
        assert_settled(&budget, 10);
    });
}

/// 4. FIFO: one release, a queued head and a later request that arrives at any point of the
///    release (even between returning the bytes and serving the queue). The head gets the bytes
///    from that release; the later request gets them only once the head gives them back.
#[test]
fn loom_budget_fifo_head_served_first() {
    loom_model("budget_fifo_head_served_first", Some(5), || {
        let budget = MkBudget::new(10);
        let held = budget.try_acquire(10).unwrap();
        let mut head = budget.acquire(6);
        assert!(poll_once(&mut head, Waker::noop()).is_pending());
        let head_served = Arc::new(AtomicBool::new(false));
        let releaser = thread::spawn(move || drop(held));
        let later = {
            let (budget, head_served) = (budget.clone(), head_served.clone());
            thread::spawn(move || {
                let guard = served(budget.acquire(6), 6);
                assert!(
                    head_served.load(SeqCst),
                    "a later request overtook the head"
                );
                drop(guard);
            })
        };
        releaser.join().unwrap();
        let guard = block_on(&mut head).expect("the release serves the head");
        assert_eq!(guard.bytes(), 6);
        head_served.store(true, SeqCst);
        drop(guard);
        later.join().unwrap();
        assert_settled(&budget, 10);
    });
}

/// 5. A request moved between queues gives up on the way. Two requests on a child are blocked
///    by the root; a sibling's release serves the root's queue, which finds them blocked by the
///    child now and moves them to the child's queue, while the second one is dropped. Whether
///    it gives up before it leaves the root, on the way, or once queued on the child, it must
///    never be counted as waiting afterwards: that count makes fair charging refuse every
///    request on the path, with room free and nothing queued to serve it.
#[test]
fn loom_budget_cancel_while_moved_between_queues() {
    loom_model("budget_cancel_while_moved_between_queues", None, || {
        let root = MkBudget::new(10);
        let (sibling, child) = (root.child(10), root.child(5));
        let held = sibling.try_acquire(8).unwrap();
        let mut first = child.acquire(4);
        let mut second = child.acquire(4);
        assert!(poll_once(&mut first, Waker::noop()).is_pending());
        assert!(poll_once(&mut second, Waker::noop()).is_pending());
        assert_eq!((root.waiting(), child.waiting()), (2, 0));
        // The child fills up under the root's queue (a charge that bypasses fairness).
        child.try_charge(2).unwrap();
        let in_child = child.guard(2);
        let releaser = thread::spawn(move || drop(held));
        let canceller = thread::spawn(move || drop(second));
        releaser.join().unwrap();
        canceller.join().unwrap();
        // Only `first` waits, on the child (2 + 4 > 5).
        assert_eq!(
            (root.waiting(), child.waiting()),
            (0, 1),
            "{root:?} {child:?}"
        );
        drop(first);
        assert_eq!((root.waiting(), child.waiting()), (0, 0));
        // Nothing is queued: a fair charge with room goes through.
        assert!(child.try_acquire(3).is_ok());
        drop(in_child);
        assert_settled(&root, 10);
    });
}
