//! `http::serve` on memkit, driven by hyper's client on memkit: keep-alive, chunked bodies,
//! HTTP/2, many connections, the header-read timeout, request admission and budgets, graceful
//! shutdown.
#![cfg(feature = "hyper")]

mod common;
#[path = "../examples/http_app/mod.rs"]
#[allow(dead_code)] // `env_or` serves the examples only
mod http_app;

use bytes::Bytes;
use common::{with_timeout, Counter, Gate};
use futures::io::{AsyncReadExt, AsyncWriteExt};
use http::{Request, Response, StatusCode, Version};
use http_body_util::{combinators::BoxBody, BodyExt, Empty, Full, StreamBody};
use hyper::body::{Frame, Incoming};
use memkit_async::http::{client_builder, serve_hyper, MkConnector};
use memkit_async::net::{TcpListener, TcpStream};
use memkit_async::time::{sleep, timeout};
use memkit_async::{MkAsyncBarrier, MkBackpressure, MkBudget, Runtime};
use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::{mpsc, Arc, Mutex};
use std::time::Duration;

type Body = BoxBody<Bytes, hyper::Error>;

/// What the test service saw.
#[derive(Default)]
struct Seen {
    /// Clones of the service: `serve` makes one per connection.
    connections: Counter,
    requests: Counter,
    /// The `transfer-encoding` of each request to `/echo`.
    encodings: Mutex<Vec<Option<String>>>,
    /// `/slow` requests that started, and the gate they wait at.
    slow_started: Counter,
    slow_gate: Gate,
    /// `/barrier` requests wait here until all of them are in.
    barrier: Mutex<Option<Arc<MkAsyncBarrier>>>,
    /// `/budget` reports the connection's budget, then how reading the body ended.
    budgets: Mutex<Option<mpsc::Sender<Result<MkBudget, String>>>>,
}

struct TestService(Arc<Seen>);

impl Clone for TestService {
    fn clone(&self) -> TestService {
        self.0.connections.inc();
        TestService(self.0.clone())
    }
}

fn full(text: impl Into<Bytes>) -> Body {
    Full::new(text.into()).map_err(|e| match e {}).boxed()
}

impl hyper::service::Service<Request<Incoming>> for TestService {
    type Response = Response<Body>;
    type Error = Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<Response<Body>, Infallible>> + Send>>;

    fn call(&self, req: Request<Incoming>) -> Self::Future {
        let seen = self.0.clone();
        seen.requests.inc();
        Box::pin(async move {
            let response = match req.uri().path() {
                "/echo" => {
                    let encoding = req
                        .headers()
                        .get(http::header::TRANSFER_ENCODING)
                        .map(|v| v.to_str().unwrap().to_owned());
                    seen.encodings.lock().unwrap().push(encoding);
                    // Streams the request body back: no length known, so chunked.
                    Response::new(req.into_body().boxed())
                }
                "/slow" => {
                    seen.slow_started.inc();
                    seen.slow_gate.wait().await;
                    Response::new(full("finished"))
                }
                "/barrier" => {
                    let barrier = seen.barrier.lock().unwrap().clone().unwrap();
                    barrier.wait().await;
                    Response::new(full("together"))
                }
                "/budget" => {
                    let report = seen.budgets.lock().unwrap().clone().unwrap();
                    let budget = MkBudget::current().expect("a connection runs under its budget");
                    report.send(Ok(budget)).unwrap();
                    let end = req.into_body().collect().await;
                    report
                        .send(Err(format!("{:?}", end.map(|b| b.to_bytes().len()))))
                        .unwrap();
                    Response::new(full("read"))
                }
                "/panic" => panic!("a handler that panics on purpose"),
                "/upload" => {
                    let len = req.into_body().collect().await.unwrap().to_bytes().len();
                    Response::new(full(len.to_string()))
                }
                _ => Response::new(full("hello")),
            };
            Ok(response)
        })
    }
}

struct Server {
    addr: SocketAddr,
    seen: Arc<Seen>,
    stop: Gate,
    done: memkit_async::JoinHandle<std::io::Result<()>>,
}

type Serve = memkit_async::http::Serve<TestService>;

/// Starts `serve_hyper` with the test service, configured by `configure`; stops gracefully
/// when `stop` opens.
async fn start(configure: impl FnOnce(Serve) -> Serve) -> Server {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let seen = Arc::new(Seen::default());
    let stop = Gate::new();
    let server = configure(serve_hyper(listener, TestService(seen.clone())))
        .with_graceful_shutdown(stop.wait());
    let done = memkit_async::spawn(std::future::IntoFuture::into_future(server));
    Server {
        addr,
        seen,
        stop,
        done,
    }
}

fn same(serve: Serve) -> Serve {
    serve
}

fn runtime() -> Runtime {
    memkit_async::Builder::new()
        .worker_threads(2)
        .build()
        .unwrap()
}

/// Runs `test` on a fresh runtime; fails instead of hanging past 60 s.
fn run<F: Future<Output = ()> + Send + 'static>(test: impl FnOnce() -> F + Send + 'static) {
    with_timeout(Duration::from_secs(60), move || runtime().block_on(test()));
}

async fn body_text(response: Response<Incoming>) -> String {
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    String::from_utf8(bytes.to_vec()).unwrap()
}

/// Sends `head` and `body` on a raw connection and reads the response until the server
/// closes it (the head asks for `Connection: close`).
async fn raw_exchange(addr: SocketAddr, head: String, body: &[u8]) -> String {
    let mut conn = TcpStream::connect(addr).await.unwrap();
    conn.write_all(head.as_bytes()).await.unwrap();
    conn.write_all(body).await.unwrap();
    let mut response = Vec::new();
    conn.read_to_end(&mut response).await.unwrap();
    String::from_utf8(response).unwrap()
}

#[test]
fn keep_alive_serves_every_request_of_a_client_on_one_connection() {
    run(|| async {
        let server = start(same).await;
        let stream = TcpStream::connect(server.addr).await.unwrap();
        let (mut sender, conn) = hyper::client::conn::http1::handshake::<_, Empty<Bytes>>(stream)
            .await
            .unwrap();
        let conn = memkit_async::spawn(conn);
        for _ in 0..10 {
            sender.ready().await.unwrap();
            let request = Request::get("/")
                .header("host", "x")
                .body(Empty::new())
                .unwrap();
            let response = sender.send_request(request).await.unwrap();
            assert_eq!(response.version(), Version::HTTP_11);
            assert_eq!(body_text(response).await, "hello");
        }
        assert_eq!(server.seen.requests.get(), 10);
        assert_eq!(
            server.seen.connections.get(),
            1,
            "one connection, kept alive"
        );
        // Graceful shutdown closes the idle kept-alive connection: the client sees its end.
        server.stop.open();
        server.done.await.unwrap().unwrap();
        conn.await.unwrap().unwrap();
    });
}

#[test]
fn chunked_request_and_response_bodies_arrive_whole_and_in_order() {
    run(|| async {
        let server = start(same).await;
        let client = client_builder().build::<_, Body>(MkConnector::new());
        let chunks: Vec<Bytes> = (0..50u8)
            .map(|i| Bytes::from(vec![i; 1000 + i as usize]))
            .collect();
        let expected: Vec<u8> = chunks.iter().flat_map(|c| c.iter().copied()).collect();
        let stream = futures::stream::iter(
            chunks
                .into_iter()
                .map(|c| Ok::<_, hyper::Error>(Frame::data(c))),
        );
        let request = Request::post(format!("http://{}/echo", server.addr))
            .body(StreamBody::new(stream).boxed())
            .unwrap();
        let response = client.request(request).await.unwrap();
        assert_eq!(response.status(), StatusCode::OK);
        assert_eq!(
            response
                .headers()
                .get(http::header::TRANSFER_ENCODING)
                .unwrap(),
            "chunked"
        );
        let echoed = response.into_body().collect().await.unwrap().to_bytes();
        assert_eq!(echoed.len(), expected.len());
        assert!(echoed[..] == expected[..]);
        assert_eq!(
            *server.seen.encodings.lock().unwrap(),
            vec![Some("chunked".to_owned())]
        );
        drop(client);
        server.stop.open();
        server.done.await.unwrap().unwrap();
    });
}

#[test]
fn http2_clients_multiplex_concurrent_requests_on_one_connection() {
    const N: usize = 20;
    run(|| async {
        let server = start(same).await;
        // Every request waits until all N are in the server: they are in flight at once.
        *server.seen.barrier.lock().unwrap() = Some(Arc::new(MkAsyncBarrier::new(N)));
        let mut builder = client_builder();
        builder.http2_only(true);
        let client = builder.build::<_, Empty<Bytes>>(MkConnector::new());
        // A first request makes the pool's HTTP/2 connection; the N then find it pooled. On an
        // empty pool they would race hyper-util's one-connect-at-a-time lock: a request whose
        // connect is polled just after the first connection is pooled takes the freed lock
        // and opens a spare (dropped once made), so the count would depend on scheduling.
        let first = client
            .get(format!("http://{}/", server.addr).parse().unwrap())
            .await
            .unwrap();
        assert_eq!(first.version(), Version::HTTP_2);
        assert_eq!(body_text(first).await, "hello");
        let requests: Vec<_> = (0..N)
            .map(|_| {
                let client = client.clone();
                let uri = format!("http://{}/barrier", server.addr).parse().unwrap();
                memkit_async::spawn(async move {
                    let response = client.get(uri).await.unwrap();
                    (response.version(), body_text(response).await)
                })
            })
            .collect();
        for request in requests {
            assert_eq!(
                request.await.unwrap(),
                (Version::HTTP_2, "together".to_owned())
            );
        }
        assert_eq!(server.seen.requests.get(), N + 1);
        assert_eq!(server.seen.connections.get(), 1);
        drop(client);
        server.stop.open();
        server.done.await.unwrap().unwrap();
    });
}

#[test]
fn a_thousand_connections_are_served_at_the_same_time() {
    const N: usize = 1000;
    run(|| async {
        let server = start(same).await;
        // Every request waits until all N are in the server: each holds its connection open.
        *server.seen.barrier.lock().unwrap() = Some(Arc::new(MkAsyncBarrier::new(N)));
        let clients: Vec<_> = (0..N)
            .map(|_| {
                let addr = server.addr;
                memkit_async::spawn(async move {
                    let stream = TcpStream::connect(addr).await.unwrap();
                    let (mut sender, conn) =
                        hyper::client::conn::http1::handshake::<_, Empty<Bytes>>(stream)
                            .await
                            .unwrap();
                    memkit_async::spawn(conn);
                    let request = Request::get("/barrier")
                        .header("host", addr.to_string())
                        .body(Empty::new())
                        .unwrap();
                    body_text(sender.send_request(request).await.unwrap()).await
                })
            })
            .collect();
        for client in clients {
            assert_eq!(client.await.unwrap(), "together");
        }
        assert_eq!(server.seen.connections.get(), N);
        assert_eq!(server.seen.requests.get(), N);
        server.stop.open();
        server.done.await.unwrap().unwrap();
    });
}

#[test]
fn a_client_sending_one_byte_every_100ms_is_cut_off_by_the_header_read_timeout() {
    run(|| async {
        let server = start(|s| s.header_read_timeout(Duration::from_millis(500))).await;
        let request =
            b"GET / HTTP/1.1\r\nHost: slow.example\r\nUser-Agent: a-very-slow-client\r\n\r\n";
        let mut conn = TcpStream::connect(server.addr).await.unwrap();
        let mut sent = 0;
        let closed = loop {
            if sent == request.len() {
                break false;
            }
            if conn.write_all(&request[sent..sent + 1]).await.is_err() {
                break true;
            }
            sent += 1;
            sleep(Duration::from_millis(100)).await;
            match conn.try_read(&mut [0u8; 256]) {
                Ok(_) => break true, // end of stream or the server's last word
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
                Err(_) => break true,
            }
        };
        assert!(
            closed,
            "the server kept a connection whose headers took {sent} x 100 ms"
        );
        assert!(sent < request.len());
        assert_eq!(
            server.seen.requests.get(),
            0,
            "no request reached the service"
        );
        // The same holds before the protocol is known: a client that never finishes the
        // HTTP/2 preface is dropped too.
        let mut conn = TcpStream::connect(server.addr).await.unwrap();
        conn.write_all(b"PRI * HT").await.unwrap();
        let mut rest = Vec::new();
        let read = timeout(Duration::from_secs(10), conn.read_to_end(&mut rest)).await;
        assert!(matches!(read, Ok(Ok(0))), "{read:?}");
        server.stop.open();
        server.done.await.unwrap().unwrap();
    });
}

#[test]
fn a_client_that_disconnects_mid_body_leaves_its_connection_budget_at_zero() {
    run(|| async {
        let (report, reports) = mpsc::channel();
        let server = start(|s| s.per_connection_budget(4 << 20, MkBackpressure::Fail)).await;
        *server.seen.budgets.lock().unwrap() = Some(report);
        let mut conn = TcpStream::connect(server.addr).await.unwrap();
        let head = format!(
            "POST /budget HTTP/1.1\r\nHost: {}\r\nContent-Length: {}\r\n\r\n",
            server.addr,
            1 << 20
        );
        conn.write_all(head.as_bytes()).await.unwrap();
        conn.write_all(&vec![7u8; 100 << 10]).await.unwrap();
        let budget = reports.recv().unwrap().unwrap();
        assert_eq!(budget.limit(), 4 << 20);
        // The declared body is reserved while it is read.
        assert_eq!(budget.used(), 1 << 20);
        drop(conn);
        let ended = reports.recv().unwrap().unwrap_err();
        assert!(
            ended.starts_with("Err("),
            "reading the cut body failed: {ended}"
        );
        common::wait_until("the connection's budget is released", || budget.used() == 0);
        assert_eq!(budget.used(), 0);
        assert_eq!(
            budget.parent().unwrap().used(),
            0,
            "nothing left in the runtime's limit"
        );
        server.stop.open();
        server.done.await.unwrap().unwrap();
    });
}

#[test]
fn a_body_the_memory_limit_cannot_take_gets_a_clean_503_and_the_connection_stays_usable() {
    run(|| async {
        let limit = MkBudget::new(1 << 20).with_policy(MkBackpressure::Fail);
        let server = start(|s| {
            s.memory_budget(&limit)
                .per_connection_budget(4 << 20, MkBackpressure::Fail)
        })
        .await;
        let held = limit.try_acquire(768 << 10).unwrap();
        let mut conn = TcpStream::connect(server.addr).await.unwrap();
        let upload = |len: usize, close: bool| {
            format!(
                "POST /upload HTTP/1.1\r\nHost: x\r\nContent-Length: {len}\r\n{}\r\n",
                if close { "Connection: close\r\n" } else { "" }
            )
        };
        // 512 KiB do not fit next to the 768 KiB held in a 1 MiB limit.
        conn.write_all(upload(512 << 10, false).as_bytes())
            .await
            .unwrap();
        conn.write_all(&vec![1u8; 512 << 10]).await.unwrap();
        let mut buf = vec![0u8; 4096];
        let mut got = Vec::new();
        while !String::from_utf8_lossy(&got).contains("retry later\n") {
            let n = conn.read(&mut buf).await.unwrap();
            assert!(n > 0, "closed after {:?}", String::from_utf8_lossy(&got));
            got.extend_from_slice(&buf[..n]);
        }
        let text = String::from_utf8(got).unwrap();
        assert!(
            text.starts_with("HTTP/1.1 503 Service Unavailable\r\n"),
            "{text}"
        );
        assert!(text.contains("server at its memory limit"), "{text}");
        assert!(!text.contains("connection: close"), "{text}");
        assert_eq!(limit.used(), 768 << 10, "a refused request holds nothing");
        // The body was drained: the same connection takes the next request.
        drop(held);
        conn.write_all(upload(512 << 10, true).as_bytes())
            .await
            .unwrap();
        conn.write_all(&vec![1u8; 512 << 10]).await.unwrap();
        let mut rest = Vec::new();
        conn.read_to_end(&mut rest).await.unwrap();
        let text = String::from_utf8(rest).unwrap();
        assert!(text.starts_with("HTTP/1.1 200 OK\r\n"), "{text}");
        assert!(text.ends_with("\r\n\r\n524288"), "{text}");
        // Larger than a connection's whole budget: 413, whatever is free.
        let text = raw_exchange(server.addr, upload(5 << 20, true), &vec![0u8; 5 << 20]).await;
        assert!(
            text.starts_with("HTTP/1.1 413 Payload Too Large\r\n"),
            "{text}"
        );
        assert_eq!(
            server.seen.requests.get(),
            1,
            "only the admitted request reached the service"
        );
        assert_eq!(limit.used(), 0);
        server.stop.open();
        server.done.await.unwrap().unwrap();
    });
}

#[test]
fn graceful_shutdown_stops_accepting_and_waits_for_in_flight_requests() {
    run(|| async {
        let server = start(same).await;
        let addr = server.addr;
        let in_flight = memkit_async::spawn(async move {
            let stream = TcpStream::connect(addr).await.unwrap();
            let (mut sender, conn) =
                hyper::client::conn::http1::handshake::<_, Empty<Bytes>>(stream)
                    .await
                    .unwrap();
            memkit_async::spawn(conn);
            let request = Request::get("/slow")
                .header("host", "x")
                .body(Empty::new())
                .unwrap();
            let response = sender.send_request(request).await.unwrap();
            (response.status(), body_text(response).await)
        });
        common::wait_until("the slow request started", || {
            server.seen.slow_started.get() == 1
        });
        server.stop.open();
        // The listener closes: new connections are refused.
        let mut refused = false;
        for _ in 0..1000 {
            if TcpStream::connect(addr).await.is_err() {
                refused = true;
                break;
            }
            sleep(Duration::from_millis(1)).await;
        }
        assert!(refused, "the server still accepts after shutdown began");
        assert!(
            !server.done.is_finished(),
            "the server waits for its in-flight request"
        );
        assert!(!in_flight.is_finished());
        server.seen.slow_gate.open();
        assert_eq!(
            in_flight.await.unwrap(),
            (StatusCode::OK, "finished".to_owned())
        );
        server.done.await.unwrap().unwrap();
        assert_eq!(server.seen.requests.get(), 1);
    });
}

#[test]
fn an_axum_router_is_served_through_the_tower_adapter() {
    run(|| async {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let stop = Gate::new();
        let server = memkit_async::http::serve(listener, http_app::router())
            .per_connection_budget(8 << 20, MkBackpressure::Fail)
            .with_graceful_shutdown(stop.wait());
        let done = memkit_async::spawn(std::future::IntoFuture::into_future(server));
        let client = client_builder().build::<_, Full<Bytes>>(MkConnector::new());
        let get = |path: &str| {
            let uri = format!("http://{addr}{path}").parse().unwrap();
            client.get(uri)
        };
        assert_eq!(
            body_text(get("/").await.unwrap()).await,
            "Hello from memkit-async!\n"
        );
        let json = body_text(get("/json").await.unwrap()).await;
        assert_eq!(json, serde_json::to_string(&http_app::catalog()).unwrap());
        assert!(
            (900..1300).contains(&json.len()),
            "about 1 KiB: {}",
            json.len()
        );
        let data: Vec<u8> = (0..300_000u32).map(|i| (i % 253) as u8).collect();
        let request = Request::post(format!("http://{addr}/upload"))
            .body(Full::new(Bytes::from(data.clone())))
            .unwrap();
        let reply = body_text(client.request(request).await.unwrap()).await;
        assert_eq!(
            reply,
            format!(
                "{{\"length\":300000,\"fnv1a64\":\"{:016x}\"}}",
                http_app::fnv1a64(&data)
            )
        );
        drop(client);
        stop.open();
        done.await.unwrap().unwrap();
    });
}

#[test]
fn a_handler_that_panics_costs_only_its_connection_and_releases_its_reservation() {
    run(|| async {
        let limit = MkBudget::new(64 << 20);
        let server = start(|s| {
            s.memory_budget(&limit)
                .per_connection_budget(4 << 20, MkBackpressure::Fail)
        })
        .await;
        let mut conn = TcpStream::connect(server.addr).await.unwrap();
        let head = "POST /panic HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\n";
        conn.write_all(head.as_bytes()).await.unwrap();
        let _ = conn.write_all(&[0u8; 1000]).await;
        let mut reply = Vec::new();
        // The connection ends without a response (closed, or reset over the unread body).
        let end = conn.read_to_end(&mut reply).await;
        assert!(reply.is_empty(), "{:?}", String::from_utf8_lossy(&reply));
        assert!(
            end.is_ok() || end.as_ref().unwrap_err().kind() == std::io::ErrorKind::ConnectionReset,
            "{end:?}"
        );
        common::wait_until("the reservation is released", || limit.used() == 0);
        // The server goes on serving.
        let text = raw_exchange(
            server.addr,
            "GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".into(),
            b"",
        )
        .await;
        assert!(
            text.starts_with("HTTP/1.1 200 OK\r\n") && text.ends_with("hello"),
            "{text}"
        );
        assert_eq!(server.seen.requests.get(), 2);
        server.stop.open();
        server.done.await.unwrap().unwrap();
    });
}

#[test]
fn tcp_streams_and_their_owned_halves_move_bytes_through_hyper_io_traits() {
    use hyper::rt::{Read, ReadBuf, Write};
    use std::future::poll_fn;
    use std::mem::MaybeUninit;

    /// Reads through `hyper::rt::Read` until `len` bytes arrived, into uninitialized memory.
    async fn read_exact_hyper<R: Read + Unpin>(io: &mut R, len: usize) -> Vec<u8> {
        let mut storage = vec![MaybeUninit::<u8>::uninit(); len];
        let mut buf = ReadBuf::uninit(&mut storage);
        while buf.filled().len() < len {
            let before = buf.filled().len();
            poll_fn(|cx| Pin::new(&mut *io).poll_read(cx, buf.unfilled()))
                .await
                .unwrap();
            assert!(
                buf.filled().len() > before,
                "end of stream after {before} bytes"
            );
        }
        buf.filled().to_vec()
    }

    async fn write_all_hyper<W: Write + Unpin>(io: &mut W, mut data: &[u8]) {
        while !data.is_empty() {
            let n = poll_fn(|cx| Pin::new(&mut *io).poll_write(cx, data))
                .await
                .unwrap();
            data = &data[n..];
        }
    }

    run(|| async {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let payload: Vec<u8> = (0..200_000u32).map(|i| (i % 241) as u8).collect();
        let expected = payload.clone();
        // The server echoes with its halves in two tasks: hyper's Read on the read half,
        // hyper's Write on the write half.
        let server = memkit_async::spawn(async move {
            let (stream, _) = listener.accept().await.unwrap();
            let (mut read, mut write) = stream.into_split();
            let got =
                memkit_async::spawn(async move { read_exact_hyper(&mut read, 200_000).await })
                    .await
                    .unwrap();
            write_all_hyper(&mut write, &got).await;
            poll_fn(|cx| Pin::new(&mut write).poll_shutdown(cx))
                .await
                .unwrap();
        });
        let mut client = TcpStream::connect(addr).await.unwrap();
        write_all_hyper(&mut client, &payload).await;
        let echoed = read_exact_hyper(&mut client, payload.len()).await;
        assert!(echoed == expected);
        // The write half's shutdown is the end of the stream.
        let mut rest = Vec::new();
        assert_eq!(client.read_to_end(&mut rest).await.unwrap(), 0);
        server.await.unwrap();
    });
}
