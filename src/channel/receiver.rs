//! `MkAsyncReceiver<T>`: the receiving half of a channel, and its `Stream` implementation.

use super::chan::Chan;
use super::error::MkTryRecvError;
use futures_core::{FusedStream, Stream};
use memkit_async_runtime::memory::MkBudget;
use std::fmt;
use std::future::{poll_fn, Future};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

/// The receiving half of an [`MkAsyncChannel`](super::MkAsyncChannel). Messages arrive in the
/// order they were queued; receiving one releases its bytes, which wakes the senders waiting
/// for room in FIFO order.
///
/// Dropping the receiver closes the channel and drops the queued messages (their bytes go back
/// to the budget); senders then fail with `Closed`, getting their message back.
pub struct MkAsyncReceiver<T> {
    chan: Arc<Chan<T>>,
}

impl<T> MkAsyncReceiver<T> {
    pub(super) fn new(chan: Arc<Chan<T>>) -> MkAsyncReceiver<T> {
        MkAsyncReceiver { chan }
    }

    /// The next message; `None` once the queue is empty and no message can come (every sender
    /// is gone, or [`close`](Self::close) was called). Messages queued before that are still
    /// received first. Waiting parks the task until a message arrives.
    pub fn recv(&mut self) -> impl Future<Output = Option<T>> + '_ {
        poll_fn(move |cx| self.chan.poll_pop(cx))
    }

    /// Polls for the next message, as [`recv`](Self::recv) does: `Ready(None)` once no message
    /// can come, `Pending` (with `cx`'s waker registered) while senders remain.
    pub fn poll_recv(&mut self, cx: &mut Context<'_>) -> Poll<Option<T>> {
        self.chan.poll_pop(cx)
    }

    /// Receives up to `limit` messages into `buf` (appended, oldest first), waiting while none
    /// is queued; the number received. `0` once no message can come (as `recv` returns
    /// `None`), and at once for `limit == 0`. Takes what is queued in one go, releasing the
    /// messages' bytes together.
    pub fn recv_many<'a>(
        &'a mut self,
        buf: &'a mut Vec<T>,
        limit: usize,
    ) -> impl Future<Output = usize> + 'a {
        poll_fn(move |cx| self.chan.poll_pop_many(cx, buf, limit))
    }

    /// Polls for up to `limit` messages, as [`recv_many`](Self::recv_many) does.
    pub fn poll_recv_many(
        &mut self,
        cx: &mut Context<'_>,
        buf: &mut Vec<T>,
        limit: usize,
    ) -> Poll<usize> {
        self.chan.poll_pop_many(cx, buf, limit)
    }

    /// The next message if one is queued, never waiting.
    ///
    /// # Errors
    /// [`MkTryRecvError::Empty`] if none is queued yet, [`MkTryRecvError::Closed`] if none can
    /// come any more.
    pub fn try_recv(&mut self) -> Result<T, MkTryRecvError> {
        self.chan.try_pop()
    }

    /// Closes the channel: sends fail with `Closed` from now on (senders waiting for room are
    /// woken and get their message back), while the messages already queued can still be
    /// received.
    pub fn close(&mut self) {
        self.chan.close();
    }

    /// Messages queued now.
    pub fn len(&self) -> usize {
        self.chan.len()
    }

    /// `true` if no message is queued now.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// `true` once no message can be sent any more (closed, or every sender gone); queued
    /// messages may remain.
    pub fn is_closed(&self) -> bool {
        self.chan.is_done_sending()
    }

    /// The channel's capacity: bytes for `bounded_bytes`, messages for `bounded`.
    pub fn capacity(&self) -> usize {
        self.chan.budget.limit()
    }

    /// The budget that bounds the channel: `used()` is what the queued messages count now,
    /// `peak()` the most they ever counted.
    pub fn budget(&self) -> &MkBudget {
        &self.chan.budget
    }
}

impl<T> Drop for MkAsyncReceiver<T> {
    fn drop(&mut self) {
        self.chan.close_and_drain();
    }
}

impl<T> Stream for MkAsyncReceiver<T> {
    type Item = T;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<T>> {
        self.chan.poll_pop(cx)
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        (self.len(), None)
    }
}

impl<T> FusedStream for MkAsyncReceiver<T> {
    fn is_terminated(&self) -> bool {
        self.chan.is_drained()
    }
}

impl<T> fmt::Debug for MkAsyncReceiver<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MkAsyncReceiver")
            .field("capacity", &self.capacity())
            .field("used", &self.chan.budget.used())
            .field("len", &self.len())
            .finish_non_exhaustive()
    }
}
