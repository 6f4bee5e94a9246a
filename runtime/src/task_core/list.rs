//! The owned-task list: every live task of a scheduler, so shutdown can cancel the ones that
//! sit in no run queue (waiting on a waker held elsewhere).
//!
//! Invariants: an intrusive doubly-linked list per shard, threaded through
//! `TaskHead::owned`, whose access rule is in the "Safety" section of mod.rs (only under the
//! lock of the shard chosen by the task's id). A task in the list owns one reference, handed
//! back by `remove`. A closed shard accepts no task, so nothing is bound after shutdown drained
//! it.

use super::header::{Header, TaskHead};
use super::{Id, RawTask, Task};
use crate::sync::{lock, Mutex};
use std::cell::UnsafeCell;
use std::ptr::NonNull;

/// Intrusive list links stored in every task.
pub(crate) struct Pointers {
    prev: UnsafeCell<Option<NonNull<Header>>>,
    next: UnsafeCell<Option<NonNull<Header>>>,
}

impl Pointers {
    pub(crate) fn new() -> Pointers {
        Pointers {
            prev: UnsafeCell::new(None),
            next: UnsafeCell::new(None),
        }
    }
}

struct Shard {
    head: Option<NonNull<Header>>,
    len: usize,
    closed: bool,
}

// SAFETY: the raw pointers in a shard are only followed under the shard's mutex, and the tasks
// they point to are `Send` (their futures are required to be).
unsafe impl Send for Shard {}

pub(crate) struct OwnedTasks {
    shards: Box<[Mutex<Shard>]>,
    mask: usize,
}

/// The list links of `task`.
///
/// # Safety
/// `task` is alive for `'a`: the caller holds a reference to it, or holds the lock of the shard
/// whose list holds one, for as long as it uses the links.
unsafe fn links<'a>(task: NonNull<Header>) -> &'a Pointers {
    // SAFETY: caller contract; the header is the start of the task's `TaskHead`.
    unsafe { &TaskHead::from_header(task).owned }
}

impl OwnedTasks {
    pub(crate) fn new(workers: usize) -> OwnedTasks {
        // Enough shards that concurrent spawns from every worker rarely meet on one lock.
        let n = (workers * 4).next_power_of_two().clamp(4, 256);
        let shards = (0..n)
            .map(|_| {
                Mutex::new(Shard {
                    head: None,
                    len: 0,
                    closed: false,
                })
            })
            .collect();
        OwnedTasks {
            shards,
            mask: n - 1,
        }
    }

    fn shard(&self, id: Id) -> &Mutex<Shard> {
        &self.shards[id.as_u64() as usize & self.mask]
    }

    /// Adds `task` (its list reference moves in); gives it back if the list is closed.
    pub(crate) fn bind(&self, task: Task) -> Result<(), Task> {
        let ptr = task.raw().header_ptr();
        let mut shard = lock(self.shard(task.raw().id()));
        if shard.closed {
            return Err(task);
        }
        // SAFETY: `task` is the reference moving into the list; the links are only touched
        // under this shard's lock, which we hold, and the old head (if any) is alive because
        // the list holds a reference to it.
        unsafe {
            let l = links(ptr);
            *l.prev.get() = None;
            *l.next.get() = shard.head;
            if let Some(head) = shard.head {
                *links(head).prev.get() = Some(ptr);
            }
        }
        shard.head = Some(ptr);
        shard.len += 1;
        std::mem::forget(task);
        Ok(())
    }

    /// Unlinks `task` if it is still in the list, handing back the list's reference.
    ///
    /// # Safety
    /// The caller holds a reference to `task`.
    pub(crate) unsafe fn remove(&self, task: NonNull<Header>) -> Option<Task> {
        // SAFETY: caller contract: the task is alive.
        let id = unsafe { task.as_ref().id };
        // SAFETY: as above.
        unsafe { unlink(&mut lock(self.shard(id)), task) }
    }

    /// Closes every shard and shuts down every task that was in the list. Tasks whose drop
    /// spawns more find the list closed and are shut down at spawn.
    pub(crate) fn close_and_shutdown_all(&self) {
        for shard in self.shards.iter() {
            lock(shard).closed = true;
            loop {
                let task = {
                    let mut s = lock(shard);
                    match s.head {
                        // SAFETY: the head is linked in this shard, whose lock we hold.
                        Some(head) => unsafe { unlink(&mut s, head) },
                        None => break,
                    }
                };
                // The lock is released: dropping a future runs user code.
                if let Some(task) = task {
                    task.shutdown();
                }
            }
        }
    }

    /// Calls `f` with every task in the list, one shard locked at a time: `f` must not run
    /// user code or take another lock of the list.
    pub(crate) fn for_each(&self, mut f: impl FnMut(&Header)) {
        for shard in self.shards.iter() {
            let shard = lock(shard);
            let mut next = shard.head;
            while let Some(task) = next {
                // SAFETY: the list holds a reference to each linked task, and the links are
                // read under the shard's lock.
                unsafe {
                    f(task.as_ref());
                    next = *links(task).next.get();
                }
            }
        }
    }

    pub(crate) fn len(&self) -> usize {
        self.shards.iter().map(|s| lock(s).len).sum()
    }
}

/// Unlinks `task` from `shard` (whose lock the caller holds) if it is linked.
///
/// # Safety
/// `task` is alive: the caller holds a reference to it, or it is linked in `shard`.
unsafe fn unlink(shard: &mut Shard, task: NonNull<Header>) -> Option<Task> {
    // SAFETY: caller contract for `task`; the caller holds the shard lock (file invariant), and
    // linked neighbours are alive because the list holds a reference to each.
    unsafe {
        let l = links(task);
        // Linked means: somebody's successor, or the head.
        if (*l.prev.get()).is_none() && shard.head != Some(task) {
            return None;
        }
        let prev = (*l.prev.get()).take();
        let next = (*l.next.get()).take();
        match prev {
            Some(p) => *links(p).next.get() = next,
            None => shard.head = next,
        }
        if let Some(n) = next {
            *links(n).prev.get() = prev;
        }
    }
    shard.len -= 1;
    // SAFETY: the list's reference is transferred to the returned `Task`.
    Some(unsafe { Task::from_raw(RawTask::from_header(task)) })
}
