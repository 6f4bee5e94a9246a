//! The tokio twin of `http_server` for the HTTP benchmark (benches/http/run.sh): the same
//! router, served by `axum::serve` on a multi-threaded tokio runtime with the same worker
//! count. Settings as for `http_server` (`HTTP_ADDR`, `HTTP_WORKERS`, `HTTP_SERVER_SECS`).

#[path = "../../examples/http_app/mod.rs"]
mod http_app;

use http_app::env_or;
use std::time::Duration;

fn main() -> std::io::Result<()> {
    let addr: String = env_or("HTTP_ADDR", "127.0.0.1:3001".to_string());
    let workers = env_or(
        "HTTP_WORKERS",
        std::thread::available_parallelism().map_or(2, |n| n.get()),
    );
    let secs: Option<u64> = std::env::var("HTTP_SERVER_SECS")
        .ok()
        .and_then(|s| s.parse().ok());
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(workers)
        .enable_all()
        .build()?;
    rt.block_on(async move {
        let listener = tokio::net::TcpListener::bind(addr.as_str()).await?;
        println!(
            "listening on http://{} ({workers} tokio workers)",
            listener.local_addr()?
        );
        let stop = async move {
            match secs {
                Some(secs) => {
                    let _ =
                        tokio::time::timeout(Duration::from_secs(secs), tokio::signal::ctrl_c())
                            .await;
                }
                None => {
                    let _ = tokio::signal::ctrl_c().await;
                }
            }
        };
        use axum::serve::ListenerExt;
        // Same socket options as memkit's server: responses go out without Nagle's delay.
        let listener = listener.tap_io(|tcp| {
            let _ = tcp.set_nodelay(true);
        });
        axum::serve(listener, http_app::router())
            .with_graceful_shutdown(stop)
            .await
    })
}
