//! `TcpListener`: accepts TCP connections.

use super::tcp_socket::DEFAULT_BACKLOG;
use super::{each_addr, TcpSocket, TcpStream};
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
    /// Binds to `addr` (the first of its resolved addresses that works) and listens, with
    /// room for 1024 connections not accepted yet (the kernel caps it at
    /// `net.core.somaxconn`). On Unix the address may be reused (`SO_REUSEADDR`), so a
    /// restarted server binds at once. [`TcpSocket`] chooses other options and backlogs.
    ///
    /// # Errors
    ///
    /// The OS error of the last address tried (address in use, permission denied, ...), or an
    /// error outside a runtime.
    pub async fn bind<A: ToSocketAddrs>(addr: A) -> io::Result<TcpListener> {
        each_addr(addr, |addr| {
            let socket = TcpSocket::new_for_addr(addr)?;
            // Windows' SO_REUSEADDR would let another socket steal a bound port.
            #[cfg(not(windows))]
            socket.set_reuseaddr(true)?;
            socket.bind(addr)?;
            socket.listen(DEFAULT_BACKLOG)
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

    /// The IP time-to-live of accepted sockets.
    pub fn ttl(&self) -> io::Result<u32> {
        self.io.get_ref().ttl()
    }
}

#[cfg(unix)]
impl std::os::fd::AsRawFd for TcpListener {
    fn as_raw_fd(&self) -> std::os::fd::RawFd {
        self.io.get_ref().as_raw_fd()
    }
}

#[cfg(unix)]
impl std::os::fd::AsFd for TcpListener {
    fn as_fd(&self) -> std::os::fd::BorrowedFd<'_> {
        self.io.get_ref().as_fd()
    }
}

impl fmt::Debug for TcpListener {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TcpListener")
            .field("local_addr", &self.local_addr().ok())
            .finish()
    }
}
