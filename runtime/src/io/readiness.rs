//! What one registered I/O source is ready for, and who waits for it.
//!
//! mio reports readiness edge-triggered: an event says "this became readable", once. The reactor
//! records it here; an operation that then fails with `WouldBlock` clears it again. The word
//! also carries a tick, bumped by every event, so clearing only removes readiness the failed
//! operation actually saw: an event that arrived in between is kept, and no wake-up is lost.
//! A waiter stores its waker under the lock and re-reads the word before returning `Pending`;
//! the reactor sets the word before taking the lock to wake, so one of the two sees the other.
//!
//! Closed states are final and stay set. An error is not: a socket reports each error to one
//! operation (UDP's port-unreachable, TCP's pending error), so an operation that would block
//! after it clears the error with the rest of what it saw, and the next one waits again.
//!
//! Waiters: every wait of an async operation (`recv_from`, `accept`, `readable`, ...) owns a
//! slot in a slab of waker entries, linked into its direction's list while it waits, and frees
//! the slot when its future is dropped, so an abandoned wait (a `timeout` that fired, a losing
//! `select!` branch) leaves no waker behind. Freed slots are reused: after warm-up a wait
//! allocates nothing, and each link, unlink and free is O(1). The public `poll_*` methods have
//! no future to own a slot; they share one waker per direction, the latest poller's.
//! Wakers are cloned and dropped outside the lock: both are user code.

use crate::sync::lock_std;
use std::io;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;
use std::task::{Context, Poll, Waker};

pub(crate) const READABLE: usize = 1;
pub(crate) const WRITABLE: usize = 1 << 1;
pub(crate) const READ_CLOSED: usize = 1 << 2;
pub(crate) const WRITE_CLOSED: usize = 1 << 3;
pub(crate) const ERROR: usize = 1 << 4;
/// The reactor shut down: every wait ends with an error.
const SHUTDOWN: usize = 1 << 5;
const FLAGS: usize = (1 << 8) - 1;
const TICK_SHIFT: u32 = 8;
/// No entry (end of a list).
const NONE: u32 = u32::MAX;
/// Slab entries kept once no wait is left; a larger slab is freed (after a burst of waiters).
const KEEP_ENTRIES: usize = 64;

/// An I/O direction: what an operation waits for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Direction {
    Read = 0,
    Write = 1,
}

impl Direction {
    /// Readiness bits that let an operation in this direction make progress (or fail).
    fn mask(self) -> usize {
        match self {
            Direction::Read => READABLE | READ_CLOSED | ERROR,
            Direction::Write => WRITABLE | WRITE_CLOSED | ERROR,
        }
    }
}

/// Readiness observed by a waiter, to clear if the operation would block.
#[derive(Debug, Clone, Copy)]
pub(crate) struct ReadyEvent {
    tick: usize,
    ready: usize,
}

impl ReadyEvent {
    /// The readiness flags seen (the direction's bits of the word).
    pub(crate) fn bits(self) -> usize {
        self.ready
    }
}

/// Names one wait's slot in a source's waiter slab.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct WaitKey {
    index: u32,
    generation: u32,
}

/// Where a poll keeps its waker: the wait's own slot (created on its first `Pending`), or the
/// direction's shared `poll_*` slot.
pub(crate) enum WaitSlot<'a> {
    Owned(&'a mut Option<WaitKey>),
    Shared,
}

impl WaitSlot<'_> {
    /// This slot again, for the next poll of a retry loop.
    pub(crate) fn reborrow(&mut self) -> WaitSlot<'_> {
        match self {
            WaitSlot::Owned(key) => WaitSlot::Owned(key),
            WaitSlot::Shared => WaitSlot::Shared,
        }
    }
}

struct Entry {
    /// Bumped when the entry is freed, so a stale key names nothing.
    generation: u32,
    /// `Some` exactly while the entry is linked into its direction's list.
    waker: Option<Waker>,
    dir: Direction,
    /// Neighbours in the direction's list; `next` also links the free list.
    prev: u32,
    next: u32,
}

struct Waiters {
    entries: Vec<Entry>,
    free: u32,
    /// Heads of the armed lists, by direction.
    heads: [u32; 2],
    /// Entries owned by a wait (armed or not).
    live: usize,
    /// The shared waker of the `poll_*` methods, by direction.
    polled: [Option<Waker>; 2],
}

impl Waiters {
    fn new() -> Waiters {
        Waiters {
            entries: Vec::new(),
            free: NONE,
            heads: [NONE; 2],
            live: 0,
            polled: [None, None],
        }
    }

    fn entry_mut(&mut self, key: WaitKey) -> Option<&mut Entry> {
        self.entries
            .get_mut(key.index as usize)
            .filter(|e| e.generation == key.generation)
    }

    /// Moves every waker waiting in `dir` into `wake`, leaving their slots to their waits.
    fn take(&mut self, dir: Direction, wake: &mut Vec<Waker>) {
        let mut index = std::mem::replace(&mut self.heads[dir as usize], NONE);
        while index != NONE {
            let entry = &mut self.entries[index as usize];
            wake.extend(entry.waker.take());
            index = std::mem::replace(&mut entry.next, NONE);
            entry.prev = NONE;
        }
        wake.extend(self.polled[dir as usize].take());
    }

    /// Stores `waker` in the wait's slot `key` (allocating it on the first wait); returns the
    /// waker the caller drops outside the lock (the one replaced, or `waker` if the slot already
    /// wakes the same task).
    fn arm(&mut self, key: &mut Option<WaitKey>, dir: Direction, waker: Waker) -> Option<Waker> {
        if let Some(k) = *key {
            if let Some(entry) = self.entry_mut(k) {
                debug_assert_eq!(entry.dir, dir, "a wait keeps its direction");
                return match &mut entry.waker {
                    Some(w) if w.will_wake(&waker) => Some(waker),
                    Some(w) => Some(std::mem::replace(w, waker)),
                    None => {
                        entry.waker = Some(waker);
                        self.link(k.index);
                        None
                    }
                };
            }
        }
        let index = if self.free != NONE {
            let index = self.free;
            self.free = self.entries[index as usize].next;
            index
        } else {
            // More waits than `u32` counts would need more memory than any machine has.
            let index = u32::try_from(self.entries.len()).unwrap_or(NONE - 1);
            self.entries.push(Entry {
                generation: 0,
                waker: None,
                dir,
                prev: NONE,
                next: NONE,
            });
            index
        };
        let entry = &mut self.entries[index as usize];
        entry.waker = Some(waker);
        entry.dir = dir;
        *key = Some(WaitKey {
            index,
            generation: entry.generation,
        });
        self.live += 1;
        self.link(index);
        None
    }

    /// Stores `waker` as the direction's `poll_*` waker; returns the waker to drop.
    fn arm_shared(&mut self, dir: Direction, waker: Waker) -> Option<Waker> {
        match &mut self.polled[dir as usize] {
            Some(w) if w.will_wake(&waker) => Some(waker),
            slot => slot.replace(waker),
        }
    }

    /// Frees the wait's slot; returns its waker, if armed, for the caller to drop.
    fn remove(&mut self, key: WaitKey) -> Option<Waker> {
        let entry = self.entry_mut(key)?;
        let waker = entry.waker.take();
        entry.generation = entry.generation.wrapping_add(1);
        if waker.is_some() {
            self.unlink(key.index);
        }
        self.entries[key.index as usize].next = self.free;
        self.free = key.index;
        self.live -= 1;
        if self.live == 0 && self.entries.len() > KEEP_ENTRIES {
            // Memory returns to its baseline after a burst of waiters. No key is left to name
            // an entry, so the generations may start over.
            self.entries = Vec::new();
            self.free = NONE;
        }
        waker
    }

    fn link(&mut self, index: u32) {
        let dir = self.entries[index as usize].dir as usize;
        let head = self.heads[dir];
        let entry = &mut self.entries[index as usize];
        entry.prev = NONE;
        entry.next = head;
        if head != NONE {
            self.entries[head as usize].prev = index;
        }
        self.heads[dir] = index;
    }

    fn unlink(&mut self, index: u32) {
        let (prev, next, dir) = {
            let e = &self.entries[index as usize];
            (e.prev, e.next, e.dir as usize)
        };
        if prev == NONE {
            self.heads[dir] = next;
        } else {
            self.entries[prev as usize].next = next;
        }
        if next != NONE {
            self.entries[next as usize].prev = prev;
        }
        let entry = &mut self.entries[index as usize];
        entry.prev = NONE;
        entry.next = NONE;
    }
}

/// The shared state of one registered source.
pub(crate) struct Readiness {
    word: AtomicUsize,
    waiters: Mutex<Waiters>,
}

impl Readiness {
    pub(crate) fn new() -> Readiness {
        Readiness {
            word: AtomicUsize::new(0),
            waiters: Mutex::new(Waiters::new()),
        }
    }

    /// Records an event (`ready` bits) and moves the wakers it satisfies into `wake`.
    pub(crate) fn set(&self, ready: usize, wake: &mut Vec<Waker>) {
        let _ = self
            .word
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |cur| {
                let tick = (cur >> TICK_SHIFT).wrapping_add(1);
                Some((tick << TICK_SHIFT) | (cur & FLAGS) | ready)
            });
        let mut waiters = lock_std(&self.waiters);
        for dir in [Direction::Read, Direction::Write] {
            if ready & dir.mask() != 0 {
                waiters.take(dir, wake);
            }
        }
    }

    /// Ends every wait with an error (the reactor is gone), handing their wakers to `wake`.
    pub(crate) fn shutdown(&self, wake: &mut Vec<Waker>) {
        self.word.fetch_or(SHUTDOWN, Ordering::AcqRel);
        let mut waiters = lock_std(&self.waiters);
        waiters.take(Direction::Read, wake);
        waiters.take(Direction::Write, wake);
    }

    fn check(word: usize, dir: Direction) -> Option<io::Result<ReadyEvent>> {
        if word & SHUTDOWN != 0 {
            return Some(Err(super::reactor::shutdown_error()));
        }
        let ready = word & dir.mask();
        (ready != 0).then_some(Ok(ReadyEvent {
            tick: word >> TICK_SHIFT,
            ready,
        }))
    }

    /// The readiness in `dir` now, without waiting for it.
    pub(crate) fn ready_now(&self, dir: Direction) -> Option<io::Result<ReadyEvent>> {
        Self::check(self.word.load(Ordering::Acquire), dir)
    }

    /// Ready when the source may make progress in `dir`; else stores the waker in `slot`.
    pub(crate) fn poll_ready(
        &self,
        cx: &mut Context<'_>,
        dir: Direction,
        slot: WaitSlot<'_>,
    ) -> Poll<io::Result<ReadyEvent>> {
        if let Some(ready) = Self::check(self.word.load(Ordering::Acquire), dir) {
            return Poll::Ready(ready);
        }
        let waker = cx.waker().clone();
        let (res, unused) = {
            let mut waiters = lock_std(&self.waiters);
            match Self::check(self.word.load(Ordering::Acquire), dir) {
                Some(ready) => (Poll::Ready(ready), Some(waker)),
                None => {
                    let unused = match slot {
                        WaitSlot::Owned(key) => waiters.arm(key, dir, waker),
                        WaitSlot::Shared => waiters.arm_shared(dir, waker),
                    };
                    (Poll::Pending, unused)
                }
            }
        };
        drop(unused);
        res
    }

    /// Frees a wait's slot (its future is gone), dropping its waker outside the lock.
    pub(crate) fn remove(&self, key: WaitKey) {
        let waker = lock_std(&self.waiters).remove(key);
        drop(waker);
    }

    /// Forgets the readiness `event` reported, unless a newer event arrived since. Closed states
    /// stay: they are final. An error goes too: the operation that saw it consumed it.
    pub(crate) fn clear(&self, event: ReadyEvent) {
        self.clear_bits(event, event.ready & (READABLE | WRITABLE | ERROR));
    }

    /// After an operation in `dir` that moved fewer bytes than it asked for: the kernel's buffer
    /// was drained (read) or filled (write) by it, so the next try would only report
    /// `WouldBlock`. Forgets the plain readiness `event` reported, unless a newer event arrived
    /// since, saving that syscall; the next event sets it again. An event that carried an error
    /// is kept: the socket still holds the error for the next operation.
    pub(crate) fn clear_drained(&self, event: ReadyEvent, dir: Direction) {
        if event.ready & ERROR == 0 {
            let plain = match dir {
                Direction::Read => READABLE,
                Direction::Write => WRITABLE,
            };
            self.clear_bits(event, event.ready & plain);
        }
    }

    fn clear_bits(&self, event: ReadyEvent, clear: usize) {
        if clear == 0 {
            return;
        }
        let _ = self
            .word
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |cur| {
                (cur >> TICK_SHIFT == event.tick).then_some(cur & !clear)
            });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::task::Wake;

    /// Counts its wake-ups and the drops of its last clone.
    #[derive(Default)]
    struct Counts {
        wakes: AtomicUsize,
        drops: AtomicUsize,
    }

    struct Probe(Arc<Counts>);

    impl Wake for Probe {
        fn wake(self: Arc<Self>) {
            self.0.wakes.fetch_add(1, Ordering::SeqCst);
        }
    }

    impl Drop for Probe {
        fn drop(&mut self) {
            self.0.drops.fetch_add(1, Ordering::SeqCst);
        }
    }

    fn probe() -> (Waker, Arc<Counts>) {
        let counts = Arc::new(Counts::default());
        (Waker::from(Arc::new(Probe(counts.clone()))), counts)
    }

    fn get(c: &AtomicUsize) -> usize {
        c.load(Ordering::SeqCst)
    }

    fn pending(io: &Readiness, waker: &Waker, dir: Direction, slot: WaitSlot<'_>) {
        let mut cx = Context::from_waker(waker);
        assert!(io.poll_ready(&mut cx, dir, slot).is_pending());
    }

    fn fire(io: &Readiness, ready: usize) {
        let mut wake = Vec::new();
        io.set(ready, &mut wake);
        wake.into_iter().for_each(Waker::wake);
    }

    #[test]
    fn a_dropped_wait_releases_its_waker_at_once_and_its_slot_is_reused() {
        let io = Readiness::new();
        for _ in 0..1000 {
            let (waker, counts) = probe();
            let mut key = None;
            pending(&io, &waker, Direction::Read, WaitSlot::Owned(&mut key));
            drop(waker);
            assert_eq!(get(&counts.drops), 0, "the waiting slot holds a clone");
            io.remove(key.expect("the wait took a slot"));
            assert_eq!(get(&counts.drops), 1);
            assert_eq!(get(&counts.wakes), 0);
        }
        let waiters = lock_std(&io.waiters);
        assert_eq!((waiters.entries.len(), waiters.live), (1, 0));
        assert_eq!(waiters.heads, [NONE; 2]);
    }

    #[test]
    fn an_event_wakes_every_wait_in_its_direction_once_and_they_rearm_their_slots() {
        let io = Readiness::new();
        let readers: Vec<_> = (0..3).map(|_| (probe(), None)).collect();
        let mut readers = readers;
        for ((waker, _), key) in &mut readers {
            pending(&io, waker, Direction::Read, WaitSlot::Owned(key));
        }
        let ((writer, writes), mut wkey) = (probe(), None);
        pending(&io, &writer, Direction::Write, WaitSlot::Owned(&mut wkey));
        // A repoll with the same task's waker keeps the one stored.
        pending(&io, &writer, Direction::Write, WaitSlot::Owned(&mut wkey));
        fire(&io, READABLE);
        for ((_, counts), _) in &readers {
            assert_eq!(get(&counts.wakes), 1);
        }
        assert_eq!(get(&writes.wakes), 0);
        // The read readiness is consumed by a read that would block; the waits re-arm.
        let Some(Ok(event)) = io.ready_now(Direction::Read) else {
            panic!("readable after the event")
        };
        io.clear(event);
        for ((waker, _), key) in &mut readers {
            let before = *key;
            pending(&io, waker, Direction::Read, WaitSlot::Owned(key));
            assert_eq!(*key, before, "a wait keeps its slot");
        }
        fire(&io, WRITABLE);
        assert_eq!(get(&writes.wakes), 1);
        for ((_, counts), _) in &readers {
            assert_eq!(get(&counts.wakes), 1);
        }
        for (_, key) in &readers {
            io.remove(key.unwrap());
        }
        io.remove(wkey.unwrap());
        assert_eq!(lock_std(&io.waiters).live, 0);
    }

    #[test]
    fn the_poll_api_keeps_one_waker_per_direction_the_latest() {
        let io = Readiness::new();
        let counts: Vec<_> = (0..10)
            .map(|_| {
                let (waker, counts) = probe();
                pending(&io, &waker, Direction::Read, WaitSlot::Shared);
                counts
            })
            .collect();
        // Each poll replaced the previous poller's waker, which is gone now.
        assert!(counts[..9].iter().all(|c| get(&c.drops) == 1));
        assert_eq!(get(&counts[9].drops), 0);
        fire(&io, READABLE);
        assert_eq!(get(&counts[9].wakes), 1);
        assert_eq!(get(&counts[9].drops), 1);
        assert!(counts[..9].iter().all(|c| get(&c.wakes) == 0));
    }

    #[test]
    fn a_wait_that_would_block_after_an_error_clears_it_unless_a_newer_event_came() {
        let io = Readiness::new();
        fire(&io, ERROR | READABLE | WRITABLE);
        let Some(Ok(seen)) = io.ready_now(Direction::Read) else {
            panic!("an error is read readiness")
        };
        io.clear(seen);
        assert!(io.ready_now(Direction::Read).is_none());
        assert!(io.ready_now(Direction::Write).is_some());
        // An event between the look and the clear keeps everything it set.
        fire(&io, ERROR);
        let Some(Ok(stale)) = io.ready_now(Direction::Read) else {
            panic!("the second error is seen")
        };
        fire(&io, READABLE);
        io.clear(stale);
        assert!(io.ready_now(Direction::Read).is_some());
        // Closed is final.
        fire(&io, READ_CLOSED);
        let Some(Ok(closed)) = io.ready_now(Direction::Read) else {
            panic!("closed is read readiness")
        };
        io.clear(closed);
        assert!(io.ready_now(Direction::Read).is_some());
    }

    #[test]
    fn a_drained_transfer_clears_only_its_plain_readiness_and_only_if_nothing_newer_came() {
        let io = Readiness::new();
        fire(&io, READABLE | WRITABLE);
        let Some(Ok(read)) = io.ready_now(Direction::Read) else {
            panic!("readable after the event")
        };
        io.clear_drained(read, Direction::Read);
        assert!(
            io.ready_now(Direction::Read).is_none(),
            "the next read waits"
        );
        assert!(
            io.ready_now(Direction::Write).is_some(),
            "writing is not affected"
        );
        // An event after the look is kept: its data arrived after the short read.
        fire(&io, READABLE);
        let Some(Ok(stale)) = io.ready_now(Direction::Read) else {
            panic!("readable again")
        };
        fire(&io, READABLE);
        io.clear_drained(stale, Direction::Read);
        assert!(io.ready_now(Direction::Read).is_some());
        // An event that carried an error keeps it (and the readiness) for the next operation.
        fire(&io, ERROR | READABLE | WRITABLE);
        let Some(Ok(failed)) = io.ready_now(Direction::Write) else {
            panic!("writable after the error")
        };
        io.clear_drained(failed, Direction::Write);
        assert!(io.ready_now(Direction::Write).is_some());
        // End of stream is final.
        fire(&io, READ_CLOSED | READABLE);
        let Some(Ok(closed)) = io.ready_now(Direction::Read) else {
            panic!("readable at end of stream")
        };
        io.clear_drained(closed, Direction::Read);
        assert!(io.ready_now(Direction::Read).is_some());
    }

    #[test]
    fn the_slab_shrinks_back_after_a_burst_of_waits() {
        let io = Readiness::new();
        let (waker, counts) = probe();
        let mut keys: Vec<Option<WaitKey>> = vec![None; 1000];
        for key in &mut keys {
            pending(&io, &waker, Direction::Read, WaitSlot::Owned(key));
        }
        assert_eq!(lock_std(&io.waiters).entries.len(), 1000);
        // Out of order, so unlinking covers the middle, the head and the tail.
        for key in keys.iter().step_by(2).chain(keys.iter().skip(1).step_by(2)) {
            io.remove(key.unwrap());
        }
        let waiters = lock_std(&io.waiters);
        assert_eq!((waiters.entries.capacity(), waiters.heads), (0, [NONE; 2]));
        drop(waiters);
        drop(waker);
        assert_eq!(get(&counts.drops), 1);
        assert_eq!(get(&counts.wakes), 0);
    }
}
