//! Memory pressure: 2 000 tasks each want 1 MiB at once, under a 64 MiB runtime limit.
//!
//! With `Wait` (the default policy) the tasks that do not fit are parked by the scheduler until
//! memory is released, so peak memory stays at the limit instead of reaching 2 GiB; each task
//! gets its megabyte in turn, FIFO. Run with `cargo run --release --example memory_pressure`.

use memkit_async::{MkAsyncVec, MkBackpressure};
use std::time::Instant;

const LIMIT: usize = 64 << 20;
const TASKS: usize = 2_000;
const PER_TASK: usize = 1 << 20;

fn main() {
    let rt = memkit_async::Builder::new()
        .memory_limit(LIMIT)
        .build()
        .expect("failed to build the runtime");
    let start = Instant::now();
    let checksum = rt.block_on(async {
        let tasks: Vec<_> = (0..TASKS)
            .map(|i| {
                memkit_async::spawn(async move {
                    let mut buf = MkAsyncVec::<u8>::with_capacity(PER_TASK)
                        .await
                        .expect("a 1 MiB request fits under a 64 MiB limit, so Wait never fails");
                    // Touch every page, so the memory is real.
                    buf.try_resize(PER_TASK, i as u8).expect("within capacity");
                    memkit_async::task::yield_now().await; // hold the memory across a yield
                    buf.iter().step_by(4096).map(|&b| b as u64).sum::<u64>()
                })
            })
            .collect();
        let mut sum = 0;
        for t in tasks {
            sum += t.await.expect("task failed");
        }
        sum
    });
    let m = rt.metrics();
    println!(
        "{TASKS} tasks x {} KiB under a {} MiB limit",
        PER_TASK >> 10,
        LIMIT >> 20
    );
    println!("  finished in      {:?}", start.elapsed());
    println!(
        "  peak charged     {} MiB (limit {} MiB)",
        m.memory_peak() >> 20,
        LIMIT >> 20
    );
    println!("  in use now       {} bytes", m.memory_used());
    println!(
        "  chunks from OS   {}, reused {}, returned {}",
        m.chunks_allocated(),
        m.chunks_reused(),
        m.chunks_returned()
    );
    println!("  checksum         {checksum}");
    assert!(m.memory_peak() <= LIMIT);

    // With `Fail`, requests that do not fit are refused at once instead: 100 tasks that all
    // hold their megabyte until every one has tried, under the same 64 MiB.
    const HOLDERS: usize = 100;
    let tried = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let refused = rt.block_on(async {
        let tasks: Vec<_> = (0..HOLDERS)
            .map(|_| {
                let tried = tried.clone();
                memkit_async::task::Builder::new()
                    .policy(MkBackpressure::Fail)
                    .spawn(async move {
                        let buf = MkAsyncVec::<u8>::with_capacity(PER_TASK).await;
                        tried.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                        while tried.load(std::sync::atomic::Ordering::SeqCst) < HOLDERS {
                            memkit_async::task::yield_now().await;
                        }
                        buf.is_err()
                    })
                    .expect("no reservation, so spawning cannot fail")
            })
            .collect();
        let mut refused = 0;
        for t in tasks {
            refused += t.await.expect("task failed") as usize;
        }
        refused
    });
    println!(
        "with Fail: {refused} of {HOLDERS} requests refused at once (64 fit), peak still {} MiB",
        rt.metrics().memory_peak() >> 20
    );
    assert_eq!(refused, HOLDERS - LIMIT / PER_TASK);
}
