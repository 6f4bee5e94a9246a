//! Readiness on TCP streams and UDP sockets: `ready(Interest)` reports what it saw within the
//! interest, `try_*` moves exact bytes or reports `WouldBlock` (clearing the readiness, so the
//! next `ready` waits for a new event), closes and resets show in `Ready` and in the errors,
//! and the stream options read back what was set.

// Miri has no network sockets: `socket` needs isolation off, and even then `connect`,
// `sendto` and the rest are unsupported foreign calls.
#![cfg(not(miri))]

mod common;

use common::*;
use futures::io::{AsyncReadExt, AsyncWriteExt};
use memkit_async::io::{Interest, Ready};
use memkit_async::net::{TcpListener, TcpStream, UdpSocket};
use memkit_async::time::{timeout, Duration};
use std::future::{poll_fn, Future};
use std::io::{ErrorKind, IoSlice, IoSliceMut};
use std::net::Shutdown;
use std::pin::pin;
use std::sync::Arc;
use std::task::{Context, Poll};

/// A connected pair on loopback: (client, server).
async fn pair() -> (TcpStream, TcpStream) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let client = TcpStream::connect(listener.local_addr().unwrap())
        .await
        .unwrap();
    let (server, _) = listener.accept().await.unwrap();
    (client, server)
}

/// Polls `fut` once; whether it is still pending.
async fn pending_after_one_poll<F: Future>(fut: F) -> bool {
    let mut fut = pin!(fut);
    poll_fn(|cx| Poll::Ready(fut.as_mut().poll(cx).is_pending())).await
}

async fn ready_within(stream: &TcpStream, interest: Interest) -> Ready {
    timeout(DEADLINE, stream.ready(interest))
        .await
        .expect("the readiness event arrives")
        .unwrap()
}

fn would_block<T: std::fmt::Debug>(res: std::io::Result<T>) {
    match res {
        Err(e) if e.kind() == ErrorKind::WouldBlock => {}
        other => panic!("expected WouldBlock, got {other:?}"),
    }
}

#[test]
fn ready_reports_only_the_interest_and_try_read_moves_the_exact_bytes() {
    with_timeout(DEADLINE, || {
        let rt = runtime(2);
        rt.block_on(async {
            let (client, server) = pair().await;
            (&server).write_all(b"abc").await.unwrap();
            let ready = ready_within(&client, Interest::READABLE).await;
            // The socket is writable too, but only reading was asked about.
            assert_eq!(ready, Ready::READABLE);
            assert!(!ready.is_writable() && !ready.is_read_closed() && !ready.is_error());
            let ready = ready_within(&client, Interest::WRITABLE).await;
            assert_eq!(ready, Ready::WRITABLE);
            let both = ready_within(&client, Interest::READABLE | Interest::WRITABLE).await;
            assert_eq!(both, Ready::READABLE | Ready::WRITABLE);
            let mut buf = [0u8; 1024];
            assert_eq!(client.try_read(&mut buf).unwrap(), 3);
            assert_eq!(&buf[..3], b"abc");
        });
    });
}

#[test]
fn try_read_that_would_block_clears_the_readiness_until_new_data_comes() {
    with_timeout(DEADLINE, || {
        let rt = runtime(2);
        rt.block_on(async {
            let (client, server) = pair().await;
            let mut buf = [0u8; 1024];
            (&server).write_all(b"abc").await.unwrap();
            assert!(ready_within(&client, Interest::READABLE)
                .await
                .is_readable());
            assert_eq!(client.try_read(&mut buf).unwrap(), 3);
            // The readiness is still set: this try asks the socket, which has nothing.
            would_block(client.try_read(&mut buf));
            // Cleared: the next waits stay pending, and so does a try (no syscall now).
            assert!(pending_after_one_poll(client.ready(Interest::READABLE)).await);
            assert!(pending_after_one_poll(client.readable()).await);
            would_block(client.try_read(&mut buf));
            (&server).write_all(b"de").await.unwrap();
            assert!(ready_within(&client, Interest::READABLE)
                .await
                .is_readable());
            assert_eq!(client.try_read(&mut buf).unwrap(), 2);
            assert_eq!(&buf[..2], b"de");
        });
    });
}

#[test]
fn try_write_fills_the_send_buffer_and_the_peer_reads_every_byte_written() {
    with_timeout(DEADLINE, || {
        let rt = runtime(2);
        rt.block_on(async {
            let (client, server) = pair().await;
            let chunk: Vec<u8> = (0..64 << 10).map(|i| (i % 251) as u8).collect();
            let mut written = 0usize;
            assert!(ready_within(&client, Interest::WRITABLE)
                .await
                .is_writable());
            loop {
                match client.try_write(&chunk) {
                    Ok(n) => {
                        assert!(n > 0);
                        written += n;
                    }
                    Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                    Err(e) => panic!("{e}"),
                }
            }
            assert!(written > 0, "a fresh socket takes some bytes");
            // Every byte the writes reported reached the peer, in order.
            let mut got = vec![0u8; written];
            (&server).read_exact(&mut got).await.unwrap();
            assert!(got
                .iter()
                .enumerate()
                .all(|(i, b)| *b == ((i % (64 << 10)) % 251) as u8));
            // Drained: the writer becomes writable again and the next try moves bytes.
            assert!(ready_within(&client, Interest::WRITABLE)
                .await
                .is_writable());
            let n = loop {
                match client.try_write(b"tail") {
                    Ok(n) => break n,
                    Err(e) if e.kind() == ErrorKind::WouldBlock => {
                        ready_within(&client, Interest::WRITABLE).await;
                    }
                    Err(e) => panic!("{e}"),
                }
            };
            assert_eq!(n, 4);
            let mut tail = [0u8; 4];
            (&server).read_exact(&mut tail).await.unwrap();
            assert_eq!(&tail, b"tail");
        });
    });
}

#[test]
fn vectored_tries_move_the_slices_in_order() {
    with_timeout(DEADLINE, || {
        let rt = runtime(2);
        rt.block_on(async {
            let (client, server) = pair().await;
            ready_within(&client, Interest::WRITABLE).await;
            let sent = client
                .try_write_vectored(&[IoSlice::new(b"abc"), IoSlice::new(b"defg")])
                .unwrap();
            assert_eq!(sent, 7);
            let (mut head, mut rest) = ([0u8; 3], [0u8; 10]);
            let mut got = 0;
            while got < 7 {
                ready_within(&server, Interest::READABLE).await;
                let res = if got == 0 {
                    server.try_read_vectored(&mut [
                        IoSliceMut::new(&mut head),
                        IoSliceMut::new(&mut rest),
                    ])
                } else {
                    server.try_read(&mut rest[got - 3..])
                };
                match res {
                    Ok(n) => got += n,
                    Err(e) if e.kind() == ErrorKind::WouldBlock => {}
                    Err(e) => panic!("{e}"),
                }
            }
            assert_eq!((&head, &rest[..4]), (b"abc", &b"defg"[..]));
            would_block(server.try_read_vectored(&mut [IoSliceMut::new(&mut rest)]));
        });
    });
}

#[test]
fn a_half_close_shows_as_read_closed_and_end_of_stream() {
    with_timeout(DEADLINE, || {
        let rt = runtime(2);
        rt.block_on(async {
            let (client, server) = pair().await;
            server.shutdown(Shutdown::Write).unwrap();
            let ready = ready_within(&client, Interest::READABLE).await;
            assert!(ready.is_readable() && ready.is_read_closed(), "{ready:?}");
            assert!(!ready.is_error());
            let mut buf = [0u8; 16];
            assert_eq!(client.try_read(&mut buf).unwrap(), 0);
            // End of stream is final: ready again at once, still end of stream.
            assert!(ready_within(&client, Interest::READABLE)
                .await
                .is_read_closed());
            assert_eq!(client.try_read(&mut buf).unwrap(), 0);
            // This side can still write.
            let ready = ready_within(&client, Interest::WRITABLE).await;
            assert!(ready.is_writable() && !ready.is_write_closed(), "{ready:?}");
            assert_eq!(client.try_write(b"late").unwrap(), 4);
            let mut late = [0u8; 4];
            (&server).read_exact(&mut late).await.unwrap();
            assert_eq!(&late, b"late");
        });
    });
}

#[test]
fn a_zero_linger_close_resets_the_peer() {
    with_timeout(DEADLINE, || {
        let rt = runtime(2);
        rt.block_on(async {
            let (client, server) = pair().await;
            assert_eq!(server.linger().unwrap(), None);
            server.set_linger(Some(Duration::ZERO)).unwrap();
            assert_eq!(server.linger().unwrap(), Some(Duration::ZERO));
            drop(server);
            let ready = ready_within(&client, Interest::READABLE).await;
            assert!(ready.is_read_closed(), "{ready:?}");
            let mut buf = [0u8; 16];
            let err = client.try_read(&mut buf).unwrap_err();
            assert_eq!(err.kind(), ErrorKind::ConnectionReset);
        });
    });
}

#[test]
fn every_task_waiting_for_readiness_is_woken() {
    with_timeout(DEADLINE, || {
        let rt = runtime(2);
        rt.block_on(async {
            let (client, server) = pair().await;
            let client = Arc::new(client);
            let waiters: Vec<_> = (0..3)
                .map(|_| {
                    let client = client.clone();
                    memkit_async::spawn(async move { client.ready(Interest::READABLE).await })
                })
                .collect();
            (&server).write_all(b"x").await.unwrap();
            for waiter in waiters {
                let ready = timeout(DEADLINE, waiter).await.unwrap().unwrap().unwrap();
                assert!(ready.is_readable());
            }
        });
    });
}

#[test]
fn abandoned_ready_waits_leave_no_waker_behind() {
    const ABANDONED: usize = 1000;
    with_timeout(DEADLINE, || {
        let rt = runtime(1);
        rt.block_on(async {
            let (client, server) = pair().await;
            let dropped = Counter::new();
            for _ in 0..ABANDONED {
                let waker = drop_counting_waker(&dropped);
                let mut cx = Context::from_waker(&waker);
                assert!(pin!(client.ready(Interest::READABLE))
                    .poll(&mut cx)
                    .is_pending());
            }
            assert_eq!(dropped.get(), ABANDONED);
            (&server).write_all(b"ping").await.unwrap();
            assert!(ready_within(&client, Interest::READABLE)
                .await
                .is_readable());
        });
    });
}

#[test]
fn stream_and_listener_options_read_back_what_was_set() {
    with_timeout(DEADLINE, || {
        let rt = runtime(1);
        rt.block_on(async {
            let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
            listener.set_ttl(33).unwrap();
            assert_eq!(listener.ttl().unwrap(), 33);
            let client = TcpStream::connect(listener.local_addr().unwrap())
                .await
                .unwrap();
            assert!(!client.nodelay().unwrap());
            client.set_nodelay(true).unwrap();
            assert!(client.nodelay().unwrap());
            client.set_ttl(17).unwrap();
            assert_eq!(client.ttl().unwrap(), 17);
            client.set_linger(Some(Duration::from_secs(3))).unwrap();
            assert_eq!(client.linger().unwrap(), Some(Duration::from_secs(3)));
            client.set_linger(None).unwrap();
            assert_eq!(client.linger().unwrap(), None);
            let err = client.set_ttl(0).unwrap_err();
            assert_eq!(err.kind(), ErrorKind::InvalidInput);
            // Accepted sockets inherit the listener's TTL.
            let (server, _) = listener.accept().await.unwrap();
            assert_eq!(server.ttl().unwrap(), 33);
        });
    });
}

#[test]
fn udp_ready_and_tries_move_whole_datagrams() {
    with_timeout(DEADLINE, || {
        let rt = runtime(2);
        rt.block_on(async {
            let a = UdpSocket::bind("127.0.0.1:0").await.unwrap();
            let b = UdpSocket::bind("127.0.0.1:0").await.unwrap();
            a.connect(b.local_addr().unwrap()).await.unwrap();
            b.connect(a.local_addr().unwrap()).await.unwrap();
            assert!(pending_after_one_poll(a.ready(Interest::READABLE)).await);
            let ready = timeout(DEADLINE, b.ready(Interest::WRITABLE))
                .await
                .unwrap()
                .unwrap();
            assert_eq!(ready, Ready::WRITABLE);
            assert_eq!(b.try_send(b"ping").unwrap(), 4);
            let ready = timeout(DEADLINE, a.ready(Interest::READABLE))
                .await
                .unwrap()
                .unwrap();
            assert_eq!(ready, Ready::READABLE);
            let mut buf = [0u8; 64];
            assert_eq!(a.try_recv(&mut buf).unwrap(), 4);
            assert_eq!(&buf[..4], b"ping");
            would_block(a.try_recv(&mut buf));
            assert!(pending_after_one_poll(a.ready(Interest::READABLE)).await);
            assert!(pending_after_one_poll(a.readable()).await);

            // Unconnected sockets: the sender's address comes with each datagram.
            let c = UdpSocket::bind("127.0.0.1:0").await.unwrap();
            let d = UdpSocket::bind("127.0.0.1:0").await.unwrap();
            timeout(DEADLINE, c.writable()).await.unwrap().unwrap();
            assert_eq!(c.try_send_to(b"xyz", d.local_addr().unwrap()).unwrap(), 3);
            assert_eq!(c.try_send_to(b"", d.local_addr().unwrap()).unwrap(), 0);
            let mut got = Vec::new();
            while got.len() < 2 {
                let ready = timeout(DEADLINE, d.ready(Interest::READABLE | Interest::WRITABLE))
                    .await
                    .unwrap()
                    .unwrap();
                if !ready.is_readable() {
                    timeout(DEADLINE, d.readable()).await.unwrap().unwrap();
                    continue;
                }
                match d.try_recv_from(&mut buf) {
                    Ok((n, from)) => got.push((buf[..n].to_vec(), from)),
                    Err(e) if e.kind() == ErrorKind::WouldBlock => {}
                    Err(e) => panic!("{e}"),
                }
            }
            let from = c.local_addr().unwrap();
            assert_eq!(got, vec![(b"xyz".to_vec(), from), (Vec::new(), from)]);
            would_block(d.try_recv_from(&mut buf));
            c.set_ttl(9).unwrap();
            assert_eq!(c.ttl().unwrap(), 9);
        });
    });
}

#[test]
fn interest_and_ready_combine_as_flags() {
    let both = Interest::READABLE | Interest::WRITABLE;
    assert_eq!(format!("{both:?}"), "READABLE | WRITABLE");
    assert_eq!(both.remove(Interest::READABLE), Some(Interest::WRITABLE));
    assert_eq!(Interest::WRITABLE.remove(Interest::WRITABLE), None);
    let mut interest = Interest::READABLE;
    interest |= Interest::WRITABLE;
    assert_eq!(interest, both);
    assert_eq!(
        Interest::READABLE.add(Interest::READABLE),
        Interest::READABLE
    );

    let closed = Ready::READABLE | Ready::READ_CLOSED;
    assert_eq!(format!("{closed:?}"), "READABLE | READ_CLOSED");
    assert_eq!(format!("{:?}", Ready::EMPTY), "EMPTY");
    assert!(Ready::READ_CLOSED.is_readable() && !Ready::READ_CLOSED.is_writable());
    assert!(Ready::WRITE_CLOSED.is_writable() && Ready::WRITE_CLOSED.is_write_closed());
    assert!(Ready::ERROR.is_error() && !Ready::ERROR.is_readable());
    let mut all = Ready::EMPTY;
    for r in [
        Ready::READABLE,
        Ready::WRITABLE,
        Ready::READ_CLOSED,
        Ready::WRITE_CLOSED,
        Ready::ERROR,
    ] {
        all |= r;
    }
    assert_eq!(all, Ready::ALL);
}
