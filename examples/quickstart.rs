//! Quick start: spawn tasks on the memkit-async runtime, join them, run blocking work on the
//! blocking pool, allocate in a task's arena under a byte budget, in a frame, and in a cache
//! bounded by bytes.
//!
//! Run with `cargo run --release --example quickstart`.

use memkit_async::{MkAsyncCache, MkAsyncFrameAlloc, MkAsyncFrameConfig};
use std::time::Instant;

#[memkit_async::main]
async fn main() {
    let start = Instant::now();

    // Fan out: each task sums a slice of the range; the results come back through JoinHandles.
    let tasks: Vec<_> = (0..8u64)
        .map(|i| {
            memkit_async::spawn(async move { (i * 1_000_000..(i + 1) * 1_000_000).sum::<u64>() })
        })
        .collect();
    let mut total = 0;
    for task in tasks {
        total += task.await.expect("the summing task panicked");
    }
    assert_eq!(total, (0..8_000_000u64).sum::<u64>());

    // Tasks cooperate: yield_now lets the other tasks on this worker run.
    let yielder = memkit_async::spawn(async {
        for _ in 0..100 {
            memkit_async::task::yield_now().await;
        }
        "yielded 100 times"
    });

    // Blocking work goes to its own pool so it never stalls the workers.
    let checksum = memkit_async::spawn_blocking(|| {
        std::iter::repeat_n(0xABu8, 1 << 20).fold(0u32, |acc, b| acc.wrapping_add(b as u32))
    });

    // Memory that moves with the task: a box in the task's arena (a pointer bump), charged per
    // chunk to a 1 MiB budget, valid across `.await` even if the task changes workers.
    let boxed = memkit_async::spawn_with_budget(1 << 20, async {
        let mut data = memkit_async::MkAsyncBox::new([0u64; 64])
            .await
            .expect("fits in 1 MiB");
        data[63] = 42;
        memkit_async::task::yield_now().await;
        let budget = memkit_async::MkBudget::current().expect("spawned with a budget");
        (data[63], budget.used(), budget.limit())
    });

    // Frames: a scoped arena the task opens and closes. Objects allocated in it stay valid
    // across `.await`; its memory is recycled when the guard drops and nothing in it is alive.
    let frames = memkit_async::spawn(async {
        let alloc = MkAsyncFrameAlloc::new(MkAsyncFrameConfig::default());
        let frame = alloc.begin_frame().await.expect("16 MiB of capacity");
        let mut samples = alloc
            .alloc_slice::<f64>(1024)
            .await
            .expect("fits the frame");
        for (i, s) in samples.iter_mut().enumerate() {
            *s = i as f64;
        }
        memkit_async::task::yield_now().await; // may resume on another worker
        let mean = samples.iter().sum::<f64>() / samples.len() as f64;
        let used = alloc.used();
        drop(samples);
        drop(frame);
        (mean, used, alloc.used())
    });

    // A cache bounded by bytes: when full, the oldest entries make room.
    let cache = MkAsyncCache::new(64 << 10);
    for i in 0..1000u32 {
        cache
            .insert(i, vec![i as u8; 512])
            .await
            .expect("fits after eviction");
    }

    // A panic inside a task is caught and reported through its JoinHandle.
    let failing = memkit_async::spawn(async { panic!("this task fails on purpose") });

    println!("sum of 0..8M       = {total}");
    println!("yielder            : {}", yielder.await.unwrap());
    println!("blocking checksum  = {:#x}", checksum.await.unwrap());
    let (value, used, limit) = boxed.await.unwrap();
    println!("arena box          = {value} ({used} of {limit} budget bytes: one chunk)");
    let (mean, used, after) = frames.await.unwrap();
    println!("frame mean         = {mean} ({used} bytes in the frame, {after} after closing)");
    println!(
        "cache              : {} entries in {} of 65536 bytes, {} evicted",
        cache.len(),
        cache.used_bytes(),
        cache.evicted()
    );
    println!("failing task       : {}", failing.await.unwrap_err());
    println!("done in {:?}", start.elapsed());
}
