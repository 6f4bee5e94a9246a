//! `MkAsyncSemaphore`: an async counting semaphore with FIFO fairness.
//!
//! Available permits live in one atomic word (with a closed bit), so an uncontended acquire or
//! release is one atomic operation. Requests that must wait queue in FIFO order
//! (`waiters.rs`); a release gives permits to the head of the queue before anyone else can take
//! them, and a large head request collects permits as they come, so later small requests never
//! overtake it.

mod acquire;
mod error;
mod permit;
mod waiters;

pub use acquire::{MkSemaphoreAcquire, MkSemaphoreAcquireOwned};
pub use error::MkSemaphoreError;
pub use permit::{MkOwnedSemaphorePermit, MkSemaphorePermit};

use std::fmt;
use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
use std::sync::Arc;
use waiters::WaitList;

const CLOSED: usize = 1;
const SHIFT: u32 = 1;

/// An async counting semaphore: tasks take permits, waiting (parked, no CPU) while none are
/// available, and give them back by dropping the permit.
///
/// - **FIFO**: waiting requests are served in the order they queued; a request for many permits
///   at the head collects permits as they are released and is not overtaken by later small ones.
///   `try_acquire` fails while anyone is queued.
/// - **Cancel-safe**: dropping a pending [`acquire`](Self::acquire) future leaves the queue and
///   passes on the permits it had been given.
/// - **Impossible requests fail**: asking for more permits than the semaphore has in total
///   ([`total_permits`](Self::total_permits)) fails at once with
///   [`MkSemaphoreError::ExceedsTotal`] instead of waiting forever; call
///   [`add_permits`](Self::add_permits) first to raise the total.
/// - **Close**: [`close`](Self::close) fails every waiting and later request with
///   [`MkSemaphoreError::Closed`]; permits already held stay valid.
///
/// ```
/// use memkit_async::MkAsyncSemaphore;
/// use std::sync::Arc;
///
/// # let rt = memkit_async::Runtime::new().unwrap();
/// # rt.block_on(async {
/// let sem = Arc::new(MkAsyncSemaphore::new(2));
/// let a = sem.acquire().await.unwrap();
/// let b = sem.clone().acquire_owned().await.unwrap();
/// assert_eq!(sem.available_permits(), 0);
/// assert!(sem.try_acquire().is_err());
/// drop(a);
/// let c = sem.acquire_many(1).await.unwrap();
/// assert_eq!((b.num_permits(), c.num_permits()), (1, 1));
/// # });
/// ```
pub struct MkAsyncSemaphore {
    /// Available permits `<< SHIFT`, and the `CLOSED` bit.
    state: AtomicUsize,
    /// Permits in existence: created, plus added, minus forgotten.
    total: AtomicUsize,
    /// Requests in `waiters`; read without the lock by `release` and the fast paths.
    queued: AtomicUsize,
    waiters: WaitList,
}

impl MkAsyncSemaphore {
    /// The most permits a semaphore can hold.
    pub const MAX_PERMITS: usize = usize::MAX >> 3;

    /// A semaphore with `permits` permits (0 is allowed: every request waits for
    /// [`add_permits`](Self::add_permits) or fails as above the total).
    ///
    /// # Panics
    /// If `permits` is above [`MAX_PERMITS`](Self::MAX_PERMITS).
    pub fn new(permits: usize) -> MkAsyncSemaphore {
        assert!(
            permits <= Self::MAX_PERMITS,
            "MkAsyncSemaphore::new({permits}): at most {} permits are supported",
            Self::MAX_PERMITS
        );
        MkAsyncSemaphore {
            state: AtomicUsize::new(permits << SHIFT),
            total: AtomicUsize::new(permits),
            queued: AtomicUsize::new(0),
            waiters: WaitList::default(),
        }
    }

    /// One permit, waiting in FIFO order while none is available.
    pub fn acquire(&self) -> MkSemaphoreAcquire<'_> {
        self.acquire_many(1)
    }

    /// `n` permits at once, waiting in FIFO order until they are all available. `n == 0`
    /// succeeds at once (unless closed).
    ///
    /// # Errors
    /// `Closed`; `ExceedsTotal` if `n` is above [`total_permits`](Self::total_permits).
    pub fn acquire_many(&self, n: usize) -> MkSemaphoreAcquire<'_> {
        MkSemaphoreAcquire::new(self, n)
    }

    /// As [`acquire`](Self::acquire), for a semaphore in an `Arc`: the permit is `'static`.
    pub fn acquire_owned(self: Arc<Self>) -> MkSemaphoreAcquireOwned {
        self.acquire_many_owned(1)
    }

    /// As [`acquire_many`](Self::acquire_many), for a semaphore in an `Arc`.
    pub fn acquire_many_owned(self: Arc<Self>, n: usize) -> MkSemaphoreAcquireOwned {
        MkSemaphoreAcquireOwned::new(self, n)
    }

    /// One permit if available now.
    ///
    /// # Errors
    /// `Closed`, `ExceedsTotal`, or `NoPermits` (also while requests are queued).
    pub fn try_acquire(&self) -> Result<MkSemaphorePermit<'_>, MkSemaphoreError> {
        self.try_acquire_many(1)
    }

    /// `n` permits if available now (and nobody is queued ahead).
    ///
    /// # Errors
    /// As [`try_acquire`](Self::try_acquire).
    pub fn try_acquire_many(&self, n: usize) -> Result<MkSemaphorePermit<'_>, MkSemaphoreError> {
        self.try_take(n)?;
        Ok(MkSemaphorePermit {
            sem: self,
            permits: n,
        })
    }

    /// As [`try_acquire_many`](Self::try_acquire_many), for a semaphore in an `Arc`.
    pub fn try_acquire_many_owned(
        self: Arc<Self>,
        n: usize,
    ) -> Result<MkOwnedSemaphorePermit, MkSemaphoreError> {
        self.try_take(n)?;
        Ok(MkOwnedSemaphorePermit {
            sem: self,
            permits: n,
        })
    }

    /// Takes `n` permits from the atomic word if nobody is queued.
    pub(crate) fn try_take(&self, n: usize) -> Result<(), MkSemaphoreError> {
        let mut cur = self.state.load(SeqCst);
        loop {
            if cur & CLOSED != 0 {
                return Err(MkSemaphoreError::Closed);
            }
            self.check_total(n)?;
            let available = cur >> SHIFT;
            if available < n || (n > 0 && self.queued.load(SeqCst) > 0) {
                return Err(MkSemaphoreError::NoPermits {
                    requested: n,
                    available,
                });
            }
            match self
                .state
                .compare_exchange_weak(cur, cur - (n << SHIFT), SeqCst, SeqCst)
            {
                Ok(_) => return Ok(()),
                Err(actual) => cur = actual,
            }
        }
    }

    fn check_total(&self, n: usize) -> Result<(), MkSemaphoreError> {
        let total = self.total_permits();
        if n > total {
            return Err(MkSemaphoreError::ExceedsTotal {
                requested: n,
                total,
            });
        }
        Ok(())
    }

    /// Adds `n` permits (raising the total); waiting requests are served first.
    ///
    /// # Panics
    /// If the total would exceed [`MAX_PERMITS`](Self::MAX_PERMITS).
    pub fn add_permits(&self, n: usize) {
        let added = self.total.fetch_update(SeqCst, SeqCst, |t| {
            t.checked_add(n).filter(|&t| t <= Self::MAX_PERMITS)
        });
        if let Err(total) = added {
            panic!(
                "MkAsyncSemaphore::add_permits({n}) with {total} permits: at most {} are \
                 supported",
                Self::MAX_PERMITS
            );
        }
        self.release(n);
    }

    /// Gives `n` permits back to the semaphore.
    pub(crate) fn release(&self, n: usize) {
        if n == 0 {
            return;
        }
        self.state.fetch_add(n << SHIFT, SeqCst);
        // Pairs with the `SeqCst` increment of `queued` when a request queues: either it sees
        // the permits, or we see it and hand them over.
        if self.queued.load(SeqCst) > 0 {
            self.waiters.serve(self);
        }
    }

    /// Lowers the total by `n` permits that are held and will not come back.
    pub(crate) fn forget_permits(&self, n: usize) {
        if n == 0 {
            return;
        }
        self.total.fetch_sub(n, SeqCst);
        self.waiters.fail_above_total(self);
    }

    /// Permits available now.
    pub fn available_permits(&self) -> usize {
        self.state.load(SeqCst) >> SHIFT
    }

    /// Permits in existence: created, plus added, minus forgotten (available and held).
    pub fn total_permits(&self) -> usize {
        self.total.load(SeqCst)
    }

    /// Requests queued, waiting for permits.
    pub fn waiting(&self) -> usize {
        self.queued.load(SeqCst)
    }

    /// Closes the semaphore: waiting requests and later ones fail with
    /// [`MkSemaphoreError::Closed`]; permits already held stay valid and are released as usual.
    /// Idempotent.
    pub fn close(&self) {
        self.state.fetch_or(CLOSED, SeqCst);
        self.waiters.close(self);
    }

    /// Whether [`close`](Self::close) was called.
    pub fn is_closed(&self) -> bool {
        self.state.load(SeqCst) & CLOSED != 0
    }

    /// Takes every available permit out of the atomic word (for the wait list to hand out).
    fn take_all(&self) -> usize {
        let prev = self.state.fetch_and(CLOSED, SeqCst);
        prev >> SHIFT
    }

    /// Puts `n` permits back in the atomic word without serving anyone (the caller does).
    fn put_back(&self, n: usize) {
        if n > 0 {
            self.state.fetch_add(n << SHIFT, SeqCst);
        }
    }
}

impl fmt::Debug for MkAsyncSemaphore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MkAsyncSemaphore")
            .field("available", &self.available_permits())
            .field("total", &self.total_permits())
            .field("waiting", &self.waiting())
            .field("closed", &self.is_closed())
            .finish()
    }
}
