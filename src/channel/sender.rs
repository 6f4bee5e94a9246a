//! `MkAsyncSender<T>`: the sending half of a channel, and its `Sink` implementation.

use super::chan::Chan;
use super::error::{MkSendError, MkTrySendError};
use super::permit::{MkSendPermit, MkSendPermits};
use super::send::{reserve_units, try_now, try_reserve_units, SendOp};
use super::weak::MkWeakSender;
use futures_sink::Sink;
use memkit_async_runtime::memory::{MkAllocError, MkBudget};
use memkit_async_runtime::task::coop;
use memkit_async_runtime::time::Instant;
use std::fmt;
use std::future::{poll_fn, Future};
use std::pin::{pin, Pin};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

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

    /// Sends `value` as [`send`](Self::send) does, waiting at most `timeout` for room (on a
    /// channel whose policy waits; under `Timeout(d)` the shorter of the two applies).
    ///
    /// Waiting needs the runtime's timer: call it inside a memkit-async runtime.
    ///
    /// # Errors
    /// As [`send`](Self::send); when `timeout` runs out first,
    /// [`MkSendError::Refused`] with [`MkAllocError::TimedOut`], and the message back.
    ///
    /// ```
    /// use memkit_async::{MkAllocError, MkAsyncChannel, MkBackpressure};
    /// use std::time::Duration;
    ///
    /// # let rt = memkit_async::Runtime::new().unwrap();
    /// # rt.block_on(async {
    /// let (tx, _rx) = MkAsyncChannel::bounded(1, MkBackpressure::Wait);
    /// tx.send(1).await.unwrap();
    /// let err = tx.send_timeout(2, Duration::from_millis(10)).await.unwrap_err();
    /// assert!(matches!(err.alloc_error(), Some(MkAllocError::TimedOut { .. })));
    /// assert_eq!(err.into_inner(), 2);
    /// # });
    /// ```
    pub fn send_timeout(
        &self,
        value: T,
        timeout: Duration,
    ) -> impl Future<Output = Result<(), MkSendError<T>>> + '_ {
        let chan = &self.chan;
        let counted = self.counted;
        async move {
            if !counted {
                return Err(MkSendError::Closed(value));
            }
            let units = (chan.measure)(&value);
            let mut op = SendOp::new(value);
            if let Some(res) = op.start(chan) {
                return res;
            }
            let started = Instant::now();
            let mut sleep = pin!(crate::time::sleep(timeout));
            poll_fn(|cx| {
                if let Poll::Ready(res) = op.poll(chan, cx) {
                    return Poll::Ready(res);
                }
                if sleep.as_mut().poll(cx).is_pending() {
                    return Poll::Pending;
                }
                let Some(value) = op.take_back() else {
                    unreachable!("a pending send still holds its message")
                };
                Poll::Ready(Err(MkSendError::Refused(
                    value,
                    MkAllocError::TimedOut {
                        requested: units,
                        limit: chan.budget.limit(),
                        used: chan.budget.used(),
                        waited: started.elapsed(),
                    },
                )))
            })
            .await
        }
    }

    /// Reserves room for one message, applying the channel's policy when there is none (as
    /// [`send`](Self::send) does, in the same FIFO queue); the [`MkSendPermit`] then sends
    /// without waiting. See [`MkSendPermit`] for what a permit holds on a byte-counted channel.
    ///
    /// Dropping the future while it waits withdraws the request.
    ///
    /// # Errors
    /// [`MkSendError::Closed`] if the receiver is gone or closed the channel;
    /// [`MkSendError::Refused`] with the budget's answer if the policy refused.
    pub async fn reserve(&self) -> Result<MkSendPermit<'_, T>, MkSendError<()>> {
        let charge = self.reserve_units(1).await?;
        Ok(MkSendPermit::new(&self.chan, charge))
    }

    /// Reserves room for one message if there is some now, never waiting (under `Evict`, the
    /// oldest queued messages are dropped to make room).
    ///
    /// # Errors
    /// [`MkTrySendError::Full`] with the budget's answer, or [`MkTrySendError::Closed`].
    pub fn try_reserve(&self) -> Result<MkSendPermit<'_, T>, MkTrySendError<()>> {
        let charge = self.try_reserve_units(1)?;
        Ok(MkSendPermit::new(&self.chan, charge))
    }

    /// Reserves room for `n` messages at once (one request in the FIFO queue, so two
    /// reservations never hold part of the room each), applying the channel's policy; an
    /// iterator of `n` permits. `n == 0` gives no permit at once.
    ///
    /// # Errors
    /// As [`reserve`](Self::reserve); `Refused` with `ExceedsLimit` at once if `n` messages can
    /// never fit in the channel.
    ///
    /// ```
    /// use memkit_async::{MkAsyncChannel, MkBackpressure};
    ///
    /// # let rt = memkit_async::Runtime::new().unwrap();
    /// # rt.block_on(async {
    /// let (tx, mut rx) = MkAsyncChannel::bounded(8, MkBackpressure::Wait);
    /// let permits = tx.reserve_many(3).await.unwrap();
    /// assert_eq!(tx.budget().used(), 3);
    /// for (i, permit) in permits.enumerate() {
    ///     permit.send(i).unwrap();
    /// }
    /// let mut got = Vec::new();
    /// assert_eq!(rx.recv_many(&mut got, 10).await, 3);
    /// assert_eq!(got, [0, 1, 2]);
    /// # });
    /// ```
    pub async fn reserve_many(&self, n: usize) -> Result<MkSendPermits<'_, T>, MkSendError<()>> {
        let charge = self.reserve_units(n).await?;
        Ok(MkSendPermits::new(&self.chan, charge, n))
    }

    /// Reserves room for `n` messages if all of it is there now, never waiting.
    ///
    /// # Errors
    /// As [`try_reserve`](Self::try_reserve).
    pub fn try_reserve_many(&self, n: usize) -> Result<MkSendPermits<'_, T>, MkTrySendError<()>> {
        let charge = self.try_reserve_units(n)?;
        Ok(MkSendPermits::new(&self.chan, charge, n))
    }

    /// The units of `n` messages' room; `ExceedsLimit` if they overflow.
    fn units_of(&self, n: usize) -> Result<usize, MkAllocError> {
        n.checked_mul(self.chan.unit)
            .ok_or(MkAllocError::ExceedsLimit {
                requested: usize::MAX,
                limit: self.chan.budget.limit(),
            })
    }

    async fn reserve_units(
        &self,
        n: usize,
    ) -> Result<memkit_async_runtime::memory::MkBudgetGuard, MkSendError<()>> {
        if !self.counted {
            return Err(MkSendError::Closed(()));
        }
        let units = self
            .units_of(n)
            .map_err(|err| MkSendError::Refused((), err))?;
        reserve_units(&self.chan, units).await
    }

    fn try_reserve_units(
        &self,
        n: usize,
    ) -> Result<memkit_async_runtime::memory::MkBudgetGuard, MkTrySendError<()>> {
        if !self.counted {
            return Err(MkTrySendError::Closed(()));
        }
        let units = self
            .units_of(n)
            .map_err(|err| MkTrySendError::Full((), err))?;
        try_reserve_units(&self.chan, units)
    }

    /// A [`MkWeakSender`]: it does not keep the channel open, and makes a sender again while
    /// any remains.
    pub fn downgrade(&self) -> MkWeakSender<T> {
        MkWeakSender::new(self.chan.clone())
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
