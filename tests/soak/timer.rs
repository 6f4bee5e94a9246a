//! A timer on a foreign thread (independent of the runtime's own): sleeps and bounded waits.

use crate::report::report;
use crate::state::{fail, lk};
use futures::future::{select, Either};
use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::future::Future;
use std::pin::{pin, Pin};
use std::sync::atomic::AtomicU64;
use std::sync::atomic::Ordering::SeqCst;
use std::sync::{Arc, Condvar, Mutex, Once};
use std::task::{Context, Poll, Waker};
use std::thread;
use std::time::{Duration, Instant};

pub type Slot = Arc<Mutex<Option<Waker>>>;

pub struct Entry {
    pub at: Instant,
    pub seq: u64,
    pub slot: Slot,
}

impl PartialEq for Entry {
    fn eq(&self, other: &Entry) -> bool {
        (self.at, self.seq) == (other.at, other.seq)
    }
}

impl Eq for Entry {}

impl PartialOrd for Entry {
    fn partial_cmp(&self, other: &Entry) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Entry {
    fn cmp(&self, other: &Entry) -> std::cmp::Ordering {
        (self.at, self.seq).cmp(&(other.at, other.seq))
    }
}

pub struct Timer {
    pub heap: Mutex<BinaryHeap<Reverse<Entry>>>,
    pub changed: Condvar,
    pub seq: AtomicU64,
}

pub static TIMER: Timer = Timer {
    heap: Mutex::new(BinaryHeap::new()),
    changed: Condvar::new(),
    seq: AtomicU64::new(0),
};

pub fn timer_thread() {
    let mut heap = lk(&TIMER.heap);
    loop {
        let now = Instant::now();
        let mut due = Vec::new();
        while heap.peek().is_some_and(|Reverse(e)| e.at <= now) {
            if let Some(Reverse(e)) = heap.pop() {
                due.push(e.slot);
            }
        }
        if !due.is_empty() {
            drop(heap);
            for slot in due {
                let waker = lk(&slot).take();
                if let Some(w) = waker {
                    w.wake();
                }
            }
            heap = lk(&TIMER.heap);
            continue;
        }
        heap = match heap.peek().map(|Reverse(e)| e.at) {
            Some(at) => {
                TIMER
                    .changed
                    .wait_timeout(heap, at.saturating_duration_since(now))
                    .unwrap_or_else(|e| e.into_inner())
                    .0
            }
            None => TIMER.changed.wait(heap).unwrap_or_else(|e| e.into_inner()),
        };
    }
}

/// Wakes every registered sleeper now (between runtimes: drops the wakers of dead tasks).
pub fn flush_timer() {
    let entries: Vec<_> = lk(&TIMER.heap).drain().collect();
    for Reverse(e) in entries {
        let waker = lk(&e.slot).take();
        if let Some(w) = waker {
            w.wake();
        }
    }
}

pub struct Sleep {
    pub at: Instant,
    pub slot: Option<Slot>,
}

pub fn sleep(d: Duration) -> Sleep {
    Sleep {
        at: Instant::now() + d,
        slot: None,
    }
}

impl Future for Sleep {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        if Instant::now() >= self.at {
            return Poll::Ready(());
        }
        if let Some(slot) = &self.slot {
            let mut w = lk(slot);
            if w.is_some() {
                if !w.as_ref().is_some_and(|w| w.will_wake(cx.waker())) {
                    *w = Some(cx.waker().clone());
                }
                return Poll::Pending;
            }
        }
        // First poll, or woken early by `flush_timer`: (re-)register.
        static START: Once = Once::new();
        START.call_once(|| {
            thread::Builder::new()
                .name("soak-timer".into())
                .spawn(timer_thread)
                .expect("start the soak timer thread");
        });
        let slot: Slot = Arc::new(Mutex::new(Some(cx.waker().clone())));
        self.slot = Some(slot.clone());
        let entry = Entry {
            at: self.at,
            seq: TIMER.seq.fetch_add(1, SeqCst),
            slot,
        };
        lk(&TIMER.heap).push(Reverse(entry));
        TIMER.changed.notify_one();
        Poll::Pending
    }
}

impl Drop for Sleep {
    fn drop(&mut self) {
        if let Some(slot) = &self.slot {
            let waker = lk(slot).take();
            drop(waker);
        }
    }
}

/// `future`, or `None` (and a recorded failure) if it has not finished within `limit`.
pub async fn bounded<F: Future>(
    limit: Duration,
    what: &'static str,
    future: F,
) -> Option<F::Output> {
    let future = pin!(future);
    let timer = pin!(sleep(limit));
    match select(future, timer).await {
        Either::Left((out, _)) => Some(out),
        Either::Right(((), _)) => {
            fail(format!(
                "stuck: {what} did not finish within {limit:?}; state then:\n{}",
                report()
            ));
            None
        }
    }
}
