//! An axum application served on memkit's own workers, with a runtime memory limit and a
//! byte budget per connection.
//!
//! ```text
//! cargo run --release --example http_server --features hyper
//! curl http://127.0.0.1:3000/ ; curl http://127.0.0.1:3000/json
//! curl --data-binary @some-file http://127.0.0.1:3000/upload
//! ```
//!
//! Stops on Ctrl-C, or after `HTTP_SERVER_SECS` seconds. Settings (environment):
//! `HTTP_ADDR` (127.0.0.1:3000), `HTTP_WORKERS` (one per core), `HTTP_MEMORY_LIMIT` (bytes,
//! 256 MiB), `HTTP_CONNECTION_BUDGET` (bytes, 8 MiB).
//!
//! A request body that the memory limit cannot take is answered `503` ("server at its memory
//! limit") instead of growing the process: try many large uploads at once.
//!
//! Unsafe code: one `mallopt` call, made before any other thread exists.

mod http_app;

use http_app::env_or;
use memkit_async::MkBackpressure;
use std::time::Duration;

fn main() -> std::io::Result<()> {
    let addr: String = env_or("HTTP_ADDR", "127.0.0.1:3000".to_string());
    let workers = env_or(
        "HTTP_WORKERS",
        std::thread::available_parallelism().map_or(2, |n| n.get()),
    );
    let memory_limit = env_or("HTTP_MEMORY_LIMIT", 256usize << 20);
    let connection_budget = env_or("HTTP_CONNECTION_BUDGET", 8usize << 20);
    let secs: Option<u64> = std::env::var("HTTP_SERVER_SECS")
        .ok()
        .and_then(|s| s.parse().ok());

    return_freed_buffers_to_the_os();
    let rt = memkit_async::Builder::new()
        .worker_threads(workers)
        .memory_limit(memory_limit)
        .build()?;
    rt.block_on(async move {
        let listener = memkit_async::net::TcpListener::bind(addr.as_str()).await?;
        println!(
            "listening on http://{} ({workers} workers, memory limit {} MiB, {} MiB per connection)",
            listener.local_addr()?,
            memory_limit >> 20,
            connection_budget >> 20
        );
        let stop = async move {
            let ctrl_c = async {
                if let Err(e) = memkit_async::signal::ctrl_c().await {
                    eprintln!("cannot listen for Ctrl-C ({e}); serving until stopped otherwise");
                    std::future::pending::<()>().await;
                }
            };
            match secs {
                Some(secs) => {
                    let _ = memkit_async::time::timeout(Duration::from_secs(secs), ctrl_c).await;
                }
                None => ctrl_c.await,
            }
            println!("shutting down: finishing in-flight requests");
        };
        memkit_async::http::serve(listener, http_app::router())
            .per_connection_budget(connection_budget, MkBackpressure::Fail)
            .with_graceful_shutdown(stop)
            .await?;
        println!("stopped");
        Ok(())
    })
}

/// glibc keeps freed large buffers (request bodies of megabytes) in its heap once its mmap
/// threshold has adapted upwards, so the process's resident memory stays at its high-water
/// mark plus fragmentation even though the runtime's memory limit holds the live bytes to
/// 256 MiB. A fixed threshold makes every buffer from 128 KiB up its own mapping, returned to
/// the system when freed: resident memory then follows the live bytes.
fn return_freed_buffers_to_the_os() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: `mallopt` only changes a tuning parameter; called before any other thread runs.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, 128 << 10);
    }
}
