//! A tokio program ported to memkit-async through the `tokio` feature: it keeps tokio's timers,
//! TCP types and `spawn_blocking`; only the attribute and `spawn` changed. Its tasks now run on
//! memkit's workers, with task arenas and byte budgets: each connection handler is capped at
//! 64 KiB and keeps its buffer in its arena.
//!
//! Run with `cargo run --release --features tokio --example tokio_port`.
//!
//! The port, line by line:
//! - `#[tokio::main]` becomes `#[memkit_async::main]`;
//! - `tokio::spawn` becomes `memkit_async::spawn` (or `spawn_with_budget` to cap a task's
//!   memory), so tasks spread over memkit's workers;
//! - `tokio::net`, `tokio::time`, `tokio::io` and `tokio::task::spawn_blocking` stay as they
//!   are: the feature runs a tokio reactor in the background for them.

use memkit_async::{MkAsyncBox, MkBudget};
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

const CLIENTS: usize = 8;
const MESSAGE_LEN: usize = 32 << 10;

/// Echoes everything it reads until the client closes its side; returns the bytes echoed.
async fn echo(mut conn: TcpStream) -> std::io::Result<usize> {
    let mut buf = MkAsyncBox::new([0u8; 8192])
        .await
        .expect("the 64 KiB connection budget holds an 8 KiB buffer");
    let mut total = 0;
    loop {
        let n = conn.read(&mut buf[..]).await?;
        if n == 0 {
            return Ok(total);
        }
        conn.write_all(&buf[..n]).await?;
        total += n;
    }
}

/// Sends a message, then reads the echo back and checks it.
async fn client(id: usize, addr: std::net::SocketAddr) -> std::io::Result<Duration> {
    let start = Instant::now();
    let message: Vec<u8> = (0..MESSAGE_LEN).map(|i| (i * 31 + id) as u8).collect();
    let (mut rd, mut wr) = TcpStream::connect(addr).await?.into_split();
    let expected = message.clone();
    // Write and read at once, so neither side's socket buffer fills up and stalls the other.
    let writer = memkit_async::spawn(async move {
        wr.write_all(&message).await?;
        wr.shutdown().await
    });
    let mut echoed = Vec::with_capacity(MESSAGE_LEN);
    rd.read_to_end(&mut echoed).await?;
    writer.await.expect("the writer task panicked")?;
    assert!(echoed == expected, "client {id}: the echo differs");
    Ok(start.elapsed())
}

#[memkit_async::main(worker_threads = 2, memory_limit = 16 << 20)]
async fn main() -> std::io::Result<()> {
    // Timers: tokio's, unchanged.
    let start = Instant::now();
    tokio::time::sleep(Duration::from_millis(20)).await;
    println!("slept {:?} on tokio's timer", start.elapsed());

    // A TCP echo server on a loopback port, one budgeted memkit task per connection.
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let server = memkit_async::spawn(async move {
        let mut handlers = Vec::new();
        for _ in 0..CLIENTS {
            let (conn, _) = listener.accept().await?;
            handlers.push(memkit_async::spawn_with_budget(64 << 10, echo(conn)));
        }
        let mut echoed = 0;
        for h in handlers {
            echoed += h.await.expect("a connection handler panicked")?;
        }
        std::io::Result::Ok(echoed)
    });

    let clients: Vec<_> = (0..CLIENTS)
        .map(|id| memkit_async::spawn(client(id, addr)))
        .collect();
    for (id, c) in clients.into_iter().enumerate() {
        let took = c.await.expect("a client task panicked")?;
        println!("client {id}: {MESSAGE_LEN} bytes echoed in {took:?}");
    }
    let echoed = server.await.expect("the server task panicked")?;
    assert_eq!(echoed, CLIENTS * MESSAGE_LEN);

    // Blocking work: tokio's spawn_blocking, unchanged.
    let digest = tokio::task::spawn_blocking(|| {
        (0..1_000_000u64).fold(0u64, |acc, x| acc.wrapping_mul(31).wrapping_add(x))
    })
    .await
    .expect("the blocking closure panicked");
    println!("blocking digest: {digest:#x}");

    // Every connection's arena went back to the runtime's budget.
    let root = memkit_async::Handle::current().memory_budget().clone();
    assert_eq!(root.used(), 0);
    println!(
        "echoed {echoed} bytes over {CLIENTS} connections; peak arena memory {} KiB of {} KiB",
        root.peak() >> 10,
        root.limit() >> 10
    );
    assert!(
        MkBudget::current().is_none(),
        "main has no budget of its own"
    );
    Ok(())
}
