//! `TcpStream`: a TCP connection.
//!
//! Unsafe code: only `poll_read_uninit` (feature `hyper`), which lets `recv` write into
//! uninitialized memory; its invariant is that a socket read never reads its buffer.

use super::{each_addr, OwnedReadHalf, OwnedWriteHalf};
use crate::io::{Direction, Interest, PollEvented, Ready};
use futures_io::{AsyncRead, AsyncWrite};
use std::fmt;
use std::future::poll_fn;
use std::io::{self, IoSlice, IoSliceMut, Read, Write};
use std::net::{Shutdown, SocketAddr, ToSocketAddrs};
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

/// A TCP connection.
///
/// Reads and writes go through `futures_io::{AsyncRead, AsyncWrite}` (implemented for
/// `TcpStream` and `&TcpStream`, so one task can read and write at once), or the `try_*` and
/// readiness methods. [`into_split`](TcpStream::into_split) gives halves that can move to
/// different tasks.
pub struct TcpStream {
    io: PollEvented<mio::net::TcpStream>,
}

impl TcpStream {
    /// Connects to `addr` (each resolved address in turn until one accepts).
    ///
    /// # Errors
    ///
    /// The OS error of the last address tried (`ConnectionRefused`, ...), or an error outside a
    /// runtime.
    pub async fn connect<A: ToSocketAddrs>(addr: A) -> io::Result<TcpStream> {
        let addrs: Vec<SocketAddr> = addr.to_socket_addrs()?.collect();
        let mut last = None;
        for a in addrs {
            match TcpStream::connect_addr(a).await {
                Ok(s) => return Ok(s),
                Err(e) => last = Some(e),
            }
        }
        Err(last.unwrap_or_else(|| {
            io::Error::new(
                io::ErrorKind::InvalidInput,
                "the address resolved to no socket address",
            )
        }))
    }

    async fn connect_addr(addr: SocketAddr) -> io::Result<TcpStream> {
        let stream = TcpStream::from_mio(each_addr(addr, mio::net::TcpStream::connect)?)?;
        stream.finish_connect().await?;
        Ok(stream)
    }

    /// Waits for a non-blocking connect started on this stream's socket to end.
    pub(crate) async fn finish_connect(&self) -> io::Result<()> {
        // Writable means the connection attempt ended; the socket error says how. A writable
        // event with no error and no peer yet is spurious: wait for the next.
        let mut wait = self.io.wait(Direction::Write);
        poll_fn(|cx| {
            wait.poll_io(cx, |s| {
                if let Some(e) = s.take_error()? {
                    return Err(e);
                }
                match s.peer_addr() {
                    Ok(_) => Ok(()),
                    Err(e) if e.kind() == io::ErrorKind::NotConnected => {
                        Err(io::ErrorKind::WouldBlock.into())
                    }
                    Err(e) => Err(e),
                }
            })
        })
        .await
    }

    pub(crate) fn from_mio(stream: mio::net::TcpStream) -> io::Result<TcpStream> {
        Ok(TcpStream {
            io: PollEvented::new(stream)?,
        })
    }

    /// Wraps a connected std stream (set to non-blocking here).
    ///
    /// # Errors
    ///
    /// If the socket cannot be made non-blocking, or outside a runtime.
    pub fn from_std(stream: std::net::TcpStream) -> io::Result<TcpStream> {
        stream.set_nonblocking(true)?;
        TcpStream::from_mio(mio::net::TcpStream::from_std(stream))
    }

    /// Splits the stream into a read half and a write half that can move to different tasks.
    /// Dropping the write half shuts down the write direction (the peer reads end of stream).
    pub fn into_split(self) -> (OwnedReadHalf, OwnedWriteHalf) {
        super::split::split(self)
    }

    /// Shuts down the read, write or both directions. `Shutdown::Write` is a half-close: the
    /// peer reads end of stream, and this side can still read what the peer sends.
    pub fn shutdown(&self, how: Shutdown) -> io::Result<()> {
        self.io.get_ref().shutdown(how)
    }

    /// The remote address.
    pub fn peer_addr(&self) -> io::Result<SocketAddr> {
        self.io.get_ref().peer_addr()
    }

    /// The local address.
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.io.get_ref().local_addr()
    }

    /// Enables or disables Nagle's algorithm (`true`: send small writes at once).
    pub fn set_nodelay(&self, nodelay: bool) -> io::Result<()> {
        self.io.get_ref().set_nodelay(nodelay)
    }

    /// Whether Nagle's algorithm is disabled.
    pub fn nodelay(&self) -> io::Result<bool> {
        self.io.get_ref().nodelay()
    }

    /// Sets `SO_LINGER`: with `Some(d)`, dropping the stream blocks the dropping thread until
    /// unsent data is sent or `d` passes, and `Some(Duration::ZERO)` resets the connection
    /// (the peer sees `ConnectionReset`) instead of closing it gracefully. `None` (the
    /// default) closes in the background.
    ///
    /// A non-zero linger blocks the worker that drops the stream; prefer `None` or zero.
    pub fn set_linger(&self, linger: Option<Duration>) -> io::Result<()> {
        socket2::SockRef::from(self.io.get_ref()).set_linger(linger)
    }

    /// The `SO_LINGER` setting; see [`set_linger`](Self::set_linger).
    pub fn linger(&self) -> io::Result<Option<Duration>> {
        socket2::SockRef::from(self.io.get_ref()).linger()
    }

    /// Sets the IP time-to-live of the packets this stream sends.
    pub fn set_ttl(&self, ttl: u32) -> io::Result<()> {
        self.io.get_ref().set_ttl(ttl)
    }

    /// The IP time-to-live of the packets this stream sends.
    pub fn ttl(&self) -> io::Result<u32> {
        self.io.get_ref().ttl()
    }

    /// Takes the socket's pending error, if any.
    pub fn take_error(&self) -> io::Result<Option<io::Error>> {
        self.io.get_ref().take_error()
    }

    /// Waits until the stream may make progress in a direction of `interest`; returns the
    /// readiness seen (in those directions only).
    ///
    /// Readiness is a hint: the `try_*` call that follows may still report `WouldBlock`
    /// (another task got there first, or the event was stale), which clears the readiness it
    /// saw, so the next `ready` waits for a new event. Several tasks may wait at once; each is
    /// woken. Dropping the future leaves nothing registered.
    ///
    /// ```
    /// use futures::io::AsyncWriteExt;
    /// use memkit_async_runtime::io::Interest;
    /// use memkit_async_runtime::net::{TcpListener, TcpStream};
    /// # let rt = memkit_async_runtime::Runtime::new().unwrap();
    /// # rt.block_on(async {
    /// let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    /// let client = TcpStream::connect(listener.local_addr().unwrap()).await.unwrap();
    /// let (mut server, _) = listener.accept().await.unwrap();
    /// server.write_all(b"ping").await.unwrap();
    /// let mut got = Vec::new();
    /// while got.len() < 4 {
    ///     let ready = client.ready(Interest::READABLE | Interest::WRITABLE).await.unwrap();
    ///     if ready.is_readable() {
    ///         let mut buf = [0u8; 16];
    ///         match client.try_read(&mut buf) {
    ///             Ok(n) => got.extend_from_slice(&buf[..n]),
    ///             Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => continue,
    ///             Err(e) => panic!("{e}"),
    ///         }
    ///     } else {
    ///         // Only writable: wait for the data alone.
    ///         client.readable().await.unwrap();
    ///     }
    /// }
    /// assert_eq!(got, b"ping");
    /// # });
    /// ```
    pub async fn ready(&self, interest: Interest) -> io::Result<Ready> {
        self.io.ready(interest).await
    }

    /// Waits until the stream may be readable (data, end of stream or an error).
    pub async fn readable(&self) -> io::Result<()> {
        let mut wait = self.io.wait(Direction::Read);
        poll_fn(|cx| wait.poll_ready(cx)).await
    }

    /// Waits until the stream may be writable.
    pub async fn writable(&self) -> io::Result<()> {
        let mut wait = self.io.wait(Direction::Write);
        poll_fn(|cx| wait.poll_ready(cx)).await
    }

    /// Polls for read readiness. Like `AsyncRead::poll_read`, it keeps one waker per direction:
    /// only the task of the latest poll is woken. [`readable`](Self::readable) has no such
    /// limit.
    pub fn poll_read_ready(&self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.io.poll_ready(cx, Direction::Read)
    }

    /// Polls for write readiness; see [`poll_read_ready`](Self::poll_read_ready).
    pub fn poll_write_ready(&self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.io.poll_ready(cx, Direction::Write)
    }

    /// Reads without waiting: `WouldBlock` if no data is available now.
    pub fn try_read(&self, buf: &mut [u8]) -> io::Result<usize> {
        self.io.try_io(Direction::Read, |s| (&*s).read(buf))
    }

    /// Writes without waiting: `WouldBlock` if the send buffer is full.
    pub fn try_write(&self, buf: &[u8]) -> io::Result<usize> {
        self.io.try_io(Direction::Write, |s| (&*s).write(buf))
    }

    /// Reads into several buffers in order without waiting (one `readv`): `WouldBlock` if no
    /// data is available now.
    pub fn try_read_vectored(&self, bufs: &mut [IoSliceMut<'_>]) -> io::Result<usize> {
        self.io
            .try_io(Direction::Read, |s| (&*s).read_vectored(bufs))
    }

    /// Writes several buffers in order without waiting (one `writev`): `WouldBlock` if the
    /// send buffer is full.
    pub fn try_write_vectored(&self, bufs: &[IoSlice<'_>]) -> io::Result<usize> {
        self.io
            .try_io(Direction::Write, |s| (&*s).write_vectored(bufs))
    }

    pub(crate) fn poll_read_priv(
        &self,
        cx: &mut Context<'_>,
        buf: &mut [u8],
    ) -> Poll<io::Result<usize>> {
        self.io
            .poll_transfer(cx, Direction::Read, buf.len().min(MAX_RW), |s| {
                (&*s).read(buf)
            })
    }

    /// Reads into memory that may be uninitialized, without zeroing it first.
    #[cfg(feature = "hyper")]
    pub(crate) fn poll_read_uninit(
        &self,
        cx: &mut Context<'_>,
        buf: &mut [std::mem::MaybeUninit<u8>],
    ) -> Poll<io::Result<usize>> {
        let len = buf.len().min(MAX_RW);
        // SAFETY: `recv` only writes into the buffer, never reads it, and `read` on a socket is
        // `recv`; the bytes it reports as read are initialized by it, and only those are exposed
        // by the caller. No `&[u8]` view of the unwritten part is ever read.
        let buf = unsafe { &mut *(buf as *mut [std::mem::MaybeUninit<u8>] as *mut [u8]) };
        self.io
            .poll_transfer(cx, Direction::Read, len, |s| (&*s).read(buf))
    }

    pub(crate) fn poll_write_priv(
        &self,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        self.io
            .poll_transfer(cx, Direction::Write, buf.len().min(MAX_RW), |s| {
                (&*s).write(buf)
            })
    }

    pub(crate) fn poll_write_vectored_priv(
        &self,
        cx: &mut Context<'_>,
        bufs: &[IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let len = vectored_len(bufs);
        self.io
            .poll_transfer(cx, Direction::Write, len, |s| (&*s).write_vectored(bufs))
    }

    /// The write-side close of `AsyncWrite::poll_close`: a half-close. A peer that is already
    /// gone is not an error here: there is nothing left to close.
    pub(crate) fn close_write(&self) -> io::Result<()> {
        match self.shutdown(Shutdown::Write) {
            Err(e) if e.kind() == io::ErrorKind::NotConnected => Ok(()),
            res => res,
        }
    }
}

/// The most one `read`/`write` moves on Linux, whatever the buffer's size.
const MAX_RW: usize = 0x7fff_f000;

/// The most one `writev` can move: the kernel takes at most `IOV_MAX` (1024 on Linux, the
/// smallest common value) slices and 2 GiB less a page per call. A shorter write than this
/// means the send buffer is full; a shorter one than the slices' total may only mean a cap.
fn vectored_len(bufs: &[IoSlice<'_>]) -> usize {
    const IOV_MAX: usize = 1024;
    bufs.iter()
        .take(IOV_MAX)
        .map(|b| b.len())
        .sum::<usize>()
        .min(MAX_RW)
}

/// `futures-io` for the stream and for `&TcpStream` (reads and writes need only `&self`).
macro_rules! futures_io {
    ($($t:ty),*) => {$(
        impl AsyncRead for $t {
            fn poll_read(
                self: Pin<&mut Self>,
                cx: &mut Context<'_>,
                buf: &mut [u8],
            ) -> Poll<io::Result<usize>> {
                self.poll_read_priv(cx, buf)
            }
        }

        impl AsyncWrite for $t {
            fn poll_write(
                self: Pin<&mut Self>,
                cx: &mut Context<'_>,
                buf: &[u8],
            ) -> Poll<io::Result<usize>> {
                self.poll_write_priv(cx, buf)
            }

            fn poll_write_vectored(
                self: Pin<&mut Self>,
                cx: &mut Context<'_>,
                bufs: &[IoSlice<'_>],
            ) -> Poll<io::Result<usize>> {
                self.poll_write_vectored_priv(cx, bufs)
            }

            fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
                // Writes go straight to the socket: nothing is buffered here.
                Poll::Ready(Ok(()))
            }

            fn poll_close(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
                Poll::Ready(self.close_write())
            }
        }
    )*};
}

futures_io!(TcpStream, &TcpStream);

#[cfg(unix)]
impl std::os::fd::AsRawFd for TcpStream {
    fn as_raw_fd(&self) -> std::os::fd::RawFd {
        self.io.get_ref().as_raw_fd()
    }
}

#[cfg(unix)]
impl std::os::fd::AsFd for TcpStream {
    fn as_fd(&self) -> std::os::fd::BorrowedFd<'_> {
        self.io.get_ref().as_fd()
    }
}

impl fmt::Debug for TcpStream {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TcpStream")
            .field("local_addr", &self.local_addr().ok())
            .field("peer_addr", &self.peer_addr().ok())
            .finish()
    }
}
