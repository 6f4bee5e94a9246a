//! `MkAsyncCache<K, V>`: a map bounded by bytes whose values live in arena memory.
//!
//! Invariants:
//! - The cache's arena (counted mode) is only touched with its mutex held, which orders every
//!   use of it and of its chunks' owner-only counters; it is never a task's current arena, so
//!   every free of a cached value takes chunk.rs's remote path.
//! - Eviction never waits for the arena mutex (it only `try_lock`s it): an insert holding that
//!   mutex may itself be the request that asked for eviction. A chunk release that finds the
//!   mutex taken is left as a request that the holder serves right after unlocking.
//! - Entries are dropped outside the table mutex: dropping releases budget bytes, which serves
//!   waiters.

use super::arena::{Arena, Mode};
use super::boxed::poll_block;
use super::owned::current_pool;
use super::{MkAllocError, MkAsyncBox, MkBackpressure, MkBudget, MkBudgetGuard};
use super::{MkByteSize, MkEvictable};
use crate::sync::lock_std as lock;
use std::alloc::Layout;
use std::borrow::Borrow;
use std::collections::{HashMap, VecDeque};
use std::fmt;
use std::future::poll_fn;
use std::hash::Hash;
use std::sync::atomic::Ordering::{self, SeqCst};
use std::sync::atomic::{AtomicBool, AtomicU64};
use std::sync::{Arc, Mutex};
use std::task::Poll;

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
/// fills): a chunk's bytes return once every entry in it is gone, and dropping the oldest
/// entries empties the oldest chunks first.
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
    /// A removal emptied entries while an insert held `arena`: give back its empty chunk.
    release_requested: AtomicBool,
    table: Mutex<Table<K, V>>,
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
    _extra: Option<MkBudgetGuard>,
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
        let pool = current_pool();
        let inner = Arc::new(Inner {
            budget: budget.clone(),
            arena: Mutex::new(Arena::new(budget.clone(), pool, Mode::Counted)),
            release_requested: AtomicBool::new(false),
            table: Mutex::new(Table {
                entries: HashMap::new(),
                order: VecDeque::new(),
                next_seq: 0,
            }),
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
        let mut acquire = None;
        let block = poll_fn(|cx| {
            let res = self.inner.with_arena(|arena| {
                let res = poll_block(arena, Layout::new::<V>(), &mut acquire, cx);
                if let Err(MkAllocError::CapacityReached { .. }) = res {
                    // Eviction may have emptied the chunk this insert holds: reuse it.
                    acquire = None;
                    return poll_block(arena, Layout::new::<V>(), &mut acquire, cx);
                }
                res
            });
            match res {
                Ok(poll) => poll.map(Ok),
                Err(err) => Poll::Ready(Err(err)),
            }
        })
        .await?;
        // SAFETY: the block is fresh and laid out for `V`.
        let value = unsafe { MkAsyncBox::write(block, value) };
        Ok(self.put(key, value, extra))
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
        let block = self.inner.with_arena(|arena| {
            match arena.try_alloc(Layout::new::<V>()) {
                // Eviction may have emptied the chunk this insert holds: reuse it.
                Err(MkAllocError::CapacityReached { .. }) => arena.try_alloc(Layout::new::<V>()),
                res => res,
            }
        })?;
        // SAFETY: the block is fresh and laid out for `V`.
        let value = unsafe { MkAsyncBox::write(block, value) };
        Ok(self.put(key, value, extra))
    }

    fn extra_bytes(&self, value: &V) -> usize {
        value.byte_size().saturating_sub(size_of::<V>())
    }

    fn put(&self, key: K, value: MkAsyncBox<V>, extra: Option<MkBudgetGuard>) -> Option<V> {
        let old = {
            let mut table = lock(&self.inner.table);
            let seq = table.next_seq;
            table.next_seq += 1;
            table.order.push_back((seq, key.clone()));
            let old = table.entries.insert(
                key,
                Entry {
                    seq,
                    value,
                    _extra: extra,
                },
            );
            table.compact();
            old
        };
        old.map(|e| MkAsyncBox::into_inner(e.value))
    }

    /// A clone of the value under `key`.
    pub fn get<Q>(&self, key: &Q) -> Option<V>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
        V: Clone,
    {
        self.get_with(key, V::clone)
    }

    /// Calls `f` with the value under `key` (the cache is locked meanwhile: keep `f` short).
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
        let entry = lock(&self.inner.table).entries.remove(key);
        let value = entry.map(|e| MkAsyncBox::into_inner(e.value));
        self.inner.release_unused_chunk();
        value
    }

    /// Removes every entry.
    pub fn clear(&self) {
        let entries = {
            let mut table = lock(&self.inner.table);
            table.order.clear();
            std::mem::take(&mut table.entries)
        };
        drop(entries);
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
    /// Drops stale order records once they outnumber live entries, so the queue stays O(len).
    fn compact(&mut self) {
        if self.order.len() > 2 * self.entries.len() + 16 {
            let entries = &self.entries;
            self.order
                .retain(|(seq, k)| entries.get(k).is_some_and(|e| e.seq == *seq));
        }
    }

    /// Removes the least recently inserted entry.
    fn pop_oldest(&mut self) -> Option<Entry<V>> {
        while let Some((seq, key)) = self.order.pop_front() {
            if self.entries.get(&key).is_some_and(|e| e.seq == seq) {
                return self.entries.remove(&key);
            }
        }
        None
    }
}

impl<K, V> Inner<K, V> {
    /// Runs `f` with the arena locked, then serves release requests made meanwhile.
    fn with_arena<R>(&self, f: impl FnOnce(&Arena) -> R) -> R {
        let out = f(&lock(&self.arena));
        self.serve_release_requests();
        out
    }

    /// Gives the arena's current chunk back if nothing in it is alive (after removals emptied
    /// it), now or, if an insert holds the arena, as soon as that insert lets go of it: a
    /// waiting insert may be queued for exactly those bytes.
    fn release_unused_chunk(&self) {
        self.release_requested.store(true, SeqCst);
        self.serve_release_requests();
    }

    /// Whoever sets the request retries the lock after setting it, and whoever holds the lock
    /// checks the request after unlocking: one of them always serves it. Never waits for the
    /// lock, because eviction runs inside an insert that holds it.
    fn serve_release_requests(&self) {
        while self.release_requested.load(SeqCst) {
            let Ok(arena) = self.arena.try_lock() else {
                return;
            };
            if self.release_requested.swap(false, SeqCst) {
                arena.release_current_if_empty();
            }
        }
    }
}

impl<K, V> MkEvictable for Inner<K, V>
where
    K: Eq + Hash + Send + 'static,
    V: Send + 'static,
{
    fn evict(&self, bytes_wanted: usize) -> usize {
        let before = self.budget.used();
        loop {
            let oldest = lock(&self.table).pop_oldest();
            let Some(entry) = oldest else {
                self.release_unused_chunk();
                break;
            };
            drop(entry);
            self.evicted.fetch_add(1, Ordering::Relaxed);
            if before.saturating_sub(self.budget.used()) >= bytes_wanted {
                break;
            }
        }
        before.saturating_sub(self.budget.used())
    }
}
