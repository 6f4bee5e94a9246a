//! Process signals (feature `signal`, Unix): [`ctrl_c`] completes when the process receives
//! `SIGINT`, for graceful shutdown.
//!
//! Delivery uses the self-pipe pattern: a signal handler installed by `signal-hook` writes a
//! byte into one end of a Unix socket pair, whose other end is registered with the runtime's
//! reactor like any socket. No thread is started and nothing runs while no signal comes.

use crate::io::{Direction, PollEvented};
use std::future::poll_fn;
use std::io::{self, Read};
use std::os::unix::net::UnixStream;

/// Completes once the process receives `SIGINT` (Ctrl-C in a terminal) after this call.
///
/// While the returned future exists, `SIGINT` no longer stops the process: the future
/// receives it instead. Once a first `ctrl_c()` has been called, a `SIGINT` that no pending
/// future waits for is ignored rather than stopping the process (its handler stays
/// installed for the process's life); install a new `ctrl_c()` to wait for the next one.
///
/// # Errors
///
/// Outside a runtime, or if the handler or the socket pair cannot be created (out of file
/// descriptors).
///
/// ```no_run
/// # let rt = memkit_async_runtime::Runtime::new().unwrap();
/// # rt.block_on(async {
/// memkit_async_runtime::signal::ctrl_c().await.unwrap();
/// println!("shutting down");
/// # });
/// ```
pub async fn ctrl_c() -> io::Result<()> {
    let listener = SignalPipe::new(signal_hook::consts::SIGINT)?;
    let mut wait = listener.read.wait(Direction::Read);
    poll_fn(|cx| {
        wait.poll_io(cx, |mut read| {
            // Drain every byte: each stands for one delivery since the registration.
            let mut buf = [0u8; 64];
            let mut got = false;
            loop {
                match read.read(&mut buf) {
                    Ok(0) => return Err(io::ErrorKind::UnexpectedEof.into()),
                    Ok(_) => got = true,
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock && got => return Ok(()),
                    Err(e) => return Err(e),
                }
            }
        })
    })
    .await
}

/// A signal handler writing into a socket pair whose read end the reactor watches.
struct SignalPipe {
    read: PollEvented<mio::net::UnixStream>,
    id: signal_hook::SigId,
}

impl SignalPipe {
    fn new(signal: i32) -> io::Result<SignalPipe> {
        let (read, write) = UnixStream::pair()?;
        read.set_nonblocking(true)?;
        let read = PollEvented::new(mio::net::UnixStream::from_std(read))?;
        // The handler owns the write end from here on and closes it when unregistered.
        let id = signal_hook::low_level::pipe::register(signal, write)?;
        Ok(SignalPipe { read, id })
    }
}

impl Drop for SignalPipe {
    fn drop(&mut self) {
        signal_hook::low_level::unregister(self.id);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::time::{sleep, timeout};
    use std::future::Future;
    use std::time::Duration;

    #[test]
    fn ctrl_c_completes_on_sigint_and_not_before() {
        let rt = crate::Runtime::new().unwrap();
        rt.block_on(async {
            let mut waiting = Box::pin(ctrl_c());
            async fn poll_once<F: Future + Unpin>(fut: &mut F) -> bool {
                poll_fn(|cx| std::task::Poll::Ready(std::pin::Pin::new(&mut *fut).poll(cx)))
                    .await
                    .is_pending()
            }
            // The first poll installs the handler; nothing completes it without a signal.
            assert!(poll_once(&mut waiting).await);
            sleep(Duration::from_millis(20)).await;
            assert!(poll_once(&mut waiting).await);
            // The process survives the signal: the future receives it.
            signal_hook::low_level::raise(signal_hook::consts::SIGINT).unwrap();
            let res = timeout(Duration::from_secs(10), waiting).await;
            assert!(matches!(res, Ok(Ok(()))), "{res:?}");
        });
    }
}
