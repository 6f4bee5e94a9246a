//! `MkAsyncCache<K, V>`: a map bounded by bytes whose values live in arena memory.
//!
//! Invariants:
//! - The cache's arena (counted mode) is only touched with its mutex held, which orders every
//!   use of it and of its chunks' owner-only counters; it is never a task's current arena, so
//!   every free of a cached value takes memory/arena/chunk.rs's remote path.
//! - No user code runs with either mutex held. New chunks are charged to the budget (which may
//!   evict, and an evictable may insert into this very cache) before the arena mutex is taken,
//!   and chunks and charges let go of under it are dropped after (memory/arena/shared.rs), since
//!   returning bytes wakes tasks. Keys and entries leave the table under its mutex and are
//!   dropped after it is released. (Comparing and hashing keys, and `get`'s clone, are the
//!   exceptions a locked map cannot avoid.)
//! - Eviction waits for the arena mutex to give back an emptied chunk: nobody holds it for
//!   longer than a bump or a chunk installation.
//! - A value is in the table or in transit (memory/containers/transit.rs): the transit opens
//!   under the lock its value leaves or enters by (the arena's for an insert, the table's for a
//!   removal, replacement or eviction) and closes once it has landed or its slot is free. An
//!   eviction that finds nothing to drop while a transit was open looks again, boundedly.

use super::transit::{Transit, Transits};
use crate::memory::arena::shared::{self, Charge, Spare, Step};
use crate::memory::arena::{Arena, Mode};
use crate::memory::{MkAllocError, MkAsyncBox, MkBackpressure, MkBudget, MkBudgetGuard};
use crate::memory::{MkByteSize, MkEvictable, RuntimeMemory};
use crate::sync::lock_std as lock;
use std::alloc::Layout;
use std::borrow::Borrow;
use std::collections::{HashMap, VecDeque};
use std::fmt;
use std::hash::Hash;
use std::sync::atomic::AtomicU64;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};

/// A concurrent map bounded by bytes, whose values live in the cache's own arena.
///
/// Every entry is charged to the cache's budget: the arena chunks that hold the values, plus
/// whatever a value owns elsewhere (its [`MkByteSize`] beyond its own size, e.g. a `Vec`'s
/// buffer). When an insert does not fit, the budget's policy decides; under
/// [`Evict`](MkBackpressure::Evict) (the default of [`new`](Self::new)) the cache drops its
/// **least recently inserted** entries (reads do not refresh an entry) until it fits.
///
/// The cache also registers itself as an evictable consumer of its budget: any other
/// allocation on that budget (or a child of it) under the `Evict` policy reclaims memory from
/// it the same way. Memory comes back at chunk granularity (chunks grow from 4 KiB as the cache
/// fills, each at most half the capacity): a chunk's bytes return once every entry in it is
/// gone, and dropping the oldest entries empties the oldest chunks first.
///
/// ```
/// use memkit_async_runtime::memory::MkAsyncCache;
///
/// let rt = memkit_async_runtime::Runtime::new().unwrap();
/// rt.block_on(async {
///     let cache = MkAsyncCache::new(8 << 10); // 8 KiB, evicting
///     for i in 0..100u64 {
///         cache.insert(i, vec![i as u8; 200]).await.unwrap();
///     }
///     assert!(cache.used_bytes() <= 8 << 10);
///     assert_eq!(cache.get(&99).unwrap()[0], 99); // the newest entries stay
///     assert!(cache.get(&0).is_none()); // the oldest were evicted
/// });
/// ```
pub struct MkAsyncCache<K, V> {
    inner: Arc<Inner<K, V>>,
}

struct Inner<K, V> {
    budget: MkBudget,
    arena: Mutex<Box<Arena>>,
    table: Mutex<Table<K, V>>,
    /// Values between the arena and the table (memory/containers/transit.rs).
    transits: Transits,
    evicted: AtomicU64,
}

struct Table<K, V> {
    entries: HashMap<K, Entry<V>>,
    /// Keys in insertion order with the sequence number of their insert; stale pairs (removed or
    /// replaced since) are skipped when met.
    order: VecDeque<(u64, K)>,
    next_seq: u64,
}

struct Entry<V> {
    seq: u64,
    value: MkAsyncBox<V>,
    /// Bytes the value owns outside the arena.
    extra: Option<MkBudgetGuard>,
}

impl<V> Entry<V> {
    /// Takes the value out and frees its slot, with the bytes that gave back to the budget:
    /// what the value owned outside the arena, and its slot's chunk if the value was the last
    /// one alive in it.
    fn take_counted(self) -> (V, usize) {
        let Entry { value, extra, .. } = self;
        let (value, released) = MkAsyncBox::into_inner_counted(value);
        (value, released + extra.map_or(0, |guard| guard.bytes()))
    }
}

impl<K, V> MkAsyncCache<K, V>
where
    K: Eq + Hash + Clone + Send + 'static,
    V: MkByteSize + Send + 'static,
{
    /// A cache of at most `capacity_bytes` bytes that evicts its oldest entries when full.
    /// Inside a runtime its budget is a child of the runtime's memory limit.
    pub fn new(capacity_bytes: usize) -> MkAsyncCache<K, V> {
        let budget = MkBudget::in_current_runtime(capacity_bytes);
        MkAsyncCache::with_budget(&budget.with_policy(MkBackpressure::Evict))
    }

    /// A cache charged to `budget`, whose limit bounds it and whose policy decides what a full
    /// insert does (`Evict` drops the oldest entries; `Wait` waits for removals; `Fail` and
    /// `Timeout` fail). Other users of `budget` under `Evict` may reclaim from the cache.
    pub fn with_budget(budget: &MkBudget) -> MkAsyncCache<K, V> {
        let pool = RuntimeMemory::current_pool();
        let inner = Arc::new(Inner {
            budget: budget.clone(),
            arena: Mutex::new(Arena::new(budget.clone(), pool, Mode::Counted)),
            table: Mutex::new(Table {
                entries: HashMap::new(),
                order: VecDeque::new(),
                next_seq: 0,
            }),
            transits: Transits::default(),
            evicted: AtomicU64::new(0),
        });
        let consumer: Arc<dyn MkEvictable> = inner.clone();
        budget.register_evictable(&consumer);
        MkAsyncCache { inner }
    }

    /// Inserts `value` under `key`, applying the budget's policy if it does not fit, and returns
    /// the value it replaces.
    ///
    /// # Errors
    /// `ExceedsLimit` if the entry alone is larger than the capacity, else per the policy
    /// (`CapacityReached`, `TimedOut`). The value is dropped on error.
    pub async fn insert(&self, key: K, value: V) -> Result<Option<V>, MkAllocError> {
        let extra = self.extra_bytes(&value);
        let extra = match extra {
            0 => None,
            n => Some(self.inner.budget.acquire(n).await?),
        };
        let inner = &*self.inner;
        let mut landing = None;
        let block = shared::alloc(&inner.budget, |charge, spare| {
            inner.step(Layout::new::<V>(), charge, spare, &mut landing)
        })
        .await?;
        // SAFETY: the block is fresh and laid out for `V`.
        let value = unsafe { MkAsyncBox::write(block, value) };
        Ok(self.put(key, value, extra, landing))
    }

    /// As [`insert`](Self::insert), never waiting (`Evict` still evicts).
    ///
    /// # Errors
    /// As `insert`, with `CapacityReached` where `insert` would wait.
    pub fn try_insert(&self, key: K, value: V) -> Result<Option<V>, MkAllocError> {
        let extra = match self.extra_bytes(&value) {
            0 => None,
            n => Some(self.inner.budget.try_acquire(n)?),
        };
        let inner = &*self.inner;
        let mut landing = None;
        let block = shared::try_alloc(&inner.budget, |charge, spare| {
            inner.step(Layout::new::<V>(), charge, spare, &mut landing)
        })?;
        // SAFETY: the block is fresh and laid out for `V`.
        let value = unsafe { MkAsyncBox::write(block, value) };
        Ok(self.put(key, value, extra, landing))
    }

    fn extra_bytes(&self, value: &V) -> usize {
        value.byte_size().saturating_sub(size_of::<V>())
    }

    /// Puts the value in the table, closing the transit its allocation opened (`landing`).
    fn put(
        &self,
        key: K,
        value: MkAsyncBox<V>,
        extra: Option<MkBudgetGuard>,
        landing: Option<Transit<'_>>,
    ) -> Option<V> {
        let ordered = key.clone();
        let mut dead = Vec::new();
        let (old, leaving) = {
            let mut table = lock(&self.inner.table);
            let seq = table.next_seq;
            table.next_seq += 1;
            table.order.push_back((seq, ordered));
            let entry = Entry { seq, value, extra };
            let old = match table.entries.get_mut(&key) {
                // Replaced in place: the key passed in is dropped below, not under the lock.
                Some(slot) => Some(std::mem::replace(slot, entry)),
                None => {
                    table.entries.insert(key, entry);
                    None
                }
            };
            table.compact(&mut dead);
            // The replaced value is in transit until its slot is freed.
            let leaving = old.as_ref().map(|_| self.inner.transits.open());
            (old, leaving)
        };
        drop(landing);
        let old = old.map(|e| e.take_counted().0);
        drop(leaving);
        drop(dead);
        old
    }

    /// A clone of the value under `key`. The value is cloned with the cache locked: a `Clone`
    /// that uses this cache would wait for itself.
    pub fn get<Q>(&self, key: &Q) -> Option<V>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
        V: Clone,
    {
        self.get_with(key, V::clone)
    }

    /// Calls `f` with the value under `key` (the cache is locked meanwhile: keep `f` short, and
    /// do not use this cache from it).
    pub fn get_with<Q, R>(&self, key: &Q, f: impl FnOnce(&V) -> R) -> Option<R>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        lock(&self.inner.table)
            .entries
            .get(key)
            .map(|e| f(&e.value))
    }

    /// `true` if an entry is stored under `key`.
    pub fn contains_key<Q>(&self, key: &Q) -> bool
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        lock(&self.inner.table).entries.contains_key(key)
    }

    /// Removes the entry under `key` and returns its value.
    pub fn remove<Q>(&self, key: &Q) -> Option<V>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        let (entry, leaving) = {
            let mut table = lock(&self.inner.table);
            let entry = table.entries.remove_entry(key);
            let leaving = entry.as_ref().map(|_| self.inner.transits.open());
            (entry, leaving)
        };
        let value = entry.map(|(key, e)| (key, e.take_counted().0));
        drop(leaving);
        self.inner.release_unused_chunk();
        value.map(|(_key, value)| value)
    }

    /// Removes every entry.
    pub fn clear(&self) {
        let (order, entries, leaving) = {
            let mut table = lock(&self.inner.table);
            let entries = std::mem::take(&mut table.entries);
            let leaving = (!entries.is_empty()).then(|| self.inner.transits.open());
            (std::mem::take(&mut table.order), entries, leaving)
        };
        // Every slot is freed before any key or value is dropped.
        let taken: Vec<(K, V)> = entries
            .into_iter()
            .map(|(key, e)| (key, e.take_counted().0))
            .collect();
        drop(leaving);
        drop((order, taken));
        self.inner.release_unused_chunk();
    }
}

impl<K, V> MkAsyncCache<K, V> {
    /// Number of entries.
    pub fn len(&self) -> usize {
        lock(&self.inner.table).entries.len()
    }

    /// `true` if the cache holds no entry.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Bytes charged to the cache's budget (its descendants and other users included, when the
    /// budget is shared).
    pub fn used_bytes(&self) -> usize {
        self.inner.budget.used()
    }

    /// Entries dropped by eviction so far.
    pub fn evicted(&self) -> u64 {
        self.inner.evicted.load(Ordering::Relaxed)
    }

    /// The budget the cache is charged to.
    pub fn budget(&self) -> &MkBudget {
        &self.inner.budget
    }
}

impl<K, V> Clone for MkAsyncCache<K, V> {
    /// Another handle to the same cache.
    fn clone(&self) -> Self {
        MkAsyncCache {
            inner: self.inner.clone(),
        }
    }
}

impl<K, V> fmt::Debug for MkAsyncCache<K, V> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MkAsyncCache")
            .field("len", &self.len())
            .field("used_bytes", &self.used_bytes())
            .field("limit", &self.inner.budget.limit())
            .finish()
    }
}

impl<K: Eq + Hash, V> Table<K, V> {
    /// Drops stale order records once they outnumber live entries, so the queue stays O(len);
    /// their keys go to `dead`, to be dropped once the table is unlocked.
    fn compact(&mut self, dead: &mut Vec<K>) {
        if self.order.len() > 2 * self.entries.len() + 16 {
            for (seq, key) in std::mem::take(&mut self.order) {
                if self.entries.get(&key).is_some_and(|e| e.seq == seq) {
                    self.order.push_back((seq, key));
                } else {
                    dead.push(key);
                }
            }
        }
    }

    /// Removes the least recently inserted entry; stale order records met on the way go to
    /// `dead`, to be dropped once the table is unlocked.
    fn pop_oldest(&mut self, dead: &mut Vec<K>) -> Option<(K, Entry<V>)> {
        while let Some((seq, key)) = self.order.pop_front() {
            if self.entries.get(&key).is_some_and(|e| e.seq == seq) {
                let oldest = self.entries.remove_entry(&key);
                dead.push(key);
                return oldest;
            }
            dead.push(key);
        }
        None
    }
}

impl<K, V> Inner<K, V> {
    /// One step of an allocation in the cache's arena, with the arena locked for it. The step
    /// that allocates opens the value's transit (`landing`) under that lock.
    fn step<'a>(
        &'a self,
        layout: Layout,
        charge: Option<Charge>,
        spare: &mut Spare,
        landing: &mut Option<Transit<'a>>,
    ) -> Result<Step, MkAllocError> {
        let arena = lock(&self.arena);
        let step = arena.step_shared(layout, charge, spare);
        if let Ok(Step::Done(_)) = step {
            *landing = Some(self.transits.open());
        }
        step
    }

    /// Gives the arena's current chunk back if nothing in it is alive (removals emptied it);
    /// the bytes given back.
    fn release_unused_chunk(&self) -> usize {
        let retired = lock(&self.arena).release_current_if_empty();
        // Retired (its bytes returned, waiters woken) once the arena is unlocked.
        retired.bytes()
    }
}

/// How many times one eviction looks again for values in transit before it gives up. A
/// transit lasts a table insert or a slot's free, so one yield of the thread is almost always
/// enough; the bound only matters when user code (a key's `clone`) stalls inside one.
const LOOKS: u32 = 1000;

impl<K, V> MkEvictable for Inner<K, V>
where
    K: Eq + Hash + Send + 'static,
    V: Send + 'static,
{
    /// Drops the oldest entries until they gave back `bytes_wanted` bytes, or none is left (a
    /// chunk's bytes come back once every entry in it is gone, and the current chunk is given
    /// back once emptied). Returns the bytes given back, counted as they are released rather
    /// than read from the budget, which other requests charge meanwhile: reading it, an
    /// eviction whose bytes another request took at once would look as if nothing was left.
    ///
    /// With nothing left to drop while other threads had values in transit (whose slots may
    /// hold the chunk it needs), it looks again once they have landed: up to [`LOOKS`] times,
    /// so a transit held for long (a key's `clone` that blocks) makes the request fail under
    /// its policy rather than keep this thread busy.
    fn evict(&self, bytes_wanted: usize) -> usize {
        let mut released = 0;
        let mut looks = 0;
        loop {
            let mark = self.transits.mark();
            let mut dead = Vec::new();
            let oldest = {
                let mut table = lock(&self.table);
                let oldest = table.pop_oldest(&mut dead);
                oldest.map(|oldest| (oldest, self.transits.open()))
            };
            drop(dead);
            let Some(((key, entry), leaving)) = oldest else {
                let freed = released + self.release_unused_chunk();
                if freed == 0 && looks < LOOKS && self.transits.look_again(mark) {
                    looks += 1;
                    continue;
                }
                return freed;
            };
            let (value, bytes) = entry.take_counted();
            drop(leaving);
            // The user's drops run once the slot is free and the transit closed.
            drop((key, value));
            released += bytes;
            self.evicted.fetch_add(1, Ordering::Relaxed);
            if released >= bytes_wanted {
                return released;
            }
        }
    }
}
