//! `serve`: an HTTP server on memkit's workers, one task per connection.

use super::admission::{Admit, AdmitConfig};
use super::connection::{serve_connection, Protocols};
use super::watch::Watch;
use bytes::Bytes;
use http::{Request, Response};
use http_body::Body;
use hyper::body::Incoming;
use hyper_util::service::TowerToHyperService;
use memkit_async_runtime::memory::{MkBackpressure, MkBudget};
use memkit_async_runtime::net::TcpListener;
use memkit_async_runtime::{task, time, Handle};
use std::fmt;
use std::future::{poll_fn, Future, IntoFuture};
use std::io;
use std::pin::{pin, Pin};
use std::sync::Arc;
use std::task::Poll;
use std::time::Duration;

type BoxError = Box<dyn std::error::Error + Send + Sync>;
/// An HTTP/1 connection's largest read buffer by default: hyper's own default (about
/// 400 KiB) would let a thousand connections streaming bodies hold 400 MiB outside any budget.
const DEFAULT_H1_MAX_BUF: usize = 64 << 10;
type Signal = Pin<Box<dyn Future<Output = ()> + Send>>;

/// Serves HTTP/1.1 (with keep-alive) and HTTP/2 on `listener` with a
/// [tower](https://docs.rs/tower) service: an axum `Router`, or any
/// `tower::Service<Request<Incoming>>` that is `Clone` (one clone per connection).
///
/// Each connection is a memkit task on the runtime's workers; hyper's timers run on the
/// runtime's timer wheel and its HTTP/2 streams are memkit tasks too. Await the returned
/// [`Serve`] to run the server; configure it first with its methods.
///
/// ```
/// use axum::{routing::get, Router};
///
/// #[memkit_async::main(worker_threads = 2, memory_limit = 64 << 20)]
/// async fn main() {
///     let listener = memkit_async::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
///     let app = Router::new().route("/", get(|| async { "hello from memkit" }));
///     let stop = memkit_async::time::sleep(std::time::Duration::from_millis(10));
///     memkit_async::http::serve(listener, app)
///         .per_connection_budget(1 << 20, memkit_async::MkBackpressure::Fail)
///         .with_graceful_shutdown(stop)
///         .await
///         .unwrap();
/// }
/// # main();
/// ```
pub fn serve<T, B>(listener: TcpListener, service: T) -> Serve<TowerToHyperService<T>>
where
    T: tower_service::Service<Request<Incoming>, Response = Response<B>> + Clone,
{
    Serve::new(listener, TowerToHyperService::new(service))
}

/// [`serve`] for a hyper service (`hyper::service::Service`, such as `service_fn`), cloned
/// for each connection.
///
/// ```
/// use http_body_util::Full;
/// use hyper::{body::Bytes, service::service_fn, Response};
///
/// # let rt = memkit_async::Runtime::new().unwrap();
/// # rt.block_on(async {
/// let listener = memkit_async::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
/// let hello = service_fn(|_req| async {
///     Ok::<_, std::convert::Infallible>(Response::new(Full::new(Bytes::from("hello"))))
/// });
/// let stop = memkit_async::time::sleep(std::time::Duration::from_millis(10));
/// memkit_async::http::serve_hyper(listener, hello).with_graceful_shutdown(stop).await.unwrap();
/// # });
/// ```
pub fn serve_hyper<S>(listener: TcpListener, service: S) -> Serve<S> {
    Serve::new(listener, service)
}

/// A server being configured; await it to run it (see [`serve`]).
///
/// It runs until the [graceful-shutdown](Self::with_graceful_shutdown) future completes, then
/// stops accepting, lets every connection finish the requests it is serving (idle keep-alive
/// connections close at once, HTTP/2 clients get a GOAWAY), and resolves once all have ended.
/// Without one it runs until the runtime shuts down.
#[must_use = "a server does nothing until awaited"]
pub struct Serve<S> {
    listener: TcpListener,
    service: S,
    connection_budget: Option<(usize, MkBackpressure)>,
    parent_budget: Option<MkBudget>,
    header_read_timeout: Duration,
    admit: AdmitConfig,
    h1_max_buf: Option<usize>,
    http1: bool,
    http2: bool,
    signal: Option<Signal>,
}

impl<S> Serve<S> {
    fn new(listener: TcpListener, service: S) -> Serve<S> {
        Serve {
            listener,
            service,
            connection_budget: None,
            parent_budget: None,
            header_read_timeout: Duration::from_secs(30),
            admit: AdmitConfig {
                unknown_length_reserve: 256 << 10,
                max_drain: 64 << 20,
            },
            h1_max_buf: Some(DEFAULT_H1_MAX_BUF),
            http1: true,
            http2: true,
            signal: None,
        }
    }

    /// Gives each connection a budget of its own: `bytes`, charged into the
    /// [parent budget](Self::memory_budget), with `policy` for the task's allocations. Request
    /// bodies are reserved on it: a body that does not fit (in it or in the runtime's memory
    /// limit) is answered `503 Service Unavailable`, one larger than `bytes` itself
    /// `413 Payload Too Large`.
    ///
    /// Without it, connections are charged to the parent budget directly.
    pub fn per_connection_budget(mut self, bytes: usize, policy: MkBackpressure) -> Self {
        self.connection_budget = Some((bytes, policy));
        self
    }

    /// The budget connections are charged into; by default the runtime's memory limit
    /// ([`Handle::memory_budget`]).
    pub fn memory_budget(mut self, budget: &MkBudget) -> Self {
        self.parent_budget = Some(budget.clone());
        self
    }

    /// How long a client may take to send a request's headers (and, on a new connection, its
    /// first bytes) before the connection is closed. 30 seconds by default. The clock starts
    /// when the server waits for a request, so it also closes keep-alive connections left
    /// idle that long.
    pub fn header_read_timeout(mut self, timeout: Duration) -> Self {
        self.header_read_timeout = timeout;
        self
    }

    /// Bytes reserved for a request body sent without a `Content-Length` (chunked, or
    /// HTTP/2 without the header). 256 KiB by default.
    pub fn unknown_length_reserve(mut self, bytes: usize) -> Self {
        self.admit.unknown_length_reserve = bytes;
        self
    }

    /// How much of a refused request's body is read (and dropped) so the client receives the
    /// refusal instead of a connection reset. 64 MiB by default; past it the connection closes
    /// after the response.
    pub fn max_refused_body_drain(mut self, bytes: u64) -> Self {
        self.admit.max_drain = bytes;
        self
    }

    /// The largest read buffer of an HTTP/1 connection (hyper's `max_buf_size`, at least
    /// 8 KiB; 64 KiB by default). It bounds the memory a connection holds outside its budget
    /// while it receives a body, and the size of a request's headers.
    pub fn http1_max_buf_size(mut self, bytes: usize) -> Self {
        self.h1_max_buf = Some(bytes.max(8192));
        self
    }

    /// Speaks HTTP/1.1 only (no HTTP/2 detection).
    pub fn http1_only(mut self) -> Self {
        self.http1 = true;
        self.http2 = false;
        self
    }

    /// Speaks HTTP/2 only (prior knowledge).
    pub fn http2_only(mut self) -> Self {
        self.http1 = false;
        self.http2 = true;
        self
    }

    /// Stops the server gracefully once `signal` completes (for example
    /// [`signal::ctrl_c`](crate::signal::ctrl_c)).
    pub fn with_graceful_shutdown<F>(mut self, signal: F) -> Self
    where
        F: Future<Output = ()> + Send + 'static,
    {
        self.signal = Some(Box::pin(signal));
        self
    }
}

impl<S, B> Serve<S>
where
    S: hyper::service::Service<Request<Incoming>, Response = Response<B>>
        + Clone
        + Send
        + Sync
        + 'static,
    S::Future: Send + 'static,
    S::Error: Into<BoxError>,
    B: Body<Data = Bytes> + Send + 'static,
    B::Error: Into<BoxError>,
{
    async fn run(self) -> io::Result<()> {
        let handle = Handle::try_current().map_err(|e| {
            io::Error::other(format!(
                "memkit_async::http::serve must run in a runtime: {e}"
            ))
        })?;
        let parent = self
            .parent_budget
            .unwrap_or_else(|| handle.memory_budget().clone());
        let mut protocols = Protocols::new(self.header_read_timeout, self.h1_max_buf);
        if !self.http1 {
            protocols.h1 = None;
        }
        if !self.http2 {
            protocols.h2 = None;
        }
        let protocols = Arc::new(protocols);
        let admit = Arc::new(self.admit);
        let watch = Watch::new();
        let listener = self.listener;
        let mut signal = self
            .signal
            .unwrap_or_else(|| Box::pin(std::future::pending()));
        loop {
            let accept = pin!(listener.accept());
            let mut accept = accept;
            let accepted = poll_fn(|cx| {
                if signal.as_mut().poll(cx).is_ready() {
                    return Poll::Ready(None);
                }
                accept.as_mut().poll(cx).map(Some)
            })
            .await;
            let (stream, _peer) = match accepted {
                None => break,
                Some(Ok(conn)) => conn,
                Some(Err(e)) if is_per_connection(&e) => continue,
                Some(Err(_)) => {
                    // Out of file descriptors or memory: accepting again at once would spin.
                    time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            };
            let budget = self
                .connection_budget
                .map(|(bytes, policy)| parent.child(bytes).with_policy(policy));
            let service = Admit {
                inner: self.service.clone(),
                budget: budget.clone().unwrap_or_else(|| parent.clone()),
                config: admit.clone(),
            };
            let protocols = protocols.clone();
            let member = watch.member();
            let connection = async move {
                serve_connection(stream, service, &protocols, member).await;
            };
            let mut builder = task::Builder::new().name("memkit-http-connection");
            if let Some(budget) = budget {
                builder = builder.budget(budget);
            }
            // Without a reservation, spawning cannot fail.
            drop(builder.spawn_on(connection, &handle));
        }
        drop(listener);
        watch.fire();
        poll_fn(|cx| watch.poll_drained(cx)).await;
        Ok(())
    }
}

/// Errors of one connection attempt, not of the listener: accept the next at once.
fn is_per_connection(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::ConnectionAborted
            | io::ErrorKind::ConnectionReset
            | io::ErrorKind::ConnectionRefused
            | io::ErrorKind::Interrupted
    )
}

impl<S, B> IntoFuture for Serve<S>
where
    S: hyper::service::Service<Request<Incoming>, Response = Response<B>>
        + Clone
        + Send
        + Sync
        + 'static,
    S::Future: Send + 'static,
    S::Error: Into<BoxError>,
    B: Body<Data = Bytes> + Send + 'static,
    B::Error: Into<BoxError>,
{
    type Output = io::Result<()>;
    type IntoFuture = Pin<Box<dyn Future<Output = io::Result<()>> + Send>>;

    fn into_future(self) -> Self::IntoFuture {
        Box::pin(self.run())
    }
}

impl<S> fmt::Debug for Serve<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Serve")
            .field("listener", &self.listener)
            .field("connection_budget", &self.connection_budget)
            .field("header_read_timeout", &self.header_read_timeout)
            .field("http1", &self.http1)
            .field("http2", &self.http2)
            .finish_non_exhaustive()
    }
}
