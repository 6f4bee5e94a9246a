//! UDP on loopback: datagrams keep their boundaries, connected sockets filter their peer, a
//! socket shared by several waiting tasks wakes all of them, an error the peer's host reports
//! is returned once (and the socket then waits again instead of spinning), and an abandoned
//! wait leaves no waker behind.
//!
//! Unsafe: one `setsockopt` call, on a socket the test owns, with a live `int` as its value.

// Miri has no network sockets: `socket` needs isolation off, and even then `connect`,
// `sendto` and the rest are unsupported foreign calls.
#![cfg(not(miri))]

mod common;

use common::*;
use memkit_async::net::UdpSocket;
use memkit_async::time::{sleep, timeout};
use std::future::Future;
use std::io::ErrorKind;
use std::net::SocketAddr;
use std::pin::pin;
use std::sync::Arc;
use std::task::Context;
use std::time::Duration;

#[test]
fn datagrams_round_trip_with_their_boundaries() {
    with_timeout(DEADLINE, || {
        let rt = runtime(2);
        rt.block_on(async {
            let a = UdpSocket::bind("127.0.0.1:0").await.unwrap();
            let b = UdpSocket::bind("127.0.0.1:0").await.unwrap();
            let (aa, ba) = (a.local_addr().unwrap(), b.local_addr().unwrap());
            for len in [0usize, 1, 100, 1400, 9000] {
                let msg: Vec<u8> = (0..len).map(|i| i as u8).collect();
                assert_eq!(a.send_to(&msg, ba).await.unwrap(), len);
                let mut buf = vec![0u8; 10_000];
                let (n, from) = b.recv_from(&mut buf).await.unwrap();
                assert_eq!((n, from), (len, aa));
                assert_eq!(&buf[..n], &msg[..]);
            }
            // A datagram longer than the buffer is truncated to it.
            a.send_to(&[7u8; 64], ba).await.unwrap();
            let mut small = [0u8; 10];
            assert_eq!(b.recv_from(&mut small).await.unwrap(), (10, aa));
            assert_eq!(small, [7u8; 10]);
            // Nothing queued: try_recv_from would block.
            assert_eq!(
                b.try_recv_from(&mut small).unwrap_err().kind(),
                std::io::ErrorKind::WouldBlock
            );
        });
        assert_eq!(rt.metrics().num_io_sources(), 0);
    });
}

#[test]
fn connected_sockets_send_and_receive_from_their_peer() {
    with_timeout(DEADLINE, || {
        let rt = runtime(2);
        rt.block_on(async {
            let a = UdpSocket::bind("127.0.0.1:0").await.unwrap();
            let b = UdpSocket::bind("127.0.0.1:0").await.unwrap();
            let stranger = UdpSocket::bind("127.0.0.1:0").await.unwrap();
            a.connect(b.local_addr().unwrap()).await.unwrap();
            b.connect(a.local_addr().unwrap()).await.unwrap();
            assert_eq!(a.peer_addr().unwrap(), b.local_addr().unwrap());
            // A connected socket drops datagrams from anyone else.
            stranger
                .send_to(b"noise", a.local_addr().unwrap())
                .await
                .unwrap();
            b.send(b"hello").await.unwrap();
            let mut buf = [0u8; 16];
            let n = a.recv(&mut buf).await.unwrap();
            assert_eq!(&buf[..n], b"hello");
            a.send(b"back").await.unwrap();
            let n = b.recv(&mut buf).await.unwrap();
            assert_eq!(&buf[..n], b"back");
        });
    });
}

#[test]
fn several_tasks_waiting_on_one_socket_all_get_datagrams() {
    with_timeout(DEADLINE, || {
        let rt = runtime(2);
        rt.block_on(async {
            let server = Arc::new(UdpSocket::bind("127.0.0.1:0").await.unwrap());
            let addr = server.local_addr().unwrap();
            let receivers: Vec<_> = (0..8)
                .map(|_| {
                    let s = server.clone();
                    memkit_async::spawn(async move {
                        let mut buf = [0u8; 8];
                        let (n, _) = s.recv_from(&mut buf).await.unwrap();
                        u64::from_le_bytes(buf[..n].try_into().unwrap())
                    })
                })
                .collect();
            // Let every receiver register before sending.
            memkit_async::time::sleep(std::time::Duration::from_millis(20)).await;
            let client = UdpSocket::bind("127.0.0.1:0").await.unwrap();
            for i in 0..8u64 {
                client.send_to(&i.to_le_bytes(), addr).await.unwrap();
            }
            let mut got = Vec::new();
            for r in receivers {
                got.push(r.await.unwrap());
            }
            got.sort_unstable();
            assert_eq!(got, (0..8).collect::<Vec<u64>>());
        });
    });
}

/// The address of a loopback UDP port nobody listens on (bound, noted and closed again).
fn closed_port() -> SocketAddr {
    let s = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    s.local_addr().unwrap()
}

const WAIT: Duration = Duration::from_millis(300);

/// A socket connected to a closed port, which it has sent a datagram; the port-unreachable
/// report has arrived when this returns.
async fn refused_socket() -> UdpSocket {
    let sock = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    sock.connect(closed_port()).await.unwrap();
    sock.send(b"anyone?").await.unwrap();
    sleep(Duration::from_millis(50)).await;
    sock
}

#[test]
fn a_refused_datagram_fails_one_recv_and_the_next_recv_waits() {
    with_timeout(DEADLINE, || {
        // One worker: a receive that never returned `Pending` would keep the timer from firing.
        let rt = runtime(1);
        let (first, second) = rt
            .block_on(rt.spawn(async {
                let sock = refused_socket().await;
                let mut buf = [0u8; 16];
                let first = timeout(WAIT, sock.recv(&mut buf)).await;
                let second = timeout(WAIT, sock.recv(&mut buf)).await;
                (
                    first.map(|r| r.map_err(|e| e.kind())),
                    second.map(|r| r.map_err(|e| e.kind())),
                )
            }))
            .unwrap();
        assert_eq!(first, Ok(Err(ErrorKind::ConnectionRefused)));
        assert!(
            second.is_err(),
            "the second recv waits (its timeout fires), got {second:?}"
        );
        assert_eq!(rt.metrics().num_io_sources(), 0);
    });
}

#[test]
fn a_readable_and_try_recv_loop_reports_a_refusal_once_then_waits() {
    with_timeout(DEADLINE, || {
        let rt = runtime(1);
        let steps = rt
            .block_on(rt.spawn(async {
                let sock = refused_socket().await;
                let mut buf = [0u8; 16];
                let mut steps = Vec::new();
                // The usual loop, cut off after a few rounds in case it spins.
                for _ in 0..4 {
                    match timeout(WAIT, sock.readable()).await {
                        Ok(ready) => {
                            ready.unwrap();
                            steps.push(format!(
                                "{:?}",
                                sock.try_recv(&mut buf).map_err(|e| e.kind())
                            ));
                        }
                        Err(_) => {
                            steps.push("readable waits".to_string());
                            break;
                        }
                    }
                }
                steps
            }))
            .unwrap();
        // `readable` is a hint: the round after the error may find nothing (`WouldBlock`),
        // which consumes the readiness; then it waits.
        assert_eq!(
            steps,
            [
                "Err(ConnectionRefused)",
                "Err(WouldBlock)",
                "readable waits"
            ]
        );
    });
}

/// `setsockopt(IPPROTO_IP, IP_RECVERR, 1)`: an unconnected socket then hears of errors too.
#[cfg(target_os = "linux")]
fn enable_recverr(sock: &std::net::UdpSocket) {
    use std::os::fd::AsRawFd;
    const IPPROTO_IP: i32 = 0;
    const IP_RECVERR: i32 = 11;
    extern "C" {
        fn setsockopt(fd: i32, level: i32, name: i32, value: *const u8, len: u32) -> i32;
    }
    let on: i32 = 1;
    // SAFETY: `sock` owns an open socket; the option value is a live 4-byte `int`.
    let rc = unsafe {
        setsockopt(
            sock.as_raw_fd(),
            IPPROTO_IP,
            IP_RECVERR,
            (&on as *const i32).cast(),
            4,
        )
    };
    assert_eq!(
        rc,
        0,
        "setsockopt(IP_RECVERR): {}",
        std::io::Error::last_os_error()
    );
}

#[cfg(target_os = "linux")]
#[test]
fn an_unconnected_socket_hearing_errors_reports_one_then_waits() {
    with_timeout(DEADLINE, || {
        let rt = runtime(1);
        let (first, second) = rt
            .block_on(rt.spawn(async {
                let std_sock = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
                enable_recverr(&std_sock);
                let sock = UdpSocket::from_std(std_sock).unwrap();
                sock.send_to(b"anyone?", closed_port()).await.unwrap();
                sleep(Duration::from_millis(50)).await;
                let mut buf = [0u8; 16];
                let first = timeout(WAIT, sock.recv_from(&mut buf)).await;
                // The report stays in the socket's error queue: only the next event may wake.
                let second = timeout(WAIT, sock.recv_from(&mut buf)).await;
                (
                    first.map(|r| r.map_err(|e| e.kind())),
                    second.map(|r| r.map_err(|e| e.kind())),
                )
            }))
            .unwrap();
        assert_eq!(first, Ok(Err(ErrorKind::ConnectionRefused)));
        assert!(
            second.is_err(),
            "the second recv_from waits, got {second:?}"
        );
    });
}

const ABANDONED: usize = 10_000;

#[test]
fn ten_thousand_abandoned_recv_froms_leave_no_waker_behind() {
    with_timeout(DEADLINE, || {
        let rt = runtime(1);
        rt.block_on(async {
            let sock = UdpSocket::bind("127.0.0.1:0").await.unwrap();
            let dropped = Counter::new();
            let mut buf = [0u8; 16];
            for _ in 0..ABANDONED {
                let waker = drop_counting_waker(&dropped);
                let mut recv = pin!(sock.recv_from(&mut buf));
                let polled = recv.as_mut().poll(&mut Context::from_waker(&waker));
                assert!(polled.is_pending(), "nothing was sent");
            }
            // No I/O event happened: every waker went with its future.
            assert_eq!(dropped.get(), ABANDONED);
            // The socket still receives.
            let peer = UdpSocket::bind("127.0.0.1:0").await.unwrap();
            peer.send_to(b"still here", sock.local_addr().unwrap())
                .await
                .unwrap();
            let (n, _) = sock.recv_from(&mut buf).await.unwrap();
            assert_eq!(&buf[..n], b"still here");
        });
    });
}

#[test]
fn the_poll_api_keeps_only_the_latest_waker_per_direction() {
    with_timeout(DEADLINE, || {
        let rt = runtime(1);
        rt.block_on(async {
            let sock = UdpSocket::bind("127.0.0.1:0").await.unwrap();
            let dropped = Counter::new();
            let mut buf = [0u8; 16];
            for _ in 0..ABANDONED {
                let waker = drop_counting_waker(&dropped);
                let polled = sock.poll_recv_from(&mut Context::from_waker(&waker), &mut buf);
                assert!(polled.is_pending());
            }
            assert_eq!(dropped.get(), ABANDONED - 1);
            drop(sock);
            assert_eq!(dropped.get(), ABANDONED);
        });
    });
}
