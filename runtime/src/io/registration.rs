//! `PollEvented`: a mio source registered with a runtime's reactor, and the retry loop that
//! every non-blocking operation on it goes through; `IoWait`: one async operation's wait on it.

use super::reactor::Reactor;
use super::readiness::{Direction, Readiness, ReadyEvent, WaitKey, WaitSlot};
use super::{Interest, Ready};
use crate::context::NO_RUNTIME;
use crate::coop;
use crate::driver;
use mio::event::Source;
use std::future::poll_fn;
use std::io;
use std::sync::Arc;
use std::task::{Context, Poll};

/// A registered source. Deregistered (and its slot freed) on drop.
pub(crate) struct PollEvented<E: Source> {
    io: E,
    token: usize,
    readiness: Arc<Readiness>,
    reactor: Arc<Reactor>,
}

impl<E: Source> PollEvented<E> {
    /// Registers `io` with the current runtime's reactor.
    pub(crate) fn new(mut io: E) -> io::Result<PollEvented<E>> {
        let reactor = driver::with_current(|d| d.map(|d| d.io.clone())).ok_or_else(|| {
            io::Error::other(format!(
                "memkit-async I/O resources need a runtime to drive them: {NO_RUNTIME}"
            ))
        })?;
        let (token, readiness) = reactor.register(&mut io)?;
        Ok(PollEvented {
            io,
            token,
            readiness,
            reactor,
        })
    }

    pub(crate) fn get_ref(&self) -> &E {
        &self.io
    }

    /// A wait in `dir` for an async operation: its waker is kept in a slot of its own, released
    /// when the wait is dropped.
    pub(crate) fn wait(&self, dir: Direction) -> IoWait<'_, E> {
        IoWait {
            io: self,
            dir,
            key: None,
        }
    }

    /// Waits until the source may make progress in any direction of `interest` (or failed);
    /// returns the readiness seen in those directions. Each direction waits in a slot of its
    /// own, released when the future is dropped.
    pub(crate) async fn ready(&self, interest: Interest) -> io::Result<Ready> {
        let mut read = interest.is_readable().then(|| self.wait(Direction::Read));
        let mut write = interest.is_writable().then(|| self.wait(Direction::Write));
        poll_fn(|cx| {
            // Look first: a direction that is ready already spares arming the other's waker.
            let seen = self.ready_now(interest)?;
            if !seen.is_empty() {
                return Poll::Ready(Ok(seen));
            }
            let mut seen = Ready::EMPTY;
            for wait in [read.as_mut(), write.as_mut()].into_iter().flatten() {
                match wait.poll_event(cx) {
                    Poll::Ready(Ok(event)) => seen |= Ready::from_bits(event.bits()),
                    Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
                    Poll::Pending => {}
                }
            }
            if seen.is_empty() {
                Poll::Pending
            } else {
                Poll::Ready(Ok(seen))
            }
        })
        .await
    }

    /// The readiness in the directions of `interest` now, without waiting.
    fn ready_now(&self, interest: Interest) -> io::Result<Ready> {
        let mut seen = Ready::EMPTY;
        for (dir, wanted) in [
            (Direction::Read, interest.is_readable()),
            (Direction::Write, interest.is_writable()),
        ] {
            match self.readiness.ready_now(dir) {
                Some(Ok(event)) if wanted => seen |= Ready::from_bits(event.bits()),
                Some(Err(e)) => return Err(e),
                _ => {}
            }
        }
        Ok(seen)
    }

    /// Ready once the source may make progress in `dir` (or failed). For the `poll_*` methods:
    /// the waker goes to the direction's shared slot.
    pub(crate) fn poll_ready(&self, cx: &mut Context<'_>, dir: Direction) -> Poll<io::Result<()>> {
        coop::poll_budgeted(cx, |cx| {
            self.readiness
                .poll_ready(cx, dir, WaitSlot::Shared)
                .map_ok(|_| ())
        })
    }

    /// Runs the non-blocking `op` until it does not report `WouldBlock`, waiting for readiness
    /// in `dir` in between. For the `poll_*` methods, like [`poll_ready`](Self::poll_ready).
    pub(crate) fn poll_io<R>(
        &self,
        cx: &mut Context<'_>,
        dir: Direction,
        op: impl FnMut(&E) -> io::Result<R>,
    ) -> Poll<io::Result<R>> {
        self.poll_io_in(cx, dir, WaitSlot::Shared, op)
    }

    fn poll_io_in<R>(
        &self,
        cx: &mut Context<'_>,
        dir: Direction,
        mut slot: WaitSlot<'_>,
        mut op: impl FnMut(&E) -> io::Result<R>,
    ) -> Poll<io::Result<R>> {
        coop::poll_budgeted(cx, |cx| loop {
            let event = match self.readiness.poll_ready(cx, dir, slot.reborrow()) {
                Poll::Ready(Ok(event)) => event,
                Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
                Poll::Pending => return Poll::Pending,
            };
            match op(&self.io) {
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => self.readiness.clear(event),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                res => return Poll::Ready(res),
            }
        })
    }

    /// [`poll_io`](Self::poll_io) for an operation that moves up to `len` bytes and returns how
    /// many it moved. A transfer cut short (`0 < n < len`) drained the socket's receive buffer
    /// or filled its send buffer, so the readiness it used is cleared at once: the next call
    /// waits for the next event instead of first paying a syscall for `WouldBlock`.
    pub(crate) fn poll_transfer(
        &self,
        cx: &mut Context<'_>,
        dir: Direction,
        len: usize,
        mut op: impl FnMut(&E) -> io::Result<usize>,
    ) -> Poll<io::Result<usize>> {
        coop::poll_budgeted(cx, |cx| loop {
            let event = match self.readiness.poll_ready(cx, dir, WaitSlot::Shared) {
                Poll::Ready(Ok(event)) => event,
                Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
                Poll::Pending => return Poll::Pending,
            };
            match op(&self.io) {
                Ok(n) => {
                    if n > 0 && n < len {
                        self.readiness.clear_drained(event, dir);
                    }
                    return Poll::Ready(Ok(n));
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => self.readiness.clear(event),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Poll::Ready(Err(e)),
            }
        })
    }

    /// Runs `op` once if the source looks ready in `dir`; `WouldBlock` otherwise.
    pub(crate) fn try_io<R>(
        &self,
        dir: Direction,
        op: impl FnOnce(&E) -> io::Result<R>,
    ) -> io::Result<R> {
        match self.readiness.ready_now(dir) {
            Some(Ok(event)) => {
                let res = op(&self.io);
                if matches!(&res, Err(e) if e.kind() == io::ErrorKind::WouldBlock) {
                    self.readiness.clear(event);
                }
                res
            }
            Some(Err(e)) => Err(e),
            None => Err(io::ErrorKind::WouldBlock.into()),
        }
    }
}

impl<E: Source> Drop for PollEvented<E> {
    fn drop(&mut self) {
        self.reactor.deregister(self.token, &mut self.io);
    }
}

/// One async operation's wait on a source (`recv_from`, `accept`, `readable`, ...), kept in
/// that operation's future: its waker has a slot of its own in the source's waiter slab, taken
/// on the first `Pending` and freed when the wait is dropped, so a future abandoned mid-wait
/// (by `timeout`, `select!`, an abort) leaves nothing behind.
pub(crate) struct IoWait<'a, E: Source> {
    io: &'a PollEvented<E>,
    dir: Direction,
    key: Option<WaitKey>,
}

impl<E: Source> IoWait<'_, E> {
    /// Ready once the source may make progress in this wait's direction (or failed).
    pub(crate) fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        coop::poll_budgeted(cx, |cx| self.poll_event(cx).map_ok(|_| ()))
    }

    /// [`poll_ready`](Self::poll_ready), returning the readiness seen.
    fn poll_event(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<ReadyEvent>> {
        self.io
            .readiness
            .poll_ready(cx, self.dir, WaitSlot::Owned(&mut self.key))
    }

    /// [`PollEvented::poll_io`] in this wait's direction, with the wait's own slot.
    pub(crate) fn poll_io<R>(
        &mut self,
        cx: &mut Context<'_>,
        op: impl FnMut(&E) -> io::Result<R>,
    ) -> Poll<io::Result<R>> {
        self.io
            .poll_io_in(cx, self.dir, WaitSlot::Owned(&mut self.key), op)
    }
}

impl<E: Source> Drop for IoWait<'_, E> {
    fn drop(&mut self) {
        if let Some(key) = self.key.take() {
            self.io.readiness.remove(key);
        }
    }
}
