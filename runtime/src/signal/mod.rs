//! Process signals (feature `signal`, Unix), delivered through the runtime's reactor:
//! [`ctrl_c`] for the common graceful-shutdown case, and [`unix::signal`] for any catchable
//! signal (`SIGTERM` from a service manager, `SIGHUP` to reload, ...).
//!
//! ```no_run
//! use memkit_async_runtime::signal::{self, unix::SignalKind};
//! # let rt = memkit_async_runtime::Runtime::new().unwrap();
//! # rt.block_on(async {
//! let mut terminate = signal::unix::signal(SignalKind::terminate()).unwrap();
//! let ctrl_c = signal::ctrl_c();
//! futures::pin_mut!(ctrl_c);
//! futures::future::select(ctrl_c, Box::pin(terminate.recv())).await;
//! println!("shutting down");
//! # });
//! ```

mod pipe;
pub mod unix;

use std::io;

/// Completes once the process receives `SIGINT` (Ctrl-C in a terminal) after this call's
/// first poll.
///
/// While the returned future exists, `SIGINT` no longer stops the process: the future
/// receives it instead. Once a first `ctrl_c()` has been polled, a `SIGINT` that no pending
/// future (or [`unix::Signal`]) waits for is ignored rather than stopping the process (its
/// handler stays installed for the process's life); call `ctrl_c()` again to wait for the
/// next one.
///
/// # Errors
///
/// Outside a runtime, if the runtime shuts down while waiting, or if the handler or the
/// socket pair cannot be created (out of file descriptors).
///
/// ```no_run
/// # let rt = memkit_async_runtime::Runtime::new().unwrap();
/// # rt.block_on(async {
/// memkit_async_runtime::signal::ctrl_c().await.unwrap();
/// println!("shutting down");
/// # });
/// ```
pub async fn ctrl_c() -> io::Result<()> {
    let mut interrupts = unix::signal(unix::SignalKind::interrupt())?;
    interrupts
        .recv()
        .await
        .ok_or_else(crate::io::shutdown_error)
}

#[cfg(test)]
mod tests;
