//! `MkAsyncChannel<T>`: a multi-producer, single-consumer channel bounded by bytes (or by
//! messages), whose senders feel the channel's backpressure policy.
//!
//! The bound is an [`MkBudget`]: a sender acquires its message's bytes from it, the guard
//! travels in the queue with the message, and receiving the message drops the guard, which
//! serves waiting senders in FIFO order. The channel registers its queue as
//! [`MkEvictable`](crate::MkEvictable) on that budget, so an `Evict` sender drops the oldest
//! queued messages. Messages move: sending an `MkAsyncBox`, `MkAsyncVec` or `MkArena` moves a
//! pointer, never the payload.

mod chan;
mod close;
mod error;
mod permit;
mod receiver;
mod send;
mod sender;
mod weak;

pub use error::{MkSendError, MkTryRecvError, MkTrySendError};
pub use permit::{MkSendPermit, MkSendPermits};
pub use receiver::MkAsyncReceiver;
pub use sender::MkAsyncSender;
pub use weak::MkWeakSender;

use crate::MkByteSize;
use chan::Chan;
use memkit_async_runtime::memory::{MkBackpressure, MkBudget};
use std::convert::Infallible;
use std::marker::PhantomData;

/// Constructors of bounded channels: [`bounded_bytes`](Self::bounded_bytes) bounds the bytes
/// queued (measured by [`MkByteSize`]), [`bounded`](Self::bounded) the number of messages.
///
/// The policy decides what a sender does when its message does not fit:
///
/// | policy | `send` on a full channel |
/// |---|---|
/// | `Wait` | parks until the receiver makes room (senders served in FIFO order) |
/// | `Fail` | `Err(MkSendError::Refused(msg, CapacityReached { .. }))` at once |
/// | `Timeout(d)` | waits like `Wait` for at most `d`, then `Refused(msg, TimedOut { .. })` |
/// | `Evict` | drops the oldest queued messages until the new one fits |
///
/// A message larger than the whole capacity can never fit: every policy refuses it at once
/// with `ExceedsLimit` (a channel of capacity 0 refuses every message that way). A closed
/// channel refuses with `Closed`. Every error returns the message.
///
/// ```
/// use memkit_async::{MkAsyncBox, MkAsyncChannel, MkBackpressure};
///
/// #[memkit_async::main(worker_threads = 2)]
/// async fn main() {
///     // At most 64 KiB of messages in flight; a full channel parks the producer.
///     let (tx, mut rx) = MkAsyncChannel::bounded_bytes(64 << 10, MkBackpressure::Wait);
///     let producer = memkit_async::spawn(async move {
///         for i in 0..100u8 {
///             let msg = MkAsyncBox::new([i; 1024]).await.unwrap();
///             tx.send(msg).await.unwrap(); // moves a pointer, not 1 KiB
///         }
///     });
///     let mut sum = 0u64;
///     while let Some(msg) = rx.recv().await {
///         sum += u64::from(msg[0]);
///     }
///     producer.await.unwrap();
///     assert_eq!(sum, (0..100).sum::<u64>());
///     assert_eq!(rx.budget().used(), 0);
///     assert!(rx.budget().peak() <= 64 << 10);
/// }
/// # main();
/// ```
pub struct MkAsyncChannel<T> {
    _never: Infallible,
    _message: PhantomData<fn() -> T>,
}

impl<T> std::fmt::Debug for MkAsyncChannel<T> {
    fn fmt(&self, _: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self._never {}
    }
}

impl<T: Send + 'static> MkAsyncChannel<T> {
    /// A channel holding at most `bytes` bytes of queued messages, as measured by
    /// [`MkByteSize`] when each is sent (a message counts at least 1 byte, so that a channel of
    /// empty messages is still bounded). `policy` decides what a sender does when the channel
    /// is full.
    ///
    /// `bytes == 0` makes a channel that refuses every message at once with `ExceedsLimit`.
    pub fn bounded_bytes(
        bytes: usize,
        policy: MkBackpressure,
    ) -> (MkAsyncSender<T>, MkAsyncReceiver<T>)
    where
        T: MkByteSize,
    {
        let budget = MkBudget::new(bytes).with_policy(policy);
        MkAsyncChannel::with_budget(budget, measure::<T>, message_bytes::<T>())
    }

    /// A channel holding at most `messages` queued messages, of any type. `policy` decides what
    /// a sender does when the channel is full.
    ///
    /// `messages == 0` makes a channel that refuses every message at once with `ExceedsLimit`.
    pub fn bounded(
        messages: usize,
        policy: MkBackpressure,
    ) -> (MkAsyncSender<T>, MkAsyncReceiver<T>) {
        fn one<T>(_: &T) -> usize {
            1
        }
        let budget = MkBudget::new(messages).with_policy(policy);
        MkAsyncChannel::with_budget(budget, one::<T>, 1)
    }

    /// A channel without a bound of its own, counting messages: sends never wait and never
    /// fail for room (only `Closed`); [`budget()`](MkAsyncReceiver::budget)`.used()` is the
    /// number of messages queued, `peak()` the most ever queued. `send(..).await` completes in
    /// its first poll; [`try_send`](MkAsyncSender::try_send) is the same send without a future.
    ///
    /// ```
    /// use memkit_async::MkAsyncChannel;
    ///
    /// let (tx, mut rx) = MkAsyncChannel::unbounded();
    /// for i in 0..1000u32 {
    ///     tx.try_send(i).unwrap(); // never full
    /// }
    /// assert_eq!(rx.budget().used(), 1000);
    /// assert_eq!(rx.try_recv(), Ok(0));
    /// assert_eq!(rx.budget().used(), 999);
    /// ```
    pub fn unbounded() -> (MkAsyncSender<T>, MkAsyncReceiver<T>) {
        fn one<T>(_: &T) -> usize {
            1
        }
        MkAsyncChannel::with_budget(unbounded_budget(None), one::<T>, 1)
    }

    /// A channel without a bound of its own, counting the bytes of its queued messages (as
    /// [`MkByteSize`] measures them) on a budget of its own: sends never wait and never fail
    /// for room (only `Closed`), and [`budget()`](MkAsyncReceiver::budget)`.used()` shows the
    /// bytes queued.
    pub fn unbounded_bytes() -> (MkAsyncSender<T>, MkAsyncReceiver<T>)
    where
        T: MkByteSize,
    {
        MkAsyncChannel::with_budget(unbounded_budget(None), measure::<T>, message_bytes::<T>())
    }

    /// A channel without a bound of its own whose queued bytes are charged into `parent` (a
    /// task's budget, the runtime's [`memory_budget`](crate::Runtime::memory_budget), a
    /// service's), so they are visible there and count against its limit.
    ///
    /// Sends never wait, whatever `parent`'s policy. A message whose bytes do not fit in
    /// `parent` now is refused at once: `send` and `try_send` fail with `Refused` / `Full` and
    /// `CapacityReached` (or `ExceedsLimit` for a message larger than `parent`'s limit),
    /// returning the message. Under `Evict`, `parent`'s evictable consumers are asked to make
    /// room first. The channel's own [`budget()`](MkAsyncReceiver::budget) is an unlimited
    /// child of `parent`.
    ///
    /// ```
    /// use memkit_async::{MkAsyncChannel, MkBudget, MkTrySendError};
    ///
    /// let service = MkBudget::new(1024);
    /// let (tx, mut rx) = MkAsyncChannel::<Vec<u8>>::unbounded_bytes_in(&service);
    /// tx.try_send(vec![0; 1000]).unwrap();
    /// assert_eq!(service.used(), 1000);
    /// let refused = tx.try_send(vec![0; 100]).unwrap_err(); // 1100 > 1024: refused, not queued
    /// assert!(matches!(refused, MkTrySendError::Full(..)));
    /// assert_eq!(refused.into_inner().len(), 100);
    /// drop(rx.try_recv().unwrap());
    /// assert_eq!(service.used(), 0);
    /// ```
    pub fn unbounded_bytes_in(parent: &MkBudget) -> (MkAsyncSender<T>, MkAsyncReceiver<T>)
    where
        T: MkByteSize,
    {
        MkAsyncChannel::with_budget(
            unbounded_budget(Some(parent)),
            measure::<T>,
            message_bytes::<T>(),
        )
    }

    fn with_budget(
        budget: MkBudget,
        measure: fn(&T) -> usize,
        unit: usize,
    ) -> (MkAsyncSender<T>, MkAsyncReceiver<T>) {
        let chan = Chan::new(budget, measure, unit);
        (MkAsyncSender::new(chan.clone()), MkAsyncReceiver::new(chan))
    }
}

/// A message's bytes as a byte-bounded channel counts them (at least 1, so that a channel of
/// empty messages is still bounded).
fn measure<T: MkByteSize>(value: &T) -> usize {
    value.byte_size().max(1)
}

/// The bytes a reservation takes per message on a byte-counted channel: the message's own
/// value (a message that owns more tops its reservation up when sent).
fn message_bytes<T>() -> usize {
    std::mem::size_of::<T>().max(1)
}

/// The budget of an unbounded channel: no limit of its own, never waiting. Under a parent it
/// is a child (charged into it), refusing at once what the parent cannot hold; under an
/// `Evict` parent it asks the parent's evictable consumers for room first.
fn unbounded_budget(parent: Option<&MkBudget>) -> MkBudget {
    match parent {
        None => MkBudget::unlimited().with_policy(MkBackpressure::Fail),
        Some(parent) => {
            let policy = match parent.policy() {
                MkBackpressure::Evict => MkBackpressure::Evict,
                _ => MkBackpressure::Fail,
            };
            parent.child(usize::MAX).with_policy(policy)
        }
    }
}
