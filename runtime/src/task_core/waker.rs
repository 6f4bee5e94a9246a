//! Wakers built straight from the task pointer: cloning adds a reference, no allocation.
//!
//! Invariant: a `RawWaker` made here owns one task reference (except the borrowed one lent to
//! a poll, which is wrapped in `ManuallyDrop` and never dropped).

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

fn header<'a>(data: *const ()) -> (NonNull<Header>, &'a Header) {
    // SAFETY: wakers are only built from live task pointers and each holds a reference.
    unsafe {
        let ptr = NonNull::new_unchecked(data as *mut Header);
        (ptr, &*ptr.as_ptr())
    }
}

unsafe fn clone(data: *const ()) -> RawWaker {
    header(data).1.state.ref_inc();
    RawWaker::new(data, &VTABLE)
}

unsafe fn wake(data: *const ()) {
    let (ptr, h) = header(data);
    match h.state.transition_to_notified_by_val() {
        // SAFETY: the waker's reference became the `Notified` reference the vtable consumes.
        ToNotified::Submit => unsafe { (h.vtable.schedule)(ptr) },
        // SAFETY: that was the last reference.
        ToNotified::Dealloc => unsafe { (h.vtable.dealloc)(ptr) },
        ToNotified::DoNothing => {}
    }
}

unsafe fn wake_by_ref(data: *const ()) {
    let (ptr, h) = header(data);
    if h.state.transition_to_notified_by_ref() == ToNotified::Submit {
        // SAFETY: the transition added the `Notified` reference the vtable consumes.
        unsafe { (h.vtable.schedule)(ptr) }
    }
}

unsafe fn drop_waker(data: *const ()) {
    let (ptr, h) = header(data);
    if h.state.ref_dec() {
        // SAFETY: that was the last reference.
        unsafe { (h.vtable.dealloc)(ptr) }
    }
}
