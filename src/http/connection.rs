//! One served connection: protocol detection under the header-read timeout, then hyper's
//! HTTP/1.1 or HTTP/2 connection, shut down gracefully when the server asks.

use super::prefixed::{Prefixed, H2_PREFACE};
use super::watch::Member;
use super::{MkExecutor, MkTimer};
use futures_io::AsyncRead;
use http::{Request, Response};
use http_body::Body;
use hyper::body::Incoming;
use hyper::server::conn::{http1, http2};
use memkit_async_runtime::net::TcpStream;
use memkit_async_runtime::time;
use std::future::{poll_fn, Future};
use std::pin::{pin, Pin};
use std::task::Poll;
use std::time::Duration;

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// Which protocols a server speaks, and hyper's settings for each.
pub(crate) struct Protocols {
    pub(crate) h1: Option<http1::Builder>,
    pub(crate) h2: Option<http2::Builder<MkExecutor>>,
    pub(crate) header_read_timeout: Duration,
}

impl Protocols {
    pub(crate) fn new(header_read_timeout: Duration, h1_max_buf: Option<usize>) -> Protocols {
        let mut h1 = http1::Builder::new();
        h1.timer(MkTimer::new())
            .keep_alive(true)
            .header_read_timeout(header_read_timeout);
        if let Some(max) = h1_max_buf {
            h1.max_buf_size(max);
        }
        let mut h2 = http2::Builder::new(MkExecutor::new());
        h2.timer(MkTimer::new());
        Protocols {
            h1: Some(h1),
            h2: Some(h2),
            header_read_timeout,
        }
    }
}

/// Serves one accepted connection until the client leaves, an error ends it, or a graceful
/// shutdown has let its in-flight requests finish.
pub(crate) async fn serve_connection<S, B>(
    stream: TcpStream,
    service: S,
    protocols: &Protocols,
    mut member: Member,
) where
    S: hyper::service::Service<Request<Incoming>, Response = Response<B>> + Send + 'static,
    S::Future: Send + 'static,
    S::Error: Into<BoxError>,
    B: Body + Send + 'static,
    B::Data: Send,
    B::Error: Into<BoxError>,
{
    // Responses are written whole; waiting for more to coalesce only adds latency.
    let _ = stream.set_nodelay(true);
    let (h1, h2) = match (&protocols.h1, &protocols.h2) {
        (Some(h1), None) => {
            let io = Prefixed::new([0; 24], 0, stream);
            let conn = h1.serve_connection(io, service).with_upgrades();
            return drive(conn, |c| c.graceful_shutdown(), member).await;
        }
        (None, Some(h2)) => {
            let io = Prefixed::new([0; 24], 0, stream);
            let conn = h2.serve_connection(io, service);
            return drive(conn, |c| c.graceful_shutdown(), member).await;
        }
        (Some(h1), Some(h2)) => (h1, h2),
        (None, None) => return,
    };
    let Some((prefix, len)) =
        read_preface(&stream, protocols.header_read_timeout, &mut member).await
    else {
        return;
    };
    let io = Prefixed::new(prefix, len, stream);
    if prefix[..len] == H2_PREFACE[..] {
        let conn = h2.serve_connection(io, service);
        drive(conn, |c| c.graceful_shutdown(), member).await;
    } else {
        let conn = h1.serve_connection(io, service).with_upgrades();
        drive(conn, |c| c.graceful_shutdown(), member).await;
    }
}

/// Reads until the first bytes tell the HTTP/2 preface from anything else. `None` if the
/// client closes, fails, stays silent past `timeout`, or the server shuts down first.
async fn read_preface(
    stream: &TcpStream,
    timeout: Duration,
    member: &mut Member,
) -> Option<([u8; 24], usize)> {
    let mut buf = [0u8; 24];
    let mut len = 0;
    let mut deadline = time::sleep(timeout);
    let decided = poll_fn(|cx| {
        if member.poll_fired(cx) {
            return Poll::Ready(false);
        }
        loop {
            match Pin::new(&mut &*stream).poll_read(cx, &mut buf[len..]) {
                Poll::Ready(Ok(0)) | Poll::Ready(Err(_)) => return Poll::Ready(false),
                Poll::Ready(Ok(n)) => {
                    let start = len;
                    len += n;
                    if len == buf.len() || buf[start..len] != H2_PREFACE[start..len] {
                        return Poll::Ready(true);
                    }
                }
                Poll::Pending => break,
            }
        }
        match Pin::new(&mut deadline).poll(cx) {
            Poll::Ready(()) => Poll::Ready(false),
            Poll::Pending => Poll::Pending,
        }
    })
    .await;
    decided.then_some((buf, len))
}

/// Polls `conn` to its end, starting its graceful shutdown once the server asks for one.
async fn drive<C: Future>(conn: C, shutdown: impl FnOnce(Pin<&mut C>), mut member: Member) {
    let mut conn = pin!(conn);
    let mut shutdown = Some(shutdown);
    poll_fn(|cx| {
        if shutdown.is_some() && member.poll_fired(cx) {
            if let Some(start) = shutdown.take() {
                start(conn.as_mut());
            }
        }
        // A connection error is the client's (reset, malformed request, timeout): nobody
        // to report it to but the client, whom hyper has answered already where it could.
        conn.as_mut().poll(cx).map(drop)
    })
    .await;
    drop(member);
}
