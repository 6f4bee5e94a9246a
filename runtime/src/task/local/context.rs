//! The set whose tasks are being polled on this thread (or that is being dropped): where
//! [`spawn_local`] puts its task.

use super::set_core::Core;
use super::LocalJoinHandle;
use std::cell::RefCell;
use std::future::Future;
use std::rc::Rc;

thread_local! {
    static CURRENT: RefCell<Option<Rc<Core>>> = const { RefCell::new(None) };
}

/// Restores the previous current set on drop (sets nest: a set run inside a task of another).
pub(super) struct Enter {
    previous: Option<Rc<Core>>,
    /// `false` when the thread's storage was already gone at `enter`: nothing to restore.
    entered: bool,
}

/// Makes `core` the thread's current set until the guard drops.
pub(super) fn enter(core: &Rc<Core>) -> Enter {
    match CURRENT.try_with(|c| c.replace(Some(core.clone()))) {
        Ok(previous) => Enter {
            previous,
            entered: true,
        },
        // The thread is being torn down (a set dropped by a thread-local destructor).
        Err(_) => Enter {
            previous: None,
            entered: false,
        },
    }
}

impl Drop for Enter {
    fn drop(&mut self) {
        if !self.entered {
            return;
        }
        let previous = self.previous.take();
        let ours = CURRENT.try_with(|c| c.replace(previous)).ok().flatten();
        // Dropped outside the thread-local's borrow.
        drop(ours);
    }
}

/// Spawns a `!Send` future on the [`LocalSet`](super::LocalSet) that is running on this
/// thread, and returns a handle to await its output.
///
/// The task runs on this thread, inside the polls of that set: its first poll comes after the
/// tasks spawned on the set before it, when the set next runs its tasks. See
/// [`LocalSet`](super::LocalSet) for how local tasks are scheduled and whose memory budget they
/// are charged to.
///
/// ```
/// use memkit_async_runtime::task::{self, LocalSet};
/// use std::rc::Rc;
///
/// let rt = memkit_async_runtime::Runtime::new().unwrap();
/// let out = LocalSet::new().block_on(&rt, async {
///     let shared = Rc::new(5); // `Rc` is not `Send`: `spawn` would not take this task
///     let task = task::spawn_local(async move { *shared * 2 });
///     task.await.unwrap()
/// });
/// assert_eq!(out, 10);
/// ```
///
/// # Panics
///
/// If no `LocalSet` is running on this thread: call it from inside [`LocalSet::run_until`],
/// [`LocalSet::block_on`], a task of a set, or a set being awaited or dropped; or spawn with
/// [`LocalSet::spawn_local`] on the set itself.
///
/// [`LocalSet::run_until`]: super::LocalSet::run_until
/// [`LocalSet::block_on`]: super::LocalSet::block_on
/// [`LocalSet::spawn_local`]: super::LocalSet::spawn_local
#[track_caller]
pub fn spawn_local<F>(future: F) -> LocalJoinHandle<F::Output>
where
    F: Future + 'static,
    F::Output: 'static,
{
    let current = CURRENT.try_with(|c| c.borrow().clone()).ok().flatten();
    match current {
        Some(core) => core.spawn(future),
        None => panic!(
            "`spawn_local` called outside a `LocalSet`: local tasks run on the thread of the \
             set that polls them, so call it from inside `LocalSet::run_until` (or \
             `LocalSet::block_on`, or a task already on a set), or spawn with \
             `LocalSet::spawn_local` on the set itself"
        ),
    }
}
