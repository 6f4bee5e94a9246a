//! The runtime this thread runs in: its handle (for `spawn` and `Handle::current`), entered on
//! the runtime's threads, in `block_on` and by `Runtime::enter`, together with the runtime's
//! memory and driver, which the layers below find through their own current state.

use super::Handle;
use crate::driver;
use crate::memory::RuntimeMemory;
use std::cell::RefCell;

thread_local! {
    static HANDLE: RefCell<Option<Handle>> = const { RefCell::new(None) };
}

/// Keeps a runtime current on this thread; the previous one comes back when it drops.
pub(crate) struct EnterGuard {
    prev: Option<Handle>,
    _memory: crate::memory::runtime_memory::CurrentGuard,
    _driver: driver::CurrentGuard,
}

/// Makes the runtime of `handle` current on this thread until the guard drops.
pub(crate) fn enter(handle: &Handle) -> EnterGuard {
    EnterGuard {
        _memory: RuntimeMemory::enter(handle.memory().clone()),
        _driver: driver::enter(handle.driver().clone()),
        prev: HANDLE
            .try_with(|c| c.replace(Some(handle.clone())))
            .unwrap_or(None),
    }
}

impl Drop for EnterGuard {
    fn drop(&mut self) {
        let prev = self.prev.take();
        // The handle entered is dropped after the cell is released: it may be the last one.
        let entered = HANDLE.try_with(|c| c.replace(prev));
        drop(entered);
    }
}

/// The handle of the runtime this thread runs in, if any.
pub(crate) fn current() -> Option<Handle> {
    HANDLE.try_with(|c| c.borrow().clone()).unwrap_or(None)
}
