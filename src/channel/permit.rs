//! `MkSendPermit` and `MkSendPermits`: room in a channel reserved ahead of the message, so the
//! message is sent later without waiting.

use super::chan::Chan;
use super::error::MkTrySendError;
use memkit_async_runtime::memory::MkBudgetGuard;
use std::fmt;
use std::sync::Arc;

/// Room for one message in a channel, reserved by
/// [`MkAsyncSender::reserve`](super::MkAsyncSender::reserve) (or `try_reserve`, or one of
/// [`reserve_many`](super::MkAsyncSender::reserve_many)'s permits). [`send`](Self::send) queues
/// the message without waiting; dropping the permit gives the room back.
///
/// On a channel that counts messages (`bounded`, `unbounded`) a permit holds one message's
/// room and its send can fail only with `Closed`. On a channel that counts bytes it holds
/// `size_of::<T>()` bytes (at least 1): a message that measures less gives the rest back when
/// sent, one that measures more (an `MkAsyncVec`, a `Vec`) takes the difference when sent,
/// without waiting, and is refused with `Full` if that does not fit.
///
/// ```
/// use memkit_async::{MkAsyncChannel, MkBackpressure};
///
/// # let rt = memkit_async::Runtime::new().unwrap();
/// # rt.block_on(async {
/// let (tx, mut rx) = MkAsyncChannel::bounded(1, MkBackpressure::Wait);
/// let permit = tx.reserve().await.unwrap(); // the room is ours: nothing else can be sent
/// assert!(tx.try_send(1).is_err());
/// permit.send(2).unwrap();
/// assert_eq!(rx.recv().await, Some(2));
/// # });
/// ```
#[must_use = "dropping a permit gives its room back"]
pub struct MkSendPermit<'a, T> {
    chan: &'a Arc<Chan<T>>,
    charge: MkBudgetGuard,
}

impl<'a, T> MkSendPermit<'a, T> {
    pub(super) fn new(chan: &'a Arc<Chan<T>>, charge: MkBudgetGuard) -> MkSendPermit<'a, T> {
        MkSendPermit { chan, charge }
    }

    /// Queues `value` in the room reserved, never waiting.
    ///
    /// # Errors
    /// [`MkTrySendError::Closed`] if the receiver is gone or closed the channel since the
    /// reservation; [`MkTrySendError::Full`] on a byte-counted channel, for a message larger
    /// than the reservation whose extra bytes do not fit now. The message is returned.
    pub fn send(self, value: T) -> Result<(), MkTrySendError<T>> {
        let MkSendPermit { chan, mut charge } = self;
        let units = (chan.measure)(&value);
        let reserved = charge.bytes();
        let extra = if units < reserved {
            drop(charge.split(reserved - units));
            None
        } else if units > reserved {
            match chan.budget.try_acquire(units - reserved) {
                Ok(extra) => Some(extra),
                Err(err) => return Err(MkTrySendError::Full(value, err)),
            }
        } else {
            None
        };
        chan.push_topped_up(value, charge, extra)
            .map_err(MkTrySendError::Closed)
    }

    /// Units this permit holds on the channel's budget (1 on a message-counted channel, bytes
    /// on a byte-counted one).
    pub fn reserved(&self) -> usize {
        self.charge.bytes()
    }
}

impl<T> fmt::Debug for MkSendPermit<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MkSendPermit")
            .field("reserved", &self.reserved())
            .finish_non_exhaustive()
    }
}

/// Room for `n` messages, reserved at once by
/// [`MkAsyncSender::reserve_many`](super::MkAsyncSender::reserve_many): an iterator of `n`
/// [`MkSendPermit`]s. The room of permits not taken goes back when the iterator drops.
#[must_use = "dropping the permits gives their room back"]
pub struct MkSendPermits<'a, T> {
    chan: &'a Arc<Chan<T>>,
    charge: MkBudgetGuard,
    left: usize,
}

impl<'a, T> MkSendPermits<'a, T> {
    pub(super) fn new(
        chan: &'a Arc<Chan<T>>,
        charge: MkBudgetGuard,
        n: usize,
    ) -> MkSendPermits<'a, T> {
        MkSendPermits {
            chan,
            charge,
            left: n,
        }
    }
}

impl<'a, T> Iterator for MkSendPermits<'a, T> {
    type Item = MkSendPermit<'a, T>;

    fn next(&mut self) -> Option<MkSendPermit<'a, T>> {
        self.left = self.left.checked_sub(1)?;
        let charge = self.charge.split(self.chan.unit);
        Some(MkSendPermit::new(self.chan, charge))
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        (self.left, Some(self.left))
    }
}

impl<T> ExactSizeIterator for MkSendPermits<'_, T> {}

impl<T> fmt::Debug for MkSendPermits<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MkSendPermits")
            .field("left", &self.left)
            .finish_non_exhaustive()
    }
}
