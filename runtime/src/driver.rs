//! The runtime's driver: its timer wheel and its `mio::Poll`, turned by the workers themselves.
//!
//! There is no timer or I/O thread. A worker with nothing to run takes the driver if nobody
//! holds it and blocks in `mio::Poll::poll` until the next timer deadline or I/O event; other
//! idle workers sleep on their own parkers. Waking the worker that holds the driver goes
//! through the reactor's `mio::Waker`. A busy worker turns the driver without blocking every
//! few dozen tasks, so timers fire and I/O is delivered even when no worker ever parks.
//!
//! The holder protocol: a parking worker records itself as `holder` and only then checks that
//! it is still on the sleeper list (under the list's lock). A notifier removes a sleeper under
//! that lock and only then reads `holder`. Either the worker sees it was woken and polls
//! without blocking, or the notifier sees the worker holds the driver and wakes the poll.
//!
//! The runtime makes its driver current on its threads (`enter`), which is how timers and
//! sockets find the reactor and wheel to register with.

use crate::io::Reactor;
use crate::sync::{AtomicUsize, Ordering::SeqCst};
use crate::time::TimeDriver;
use std::cell::RefCell;
use std::io;
use std::sync::{Arc, Mutex, MutexGuard, TryLockError};
use std::task::Waker;
use std::time::Duration;

/// Events read per poll.
const EVENTS: usize = 1024;
const NO_HOLDER: usize = usize::MAX;

thread_local! {
    static CURRENT: RefCell<Option<Arc<Driver>>> = const { RefCell::new(None) };
}

/// Makes `driver` current on this thread until the guard drops.
pub(crate) fn enter(driver: Arc<Driver>) -> CurrentGuard {
    CurrentGuard(
        CURRENT
            .try_with(|c| c.replace(Some(driver)))
            .unwrap_or(None),
    )
}

/// Runs `f` with the driver of the runtime this thread runs in, if any.
pub(crate) fn with_current<R>(f: impl FnOnce(Option<&Driver>) -> R) -> R {
    let current = CURRENT.try_with(|c| c.borrow().clone()).unwrap_or(None);
    f(current.as_deref())
}

/// Now on the clock of the runtime this thread runs in, if any.
pub(crate) fn current_now() -> Option<std::time::Instant> {
    CURRENT
        .try_with(|c| c.borrow().as_ref().map(|d| d.time.now()))
        .unwrap_or(None)
}

/// Restores the previously current driver on drop.
pub(crate) struct CurrentGuard(Option<Arc<Driver>>);

impl Drop for CurrentGuard {
    fn drop(&mut self) {
        let prev = self.0.take();
        // The driver made current by the guard is dropped after the cell is released.
        let entered = CURRENT.try_with(|c| c.replace(prev));
        drop(entered);
    }
}

pub(crate) struct Driver {
    pub(crate) time: Arc<TimeDriver>,
    pub(crate) io: Arc<Reactor>,
    poller: Mutex<Poller>,
    /// The worker blocked in the poll, or `NO_HOLDER`.
    holder: AtomicUsize,
}

/// What only the worker turning the driver touches.
pub(crate) struct Poller {
    poll: mio::Poll,
    events: mio::Events,
    wake: Vec<Waker>,
}

impl Driver {
    /// A driver whose clock runs, or starts paused (`start_paused`).
    pub(crate) fn new(start_paused: bool) -> io::Result<Driver> {
        let poll = mio::Poll::new()?;
        let io = Arc::new(Reactor::new(poll.registry().try_clone()?)?);
        let to_wake = io.clone();
        let time = Arc::new(TimeDriver::new(
            Box::new(move || to_wake.wake()),
            start_paused,
        ));
        Ok(Driver {
            time,
            io,
            poller: Mutex::new(Poller {
                poll,
                events: mio::Events::with_capacity(EVENTS),
                wake: Vec::new(),
            }),
            holder: AtomicUsize::new(NO_HOLDER),
        })
    }

    /// The driver, unless another worker is turning it.
    pub(crate) fn try_lock(&self) -> Option<MutexGuard<'_, Poller>> {
        match self.poller.try_lock() {
            Ok(guard) => Some(guard),
            // Nothing panics while holding it; the poller stays usable.
            Err(TryLockError::Poisoned(e)) => Some(e.into_inner()),
            Err(TryLockError::WouldBlock) => None,
        }
    }

    /// Worker `index`, registered as a sleeper, blocks until the next timer, I/O event or
    /// wake-up (or for at most `cap`), unless `still_sleeping` says it was woken already (then
    /// it only polls).
    ///
    /// With the clock paused, timers never come due by waiting: the worker blocks until woken
    /// (or `cap`), unless `runtime_idle` says the whole runtime has nothing to do and nothing
    /// holds auto-advance off. Then, if no I/O is ready either, the clock jumps to the next
    /// timer's deadline and the worker does not block.
    /// The caller then leaves the sleeper list and calls [`dispatch`](Self::dispatch).
    pub(crate) fn park(
        &self,
        poller: &mut Poller,
        index: usize,
        cap: Option<Duration>,
        still_sleeping: impl FnOnce() -> bool,
        runtime_idle: impl FnOnce() -> bool,
    ) {
        self.holder.store(index, SeqCst);
        let timeout = if !still_sleeping() {
            Some(Duration::ZERO)
        } else if self.time.is_paused() {
            if self.time.can_auto_advance() && runtime_idle() {
                self.poll(poller, Some(Duration::ZERO));
                if !poller.events.is_empty() || self.time.auto_advance() {
                    self.holder.store(NO_HOLDER, SeqCst);
                    return;
                }
            }
            // No timer, or someone may still act: sleep until woken. The last of those to
            // stop acting wakes this worker to look again.
            cap
        } else {
            match (self.time.sleep_timeout(), cap) {
                (Some(t), Some(c)) => Some(t.min(c)),
                (t, c) => t.or(c),
            }
        };
        self.poll(poller, timeout);
        self.holder.store(NO_HOLDER, SeqCst);
    }

    fn poll(&self, poller: &mut Poller, timeout: Option<Duration>) {
        if let Err(e) = poller.poll.poll(&mut poller.events, timeout) {
            // `Interrupted` (a signal) just ends this turn early; anything else leaves no
            // events, and the worker comes back on its next park.
            if e.kind() != io::ErrorKind::Interrupted {
                poller.events.clear();
            }
        }
    }

    /// Wakes the tasks whose I/O became ready and fires due timers.
    pub(crate) fn dispatch(&self, poller: &mut Poller) {
        if !poller.events.is_empty() {
            self.io.dispatch(&poller.events, &mut poller.wake);
            poller.events.clear();
            crate::unwind::wake_all(poller.wake.drain(..));
        }
        self.time.process();
    }

    /// A busy worker's turn: fires due timers and delivers ready I/O without blocking, unless
    /// another worker is turning the driver already.
    pub(crate) fn turn_nonblocking(&self) {
        let io = self.io.has_sources();
        if !io && !self.time.has_due() {
            return;
        }
        if let Some(mut poller) = self.try_lock() {
            if io {
                self.poll(&mut poller, Some(Duration::ZERO));
            }
            self.dispatch(&mut poller);
        }
    }

    /// Wakes worker `worker` if it is the one blocked in the poll (it was just taken off the
    /// sleeper list).
    pub(crate) fn unpark(&self, worker: usize) {
        if self.holder.load(SeqCst) == worker {
            self.io.wake();
        }
    }

    /// Interrupts the poll, whoever blocks in it.
    pub(crate) fn wake(&self) {
        self.io.wake();
    }

    /// Ends every timer and I/O wait of the runtime; called once its workers have exited.
    pub(crate) fn shutdown(&self) {
        self.time.shutdown();
        self.io.shutdown();
    }
}
