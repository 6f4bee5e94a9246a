//! Small end-to-end scenarios sized to run under Miri (`cargo +nightly miri test`), which
//! checks the engine's unsafe code for undefined behaviour across real thread interleavings.

mod common;

use common::{block_on, runtime, DropCount};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

#[test]
fn spawn_join_yield_and_wake_across_workers() {
    let rt = runtime(2);
    let total = rt.block_on(async {
        let tasks: Vec<_> = (0..8u64)
            .map(|i| {
                memkit_async_runtime::spawn(async move {
                    memkit_async_runtime::task::yield_now().await;
                    i * 3
                })
            })
            .collect();
        let mut sum = 0;
        for t in tasks {
            sum += t.await.unwrap();
        }
        sum
    });
    assert_eq!(total, 3 * 28);
}

#[test]
fn abort_panic_and_shutdown_drop_each_future_once() {
    let drops = Arc::new(AtomicUsize::new(0));
    let rt = runtime(2);
    let pending: Vec<_> = (0..4)
        .map(|_| {
            let guard = DropCount(drops.clone());
            rt.spawn(async move {
                let _guard = guard;
                std::future::pending::<()>().await
            })
        })
        .collect();
    pending[0].abort();
    let panicked = rt.block_on(rt.spawn(async { panic!("expected") }));
    assert!(panicked.unwrap_err().is_panic());
    let output = DropCount(drops.clone());
    let detached = rt.spawn(async move { output });
    drop(detached);
    drop(rt);
    // Four pending futures and one detached output, each dropped exactly once.
    assert_eq!(drops.load(Ordering::SeqCst), 5);
    for handle in pending {
        assert!(block_on(handle).unwrap_err().is_cancelled());
    }
}

#[test]
fn blocking_pool_runs_and_joins() {
    let rt = runtime(1);
    let v = rt.block_on(rt.spawn_blocking(|| 7)).unwrap();
    assert_eq!(v, 7);
}
