//! A three-stage pipeline: producer -> transform -> consumer, 1 000 000 messages of 1 KiB.
//!
//! Messages travel in batches of 64: each batch is one `MkAsyncVec<u8>` in the producer's task
//! arena, and sending it through an `MkAsyncChannel` moves a pointer, never the 64 KiB. Each
//! channel is bounded by bytes (1 MiB) with the `Wait` policy, so a fast producer is parked by
//! the scheduler whenever the next stage falls behind, and memory stays bounded however long
//! the stream is. The runtime's `memory_limit` caps the arenas as a whole.
//!
//! Prints throughput and peak memory: the process's peak RSS (`VmHWM` from `/proc/self/status`,
//! Linux only) and the budgets' `peak()`. Run with `cargo run --release --example pipeline`.

use memkit_async::{MkAsyncChannel, MkAsyncVec, MkBackpressure, MkByteSize};
use std::time::Instant;

const MESSAGES: usize = 1_000_000;
const MSG: usize = 1024;
const BATCH: usize = 64;
const CHANNEL_BYTES: usize = 1 << 20;
const MEMORY_LIMIT: usize = 16 << 20;

/// A batch of messages, `MSG` bytes each, in arena memory.
struct Batch {
    first: usize,
    data: MkAsyncVec<u8>,
}

impl MkByteSize for Batch {
    fn byte_size(&self) -> usize {
        self.data.byte_size()
    }
}

/// A line of `/proc/self/status` such as `VmHWM:  8123 kB`, in KiB (`None` off Linux).
fn proc_status_kib(key: &str) -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status
        .lines()
        .find_map(|l| l.strip_prefix(key)?.strip_prefix(':'))?;
    line.trim().trim_end_matches("kB").trim().parse().ok()
}

fn main() {
    let rt = memkit_async::Builder::new()
        .memory_limit(MEMORY_LIMIT)
        .build()
        .expect("failed to build the runtime");
    let start = Instant::now();
    let (checksum, channel_peaks) = rt.block_on(async {
        let (to_transform, mut from_producer) =
            MkAsyncChannel::<Batch>::bounded_bytes(CHANNEL_BYTES, MkBackpressure::Wait);
        let (to_consumer, mut from_transform) =
            MkAsyncChannel::<Batch>::bounded_bytes(CHANNEL_BYTES, MkBackpressure::Wait);
        let peaks = [to_transform.budget().clone(), to_consumer.budget().clone()];

        let producer = memkit_async::spawn(async move {
            for first in (0..MESSAGES).step_by(BATCH) {
                let mut data = MkAsyncVec::with_capacity(BATCH * MSG)
                    .await
                    .expect("a 64 KiB batch fits under the memory limit, so Wait never fails");
                for i in first..first + BATCH {
                    let len = data.len();
                    data.try_resize(len + MSG, (i % 251) as u8)
                        .expect("within capacity");
                }
                if to_transform.send(Batch { first, data }).await.is_err() {
                    return; // the pipeline was torn down
                }
            }
        });
        let transform = memkit_async::spawn(async move {
            while let Some(mut batch) = from_producer.recv().await {
                for msg in batch.data.chunks_exact_mut(MSG) {
                    msg[0] = msg[0].wrapping_add(1); // in place: the batch never moves
                }
                if to_consumer.send(batch).await.is_err() {
                    return;
                }
            }
        });
        let consumer = memkit_async::spawn(async move {
            let mut checksum = 0u64;
            let mut next = 0;
            while let Some(batch) = from_transform.recv().await {
                assert_eq!(batch.first, next, "batches arrive in order");
                next += BATCH;
                checksum += batch
                    .data
                    .chunks_exact(MSG)
                    .map(|m| u64::from(m[0]))
                    .sum::<u64>();
            }
            assert_eq!(next, MESSAGES, "every message arrived");
            checksum
        });
        producer.await.expect("producer panicked");
        transform.await.expect("transform panicked");
        let checksum = consumer.await.expect("consumer panicked");
        (checksum, peaks.map(|b| b.peak()))
    });
    let elapsed = start.elapsed();
    let expected: u64 = (0..MESSAGES)
        .map(|i| u64::from(((i % 251) as u8).wrapping_add(1)))
        .sum();
    assert_eq!(checksum, expected);

    let secs = elapsed.as_secs_f64();
    println!(
        "{MESSAGES} messages of {MSG} B in batches of {BATCH}: {:.1} ms, {:.2} M messages/s, \
         {:.0} MiB/s",
        secs * 1e3,
        MESSAGES as f64 / secs / 1e6,
        (MESSAGES * MSG) as f64 / secs / (1 << 20) as f64,
    );
    println!(
        "channel budgets: peak {} KiB and {} KiB of {} KiB each",
        channel_peaks[0] >> 10,
        channel_peaks[1] >> 10,
        CHANNEL_BYTES >> 10,
    );
    println!(
        "arena memory (runtime budget): peak {:.1} MiB of a {} MiB limit",
        rt.memory_budget().peak() as f64 / (1 << 20) as f64,
        MEMORY_LIMIT >> 20,
    );
    match proc_status_kib("VmHWM") {
        Some(kib) => println!(
            "process peak RSS (VmHWM): {:.1} MiB, for {} MiB of messages streamed",
            kib as f64 / 1024.0,
            (MESSAGES * MSG) >> 20
        ),
        None => println!("process peak RSS: not available on this platform"),
    }
}
