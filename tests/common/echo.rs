//! A TCP echo server on 127.0.0.1 for the net tests: one task per connection, each with its own
//! byte budget, echoing through an arena buffer of a fixed size.

use super::Counter;
use futures::channel::mpsc;
use futures::io::{AsyncReadExt, AsyncWriteExt};
use futures::StreamExt;
use memkit_async::net::{TcpListener, TcpStream};
use memkit_async::{JoinHandle, MkAsyncVec, MkBudget, Runtime};
use std::io;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
use std::sync::Arc;

/// What the server's connections did.
#[derive(Clone, Default)]
pub struct EchoStats {
    /// Connections that ended with end of stream.
    pub clean: Counter,
    /// Connections that ended with an I/O error (reset, broken pipe, ...).
    pub failed: Counter,
    /// Bytes echoed, over all connections.
    pub bytes: Arc<AtomicUsize>,
    /// The highest budget use any connection reached.
    pub peak: Arc<AtomicUsize>,
    /// Connections live now.
    pub live: Counter,
    /// Connections whose task has recorded how it ended (it may still be finishing).
    pub ended: Counter,
}

pub struct EchoServer {
    pub addr: SocketAddr,
    pub stats: EchoStats,
    pub acceptor: JoinHandle<()>,
    /// The connection tasks' handles, in the order their connections were accepted.
    connections: mpsc::UnboundedReceiver<JoinHandle<()>>,
}

impl EchoServer {
    /// Joins the tasks of the next `n` connections accepted (waiting for them to be accepted
    /// first): once it returns, they have completed and no longer count as live tasks.
    pub async fn join_connections(&mut self, n: usize) {
        for i in 0..n {
            let task = self
                .connections
                .next()
                .await
                .expect("the acceptor runs as long as the runtime");
            task.await
                .unwrap_or_else(|e| panic!("connection task {i} of {n} failed: {e}"));
        }
    }
}

/// Echoes until end of stream through one `buf_size` arena buffer.
pub async fn echo_conn(mut s: TcpStream, buf_size: usize) -> io::Result<usize> {
    let mut buf = MkAsyncVec::<u8>::with_capacity(buf_size)
        .await
        .map_err(io::Error::other)?;
    buf.try_resize(buf_size, 0).map_err(io::Error::other)?;
    let mut total = 0;
    loop {
        let n = s.read(&mut buf[..]).await?;
        if n == 0 {
            s.close().await?;
            return Ok(total);
        }
        s.write_all(&buf[..n]).await?;
        total += n;
    }
}

/// Starts an echo server on `rt`: each connection runs in a task with a budget of `budget`
/// bytes and echoes through a `buf_size` buffer.
pub fn start(rt: &Runtime, budget: usize, buf_size: usize) -> EchoServer {
    let stats = EchoStats::default();
    let st = stats.clone();
    let (joins, connections) = mpsc::unbounded();
    let (addr, acceptor) = rt.block_on(async move {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let acceptor = memkit_async::spawn(async move {
            loop {
                let Ok((conn, _)) = listener.accept().await else {
                    continue;
                };
                st.live.inc();
                let st = st.clone();
                let task = memkit_async::task::Builder::new()
                    .budget(budget)
                    .spawn(async move {
                        let res = echo_conn(conn, buf_size).await;
                        let peak = MkBudget::current().map_or(0, |b| b.peak());
                        st.peak.fetch_max(peak, SeqCst);
                        match res {
                            Ok(n) => {
                                st.bytes.fetch_add(n, SeqCst);
                                st.clean.inc();
                            }
                            Err(_) => {
                                st.failed.inc();
                            }
                        }
                        st.live.0.fetch_sub(1, SeqCst);
                        st.ended.inc();
                    })
                    .expect("a per-connection budget with no reservation always spawns");
                // Nobody joining (a test that does not ask) is no reason to stop serving.
                let _ = joins.unbounded_send(task);
            }
        });
        (addr, acceptor)
    });
    EchoServer {
        addr,
        stats,
        acceptor,
        connections,
    }
}
