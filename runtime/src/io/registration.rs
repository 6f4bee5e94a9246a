//! `PollEvented`: a mio source registered with a runtime's reactor, and the retry loop that
//! every non-blocking operation on it goes through.

use super::reactor::Reactor;
use super::readiness::{Direction, Readiness};
use crate::context;
use crate::runtime::handle::NO_RUNTIME;
use mio::event::Source;
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
        let handle = context::current_handle().ok_or_else(|| {
            io::Error::other(format!(
                "memkit-async I/O resources need a runtime to drive them: {NO_RUNTIME}"
            ))
        })?;
        let reactor = handle.shared.driver.io.clone();
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

    /// Ready once the source may make progress in `dir` (or failed).
    pub(crate) fn poll_ready(&self, cx: &mut Context<'_>, dir: Direction) -> Poll<io::Result<()>> {
        self.readiness.poll_ready(cx, dir).map_ok(|_| ())
    }

    /// Runs the non-blocking `op` until it does not report `WouldBlock`, waiting for readiness
    /// in `dir` in between.
    pub(crate) fn poll_io<R>(
        &self,
        cx: &mut Context<'_>,
        dir: Direction,
        mut op: impl FnMut(&E) -> io::Result<R>,
    ) -> Poll<io::Result<R>> {
        loop {
            let event = match self.readiness.poll_ready(cx, dir) {
                Poll::Ready(Ok(event)) => event,
                Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
                Poll::Pending => return Poll::Pending,
            };
            match op(&self.io) {
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => self.readiness.clear(event),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                res => return Poll::Ready(res),
            }
        }
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
