//! A hierarchical timer wheel with millisecond ticks.
//!
//! Six levels of 64 slots: level `l` slots are `64^l` ms wide, so the wheel spans `64^6` ms
//! (about 2.2 years) ahead of its current tick. A timer sits at the level of the highest 6-bit
//! group in which its deadline differs from the current tick; when the clock reaches the start of
//! its slot, the slot's timers either fire or move down a level (cascade). Deadlines beyond the
//! span are parked at the farthest slot and cascade until they are in range, so any `u64`
//! deadline is accepted.
//!
//! Timers live in a slab of entries linked into their slot by index (a doubly linked list), so
//! insertion and cancellation are O(1) and need no unsafe code. A key is the entry's index and a
//! generation drawn from a counter that never repeats, so a key whose timer already fired (or was
//! cancelled) can never name a later timer that reuses the slot.

use std::task::Waker;

const LEVELS: usize = 6;
const SLOT_BITS: u32 = 6;
const SLOTS: usize = 1 << SLOT_BITS;
/// Ticks the wheel can hold ahead of the start of its current top-level slot.
const SPAN: u64 = 1 << (SLOT_BITS as usize * LEVELS);
/// Width of one top-level slot.
const TOP_SLOT: u64 = 1 << (SLOT_BITS as usize * (LEVELS - 1));
const NONE: u32 = u32::MAX;
/// Free entries beyond this many are returned to the allocator once the wheel empties.
const KEEP_FREE: usize = 1024;

/// Names one registered timer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Key {
    index: u32,
    generation: u64,
}

struct Entry {
    /// `0` while the entry is free.
    generation: u64,
    deadline: u64,
    waker: Option<Waker>,
    prev: u32,
    next: u32,
    /// `level * SLOTS + slot` of the list the entry is in.
    slot: u16,
}

/// The wheel: timers by deadline (in ticks), and the tick it has advanced to.
pub(crate) struct Wheel {
    entries: Vec<Entry>,
    free: u32,
    next_generation: u64,
    live: usize,
    heads: [[u32; SLOTS]; LEVELS],
    occupied: [u64; LEVELS],
    elapsed: u64,
}

impl Wheel {
    pub(crate) fn new() -> Wheel {
        Wheel {
            entries: Vec::new(),
            free: NONE,
            next_generation: 1,
            live: 0,
            heads: [[NONE; SLOTS]; LEVELS],
            occupied: [0; LEVELS],
            elapsed: 0,
        }
    }

    /// Timers currently registered.
    pub(crate) fn len(&self) -> usize {
        self.live
    }

    /// The tick the wheel has advanced to.
    #[cfg(test)]
    pub(crate) fn elapsed(&self) -> u64 {
        self.elapsed
    }

    /// Registers a timer for `deadline`, or gives the waker back if that tick has passed.
    pub(crate) fn insert(&mut self, deadline: u64, waker: Waker) -> Result<Key, Waker> {
        if deadline <= self.elapsed {
            return Err(waker);
        }
        let generation = self.next_generation;
        self.next_generation += 1;
        let index = if self.free != NONE {
            let index = self.free;
            self.free = self.entries[index as usize].next;
            index
        } else {
            // More than 4 billion live timers would need more memory than any machine has.
            let index = u32::try_from(self.entries.len()).unwrap_or(NONE - 1);
            self.entries.push(Entry {
                generation: 0,
                deadline: 0,
                waker: None,
                prev: NONE,
                next: NONE,
                slot: 0,
            });
            index
        };
        let entry = &mut self.entries[index as usize];
        entry.generation = generation;
        entry.deadline = deadline;
        entry.waker = Some(waker);
        self.live += 1;
        self.link(index);
        Ok(Key { index, generation })
    }

    /// Whether the timer `key` names would wake `waker`'s task; `None` if `key` no longer names
    /// a timer.
    pub(crate) fn wakes(&mut self, key: Key, waker: &Waker) -> Option<bool> {
        let entry = self.entry_mut(key)?;
        Some(entry.waker.as_ref().is_some_and(|w| w.will_wake(waker)))
    }

    /// Replaces the waker of a registered timer and returns the old one (for the caller to drop
    /// outside its lock); gives `waker` back if `key` no longer names a timer.
    pub(crate) fn swap_waker(&mut self, key: Key, waker: Waker) -> Result<Option<Waker>, Waker> {
        match self.entry_mut(key) {
            Some(entry) => Ok(entry.waker.replace(waker)),
            None => Err(waker),
        }
    }

    /// Cancels a timer in O(1); a key whose timer fired already is ignored.
    pub(crate) fn remove(&mut self, key: Key) -> Option<Waker> {
        self.entry_mut(key)?;
        self.unlink(key.index);
        self.release(key.index)
    }

    /// The tick at which the next slot must be processed, if any timer is registered.
    pub(crate) fn next_deadline(&self) -> Option<u64> {
        self.next_slot().map(|(_, _, at)| at)
    }

    /// Advances to `now`, pushing the wakers of every timer due by then onto `due`; stops early
    /// (returning `false`) once `due` holds `max` wakers, so the caller can wake them without
    /// holding its lock and call again.
    pub(crate) fn advance(&mut self, now: u64, due: &mut Vec<Waker>, max: usize) -> bool {
        while let Some((level, slot, at)) = self.next_slot() {
            if at > now {
                break;
            }
            if due.len() >= max {
                return false;
            }
            self.elapsed = self.elapsed.max(at);
            let mut index = std::mem::replace(&mut self.heads[level][slot], NONE);
            self.occupied[level] &= !(1u64 << slot);
            while index != NONE {
                let next = self.entries[index as usize].next;
                if self.entries[index as usize].deadline <= self.elapsed {
                    if let Some(waker) = self.release(index) {
                        due.push(waker);
                    }
                } else {
                    self.link(index);
                }
                index = next;
            }
        }
        self.elapsed = self.elapsed.max(now);
        true
    }

    /// Takes every registered timer's waker (shutdown), leaving the wheel empty.
    pub(crate) fn drain(&mut self, out: &mut Vec<Waker>) {
        for level in 0..LEVELS {
            for slot in 0..SLOTS {
                let mut index = std::mem::replace(&mut self.heads[level][slot], NONE);
                while index != NONE {
                    let next = self.entries[index as usize].next;
                    out.extend(self.release(index));
                    index = next;
                }
            }
            self.occupied[level] = 0;
        }
    }

    fn entry_mut(&mut self, key: Key) -> Option<&mut Entry> {
        self.entries
            .get_mut(key.index as usize)
            .filter(|e| e.generation == key.generation)
    }

    /// Frees an unlinked entry; shrinks the slab once no timer is left.
    fn release(&mut self, index: u32) -> Option<Waker> {
        let entry = &mut self.entries[index as usize];
        entry.generation = 0;
        let waker = entry.waker.take();
        entry.next = self.free;
        self.free = index;
        self.live -= 1;
        if self.live == 0 && self.entries.len() > KEEP_FREE {
            // Memory returns to its baseline after a burst of timers.
            self.entries.clear();
            self.entries.shrink_to(KEEP_FREE);
            self.free = NONE;
        }
        waker
    }

    /// Level and slot for `deadline` relative to the current tick, with far deadlines clamped
    /// to the farthest slot the wheel can tell apart from the current one.
    fn position(&self, deadline: u64) -> (usize, usize) {
        let limit = (self.elapsed & !(TOP_SLOT - 1)).saturating_add(SPAN - 1);
        let when = deadline.min(limit);
        let differing = (self.elapsed ^ when) | (SLOTS as u64 - 1);
        let bit = 63 - differing.leading_zeros() as usize;
        let level = (bit / SLOT_BITS as usize).min(LEVELS - 1);
        let slot = ((when >> (level * SLOT_BITS as usize)) as usize) & (SLOTS - 1);
        (level, slot)
    }

    fn link(&mut self, index: u32) {
        let (level, slot) = self.position(self.entries[index as usize].deadline);
        let head = self.heads[level][slot];
        {
            let entry = &mut self.entries[index as usize];
            entry.prev = NONE;
            entry.next = head;
            entry.slot = (level * SLOTS + slot) as u16;
        }
        if head != NONE {
            self.entries[head as usize].prev = index;
        }
        self.heads[level][slot] = index;
        self.occupied[level] |= 1u64 << slot;
    }

    fn unlink(&mut self, index: u32) {
        let (prev, next, at) = {
            let e = &self.entries[index as usize];
            (e.prev, e.next, e.slot as usize)
        };
        let (level, slot) = (at / SLOTS, at % SLOTS);
        if prev == NONE {
            self.heads[level][slot] = next;
            if next == NONE {
                self.occupied[level] &= !(1u64 << slot);
            }
        } else {
            self.entries[prev as usize].next = next;
        }
        if next != NONE {
            self.entries[next as usize].prev = prev;
        }
    }

    /// The earliest non-empty slot: lower levels always expire before higher ones, because a
    /// timer is placed at the level where its deadline first differs from the current tick.
    fn next_slot(&self) -> Option<(usize, usize, u64)> {
        (0..LEVELS).find_map(|level| {
            let occupied = self.occupied[level];
            if occupied == 0 {
                return None;
            }
            let shift = level as u32 * SLOT_BITS;
            let slot_width = 1u64 << shift;
            let level_width = slot_width << SLOT_BITS;
            let now_slot = ((self.elapsed >> shift) as usize) & (SLOTS - 1);
            let ahead = occupied.rotate_right(now_slot as u32).trailing_zeros() as usize;
            let slot = (now_slot + ahead) % SLOTS;
            let level_start = self.elapsed & !(level_width - 1);
            let mut at = level_start + slot as u64 * slot_width;
            if slot < now_slot {
                // The slot is in the next rotation of this level.
                at = at.saturating_add(level_width);
            }
            Some((level, slot, at))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;
    use std::task::Wake;

    struct Tagged(usize, Arc<std::sync::Mutex<Vec<usize>>>);
    impl Wake for Tagged {
        fn wake(self: Arc<Self>) {
            self.1.lock().unwrap().push(self.0);
        }
    }

    fn waker(tag: usize, log: &Arc<std::sync::Mutex<Vec<usize>>>) -> Waker {
        Waker::from(Arc::new(Tagged(tag, log.clone())))
    }

    /// Advances tick by tick to `end`, recording at which tick each tag fired.
    fn run_to(
        wheel: &mut Wheel,
        end: u64,
        log: &Arc<std::sync::Mutex<Vec<usize>>>,
    ) -> Vec<(usize, u64)> {
        let mut fired = Vec::new();
        let mut now = wheel.elapsed();
        while now < end {
            now = wheel.next_deadline().map_or(end, |d| d.clamp(now + 1, end));
            let mut due = Vec::new();
            while !wheel.advance(now, &mut due, 3) {
                due.drain(..).for_each(Waker::wake);
            }
            due.drain(..).for_each(Waker::wake);
            for tag in log.lock().unwrap().drain(..) {
                fired.push((tag, now));
            }
        }
        fired
    }

    #[test]
    fn timers_fire_exactly_at_their_tick_in_order() {
        let log = Arc::default();
        let mut wheel = Wheel::new();
        let deadlines = [1u64, 5, 63, 64, 65, 100, 4095, 4096, 4097, 300_000, 1 << 30];
        for (tag, &d) in deadlines.iter().enumerate().rev() {
            wheel.insert(d, waker(tag, &log)).unwrap();
        }
        let fired = run_to(&mut wheel, (1 << 30) + 10, &log);
        let expected: Vec<(usize, u64)> = deadlines.iter().copied().enumerate().collect();
        assert_eq!(fired, expected);
        assert_eq!(wheel.len(), 0);
    }

    #[test]
    fn cancelled_timers_never_fire_and_stale_keys_are_ignored() {
        let log = Arc::default();
        let mut wheel = Wheel::new();
        let a = wheel.insert(10, waker(0, &log)).unwrap();
        let b = wheel.insert(10, waker(1, &log)).unwrap();
        let c = wheel.insert(10, waker(2, &log)).unwrap();
        assert!(wheel.remove(b).is_some());
        assert!(wheel.remove(b).is_none());
        assert_eq!(run_to(&mut wheel, 20, &log), vec![(2, 10), (0, 10)]);
        // `a` fired; a new timer reuses its slot, and the stale key must not cancel it.
        let d = wheel.insert(30, waker(3, &log)).unwrap();
        assert!(wheel.remove(a).is_none());
        assert_eq!(wheel.wakes(c, &waker(9, &log)), None);
        assert!(wheel.swap_waker(c, waker(9, &log)).is_err());
        assert_eq!(run_to(&mut wheel, 40, &log), vec![(3, 30)]);
        assert!(wheel.remove(d).is_none());
    }

    #[test]
    fn past_deadlines_are_refused_and_far_ones_saturate() {
        let log = Arc::default();
        let mut wheel = Wheel::new();
        let mut due = Vec::new();
        wheel.advance(1000, &mut due, usize::MAX);
        assert!(wheel.insert(1000, waker(0, &log)).is_err());
        let far = wheel.insert(u64::MAX, waker(1, &log)).unwrap();
        let beyond = wheel.insert(1000 + 3 * SPAN, waker(2, &log)).unwrap();
        // Cascading a clamped timer never fires it early.
        assert_eq!(
            run_to(&mut wheel, 1000 + 3 * SPAN + 1, &log),
            vec![(2, 1000 + 3 * SPAN)]
        );
        assert!(wheel.remove(beyond).is_none());
        assert!(wheel.remove(far).is_some());
    }

    #[test]
    #[cfg_attr(
        miri,
        ignore = "10k timers over 10k ticks take far too long under Miri; the wheel has no unsafe code"
    )]
    fn the_slab_shrinks_back_once_empty() {
        let count = Arc::new(AtomicUsize::new(0));
        struct Count(Arc<AtomicUsize>);
        impl Wake for Count {
            fn wake(self: Arc<Self>) {
                self.0.fetch_add(1, Ordering::SeqCst);
            }
        }
        let mut wheel = Wheel::new();
        let keys: Vec<Key> = (0..10_000u64)
            .map(|i| {
                wheel
                    .insert(1 + i % 700, Waker::from(Arc::new(Count(count.clone()))))
                    .unwrap()
            })
            .collect();
        for k in keys.iter().step_by(2) {
            wheel.remove(*k);
        }
        let mut due = Vec::new();
        assert!(wheel.advance(10_000, &mut due, usize::MAX));
        due.into_iter().for_each(Waker::wake);
        assert_eq!(count.load(Ordering::SeqCst), 5_000);
        assert_eq!(wheel.len(), 0);
        assert!(wheel.entries.capacity() <= KEEP_FREE);
    }
}
