//! What one registered I/O source is ready for, and who waits for it.
//!
//! mio reports readiness edge-triggered: an event says "this became readable", once. The reactor
//! records it here; an operation that then fails with `WouldBlock` clears it again. The word
//! also carries a tick, bumped by every event, so clearing only removes readiness the failed
//! operation actually saw: an event that arrived in between is kept, and no wake-up is lost.
//! A waiter stores its waker under the lock and re-reads the word before returning `Pending`;
//! the reactor sets the word before taking the lock to wake, so one of the two sees the other.

use crate::sync::lock_std;
use std::io;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;
use std::task::{Context, Poll, Waker};

pub(crate) const READABLE: usize = 1;
pub(crate) const WRITABLE: usize = 1 << 1;
pub(crate) const READ_CLOSED: usize = 1 << 2;
pub(crate) const WRITE_CLOSED: usize = 1 << 3;
pub(crate) const ERROR: usize = 1 << 4;
/// The reactor shut down: every wait ends with an error.
const SHUTDOWN: usize = 1 << 5;
const FLAGS: usize = (1 << 8) - 1;
const TICK_SHIFT: u32 = 8;

/// An I/O direction: what an operation waits for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Direction {
    Read,
    Write,
}

impl Direction {
    /// Readiness bits that let an operation in this direction make progress (or fail).
    fn mask(self) -> usize {
        match self {
            Direction::Read => READABLE | READ_CLOSED | ERROR,
            Direction::Write => WRITABLE | WRITE_CLOSED | ERROR,
        }
    }
}

/// Readiness observed by a waiter, to clear if the operation would block.
#[derive(Debug, Clone, Copy)]
pub(crate) struct ReadyEvent {
    tick: usize,
    ready: usize,
}

#[derive(Default)]
struct Waiters {
    reader: Vec<Waker>,
    writer: Vec<Waker>,
}

/// The shared state of one registered source.
pub(crate) struct Readiness {
    word: AtomicUsize,
    waiters: Mutex<Waiters>,
}

impl Readiness {
    pub(crate) fn new() -> Readiness {
        Readiness {
            word: AtomicUsize::new(0),
            waiters: Mutex::new(Waiters::default()),
        }
    }

    /// Records an event (`ready` bits) and moves the wakers it satisfies into `wake`.
    pub(crate) fn set(&self, ready: usize, wake: &mut Vec<Waker>) {
        let _ = self
            .word
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |cur| {
                let tick = (cur >> TICK_SHIFT).wrapping_add(1);
                Some((tick << TICK_SHIFT) | (cur & FLAGS) | ready)
            });
        let mut waiters = lock_std(&self.waiters);
        if ready & Direction::Read.mask() != 0 {
            wake.append(&mut waiters.reader);
        }
        if ready & Direction::Write.mask() != 0 {
            wake.append(&mut waiters.writer);
        }
    }

    /// Ends every wait with an error (the reactor is gone), handing their wakers to `wake`.
    pub(crate) fn shutdown(&self, wake: &mut Vec<Waker>) {
        self.word.fetch_or(SHUTDOWN, Ordering::AcqRel);
        let mut waiters = lock_std(&self.waiters);
        wake.append(&mut waiters.reader);
        wake.append(&mut waiters.writer);
    }

    fn check(word: usize, dir: Direction) -> Option<io::Result<ReadyEvent>> {
        if word & SHUTDOWN != 0 {
            return Some(Err(super::reactor::shutdown_error()));
        }
        let ready = word & dir.mask();
        (ready != 0).then_some(Ok(ReadyEvent {
            tick: word >> TICK_SHIFT,
            ready,
        }))
    }

    /// The readiness in `dir` now, without waiting for it.
    pub(crate) fn ready_now(&self, dir: Direction) -> Option<io::Result<ReadyEvent>> {
        Self::check(self.word.load(Ordering::Acquire), dir)
    }

    /// Ready when the source may make progress in `dir`; else stores the waker.
    pub(crate) fn poll_ready(
        &self,
        cx: &mut Context<'_>,
        dir: Direction,
    ) -> Poll<io::Result<ReadyEvent>> {
        if let Some(ready) = Self::check(self.word.load(Ordering::Acquire), dir) {
            return Poll::Ready(ready);
        }
        let mut waiters = lock_std(&self.waiters);
        if let Some(ready) = Self::check(self.word.load(Ordering::Acquire), dir) {
            return Poll::Ready(ready);
        }
        let list = match dir {
            Direction::Read => &mut waiters.reader,
            Direction::Write => &mut waiters.writer,
        };
        // Several tasks may wait on one socket in one direction (a shared `UdpSocket`): each
        // is kept, and all are woken by the next event.
        if !list.iter().any(|w| w.will_wake(cx.waker())) {
            list.push(cx.waker().clone());
        }
        Poll::Pending
    }

    /// Forgets the readiness `event` reported, unless a newer event arrived since. Closed and
    /// error states stay: they are final.
    pub(crate) fn clear(&self, event: ReadyEvent) {
        let clear = event.ready & (READABLE | WRITABLE);
        let _ = self
            .word
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |cur| {
                (cur >> TICK_SHIFT == event.tick).then_some(cur & !clear)
            });
    }
}
