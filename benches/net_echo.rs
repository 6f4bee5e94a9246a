//! TCP echo over loopback: memkit-async against tokio, same process, same run, same worker
//! count, client and server in the same runtime.
//!
//! | group | what one iteration measures |
//! |---|---|
//! | `tcp_echo_64x1k` | 64 connections, each doing 50 sequential round trips of a 1 KiB message (write 1 KiB, read the 1 KiB echo) concurrently with the others: throughput counts echoed bytes |
//!
//! Both servers run one task per connection with a 16 KiB buffer (memkit: `MkAsyncVec` in the
//! connection's arena under a per-connection budget; tokio: a `Vec<u8>`). Connections are set up
//! once per runtime, outside the measured loop, with `TCP_NODELAY`. Round-trip latency (median,
//! p99) over the last 20 iterations is printed to stderr after the group.
//!
//! Worker count: `MEMKIT_BENCH_WORKERS` (default `2`).
//!
//! ```text
//! cargo bench --bench net_echo
//! ```
// `criterion_group!` defines a public function without a doc comment.
#![allow(missing_docs)]

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use std::sync::Mutex;
use std::time::{Duration, Instant};

const CONNECTIONS: usize = 64;
const ROUNDS: usize = 50;
const MESSAGE: usize = 1024;
const BUFFER: usize = 16 << 10;

fn workers() -> usize {
    std::env::var("MEMKIT_BENCH_WORKERS")
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .filter(|&n| n > 0)
        .unwrap_or(2)
}

fn keep(samples: &Mutex<Vec<u64>>, mut rtts: Vec<u64>) {
    let mut s = samples.lock().unwrap();
    if s.len() >= 20 * CONNECTIONS * ROUNDS {
        s.drain(..rtts.len());
    }
    s.append(&mut rtts);
}

fn summarize(name: &str, samples: &Mutex<Vec<u64>>) {
    let mut all = samples.lock().unwrap().clone();
    if all.is_empty() {
        return;
    }
    all.sort_unstable();
    let at = |q: f64| all[((all.len() - 1) as f64 * q) as usize];
    eprintln!(
        "tcp_echo_64x1k/{name}: round trip median {} us, p99 {} us ({} round trips)",
        at(0.5),
        at(0.99),
        all.len()
    );
}

mod memkit_side {
    use super::*;
    use futures::io::{AsyncReadExt, AsyncWriteExt};
    use memkit_async::net::{TcpListener, TcpStream};
    use memkit_async::MkAsyncVec;

    async fn echo(mut conn: TcpStream) -> std::io::Result<()> {
        let mut buf = MkAsyncVec::<u8>::with_capacity(BUFFER)
            .await
            .map_err(std::io::Error::other)?;
        buf.try_resize(BUFFER, 0).map_err(std::io::Error::other)?;
        loop {
            let n = conn.read(&mut buf[..]).await?;
            if n == 0 {
                return Ok(());
            }
            conn.write_all(&buf[..n]).await?;
        }
    }

    pub fn setup(rt: &memkit_async::Runtime) -> Vec<TcpStream> {
        rt.block_on(async {
            let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
            let addr = listener.local_addr().unwrap();
            memkit_async::spawn(async move {
                while let Ok((conn, _)) = listener.accept().await {
                    conn.set_nodelay(true).unwrap();
                    memkit_async::task::Builder::new()
                        .budget(64 << 10)
                        .spawn(echo(conn))
                        .unwrap();
                }
            });
            let mut conns = Vec::new();
            for _ in 0..CONNECTIONS {
                let c = TcpStream::connect(addr).await.unwrap();
                c.set_nodelay(true).unwrap();
                conns.push(c);
            }
            conns
        })
    }

    pub fn run(rt: &memkit_async::Runtime, conns: Vec<TcpStream>) -> (Vec<TcpStream>, Vec<u64>) {
        rt.block_on(async {
            let tasks: Vec<_> = conns
                .into_iter()
                .enumerate()
                .map(|(i, mut c)| {
                    memkit_async::spawn(async move {
                        let msg = vec![i as u8; MESSAGE];
                        let mut back = vec![0u8; MESSAGE];
                        let mut rtts = Vec::with_capacity(ROUNDS);
                        for _ in 0..ROUNDS {
                            let t = Instant::now();
                            c.write_all(&msg).await.unwrap();
                            c.read_exact(&mut back).await.unwrap();
                            rtts.push(t.elapsed().as_micros() as u64);
                        }
                        assert_eq!(back, msg);
                        (c, rtts)
                    })
                })
                .collect();
            let mut conns = Vec::with_capacity(CONNECTIONS);
            let mut rtts = Vec::with_capacity(CONNECTIONS * ROUNDS);
            for t in tasks {
                let (c, mut r) = t.await.unwrap();
                conns.push(c);
                rtts.append(&mut r);
            }
            (conns, rtts)
        })
    }
}

mod tokio_side {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::{TcpListener, TcpStream};

    async fn echo(mut conn: TcpStream) -> std::io::Result<()> {
        let mut buf = vec![0u8; BUFFER];
        loop {
            let n = conn.read(&mut buf[..]).await?;
            if n == 0 {
                return Ok(());
            }
            conn.write_all(&buf[..n]).await?;
        }
    }

    pub fn setup(rt: &tokio::runtime::Runtime) -> Vec<TcpStream> {
        rt.block_on(async {
            let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
            let addr = listener.local_addr().unwrap();
            tokio::spawn(async move {
                while let Ok((conn, _)) = listener.accept().await {
                    conn.set_nodelay(true).unwrap();
                    tokio::spawn(echo(conn));
                }
            });
            let mut conns = Vec::new();
            for _ in 0..CONNECTIONS {
                let c = TcpStream::connect(addr).await.unwrap();
                c.set_nodelay(true).unwrap();
                conns.push(c);
            }
            conns
        })
    }

    pub fn run(rt: &tokio::runtime::Runtime, conns: Vec<TcpStream>) -> (Vec<TcpStream>, Vec<u64>) {
        rt.block_on(async {
            let tasks: Vec<_> = conns
                .into_iter()
                .enumerate()
                .map(|(i, mut c)| {
                    tokio::spawn(async move {
                        let msg = vec![i as u8; MESSAGE];
                        let mut back = vec![0u8; MESSAGE];
                        let mut rtts = Vec::with_capacity(ROUNDS);
                        for _ in 0..ROUNDS {
                            let t = Instant::now();
                            c.write_all(&msg).await.unwrap();
                            c.read_exact(&mut back).await.unwrap();
                            rtts.push(t.elapsed().as_micros() as u64);
                        }
                        assert_eq!(back, msg);
                        (c, rtts)
                    })
                })
                .collect();
            let mut conns = Vec::with_capacity(CONNECTIONS);
            let mut rtts = Vec::with_capacity(CONNECTIONS * ROUNDS);
            for t in tasks {
                let (c, mut r) = t.await.unwrap();
                conns.push(c);
                rtts.append(&mut r);
            }
            (conns, rtts)
        })
    }
}

fn benches(c: &mut Criterion) {
    let workers = workers();
    let mut group = c.benchmark_group("tcp_echo_64x1k");
    group.throughput(Throughput::Bytes((CONNECTIONS * ROUNDS * MESSAGE) as u64));
    let memkit_rtt = Mutex::new(Vec::new());
    let tokio_rtt = Mutex::new(Vec::new());
    {
        let rt = memkit_async::Builder::new()
            .worker_threads(workers)
            .build()
            .unwrap();
        let mut conns = Some(memkit_side::setup(&rt));
        group.bench_function("memkit", |b| {
            b.iter(|| {
                let (c, rtts) = memkit_side::run(&rt, conns.take().unwrap());
                conns = Some(c);
                keep(&memkit_rtt, rtts);
            })
        });
    }
    {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(workers)
            .enable_all()
            .build()
            .unwrap();
        let mut conns = Some(tokio_side::setup(&rt));
        group.bench_function("tokio", |b| {
            b.iter(|| {
                let (c, rtts) = tokio_side::run(&rt, conns.take().unwrap());
                conns = Some(c);
                keep(&tokio_rtt, rtts);
            })
        });
    }
    group.finish();
    summarize("memkit", &memkit_rtt);
    summarize("tokio", &tokio_rtt);
}

fn config() -> Criterion {
    Criterion::default()
        .sample_size(20)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(5))
}

criterion_group! {
    name = net_echo;
    config = config();
    targets = benches
}
criterion_main!(net_echo);
