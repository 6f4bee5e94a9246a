//! Wakers built straight from the task pointer: cloning adds a reference, no allocation.
//!
//! Invariant: a `RawWaker` made here owns one task reference (except the borrowed one lent to
//! a poll, which is wrapped in `ManuallyDrop` and never dropped), so its task is alive while the
//! waker exists. What a waker may touch of the task: the state word and the vtable (see the
//! field-access rules in mod.rs).

use super::header::Header;
use super::state::ToNotified;
use std::mem::ManuallyDrop;
use std::ptr::NonNull;
use std::task::{RawWaker, RawWakerVTable, Waker};

static VTABLE: RawWakerVTable = RawWakerVTable::new(clone, wake, wake_by_ref, drop_waker);

/// A waker for `header` that borrows the poller's reference.
///
/// # Safety
/// The task must stay alive while the returned waker (not its clones) is in use.
pub(crate) unsafe fn borrowed(header: NonNull<Header>) -> ManuallyDrop<Waker> {
    // SAFETY: `VTABLE` upholds the `RawWaker` contract for task pointers; `ManuallyDrop` keeps
    // this waker from releasing a reference it does not own.
    ManuallyDrop::new(unsafe { Waker::from_raw(RawWaker::new(header.as_ptr().cast(), &VTABLE)) })
}

/// The task a waker's data pointer names.
///
/// # Safety
/// `data` is the data pointer of a waker made here that is still in use (which keeps the task
/// alive), and the returned reference is not used after that waker's reference is given up (by
/// `wake` or `drop`, which may free the task).
unsafe fn header<'a>(data: *const ()) -> (NonNull<Header>, &'a Header) {
    // SAFETY: wakers are only built from non-null live task pointers (caller contract).
    unsafe {
        let ptr = NonNull::new_unchecked(data as *mut Header);
        (ptr, &*ptr.as_ptr())
    }
}

unsafe fn clone(data: *const ()) -> RawWaker {
    // SAFETY: `clone` is called on a live waker, which holds a reference.
    unsafe { header(data) }.1.state.ref_inc();
    RawWaker::new(data, &VTABLE)
}

unsafe fn wake(data: *const ()) {
    // SAFETY: the waker is live until the reference it owns is given up below; `h` is not used
    // after that.
    let (ptr, h) = unsafe { header(data) };
    match h.state.transition_to_notified_by_val() {
        // SAFETY: the waker's reference became the `Notified` reference the vtable consumes.
        ToNotified::Submit => unsafe { (h.vtable.schedule)(ptr) },
        // SAFETY: that was the last reference.
        ToNotified::Dealloc => unsafe { (h.vtable.dealloc)(ptr) },
        ToNotified::DoNothing => {}
    }
}

unsafe fn wake_by_ref(data: *const ()) {
    // SAFETY: the waker is borrowed, so it stays live for the whole call.
    let (ptr, h) = unsafe { header(data) };
    if h.state.transition_to_notified_by_ref() == ToNotified::Submit {
        // SAFETY: the transition added the `Notified` reference the vtable consumes.
        unsafe { (h.vtable.schedule)(ptr) }
    }
}

unsafe fn drop_waker(data: *const ()) {
    // SAFETY: the waker is live until its reference is dropped below; `h` is not used after.
    let (ptr, h) = unsafe { header(data) };
    if h.state.ref_dec() {
        // SAFETY: that was the last reference.
        unsafe { (h.vtable.dealloc)(ptr) }
    }
}
