//! `MkBudget`: a shareable byte limit with a backpressure policy, forming a tree.
//!
//! Charging walks from the budget to the root with one compare-and-swap per level and no lock;
//! locks are taken only when a request must queue or someone is queued. Each budget keeps a
//! FIFO of the requests blocked on it: a release serves the head first, so a large request is
//! never overtaken by later small ones.
//!
//! This module owns `MkBudget`: its fields and every method on it. The requests queued on a
//! budget (wait_queue.rs), the consumers `Evict` asks for memory (evict.rs), the future that
//! waits (acquire.rs) and the guard that holds bytes (guard.rs) are types of their own that the
//! budget calls.
//!
//! Unsafe code: credits to the budget's account are of bytes charged to that level, while the
//! budget holds it (heap/account.rs).

mod acquire;
mod evict;
mod guard;
pub(crate) mod heap_waiters;
#[cfg(all(test, loom))]
mod loom;
mod policy;
mod task_budget;
mod wait_queue;

pub use acquire::Acquire;
pub use evict::MkEvictable;
pub use guard::MkBudgetGuard;
pub use policy::MkBackpressure;
pub use task_budget::TaskBudget;

use super::{MkAllocError, RuntimeMemory};
use crate::heap::{Account, AccountRef};
use crate::sync::wait_list::WaitKey;
use crate::sync::{lock, AtomicUsize, Mutex, Ordering::SeqCst};
use acquire::Waiter;
use evict::Evictables;
use std::fmt;
use std::sync::Arc;
use wait_queue::WaitQueue;

/// A shareable byte limit with a [`MkBackpressure`] policy.
///
/// Budgets form a tree: bytes charged to a [`child`](Self::child) are charged to every ancestor
/// too, so a request fits only if it fits at every level. A runtime's root budget is its
/// [`memory_limit`](crate::runtime::Builder::memory_limit).
///
/// ```
/// use memkit_async_runtime::memory::{MkBackpressure, MkBudget};
///
/// let root = MkBudget::new(1 << 20).with_policy(MkBackpressure::Fail);
/// let child = root.child(256 << 10);
/// let guard = child.try_acquire(200 << 10).unwrap();
/// assert_eq!((child.used(), root.used()), (200 << 10, 200 << 10));
/// assert!(child.try_acquire(100 << 10).is_err()); // over the child's 256 KiB
/// drop(guard);
/// assert_eq!(root.used(), 0);
/// ```
#[derive(Clone)]
pub struct MkBudget {
    inner: Arc<Inner>,
}

struct Inner {
    limit: usize,
    /// Bytes charged to this budget (guards and, with `MkGlobalAlloc`, heap bytes of its tasks),
    /// and their peak; it outlives the budget while memory charged to it is alive.
    account: AccountRef,
    policy: Mutex<MkBackpressure>,
    parent: Option<MkBudget>,
    /// Requests blocked on this budget, oldest first.
    waiters: WaitQueue,
    /// Live tasks charged to this budget or a descendant, and those of them held back for
    /// memory by the scheduler (counted with `MkGlobalAlloc` installed).
    tasks: AtomicUsize,
    held: AtomicUsize,
    /// Consumers `Evict` may ask for memory.
    evictables: Evictables,
}

impl MkBudget {
    /// The most bytes a budget can count (64 TiB), whatever its limit: a request for more is
    /// refused with [`MkAllocError::ExceedsLimit`], even by an unlimited budget.
    pub const MAX_BYTES: usize = crate::heap::MAX_BYTES as usize;

    /// A root budget of `limit` bytes with the `Wait` policy.
    pub fn new(limit: usize) -> MkBudget {
        MkBudget::with_parent(limit, MkBackpressure::default(), None)
    }

    /// The budget of the task being polled on this thread, if it was given one (by
    /// [`spawn_with_budget`](crate::task::spawn_with_budget), a
    /// [`task::Builder`](crate::task::Builder), or by inheriting its spawner's); outside memkit
    /// tasks, the budget of the [`MkArenaTask`](super::MkArenaTask) being polled.
    pub fn current() -> Option<MkBudget> {
        crate::task_core::current_budget()
    }

    /// A budget of `limit` bytes charged into the current runtime's memory limit, or a root
    /// budget outside a runtime (for containers that may be made either way).
    pub(crate) fn in_current_runtime(limit: usize) -> MkBudget {
        match RuntimeMemory::current() {
            Some(memory) => memory.root().child(limit),
            None => MkBudget::new(limit),
        }
    }

    /// A root budget without a limit.
    pub fn unlimited() -> MkBudget {
        MkBudget::new(usize::MAX)
    }

    fn with_parent(limit: usize, policy: MkBackpressure, parent: Option<MkBudget>) -> MkBudget {
        MkBudget::with_account(limit, policy, parent, 0)
    }

    /// A root budget whose heap bytes are summed per worker (a runtime's memory limit), so the
    /// runtime's workers never write one shared counter at the end of every poll.
    pub(crate) fn runtime_root(limit: usize, policy: MkBackpressure, workers: usize) -> MkBudget {
        MkBudget::with_account(limit, policy, None, workers)
    }

    fn with_account(
        limit: usize,
        policy: MkBackpressure,
        parent: Option<MkBudget>,
        shards: usize,
    ) -> MkBudget {
        let account = Account::create(parent.as_ref().map(|p| &p.inner.account), shards);
        MkBudget {
            inner: Arc::new(Inner {
                limit,
                account,
                policy: Mutex::new(policy),
                parent,
                waiters: WaitQueue::new(),
                tasks: AtomicUsize::new(0),
                held: AtomicUsize::new(0),
                evictables: Evictables::new(),
            }),
        }
    }

    /// Sets the policy applied to requests made on this budget (and on all its clones, which
    /// are the same budget). Children created afterwards inherit it.
    pub fn with_policy(self, policy: MkBackpressure) -> MkBudget {
        *lock(&self.inner.policy) = policy;
        self
    }

    /// A child budget of `limit` bytes, charged into this one, with this budget's policy.
    pub fn child(&self, limit: usize) -> MkBudget {
        MkBudget::with_parent(limit, self.policy(), Some(self.clone()))
    }

    /// The policy applied to requests made on this budget.
    pub fn policy(&self) -> MkBackpressure {
        *lock(&self.inner.policy)
    }

    /// The limit in bytes (`usize::MAX` when unlimited).
    pub fn limit(&self) -> usize {
        self.inner.limit
    }

    /// Bytes currently charged to this budget (its descendants included): memory taken
    /// through memkit's containers and, with [`MkGlobalAlloc`](crate::heap::MkGlobalAlloc)
    /// installed, the heap memory its tasks allocated and have not freed. A task's heap bytes
    /// are published when its poll ends (or every 64 KiB), so a read during a poll may lag.
    pub fn used(&self) -> usize {
        self.inner.account.account().live().max(0) as usize
    }

    /// `used()` read with a read-modify-write (loom models: the latest value, never an older
    /// one a plain load may still return).
    #[cfg(all(test, loom))]
    pub(crate) fn used_latest(&self) -> usize {
        self.inner.account.account().live_latest().max(0) as usize
    }

    /// The highest `used()` seen so far.
    pub fn peak(&self) -> usize {
        self.inner.account.account().peak() as usize
    }

    /// The account this budget's bytes are charged to.
    pub(crate) fn account(&self) -> &AccountRef {
        &self.inner.account
    }

    /// Requests queued on this budget, waiting for bytes to be released.
    pub fn waiting(&self) -> usize {
        self.inner.waiters.len()
    }

    /// Tasks charged to this budget (or a child) that the scheduler holds back because the
    /// budget, under `Wait` or `Timeout`, is over its limit: not yet started (admission) or
    /// parked after a poll that grew them. Counted with
    /// [`MkGlobalAlloc`](crate::heap::MkGlobalAlloc) installed.
    pub fn parked(&self) -> usize {
        self.inner.held.load(SeqCst)
    }

    /// Live tasks charged to this budget or a child (counted with `MkGlobalAlloc` installed).
    pub(crate) fn tasks(&self) -> usize {
        self.inner.tasks.load(SeqCst)
    }

    /// Adds `delta` live tasks to this budget and every ancestor.
    pub(crate) fn count_task(&self, delta: isize) {
        for b in self.ancestors() {
            b.inner.tasks.fetch_add(delta as usize, SeqCst);
        }
    }

    /// Adds `delta` held tasks to this budget and every ancestor.
    pub(crate) fn count_held(&self, delta: isize) {
        for b in self.ancestors() {
            b.inner.held.fetch_add(delta as usize, SeqCst);
        }
    }

    /// The lowest budget from this one up whose bytes are over its limit.
    pub(crate) fn over_limit_on_chain(&self) -> Option<MkBudget> {
        self.ancestors()
            .find(|b| b.limit() != usize::MAX && b.used() > b.limit())
            .cloned()
    }

    /// The lowest `Wait` or `Timeout` budget from this one up that is at or over its limit:
    /// what holds back a task that has not started.
    pub(crate) fn waiting_budget_at_limit(&self) -> Option<MkBudget> {
        self.ancestors()
            .find(|b| b.holds_tasks() && b.used() >= b.limit())
            .cloned()
    }

    /// The lowest `Wait` or `Timeout` budget from this one up that is over its limit: what
    /// holds back a task whose last poll grew it.
    pub(crate) fn waiting_budget_over_limit(&self) -> Option<MkBudget> {
        self.ancestors()
            .find(|b| b.holds_tasks() && b.used() > b.limit())
            .cloned()
    }

    /// No `Wait` or `Timeout` budget from this one up is at or above its resume mark (1/16
    /// below its limit): a task held before it started may start. The margin keeps tasks from
    /// starting at every byte released.
    pub(crate) fn has_room_to_start(&self) -> bool {
        !self
            .ancestors()
            .any(|b| b.holds_tasks() && b.used() >= b.limit() - b.limit() / 16)
    }

    /// A finite budget whose policy waits: the scheduler holds its tasks back when it is full.
    fn holds_tasks(&self) -> bool {
        self.limit() != usize::MAX
            && matches!(
                self.policy(),
                MkBackpressure::Wait | MkBackpressure::Timeout(_)
            )
    }

    /// The budget this one is charged into.
    pub fn parent(&self) -> Option<&MkBudget> {
        self.inner.parent.as_ref()
    }

    /// Takes `bytes` without ever waiting. Under `Evict`, registered consumers are asked to make
    /// room first; under every other policy a request that does not fit at once fails.
    ///
    /// # Errors
    /// `ExceedsLimit` if `bytes` is above a limit on the way to the root, else `CapacityReached`.
    pub fn try_acquire(&self, bytes: usize) -> Result<MkBudgetGuard, MkAllocError> {
        self.check_fits_ever(bytes)?;
        if bytes == 0 {
            return Ok(self.guard(0));
        }
        match self.try_charge_fair(bytes) {
            Ok(()) => Ok(self.guard(bytes)),
            Err(full) if self.policy() == MkBackpressure::Evict => self.evict_for(bytes, &full),
            Err(full) => Err(full.capacity_reached(bytes)),
        }
    }

    /// Registers a consumer that `Evict` requests blocked on this budget may ask for memory.
    /// Only a weak reference is kept.
    pub fn register_evictable(&self, consumer: &Arc<dyn MkEvictable>) {
        self.inner.evictables.register(consumer);
    }

    /// `Evict`: asks the consumers registered on the budgets from this one up to `full` to make
    /// room until the request fits or nothing evictable is left (evict.rs).
    pub(crate) fn evict_for(
        &self,
        bytes: usize,
        full: &MkBudget,
    ) -> Result<MkBudgetGuard, MkAllocError> {
        evict::evict_for(self, bytes, full)
    }

    /// Heap enforcement under `Evict`: asks the consumers registered on the budgets from
    /// `from` up to this one (which is over its limit) to release memory until it is back
    /// under its limit; `false` if it is still over when nobody frees anything more.
    pub(crate) fn evict_to_limit(&self, from: &MkBudget) -> bool {
        evict::evict_to_limit(self, from)
    }

    /// The consumers registered on this budget that are still alive.
    fn evictables(&self) -> Vec<Arc<dyn MkEvictable>> {
        self.inner.evictables.live()
    }

    /// Takes `bytes`, applying this budget's policy when they do not fit: `Wait` parks the task
    /// until they are released, `Timeout(d)` waits at most `d`, `Fail` and `Evict` never wait.
    ///
    /// ```
    /// use memkit_async_runtime::memory::MkBudget;
    ///
    /// let rt = memkit_async_runtime::Runtime::new().unwrap();
    /// let budget = MkBudget::new(1000);
    /// let first = budget.try_acquire(800).unwrap();
    /// let b = budget.clone();
    /// let waiter = rt.spawn(async move { b.acquire(500).await.map(|g| g.bytes()) });
    /// while budget.waiting() == 0 {
    ///     std::thread::yield_now();
    /// }
    /// drop(first); // the waiting task is served
    /// assert_eq!(rt.block_on(waiter).unwrap(), Ok(500));
    /// ```
    pub fn acquire(&self, bytes: usize) -> Acquire {
        Acquire::new(self.clone(), bytes, None)
    }

    /// As [`acquire`](Self::acquire), with `policy` instead of the budget's.
    pub(crate) fn acquire_with(&self, bytes: usize, policy: MkBackpressure) -> Acquire {
        Acquire::new(self.clone(), bytes, Some(policy))
    }

    pub(crate) fn guard(&self, bytes: usize) -> MkBudgetGuard {
        MkBudgetGuard::new(self.clone(), bytes)
    }

    fn ancestors(&self) -> impl Iterator<Item = &MkBudget> {
        std::iter::successors(Some(self), |b| b.parent())
    }

    /// `ExceedsLimit` if some budget on the way to the root can never hold `bytes`.
    pub(crate) fn check_fits_ever(&self, bytes: usize) -> Result<(), MkAllocError> {
        let limit = self
            .ancestors()
            .map(|b| b.limit())
            .min()
            .unwrap_or(usize::MAX)
            .min(MkBudget::MAX_BYTES);
        if bytes > limit {
            return Err(MkAllocError::ExceedsLimit {
                requested: bytes,
                limit,
            });
        }
        Ok(())
    }

    /// Charges `bytes` up to the root unless a budget on the way already has queued requests,
    /// which must be served first. On failure nothing stays charged and the blocking budget is
    /// returned.
    pub(crate) fn try_charge_fair(&self, bytes: usize) -> Result<(), MkBudget> {
        if let Some(queued) = self.ancestors().find(|b| b.waiting() > 0) {
            return Err(queued.clone());
        }
        self.try_charge(bytes)
    }

    /// Charges `bytes` to this budget and every ancestor, or to none of them. Peaks are raised
    /// only once the whole path is charged, so a refused request leaves no trace in them.
    pub(crate) fn try_charge(&self, bytes: usize) -> Result<(), MkBudget> {
        self.try_charge_unserved(bytes).map_err(|refused| {
            refused.serve_rolled_back();
            refused.full
        })
    }

    /// `try_charge` for callers that hold a queue lock: on refusal the levels below the full
    /// one are rolled back but their queues are not served; the caller serves them
    /// (`Refused::serve_rolled_back`) once it holds no lock, or a request refused during the
    /// transient charge could wait forever.
    pub(crate) fn try_charge_unserved(&self, bytes: usize) -> Result<(), Refused> {
        // The level each budget reached with this charge, for the peaks (deeper trees than
        // this record their current level instead, which can only overstate a concurrent peak).
        let mut reached = [0usize; 8];
        for (depth, b) in self.ancestors().enumerate() {
            match b.try_charge_local(bytes) {
                Some(level) => {
                    if let Some(slot) = reached.get_mut(depth) {
                        *slot = level;
                    }
                }
                None => {
                    self.ancestors()
                        .take(depth)
                        .for_each(|b| b.uncharge_local(bytes));
                    return Err(Refused {
                        full: b.clone(),
                        origin: self.clone(),
                        rolled_back: depth,
                    });
                }
            }
        }
        for (depth, b) in self.ancestors().enumerate() {
            let level = reached.get(depth).copied().unwrap_or_else(|| b.used());
            b.inner.account.account().raise_peak(level as u64);
        }
        Ok(())
    }

    /// Adds `bytes` to this level if they fit; the new level.
    fn try_charge_local(&self, bytes: usize) -> Option<usize> {
        let limit = self.inner.limit as u64;
        let level = self.inner.account.account().try_charge(bytes as u64, limit);
        level.ok().map(|l| l as usize)
    }

    /// Returns `bytes` to this budget and every ancestor, then serves queued requests from this
    /// budget up: every level has its bytes back before any waiter is charged for them.
    pub(crate) fn release(&self, bytes: usize) {
        self.ancestors().for_each(|b| b.uncharge_local(bytes));
        self.ancestors().for_each(|b| b.serve_if_waiting());
    }

    fn uncharge_local(&self, bytes: usize) {
        // SAFETY: the budget holds its account, and the bytes were charged to this level.
        unsafe { Account::apply(self.inner.account.as_ptr(), -(bytes as i64), None) };
    }

    /// Serves this budget's queue if anyone waits on it.
    fn serve_if_waiting(&self) {
        self.inner.waiters.serve_if_waiting(self);
    }

    /// Queues `waiter` on this budget (where its request is blocked), then serves the queue,
    /// so bytes released meanwhile are not missed.
    fn enqueue(&self, waiter: Arc<Waiter>) {
        self.inner.waiters.enqueue(self, waiter);
    }

    /// Removes the waiter queued here under `key`, if it still is; `true` if it was.
    fn dequeue(&self, key: WaitKey) -> bool {
        self.inner.waiters.dequeue(key)
    }

    pub(crate) fn capacity_reached(&self, requested: usize) -> MkAllocError {
        MkAllocError::CapacityReached {
            requested,
            limit: self.limit(),
            used: self.used(),
        }
    }

    pub(crate) fn same(&self, other: &MkBudget) -> bool {
        Arc::ptr_eq(&self.inner, &other.inner)
    }
}

/// A charge refused by `full`, after the levels below it were rolled back.
pub(crate) struct Refused {
    pub(crate) full: MkBudget,
    origin: MkBudget,
    rolled_back: usize,
}

impl Refused {
    /// Serves the queues of the rolled-back levels: their bytes were briefly taken, and a
    /// request refused meanwhile must get another look.
    pub(crate) fn serve_rolled_back(&self) {
        self.origin
            .ancestors()
            .take(self.rolled_back)
            .for_each(|b| b.serve_if_waiting());
    }
}

impl fmt::Debug for MkBudget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MkBudget")
            .field("limit", &self.limit())
            .field("used", &self.used())
            .field("peak", &self.peak())
            .field("waiting", &self.waiting())
            .field("policy", &self.policy())
            .finish_non_exhaustive()
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;
    use std::future::Future;
    use std::pin::pin;
    use std::task::{Context, Poll, Waker};

    #[test]
    fn grants_in_fifo_order_across_the_tree_and_returns_every_byte() {
        let root = MkBudget::new(100);
        let a = root.child(80);
        let b = root.child(80);
        let held = a.try_acquire(80).unwrap();
        let mut cx = Context::from_waker(Waker::noop());
        let mut first = pin!(b.acquire(50));
        let mut second = pin!(b.acquire(10));
        assert!(first.as_mut().poll(&mut cx).is_pending());
        assert!(second.as_mut().poll(&mut cx).is_pending());
        // Both queue on the root: `first` because it is full, `second` behind `first`.
        assert_eq!((root.waiting(), b.waiting()), (2, 0));
        drop(held);
        let (Poll::Ready(Ok(g1)), Poll::Ready(Ok(g2))) =
            (first.as_mut().poll(&mut cx), second.as_mut().poll(&mut cx))
        else {
            panic!("both requests are served once the sibling releases")
        };
        assert_eq!((b.used(), root.used(), root.peak()), (60, 60, 80));
        drop((g1, g2));
        assert_eq!((a.used(), b.used(), root.used()), (0, 0, 0));
        assert_eq!((root.waiting(), b.waiting()), (0, 0));
    }

    #[test]
    fn a_withdrawn_head_lets_the_request_behind_it_through() {
        let budget = MkBudget::new(10);
        let held = budget.try_acquire(5).unwrap();
        let mut cx = Context::from_waker(Waker::noop());
        let mut head = Box::pin(budget.acquire(8));
        let mut next = pin!(budget.acquire(2));
        assert!(head.as_mut().poll(&mut cx).is_pending());
        // Fits, but queues behind the head (FIFO).
        assert!(next.as_mut().poll(&mut cx).is_pending());
        assert_eq!(budget.waiting(), 2);
        drop(head); // no release follows: the withdrawal itself must serve `next`
        assert_eq!(budget.waiting(), 0);
        let Poll::Ready(Ok(guard)) = next.as_mut().poll(&mut cx) else {
            panic!("the request behind a withdrawn head is served at once");
        };
        assert_eq!(budget.used(), 7);
        drop((guard, held));
        assert_eq!(budget.used(), 0);
    }

    #[test]
    fn requests_withdrawn_from_the_middle_and_the_back_keep_the_others_in_order() {
        let budget = MkBudget::new(10);
        let held = budget.try_acquire(10).unwrap();
        let mut cx = Context::from_waker(Waker::noop());
        let mut reqs: Vec<_> = [3, 4, 2, 5]
            .into_iter()
            .map(|n| Some(Box::pin(budget.acquire(n))))
            .collect();
        for r in reqs.iter_mut().flatten() {
            assert!(r.as_mut().poll(&mut cx).is_pending());
        }
        assert_eq!(budget.waiting(), 4);
        reqs[1] = None; // the middle
        reqs[3] = None; // the back
        assert_eq!((budget.waiting(), budget.used()), (2, 10));
        // Queued after the withdrawals (in a reused slot): behind the others.
        let mut late = Box::pin(budget.acquire(6));
        assert!(late.as_mut().poll(&mut cx).is_pending());
        drop(held);
        // 3 + 2 are served; 6 does not fit in the 5 left.
        let mut guards = Vec::new();
        for r in [0, 2] {
            let Some(Poll::Ready(Ok(g))) = reqs[r].as_mut().map(|f| f.as_mut().poll(&mut cx))
            else {
                panic!("request {r} is served in order")
            };
            guards.push(g);
        }
        assert!(late.as_mut().poll(&mut cx).is_pending());
        assert_eq!((budget.used(), budget.waiting()), (5, 1));
        drop(guards);
        let Poll::Ready(Ok(g)) = late.as_mut().poll(&mut cx) else {
            panic!("the late request is served once the others release")
        };
        assert_eq!((budget.used(), budget.waiting()), (6, 0));
        drop(g);
        assert_eq!(budget.used(), 0);
    }

    #[test]
    fn a_dropped_request_that_was_granted_gives_its_bytes_back() {
        let budget = MkBudget::new(10);
        let held = budget.try_acquire(10).unwrap();
        let mut cx = Context::from_waker(Waker::noop());
        let mut req = Box::pin(budget.acquire(4));
        assert!(req.as_mut().poll(&mut cx).is_pending());
        drop(held); // charges 4 bytes for the waiter
        assert_eq!(budget.used(), 4);
        drop(req); // never polled again: the bytes go back
        assert_eq!((budget.used(), budget.waiting()), (0, 0));
    }
}
