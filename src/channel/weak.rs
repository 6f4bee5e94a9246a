//! `MkWeakSender<T>`: a handle that can make senders while some remain, without keeping the
//! channel open itself.

use super::chan::Chan;
use super::sender::MkAsyncSender;
use std::fmt;
use std::sync::Arc;

/// A sender that does not count: the receiver's stream ends once every
/// [`MkAsyncSender`] is gone, whatever weak senders remain. Made by
/// [`MkAsyncSender::downgrade`]; [`upgrade`](Self::upgrade) makes a sender again while at least
/// one sender is alive.
///
/// ```
/// use memkit_async::{MkAsyncChannel, MkBackpressure};
///
/// let (tx, mut rx) = MkAsyncChannel::<u32>::bounded(4, MkBackpressure::Fail);
/// let weak = tx.downgrade();
/// weak.upgrade().unwrap().try_send(1).unwrap();
/// drop(tx);
/// assert!(weak.upgrade().is_none()); // the last sender is gone: the stream is ending
/// assert_eq!(rx.try_recv(), Ok(1));
/// assert!(rx.try_recv().is_err());
/// ```
pub struct MkWeakSender<T> {
    chan: Arc<Chan<T>>,
}

impl<T> MkWeakSender<T> {
    pub(super) fn new(chan: Arc<Chan<T>>) -> MkWeakSender<T> {
        MkWeakSender { chan }
    }

    /// A sender into the channel, or `None` once every sender is gone (the receiver's stream
    /// ends then, and stays ended).
    pub fn upgrade(&self) -> Option<MkAsyncSender<T>> {
        self.chan
            .add_sender_if_any()
            .then(|| MkAsyncSender::new(self.chan.clone()))
    }

    /// Senders alive now (weak ones not counted).
    pub fn strong_count(&self) -> usize {
        self.chan.senders()
    }
}

impl<T> Clone for MkWeakSender<T> {
    fn clone(&self) -> MkWeakSender<T> {
        MkWeakSender {
            chan: self.chan.clone(),
        }
    }
}

impl<T> fmt::Debug for MkWeakSender<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MkWeakSender")
            .field("strong_count", &self.strong_count())
            .finish_non_exhaustive()
    }
}
