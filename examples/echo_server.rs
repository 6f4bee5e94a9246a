//! A TCP echo server on 127.0.0.1 with bounded memory.
//!
//! Every connection runs in a task of its own with a 64 KiB byte budget and echoes through one
//! 16 KiB buffer allocated in that task's arena, so a client that sends and never reads costs
//! the server one buffer (it stops reading once it cannot write), never more. The runtime as a
//! whole is capped at 64 MiB: when connections would need more, new ones wait for memory
//! instead of the process growing.
//!
//! Prints its address and serves until interrupted (Ctrl-C ends the process). For scripted
//! runs, `ECHO_SERVER_SECS=n` stops it after `n` seconds and prints what it served.
//!
//! ```text
//! cargo run --release --example echo_server
//! # in another shell:
//! nc 127.0.0.1 <port>
//! ```

use futures::io::{AsyncReadExt, AsyncWriteExt};
use memkit_async::net::{TcpListener, TcpStream};
use memkit_async::{MkAsyncVec, MkBackpressure};
use std::io;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Arc;
use std::time::Duration;

const MEMORY_LIMIT: usize = 64 << 20;
const PER_CONNECTION: usize = 64 << 10;
const BUFFER: usize = 16 << 10;

#[derive(Default)]
struct Stats {
    connections: AtomicU64,
    failed: AtomicU64,
    bytes: AtomicU64,
}

/// Echoes until the client closes; the buffer lives in this task's arena.
async fn echo(mut conn: TcpStream, stats: &Stats) -> io::Result<()> {
    let mut buf = MkAsyncVec::<u8>::with_capacity(BUFFER)
        .await
        .map_err(io::Error::other)?;
    buf.try_resize(BUFFER, 0).map_err(io::Error::other)?;
    loop {
        let n = conn.read(&mut buf[..]).await?;
        if n == 0 {
            return conn.close().await;
        }
        conn.write_all(&buf[..n]).await?;
        stats.bytes.fetch_add(n as u64, Relaxed);
    }
}

async fn serve(listener: TcpListener, stats: Arc<Stats>) {
    loop {
        let conn = match listener.accept().await {
            Ok((conn, _)) => conn,
            Err(e) => {
                // Out of file descriptors, for instance: back off instead of spinning.
                eprintln!("accept failed: {e}");
                memkit_async::time::sleep(Duration::from_millis(10)).await;
                continue;
            }
        };
        let _ = conn.set_nodelay(true);
        stats.connections.fetch_add(1, Relaxed);
        let stats = stats.clone();
        let spawned = memkit_async::task::Builder::new()
            .name("echo-connection")
            .budget(PER_CONNECTION)
            .policy(MkBackpressure::Wait)
            .spawn(async move {
                if echo(conn, &stats).await.is_err() {
                    // A reset or vanished peer ends only this connection.
                    stats.failed.fetch_add(1, Relaxed);
                }
            });
        if let Err(e) = spawned {
            eprintln!("connection refused: {e}");
        }
    }
}

fn main() -> io::Result<()> {
    let rt = memkit_async::Builder::new()
        .memory_limit(MEMORY_LIMIT)
        .build()?;
    let stats = Arc::new(Stats::default());
    let run_for = std::env::var("ECHO_SERVER_SECS")
        .ok()
        .and_then(|s| s.parse::<u64>().ok())
        .map(Duration::from_secs);
    rt.block_on(async {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        println!("echo server listening on {}", listener.local_addr()?);
        println!(
            "  {} KiB budget per connection, {} MiB for the runtime; Ctrl-C to stop",
            PER_CONNECTION >> 10,
            MEMORY_LIMIT >> 20
        );
        let server = memkit_async::spawn(serve(listener, stats.clone()));
        match run_for {
            Some(d) => {
                let _ = memkit_async::time::timeout(d, server).await;
            }
            None => {
                let _ = server.await;
            }
        }
        io::Result::Ok(())
    })?;
    println!(
        "served {} connections ({} ended with an error), echoed {} bytes; peak memory {} KiB",
        stats.connections.load(Relaxed),
        stats.failed.load(Relaxed),
        stats.bytes.load(Relaxed),
        rt.metrics().memory_peak() >> 10
    );
    Ok(())
}
