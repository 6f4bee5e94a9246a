//! Feature `hyper`: hyper's runtime I/O traits (`hyper::rt::Read`/`Write`) for the TCP stream
//! and its owned halves, so hyper's connections run on memkit sockets directly.
//!
//! Reads go from the socket straight into hyper's buffer, uninitialized part included: no
//! intermediate buffer, no zeroing. Writes hand hyper's buffers (vectored, when hyper gathers
//! a head and a body chunk) to the socket as they are.
//!
//! Unsafe code: `read_into` advances hyper's cursor by the count `recv` reported, which is the
//! number of bytes it initialized.

use super::{OwnedReadHalf, OwnedWriteHalf, TcpStream};
use hyper::rt::{Read, ReadBufCursor, Write};
use std::io::{self, IoSlice};
use std::pin::Pin;
use std::task::{ready, Context, Poll};

/// Reads from `stream` into the unfilled part of `buf`.
fn read_into(
    stream: &TcpStream,
    cx: &mut Context<'_>,
    mut buf: ReadBufCursor<'_>,
) -> Poll<io::Result<()>> {
    // SAFETY: the slice is only written by `recv`, never de-initialized.
    let unfilled = unsafe { buf.as_mut() };
    let n = ready!(stream.poll_read_uninit(cx, unfilled))?;
    // SAFETY: `recv` wrote (so initialized) the first `n` bytes of the unfilled part.
    unsafe { buf.advance(n) };
    Poll::Ready(Ok(()))
}

macro_rules! hyper_read {
    ($($t:ty => $stream:expr),*) => {$(
        impl Read for $t {
            fn poll_read(
                self: Pin<&mut Self>,
                cx: &mut Context<'_>,
                buf: ReadBufCursor<'_>,
            ) -> Poll<io::Result<()>> {
                let this: &$t = self.get_mut();
                read_into($stream(this), cx, buf)
            }
        }
    )*};
}

macro_rules! hyper_write {
    ($($t:ty => $stream:expr),*) => {$(
        impl Write for $t {
            fn poll_write(
                self: Pin<&mut Self>,
                cx: &mut Context<'_>,
                buf: &[u8],
            ) -> Poll<io::Result<usize>> {
                let this: &$t = self.get_mut();
                $stream(this).poll_write_priv(cx, buf)
            }

            fn poll_write_vectored(
                self: Pin<&mut Self>,
                cx: &mut Context<'_>,
                bufs: &[IoSlice<'_>],
            ) -> Poll<io::Result<usize>> {
                let this: &$t = self.get_mut();
                $stream(this).poll_write_vectored_priv(cx, bufs)
            }

            fn is_write_vectored(&self) -> bool {
                true
            }

            fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
                // Writes go straight to the socket: nothing is buffered here.
                Poll::Ready(Ok(()))
            }

            fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
                futures_io::AsyncWrite::poll_close(self, cx)
            }
        }
    )*};
}

fn stream(s: &TcpStream) -> &TcpStream {
    s
}

hyper_read!(TcpStream => stream, OwnedReadHalf => OwnedReadHalf::stream);
hyper_write!(TcpStream => stream, OwnedWriteHalf => OwnedWriteHalf::stream);
