//! Why a channel refused a message or had none to give.

use memkit_async_runtime::memory::MkAllocError;
use std::fmt;

/// Why [`MkAsyncSender::send`](super::MkAsyncSender::send) (or the sender's `Sink`) failed.
/// The message is returned in the error, unchanged.
#[derive(PartialEq, Eq)]
#[non_exhaustive]
pub enum MkSendError<T> {
    /// The receiver was dropped or called [`close`](super::MkAsyncReceiver::close): nobody will
    /// ever receive the message.
    Closed(T),
    /// The channel's policy refused the message: `CapacityReached` (`Fail`, or `Evict` with
    /// nothing left to evict), `TimedOut` (`Timeout(d)`), or `ExceedsLimit` (the message is
    /// larger than the channel's whole capacity, under every policy, at once).
    Refused(T, MkAllocError),
}

/// Why [`MkAsyncSender::try_send`](super::MkAsyncSender::try_send) failed. The message is
/// returned in the error, unchanged.
#[derive(PartialEq, Eq)]
#[non_exhaustive]
pub enum MkTrySendError<T> {
    /// The message does not fit now (`CapacityReached`; under `Evict`, after evicting all that
    /// could be evicted) or never will (`ExceedsLimit`).
    Full(T, MkAllocError),
    /// The receiver was dropped or closed the channel.
    Closed(T),
}

/// Why [`MkAsyncReceiver::try_recv`](super::MkAsyncReceiver::try_recv) returned no message.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum MkTryRecvError {
    /// No message is queued, but senders remain: one may come.
    Empty,
    /// No message is queued and none can come: every sender is gone or the receiver closed the
    /// channel.
    Closed,
}

impl<T> MkSendError<T> {
    /// The message that was not sent.
    pub fn into_inner(self) -> T {
        match self {
            MkSendError::Closed(value) | MkSendError::Refused(value, _) => value,
        }
    }

    /// `true` if the channel is closed (as opposed to full).
    pub fn is_closed(&self) -> bool {
        matches!(self, MkSendError::Closed(_))
    }

    /// What the channel's budget answered, if the policy refused the message.
    pub fn alloc_error(&self) -> Option<&MkAllocError> {
        match self {
            MkSendError::Closed(_) => None,
            MkSendError::Refused(_, err) => Some(err),
        }
    }
}

impl<T> MkTrySendError<T> {
    /// The message that was not sent.
    pub fn into_inner(self) -> T {
        match self {
            MkTrySendError::Closed(value) | MkTrySendError::Full(value, _) => value,
        }
    }

    /// `true` if the channel is closed (as opposed to full).
    pub fn is_closed(&self) -> bool {
        matches!(self, MkTrySendError::Closed(_))
    }
}

impl<T> From<MkTrySendError<T>> for MkSendError<T> {
    fn from(err: MkTrySendError<T>) -> MkSendError<T> {
        match err {
            MkTrySendError::Full(value, e) => MkSendError::Refused(value, e),
            MkTrySendError::Closed(value) => MkSendError::Closed(value),
        }
    }
}

const CLOSED: &str = "channel closed: the receiver was dropped or closed the channel, so the \
                      message can never be received; it is returned in the error";

/// The budget's answer, worded for a channel.
fn refused(f: &mut fmt::Formatter<'_>, err: &MkAllocError) -> fmt::Result {
    match *err {
        MkAllocError::ExceedsLimit { requested, limit } => write!(
            f,
            "message of {requested} units is larger than the channel's whole capacity of \
             {limit} units (bytes for `bounded_bytes`, messages for `bounded`) and can never be \
             sent; create the channel with a capacity of at least {requested} (a capacity of 0 \
             holds nothing) or split the message"
        ),
        ref other => write!(f, "channel full: {other}"),
    }
}

impl<T> fmt::Display for MkSendError<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            MkSendError::Closed(_) => f.write_str(CLOSED),
            MkSendError::Refused(_, err) => refused(f, err),
        }
    }
}

impl<T> fmt::Display for MkTrySendError<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            MkTrySendError::Closed(_) => f.write_str(CLOSED),
            MkTrySendError::Full(_, err) => refused(f, err),
        }
    }
}

// `Debug` without `T: Debug`, so `unwrap()` works on any message type.
impl<T> fmt::Debug for MkSendError<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            MkSendError::Closed(_) => f.write_str("Closed(..)"),
            MkSendError::Refused(_, err) => {
                f.debug_tuple("Refused").field(&"..").field(err).finish()
            }
        }
    }
}

impl<T> fmt::Debug for MkTrySendError<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            MkTrySendError::Closed(_) => f.write_str("Closed(..)"),
            MkTrySendError::Full(_, err) => f.debug_tuple("Full").field(&"..").field(err).finish(),
        }
    }
}

impl fmt::Display for MkTryRecvError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            MkTryRecvError::Empty => "channel empty: no message is queued yet",
            MkTryRecvError::Closed => {
                "channel closed and empty: every sender is gone or the receiver closed it"
            }
        })
    }
}

impl<T> std::error::Error for MkSendError<T> {}
impl<T> std::error::Error for MkTrySendError<T> {}
impl std::error::Error for MkTryRecvError {}
