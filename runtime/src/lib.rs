//! The engine of memkit-async: a work-stealing executor whose task headers carry an arena
//! pointer, worker parking, a blocking pool, timers and networking.
//!
//! Most users depend on `memkit-async`, which re-exports everything here.
//!
//! ```
//! let rt = memkit_async_runtime::Runtime::new().unwrap();
//! let sum = rt.block_on(async {
//!     let tasks: Vec<_> = (0..10u64).map(|i| memkit_async_runtime::spawn(async move { i })).collect();
//!     let mut sum = 0;
//!     for t in tasks {
//!         sum += t.await.unwrap();
//!     }
//!     sum
//! });
//! assert_eq!(sum, 45);
//! ```

mod blocking;
mod context;
mod coop;
mod driver;
pub mod heap;
pub mod io;
pub mod memory;
pub mod net;
pub mod runtime;
mod scheduler;
#[cfg(all(feature = "signal", unix))]
pub mod signal;
mod sync;
pub mod task;
mod task_core;
pub mod time;
mod tokio_bridge;
mod unwind;

pub use blocking::spawn_blocking;
pub use runtime::{spawn, Builder, Handle, Runtime};
/// The waiter list that the `memkit-async` crate's pool, semaphore and channel queue on; not a
/// stable API.
#[doc(hidden)]
pub use sync::wait_list;
pub use task::{spawn_with_budget, JoinError, JoinHandle};
