//! Unix signals: [`signal`] listens for one kind of signal, [`Signal::recv`] waits for the next
//! delivery.

use super::pipe::SignalPipe;
use std::io;
use std::os::raw::c_int;
use std::task::{Context, Poll};

/// A kind of Unix signal: the named constructors cover the usual ones, [`from_raw`] any
/// other number (for example a real-time signal).
///
/// [`from_raw`]: SignalKind::from_raw
///
/// ```
/// use memkit_async_runtime::signal::unix::SignalKind;
/// assert_eq!(SignalKind::terminate().as_raw_value(), libc::SIGTERM);
/// assert_eq!(SignalKind::from_raw(libc::SIGUSR1), SignalKind::user_defined1());
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct SignalKind(c_int);

impl SignalKind {
    /// The signal with this number. Whether it can be listened for is checked by [`signal`].
    pub const fn from_raw(signum: c_int) -> SignalKind {
        SignalKind(signum)
    }

    /// The signal's number.
    pub const fn as_raw_value(&self) -> c_int {
        self.0
    }

    /// `SIGALRM`: a timer set with `alarm` expired.
    pub const fn alarm() -> SignalKind {
        SignalKind(libc::SIGALRM)
    }

    /// `SIGCHLD`: a child process stopped or exited.
    pub const fn child() -> SignalKind {
        SignalKind(libc::SIGCHLD)
    }

    /// `SIGHUP`: the terminal closed; daemons take it as "reload the configuration".
    pub const fn hangup() -> SignalKind {
        SignalKind(libc::SIGHUP)
    }

    /// `SIGINT`: Ctrl-C in a terminal.
    pub const fn interrupt() -> SignalKind {
        SignalKind(libc::SIGINT)
    }

    /// `SIGIO`: I/O is possible on a descriptor set up for it.
    pub const fn io() -> SignalKind {
        SignalKind(libc::SIGIO)
    }

    /// `SIGPIPE`: a write to a pipe or socket with no reader.
    pub const fn pipe() -> SignalKind {
        SignalKind(libc::SIGPIPE)
    }

    /// `SIGQUIT`: Ctrl-\ in a terminal.
    pub const fn quit() -> SignalKind {
        SignalKind(libc::SIGQUIT)
    }

    /// `SIGTERM`: a polite request to stop, as service managers and `kill` send.
    pub const fn terminate() -> SignalKind {
        SignalKind(libc::SIGTERM)
    }

    /// `SIGUSR1`: meaning defined by the program.
    pub const fn user_defined1() -> SignalKind {
        SignalKind(libc::SIGUSR1)
    }

    /// `SIGUSR2`: meaning defined by the program.
    pub const fn user_defined2() -> SignalKind {
        SignalKind(libc::SIGUSR2)
    }

    /// `SIGWINCH`: the terminal's window changed size.
    pub const fn window_change() -> SignalKind {
        SignalKind(libc::SIGWINCH)
    }
}

impl From<c_int> for SignalKind {
    fn from(signum: c_int) -> SignalKind {
        SignalKind::from_raw(signum)
    }
}

impl From<SignalKind> for c_int {
    fn from(kind: SignalKind) -> c_int {
        kind.as_raw_value()
    }
}

/// Listens for deliveries of one kind of signal; made by [`signal`].
///
/// Deliveries that arrive while nobody waits are kept until the next [`recv`](Signal::recv),
/// several of them as one: a `recv` says "at least one since the last". Every `Signal` for
/// the same kind receives each delivery. Dropping it stops the listening; the signal's
/// handler stays installed for the process's life, so the signal's default action (usually
/// ending the process) does not come back.
#[derive(Debug)]
pub struct Signal {
    pipe: SignalPipe,
}

impl Signal {
    /// Waits for the next delivery: `Some(())` once the signal came (since this `Signal` was
    /// made, or since the previous `recv`), `None` if none can come any more because the
    /// runtime this `Signal` was made in shut down.
    ///
    /// Dropping the future before it completes loses no delivery: the next `recv` gets it.
    pub async fn recv(&mut self) -> Option<()> {
        self.pipe.recv().await
    }

    /// Polls for the next delivery, as [`recv`](Self::recv); only the latest poll's waker is
    /// kept.
    pub fn poll_recv(&mut self, cx: &mut Context<'_>) -> Poll<Option<()>> {
        self.pipe.poll_recv(cx)
    }
}

/// Listens for `kind` from now on, through the current runtime's reactor.
///
/// The first call for a kind installs a process-wide handler for it, replacing the signal's
/// default action for the rest of the process's life (deliveries that no `Signal` listens
/// for are then ignored); listen before the signal can matter. Each `Signal` costs a pair of
/// file descriptors.
///
/// # Errors
///
/// Outside a runtime; for a signal that cannot be caught (`SIGKILL`, `SIGSTOP`), one whose
/// handler would break the process (`SIGILL`, `SIGFPE`, `SIGSEGV`) or a number that is no
/// signal; or when out of file descriptors.
///
/// ```no_run
/// use memkit_async_runtime::signal::unix::{signal, SignalKind};
/// # let rt = memkit_async_runtime::Runtime::new().unwrap();
/// # rt.block_on(async {
/// let mut hangups = signal(SignalKind::hangup()).unwrap();
/// while hangups.recv().await.is_some() {
///     println!("reloading the configuration");
/// }
/// # });
/// ```
pub fn signal(kind: SignalKind) -> io::Result<Signal> {
    let signum = kind.as_raw_value();
    if signum <= 0 || signal_hook::consts::FORBIDDEN.contains(&signum) {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!(
                "cannot listen for signal {signum}: SIGKILL and SIGSTOP cannot be caught, \
                 SIGILL, SIGFPE and SIGSEGV must keep their default action, and a signal \
                 number is positive"
            ),
        ));
    }
    Ok(Signal {
        pipe: SignalPipe::new(signum)?,
    })
}
