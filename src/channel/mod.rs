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
mod receiver;
mod send;
mod sender;

pub use error::{MkSendError, MkTryRecvError, MkTrySendError};
pub use receiver::MkAsyncReceiver;
pub use sender::MkAsyncSender;

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
        fn measure<T: MkByteSize>(value: &T) -> usize {
            value.byte_size().max(1)
        }
        MkAsyncChannel::with_measure(bytes, policy, measure::<T>)
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
        MkAsyncChannel::with_measure(messages, policy, one::<T>)
    }

    fn with_measure(
        limit: usize,
        policy: MkBackpressure,
        measure: fn(&T) -> usize,
    ) -> (MkAsyncSender<T>, MkAsyncReceiver<T>) {
        let chan = Chan::new(MkBudget::new(limit).with_policy(policy), measure);
        (MkAsyncSender::new(chan.clone()), MkAsyncReceiver::new(chan))
    }
}
