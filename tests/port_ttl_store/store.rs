// A key-value store whose entries may expire, written as an ordinary tokio program.
//
// Included by `tests/ttl_store_tokio.rs` and `tests/ttl_store_memkit.rs`, which differ only in
// what their `rt` module re-exports: tokio's runtime, tasks and timers, or memkit-async's.
// (It is `include!`d, so it carries no inner attributes or `//!` comments.)
//
// A background purge task owns expiry: it sleeps until the earliest deadline, or until an
// insert, removal or close changes that deadline (a `Notify`), whichever comes first
// (`select!`), removes what is due and reports each removal on a channel. Reads never return
// an entry whose deadline has passed, whether or not the purge task has run yet.

use rt::{mpsc, select, sleep_until, spawn, Duration, Instant, JoinHandle, Notify};
use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, Mutex};

/// An entry the purge task removed, and when it saw it due.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Expired<V> {
    key: String,
    value: V,
    at: Instant,
}

struct TtlStore<V> {
    shared: Arc<Shared<V>>,
}

impl<V> Clone for TtlStore<V> {
    fn clone(&self) -> Self {
        TtlStore {
            shared: self.shared.clone(),
        }
    }
}

struct Shared<V> {
    state: Mutex<State<V>>,
    /// Wakes the purge task: the earliest deadline may have changed, or the store closed.
    changed: Notify,
}

struct State<V> {
    entries: HashMap<String, Entry<V>>,
    /// Every deadline, earliest first; the sequence number keeps equal deadlines in insertion
    /// order and tells a replaced entry's stale deadline from the live one.
    deadlines: BTreeSet<(Instant, u64, String)>,
    next_seq: u64,
    closed: bool,
    expired_tx: mpsc::UnboundedSender<Expired<V>>,
}

struct Entry<V> {
    value: V,
    expires: Option<(Instant, u64)>,
}

impl<V> Entry<V> {
    fn is_live(&self, now: Instant) -> bool {
        self.expires.is_none_or(|(at, _)| at > now)
    }
}

impl<V: Clone + Send + 'static> TtlStore<V> {
    /// A store, the receiver of its expiry reports, and its purge task (which returns how many
    /// entries it purged once the store is closed).
    fn new() -> (
        TtlStore<V>,
        mpsc::UnboundedReceiver<Expired<V>>,
        JoinHandle<usize>,
    ) {
        let (expired_tx, expired_rx) = mpsc::unbounded_channel();
        let shared = Arc::new(Shared {
            state: Mutex::new(State {
                entries: HashMap::new(),
                deadlines: BTreeSet::new(),
                next_seq: 0,
                closed: false,
                expired_tx,
            }),
            changed: Notify::new(),
        });
        let purger = spawn(purge(shared.clone()));
        (TtlStore { shared }, expired_rx, purger)
    }

    /// Stores `value` under `key`, expiring `ttl` from now (never if `None`); returns the live
    /// value it replaced.
    fn insert(&self, key: &str, value: V, ttl: Option<Duration>) -> Option<V> {
        let now = Instant::now();
        let mut state = self.shared.state.lock().unwrap();
        let expires = ttl.map(|ttl| {
            let seq = state.next_seq;
            state.next_seq += 1;
            (now + ttl, seq)
        });
        if let Some((at, seq)) = expires {
            state.deadlines.insert((at, seq, key.to_string()));
        }
        let old = state
            .entries
            .insert(key.to_string(), Entry { value, expires });
        if let Some(Entry {
            expires: Some((at, seq)),
            ..
        }) = &old
        {
            state.deadlines.remove(&(*at, *seq, key.to_string()));
        }
        drop(state);
        self.shared.changed.notify_one();
        old.filter(|e| e.is_live(now)).map(|e| e.value)
    }

    /// The live value under `key`.
    fn get(&self, key: &str) -> Option<V> {
        let now = Instant::now();
        let state = self.shared.state.lock().unwrap();
        state
            .entries
            .get(key)
            .filter(|e| e.is_live(now))
            .map(|e| e.value.clone())
    }

    /// How long `key` has left (`None`: absent, expired, or never expires).
    fn ttl(&self, key: &str) -> Option<Duration> {
        let now = Instant::now();
        let state = self.shared.state.lock().unwrap();
        let (at, _) = state.entries.get(key)?.expires?;
        (at > now).then(|| at - now)
    }

    /// Removes `key`; returns its live value.
    fn remove(&self, key: &str) -> Option<V> {
        let now = Instant::now();
        let mut state = self.shared.state.lock().unwrap();
        let old = state.entries.remove(key)?;
        if let Some((at, seq)) = old.expires {
            state.deadlines.remove(&(at, seq, key.to_string()));
        }
        drop(state);
        self.shared.changed.notify_one();
        old.is_live(now).then_some(old.value)
    }

    /// Live entries.
    fn len(&self) -> usize {
        let now = Instant::now();
        let state = self.shared.state.lock().unwrap();
        state.entries.values().filter(|e| e.is_live(now)).count()
    }

    /// Stops the purge task; the entries stay readable.
    fn close(&self) {
        self.shared.state.lock().unwrap().closed = true;
        self.shared.changed.notify_one();
    }
}

async fn purge<V: Clone + Send + 'static>(shared: Arc<Shared<V>>) -> usize {
    let mut purged = 0;
    loop {
        let next = {
            let now = Instant::now();
            let mut state = shared.state.lock().unwrap();
            if state.closed {
                return purged;
            }
            while let Some((at, seq, key)) = state.deadlines.first().cloned() {
                if at > now {
                    break;
                }
                state.deadlines.pop_first();
                let live = state
                    .entries
                    .get(&key)
                    .is_some_and(|e| e.expires == Some((at, seq)));
                if live {
                    let entry = state.entries.remove(&key).unwrap();
                    purged += 1;
                    // Nobody listening is fine: the report is a courtesy.
                    let _ = state.expired_tx.send(Expired {
                        key,
                        value: entry.value,
                        at: now,
                    });
                }
            }
            state.deadlines.first().map(|(at, _, _)| *at)
        };
        match next {
            Some(at) => {
                select! {
                    _ = sleep_until(at) => {}
                    _ = shared.changed.notified() => {}
                }
            }
            None => shared.changed.notified().await,
        }
    }
}
