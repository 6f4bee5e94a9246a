//! The task header: the fixed-layout prefix of every task allocation that the scheduler, the
//! wakers and the join handle work through without knowing the future's type.
//!
//! Invariants: `Header` is the first field of the `#[repr(C)]` `TaskHead`, which is the first
//! field of the `#[repr(C)]` task cell, so a pointer to any of the three is a pointer to all.
//! `arena` is touched only by the thread polling the task (it holds `RUNNING`), and after
//! completion by whoever drops the output (raw.rs), which frees any arena that drop creates;
//! `owned` only under the owning shard's lock; `join_waker` as described in `state.rs`.

use super::{list, state::State, Id};
use crate::memory::MkBudget;
use std::cell::UnsafeCell;
use std::ptr::{self, NonNull};
use std::task::Waker;

/// Per-type operations on a task, reached through `Header::vtable`.
pub(crate) struct Vtable {
    /// Polls the future (the caller hands over a `Notified` reference).
    pub(crate) poll: unsafe fn(NonNull<Header>),
    /// Submits a `Notified` reference to the task's scheduler.
    pub(crate) schedule: unsafe fn(NonNull<Header>),
    /// Frees the allocation (the last reference is gone).
    pub(crate) dealloc: unsafe fn(NonNull<Header>),
    /// Moves the output to `dst` (`*mut Poll<Result<T, JoinError>>`) or registers the waker.
    pub(crate) try_read_output: unsafe fn(NonNull<Header>, *mut (), &Waker),
    /// Drops the join handle's interest and reference.
    pub(crate) drop_join_handle: unsafe fn(NonNull<Header>),
    /// Cancels the task for runtime shutdown, consuming one reference.
    pub(crate) shutdown: unsafe fn(NonNull<Header>),
}

/// Fixed-layout task prefix.
#[repr(C)]
pub(crate) struct Header {
    pub(crate) state: State,
    pub(crate) vtable: &'static Vtable,
    pub(crate) id: Id,
    /// The budget this task is charged to (a reference made by `MkBudget::into_raw`, given
    /// back when the task is freed); null means the runtime's root budget. Set before the task
    /// is first scheduled, read-only after.
    pub(crate) budget: *const (),
    /// The task's arena: null until the task first allocates, then owned through this header
    /// so it follows the task from worker to worker.
    pub(crate) arena: UnsafeCell<*mut ()>,
}

/// Header plus the non-generic trailer fields, at fixed offsets for every future type.
#[repr(C)]
pub(crate) struct TaskHead {
    pub(crate) header: Header,
    pub(crate) owned: list::Pointers,
    pub(crate) join_waker: UnsafeCell<Option<Waker>>,
}

impl Header {
    pub(crate) fn new(vtable: &'static Vtable, id: Id, budget: Option<MkBudget>) -> Header {
        Header {
            state: State::new(),
            vtable,
            id,
            budget: budget.map_or(ptr::null(), MkBudget::into_raw),
            arena: UnsafeCell::new(ptr::null_mut()),
        }
    }
}

impl Drop for Header {
    fn drop(&mut self) {
        if !self.budget.is_null() {
            // SAFETY: set from `MkBudget::into_raw` in `new`; the header is dropped once.
            unsafe { MkBudget::drop_raw(self.budget) }
        }
    }
}

impl TaskHead {
    /// # Safety
    /// `ptr` points to a live task.
    pub(crate) unsafe fn from_header<'a>(ptr: NonNull<Header>) -> &'a TaskHead {
        // SAFETY: `Header` is the first field of the `repr(C)` `TaskHead` (file invariant) and
        // the caller guarantees the task is alive.
        unsafe { ptr.cast::<TaskHead>().as_ref() }
    }
}
