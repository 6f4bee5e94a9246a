//! Pipeline: 1 000 000 messages of 1 KiB through producer -> transform -> consumer, three tasks
//! and two bounded channels, memkit-async against tokio, same process, same run, same worker
//! count (2, or `MEMKIT_BENCH_WORKERS`), both multi-thread runtimes.
//!
//! Every variant does the same work per message: the producer writes its 1 KiB (one byte value,
//! `memset`-like), the transform changes its first and last byte, the consumer adds those two
//! bytes to a checksum that is checked against the expected one. Channels hold at most 1 MiB of
//! messages (tokio: the same 1 MiB expressed as a message count).
//!
//! | function | message | channel |
//! |---|---|---|
//! | `memkit_batch` | `MkAsyncVec<u8>` of 64 messages (64 KiB) in the producer's arena, moved through both channels (a pointer move) | `MkAsyncChannel::bounded_bytes(1 MiB, Wait)` |
//! | `memkit_box` | one `MkAsyncBox<[u8; 1024]>` per message | `MkAsyncChannel::bounded_bytes(1 MiB, Wait)` |
//! | `tokio_vec` | one `Vec<u8>` per message | `tokio::sync::mpsc::channel(1024)` |
//! | `tokio_batch` | `Vec<u8>` of 64 messages (64 KiB) | `tokio::sync::mpsc::channel(16)` |
//!
//! `memkit_batch` against `tokio_vec` is the comparison the project targets (arena batches moved
//! zero-copy against per-message heap buffers, at least 1.5x the throughput); `tokio_batch`
//! shows how much of the gain is batching itself, and `memkit_box` how the channel does per
//! message.
//!
//! After the criterion group (under `cargo bench` only) each variant runs once more per round in
//! a child process of its own (`--variant <name>`), which reports its peak RSS (`VmHWM`) and,
//! for memkit, the channels' budget peaks; 3 rounds by default (`MEMKIT_PIPELINE_ROUNDS`).
//!
//! Run with:
//!
//! ```text
//! cargo bench --bench pipeline
//! cargo bench --bench pipeline -- --warm-up-time 1 --measurement-time 3 --sample-size 10
//! MEMKIT_BENCH_WORKERS=4 cargo bench --bench pipeline
//! ```

use criterion::{BenchmarkId, Criterion, Throughput};
use memkit_async::{MkAsyncBox, MkAsyncChannel, MkAsyncVec, MkBackpressure};
use std::process::Command;
use std::time::{Duration, Instant};

/// Messages per run.
const MESSAGES: usize = 1_000_000;
/// Bytes per message.
const MSG: usize = 1024;
/// Messages per batch in the batched variants.
const BATCH: usize = 64;
/// Bytes per batch.
const BATCH_BYTES: usize = BATCH * MSG;
/// What each channel may hold.
const CHANNEL_BYTES: usize = 1 << 20;

/// What a run reports.
#[derive(Clone, Copy, Debug, Default)]
struct Stats {
    checksum: u64,
    /// memkit only: the two channels' budget peaks, bytes.
    channel_peaks: [usize; 2],
}

/// The byte message `i` is made of.
fn fill_byte(i: usize) -> u8 {
    (i % 251) as u8
}

/// The transform stage's work on one message.
fn transform(msg: &mut [u8]) {
    msg[0] = msg[0].wrapping_add(1);
    msg[MSG - 1] ^= 0x5A;
}

/// The consumer stage's work on one message.
fn consume(msg: &[u8]) -> u64 {
    u64::from(msg[0]) + u64::from(msg[MSG - 1])
}

fn expected_checksum() -> u64 {
    (0..MESSAGES)
        .map(|i| {
            let b = fill_byte(i);
            u64::from(b.wrapping_add(1)) + u64::from(b ^ 0x5A)
        })
        .sum()
}

fn memkit_runtime(workers: usize) -> memkit_async::Runtime {
    memkit_async::Builder::new()
        .worker_threads(workers)
        .build()
        .expect("build memkit runtime")
}

fn tokio_runtime(workers: usize) -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(workers)
        .build()
        .expect("build tokio runtime")
}

fn memkit_batch(rt: &memkit_async::Runtime) -> Stats {
    rt.block_on(async {
        let (tx1, mut rx1) =
            MkAsyncChannel::<MkAsyncVec<u8>>::bounded_bytes(CHANNEL_BYTES, MkBackpressure::Wait);
        let (tx2, mut rx2) =
            MkAsyncChannel::<MkAsyncVec<u8>>::bounded_bytes(CHANNEL_BYTES, MkBackpressure::Wait);
        let budgets = [tx1.budget().clone(), tx2.budget().clone()];
        let producer = memkit_async::spawn(async move {
            for b in 0..MESSAGES / BATCH {
                let mut batch = MkAsyncVec::<u8>::with_capacity(BATCH_BYTES)
                    .await
                    .expect("arena allocation");
                for m in 0..BATCH {
                    let len = batch.len();
                    batch
                        .try_resize(len + MSG, fill_byte(b * BATCH + m))
                        .expect("within capacity");
                }
                tx1.send(batch).await.expect("transform gone");
            }
        });
        let stage = memkit_async::spawn(async move {
            while let Some(mut batch) = rx1.recv().await {
                batch.chunks_exact_mut(MSG).for_each(transform);
                tx2.send(batch).await.expect("consumer gone");
            }
        });
        let consumer = memkit_async::spawn(async move {
            let mut sum = 0;
            while let Some(batch) = rx2.recv().await {
                sum += batch.chunks_exact(MSG).map(consume).sum::<u64>();
            }
            sum
        });
        producer.await.expect("producer panicked");
        stage.await.expect("transform panicked");
        let checksum = consumer.await.expect("consumer panicked");
        Stats {
            checksum,
            channel_peaks: [budgets[0].peak(), budgets[1].peak()],
        }
    })
}

fn memkit_box(rt: &memkit_async::Runtime) -> Stats {
    type Msg = MkAsyncBox<[u8; MSG]>;
    rt.block_on(async {
        let (tx1, mut rx1) =
            MkAsyncChannel::<Msg>::bounded_bytes(CHANNEL_BYTES, MkBackpressure::Wait);
        let (tx2, mut rx2) =
            MkAsyncChannel::<Msg>::bounded_bytes(CHANNEL_BYTES, MkBackpressure::Wait);
        let budgets = [tx1.budget().clone(), tx2.budget().clone()];
        let producer = memkit_async::spawn(async move {
            for i in 0..MESSAGES {
                let msg = MkAsyncBox::new([fill_byte(i); MSG])
                    .await
                    .expect("arena allocation");
                tx1.send(msg).await.expect("transform gone");
            }
        });
        let stage = memkit_async::spawn(async move {
            while let Some(mut msg) = rx1.recv().await {
                transform(&mut msg[..]);
                tx2.send(msg).await.expect("consumer gone");
            }
        });
        let consumer = memkit_async::spawn(async move {
            let mut sum = 0;
            while let Some(msg) = rx2.recv().await {
                sum += consume(&msg[..]);
            }
            sum
        });
        producer.await.expect("producer panicked");
        stage.await.expect("transform panicked");
        let checksum = consumer.await.expect("consumer panicked");
        Stats {
            checksum,
            channel_peaks: [budgets[0].peak(), budgets[1].peak()],
        }
    })
}

fn tokio_vec(rt: &tokio::runtime::Runtime) -> Stats {
    use tokio::sync::mpsc;
    rt.block_on(async {
        let (tx1, mut rx1) = mpsc::channel::<Vec<u8>>(CHANNEL_BYTES / MSG);
        let (tx2, mut rx2) = mpsc::channel::<Vec<u8>>(CHANNEL_BYTES / MSG);
        let producer = tokio::spawn(async move {
            for i in 0..MESSAGES {
                tx1.send(vec![fill_byte(i); MSG])
                    .await
                    .expect("transform gone");
            }
        });
        let stage = tokio::spawn(async move {
            while let Some(mut msg) = rx1.recv().await {
                transform(&mut msg);
                tx2.send(msg).await.expect("consumer gone");
            }
        });
        let consumer = tokio::spawn(async move {
            let mut sum = 0;
            while let Some(msg) = rx2.recv().await {
                sum += consume(&msg);
            }
            sum
        });
        producer.await.expect("producer panicked");
        stage.await.expect("transform panicked");
        Stats {
            checksum: consumer.await.expect("consumer panicked"),
            ..Stats::default()
        }
    })
}

fn tokio_batch(rt: &tokio::runtime::Runtime) -> Stats {
    use tokio::sync::mpsc;
    rt.block_on(async {
        let (tx1, mut rx1) = mpsc::channel::<Vec<u8>>(CHANNEL_BYTES / BATCH_BYTES);
        let (tx2, mut rx2) = mpsc::channel::<Vec<u8>>(CHANNEL_BYTES / BATCH_BYTES);
        let producer = tokio::spawn(async move {
            for b in 0..MESSAGES / BATCH {
                let mut batch = Vec::with_capacity(BATCH_BYTES);
                for m in 0..BATCH {
                    batch.resize(batch.len() + MSG, fill_byte(b * BATCH + m));
                }
                tx1.send(batch).await.expect("transform gone");
            }
        });
        let stage = tokio::spawn(async move {
            while let Some(mut batch) = rx1.recv().await {
                batch.chunks_exact_mut(MSG).for_each(transform);
                tx2.send(batch).await.expect("consumer gone");
            }
        });
        let consumer = tokio::spawn(async move {
            let mut sum = 0;
            while let Some(batch) = rx2.recv().await {
                sum += batch.chunks_exact(MSG).map(consume).sum::<u64>();
            }
            sum
        });
        producer.await.expect("producer panicked");
        stage.await.expect("transform panicked");
        Stats {
            checksum: consumer.await.expect("consumer panicked"),
            ..Stats::default()
        }
    })
}

const VARIANTS: [&str; 4] = ["memkit_batch", "memkit_box", "tokio_vec", "tokio_batch"];

/// Runs `variant` once on a fresh runtime.
fn run_once(variant: &str, workers: usize) -> Stats {
    match variant {
        "memkit_batch" => memkit_batch(&memkit_runtime(workers)),
        "memkit_box" => memkit_box(&memkit_runtime(workers)),
        "tokio_vec" => tokio_vec(&tokio_runtime(workers)),
        "tokio_batch" => tokio_batch(&tokio_runtime(workers)),
        other => panic!("unknown variant `{other}`; one of {VARIANTS:?}"),
    }
}

/// Worker count: `MEMKIT_BENCH_WORKERS` (one number), default 2.
fn workers() -> usize {
    match std::env::var("MEMKIT_BENCH_WORKERS") {
        Ok(s) if !s.trim().is_empty() => match s.trim().parse::<usize>() {
            Ok(n) if n > 0 => n,
            _ => panic!("MEMKIT_BENCH_WORKERS: `{s}` is not one positive integer"),
        },
        _ => 2,
    }
}

fn bench(c: &mut Criterion, workers: usize) {
    let expected = expected_checksum();
    let check = move |s: Stats| {
        assert_eq!(s.checksum, expected, "a message was lost or changed");
        assert!(s.channel_peaks.iter().all(|&p| p <= CHANNEL_BYTES));
    };
    let mut group = c.benchmark_group("pipeline_1k");
    group.throughput(Throughput::Elements(MESSAGES as u64));
    group.sample_size(10);
    let mk = memkit_runtime(workers);
    group.bench_function(BenchmarkId::from_parameter("memkit_batch"), |b| {
        b.iter(|| check(memkit_batch(&mk)))
    });
    group.bench_function(BenchmarkId::from_parameter("memkit_box"), |b| {
        b.iter(|| check(memkit_box(&mk)))
    });
    drop(mk);
    let tk = tokio_runtime(workers);
    group.bench_function(BenchmarkId::from_parameter("tokio_vec"), |b| {
        b.iter(|| check(tokio_vec(&tk)))
    });
    group.bench_function(BenchmarkId::from_parameter("tokio_batch"), |b| {
        b.iter(|| check(tokio_batch(&tk)))
    });
    group.finish();
}

// ---------------------------------------------------------------------------------------------
// Peak RSS: one child process per variant and round.
// ---------------------------------------------------------------------------------------------

/// A line of `/proc/self/status` such as `VmHWM:  81234 kB`, in KiB (0 where unavailable).
fn proc_status_kib(key: &str) -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix(key)?.strip_prefix(':').map(str::to_owned))
        })
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

fn child(variant: &str, workers: usize) {
    let base_kib = proc_status_kib("VmRSS");
    let start = Instant::now();
    let stats = run_once(variant, workers);
    let wall = start.elapsed();
    assert_eq!(stats.checksum, expected_checksum(), "a message was lost");
    println!(
        "RESULT wall_ns={} hwm_kib={} base_kib={base_kib} peak1={} peak2={}",
        wall.as_nanos(),
        proc_status_kib("VmHWM"),
        stats.channel_peaks[0],
        stats.channel_peaks[1],
    );
}

/// What one child reports.
#[derive(Clone, Copy)]
struct Sample {
    wall: Duration,
    /// Peak RSS (`VmHWM`), KiB.
    hwm_kib: u64,
    /// RSS before the runtime was built, KiB.
    base_kib: u64,
    /// memkit only: the two channels' budget peaks, bytes.
    channel_peaks: [u64; 2],
}

fn spawn_child(variant: &str, workers: usize) -> Sample {
    let exe = std::env::current_exe().expect("current_exe");
    let out = Command::new(exe)
        .args(["--variant", variant, "--workers", &workers.to_string()])
        .output()
        .expect("re-exec the bench binary");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "`{variant}` child failed ({}):\n{stdout}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    let line = stdout
        .lines()
        .find_map(|l| l.strip_prefix("RESULT "))
        .unwrap_or_else(|| panic!("`{variant}` child printed no RESULT line:\n{stdout}"));
    let field = |key: &str| -> u64 {
        line.split_whitespace()
            .find_map(|f| f.strip_prefix(key)?.strip_prefix('='))
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("no `{key}` in `{line}`"))
    };
    Sample {
        wall: Duration::from_nanos(field("wall_ns")),
        hwm_kib: field("hwm_kib"),
        base_kib: field("base_kib"),
        channel_peaks: [field("peak1"), field("peak2")],
    }
}

fn rss_report(workers: usize) {
    let rounds: usize = std::env::var("MEMKIT_PIPELINE_ROUNDS")
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(3);
    println!(
        "\npipeline peak RSS: {MESSAGES} messages of {MSG} B, {workers} workers, channels of \
         {} KiB, {rounds} round(s), one child process per variant and round",
        CHANNEL_BYTES >> 10
    );
    let mut samples: Vec<Vec<Sample>> = vec![Vec::new(); VARIANTS.len()];
    for round in 0..rounds {
        for k in 0..VARIANTS.len() {
            // Rotate the order so drift hits every variant alike.
            let v = (k + round) % VARIANTS.len();
            samples[v].push(spawn_child(VARIANTS[v], workers));
        }
    }
    println!(
        "{:<13} {:>12} {:>16} {:>14} {:>22}",
        "variant", "median wall", "median peak RSS", "RSS above base", "channel budget peaks"
    );
    for (v, s) in samples.iter_mut().enumerate() {
        s.sort_by_key(|x| x.hwm_kib);
        let Sample {
            hwm_kib: hwm,
            base_kib: base,
            channel_peaks: peaks,
            ..
        } = s[s.len() / 2];
        let mut walls: Vec<Duration> = s.iter().map(|x| x.wall).collect();
        walls.sort();
        let peaks = if VARIANTS[v].starts_with("memkit") {
            format!("{} / {} KiB", peaks[0] >> 10, peaks[1] >> 10)
        } else {
            "-".to_string()
        };
        println!(
            "{:<13} {:>9.1} ms {:>12.1} MiB {:>10.1} MiB {:>22}",
            VARIANTS[v],
            walls[walls.len() / 2].as_secs_f64() * 1e3,
            hwm as f64 / 1024.0,
            hwm.saturating_sub(base) as f64 / 1024.0,
            peaks,
        );
    }
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let arg = |name: &str| {
        args.iter()
            .position(|a| a == name)
            .and_then(|i| args.get(i + 1))
            .cloned()
    };
    if let Some(variant) = arg("--variant") {
        let workers = arg("--workers").and_then(|w| w.parse().ok()).unwrap_or(2);
        child(&variant, workers);
        return;
    }
    let workers = workers();
    let mut c = Criterion::default().configure_from_args();
    bench(&mut c, workers);
    c.final_summary();
    if args.iter().any(|a| a == "--bench") {
        rss_report(workers);
    }
}
