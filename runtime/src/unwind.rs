//! Calling user code that may panic from the runtime's own threads: wakers and thread hooks.
//!
//! A waker is user code (any `Wake` impl, any executor's vtable). The threads that fire
//! wakers (workers turning the driver, the fallback timer thread, a runtime shutting down)
//! serve every other task and timer, so a waker that panics must cost nothing but its own
//! wake-up: its panic is caught (the panic hook has already reported it) and the caller goes
//! on with the rest.

use std::any::Any;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::task::Waker;

/// Wakes `waker`, surviving a panic in it.
pub(crate) fn wake(waker: Waker) {
    if let Err(payload) = catch_unwind(AssertUnwindSafe(|| waker.wake())) {
        discard(payload);
    }
}

/// Wakes every waker in `wakers`, in order, each one even if an earlier one panics.
pub(crate) fn wake_all(wakers: impl IntoIterator<Item = Waker>) {
    wakers.into_iter().for_each(wake);
}

/// Drops a caught panic's payload; a payload whose own drop panics is leaked instead, so
/// nothing unwinds out of here.
pub(crate) fn discard(payload: Box<dyn Any + Send>) {
    if let Err(again) = catch_unwind(AssertUnwindSafe(move || drop(payload))) {
        std::mem::forget(again);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;
    use std::task::Wake;

    struct Wakes {
        count: Arc<AtomicUsize>,
        panics: bool,
    }

    impl Wake for Wakes {
        fn wake(self: Arc<Self>) {
            self.count.fetch_add(1, Ordering::SeqCst);
            if self.panics {
                panic!("a waker that panics");
            }
        }
    }

    #[test]
    fn every_waker_is_woken_even_after_one_panics() {
        let count = Arc::new(AtomicUsize::new(0));
        let wakers = (0..5).map(|i| {
            Waker::from(Arc::new(Wakes {
                count: count.clone(),
                panics: i % 2 == 0,
            }))
        });
        wake_all(wakers);
        assert_eq!(count.load(Ordering::SeqCst), 5);
    }
}
