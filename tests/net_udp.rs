//! UDP on loopback: datagrams keep their boundaries, connected sockets filter their peer, and a
//! socket shared by several waiting tasks wakes all of them.

// Miri has no network sockets: `socket` needs isolation off, and even then `connect`,
// `sendto` and the rest are unsupported foreign calls.
#![cfg(not(miri))]

mod common;

use common::*;
use memkit_async::net::UdpSocket;
use std::sync::Arc;

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
