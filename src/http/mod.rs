//! HTTP services and clients on memkit's own workers (feature `hyper`).
//!
//! hyper 1.x runs on any runtime through its `rt` traits; this module provides them for
//! memkit, so hyper, axum and other hyper-based services run their connections as memkit
//! tasks, spread over the runtime's workers, each under a byte budget of its own, instead of
//! on the `tokio` bridge's one thread (where `axum::serve` and hyper-util's `TokioExecutor`
//! would put them):
//!
//! - [`MkExecutor`]: hyper's `Executor`, spawning memkit tasks (optionally under a budget);
//! - [`MkTimer`]: hyper's `Timer`, on the runtime's timer wheel;
//! - `hyper::rt::Read`/`Write` for [`TcpStream`](crate::net::TcpStream) and its owned halves,
//!   reading straight into hyper's buffers;
//! - [`serve`] / [`serve_hyper`]: a server as small as `axum::serve`, with HTTP/1.1 keep-alive
//!   and HTTP/2, per-connection budgets, request admission (`503` when the memory limit cannot
//!   take a request's body), a header-read timeout and graceful shutdown;
//! - [`MkConnector`] and [`client_builder`]: hyper-util's `Client` on memkit.
//!
//! ```
//! use axum::{routing::get, Router};
//! use memkit_async::MkBackpressure;
//!
//! #[memkit_async::main(worker_threads = 2, memory_limit = 256 << 20)]
//! async fn main() {
//!     let listener = memkit_async::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
//!     let app = Router::new().route("/", get(|| async { "hello" }));
//! #   let ctrl_c = async { memkit_async::time::sleep(std::time::Duration::from_millis(5)).await };
//! #   #[cfg(any())]
//!     let ctrl_c = async { memkit_async::signal::ctrl_c().await.unwrap() };
//!     memkit_async::http::serve(listener, app)
//!         .per_connection_budget(8 << 20, MkBackpressure::Fail)
//!         .with_graceful_shutdown(ctrl_c)
//!         .await
//!         .unwrap();
//! }
//! # main();
//! ```

mod admission;
mod client;
mod connection;
mod executor;
mod prefixed;
mod serve;
mod timer;
mod watch;

pub use client::{client_builder, MkConnection, MkConnector};
pub use executor::MkExecutor;
pub use serve::{serve, serve_hyper, Serve};
pub use timer::{MkSleep, MkTimer};
