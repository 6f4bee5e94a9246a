//! Networking: TCP and UDP sockets driven by the runtime's reactor.
//!
//! [`TcpListener::bind`] and [`TcpStream::connect`] cover the common case; [`TcpSocket`] sets
//! options that must come before `bind`, `listen` or `connect` (address and port reuse,
//! buffer sizes, the listen backlog). Besides the async methods, the sockets have `ready`,
//! `readable` and `writable` to wait for readiness ([`Interest`](crate::io::Interest) in,
//! [`Ready`](crate::io::Ready) out) and non-blocking `try_*` methods to act on it.
//!
//! The sockets are non-blocking and registered with the `mio` reactor of the runtime they are
//! created in (creating one outside a runtime is an error). They implement
//! `futures_io::{AsyncRead, AsyncWrite}`, so the `futures` crate's extension traits
//! (`AsyncReadExt::read`, `AsyncWriteExt::write_all`, ...) work on them; with the `tokio`
//! feature, `TcpStream` and its owned halves also implement tokio's `AsyncRead`/`AsyncWrite`,
//! and with the `hyper` feature hyper's `hyper::rt::Read`/`Write` (reading straight into
//! hyper's buffer).
//!
//! Errors are reported, never hidden: a peer that resets the connection gives
//! `ConnectionReset`, writing to a peer that went away gives `BrokenPipe` or `ConnectionReset`
//! (never a signal), a read at end of stream gives `Ok(0)`. If the runtime shuts down while a
//! socket is still in use elsewhere, its pending and later waits fail with an error.
//!
//! ```
//! use futures::io::{AsyncReadExt, AsyncWriteExt};
//! use memkit_async_runtime::net::{TcpListener, TcpStream};
//! # let rt = memkit_async_runtime::Runtime::new().unwrap();
//! # rt.block_on(async {
//! let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
//! let addr = listener.local_addr().unwrap();
//! let server = memkit_async_runtime::spawn(async move {
//!     let (mut conn, _) = listener.accept().await.unwrap();
//!     let mut buf = [0u8; 5];
//!     conn.read_exact(&mut buf).await.unwrap();
//!     conn.write_all(&buf).await.unwrap();
//! });
//! let mut client = TcpStream::connect(addr).await.unwrap();
//! client.write_all(b"hello").await.unwrap();
//! let mut echo = [0u8; 5];
//! client.read_exact(&mut echo).await.unwrap();
//! assert_eq!(&echo, b"hello");
//! server.await.unwrap();
//! # });
//! ```

#[cfg(feature = "hyper")]
mod hyper_io;
mod split;
mod tcp_listener;
mod tcp_socket;
mod tcp_stream;
#[cfg(feature = "tokio")]
mod tokio_io;
mod udp;

pub use split::{OwnedReadHalf, OwnedWriteHalf, ReuniteError};
pub use tcp_listener::TcpListener;
pub use tcp_socket::TcpSocket;
pub use tcp_stream::TcpStream;
pub use udp::UdpSocket;

use std::io;
use std::net::{SocketAddr, ToSocketAddrs};

/// Resolves `addr` and runs `f` on each address until one succeeds.
fn each_addr<A: ToSocketAddrs, T>(
    addr: A,
    mut f: impl FnMut(SocketAddr) -> io::Result<T>,
) -> io::Result<T> {
    let mut last = None;
    for a in addr.to_socket_addrs()? {
        match f(a) {
            Ok(t) => return Ok(t),
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
