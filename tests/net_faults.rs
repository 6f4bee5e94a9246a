//! Faults against the echo server: clients that never read, thousands of connections opened
//! and abandoned. Each ends that connection cleanly; the server keeps serving and its memory
//! (budget use, tasks, registered sockets) returns to baseline.

// Miri has no network sockets: `socket` needs isolation off, and even then `connect`,
// `sendto` and the rest are unsupported foreign calls.
#![cfg(not(miri))]

mod common;

use common::echo;
use common::*;
use futures::io::{AsyncReadExt, AsyncWriteExt};
use memkit_async::net::TcpStream;
use std::io::{ErrorKind, Write};
use std::sync::atomic::Ordering::SeqCst;
use std::time::Duration;

const BUDGET: usize = 128 << 10;
const BUF: usize = 16 << 10;

fn echo_once(rt: &memkit_async::Runtime, addr: std::net::SocketAddr, msg: &[u8]) -> Vec<u8> {
    rt.block_on(async {
        let mut s = TcpStream::connect(addr).await.unwrap();
        s.write_all(msg).await.unwrap();
        let mut back = vec![0u8; msg.len()];
        s.read_exact(&mut back).await.unwrap();
        back
    })
}

#[test]
fn a_client_that_sends_and_never_reads_is_bounded_by_its_budget() {
    with_timeout(DEADLINE * 2, || {
        let rt = runtime_with_limit(2, 64 << 20);
        let mut srv = echo::start(&rt, BUDGET, BUF);
        let mut hog = std::net::TcpStream::connect(srv.addr).unwrap();
        hog.set_write_timeout(Some(Duration::from_millis(200)))
            .unwrap();
        // Write until the kernel buffers on both sides are full and the server has stopped
        // reading (its echo cannot be sent): a write times out.
        let chunk = vec![1u8; 64 << 10];
        let mut sent = 0usize;
        loop {
            match hog.write(&chunk) {
                Ok(n) => sent += n,
                Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => break,
                Err(e) => panic!("unexpected error {e}"),
            }
            assert!(
                sent < 1 << 30,
                "the server kept reading 1 GiB it could not echo"
            );
        }
        // The server holds at most its one buffer for this connection, and keeps serving.
        assert!(srv.stats.peak.load(SeqCst) <= BUDGET);
        assert!(rt.memory_budget().used() <= BUDGET);
        assert_eq!(
            echo_once(&rt, srv.addr, b"others are served"),
            b"others are served"
        );
        // The hog goes away with unread data: that connection ends with an error (or end of
        // stream), nothing else.
        drop(hog);
        rt.block_on(srv.join_connections(2));
        assert_eq!(srv.stats.ended.get(), 2);
        assert_eq!(srv.stats.clean.get() + srv.stats.failed.get(), 2);
        assert!(srv.stats.peak.load(SeqCst) <= BUDGET);
        wait_until("memory is back to baseline", || {
            rt.memory_budget().used() == 0
        });
        assert_eq!(rt.metrics().num_io_sources(), 1);
        assert_eq!(rt.metrics().num_alive_tasks(), 1);
    });
}

/// Open files allowed (the soft limit), from /proc; each in-process connection costs two.
fn fd_limit() -> usize {
    std::fs::read_to_string("/proc/self/limits")
        .ok()
        .and_then(|l| {
            l.lines()
                .find(|l| l.starts_with("Max open files"))
                .and_then(|l| l.split_whitespace().nth(3).and_then(|n| n.parse().ok()))
        })
        .unwrap_or(1024)
}

#[test]
fn ten_thousand_connections_opened_and_abandoned() {
    const TOTAL: usize = 10_000;
    with_timeout(DEADLINE * 6, || {
        let rt = runtime_with_limit(2, 256 << 20);
        let mut srv = echo::start(&rt, BUDGET, BUF);
        let m = rt.metrics();
        // As many at once as the descriptor limit allows (all 10 000 with a limit of 20 000+).
        let wave = TOTAL.min(fd_limit().saturating_sub(256) / 2).max(100);
        let mut opened = 0;
        while opened < TOTAL {
            let n = wave.min(TOTAL - opened);
            let mut clients = Vec::with_capacity(n);
            for i in 0..n {
                // The listen backlog is 128 (mio's, as std's): a client that outruns accept
                // gets its SYN dropped and retried a second later. Stay within it.
                if i >= srv.stats.live.get() + 96 {
                    wait_until("the server catches up", || i < srv.stats.live.get() + 64);
                }
                let mut c = std::net::TcpStream::connect(srv.addr).unwrap();
                // Half a request, then silence.
                if i % 2 == 0 {
                    c.write_all(b"GET / HT").unwrap();
                }
                clients.push(c);
            }
            opened += n;
            wait_until("the server accepted every connection", || {
                srv.stats.live.get() == n
            });
            // Abandoned: every client goes away at once.
            drop(clients);
            rt.block_on(srv.join_connections(n));
            assert_eq!(srv.stats.ended.get(), opened);
        }
        assert_eq!(srv.stats.clean.get() + srv.stats.failed.get(), TOTAL);
        // Still serving, and back to baseline.
        assert_eq!(echo_once(&rt, srv.addr, b"ping"), b"ping");
        rt.block_on(srv.join_connections(1));
        assert_eq!(m.num_alive_tasks(), 1);
        assert_eq!(m.num_io_sources(), 1);
        assert_eq!(m.num_timers(), 0);
        assert_eq!(rt.memory_budget().used(), 0);
    });
}
