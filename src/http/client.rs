//! The client side: a hyper-util connector over memkit's `TcpStream`, so hyper-util's
//! `Client` runs on memkit's workers, with memkit's executor and timer.

use super::{MkExecutor, MkTimer};
use http::Uri;
use hyper_util::client::legacy::connect::{Connected, Connection};
use memkit_async_runtime::net::TcpStream;
use memkit_async_runtime::time;
use std::fmt;
use std::future::Future;
use std::io::{self, IoSlice};
use std::net::{IpAddr, SocketAddr, ToSocketAddrs};
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

/// A hyper-util [`Client`](hyper_util::client::legacy::Client) builder set up for memkit:
/// connections and pool tasks spawned with [`MkExecutor`], timeouts on [`MkTimer`].
///
/// ```
/// use http_body_util::{BodyExt, Empty};
/// use hyper::body::Bytes;
/// use memkit_async::http::{client_builder, MkConnector};
///
/// # let rt = memkit_async::Runtime::new().unwrap();
/// # rt.block_on(async {
/// # let listener = memkit_async::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
/// # let addr = listener.local_addr().unwrap();
/// # let app = axum::Router::new().route("/", axum::routing::get(|| async { "hi" }));
/// # memkit_async::spawn(memkit_async::http::serve(listener, app).into_future());
/// let client = client_builder().build::<_, Empty<Bytes>>(MkConnector::new());
/// let uri = format!("http://{addr}/").parse().unwrap();
/// let response = client.get(uri).await.unwrap();
/// let body = response.into_body().collect().await.unwrap().to_bytes();
/// assert_eq!(&body[..], b"hi");
/// # });
/// # use std::future::IntoFuture;
/// ```
pub fn client_builder() -> hyper_util::client::legacy::Builder {
    let mut builder = hyper_util::client::legacy::Client::builder(MkExecutor::new());
    builder.timer(MkTimer::new()).pool_timer(MkTimer::new());
    builder
}

/// Connects to `http://` URIs with memkit's [`TcpStream`] (for `https://`, wrap it in a TLS
/// connector that accepts any `hyper::rt::Read + Write` connection).
///
/// Host names are resolved on the runtime's blocking pool; IP addresses directly.
#[derive(Clone, Debug)]
pub struct MkConnector {
    nodelay: bool,
    connect_timeout: Option<Duration>,
}

impl Default for MkConnector {
    fn default() -> MkConnector {
        MkConnector::new()
    }
}

impl MkConnector {
    /// A connector that sets `TCP_NODELAY` and has no connect timeout.
    pub fn new() -> MkConnector {
        MkConnector {
            nodelay: true,
            connect_timeout: None,
        }
    }

    /// Whether to set `TCP_NODELAY` on new connections (`true` by default).
    pub fn set_nodelay(&mut self, nodelay: bool) -> &mut Self {
        self.nodelay = nodelay;
        self
    }

    /// Gives up a connection attempt (resolution included) after `timeout`.
    pub fn set_connect_timeout(&mut self, timeout: Option<Duration>) -> &mut Self {
        self.connect_timeout = timeout;
        self
    }

    async fn connect(self, uri: Uri) -> io::Result<MkConnection> {
        let invalid =
            |what: &str| io::Error::new(io::ErrorKind::InvalidInput, format!("{what}: {uri}"));
        match uri.scheme_str() {
            Some("http") | None => {}
            Some(_) => {
                return Err(invalid(
                    "MkConnector connects plain `http://` URIs only (wrap it in a TLS connector \
                     for `https://`)",
                ))
            }
        }
        let host = uri
            .host()
            .ok_or_else(|| invalid("the URI has no host"))?
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_owned();
        let port = uri.port_u16().unwrap_or(80);
        let attempt = async move {
            let addrs: Vec<SocketAddr> = match host.parse::<IpAddr>() {
                Ok(ip) => vec![SocketAddr::new(ip, port)],
                Err(_) => memkit_async_runtime::spawn_blocking(move || {
                    (host.as_str(), port)
                        .to_socket_addrs()
                        .map(Iterator::collect)
                })
                .await
                .map_err(io::Error::other)??,
            };
            TcpStream::connect(&addrs[..]).await
        };
        let stream = match self.connect_timeout {
            Some(limit) => time::timeout(limit, attempt).await.map_err(|_| {
                io::Error::new(
                    io::ErrorKind::TimedOut,
                    format!("connecting to {uri} took longer than {limit:?}"),
                )
            })??,
            None => attempt.await?,
        };
        if self.nodelay {
            stream.set_nodelay(true)?;
        }
        Ok(MkConnection { stream })
    }
}

impl tower_service::Service<Uri> for MkConnector {
    type Response = MkConnection;
    type Error = io::Error;
    type Future = Pin<Box<dyn Future<Output = io::Result<MkConnection>> + Send>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, uri: Uri) -> Self::Future {
        Box::pin(self.clone().connect(uri))
    }
}

/// A client connection made by [`MkConnector`]: a memkit [`TcpStream`] as hyper's I/O.
pub struct MkConnection {
    stream: TcpStream,
}

impl MkConnection {
    /// The underlying stream.
    pub fn get_ref(&self) -> &TcpStream {
        &self.stream
    }

    /// The underlying stream, taken out.
    pub fn into_inner(self) -> TcpStream {
        self.stream
    }
}

impl fmt::Debug for MkConnection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("MkConnection").field(&self.stream).finish()
    }
}

impl Connection for MkConnection {
    fn connected(&self) -> Connected {
        Connected::new()
    }
}

impl hyper::rt::Read for MkConnection {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: hyper::rt::ReadBufCursor<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_read(cx, buf)
    }
}

impl hyper::rt::Write for MkConnection {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.stream).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.stream).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        hyper::rt::Write::is_write_vectored(&self.stream)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_shutdown(cx)
    }
}
