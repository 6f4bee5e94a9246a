//! `TcpSocket`: a TCP socket configured before it connects or listens.

use super::{TcpListener, TcpStream};
use socket2::{Domain, Protocol, SockAddr, Socket, Type};
use std::fmt;
use std::io;
use std::net::SocketAddr;
use std::time::Duration;

/// The listen backlog of [`TcpListener::bind`]: room for this many connections that completed
/// their handshake but were not accepted yet. A full queue makes the kernel drop new SYNs, and
/// the client retries only after a second, so a burst of connections larger than the queue
/// stalls; the kernel caps the value at `net.core.somaxconn`.
pub(crate) const DEFAULT_BACKLOG: u32 = 1024;

/// A TCP socket that is not connected or listening yet, for setting options that must come
/// first (reusing an address or port, buffer sizes) and choosing the listen backlog.
///
/// [`listen`](TcpSocket::listen) turns it into a [`TcpListener`], and
/// [`connect`](TcpSocket::connect) into a [`TcpStream`]; both register with the current
/// runtime's reactor, so they need one. Creating and configuring the socket does not.
///
/// ```
/// use memkit_async_runtime::net::TcpSocket;
/// # let rt = memkit_async_runtime::Runtime::new().unwrap();
/// # rt.block_on(async {
/// let socket = TcpSocket::new_v4().unwrap();
/// socket.set_reuseaddr(true).unwrap();
/// socket.bind("127.0.0.1:0".parse().unwrap()).unwrap();
/// let listener = socket.listen(4096).unwrap();
///
/// let client = TcpSocket::new_v4().unwrap();
/// client.set_nodelay(true).unwrap();
/// let stream = client.connect(listener.local_addr().unwrap()).await.unwrap();
/// assert!(stream.nodelay().unwrap());
/// # });
/// ```
pub struct TcpSocket {
    inner: Socket,
}

impl TcpSocket {
    /// A new IPv4 TCP socket (non-blocking, closed on `exec`).
    ///
    /// # Errors
    ///
    /// The OS error of `socket` (out of file descriptors, ...).
    pub fn new_v4() -> io::Result<TcpSocket> {
        TcpSocket::new(Domain::IPV4)
    }

    /// A new IPv6 TCP socket (non-blocking, closed on `exec`).
    ///
    /// # Errors
    ///
    /// The OS error of `socket` (no IPv6 support, out of file descriptors, ...).
    pub fn new_v6() -> io::Result<TcpSocket> {
        TcpSocket::new(Domain::IPV6)
    }

    /// A new socket of the family of `addr`.
    pub(crate) fn new_for_addr(addr: SocketAddr) -> io::Result<TcpSocket> {
        TcpSocket::new(Domain::for_address(addr))
    }

    fn new(domain: Domain) -> io::Result<TcpSocket> {
        let inner = Socket::new(domain, Type::STREAM, Some(Protocol::TCP))?;
        inner.set_nonblocking(true)?;
        Ok(TcpSocket { inner })
    }

    /// Wraps a connected std stream's socket, to read or change its options here. The stream
    /// is set to non-blocking.
    ///
    /// # Errors
    ///
    /// If the socket cannot be made non-blocking.
    pub fn from_std_stream(stream: std::net::TcpStream) -> io::Result<TcpSocket> {
        stream.set_nonblocking(true)?;
        Ok(TcpSocket {
            inner: Socket::from(stream),
        })
    }

    /// Sets `SO_KEEPALIVE`: the kernel probes an idle connection and reports a dead peer.
    pub fn set_keepalive(&self, keepalive: bool) -> io::Result<()> {
        self.inner.set_keepalive(keepalive)
    }

    /// The `SO_KEEPALIVE` setting.
    pub fn keepalive(&self) -> io::Result<bool> {
        self.inner.keepalive()
    }

    /// Sets `SO_REUSEADDR`: a listener may bind an address whose earlier connections are
    /// still in `TIME_WAIT`, as a restarted server must. [`TcpListener::bind`] sets it on Unix.
    pub fn set_reuseaddr(&self, reuseaddr: bool) -> io::Result<()> {
        self.inner.set_reuse_address(reuseaddr)
    }

    /// The `SO_REUSEADDR` setting.
    pub fn reuseaddr(&self) -> io::Result<bool> {
        self.inner.reuse_address()
    }

    /// Sets `SO_REUSEPORT`: several sockets (each with the option set) may bind the same
    /// address and port, and the kernel spreads incoming connections among their listeners.
    #[cfg(all(
        unix,
        not(any(target_os = "solaris", target_os = "illumos", target_os = "cygwin"))
    ))]
    pub fn set_reuseport(&self, reuseport: bool) -> io::Result<()> {
        self.inner.set_reuse_port(reuseport)
    }

    /// The `SO_REUSEPORT` setting.
    #[cfg(all(
        unix,
        not(any(target_os = "solaris", target_os = "illumos", target_os = "cygwin"))
    ))]
    pub fn reuseport(&self) -> io::Result<bool> {
        self.inner.reuse_port()
    }

    /// Sets the size of the kernel's send buffer (`SO_SNDBUF`). Linux doubles the value asked
    /// for (to leave room for its bookkeeping) and caps it at `net.core.wmem_max`;
    /// [`send_buffer_size`](Self::send_buffer_size) reads back what it chose.
    pub fn set_send_buffer_size(&self, size: u32) -> io::Result<()> {
        self.inner.set_send_buffer_size(size as usize)
    }

    /// The size of the kernel's send buffer.
    pub fn send_buffer_size(&self) -> io::Result<u32> {
        self.inner.send_buffer_size().map(saturate)
    }

    /// Sets the size of the kernel's receive buffer (`SO_RCVBUF`); like
    /// [`set_send_buffer_size`](Self::set_send_buffer_size), Linux doubles it and caps it at
    /// `net.core.rmem_max`.
    pub fn set_recv_buffer_size(&self, size: u32) -> io::Result<()> {
        self.inner.set_recv_buffer_size(size as usize)
    }

    /// The size of the kernel's receive buffer.
    pub fn recv_buffer_size(&self) -> io::Result<u32> {
        self.inner.recv_buffer_size().map(saturate)
    }

    /// Sets `SO_LINGER`; see [`TcpStream::set_linger`].
    pub fn set_linger(&self, linger: Option<Duration>) -> io::Result<()> {
        self.inner.set_linger(linger)
    }

    /// The `SO_LINGER` setting.
    pub fn linger(&self) -> io::Result<Option<Duration>> {
        self.inner.linger()
    }

    /// Enables or disables Nagle's algorithm (`true`: send small writes at once); kept by the
    /// stream [`connect`](Self::connect) returns.
    pub fn set_nodelay(&self, nodelay: bool) -> io::Result<()> {
        self.inner.set_tcp_nodelay(nodelay)
    }

    /// Whether Nagle's algorithm is disabled.
    pub fn nodelay(&self) -> io::Result<bool> {
        self.inner.tcp_nodelay()
    }

    /// The address the socket is bound to (the unspecified address and port 0 before
    /// [`bind`](Self::bind)).
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        socket_addr(self.inner.local_addr()?)
    }

    /// Takes the socket's pending error, if any.
    pub fn take_error(&self) -> io::Result<Option<io::Error>> {
        self.inner.take_error()
    }

    /// Binds the socket to `addr` (port 0: the kernel picks a free port).
    ///
    /// # Errors
    ///
    /// The OS error of `bind`: `AddrInUse` (unless the address may be reused),
    /// `AddrNotAvailable`, `PermissionDenied` for a privileged port, `InvalidInput` for an
    /// address of the other family.
    pub fn bind(&self, addr: SocketAddr) -> io::Result<()> {
        self.inner.bind(&SockAddr::from(addr))
    }

    /// Connects to `addr`, consuming the socket; the options set so far stay on the stream.
    ///
    /// # Errors
    ///
    /// The OS error of the attempt (`ConnectionRefused`, ...), or an error outside a runtime.
    pub async fn connect(self, addr: SocketAddr) -> io::Result<TcpStream> {
        match self.inner.connect(&SockAddr::from(addr)) {
            Ok(()) => {}
            // The attempt goes on in the background; writable readiness says when it ends.
            #[cfg(unix)]
            Err(e) if e.raw_os_error() == Some(libc::EINPROGRESS) => {}
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
        let stream = std::net::TcpStream::from(self.inner);
        let stream = TcpStream::from_mio(mio::net::TcpStream::from_std(stream))?;
        stream.finish_connect().await?;
        Ok(stream)
    }

    /// Listens for connections with room for `backlog` connections not accepted yet (the
    /// kernel caps it at `net.core.somaxconn`), consuming the socket.
    ///
    /// # Errors
    ///
    /// The OS error of `listen` (`AddrInUse` when an unbound socket's automatic port clashes),
    /// or an error outside a runtime.
    pub fn listen(self, backlog: u32) -> io::Result<TcpListener> {
        let backlog = i32::try_from(backlog).unwrap_or(i32::MAX);
        self.inner.listen(backlog)?;
        TcpListener::from_std(std::net::TcpListener::from(self.inner))
    }
}

/// A buffer size as `u32` (the kernel's values fit; saturate rather than wrap if not).
fn saturate(size: usize) -> u32 {
    u32::try_from(size).unwrap_or(u32::MAX)
}

fn socket_addr(addr: SockAddr) -> io::Result<SocketAddr> {
    addr.as_socket().ok_or_else(|| {
        io::Error::new(
            io::ErrorKind::InvalidData,
            "the socket's address is not an IP address",
        )
    })
}

#[cfg(unix)]
impl std::os::fd::AsRawFd for TcpSocket {
    fn as_raw_fd(&self) -> std::os::fd::RawFd {
        self.inner.as_raw_fd()
    }
}

#[cfg(unix)]
impl std::os::fd::AsFd for TcpSocket {
    fn as_fd(&self) -> std::os::fd::BorrowedFd<'_> {
        self.inner.as_fd()
    }
}

impl fmt::Debug for TcpSocket {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TcpSocket")
            .field("local_addr", &self.local_addr().ok())
            .finish()
    }
}
