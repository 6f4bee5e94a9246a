//! `TcpSocket` and the listen backlog: options read back what was set, `listen` uses the
//! backlog asked for and `TcpListener::bind` uses 1024, so a burst of connections nobody has
//! accepted yet is queued by the kernel instead of dropped; address and port reuse.
//!
//! Unsafe code: only `listen_queue`, a `getsockopt(TCP_INFO)` into a local `tcp_info`; its
//! invariant is that the buffer and its length describe the same live, writable struct.

// Miri has no network sockets: `socket` needs isolation off, and even then `connect`,
// `sendto` and the rest are unsupported foreign calls. `SO_REUSEPORT` and the descriptor
// checks are Unix's.
#![cfg(all(unix, not(miri)))]

mod common;

use common::*;
use futures::io::{AsyncReadExt, AsyncWriteExt};
use memkit_async::net::{TcpListener, TcpSocket, TcpStream};
use memkit_async::time::{timeout, Duration};
use std::io::{ErrorKind, Read, Write};
use std::net::SocketAddr;

/// `(connections queued for accept, the listen backlog)` of a listening socket, as the kernel
/// reports them in `TCP_INFO` (Linux keeps them in `tcpi_unacked` and `tcpi_sacked` for a
/// listener).
#[cfg(target_os = "linux")]
fn listen_queue(listener: &impl std::os::fd::AsRawFd) -> (u32, u32) {
    let mut info = std::mem::MaybeUninit::<libc::tcp_info>::zeroed();
    let mut len = std::mem::size_of::<libc::tcp_info>() as libc::socklen_t;
    // SAFETY: `info` is a live, writable `tcp_info` and `len` is its size; the kernel writes
    // at most `len` bytes and the descriptor is open for the call.
    let rc = unsafe {
        libc::getsockopt(
            listener.as_raw_fd(),
            libc::IPPROTO_TCP,
            libc::TCP_INFO,
            info.as_mut_ptr().cast(),
            &mut len,
        )
    };
    assert_eq!(rc, 0, "TCP_INFO: {}", std::io::Error::last_os_error());
    // SAFETY: zero-initialized plain integers, partly overwritten by the kernel.
    let info = unsafe { info.assume_init() };
    (info.tcpi_unacked, info.tcpi_sacked)
}

/// The kernel's cap on listen backlogs.
#[cfg(target_os = "linux")]
fn somaxconn() -> u32 {
    std::fs::read_to_string("/proc/sys/net/core/somaxconn")
        .unwrap()
        .trim()
        .parse()
        .unwrap()
}

#[cfg(target_os = "linux")]
#[test]
fn bind_listens_with_a_backlog_of_1024() {
    with_timeout(DEADLINE, || {
        let rt = runtime(1);
        rt.block_on(async {
            let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
            assert_eq!(listen_queue(&listener), (0, 1024.min(somaxconn())));
        });
    });
}

/// With the old backlog of 128 the kernel dropped the SYN of the 130th connection nobody had
/// accepted yet, and its `connect` stalled; with 1024, 600 are queued at once.
#[test]
fn a_bound_listener_queues_600_connections_before_any_accept() {
    const CONNS: usize = 600;
    with_timeout(Duration::from_secs(60), || {
        let rt = runtime(2);
        let listener = rt.block_on(TcpListener::bind("127.0.0.1:0")).unwrap();
        let addr = listener.local_addr().unwrap();
        // Blocking connects from this thread; none is accepted yet. A dropped SYN is retried
        // after a second and again after three, while the queue stays full: far past 5 s.
        let clients: Vec<std::net::TcpStream> = (0..CONNS)
            .map(|i| {
                std::net::TcpStream::connect_timeout(&addr, Duration::from_secs(5))
                    .unwrap_or_else(|e| panic!("connection {i} was not queued: {e}"))
            })
            .collect();
        #[cfg(target_os = "linux")]
        wait_until("every connection is in the accept queue", || {
            listen_queue(&listener).0 as usize == CONNS
        });
        let accepted = rt.block_on(async {
            let mut peers = Vec::with_capacity(CONNS);
            for _ in 0..CONNS {
                let (_, peer) = listener.accept().await.unwrap();
                peers.push(peer);
            }
            peers
        });
        let mut expected: Vec<SocketAddr> =
            clients.iter().map(|c| c.local_addr().unwrap()).collect();
        let mut accepted = accepted;
        expected.sort();
        accepted.sort();
        assert_eq!(accepted, expected);
        #[cfg(target_os = "linux")]
        assert_eq!(listen_queue(&listener).0, 0);
    });
}

#[test]
fn two_thousand_connections_opened_back_to_back_are_all_accepted() {
    const CONNS: u32 = 2000;
    // A watchdog for a hang, not a timing target (it takes about a second on loopback).
    with_timeout(Duration::from_secs(120), || {
        let rt = runtime(2);
        let listener = rt.block_on(TcpListener::bind("127.0.0.1:0")).unwrap();
        let addr = listener.local_addr().unwrap();
        let server = rt.spawn(async move {
            let mut readers = Vec::with_capacity(CONNS as usize);
            for _ in 0..CONNS {
                let (mut conn, _) = listener.accept().await.unwrap();
                readers.push(memkit_async::spawn(async move {
                    let mut id = [0u8; 4];
                    conn.read_exact(&mut id).await.unwrap();
                    u32::from_le_bytes(id)
                }));
            }
            let mut ids = Vec::with_capacity(CONNS as usize);
            for reader in readers {
                ids.push(reader.await.unwrap());
            }
            ids
        });
        let started = std::time::Instant::now();
        for id in 0..CONNS {
            let mut conn = std::net::TcpStream::connect(addr).unwrap();
            conn.write_all(&id.to_le_bytes()).unwrap();
        }
        let mut ids = rt.block_on(server).unwrap();
        eprintln!("{CONNS} connections accepted in {:?}", started.elapsed());
        ids.sort_unstable();
        assert_eq!(ids, (0..CONNS).collect::<Vec<_>>());
    });
}

#[test]
fn socket_options_read_back_what_was_set() {
    let socket = TcpSocket::new_v4().unwrap();
    assert_eq!(
        socket.local_addr().unwrap(),
        "0.0.0.0:0".parse::<SocketAddr>().unwrap()
    );
    assert!(!socket.reuseaddr().unwrap());
    socket.set_reuseaddr(true).unwrap();
    assert!(socket.reuseaddr().unwrap());
    assert!(!socket.reuseport().unwrap());
    socket.set_reuseport(true).unwrap();
    assert!(socket.reuseport().unwrap());
    assert!(!socket.keepalive().unwrap());
    socket.set_keepalive(true).unwrap();
    assert!(socket.keepalive().unwrap());
    assert!(!socket.nodelay().unwrap());
    socket.set_nodelay(true).unwrap();
    assert!(socket.nodelay().unwrap());
    assert_eq!(socket.linger().unwrap(), None);
    socket.set_linger(Some(Duration::from_secs(2))).unwrap();
    assert_eq!(socket.linger().unwrap(), Some(Duration::from_secs(2)));
    socket.set_send_buffer_size(32 << 10).unwrap();
    socket.set_recv_buffer_size(48 << 10).unwrap();
    // Linux doubles the size asked for (room for its bookkeeping); others keep it.
    let factor = if cfg!(target_os = "linux") { 2 } else { 1 };
    assert_eq!(socket.send_buffer_size().unwrap(), factor * (32 << 10));
    assert_eq!(socket.recv_buffer_size().unwrap(), factor * (48 << 10));
    // Binding needs no runtime; listening does.
    socket.bind("127.0.0.1:0".parse().unwrap()).unwrap();
    let bound = socket.local_addr().unwrap();
    assert_eq!(bound.ip().to_string(), "127.0.0.1");
    assert_ne!(bound.port(), 0);
    let err = socket.listen(16).unwrap_err();
    assert!(err.to_string().contains("runtime"), "{err}");
}

#[test]
fn listen_uses_the_backlog_asked_for_and_connect_keeps_the_options() {
    with_timeout(DEADLINE, || {
        let rt = runtime(2);
        rt.block_on(async {
            let socket = TcpSocket::new_v4().unwrap();
            socket.bind("127.0.0.1:0".parse().unwrap()).unwrap();
            let listener = socket.listen(5).unwrap();
            #[cfg(target_os = "linux")]
            assert_eq!(listen_queue(&listener), (0, 5));
            let addr = listener.local_addr().unwrap();

            let client = TcpSocket::new_v4().unwrap();
            client.set_nodelay(true).unwrap();
            client.set_linger(Some(Duration::ZERO)).unwrap();
            let mut stream = timeout(DEADLINE, client.connect(addr))
                .await
                .unwrap()
                .unwrap();
            assert!(stream.nodelay().unwrap());
            assert_eq!(stream.linger().unwrap(), Some(Duration::ZERO));
            assert_eq!(stream.peer_addr().unwrap(), addr);
            let (mut server, peer) = listener.accept().await.unwrap();
            assert_eq!(peer, stream.local_addr().unwrap());
            stream.write_all(b"hello").await.unwrap();
            let mut buf = [0u8; 5];
            server.read_exact(&mut buf).await.unwrap();
            assert_eq!(&buf, b"hello");
            // The zero linger resets the connection instead of closing it.
            drop(stream);
            let err = server.read(&mut buf).await.unwrap_err();
            assert_eq!(err.kind(), ErrorKind::ConnectionReset);

            #[cfg(target_os = "linux")]
            {
                let socket = TcpSocket::new_v4().unwrap();
                socket.bind("127.0.0.1:0".parse().unwrap()).unwrap();
                let capped = socket.listen(u32::MAX).unwrap();
                assert_eq!(listen_queue(&capped), (0, somaxconn()));
            }
        });
    });
}

#[test]
fn connecting_to_a_closed_port_is_refused() {
    with_timeout(DEADLINE, || {
        let rt = runtime(1);
        rt.block_on(async {
            let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
            let addr = listener.local_addr().unwrap();
            drop(listener);
            let err = timeout(DEADLINE, TcpSocket::new_v4().unwrap().connect(addr))
                .await
                .unwrap()
                .unwrap_err();
            assert_eq!(err.kind(), ErrorKind::ConnectionRefused);
        });
    });
}

#[test]
fn reuseport_lets_listeners_share_a_port_and_only_them() {
    with_timeout(DEADLINE, || {
        let rt = runtime(1);
        rt.block_on(async {
            let first = TcpSocket::new_v4().unwrap();
            first.set_reuseport(true).unwrap();
            first.bind("127.0.0.1:0".parse().unwrap()).unwrap();
            let addr = first.local_addr().unwrap();
            let first = first.listen(16).unwrap();

            let second = TcpSocket::new_v4().unwrap();
            second.set_reuseport(true).unwrap();
            second.bind(addr).unwrap();
            let second = second.listen(16).unwrap();
            assert_eq!(second.local_addr().unwrap(), addr);

            let outsider = TcpSocket::new_v4().unwrap();
            let err = outsider.bind(addr).unwrap_err();
            assert_eq!(err.kind(), ErrorKind::AddrInUse);
            drop((first, second));
        });
    });
}

/// A server that closed its connections first leaves them in `TIME_WAIT` on its port; a
/// restarted server binds the port again only with `SO_REUSEADDR`, which `bind` sets.
#[test]
fn reuseaddr_binds_a_port_whose_connections_are_in_time_wait() {
    with_timeout(DEADLINE, || {
        let rt = runtime(1);
        rt.block_on(async {
            let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
            let addr = listener.local_addr().unwrap();
            let mut client = TcpStream::connect(addr).await.unwrap();
            let (server, _) = listener.accept().await.unwrap();
            // The server closes first, so its side of the connection goes to TIME_WAIT.
            drop(server);
            let mut buf = [0u8; 1];
            assert_eq!(client.read(&mut buf).await.unwrap(), 0);
            drop(client);
            drop(listener);

            let plain = TcpSocket::new_v4().unwrap();
            assert_eq!(plain.bind(addr).unwrap_err().kind(), ErrorKind::AddrInUse);
            let reusing = TcpSocket::new_v4().unwrap();
            reusing.set_reuseaddr(true).unwrap();
            reusing.bind(addr).unwrap();
            drop(reusing.listen(16).unwrap());
            let again = TcpListener::bind(addr).await.unwrap();
            assert_eq!(again.local_addr().unwrap(), addr);
        });
    });
}

#[test]
fn ipv6_sockets_listen_and_connect_on_the_loopback() {
    with_timeout(DEADLINE, || {
        let rt = runtime(1);
        rt.block_on(async {
            let socket = TcpSocket::new_v6().unwrap();
            match socket.bind("[::1]:0".parse().unwrap()) {
                Err(e) if e.kind() == ErrorKind::AddrNotAvailable => {
                    eprintln!("no IPv6 loopback on this machine: {e}");
                    return;
                }
                res => res.unwrap(),
            }
            let listener = socket.listen(8).unwrap();
            let addr = listener.local_addr().unwrap();
            assert!(addr.is_ipv6());
            let client = TcpSocket::new_v6().unwrap();
            let mut stream = client.connect(addr).await.unwrap();
            let (mut server, _) = listener.accept().await.unwrap();
            server.write_all(b"v6").await.unwrap();
            let mut buf = [0u8; 2];
            stream.read_exact(&mut buf).await.unwrap();
            assert_eq!(&buf, b"v6");
        });
    });
}

#[test]
fn from_std_stream_exposes_the_options_of_a_connected_stream() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let stream = std::net::TcpStream::connect(listener.local_addr().unwrap()).unwrap();
    stream.set_nodelay(true).unwrap();
    let local = stream.local_addr().unwrap();
    let socket = TcpSocket::from_std_stream(stream).unwrap();
    assert!(socket.nodelay().unwrap());
    assert_eq!(socket.local_addr().unwrap(), local);
    let (mut accepted, _) = listener.accept().unwrap();
    drop(socket);
    let mut buf = [0u8; 1];
    assert_eq!(
        accepted.read(&mut buf).unwrap(),
        0,
        "dropping it closes the stream"
    );
}
