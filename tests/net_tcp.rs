//! TCP on loopback: echo round trips, many concurrent clients, half-close, resets, refused
//! connections, split halves, abandoned waits, and what is left registered afterwards.

// Miri has no network sockets: `socket` needs isolation off, and even then `connect`,
// `sendto` and the rest are unsupported foreign calls.
#![cfg(not(miri))]

mod common;

use common::echo::{self, EchoServer};
use common::*;
use futures::io::{AsyncReadExt, AsyncWriteExt};
use memkit_async::net::{TcpListener, TcpStream};
use memkit_async::time::timeout;
use std::future::Future;
use std::io::{ErrorKind, Read, Write};
use std::net::Shutdown;
use std::pin::pin;
use std::task::Context;
use std::time::Duration;

const BUDGET: usize = 256 << 10;
const BUF: usize = 16 << 10;

fn pattern(seed: usize, len: usize) -> Vec<u8> {
    (0..len)
        .map(|i| (i.wrapping_mul(31) ^ seed) as u8)
        .collect()
}

/// Sends `msg` and reads the same number of bytes back, writing and reading at once (a large
/// message would otherwise fill both socket buffers and stall).
async fn round_trip(stream: &TcpStream, msg: &[u8]) -> Vec<u8> {
    let mut back = vec![0u8; msg.len()];
    let (mut r, mut w) = (stream, stream);
    let (wrote, read) = futures::join!(w.write_all(msg), r.read_exact(&mut back));
    wrote.unwrap();
    read.unwrap();
    back
}

fn server(rt: &memkit_async::Runtime) -> EchoServer {
    echo::start(rt, BUDGET, BUF)
}

#[test]
fn echo_round_trips_of_every_size() {
    with_timeout(DEADLINE, || {
        let rt = runtime(2);
        let mut srv = server(&rt);
        rt.block_on(async {
            let stream = TcpStream::connect(srv.addr).await.unwrap();
            stream.set_nodelay(true).unwrap();
            assert!(stream.nodelay().unwrap());
            assert_eq!(stream.peer_addr().unwrap(), srv.addr);
            assert_eq!(stream.local_addr().unwrap().ip(), srv.addr.ip());
            let mut total = 0;
            for (i, len) in [1usize, 7, 1024, 16 << 10, 64 << 10, 1 << 20]
                .into_iter()
                .enumerate()
            {
                let msg = pattern(i, len);
                assert_eq!(
                    round_trip(&stream, &msg).await,
                    msg,
                    "message of {len} bytes"
                );
                total += len;
            }
            for i in 0..100 {
                let msg = pattern(i, 100);
                assert_eq!(round_trip(&stream, &msg).await, msg);
                total += 100;
            }
            drop(stream);
            srv.join_connections(1).await;
            assert_eq!(
                srv.stats.bytes.load(std::sync::atomic::Ordering::SeqCst),
                total
            );
            assert_eq!((srv.stats.clean.get(), srv.stats.failed.get()), (1, 0));
        });
        // The buffer lived in the connection's arena, charged to its budget.
        assert!(srv.stats.peak.load(std::sync::atomic::Ordering::SeqCst) >= BUF);
        assert!(srv.stats.peak.load(std::sync::atomic::Ordering::SeqCst) <= BUDGET);
    });
}

#[test]
fn a_thousand_concurrent_clients() {
    with_timeout(DEADLINE * 3, || {
        let rt = runtime(2);
        let mut srv = server(&rt);
        let addr = srv.addr;
        rt.block_on(async move {
            let clients: Vec<_> = (0..1000usize)
                .map(|i| {
                    memkit_async::spawn(async move {
                        let mut s = TcpStream::connect(addr).await?;
                        let msg = pattern(i, 1024);
                        s.write_all(&msg).await?;
                        let mut back = vec![0u8; 1024];
                        s.read_exact(&mut back).await?;
                        s.close().await?;
                        let mut rest = Vec::new();
                        s.read_to_end(&mut rest).await?;
                        std::io::Result::Ok(back == msg && rest.is_empty())
                    })
                })
                .collect();
            for (i, c) in clients.into_iter().enumerate() {
                assert!(c.await.unwrap().unwrap(), "client {i} got a wrong echo");
            }
        });
        // Every connection task joined: none is left alive.
        rt.block_on(srv.join_connections(1000));
        assert_eq!(srv.stats.ended.get(), 1000);
        assert_eq!((srv.stats.clean.get(), srv.stats.failed.get()), (1000, 0));
        assert_eq!(
            srv.stats.bytes.load(std::sync::atomic::Ordering::SeqCst),
            1000 * 1024
        );
        // Only the listener is left registered, and only the acceptor task alive.
        assert_eq!(rt.metrics().num_io_sources(), 1);
        assert_eq!(rt.metrics().num_alive_tasks(), 1);
    });
}

#[test]
fn half_close_lets_the_peer_finish_its_reply() {
    with_timeout(DEADLINE, || {
        let rt = runtime(2);
        rt.block_on(async {
            let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
            let addr = listener.local_addr().unwrap();
            let server = memkit_async::spawn(async move {
                let (mut s, _) = listener.accept().await.unwrap();
                let mut req = Vec::new();
                s.read_to_end(&mut req).await.unwrap(); // ends at the client's half-close
                s.write_all(format!("got {} bytes", req.len()).as_bytes())
                    .await
                    .unwrap();
                s.close().await.unwrap();
                req
            });
            let mut c = TcpStream::connect(addr).await.unwrap();
            c.write_all(&[7u8; 3000]).await.unwrap();
            c.shutdown(Shutdown::Write).unwrap();
            let mut reply = String::new();
            c.read_to_string(&mut reply).await.unwrap();
            assert_eq!(reply, "got 3000 bytes");
            assert_eq!(server.await.unwrap(), vec![7u8; 3000]);
            // Writing after the half-close is an error, not a hang or a signal.
            let err = c.write_all(b"late").await.unwrap_err();
            assert_eq!(err.kind(), ErrorKind::BrokenPipe, "{err}");
        });
    });
}

#[test]
fn a_reset_peer_is_an_error_for_that_connection_only() {
    with_timeout(DEADLINE, || {
        let rt = runtime(2);
        let mut srv = server(&rt);
        // A client that closes with unread data in its receive buffer makes the kernel reset
        // the connection.
        let mut raw = std::net::TcpStream::connect(srv.addr).unwrap();
        raw.write_all(&[1u8; 4096]).unwrap();
        wait_until("the echo is back in the client's buffer", || {
            let mut peek = [0u8; 4096];
            raw.set_nonblocking(true).unwrap();
            matches!(raw.peek(&mut peek), Ok(4096))
        });
        drop(raw);
        // The server keeps serving.
        rt.block_on(async {
            let s = TcpStream::connect(srv.addr).await.unwrap();
            assert_eq!(round_trip(&s, b"still here").await, b"still here");
            drop(s);
            srv.join_connections(2).await;
        });
        assert_eq!(srv.stats.ended.get(), 2);
        assert_eq!(srv.stats.clean.get() + srv.stats.failed.get(), 2);
        assert_eq!(rt.metrics().num_io_sources(), 1);
    });
}

#[test]
fn reading_from_a_reset_connection_reports_connection_reset() {
    with_timeout(DEADLINE, || {
        let rt = runtime(2);
        rt.block_on(async {
            let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
            let addr = listener.local_addr().unwrap();
            let client = std::thread::spawn(move || {
                let mut raw = std::net::TcpStream::connect(addr).unwrap();
                let mut one = [0u8; 1];
                raw.read_exact(&mut one).unwrap(); // the server's first byte
                                                   // Unread bytes follow: closing now sends a reset.
                std::thread::sleep(Duration::from_millis(20));
            });
            let (mut s, _) = listener.accept().await.unwrap();
            s.write_all(&[9u8; 64]).await.unwrap();
            client.join().unwrap();
            let mut buf = [0u8; 16];
            let err = s.read(&mut buf).await.unwrap_err();
            assert_eq!(err.kind(), ErrorKind::ConnectionReset, "{err}");
            // The reset is reported once; the connection is then at end of stream for good.
            let again = timeout(Duration::from_secs(5), s.read(&mut buf)).await;
            assert_eq!(again.map(|r| r.map_err(|e| e.kind())), Ok(Ok(0)));
        });
    });
}

#[test]
fn a_peer_vanishing_mid_write_fails_the_write() {
    with_timeout(DEADLINE, || {
        let rt = runtime(2);
        rt.block_on(async {
            let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
            let addr = listener.local_addr().unwrap();
            let raw = std::net::TcpStream::connect(addr).unwrap();
            let (mut s, _) = listener.accept().await.unwrap();
            let writer = memkit_async::spawn(async move {
                let chunk = vec![5u8; 64 << 10];
                let mut sent = 0usize;
                loop {
                    match s.write_all(&chunk).await {
                        Ok(()) => sent += chunk.len(),
                        Err(e) => return (sent, e.kind()),
                    }
                }
            });
            // The writer fills the buffers, then the peer goes away without reading.
            memkit_async::time::sleep(Duration::from_millis(50)).await;
            drop(raw);
            let (sent, kind) = timeout(DEADLINE, writer).await.unwrap().unwrap();
            assert!(sent > 0);
            assert!(
                matches!(kind, ErrorKind::BrokenPipe | ErrorKind::ConnectionReset),
                "{kind:?}"
            );
        });
    });
}

#[test]
fn connecting_to_a_closed_port_is_refused() {
    with_timeout(DEADLINE, || {
        let rt = runtime(1);
        let port = {
            let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            l.local_addr().unwrap().port()
        };
        rt.block_on(async {
            let err = TcpStream::connect(("127.0.0.1", port)).await.unwrap_err();
            assert_eq!(err.kind(), ErrorKind::ConnectionRefused, "{err}");
        });
        assert_eq!(rt.metrics().num_io_sources(), 0);
    });
}

#[test]
fn owned_halves_work_from_different_tasks_and_reunite() {
    with_timeout(DEADLINE, || {
        let rt = runtime(2);
        let srv = server(&rt);
        rt.block_on(async {
            let s = TcpStream::connect(srv.addr).await.unwrap();
            let (mut r, mut w) = s.into_split();
            assert_eq!(r.peer_addr().unwrap(), srv.addr);
            let reader = memkit_async::spawn(async move {
                let mut got = vec![0u8; 100_000];
                r.read_exact(&mut got).await.unwrap();
                (r, got)
            });
            let msg = pattern(3, 100_000);
            let m2 = msg.clone();
            let writer = memkit_async::spawn(async move {
                w.write_all(&m2).await.unwrap();
                w
            });
            let w = writer.await.unwrap();
            let (r, got) = reader.await.unwrap();
            assert_eq!(got, msg);
            let mut s = r.reunite(w).unwrap();
            // Dropping the write half of the pair shuts down writing: the echo server sees
            // end of stream and closes, so we read end of stream.
            let (mut r, w) = {
                assert_eq!(round_trip(&s, b"again").await, b"again");
                s.flush().await.unwrap();
                s.into_split()
            };
            drop(w);
            let mut rest = Vec::new();
            r.read_to_end(&mut rest).await.unwrap();
            assert!(rest.is_empty());
            // Halves of different streams do not reunite.
            let a = TcpStream::connect(srv.addr).await.unwrap().into_split();
            let b = TcpStream::connect(srv.addr).await.unwrap().into_split();
            let err = a.0.reunite(b.1).unwrap_err();
            assert!(err.to_string().contains("two different"), "{err}");
        });
    });
}

#[test]
fn sockets_outside_a_runtime_are_a_clear_error() {
    let err = futures::executor::block_on(TcpListener::bind("127.0.0.1:0")).unwrap_err();
    assert!(err.to_string().contains("need a runtime"), "{err}");
    let err =
        futures::executor::block_on(memkit_async::net::UdpSocket::bind("127.0.0.1:0")).unwrap_err();
    assert!(err.to_string().contains("need a runtime"), "{err}");
}

#[test]
fn a_socket_outliving_its_runtime_fails_cleanly() {
    with_timeout(DEADLINE, || {
        let rt = runtime(1);
        let m = rt.metrics();
        let srv = server(&rt);
        let (mut s, listener) = rt.block_on(async {
            let s = TcpStream::connect(srv.addr).await.unwrap();
            (s, TcpListener::bind("127.0.0.1:0").await.unwrap())
        });
        // A task blocked in accept when the runtime goes away is cancelled with it.
        drop(rt);
        let mut buf = [0u8; 4];
        let err = futures::executor::block_on(s.read(&mut buf)).unwrap_err();
        assert!(err.to_string().contains("shut down"), "{err}");
        drop((s, listener));
        assert_eq!(m.num_io_sources(), 0);
        assert_eq!(m.num_alive_tasks(), 0);
    });
}

#[test]
fn abandoned_accepts_and_readables_leave_no_waker_behind() {
    const ABANDONED: usize = 1000;
    with_timeout(DEADLINE, || {
        let rt = runtime(1);
        rt.block_on(async {
            let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
            let client = TcpStream::connect(listener.local_addr().unwrap())
                .await
                .unwrap();
            let (server, _) = listener.accept().await.unwrap();
            let dropped = Counter::new();
            for _ in 0..ABANDONED {
                let waker = drop_counting_waker(&dropped);
                let mut cx = Context::from_waker(&waker);
                assert!(pin!(listener.accept()).poll(&mut cx).is_pending());
                assert!(pin!(server.readable()).poll(&mut cx).is_pending());
                assert!(pin!(client.readable()).poll(&mut cx).is_pending());
            }
            // No connection came and nothing was sent: every waker went with its futures.
            assert_eq!(dropped.get(), ABANDONED);
            let mut client = client;
            client.write_all(b"ping").await.unwrap();
            let mut buf = [0u8; 4];
            (&server).read_exact(&mut buf).await.unwrap();
            assert_eq!(&buf, b"ping");
        });
    });
}
