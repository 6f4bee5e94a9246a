//! `TcpListener`: accepts TCP connections.

use super::{each_addr, TcpStream};
use crate::io::{Direction, PollEvented};
use std::fmt;
use std::future::poll_fn;
use std::io;
use std::net::{SocketAddr, ToSocketAddrs};
use std::task::{Context, Poll};

/// A TCP socket listening for connections.
///
/// ```
/// # let rt = memkit_async_runtime::Runtime::new().unwrap();
/// # rt.block_on(async {
/// let listener = memkit_async_runtime::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
/// assert!(listener.local_addr().unwrap().port() != 0);
/// # });
/// ```
pub struct TcpListener {
    io: PollEvented<mio::net::TcpListener>,
}

impl TcpListener {
    /// Binds to `addr` (the first of its resolved addresses that works) and listens.
    ///
    /// # Errors
    ///
    /// The OS error of the last address tried (address in use, permission denied, ...), or an
    /// error outside a runtime.
    pub async fn bind<A: ToSocketAddrs>(addr: A) -> io::Result<TcpListener> {
        let listener = each_addr(addr, mio::net::TcpListener::bind)?;
        Ok(TcpListener {
            io: PollEvented::new(listener)?,
        })
    }

    /// Wraps a std listener (set to non-blocking here).
    ///
    /// # Errors
    ///
    /// If the socket cannot be made non-blocking, or outside a runtime.
    pub fn from_std(listener: std::net::TcpListener) -> io::Result<TcpListener> {
        listener.set_nonblocking(true)?;
        Ok(TcpListener {
            io: PollEvented::new(mio::net::TcpListener::from_std(listener))?,
        })
    }

    /// Waits for a connection; returns it and the peer's address.
    ///
    /// # Errors
    ///
    /// The OS error of `accept` (for example when out of file descriptors: the listener stays
    /// usable and the next call may succeed).
    pub async fn accept(&self) -> io::Result<(TcpStream, SocketAddr)> {
        let mut wait = self.io.wait(Direction::Read);
        let (stream, addr) = poll_fn(|cx| wait.poll_io(cx, |l| l.accept())).await?;
        drop(wait);
        Ok((TcpStream::from_mio(stream)?, addr))
    }

    /// Polls for a connection. Only the task of the latest call is woken (one waker per
    /// listener); [`accept`](Self::accept) has no such limit.
    pub fn poll_accept(&self, cx: &mut Context<'_>) -> Poll<io::Result<(TcpStream, SocketAddr)>> {
        match self.io.poll_io(cx, Direction::Read, |l| l.accept()) {
            Poll::Ready(Ok((stream, addr))) => {
                Poll::Ready(TcpStream::from_mio(stream).map(|s| (s, addr)))
            }
            Poll::Ready(Err(e)) => Poll::Ready(Err(e)),
            Poll::Pending => Poll::Pending,
        }
    }

    /// The address this listener is bound to.
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.io.get_ref().local_addr()
    }

    /// Sets the IP time-to-live of accepted sockets.
    pub fn set_ttl(&self, ttl: u32) -> io::Result<()> {
        self.io.get_ref().set_ttl(ttl)
    }
}

impl fmt::Debug for TcpListener {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TcpListener")
            .field("local_addr", &self.local_addr().ok())
            .finish()
    }
}
