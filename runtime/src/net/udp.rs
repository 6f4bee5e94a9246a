//! `UdpSocket`: datagrams.

use super::each_addr;
use crate::io::{Direction, Interest, PollEvented, Ready};
use std::fmt;
use std::future::poll_fn;
use std::io;
use std::net::{SocketAddr, ToSocketAddrs};
use std::task::{Context, Poll};

/// A UDP socket.
///
/// Methods take `&self`, so one socket can be shared (in an `Arc`) by several tasks; every task
/// waiting in one direction (in an async method) is woken by the next readiness event.
///
/// ```
/// use memkit_async_runtime::net::UdpSocket;
/// # let rt = memkit_async_runtime::Runtime::new().unwrap();
/// # rt.block_on(async {
/// let a = UdpSocket::bind("127.0.0.1:0").await.unwrap();
/// let b = UdpSocket::bind("127.0.0.1:0").await.unwrap();
/// a.send_to(b"ping", b.local_addr().unwrap()).await.unwrap();
/// let mut buf = [0u8; 16];
/// let (n, from) = b.recv_from(&mut buf).await.unwrap();
/// assert_eq!((&buf[..n], from), (&b"ping"[..], a.local_addr().unwrap()));
/// # });
/// ```
pub struct UdpSocket {
    io: PollEvented<mio::net::UdpSocket>,
}

impl UdpSocket {
    /// Binds to `addr` (the first of its resolved addresses that works).
    ///
    /// # Errors
    ///
    /// The OS error of the last address tried, or an error outside a runtime.
    pub async fn bind<A: ToSocketAddrs>(addr: A) -> io::Result<UdpSocket> {
        let socket = each_addr(addr, mio::net::UdpSocket::bind)?;
        Ok(UdpSocket {
            io: PollEvented::new(socket)?,
        })
    }

    /// Wraps a std socket (set to non-blocking here).
    ///
    /// # Errors
    ///
    /// If the socket cannot be made non-blocking, or outside a runtime.
    pub fn from_std(socket: std::net::UdpSocket) -> io::Result<UdpSocket> {
        socket.set_nonblocking(true)?;
        Ok(UdpSocket {
            io: PollEvented::new(mio::net::UdpSocket::from_std(socket))?,
        })
    }

    /// Sets the default peer for [`send`](Self::send) and filters [`recv`](Self::recv) to it.
    pub async fn connect<A: ToSocketAddrs>(&self, addr: A) -> io::Result<()> {
        each_addr(addr, |a| self.io.get_ref().connect(a))
    }

    /// Sends `buf` to `target`; returns the bytes sent (a datagram is sent whole or not at all).
    pub async fn send_to<A: ToSocketAddrs>(&self, buf: &[u8], target: A) -> io::Result<usize> {
        let target = target.to_socket_addrs()?.next().ok_or_else(|| {
            io::Error::new(
                io::ErrorKind::InvalidInput,
                "the target address resolved to no socket address",
            )
        })?;
        let mut wait = self.io.wait(Direction::Write);
        poll_fn(|cx| wait.poll_io(cx, |s| s.send_to(buf, target))).await
    }

    /// Receives one datagram into `buf`; returns its length and sender. A datagram longer
    /// than `buf` is truncated to it.
    ///
    /// Dropping the future before it completes (a `timeout`, a `select!`) leaves nothing
    /// registered with the socket.
    pub async fn recv_from(&self, buf: &mut [u8]) -> io::Result<(usize, SocketAddr)> {
        let mut wait = self.io.wait(Direction::Read);
        poll_fn(|cx| wait.poll_io(cx, |s| s.recv_from(buf))).await
    }

    /// Sends `buf` to the connected peer.
    pub async fn send(&self, buf: &[u8]) -> io::Result<usize> {
        let mut wait = self.io.wait(Direction::Write);
        poll_fn(|cx| wait.poll_io(cx, |s| s.send(buf))).await
    }

    /// Receives one datagram from the connected peer.
    ///
    /// An error the peer's host reported for an earlier datagram (such as `ConnectionRefused`
    /// for a port nobody listens on) is returned once, by the next receive or send; the
    /// receive after it waits for a datagram again.
    pub async fn recv(&self, buf: &mut [u8]) -> io::Result<usize> {
        let mut wait = self.io.wait(Direction::Read);
        poll_fn(|cx| wait.poll_io(cx, |s| s.recv(buf))).await
    }

    /// Waits until the socket may make progress in a direction of `interest`; returns the
    /// readiness seen (in those directions only). A `try_*` call that then reports
    /// `WouldBlock` clears that readiness, and the next `ready` waits for a new event.
    ///
    /// ```
    /// use memkit_async_runtime::io::Interest;
    /// use memkit_async_runtime::net::UdpSocket;
    /// # let rt = memkit_async_runtime::Runtime::new().unwrap();
    /// # rt.block_on(async {
    /// let socket = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    /// socket.connect(socket.local_addr().unwrap()).await.unwrap();
    /// let ready = socket.ready(Interest::WRITABLE).await.unwrap();
    /// assert!(ready.is_writable() && !ready.is_readable());
    /// # });
    /// ```
    pub async fn ready(&self, interest: Interest) -> io::Result<Ready> {
        self.io.ready(interest).await
    }

    /// Waits until the socket may be readable (a datagram or an error is queued). Another task
    /// may take it first, so the [`try_recv`](Self::try_recv) that follows may still report
    /// `WouldBlock`, after which `readable` waits again.
    ///
    /// ```
    /// use memkit_async_runtime::net::UdpSocket;
    /// # let rt = memkit_async_runtime::Runtime::new().unwrap();
    /// # rt.block_on(async {
    /// let a = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    /// let b = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    /// a.connect(b.local_addr().unwrap()).await.unwrap();
    /// b.send_to(b"hi", a.local_addr().unwrap()).await.unwrap();
    /// let mut buf = [0u8; 8];
    /// let n = loop {
    ///     a.readable().await.unwrap();
    ///     match a.try_recv(&mut buf) {
    ///         Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => continue,
    ///         res => break res.unwrap(),
    ///     }
    /// };
    /// assert_eq!(&buf[..n], b"hi");
    /// # });
    /// ```
    pub async fn readable(&self) -> io::Result<()> {
        let mut wait = self.io.wait(Direction::Read);
        poll_fn(|cx| wait.poll_ready(cx)).await
    }

    /// Waits until the socket may be writable.
    pub async fn writable(&self) -> io::Result<()> {
        let mut wait = self.io.wait(Direction::Write);
        poll_fn(|cx| wait.poll_ready(cx)).await
    }

    /// Polls for read readiness. Only the task of the latest `poll_*` call in this direction
    /// is woken; the async methods have no such limit.
    pub fn poll_recv_ready(&self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.io.poll_ready(cx, Direction::Read)
    }

    /// Polls for write readiness; see [`poll_recv_ready`](Self::poll_recv_ready).
    pub fn poll_send_ready(&self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.io.poll_ready(cx, Direction::Write)
    }

    /// Polls [`send_to`](Self::send_to). Only the task of the latest `poll_*` call in this
    /// direction is woken (one waker per direction); the async methods have no such limit.
    pub fn poll_send_to(
        &self,
        cx: &mut Context<'_>,
        buf: &[u8],
        target: SocketAddr,
    ) -> Poll<io::Result<usize>> {
        self.io
            .poll_io(cx, Direction::Write, |s| s.send_to(buf, target))
    }

    /// Polls [`recv_from`](Self::recv_from).
    pub fn poll_recv_from(
        &self,
        cx: &mut Context<'_>,
        buf: &mut [u8],
    ) -> Poll<io::Result<(usize, SocketAddr)>> {
        self.io.poll_io(cx, Direction::Read, |s| s.recv_from(buf))
    }

    /// Polls [`send`](Self::send).
    pub fn poll_send(&self, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        self.io.poll_io(cx, Direction::Write, |s| s.send(buf))
    }

    /// Polls [`recv`](Self::recv).
    pub fn poll_recv(&self, cx: &mut Context<'_>, buf: &mut [u8]) -> Poll<io::Result<usize>> {
        self.io.poll_io(cx, Direction::Read, |s| s.recv(buf))
    }

    /// Receives without waiting: `WouldBlock` if no datagram is queued.
    pub fn try_recv_from(&self, buf: &mut [u8]) -> io::Result<(usize, SocketAddr)> {
        self.io.try_io(Direction::Read, |s| s.recv_from(buf))
    }

    /// Sends without waiting: `WouldBlock` if the send buffer is full.
    pub fn try_send_to(&self, buf: &[u8], target: SocketAddr) -> io::Result<usize> {
        self.io.try_io(Direction::Write, |s| s.send_to(buf, target))
    }

    /// Receives from the connected peer without waiting: `WouldBlock` if no datagram is queued.
    pub fn try_recv(&self, buf: &mut [u8]) -> io::Result<usize> {
        self.io.try_io(Direction::Read, |s| s.recv(buf))
    }

    /// Sends to the connected peer without waiting: `WouldBlock` if the send buffer is full.
    pub fn try_send(&self, buf: &[u8]) -> io::Result<usize> {
        self.io.try_io(Direction::Write, |s| s.send(buf))
    }

    /// The local address.
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.io.get_ref().local_addr()
    }

    /// The connected peer's address.
    pub fn peer_addr(&self) -> io::Result<SocketAddr> {
        self.io.get_ref().peer_addr()
    }

    /// Allows sending to broadcast addresses.
    pub fn set_broadcast(&self, on: bool) -> io::Result<()> {
        self.io.get_ref().set_broadcast(on)
    }

    /// Takes the socket's pending error (such as a port-unreachable report), if any.
    pub fn take_error(&self) -> io::Result<Option<io::Error>> {
        self.io.get_ref().take_error()
    }

    /// Sets the IP time-to-live of the datagrams this socket sends.
    pub fn set_ttl(&self, ttl: u32) -> io::Result<()> {
        self.io.get_ref().set_ttl(ttl)
    }

    /// The IP time-to-live of the datagrams this socket sends.
    pub fn ttl(&self) -> io::Result<u32> {
        self.io.get_ref().ttl()
    }
}

#[cfg(unix)]
impl std::os::fd::AsRawFd for UdpSocket {
    fn as_raw_fd(&self) -> std::os::fd::RawFd {
        self.io.get_ref().as_raw_fd()
    }
}

#[cfg(unix)]
impl std::os::fd::AsFd for UdpSocket {
    fn as_fd(&self) -> std::os::fd::BorrowedFd<'_> {
        self.io.get_ref().as_fd()
    }
}

impl fmt::Debug for UdpSocket {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("UdpSocket")
            .field("local_addr", &self.local_addr().ok())
            .finish()
    }
}
