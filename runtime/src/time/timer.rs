//! A deadline queue served by one sleeping thread.
//!
//! Invariant: a registered `Delay` has exactly one entry, keyed by its deadline and a unique id,
//! until it fires (the thread removes it) or is dropped (the delay removes it); nothing stale
//! stays behind, whatever the deadline.

use std::collections::BTreeMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Condvar, Mutex, MutexGuard, OnceLock};
use std::task::{Context, Poll, Waker};
use std::thread;
use std::time::Instant;

type Key = (Instant, u64);

struct Timers {
    pending: BTreeMap<Key, Waker>,
    next_id: u64,
}

struct Queue {
    timers: Mutex<Timers>,
    changed: Condvar,
}

fn lock(queue: &Queue) -> MutexGuard<'_, Timers> {
    queue.timers.lock().unwrap_or_else(|e| e.into_inner())
}

/// The process-wide queue; its thread starts with the first timer.
fn queue() -> &'static Queue {
    static QUEUE: OnceLock<&'static Queue> = OnceLock::new();
    QUEUE.get_or_init(|| {
        let queue: &'static Queue = Box::leak(Box::new(Queue {
            timers: Mutex::new(Timers {
                pending: BTreeMap::new(),
                next_id: 0,
            }),
            changed: Condvar::new(),
        }));
        // Without the thread no deadline would ever fire, which would turn every timeout into
        // an unbounded wait: failing loudly here is the only honest option.
        thread::Builder::new()
            .name("memkit-timer".into())
            .spawn(move || run(queue))
            .expect("memkit-async could not start its timer thread");
        queue
    })
}

fn run(queue: &Queue) {
    let mut timers = lock(queue);
    loop {
        let now = Instant::now();
        let mut due = Vec::new();
        while let Some(entry) = timers.pending.first_entry() {
            if entry.key().0 > now {
                break;
            }
            due.push(entry.remove());
        }
        if !due.is_empty() {
            drop(timers);
            due.into_iter().for_each(Waker::wake);
            timers = lock(queue);
            continue;
        }
        timers = match timers.pending.keys().next() {
            None => queue
                .changed
                .wait(timers)
                .unwrap_or_else(|e| e.into_inner()),
            Some(&(deadline, _)) => {
                queue
                    .changed
                    .wait_timeout(timers, deadline.saturating_duration_since(now))
                    .unwrap_or_else(|e| e.into_inner())
                    .0
            }
        };
    }
}

/// A future that completes at its deadline; it costs no CPU while pending (a process-wide timer
/// thread wakes it). Dropping it cancels the timer.
pub struct Delay {
    deadline: Instant,
    key: Option<Key>,
}

impl Delay {
    /// A delay that completes at `deadline` (at once if it has passed).
    pub fn until(deadline: Instant) -> Delay {
        Delay {
            deadline,
            key: None,
        }
    }

    pub(crate) fn is_elapsed(&self) -> bool {
        Instant::now() >= self.deadline
    }
}

impl Future for Delay {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        if self.is_elapsed() {
            if let Some(key) = self.key.take() {
                lock(queue()).pending.remove(&key);
            }
            return Poll::Ready(());
        }
        let queue = queue();
        let mut timers = lock(queue);
        match self.key {
            // Still pending: refresh the waker. An entry already fired woke the previous
            // waker, which polls again and finds the deadline passed.
            Some(key) => {
                if let Some(w) = timers.pending.get_mut(&key) {
                    if !w.will_wake(cx.waker()) {
                        *w = cx.waker().clone();
                    }
                }
            }
            None => {
                let key = (self.deadline, timers.next_id);
                timers.next_id += 1;
                let earliest = timers
                    .pending
                    .keys()
                    .next()
                    .is_none_or(|first| key < *first);
                timers.pending.insert(key, cx.waker().clone());
                self.key = Some(key);
                if earliest {
                    queue.changed.notify_one();
                }
            }
        }
        Poll::Pending
    }
}

impl Drop for Delay {
    fn drop(&mut self) {
        if let Some(key) = self.key {
            lock(queue()).pending.remove(&key);
        }
    }
}
