//! `MkAsyncSender<T>`: the sending half of a channel, and its `Sink` implementation.

use super::chan::Chan;
use super::error::{MkSendError, MkTrySendError};
use super::send::{try_now, SendOp};
use futures_sink::Sink;
use memkit_async_runtime::memory::MkBudget;
use memkit_async_runtime::task::coop;
use std::fmt;
use std::future::{poll_fn, Future};
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

/// The sending half of an [`MkAsyncChannel`](super::MkAsyncChannel). Clone it for more
/// producers; the receiver's stream ends once every sender is dropped (or closed as a `Sink`)
/// and the queued messages are received.
///
/// When the channel is full, the channel's [`MkBackpressure`](crate::MkBackpressure) policy
/// decides what [`send`](Self::send) does: `Wait` parks the task until the receiver makes room
/// (senders are served in FIFO order), `Timeout(d)` waits at most `d`, `Fail` refuses at once,
/// and `Evict` drops the oldest queued messages to make room.
///
/// As a [`Sink`], it holds at most one message: `start_send` queues the message at once when it
/// fits (or the policy never waits), otherwise `poll_ready`, `poll_flush` and `poll_close`
/// finish sending it under the policy, returning it in the error if it is refused. `poll_close`
/// then detaches this handle from the channel, as dropping it would.
pub struct MkAsyncSender<T> {
    chan: Arc<Chan<T>>,
    /// Counted in the channel's senders; `false` once closed as a `Sink`.
    counted: bool,
    /// The `Sink`'s message in flight. Only reached through `&mut self` (`Mutex::get_mut`, no
    /// locking); the mutex keeps the sender `Sync` for any `T: Send`.
    pending: Mutex<Option<SendOp<T>>>,
}

// The message in `pending` is never pinned: the sender can move freely.
impl<T> Unpin for MkAsyncSender<T> {}

impl<T> MkAsyncSender<T> {
    pub(super) fn new(chan: Arc<Chan<T>>) -> MkAsyncSender<T> {
        MkAsyncSender {
            chan,
            counted: true,
            pending: Mutex::new(None),
        }
    }

    /// Sends `value`, applying the channel's policy when it does not fit. The message moves
    /// into the queue: for an `MkAsyncBox`, `MkAsyncVec` or `MkArena` that is a pointer move,
    /// never a copy of the payload.
    ///
    /// Dropping the future while it waits withdraws the request (no bytes stay charged) and
    /// drops the message.
    ///
    /// # Errors
    /// [`MkSendError::Closed`] if the receiver is gone or closed the channel (also when that
    /// happens while the sender waits); [`MkSendError::Refused`] if the policy refused the
    /// message, or if it is larger than the channel's whole capacity. The message is returned in
    /// the error.
    pub fn send(&self, value: T) -> impl Future<Output = Result<(), MkSendError<T>>> + '_ {
        // Only the channel is borrowed, so the future is `Send` whenever `T` is.
        let chan = &self.chan;
        let counted = self.counted;
        async move {
            if !counted {
                return Err(MkSendError::Closed(value));
            }
            // One unit of the task's cooperative budget per send, spent up front: a send that
            // always finds room yields its worker now and then.
            poll_fn(coop::poll_proceed).await.made_progress();
            let mut op = SendOp::new(value);
            if let Some(res) = op.start(chan) {
                return res;
            }
            poll_fn(|cx| op.poll(chan, cx)).await
        }
    }

    /// Sends `value` if it fits now, never waiting. Under `Evict` the oldest queued messages
    /// are dropped to make room.
    ///
    /// # Errors
    /// [`MkTrySendError::Full`] with the budget's answer (`CapacityReached`, or `ExceedsLimit`
    /// for a message larger than the whole capacity); [`MkTrySendError::Closed`] if the
    /// receiver is gone or closed the channel. The message is returned in the error.
    pub fn try_send(&self, value: T) -> Result<(), MkTrySendError<T>> {
        if !self.counted {
            return Err(MkTrySendError::Closed(value));
        }
        let units = (self.chan.measure)(&value);
        try_now(&self.chan, value, units).map_err(|(value, err)| match err {
            Some(err) => MkTrySendError::Full(value, err),
            None => MkTrySendError::Closed(value),
        })
    }

    /// `true` if sends on this handle fail with `Closed`: the receiver is gone or closed the
    /// channel (or this handle was closed as a `Sink`).
    pub fn is_closed(&self) -> bool {
        !self.counted || self.chan.is_closed()
    }

    /// The channel's capacity: bytes for `bounded_bytes`, messages for `bounded`.
    pub fn capacity(&self) -> usize {
        self.chan.budget.limit()
    }

    /// The budget that bounds the channel: `used()` is what the queued messages count now,
    /// `peak()` the most they ever counted. Setting its policy (`budget().clone().with_policy(p)`)
    /// changes what senders do from then on.
    pub fn budget(&self) -> &MkBudget {
        &self.chan.budget
    }

    /// `true` if both handles send into the same channel.
    pub fn same_channel(&self, other: &MkAsyncSender<T>) -> bool {
        Arc::ptr_eq(&self.chan, &other.chan)
    }

    /// Finishes the `Sink`'s message in flight, if any.
    fn poll_pending(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), MkSendError<T>>> {
        let pending = self.pending.get_mut().unwrap_or_else(|e| e.into_inner());
        let Some(op) = pending.as_mut() else {
            return Poll::Ready(Ok(()));
        };
        let res = std::task::ready!(op.poll(&self.chan, cx));
        *pending = None;
        Poll::Ready(res)
    }

    fn detach(&mut self) {
        if std::mem::replace(&mut self.counted, false) {
            self.chan.drop_sender();
        }
    }
}

impl<T> Clone for MkAsyncSender<T> {
    /// Another sender into the same channel (a handle closed as a `Sink` clones as closed).
    fn clone(&self) -> MkAsyncSender<T> {
        if self.counted {
            self.chan.add_sender();
        }
        MkAsyncSender {
            chan: self.chan.clone(),
            counted: self.counted,
            pending: Mutex::new(None),
        }
    }
}

impl<T> Drop for MkAsyncSender<T> {
    fn drop(&mut self) {
        self.detach();
    }
}

impl<T> Sink<T> for MkAsyncSender<T> {
    type Error = MkSendError<T>;

    fn poll_ready(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        let this = self.get_mut();
        coop::poll_budgeted(cx, |cx| this.poll_pending(cx))
    }

    /// # Panics
    /// If the previous message is still in flight (`poll_ready` did not return `Ready(Ok)`
    /// since the last `start_send`), as the `Sink` contract allows.
    fn start_send(self: Pin<&mut Self>, item: T) -> Result<(), Self::Error> {
        let this = self.get_mut();
        if !this.counted {
            return Err(MkSendError::Closed(item));
        }
        let pending = this.pending.get_mut().unwrap_or_else(|e| e.into_inner());
        assert!(
            pending.is_none(),
            "`Sink::start_send` on an `MkAsyncSender` whose previous message is still in \
             flight: call `poll_ready` until it returns `Ready(Ok(()))` first"
        );
        let mut op = SendOp::new(item);
        match op.start(&this.chan) {
            Some(res) => res,
            None => {
                *pending = Some(op);
                Ok(())
            }
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.get_mut().poll_pending(cx)
    }

    fn poll_close(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        let this = self.get_mut();
        let res = std::task::ready!(this.poll_pending(cx));
        this.detach();
        Poll::Ready(res)
    }
}

impl<T> fmt::Debug for MkAsyncSender<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MkAsyncSender")
            .field("capacity", &self.capacity())
            .field("used", &self.chan.budget.used())
            .field("closed", &self.is_closed())
            .finish_non_exhaustive()
    }
}
