//! Helpers shared by the engine's end-to-end tests: runtimes built for a test and a value that
//! counts its drops. Standard library only, so that every test here runs under Miri.
#![allow(dead_code)]

use memkit_async_runtime::{Builder, Runtime};
use std::future::Future;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll, Waker};

/// The first chunk of every arena: the smallest chunk class.
pub const CHUNK: usize = 4096;

/// A runtime with `workers` worker threads.
pub fn runtime(workers: usize) -> Runtime {
    Builder::new()
        .worker_threads(workers)
        .build()
        .expect("build a runtime")
}

/// A runtime with `workers` worker threads and a root budget (`memory_limit`) of `limit` bytes.
pub fn runtime_with_limit(workers: usize, limit: usize) -> Runtime {
    Builder::new()
        .worker_threads(workers)
        .memory_limit(limit)
        .build()
        .expect("build a runtime")
}

/// Adds one to its counter when dropped.
pub struct DropCount(pub Arc<AtomicUsize>);

impl Drop for DropCount {
    fn drop(&mut self) {
        self.0.fetch_add(1, Ordering::SeqCst);
    }
}

/// Polls `future` to completion on this thread, outside any runtime (none may be left),
/// yielding the thread between polls.
pub fn block_on<F: Future>(future: F) -> F::Output {
    let mut future = std::pin::pin!(future);
    let mut cx = Context::from_waker(Waker::noop());
    loop {
        if let Poll::Ready(v) = future.as_mut().poll(&mut cx) {
            return v;
        }
        std::thread::yield_now();
    }
}
