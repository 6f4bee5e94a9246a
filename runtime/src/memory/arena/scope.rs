//! `Scope`: the arena owner of an `MkArenaTask` (containers/arena_task.rs), and the thread's
//! current scope, which arena allocation consults when no memkit task is current, so the memkit
//! task fast path is unchanged.
//!
//! Invariants:
//! - The thread's scope pointer names a `Scope` only while a `ScopeGuard` borrowing it lives on
//!   that thread: the guard restores the previous value when it drops (also on unwind), and the
//!   borrow keeps the scope from moving or dropping meanwhile.
//! - A scope's arena slot is null until its first allocation, then holds a boxed `Arena` owned
//!   by the scope until `release_arena` or the scope's drop. It is used through the scope
//!   pointer by the thread the scope is entered on (one at a time: a scope is `!Sync`, and the
//!   future holding it is polled through `Pin<&mut>`, with executors ordering successive polls
//!   on different threads), never while a borrow from `Scope::arena` lives; so the arena is
//!   used by one thread at a time, as the arena requires.

use super::{Arena, Mode};
use crate::memory::{MkAllocError, MkBudget, RuntimeMemory};
use crate::task_core::current::{self as current_task, TaskGuard};
use std::cell::Cell;
use std::marker::PhantomData;
use std::ptr::{self, NonNull};
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

thread_local! {
    // Consulted only when no task is current, so the task fast path never reads it.
    static SCOPE: Cell<Option<NonNull<Scope>>> = const { Cell::new(None) };
}

/// The arena owner of an `MkArenaTask`.
pub(crate) struct Scope {
    /// Process-unique, so frames can name the scope that owns them.
    id: u64,
    budget: MkBudget,
    arena: Cell<*mut Arena>,
}

// SAFETY: a scope exclusively owns its boxed arena (which is `Send`); moving the scope moves
// that ownership whole. It is not `Sync` (`Cell`), so one thread uses it at a time.
unsafe impl Send for Scope {}

/// Keeps a scope current; the previous task and scope come back when it drops.
pub(crate) struct ScopeGuard<'a> {
    _task: TaskGuard,
    prev: Option<NonNull<Scope>>,
    _scope: PhantomData<&'a Scope>,
}

impl Drop for ScopeGuard<'_> {
    fn drop(&mut self) {
        SCOPE.set(self.prev);
    }
}

impl Scope {
    /// A scope whose arena (made on first use) is charged to `budget`.
    pub(crate) fn new(budget: MkBudget) -> Scope {
        static NEXT: AtomicU64 = AtomicU64::new(1);
        Scope {
            id: NEXT.fetch_add(1, Relaxed),
            budget,
            arena: Cell::new(ptr::null_mut()),
        }
    }

    pub(crate) fn budget(&self) -> &MkBudget {
        &self.budget
    }

    /// Makes this the current arena scope until the guard drops. A memkit task being polled on
    /// this thread is hidden meanwhile: the innermost arena owner is the one allocations go to.
    pub(crate) fn enter(&self) -> ScopeGuard<'_> {
        ScopeGuard {
            _task: current_task::hide(),
            prev: SCOPE.replace(Some(NonNull::from(self))),
            _scope: PhantomData,
        }
    }

    /// Bytes of arena chunks installed so far (0 without an arena).
    pub(crate) fn installed_bytes(&self) -> usize {
        let arena = self.arena.get();
        if arena.is_null() {
            return 0;
        }
        // SAFETY: a non-null slot holds the scope's live arena; `&self` on this thread means no
        // other thread uses it (the scope is `!Sync`), and no borrow from `arena()` is alive
        // across this call.
        unsafe { &*arena }.installed_bytes()
    }

    /// The scope's arena, created (empty, charged to the scope's budget) on first use.
    fn arena(&self) -> &Arena {
        let mut arena = self.arena.get();
        if arena.is_null() {
            let pool = RuntimeMemory::current_pool();
            arena = Box::into_raw(Arena::new(self.budget.clone(), pool, Mode::Counted));
            self.arena.set(arena);
        }
        // SAFETY: a non-null slot holds a live boxed arena, freed only by `release_arena`,
        // which never runs while a borrow from here lives (file invariant).
        unsafe { &*arena }
    }

    /// Charges this thread's heap allocations to the scope's budget until the guard drops
    /// (with `MkGlobalAlloc` installed).
    pub(crate) fn enter_heap(&self) -> Option<crate::heap::Scope> {
        // SAFETY: the scope holds its budget, which holds the account, for the guard's life
        // (the guard lives inside a poll or drop of the task that owns the scope).
        crate::heap::installed()
            .then(|| unsafe { crate::heap::Scope::enter(self.budget.account().as_ptr()) })
    }

    /// Drops the arena (its chunks live on while objects in them do); a later allocation would
    /// start a new one.
    pub(crate) fn release_arena(&self) {
        let arena = self.arena.replace(ptr::null_mut());
        if !arena.is_null() {
            // SAFETY: made by `Box::into_raw` in `arena` and taken out of the slot here, so
            // freed once; no borrow from `arena()` is alive (callers hold none).
            drop(unsafe { Box::from_raw(arena) });
        }
    }
}

impl Drop for Scope {
    fn drop(&mut self) {
        self.release_arena();
    }
}

fn current_scope() -> Option<NonNull<Scope>> {
    SCOPE.get()
}

/// Runs `f` with the current scope's arena, or `NoTask` when no scope is current either.
#[cold]
pub(crate) fn with_scope_arena<R>(
    f: impl FnOnce(&Arena) -> Result<R, MkAllocError>,
) -> Result<R, MkAllocError> {
    let scope = current_scope().ok_or(MkAllocError::NoTask)?;
    // SAFETY: a current scope is alive and used only by this thread (file invariant).
    f(unsafe { scope.as_ref() }.arena())
}

/// The identity of the current scope's arena; null without a scope or before its first
/// allocation.
pub(crate) fn current_arena_id() -> *const () {
    match current_scope() {
        // SAFETY: as in `with_scope_arena`.
        Some(scope) => unsafe { scope.as_ref() }.arena.get().cast_const().cast(),
        None => ptr::null(),
    }
}

/// The id of the current scope.
pub(crate) fn current_scope_id() -> Option<u64> {
    // SAFETY: as in `with_scope_arena`.
    current_scope().map(|scope| unsafe { scope.as_ref() }.id)
}

/// The budget of the current scope.
pub(crate) fn current_budget() -> Option<MkBudget> {
    // SAFETY: as in `with_scope_arena`.
    current_scope().map(|scope| unsafe { scope.as_ref() }.budget.clone())
}
