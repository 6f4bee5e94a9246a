//! The tokio bridge's trap made visible: tasks spawned with `tokio::spawn` inside memkit tasks
//! are counted by `num_bridge_tasks`, and a pile-up of them is reported once through `tracing`,
//! naming the memkit function to use instead.
#![cfg(feature = "tokio")]

mod common;

use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Collects what the `tracing` subscriber writes.
#[derive(Clone, Default)]
struct Log(Arc<Mutex<Vec<u8>>>);

impl Write for Log {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Log {
    fn text(&self) -> String {
        String::from_utf8(self.0.lock().unwrap().clone()).unwrap()
    }

    fn warnings(&self) -> usize {
        self.text()
            .matches("tasks are alive on the memkit-tokio bridge thread")
            .count()
    }
}

/// Spawns `n` tokio tasks that never finish, from a memkit task, as `axum::serve` would.
async fn spawn_on_bridge(n: usize) {
    memkit_async::spawn(async move {
        for _ in 0..n {
            tokio::spawn(std::future::pending::<()>());
        }
    })
    .await
    .unwrap();
    // A round trip through the bridge thread: it has run (and parked after) the spawns.
    tokio::spawn(async {}).await.unwrap();
}

#[test]
fn tasks_piling_up_on_the_bridge_are_counted_and_reported_once() {
    let log = Log::default();
    let writer = log.clone();
    tracing::subscriber::set_global_default(
        tracing_subscriber::fmt()
            .with_writer(move || writer.clone())
            .with_ansi(false)
            .finish(),
    )
    .unwrap();
    common::with_timeout(Duration::from_secs(60), move || {
        let rt = memkit_async::Builder::new()
            .worker_threads(2)
            .build()
            .unwrap();
        let metrics = rt.metrics();
        rt.block_on(async {
            // The round trip's own task leaves the count once tokio releases it.
            spawn_on_bridge(10).await;
            common::wait_until("10 tasks on the bridge", || {
                metrics.num_bridge_tasks() == 10
            });
            assert_eq!(log.warnings(), 0, "10 tasks are no pile-up: {}", log.text());
            spawn_on_bridge(90).await;
            common::wait_until("100 tasks on the bridge", || {
                metrics.num_bridge_tasks() == 100
            });
            common::wait_until("the pile-up is reported", || log.warnings() == 1);
            let text = log.text();
            assert!(text.contains("WARN"), "{text}");
            assert!(text.contains("`memkit_async::spawn`"), "{text}");
            assert!(text.contains("`memkit_async::http::serve`"), "{text}");
            spawn_on_bridge(100).await;
            common::wait_until("200 tasks on the bridge", || {
                metrics.num_bridge_tasks() == 200
            });
            assert_eq!(log.warnings(), 1, "reported once: {}", log.text());
        });
        drop(rt);
    });
}
