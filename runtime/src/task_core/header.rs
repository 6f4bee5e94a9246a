//! The task header: the fixed-layout prefix of every task allocation that the scheduler, the
//! wakers and the join handle work through without knowing the future's type.
//!
//! Invariants: `Header` is the first field of the `#[repr(C)]` `TaskHead`, which is the first
//! field of the `#[repr(C)]` task cell, so a pointer to any of the three is a pointer to all.
//! Who may touch each field, and when: the "Safety" section of mod.rs.

use super::memory::TaskMemory;
use super::{list, state::State, Id};
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
    /// What the task's memory is charged to (memory.rs), owned by the header and freed with
    /// it; null for a task charged to its runtime's root without a name or heap accounting.
    /// Set before the task is first scheduled, read-only after.
    pub(crate) memory: *const TaskMemory,
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
    pub(crate) fn new(vtable: &'static Vtable, id: Id, memory: Option<Box<TaskMemory>>) -> Header {
        Header {
            state: State::new(),
            vtable,
            id,
            memory: memory.map_or(ptr::null(), |m| Box::into_raw(m).cast_const()),
            arena: UnsafeCell::new(ptr::null_mut()),
        }
    }
}

impl Header {
    /// The task's memory record, if it has one.
    pub(crate) fn memory(&self) -> Option<&TaskMemory> {
        // SAFETY: a non-null pointer is the header's own record, freed only when it drops.
        unsafe { self.memory.as_ref() }
    }
}

impl Drop for Header {
    fn drop(&mut self) {
        if !self.memory.is_null() {
            // SAFETY: made by `Box::into_raw` in `new`; the header is dropped once.
            drop(unsafe { Box::from_raw(self.memory.cast_mut()) });
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
