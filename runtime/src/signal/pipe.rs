//! `SignalPipe`: one listener's delivery channel from a signal handler to the reactor.
//!
//! The self-pipe pattern: a handler installed by `signal-hook` writes a byte into one end of a
//! Unix socket pair (non-blocking, so a full buffer drops the byte: deliveries coalesce),
//! whose other end is registered with the runtime's reactor like any socket. Each listener has
//! a pair of its own, so every listener for a signal sees every delivery. No thread is started
//! and nothing runs while no signal comes.

use crate::io::{Direction, PollEvented};
use std::io::{self, Read};
use std::os::unix::net::UnixStream;
use std::task::{Context, Poll};

/// A registered handler and the read end of its socket pair.
pub(super) struct SignalPipe {
    read: PollEvented<mio::net::UnixStream>,
    id: signal_hook::SigId,
}

impl SignalPipe {
    /// Installs a handler for `signal` (checked by the caller: not forbidden, positive) that
    /// writes into a new socket pair, the read end registered with the current runtime.
    pub(super) fn new(signal: i32) -> io::Result<SignalPipe> {
        let (read, write) = UnixStream::pair()?;
        read.set_nonblocking(true)?;
        // Registered before the handler, so a failure here leaves no handler behind.
        let read = PollEvented::new(mio::net::UnixStream::from_std(read))?;
        // The handler owns the write end from here on and closes it when unregistered.
        let id = signal_hook::low_level::pipe::register(signal, write)?;
        Ok(SignalPipe { read, id })
    }

    /// Ready with `Some(())` once at least one delivery arrived since the last `Some`; the
    /// deliveries seen so far are consumed together. `None` once deliveries can no longer
    /// come: the runtime that drove the pipe shut down.
    pub(super) fn poll_recv(&self, cx: &mut Context<'_>) -> Poll<Option<()>> {
        self.read
            .poll_io(cx, Direction::Read, drain)
            .map(|res| res.ok())
    }

    /// [`poll_recv`](Self::poll_recv) for a future that owns its wait: its waker is released
    /// when the future is dropped.
    pub(super) async fn recv(&self) -> Option<()> {
        let mut wait = self.read.wait(Direction::Read);
        std::future::poll_fn(|cx| wait.poll_io(cx, drain))
            .await
            .ok()
    }
}

/// Reads every byte queued (each stands for one delivery); `WouldBlock` if there was none.
fn drain(mut read: &mio::net::UnixStream) -> io::Result<()> {
    let mut buf = [0u8; 64];
    let mut got = false;
    loop {
        match read.read(&mut buf) {
            // The write end is closed only once the handler is unregistered, which happens
            // when this pipe is dropped: not while it is read.
            Ok(0) => return Err(io::ErrorKind::UnexpectedEof.into()),
            Ok(_) => got = true,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock && got => return Ok(()),
            Err(e) => return Err(e),
        }
    }
}

impl std::fmt::Debug for SignalPipe {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SignalPipe").finish_non_exhaustive()
    }
}

impl Drop for SignalPipe {
    fn drop(&mut self) {
        signal_hook::low_level::unregister(self.id);
    }
}
