//! `MkAsyncPool<T>`: a bounded async object pool whose objects are charged to a byte budget.
//!
//! How it is built:
//! - **Turns** (objects in use) are permits of an [`MkAsyncSemaphore`] of `capacity` permits:
//!   each guard holds one. Its FIFO queue parks `acquire` when every object is in use, serves
//!   waiters in order, withdraws a dropped request (passing on a turn it was granted), and fails
//!   waiters when the pool closes; `Timeout(d)` adds a timer to the wait. An uncontended turn is
//!   one compare-and-swap to take and one atomic add to give back.
//! - **Objects** wait idle in an [`IdleCache`](cache::IdleCache): a per-worker slot in front of a
//!   lock-free shared queue, so the acquire/release loop of a task takes no lock.
//! - **Live objects** (in use + idle) never exceed the capacity: an object is created only when
//!   none is idle and fewer than `capacity` are alive. A guard puts its object back *before*
//!   giving its turn back, so whoever gets the turn finds an idle object or room to create one.
//! - **Bytes**: each live object holds `object_bytes` of the optional byte budget, and the pool
//!   is registered on it as an [`MkEvictable`]: under `Evict` pressure on that budget (a request
//!   by anyone charged to it) the pool drops idle objects, oldest first; the factory re-creates
//!   objects later when needed.

mod acquire;
mod cache;
mod entry;
mod error;
mod guard;
mod notify;

pub use acquire::MkPoolAcquire;
pub use error::MkPoolError;
pub use guard::MkPoolGuard;

use crate::semaphore::{MkAsyncSemaphore, MkSemaphoreError, MkSemaphorePermit};
use cache::IdleCache;
use entry::{Charge, Counters, Entry, Reservation};
use memkit_async_runtime::memory::{MkBackpressure, MkBudget, MkBudgetGuard, MkEvictable};
use notify::Listeners;
use std::fmt;
use std::sync::atomic::{AtomicBool, Ordering::SeqCst};
use std::sync::Arc;

type Factory<T> = Box<dyn Fn() -> T + Send + Sync>;
type Reset<T> = Box<dyn Fn(&mut T) + Send + Sync>;

/// A bounded pool of reusable objects for async tasks.
///
/// `capacity` is the most objects alive at once, in use and idle together. [`acquire`]
/// hands out an idle object, or creates one with the factory while fewer than `capacity` are
/// alive; when every object is in use the pool's [`MkBackpressure`] policy decides:
///
/// | policy | when every object is in use |
/// |---|---|
/// | `Wait` | the task parks (no CPU) until a guard is dropped; waiters are served FIFO |
/// | `Fail` | `Err(MkPoolError::Exhausted { .. })` at once |
/// | `Timeout(d)` | waits like `Wait` for at most `d`, then `Err(MkPoolError::TimedOut { .. })` |
/// | `Evict` | a pool's evictable part is its *idle* objects, and there are none when every object is in use, so this fails at once like `Fail`; idle objects are evicted for `Evict` requests on the pool's byte budget (see [`MkPoolBuilder::budget`]) |
///
/// Dropping the [`MkPoolGuard`] returns the object (after the reset hook, if any) and serves the
/// next waiter. A guard may be moved to and dropped in any task or thread.
///
/// Bad input: capacity 0 gives a pool whose every request fails with
/// [`MkPoolError::ZeroCapacity`]; requests on a [closed](Self::close) pool, including those
/// already waiting, fail with [`MkPoolError::Closed`].
///
/// ```
/// use memkit_async::{MkAsyncPool, MkBackpressure};
///
/// # let rt = memkit_async::Runtime::new().unwrap();
/// # rt.block_on(async {
/// let pool: MkAsyncPool<Vec<u8>> = MkAsyncPool::new(2, MkBackpressure::Fail);
/// let mut a = pool.acquire().await.unwrap();
/// a.extend_from_slice(b"hello");
/// let _b = pool.acquire().await.unwrap();
/// assert!(pool.acquire().await.is_err()); // Fail: both objects are in use
/// drop(a); // back in the pool
/// let again = pool.acquire().await.unwrap();
/// assert_eq!(&again[..], b"hello"); // reused as returned (no reset hook)
/// assert_eq!(pool.created(), 2);
/// # });
/// ```
///
/// [`acquire`]: Self::acquire
pub struct MkAsyncPool<T: Send + 'static> {
    shared: Arc<Shared<T>>,
}

pub(crate) struct Shared<T> {
    idle: IdleCache<T>,
    /// `capacity` permits, one per object in use.
    turns: MkAsyncSemaphore,
    capacity: usize,
    policy: MkBackpressure,
    counters: Arc<Counters>,
    budget: Option<MkBudget>,
    object_bytes: usize,
    factory: Factory<T>,
    reset: Option<Reset<T>>,
    closed: AtomicBool,
    /// Requests that reserved room for a new object and wait for its bytes, woken when an
    /// object comes back (they take it instead) and by `close`.
    on_return: Listeners,
}

/// Builds an [`MkAsyncPool`] with a factory, a reset hook, a policy and a byte budget.
///
/// ```
/// use memkit_async::{MkAsyncPool, MkBackpressure, MkBudget};
///
/// let budget = MkBudget::new(1 << 20);
/// let pool = MkAsyncPool::builder(8, || Vec::<u8>::with_capacity(4096))
///     .reset(|v| v.clear())
///     .policy(MkBackpressure::Wait)
///     .budget(budget.clone(), 4096) // each live object holds 4 KiB of `budget`
///     .build();
/// let guard = pool.try_acquire().unwrap();
/// assert_eq!((guard.capacity(), budget.used()), (4096, 4096));
/// ```
#[must_use = "call `build` to get the pool"]
pub struct MkPoolBuilder<T> {
    capacity: usize,
    factory: Factory<T>,
    reset: Option<Reset<T>>,
    policy: MkBackpressure,
    budget: Option<(MkBudget, usize)>,
}

impl<T> fmt::Debug for MkPoolBuilder<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MkPoolBuilder")
            .field("capacity", &self.capacity)
            .field("policy", &self.policy)
            .field("budget", &self.budget)
            .finish_non_exhaustive()
    }
}

impl<T: Send + 'static> MkPoolBuilder<T> {
    /// Calls `reset` on every object returned to the pool, before anyone else gets it (clear a
    /// buffer, roll back a connection). If it panics, the object is dropped instead of returned.
    pub fn reset(mut self, reset: impl Fn(&mut T) + Send + Sync + 'static) -> Self {
        self.reset = Some(Box::new(reset));
        self
    }

    /// What to do when every object is in use (default `Wait`); see [`MkAsyncPool`].
    pub fn policy(mut self, policy: MkBackpressure) -> Self {
        self.policy = policy;
        self
    }

    /// Charges `object_bytes` of `budget` for every live object (use `size_of::<T>()` plus what
    /// an object owns), and registers the pool on `budget` as an [`MkEvictable`]: `Evict`
    /// requests on that budget make the pool drop idle objects. Creating an object applies
    /// the budget's own policy to its bytes; its errors come back as [`MkPoolError::Budget`].
    pub fn budget(mut self, budget: MkBudget, object_bytes: usize) -> Self {
        self.budget = Some((budget, object_bytes));
        self
    }

    /// The pool.
    pub fn build(self) -> MkAsyncPool<T> {
        let workers = std::thread::available_parallelism().map_or(1, |n| n.get());
        let (budget, object_bytes) = match self.budget {
            Some((b, bytes)) => (Some(b), bytes),
            None => (None, 0),
        };
        let shared = Arc::new(Shared {
            idle: IdleCache::new(workers.min(64)),
            // More turns than the semaphore supports could never be used anyway.
            turns: MkAsyncSemaphore::new(self.capacity.min(MkAsyncSemaphore::MAX_PERMITS)),
            capacity: self.capacity,
            policy: self.policy,
            counters: Arc::new(Counters::default()),
            budget,
            object_bytes,
            factory: self.factory,
            reset: self.reset,
            closed: AtomicBool::new(false),
            on_return: Listeners::default(),
        });
        if let Some(b) = &shared.budget {
            let evictable: Arc<dyn MkEvictable> = shared.clone();
            b.register_evictable(&evictable);
        }
        MkAsyncPool { shared }
    }
}

impl<T: Default + Send + 'static> MkAsyncPool<T> {
    /// A pool of at most `capacity` objects made by `T::default()`, with `policy` applied when
    /// every object is in use. No byte budget, no reset hook: see [`builder`](Self::builder).
    pub fn new(capacity: usize, policy: MkBackpressure) -> MkAsyncPool<T> {
        MkAsyncPool::builder(capacity, T::default)
            .policy(policy)
            .build()
    }
}

impl<T: Send + 'static> MkAsyncPool<T> {
    /// A builder for a pool of at most `capacity` objects made by `factory`.
    pub fn builder(
        capacity: usize,
        factory: impl Fn() -> T + Send + Sync + 'static,
    ) -> MkPoolBuilder<T> {
        MkPoolBuilder {
            capacity,
            factory: Box::new(factory),
            reset: None,
            policy: MkBackpressure::Wait,
            budget: None,
        }
    }

    /// An object from the pool, applying the policy when every object is in use (see
    /// [`MkAsyncPool`]). Cancel-safe: dropping the future withdraws the request, and a turn it
    /// was granted passes to the next waiter.
    pub fn acquire(&self) -> MkPoolAcquire<'_, T> {
        MkPoolAcquire::new(self)
    }

    /// An object if one is idle or may be created now, without waiting, whatever the policy.
    /// Fails with `Exhausted` when every object is in use or requests are queued (they are
    /// served first). Creating an object takes its bytes with [`MkBudget::try_acquire`].
    pub fn try_acquire(&self) -> Result<MkPoolGuard<T>, MkPoolError> {
        let shared = &self.shared;
        let turn = shared
            .turns
            .try_acquire()
            .map_err(|e| shared.turn_error(e))?;
        match shared.take_or_reserve()? {
            Ok(entry) => Ok(self.guard(entry, turn)),
            Err(room) => {
                let bytes = shared
                    .budget
                    .as_ref()
                    .map(|b| b.try_acquire(shared.object_bytes))
                    .transpose()
                    .map_err(MkPoolError::Budget)?;
                Ok(self.guard(shared.create(room, bytes), turn))
            }
        }
    }

    /// A guard for `entry`; the turn now belongs to the guard.
    pub(crate) fn guard(
        &self,
        entry: Box<Entry<T>>,
        turn: MkSemaphorePermit<'_>,
    ) -> MkPoolGuard<T> {
        turn.keep();
        MkPoolGuard::new(entry, self.shared.clone())
    }

    /// Closes the pool: requests waiting now and made later fail with
    /// [`MkPoolError::Closed`], idle objects are dropped, and objects in use are dropped when
    /// their guards are (not returned). Idempotent.
    pub fn close(&self) {
        let shared = &self.shared;
        shared.closed.store(true, SeqCst);
        shared.turns.close();
        shared.on_return.notify_all();
        shared.idle.drain();
    }

    /// Whether [`close`](Self::close) was called.
    pub fn is_closed(&self) -> bool {
        self.shared.is_closed()
    }

    /// The most objects alive at once.
    pub fn capacity(&self) -> usize {
        self.shared.capacity
    }

    /// The policy applied when every object is in use.
    pub fn policy(&self) -> MkBackpressure {
        self.shared.policy
    }

    /// Objects alive: in use, idle, or being created.
    pub fn live(&self) -> usize {
        self.shared.counters.live.load(SeqCst)
    }

    /// Objects handed out (guards alive, and requests holding a turn).
    pub fn in_use(&self) -> usize {
        self.shared.in_use()
    }

    /// Objects ever created by the factory.
    pub fn created(&self) -> usize {
        self.shared.counters.created.load(SeqCst)
    }

    /// Requests parked until an object is returned.
    pub fn waiting(&self) -> usize {
        self.shared.turns.waiting()
    }

    /// The byte budget the pool's objects are charged to, if any.
    pub fn budget(&self) -> Option<&MkBudget> {
        self.shared.budget.as_ref()
    }

    /// Drops up to `max` idle objects (oldest first) and returns how many were dropped; their
    /// bytes go back to the budget at once.
    pub fn shrink(&self, max: usize) -> usize {
        (0..max)
            .map_while(|_| self.shared.idle.pop_oldest())
            .count()
    }
}

impl<T> Shared<T> {
    pub(crate) fn is_closed(&self) -> bool {
        self.closed.load(SeqCst)
    }

    fn in_use(&self) -> usize {
        self.turns
            .total_permits()
            .saturating_sub(self.turns.available_permits())
    }

    /// The pool error for a refused turn.
    pub(crate) fn turn_error(&self, e: MkSemaphoreError) -> MkPoolError {
        match e {
            MkSemaphoreError::Closed => MkPoolError::Closed,
            MkSemaphoreError::ExceedsTotal { .. } => MkPoolError::ZeroCapacity,
            _ => MkPoolError::Exhausted {
                capacity: self.capacity,
                in_use: self.in_use(),
            },
        }
    }

    /// For a request holding a turn: an idle object, or room to create one.
    ///
    /// One of the two always exists for a turn holder: live objects are at most `capacity`,
    /// every object out of the cache is held by a turn holder, and guards return their object
    /// before their turn. A miss therefore means an object is moving (between a slot and the
    /// shared queue, or to an evictor that has not yet given its room back), which completes
    /// within a few instructions: retry. Fails only if the pool is closed meanwhile.
    pub(crate) fn take_or_reserve(
        &self,
    ) -> Result<Result<Box<Entry<T>>, Reservation>, MkPoolError> {
        let mut spins = 0u32;
        loop {
            if let Some(entry) = self.idle.pop() {
                return Ok(Ok(entry));
            }
            if let Some(room) = self.counters.try_reserve(self.capacity) {
                return Ok(Err(room));
            }
            if self.is_closed() {
                return Err(MkPoolError::Closed);
            }
            spins += 1;
            if spins % 64 == 0 {
                std::thread::yield_now();
            } else {
                std::hint::spin_loop();
            }
        }
    }

    /// A new object in `room`, holding `bytes`.
    pub(crate) fn create(&self, room: Reservation, bytes: Option<MkBudgetGuard>) -> Box<Entry<T>> {
        let value = (self.factory)();
        self.counters.created.fetch_add(1, SeqCst);
        Box::new(Entry {
            charge: Charge {
                _bytes: bytes,
                _room: room,
            },
            value,
        })
    }

    /// Parks a returned object for the next request; see `MkPoolGuard`'s `Drop`.
    pub(crate) fn give_back(&self, mut entry: Box<Entry<T>>) {
        if self.is_closed() {
            return;
        }
        if let Some(reset) = &self.reset {
            // A panic here unwinds through `entry`, which drops the object and its charge.
            reset(&mut entry.value);
        }
        self.idle.push(entry);
        // Pairs with the `SeqCst` store in `close` and the registration of `on_return`
        // listeners: either they see the object, or we see them.
        std::sync::atomic::fence(SeqCst);
        if self.is_closed() {
            self.idle.drain();
        }
        if self.on_return.any() {
            self.on_return.notify_all();
        }
    }
}

impl<T: Send> MkEvictable for Shared<T> {
    fn evict(&self, bytes_wanted: usize) -> usize {
        if self.object_bytes == 0 {
            return 0;
        }
        let mut freed = 0;
        while freed < bytes_wanted {
            match self.idle.pop_oldest() {
                Some(entry) => {
                    drop(entry);
                    freed += self.object_bytes;
                }
                None => break,
            }
        }
        freed
    }
}

impl<T: Send + 'static> Clone for MkAsyncPool<T> {
    /// Another handle to the same pool.
    fn clone(&self) -> Self {
        MkAsyncPool {
            shared: self.shared.clone(),
        }
    }
}

impl<T: Send + 'static> fmt::Debug for MkAsyncPool<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MkAsyncPool")
            .field("capacity", &self.capacity())
            .field("live", &self.live())
            .field("in_use", &self.in_use())
            .field("waiting", &self.waiting())
            .field("policy", &self.policy())
            .field("closed", &self.is_closed())
            .finish_non_exhaustive()
    }
}
