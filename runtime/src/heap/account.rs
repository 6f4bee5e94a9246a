//! `Account`: the counter that one owner's bytes are charged to (a task, a budget, a runtime's
//! root), and the rule that decides how long it lives.
//!
//! An allocation made through `MkGlobalAlloc` names its account in a trailer, so the account
//! must outlive every allocation that names it, wherever and whenever that allocation is freed:
//! after its task ended, after its budget's last handle is gone, after its runtime is dropped.
//! No per-allocation reference count is kept (that would be an atomic read-modify-write on
//! every allocation); instead the account counts its holders and its bytes in one word:
//!
//! `count = HOLD × holders + live bytes` (wrapping, 64 bits), where the holders are the owner
//! (until it calls `release`) and every child account (until that child is freed). Live bytes
//! stay far below `HOLD` in magnitude, so the low bits, sign-extended, are the live bytes and
//! the count is 0 exactly when no holder is left and no byte is charged. Whoever's
//! read-modify-write brings the count to 0 frees the account, and then lets go of its parent.
//!
//! Invariants (the unsafe code below relies on them):
//! - Every byte charged to an account is charged to each of its ancestors too, and credited to
//!   each of them too when it is freed. A level's count therefore includes the bytes being
//!   credited until that level's own read-modify-write: a credit reads `parent` before it
//!   updates a level, and the parent stays alive until the credit reaches it.
//! - Bytes not yet published (a thread's delta, local.rs) exist only for an account whose owner
//!   is being polled on that thread, so its owner still holds it; bytes credited late (a
//!   thread's deferred credit) only keep counts higher. So a count of 0 is final.
//! - A sharded account (a runtime's root) also keeps per-worker partial sums that worker `i`
//!   alone writes; they are moved into the count by that worker, at the latest when it exits,
//!   and the runtime holds the account until its workers have exited.

use crate::sync::{
    AtomicU64, Ordering::AcqRel, Ordering::Acquire, Ordering::Relaxed, Ordering::SeqCst,
};
use crossbeam_utils::CachePadded;
use std::ptr::{self, NonNull};

/// One holder's share of `count`.
const HOLD: u64 = 1 << 48;
/// Live bytes occupy the low 48 bits, sign-extended: up to ±128 TiB.
const BYTE_BITS: u32 = 48;
/// The most bytes one charge may take (a budget refuses more): what live bytes can represent.
pub(crate) const MAX_BYTES: u64 = 1 << (BYTE_BITS - 2);
/// A worker moves its partial sum of a sharded account into the count past this many bytes.
const SPILL: i64 = 256 << 10;

#[cfg(test)]
std::thread_local! {
    /// Accounts freed so far on this OS thread (a loom model runs all its threads on one).
    pub(crate) static FREED: std::cell::Cell<usize> = const { std::cell::Cell::new(0) };
}

/// The counter one owner's bytes are charged to.
pub(crate) struct Account {
    count: AtomicU64,
    /// The highest live byte count seen at a charge (sharded accounts: of the count alone).
    peak: AtomicU64,
    /// Null at a root.
    parent: *const Account,
    /// Per-worker partial sums (a runtime's root); empty otherwise.
    shards: Box<[CachePadded<AtomicU64>]>,
    /// Loom: written when the account is freed and read wherever a thread relies on it being
    /// alive, so a use not ordered before the free shows up as a causality violation.
    #[cfg(loom)]
    alive: loom::cell::UnsafeCell<()>,
}

// SAFETY: the account is only touched through atomics; `parent` is a pointer to an account
// kept alive by this one's hold on it (file invariant).
unsafe impl Send for Account {}
// SAFETY: as above.
unsafe impl Sync for Account {}

/// The owner's hold on an account: dropping it releases the hold (the account lives on while
/// bytes or children need it).
pub(crate) struct AccountRef {
    ptr: NonNull<Account>,
}

// SAFETY: an `AccountRef` is a hold on a `Sync` account, usable from any thread.
unsafe impl Send for AccountRef {}
// SAFETY: as above.
unsafe impl Sync for AccountRef {}

/// Sign-extends the live-bytes part of a count.
#[inline(always)]
fn bytes_of(count: u64) -> i64 {
    ((count << (64 - BYTE_BITS)) as i64) >> (64 - BYTE_BITS)
}

impl Account {
    /// A new account held by the returned owner; it holds `parent` (if any) until it is freed.
    /// `shards` per-worker partial sums (0 for none). Allocates with the engine's own memory
    /// exempt from accounting.
    pub(crate) fn create(parent: Option<&AccountRef>, shards: usize) -> AccountRef {
        let parent = match parent {
            Some(p) => {
                p.account().count.fetch_add(HOLD, AcqRel);
                p.ptr.as_ptr().cast_const()
            }
            None => ptr::null(),
        };
        let _exempt = super::local::exempt();
        let account = Box::new(Account {
            count: AtomicU64::new(HOLD),
            peak: AtomicU64::new(0),
            parent,
            shards: (0..shards)
                .map(|_| CachePadded::new(AtomicU64::new(0)))
                .collect(),
            #[cfg(loom)]
            alive: loom::cell::UnsafeCell::new(()),
        });
        AccountRef {
            ptr: NonNull::from(Box::leak(account)),
        }
    }

    /// Live bytes charged (sharded: the count plus every worker's partial sum).
    pub(crate) fn live(&self) -> i64 {
        let mut bytes = bytes_of(self.count.load(Acquire));
        for shard in self.shards.iter() {
            bytes = bytes.wrapping_add(shard.load(Relaxed) as i64);
        }
        bytes
    }

    /// `live` of an unsharded account, read with a read-modify-write (loom models).
    #[cfg(all(test, loom))]
    pub(crate) fn live_latest(&self) -> i64 {
        bytes_of(self.count.fetch_add(0, AcqRel))
    }

    /// Live bytes in the count alone (sharded: without the workers' partial sums, which are
    /// each within `SPILL` of zero).
    #[cfg(test)]
    pub(crate) fn live_central(&self) -> i64 {
        bytes_of(self.count.load(Acquire))
    }

    /// Records `level` live bytes as seen, for the peak.
    pub(crate) fn raise_peak(&self, level: u64) {
        self.peak.fetch_max(level, Relaxed);
    }

    /// Owners and child accounts holding this one.
    #[cfg(test)]
    pub(crate) fn holders(&self) -> u64 {
        let count = self.count.load(Acquire);
        count.wrapping_sub(bytes_of(count) as u64) / HOLD
    }

    pub(crate) fn peak(&self) -> u64 {
        self.peak.load(Relaxed)
    }

    /// Adds `bytes` to this level if the level stays at or below `limit` (the shards' partial
    /// sums read once); the new live bytes, or the live bytes that refused it. The peak is left
    /// to the caller (`raise_peak`), which may still roll the charge back.
    pub(crate) fn try_charge(&self, bytes: u64, limit: u64) -> Result<i64, i64> {
        let shards: i64 = self
            .shards
            .iter()
            .map(|s| s.load(Relaxed) as i64)
            .fold(0, i64::wrapping_add);
        // `SeqCst`, as is the credit in `apply`: a request that queues on a budget and then
        // finds it full here, and a release that credits the budget and then finds no request
        // queued, cannot both happen (the store-buffer pattern of `serve_if_waiting`). With
        // `Acquire` this load may read a count from before a concurrent credit, and the
        // request waits for a release that already came (seen under Miri's weak memory).
        let mut count = self.count.load(SeqCst);
        loop {
            let live = bytes_of(count).wrapping_add(shards);
            let next = (live.max(0) as u64).saturating_add(bytes);
            if next > limit || next > MAX_BYTES {
                return Err(live);
            }
            match self
                .count
                .compare_exchange_weak(count, count.wrapping_add(bytes), SeqCst, SeqCst)
            {
                Ok(_) => return Ok(next as i64),
                Err(actual) => count = actual,
            }
        }
    }

    /// Charges (positive) or credits (negative) `delta` bytes to this level only, through
    /// worker `shard`'s partial sum when the account is sharded and the caller is that worker.
    ///
    /// # Safety
    /// `this` is alive: held by the caller's owner, or its count includes the bytes a negative
    /// `delta` credits. After the call `this` may have been freed (a credit may free it).
    pub(crate) unsafe fn apply(this: NonNull<Account>, delta: i64, shard: Option<usize>) {
        // SAFETY: caller contract.
        let account = unsafe { this.as_ref() };
        #[cfg(loom)]
        account.alive.with(|_| ());
        if let Some(slot) = shard.and_then(|i| account.shards.get(i)) {
            // Worker `shard` is the only writer of its slot (file invariant).
            let sum = (slot.load(Relaxed) as i64).wrapping_add(delta);
            if sum.unsigned_abs() < SPILL as u64 {
                slot.store(sum as u64, Relaxed);
                return;
            }
            slot.store(0, Relaxed);
            // SAFETY: the shard's bytes move into the count; the runtime holds the account.
            return unsafe { Account::apply(this, sum, None) };
        }
        // `SeqCst`: the write half of the store-buffer pattern `try_charge` describes (on x86 an
        // RMW costs the same under any ordering).
        let prev = account.count.fetch_add(delta as u64, SeqCst);
        let next = prev.wrapping_add(delta as u64);
        if delta > 0 {
            let live = bytes_of(next);
            if live > 0 {
                account.peak.fetch_max(live as u64, Relaxed);
            }
        } else if next == 0 {
            // SAFETY: the count reached 0: nobody holds the account and no byte names it.
            unsafe { Account::free(this) }
        }
    }

    /// Moves worker `shard`'s partial sum into the count (the worker is exiting).
    ///
    /// # Safety
    /// Called by worker `shard` of the runtime that holds `this`.
    pub(crate) unsafe fn spill(this: NonNull<Account>, shard: usize) {
        // SAFETY: caller contract: the runtime holds the account.
        let account = unsafe { this.as_ref() };
        if let Some(slot) = account.shards.get(shard) {
            let sum = slot.swap(0, Relaxed) as i64;
            if sum != 0 {
                // SAFETY: held by the runtime.
                unsafe { Account::apply(this, sum, None) }
            }
        }
    }

    /// Credits `bytes` to `this` and every ancestor, bottom up.
    ///
    /// # Safety
    /// `bytes` were charged to `this` (hence to every ancestor) and not credited since.
    pub(crate) unsafe fn credit_chain(this: NonNull<Account>, bytes: u64, shard: Shard) {
        let mut level = Some(this);
        while let Some(account) = level {
            // SAFETY: this level's count includes `bytes` until the `apply` below (file
            // invariant), so it is alive to read its parent first.
            let parent = NonNull::new(unsafe { account.as_ref() }.parent.cast_mut());
            let slot = shard.of(account);
            // SAFETY: as above; after this call `account` is not touched again.
            unsafe { Account::apply(account, (bytes as i64).wrapping_neg(), slot) };
            level = parent;
        }
    }

    /// Charges (or, negative, credits) `delta` bytes to `this` and every ancestor: the
    /// publication of the owner's delta.
    ///
    /// # Safety
    /// `this` is held by the caller's owner (so the chain is alive), and a negative `delta`
    /// credits bytes that were charged to it.
    pub(crate) unsafe fn publish_chain(this: NonNull<Account>, delta: i64, shard: Shard) {
        if delta == 0 {
            return;
        }
        let mut level = Some(this);
        while let Some(account) = level {
            // SAFETY: the owner's hold keeps the account and, through the holds of each child
            // on its parent, every ancestor alive.
            let parent = NonNull::new(unsafe { account.as_ref() }.parent.cast_mut());
            let slot = shard.of(account);
            // SAFETY: as above: the owner's hold means this cannot bring a count to 0.
            unsafe { Account::apply(account, delta, slot) };
            level = parent;
        }
    }

    /// # Safety
    /// The count is 0: nobody else can reach the account any more.
    unsafe fn free(this: NonNull<Account>) {
        let _exempt = super::local::exempt();
        // SAFETY: made by `Box::leak` in `create`; the count reached 0 once, here.
        let account = unsafe { Box::from_raw(this.as_ptr()) };
        #[cfg(loom)]
        account.alive.with_mut(|_| ());
        #[cfg(test)]
        FREED.with(|f| f.set(f.get() + 1));
        let parent = NonNull::new(account.parent.cast_mut());
        drop(account);
        if let Some(parent) = parent {
            // SAFETY: this account held its parent until now.
            unsafe { Account::apply(parent, (HOLD as i64).wrapping_neg(), None) };
        }
    }
}

impl AccountRef {
    pub(crate) fn account(&self) -> &Account {
        // SAFETY: the owner's hold keeps the account alive.
        unsafe { self.ptr.as_ref() }
    }

    pub(crate) fn as_ptr(&self) -> NonNull<Account> {
        self.ptr
    }
}

impl Drop for AccountRef {
    fn drop(&mut self) {
        // SAFETY: the owner's hold is released once, here.
        unsafe { Account::apply(self.ptr, (HOLD as i64).wrapping_neg(), None) };
    }
}

/// Which partial sum of a sharded account the calling thread writes: set on runtime workers.
#[derive(Clone, Copy)]
pub(crate) struct Shard {
    /// The sharded account this thread is a worker of (compared by address), and its index.
    pub(crate) root: *const Account,
    pub(crate) index: usize,
}

impl Shard {
    pub(crate) const NONE: Shard = Shard {
        root: ptr::null(),
        index: 0,
    };

    /// Whether `self` and `other` name the same partial sum.
    pub(crate) fn same(self, other: Shard) -> bool {
        ptr::eq(self.root, other.root) && self.index == other.index
    }

    #[inline(always)]
    fn of(self, account: NonNull<Account>) -> Option<usize> {
        (ptr::eq(self.root, account.as_ptr())).then_some(self.index)
    }
}

impl std::fmt::Debug for Account {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Account")
            .field("live", &self.live())
            .field("peak", &self.peak())
            .finish_non_exhaustive()
    }
}
