//! The per-thread half of heap accounting: which account this thread's allocations go to now,
//! and the bytes charged or credited to it that are not published yet.
//!
//! The allocation fast path touches only this thread's state: allocations and frees of memory
//! the current account owns move a plain counter (`delta`), published up the account chain once
//! it passes `FLUSH` bytes either way or when the scope (a task's poll) ends. A free of memory
//! another account owns is deferred the same way while a scope is active (consecutive frees of
//! one foreign account cost one publication), and published at once outside scopes.
//!
//! The state lives in a `const`-initialised thread-local without a destructor, so it is usable
//! before `main`, during thread-local destruction and on threads the runtime never saw.
//!
//! Invariant: `current` and `remote`, when set, name live accounts: `current` is held by the
//! owner of the active scope (`Scope::enter`'s caller keeps its hold until the scope ends), and
//! `remote` has `remote_bytes` (not yet credited) counted in it.

use super::account::{Account, Shard};
use std::cell::Cell;
use std::ptr::{self, NonNull};
use std::sync::atomic::{AtomicI64, Ordering::Relaxed};

/// Bytes a thread may charge or credit before publishing them.
pub(crate) const FLUSH: i64 = 64 << 10;

/// Trailer tag of memory the engine counts itself (arena chunks, accounts): never charged.
pub(crate) const EXEMPT: usize = 1;
/// Trailer tag of memory allocated outside any task.
pub(crate) const UNATTRIBUTED: usize = 2;

/// Bytes allocated outside any task and still live, published in steps of `FLUSH` per thread.
static UNATTRIBUTED_BYTES: AtomicI64 = AtomicI64::new(0);

/// One thread's accounting state.
pub(crate) struct Local {
    current: Cell<*const Account>,
    delta: Cell<i64>,
    /// Bytes charged minus credited to `current` since its scope began.
    net: Cell<i64>,
    remote: Cell<*const Account>,
    remote_bytes: Cell<u64>,
    exempt: Cell<u32>,
    shard: Cell<Shard>,
    unattributed: Cell<i64>,
}

thread_local! {
    static LOCAL: Local = const { Local::new() };
}

impl Local {
    pub(crate) const fn new() -> Local {
        Local {
            current: Cell::new(ptr::null()),
            delta: Cell::new(0),
            net: Cell::new(0),
            remote: Cell::new(ptr::null()),
            remote_bytes: Cell::new(0),
            exempt: Cell::new(0),
            shard: Cell::new(Shard::NONE),
            unattributed: Cell::new(0),
        }
    }

    /// Charges a new allocation of `bytes`; returns the trailer tag naming who paid.
    #[inline(always)]
    pub(crate) fn charge(&self, bytes: u64) -> usize {
        if self.exempt.get() != 0 {
            return EXEMPT;
        }
        let current = self.current.get();
        if current.is_null() {
            self.move_unattributed(bytes as i64);
            return UNATTRIBUTED;
        }
        self.net.set(self.net.get().wrapping_add(bytes as i64));
        let delta = self.delta.get().wrapping_add(bytes as i64);
        if delta > FLUSH {
            self.delta.set(0);
            // SAFETY: `current` is held by the scope's owner (file invariant).
            unsafe { self.publish(current, delta) };
        } else {
            self.delta.set(delta);
        }
        current as usize
    }

    /// Credits a freed allocation of `bytes` tagged `tag`.
    ///
    /// # Safety
    /// `tag` was returned by `charge` for these `bytes` (on any thread), and is credited once.
    #[inline(always)]
    pub(crate) unsafe fn credit(&self, tag: usize, bytes: u64) {
        match tag {
            EXEMPT => {}
            UNATTRIBUTED => self.move_unattributed((bytes as i64).wrapping_neg()),
            _ if tag == self.current.get() as usize => {
                self.net.set(self.net.get().wrapping_sub(bytes as i64));
                let delta = self.delta.get().wrapping_sub(bytes as i64);
                if delta < -FLUSH {
                    self.delta.set(0);
                    // SAFETY: `current` is held by the scope's owner, and the bytes were
                    // charged to it.
                    unsafe { self.publish(self.current.get(), delta) };
                } else {
                    self.delta.set(delta);
                }
            }
            // SAFETY: forwarded caller contract.
            _ => unsafe { self.credit_remote(tag as *const Account, bytes) },
        }
    }

    /// # Safety
    /// As `credit`, for an account other than `current`.
    #[cold]
    unsafe fn credit_remote(&self, account: *const Account, bytes: u64) {
        // SAFETY: a tag other than the sentinels is the address of an account that counts
        // these bytes, so it is alive (account.rs).
        let account = unsafe { NonNull::new_unchecked(account.cast_mut()) };
        if self.current.get().is_null() {
            // SAFETY: the bytes were charged to `account` and are credited once.
            return unsafe { Account::credit_chain(account, bytes, self.shard.get()) };
        }
        if ptr::eq(self.remote.get(), account.as_ptr()) {
            let owed = self.remote_bytes.get().wrapping_add(bytes);
            self.remote_bytes.set(owed);
            if owed > FLUSH as u64 {
                self.flush_remote();
            }
            return;
        }
        self.flush_remote();
        self.remote.set(account.as_ptr());
        self.remote_bytes.set(bytes);
    }

    /// Publishes the deferred foreign credit.
    fn flush_remote(&self) {
        let account = self.remote.replace(ptr::null());
        let bytes = self.remote_bytes.replace(0);
        if let Some(account) = NonNull::new(account.cast_mut()) {
            // SAFETY: `remote` counts `remote_bytes` not yet credited, so it is alive, and
            // they are credited once, here.
            unsafe { Account::credit_chain(account, bytes, self.shard.get()) };
        }
    }

    /// # Safety
    /// `account` is held by the active scope's owner.
    unsafe fn publish(&self, account: *const Account, delta: i64) {
        if let Some(account) = NonNull::new(account.cast_mut()) {
            // SAFETY: caller contract.
            unsafe { Account::publish_chain(account, delta, self.shard.get()) };
        }
    }

    fn move_unattributed(&self, bytes: i64) {
        let pending = self.unattributed.get().wrapping_add(bytes);
        if pending.unsigned_abs() > FLUSH as u64 {
            self.unattributed.set(0);
            UNATTRIBUTED_BYTES.fetch_add(pending, Relaxed);
        } else {
            self.unattributed.set(pending);
        }
    }

    /// Publishes everything this thread holds back for the active scope.
    fn flush(&self) {
        let delta = self.delta.replace(0);
        // SAFETY: `current` is held by the active scope's owner.
        unsafe { self.publish(self.current.get(), delta) };
        self.flush_remote();
    }
}

/// An active accounting scope: allocations on this thread are charged to its account until it
/// ends. Scopes nest (the outer one is published, then resumed when the inner one ends).
pub(crate) struct Scope {
    prev: *const Account,
    prev_net: i64,
    done: bool,
}

impl Scope {
    /// Makes `account` the one this thread's allocations are charged to.
    ///
    /// # Safety
    /// The caller holds `account` until the scope has ended.
    pub(crate) unsafe fn enter(account: NonNull<Account>) -> Scope {
        // SAFETY: forwarded caller contract.
        with_local(|l| unsafe { l.enter(account) }).unwrap_or(Scope {
            prev: ptr::null(),
            prev_net: 0,
            done: true,
        })
    }

    /// Ends the scope, publishing its bytes; returns the bytes it charged minus those it
    /// credited to its own account (positive: the owner grew).
    pub(crate) fn finish(mut self) -> i64 {
        with_local(|l| l.exit(&mut self)).unwrap_or(0)
    }
}

impl Local {
    /// Makes this state worker `shard.index`'s of the runtime holding `shard.root`.
    pub(crate) fn set_shard(&self, shard: Shard) {
        self.shard.set(shard);
    }

    /// `Scope::enter` on this state.
    ///
    /// # Safety
    /// As `Scope::enter`.
    pub(crate) unsafe fn enter(&self, account: NonNull<Account>) -> Scope {
        self.flush();
        Scope {
            prev: self.current.replace(account.as_ptr()),
            prev_net: self.net.replace(0),
            done: false,
        }
    }

    /// `Scope::finish` on this state.
    pub(crate) fn exit(&self, scope: &mut Scope) -> i64 {
        if std::mem::replace(&mut scope.done, true) {
            return 0;
        }
        self.flush();
        self.current.set(scope.prev);
        self.net.replace(scope.prev_net)
    }
}

impl Drop for Scope {
    fn drop(&mut self) {
        let _ = with_local(|l| l.exit(self));
    }
}

/// While alive, this thread's allocations are the engine's own, counted by its own guards.
pub(crate) struct Exempt(());

pub(crate) fn exempt() -> Exempt {
    let _ = with_local(|l| l.exempt.set(l.exempt.get() + 1));
    Exempt(())
}

impl Drop for Exempt {
    fn drop(&mut self) {
        let _ = with_local(|l| l.exempt.set(l.exempt.get().saturating_sub(1)));
    }
}

/// For the runtime's own structures touched during a poll (run queues, the timer wheel): their
/// memory is the runtime's, not the task's, so it is not counted while the guard lives. Free
/// of cost without `MkGlobalAlloc`.
#[inline(always)]
pub(crate) fn engine() -> Option<Exempt> {
    super::installed().then(exempt)
}

/// Makes this thread worker `shard.index` of the runtime whose root account is `shard.root`
/// until the guard drops, which moves the worker's partial sum into the root's count.
pub(crate) struct WorkerShard(Shard);

pub(crate) fn enter_worker(shard: Shard) -> WorkerShard {
    let _ = with_local(|l| l.set_shard(shard));
    WorkerShard(shard)
}

/// Stops writing the partial sums of the worker this thread was (its role went to another
/// thread, `block_in_place`); returns the shard for [`rejoin_worker`]. Allocations stay
/// charged to the current account, through the root's shared count.
pub(crate) fn leave_worker() -> Shard {
    with_local(|l| {
        l.flush();
        l.shard.replace(Shard::NONE)
    })
    .unwrap_or(Shard::NONE)
}

/// Writes `shard`'s partial sums again, after [`leave_worker`].
pub(crate) fn rejoin_worker(shard: Shard) {
    let _ = with_local(|l| l.set_shard(shard));
}

impl Drop for WorkerShard {
    fn drop(&mut self) {
        let left = with_local(|l| l.shard.replace(Shard::NONE));
        // A thread that left its worker's role (`leave_worker`) writes its shard no more: the
        // thread that took the role over spills it.
        if !left.is_some_and(|s| s.same(self.0)) {
            return;
        }
        if let Some(root) = NonNull::new(self.0.root.cast_mut()) {
            // SAFETY: this thread was worker `index` of the runtime that holds `root`, and the
            // runtime holds it until its workers have exited.
            unsafe { Account::spill(root, self.0.index) };
        }
    }
}

/// While alive, this thread's allocations are unattributed: no account is current. Restores the
/// previous account when dropped, on unwinding too.
pub(crate) struct Detached {
    prev: *const Account,
}

pub(crate) fn detach() -> Detached {
    let prev = with_local(|l| {
        l.flush();
        l.current.replace(ptr::null())
    });
    Detached {
        prev: prev.unwrap_or(ptr::null()),
    }
}

impl Drop for Detached {
    fn drop(&mut self) {
        let _ = with_local(|l| {
            l.flush();
            // The scope that made `prev` current is still active (it encloses this guard), so
            // its owner still holds `prev`.
            l.current.set(self.prev);
        });
    }
}

/// Runs `f` with this thread's state; `None` only if the platform cannot give it.
#[inline(always)]
pub(crate) fn with_local<R>(f: impl FnOnce(&Local) -> R) -> Option<R> {
    LOCAL.try_with(f).ok()
}

/// Bytes allocated outside any task and still live (each thread publishes in steps of
/// `FLUSH`, so this is within `FLUSH` per thread of the exact figure).
pub(crate) fn unattributed_bytes() -> i64 {
    UNATTRIBUTED_BYTES.load(Relaxed)
}

/// Publishes everything `local` holds back, its unattributed bytes included.
pub(crate) fn flush_state(local: &Local) {
    local.flush();
    let pending = local.unattributed.replace(0);
    UNATTRIBUTED_BYTES.fetch_add(pending, Relaxed);
}
