//! Working with tokio (feature `tokio`, off by default), in both directions.
//!
//! **memkit memory inside tokio tasks.** [`spawn_with_budget`] spawns a tokio task that owns a
//! memkit task arena and a byte budget ([`MkArenaTask`]): inside it, `MkAsyncBox`,
//! `MkAsyncVec` and [`MkBudget::current`](crate::MkBudget::current) work as in a memkit task,
//! and the budget's policy applies (`Wait` leaves the task pending, woken through tokio's waker
//! when memory is released; `Timeout` gives up after its duration; `Fail` errs at once). The
//! arena travels with the task between tokio's worker threads; objects that escape it (through
//! a channel, as the task's output) stay valid and are freed wherever they are dropped.
//!
//! ```
//! use memkit_async::{MkAsyncBox, MkBackpressure, MkBudget};
//!
//! #[tokio::main]
//! async fn main() {
//!     let budget = MkBudget::new(1 << 20).with_policy(MkBackpressure::Fail);
//!     let sum = memkit_async::tokio::spawn_with_budget(&budget, async {
//!         let data = MkAsyncBox::new([3u64; 100]).await.unwrap();
//!         tokio::task::yield_now().await; // may resume on another tokio worker
//!         data.iter().sum::<u64>()
//!     });
//!     assert_eq!(sum.await.unwrap(), 300);
//!     assert_eq!(budget.used(), 0); // the task's arena gave its chunk back
//! }
//! # main();
//! ```
//!
//! **tokio-based code inside memkit tasks.** With the feature on, every memkit
//! [`Runtime`](crate::Runtime) runs a tokio runtime in the background (a current-thread
//! runtime with its I/O and time drivers, driven by one thread named `memkit-tokio`) and enters
//! its context on every worker thread, every blocking thread and in `block_on`. So
//! `tokio::net`, `tokio::time`, `tokio::task::spawn_blocking` and libraries built on them work
//! inside memkit tasks unchanged; the tasks themselves keep running on memkit's workers, with
//! their arenas and budgets. `tokio::spawn` inside a memkit task runs the spawned task on the
//! bridge thread: use `memkit_async::spawn` for work that should spread over the workers.
//!
//! ```
//! #[memkit_async::main(worker_threads = 2)]
//! async fn main() {
//!     let start = std::time::Instant::now();
//!     tokio::time::sleep(std::time::Duration::from_millis(5)).await;
//!     let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
//!     assert!(listener.local_addr().unwrap().port() > 0);
//!     let answer = tokio::task::spawn_blocking(|| 6 * 7).await.unwrap();
//!     assert_eq!(answer, 42);
//!     assert!(start.elapsed() >= std::time::Duration::from_millis(5));
//! }
//! # main();
//! ```
//!
//! Cost: per memkit runtime, one extra thread asleep in the I/O driver (no CPU while idle), one
//! tokio runtime (an I/O driver, a timer wheel, a blocking pool started on demand) and one
//! context entry per thread; nothing per poll or per spawn. The runtime's `on_thread_start` /
//! `on_thread_stop` callbacks do not run on the bridge's threads. Shutting the memkit runtime
//! down shuts the tokio runtime down and joins its thread, within the same time limit.

mod spawn;

pub use memkit_async_runtime::memory::MkArenaTask;
pub use memkit_async_runtime::task::TaskBudget;
pub use spawn::{spawn_with_budget, with_budget};
