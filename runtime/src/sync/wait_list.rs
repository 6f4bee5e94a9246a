//! `WaitList<S>`: the FIFO of waiting requests that the budgets, the pool, the semaphore and the
//! channel are built on.
//!
//! It is plain data, kept under its owner's lock, so the owner can change its own counters in
//! the same critical section as the queue. Each waiter is a slot of a slab: its state `S`
//! (bytes or permits needed, an outcome), its waker, and its links in an intrusive doubly-linked
//! FIFO threaded through slab indices. So:
//! - waiting allocates nothing once the slab has grown to the most concurrent waiters (freed
//!   slots are reused through a free list), and the [`WakeList`] that carries wakers out of the
//!   lock holds a few wakers inline;
//! - cancelling is O(1): a waiter is unlinked by its index, wherever it is in the queue;
//! - a [`WaitKey`] carries the generation of its slot, bumped whenever the slot is freed, so a
//!   stale key never names a later waiter: operations on it see "no such waiter".
//!
//! A waiter is *queued* (linked into the FIFO), then *detached* (out of the queue, its slot
//! still owned: granted, closed, ...) or removed; only [`remove`](WaitList::remove) frees the
//! slot. No method calls or drops a waker: those that take wakers out hand them back (in a
//! [`WakeList`] or as a value) for the caller to wake or drop once its lock is released, so no
//! user code runs under the lock.

use std::fmt;
use std::task::Waker;

/// No slot: the end of a list.
const NIL: u32 = u32::MAX;

/// Names one waiter of a [`WaitList`]; stale once the waiter is removed.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub struct WaitKey {
    index: u32,
    generation: u64,
}

enum Link {
    /// Unused; `next` is the next free slot.
    Free { next: u32 },
    /// In the FIFO.
    Queued { prev: u32, next: u32 },
    /// Out of the FIFO, still owned by its waiter.
    Detached,
}

struct Slot<S> {
    generation: u64,
    link: Link,
    waker: Option<Waker>,
    state: Option<S>,
}

/// A FIFO of waiters, each with a state `S` and a waker; see the [module](self) docs.
pub struct WaitList<S> {
    slots: Vec<Slot<S>>,
    head: u32,
    tail: u32,
    free: u32,
    queued: usize,
}

impl<S> Default for WaitList<S> {
    fn default() -> Self {
        Self::new()
    }
}

impl<S> WaitList<S> {
    /// An empty list; it allocates when the first waiter comes.
    pub const fn new() -> Self {
        WaitList {
            slots: Vec::new(),
            head: NIL,
            tail: NIL,
            free: NIL,
            queued: 0,
        }
    }

    /// How many waiters are queued (detached ones not counted).
    pub fn len(&self) -> usize {
        self.queued
    }

    /// Whether no waiter is queued.
    pub fn is_empty(&self) -> bool {
        self.queued == 0
    }

    /// How many slots the slab holds (in use and free): the most waiters it has held at once.
    pub fn slots(&self) -> usize {
        self.slots.len()
    }

    /// Queues a waiter with `state` and no waker at the back; its key.
    ///
    /// Panics if more than `u32::MAX - 1` waiters exist at once (memory runs out first).
    pub fn push_back(&mut self, state: S) -> WaitKey {
        let index = if self.free != NIL {
            let index = self.free;
            let slot = &mut self.slots[index as usize];
            let Link::Free { next } = slot.link else {
                unreachable!("the free list holds only free slots")
            };
            self.free = next;
            slot.state = Some(state);
            index
        } else {
            let index = u32::try_from(self.slots.len())
                .ok()
                .filter(|&i| i != NIL)
                .expect("more than u32::MAX - 1 waiters at once");
            self.slots.push(Slot {
                generation: 0,
                link: Link::Detached,
                waker: None,
                state: Some(state),
            });
            index
        };
        self.link_back(index);
        WaitKey {
            index,
            generation: self.slots[index as usize].generation,
        }
    }

    /// The slot `key` names, if its waiter still owns it.
    fn slot(&self, key: WaitKey) -> Option<&Slot<S>> {
        self.slots
            .get(key.index as usize)
            .filter(|s| s.generation == key.generation && !matches!(s.link, Link::Free { .. }))
    }

    fn slot_mut(&mut self, key: WaitKey) -> Option<&mut Slot<S>> {
        self.slots
            .get_mut(key.index as usize)
            .filter(|s| s.generation == key.generation && !matches!(s.link, Link::Free { .. }))
    }

    /// The state of `key`'s waiter; `None` for a stale key.
    pub fn state(&self, key: WaitKey) -> Option<&S> {
        self.slot(key).and_then(|s| s.state.as_ref())
    }

    /// The state of `key`'s waiter, to change; `None` for a stale key.
    pub fn state_mut(&mut self, key: WaitKey) -> Option<&mut S> {
        self.slot_mut(key).and_then(|s| s.state.as_mut())
    }

    /// Whether `key`'s waiter is in the queue (not detached, not removed).
    pub fn is_queued(&self, key: WaitKey) -> bool {
        self.slot(key)
            .is_some_and(|s| matches!(s.link, Link::Queued { .. }))
    }

    /// The oldest queued waiter.
    pub fn front(&self) -> Option<WaitKey> {
        self.key_at(self.head)
    }

    /// The waiter queued right after `key`'s; `None` at the back or if `key` is not queued.
    pub fn next(&self, key: WaitKey) -> Option<WaitKey> {
        match self.slot(key)?.link {
            Link::Queued { next, .. } => self.key_at(next),
            _ => None,
        }
    }

    fn key_at(&self, index: u32) -> Option<WaitKey> {
        (index != NIL).then(|| WaitKey {
            index,
            generation: self.slots[index as usize].generation,
        })
    }

    /// Stores `waker` as `key`'s waker unless the one stored already wakes the same task. The
    /// waker it replaces comes back, to be dropped after the lock (a drop may run any code).
    #[must_use = "drop the replaced waker after releasing the lock"]
    pub fn register(&mut self, key: WaitKey, waker: &Waker) -> Option<Waker> {
        let slot = self.slot_mut(key)?;
        match &slot.waker {
            Some(w) if w.will_wake(waker) => None,
            _ => slot.waker.replace(waker.clone()),
        }
    }

    /// Takes `key`'s waker out.
    #[must_use = "wake or drop the waker after releasing the lock"]
    pub fn take_waker(&mut self, key: WaitKey) -> Option<Waker> {
        self.slot_mut(key)?.waker.take()
    }

    /// Takes `key`'s waiter out of the queue, keeping its slot and state for its owner (to read
    /// an outcome); its waker comes back, to wake after the lock. Nothing if it is not queued.
    #[must_use = "wake the waker after releasing the lock"]
    pub fn detach(&mut self, key: WaitKey) -> Option<Waker> {
        if !self.is_queued(key) {
            return None;
        }
        self.unlink(key.index);
        self.slots[key.index as usize].link = Link::Detached;
        self.slots[key.index as usize].waker.take()
    }

    /// Frees `key`'s slot (unlinking it if queued): its state and waker come back, the waker to
    /// be dropped after the lock. `None` for a stale key.
    pub fn remove(&mut self, key: WaitKey) -> Option<(S, Option<Waker>)> {
        let slot = self.slot(key)?;
        if matches!(slot.link, Link::Queued { .. }) {
            self.unlink(key.index);
        }
        let free = self.free;
        let slot = &mut self.slots[key.index as usize];
        slot.generation = slot.generation.wrapping_add(1);
        slot.link = Link::Free { next: free };
        self.free = key.index;
        let state = slot.state.take().expect("an owned slot holds a state");
        Some((state, slot.waker.take()))
    }

    /// Detaches every queued waiter, oldest first, after `f` has seen its state; their wakers go
    /// to `wakers`.
    pub fn drain(&mut self, wakers: &mut WakeList, mut f: impl FnMut(&mut S)) {
        self.retain(wakers, |s| {
            f(s);
            false
        });
    }

    /// Keeps the queued waiters for which `keep` returns `true`, in order, and detaches the
    /// others; the detached waiters' wakers go to `wakers`.
    pub fn retain(&mut self, wakers: &mut WakeList, mut keep: impl FnMut(&mut S) -> bool) {
        let mut index = self.head;
        while index != NIL {
            let slot = &mut self.slots[index as usize];
            let Link::Queued { next, .. } = slot.link else {
                unreachable!("the queue links only queued slots")
            };
            if !keep(slot.state.as_mut().expect("a queued slot holds a state")) {
                wakers.push(slot.waker.take());
                self.unlink(index);
                self.slots[index as usize].link = Link::Detached;
            }
            index = next;
        }
    }

    /// Clones the waker of every queued waiter into `wakers`; the waiters stay queued.
    pub fn clone_wakers(&self, wakers: &mut WakeList) {
        let mut index = self.head;
        while index != NIL {
            let slot = &self.slots[index as usize];
            wakers.push(slot.waker.clone());
            let Link::Queued { next, .. } = slot.link else {
                unreachable!("the queue links only queued slots")
            };
            index = next;
        }
    }

    fn link_back(&mut self, index: u32) {
        let prev = self.tail;
        self.slots[index as usize].link = Link::Queued { prev, next: NIL };
        match prev {
            NIL => self.head = index,
            p => self.set_next(p, index),
        }
        self.tail = index;
        self.queued += 1;
    }

    /// Unlinks queued slot `index` from its neighbours (its own link is left for the caller).
    fn unlink(&mut self, index: u32) {
        let Link::Queued { prev, next } = self.slots[index as usize].link else {
            unreachable!("only a queued slot is unlinked")
        };
        match prev {
            NIL => self.head = next,
            p => self.set_next(p, next),
        }
        match next {
            NIL => self.tail = prev,
            n => match &mut self.slots[n as usize].link {
                Link::Queued { prev: p, .. } => *p = prev,
                _ => unreachable!("the queue links only queued slots"),
            },
        }
        self.queued -= 1;
    }

    fn set_next(&mut self, index: u32, to: u32) {
        match &mut self.slots[index as usize].link {
            Link::Queued { next, .. } => *next = to,
            _ => unreachable!("the queue links only queued slots"),
        }
    }
}

impl<S> fmt::Debug for WaitList<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WaitList")
            .field("queued", &self.queued)
            .field("slots", &self.slots.len())
            .finish()
    }
}

/// How many wakers a [`WakeList`] holds without allocating.
const INLINE: usize = 4;

/// Wakers taken out under a lock, to be woken once it is released: [`wake_all`](Self::wake_all),
/// or dropping the list, wakes them. Declare it *before* the lock guard, so that an early
/// return (or a panic) drops the guard first.
#[derive(Default)]
pub struct WakeList {
    inline: [Option<Waker>; INLINE],
    len: usize,
    spilled: Vec<Waker>,
}

impl WakeList {
    /// An empty list; it allocates only past a few wakers.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds `waker`, if any.
    pub fn push(&mut self, waker: Option<Waker>) {
        let Some(waker) = waker else { return };
        if self.len < INLINE {
            self.inline[self.len] = Some(waker);
            self.len += 1;
        } else {
            self.spilled.push(waker);
        }
    }

    /// How many wakers it holds.
    pub fn len(&self) -> usize {
        self.len + self.spilled.len()
    }

    /// Whether it holds no waker.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Wakes every waker, in the order they were added. Call it with no lock held.
    pub fn wake_all(mut self) {
        self.wake_taken();
    }

    fn wake_taken(&mut self) {
        let len = std::mem::take(&mut self.len);
        for waker in self.inline[..len].iter_mut().filter_map(Option::take) {
            waker.wake();
        }
        for waker in std::mem::take(&mut self.spilled) {
            waker.wake();
        }
    }
}

impl Drop for WakeList {
    fn drop(&mut self) {
        self.wake_taken();
    }
}

impl fmt::Debug for WakeList {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WakeList")
            .field("len", &self.len())
            .finish()
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
    use std::sync::Arc;
    use std::task::Wake;

    struct Count(AtomicUsize);
    impl Wake for Count {
        fn wake(self: Arc<Self>) {
            self.0.fetch_add(1, SeqCst);
        }
    }

    fn counter() -> (Arc<Count>, Waker) {
        let count = Arc::new(Count(AtomicUsize::new(0)));
        (count.clone(), Waker::from(count))
    }

    fn queued(list: &WaitList<u32>) -> Vec<u32> {
        let mut out = Vec::new();
        let mut key = list.front();
        while let Some(k) = key {
            out.push(*list.state(k).unwrap());
            key = list.next(k);
        }
        out
    }

    #[test]
    fn fifo_order_and_cancel_anywhere() {
        let mut list = WaitList::new();
        let keys: Vec<_> = (0..5).map(|i| list.push_back(i)).collect();
        assert_eq!(queued(&list), [0, 1, 2, 3, 4]);
        assert_eq!(list.remove(keys[2]).map(|(s, _)| s), Some(2), "middle");
        assert_eq!(list.remove(keys[0]).map(|(s, _)| s), Some(0), "head");
        assert_eq!(list.remove(keys[4]).map(|(s, _)| s), Some(4), "tail");
        assert_eq!(queued(&list), [1, 3]);
        assert_eq!(list.len(), 2);
        list.push_back(5);
        assert_eq!(queued(&list), [1, 3, 5]);
    }

    #[test]
    fn slots_are_reused_and_stale_keys_name_nothing() {
        let mut list = WaitList::new();
        let a = list.push_back(1);
        let b = list.push_back(2);
        assert!(list.remove(a).is_some());
        let c = list.push_back(3);
        assert_eq!(list.slots(), 2, "the freed slot is reused");
        assert_eq!(c.index, a.index);
        assert_ne!(c, a);
        assert_eq!(list.state(a), None);
        assert!(!list.is_queued(a));
        assert!(list.remove(a).is_none(), "a stale key removes nothing");
        assert!(list.detach(a).is_none());
        assert_eq!(queued(&list), [2, 3], "the stale remove did not touch c");
        for _ in 0..1000 {
            let k = list.push_back(9);
            list.remove(k).unwrap();
        }
        assert_eq!(list.slots(), 3, "no growth once grown");
        assert!(list.remove(b).is_some() && list.remove(c).is_some());
        assert!(list.is_empty());
    }

    #[test]
    fn detached_waiters_keep_their_state_until_removed() {
        let (count, waker) = counter();
        let mut list = WaitList::new();
        let a = list.push_back(1);
        let b = list.push_back(2);
        assert!(list.register(a, &waker).is_none());
        // The same task's waker: kept (`will_wake` is best-effort, so not asserted).
        drop(list.register(a, &waker));
        let w = list.detach(a);
        assert!(w.is_some());
        assert_eq!(list.front(), Some(b));
        assert!(!list.is_queued(a));
        *list.state_mut(a).unwrap() = 10;
        assert!(list.detach(a).is_none(), "detached once");
        w.unwrap().wake();
        assert_eq!(count.0.load(SeqCst), 1);
        assert_eq!(
            list.remove(a).map(|(s, w)| (s, w.is_none())),
            Some((10, true))
        );
        assert_eq!(queued(&list), [2]);
    }

    #[test]
    fn retain_and_drain_wake_the_detached_only() {
        let (count, waker) = counter();
        let mut list = WaitList::new();
        let keys: Vec<_> = (0..6).map(|i| list.push_back(i)).collect();
        for &k in &keys {
            assert!(list.register(k, &waker).is_none());
        }
        let mut wakers = WakeList::new();
        list.retain(&mut wakers, |s| *s % 2 == 0);
        assert_eq!(queued(&list), [0, 2, 4]);
        assert_eq!(wakers.len(), 3);
        assert_eq!(count.0.load(SeqCst), 0, "not woken while collected");
        wakers.wake_all();
        assert_eq!(count.0.load(SeqCst), 3);
        let mut clones = WakeList::new();
        list.clone_wakers(&mut clones);
        assert_eq!(clones.len(), 3);
        drop(clones);
        assert_eq!(count.0.load(SeqCst), 6, "dropping a wake list wakes");
        assert_eq!(list.len(), 3, "cloning wakers leaves waiters queued");
        let mut seen = Vec::new();
        let mut wakers = WakeList::new();
        list.drain(&mut wakers, |s| seen.push(*s));
        assert_eq!(seen, [0, 2, 4]);
        assert!(list.is_empty() && list.front().is_none());
        wakers.wake_all();
        assert_eq!(count.0.load(SeqCst), 9);
        for k in keys {
            assert!(list.remove(k).is_some(), "every owner still frees its slot");
        }
        assert_eq!(list.slots(), 6);
    }

    #[test]
    fn a_replaced_waker_comes_back_to_the_caller() {
        let (a_count, a) = counter();
        let (b_count, b) = counter();
        let mut list = WaitList::new();
        let k = list.push_back(());
        assert!(list.register(k, &a).is_none());
        let stale = list
            .register(k, &b)
            .expect("a different task's waker is replaced");
        assert_eq!(a_count.0.load(SeqCst), 0, "handed back, not woken");
        stale.wake();
        list.take_waker(k).unwrap().wake();
        assert_eq!((a_count.0.load(SeqCst), b_count.0.load(SeqCst)), (1, 1));
    }
}
