//! `MkAsyncCache` under `Evict` while values are in transit: allocated and not yet in the table,
//! or out of it with their slot not yet freed. On a small budget such a value can hold the only
//! chunk eviction could empty; an eviction that meets one waits for it to land instead of
//! reporting the budget full, and a key whose `clone` re-enters the cache gets a clear error
//! instead of waiting for itself. Every test ends with the budget back at zero bytes.

mod common;

use common::*;
use memkit_async::{MkAllocError, MkAsyncCache, MkBackpressure, MkBudget, MkEvictable};
use std::hash::{Hash, Hasher};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};

/// One value per 4 KiB chunk: a second never fits beside the first.
type Value = [u8; 3000];

/// A key whose first `clone` (the cache clones a key as it puts it in the table, with the
/// value allocated and in transit) tells the test it is there, then waits for `resume`.
struct HeldKey {
    id: u32,
    hold: Option<Mutex<(mpsc::Sender<()>, mpsc::Receiver<()>)>>,
}

impl HeldKey {
    fn plain(id: u32) -> HeldKey {
        HeldKey { id, hold: None }
    }
}

impl Clone for HeldKey {
    fn clone(&self) -> HeldKey {
        if let Some(hold) = &self.hold {
            let (entered, resume) = &*hold.lock().unwrap();
            entered.send(()).unwrap();
            resume.recv().unwrap();
        }
        HeldKey::plain(self.id)
    }
}

impl PartialEq for HeldKey {
    fn eq(&self, other: &HeldKey) -> bool {
        self.id == other.id
    }
}

impl Eq for HeldKey {}

impl Hash for HeldKey {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.id.hash(state);
    }
}

/// An evictable with nothing to give back that lets the held key go when first asked: the
/// eviction that follows it in the budget's list meets the value still in transit.
struct Resume(Mutex<Option<mpsc::Sender<()>>>);

impl MkEvictable for Resume {
    fn evict(&self, _bytes_wanted: usize) -> usize {
        if let Some(resume) = self.0.lock().unwrap().take() {
            resume.send(()).unwrap();
        }
        0
    }
}

#[test]
fn an_eviction_waits_for_a_value_in_transit_on_another_thread_instead_of_failing() {
    with_timeout(DEADLINE, || {
        let budget = MkBudget::new(2 * CHUNK).with_policy(MkBackpressure::Evict);
        let (entered_tx, entered) = mpsc::channel();
        let (resume, resume_rx) = mpsc::channel();
        // Registered before the cache, so asked first.
        let resumer: Arc<dyn MkEvictable> = Arc::new(Resume(Mutex::new(Some(resume))));
        budget.register_evictable(&resumer);
        let cache: MkAsyncCache<HeldKey, Value> = MkAsyncCache::with_budget(&budget);

        std::thread::scope(|s| {
            let held = HeldKey {
                id: 1,
                hold: Some(Mutex::new((entered_tx, resume_rx))),
            };
            let first = s.spawn(|| cache.try_insert(held, [1; 3000]));
            // Value 1 is in its chunk, its key not yet in the table.
            entered.recv().unwrap();
            assert_eq!((cache.len(), budget.used()), (0, CHUNK));
            let other = budget.try_acquire(CHUNK).unwrap();
            assert_eq!(budget.used(), 2 * CHUNK);

            // Value 2 needs a chunk: the budget is full, and the only thing to evict is
            // value 1, which lands once `Resume` has been asked.
            assert!(matches!(
                cache.try_insert(HeldKey::plain(2), [2; 3000]),
                Ok(None)
            ));
            assert!(matches!(first.join().unwrap(), Ok(None)));
            assert_eq!(cache.evicted(), 1);
            assert!(cache.contains_key(&HeldKey::plain(2)));
            assert!(!cache.contains_key(&HeldKey::plain(1)));
            assert_eq!(cache.get_with(&HeldKey::plain(2), |v| v[0]), Some(2));
            assert_eq!(budget.used(), 2 * CHUNK);
            drop(other);
        });
        drop(cache);
        assert_eq!(budget.used(), 0);
    });
}

/// Where a [`Reentrant`] key's `clone` inserts, and what that insert returned.
#[derive(Default)]
struct Reentry {
    cache: Mutex<Option<MkAsyncCache<Reentrant, Value>>>,
    result: Mutex<Option<Result<Option<Value>, MkAllocError>>>,
}

/// A key whose `clone`, if it carries a [`Reentry`], inserts key 4 into the same cache.
struct Reentrant {
    id: u32,
    reentry: Option<Arc<Reentry>>,
}

impl Clone for Reentrant {
    fn clone(&self) -> Reentrant {
        if let Some(reentry) = &self.reentry {
            let cache = reentry.cache.lock().unwrap().clone().unwrap();
            let inner = cache.try_insert(Reentrant::plain(4), [4; 3000]);
            *reentry.result.lock().unwrap() = Some(inner);
        }
        Reentrant::plain(self.id)
    }
}

impl Reentrant {
    fn plain(id: u32) -> Reentrant {
        Reentrant { id, reentry: None }
    }
}

impl PartialEq for Reentrant {
    fn eq(&self, other: &Reentrant) -> bool {
        self.id == other.id
    }
}

impl Eq for Reentrant {}

impl Hash for Reentrant {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.id.hash(state);
    }
}

#[test]
fn a_key_clone_that_inserts_into_the_same_full_cache_gets_a_clear_error_not_a_wait() {
    with_timeout(DEADLINE, || {
        let budget = MkBudget::new(2 * CHUNK).with_policy(MkBackpressure::Evict);
        let cache: MkAsyncCache<Reentrant, Value> = MkAsyncCache::with_budget(&budget);
        let other = budget.try_acquire(CHUNK).unwrap();
        cache.try_insert(Reentrant::plain(1), [1; 3000]).unwrap();
        assert_eq!(budget.used(), 2 * CHUNK);

        let reentry = Arc::new(Reentry::default());
        *reentry.cache.lock().unwrap() = Some(cache.clone());
        let key = Reentrant {
            id: 3,
            reentry: Some(reentry.clone()),
        };
        // Value 3 takes value 1's place; its key's clone then asks for another chunk, which
        // only value 3 (in transit on this very thread) could give back.
        assert!(matches!(cache.try_insert(key, [3; 3000]), Ok(None)));
        let inner = reentry.result.lock().unwrap().take().unwrap();
        assert_eq!(
            inner.unwrap_err(),
            MkAllocError::CapacityReached {
                requested: CHUNK,
                limit: 2 * CHUNK,
                used: 2 * CHUNK,
            }
        );
        assert_eq!(cache.len(), 1);
        assert_eq!(cache.evicted(), 1);
        assert_eq!(cache.get_with(&Reentrant::plain(3), |v| v[0]), Some(3));
        assert_eq!(budget.used(), 2 * CHUNK);
        reentry.cache.lock().unwrap().take();
        drop((cache, other));
        assert_eq!(budget.used(), 0);
    });
}
