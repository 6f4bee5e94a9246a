// The TTL store's tests, in `#[tokio::test(start_paused = true)]` style: the clock is paused, so
// every instant is exact and an hour takes no real time. `async_test`, `advance`, `JoinSet`
// and the rest come from the including crate's `rt` module.

use rt::{advance, async_test, interval, sleep, timeout, JoinSet};

const SEC: Duration = Duration::from_secs(1);
const MS: Duration = Duration::from_millis(1);

fn secs(n: u64) -> Duration {
    Duration::from_secs(n)
}

#[async_test(start_paused = true)]
async fn an_entry_expires_exactly_at_its_ttl() {
    let (store, mut expired, _purger) = TtlStore::new();
    let start = Instant::now();
    store.insert("session", 7u32, Some(10 * SEC));
    advance(9999 * MS).await;
    assert_eq!(store.get("session"), Some(7));
    assert_eq!(store.ttl("session"), Some(MS));
    advance(MS).await;
    assert_eq!(store.get("session"), None, "expired at its deadline");
    assert_eq!(store.len(), 0);
    let report = expired.recv().await.unwrap();
    assert_eq!((report.key.as_str(), report.value), ("session", 7));
    assert_eq!(report.at - start, 10 * SEC);
}

#[async_test(start_paused = true)]
async fn entries_are_purged_in_deadline_order_with_no_real_waiting() {
    let real = std::time::Instant::now();
    let (store, mut expired, _purger) = TtlStore::new();
    let start = Instant::now();
    store.insert("c", 3, Some(3600 * SEC));
    store.insert("a", 1, Some(600 * SEC));
    store.insert("b", 2, Some(1800 * SEC));
    for (key, secs) in [("a", 600), ("b", 1800), ("c", 3600)] {
        let report = expired.recv().await.unwrap();
        assert_eq!(report.key, key);
        assert_eq!(report.at - start, secs * SEC);
        assert_eq!(Instant::now() - start, secs * SEC);
    }
    assert!(real.elapsed() < SEC, "an hour of expiries took {:?}", real.elapsed());
}

#[async_test(start_paused = true)]
async fn inserting_again_replaces_the_deadline() {
    let (store, mut expired, _purger) = TtlStore::new();
    let start = Instant::now();
    assert_eq!(store.insert("k", "old", Some(10 * SEC)), None);
    advance(5 * SEC).await;
    assert_eq!(store.insert("k", "new", Some(10 * SEC)), Some("old"));
    let report = expired.recv().await.unwrap();
    assert_eq!((report.key.as_str(), report.value), ("k", "new"));
    assert_eq!(report.at - start, 15 * SEC, "the first deadline no longer counts");
}

#[async_test(start_paused = true)]
async fn removing_an_entry_cancels_its_expiry() {
    let (store, mut expired, _purger) = TtlStore::new();
    let start = Instant::now();
    store.insert("gone", 1, Some(10 * SEC));
    store.insert("kept", 2, Some(20 * SEC));
    assert_eq!(store.remove("gone"), Some(1));
    let report = expired.recv().await.unwrap();
    assert_eq!(report.key, "kept");
    assert_eq!(report.at - start, 20 * SEC);
    assert_eq!(store.remove("kept"), None);
}

#[async_test(start_paused = true)]
async fn closing_stops_the_purge_task_which_reports_its_count() {
    let (store, mut expired, purger) = TtlStore::new();
    store.insert("forever", 0, None);
    for i in 1..=3u64 {
        store.insert(&format!("k{i}"), i, Some(secs(i)));
    }
    for key in ["k1", "k2"] {
        assert_eq!(expired.recv().await.unwrap().key, key);
    }
    advance(500 * MS).await;
    store.close();
    let purged = timeout(SEC, purger).await.expect("the purge task stops").unwrap();
    assert_eq!(purged, 2);
    // Nothing purges any more, but expired entries are still not returned.
    advance(3600 * SEC).await;
    assert_eq!(store.get("k3"), None);
    assert_eq!(store.get("forever"), Some(0));
    assert_eq!(store.len(), 1);
    assert!(expired.try_recv().is_err(), "k3 was never purged");
}

#[async_test(start_paused = true)]
async fn writers_in_a_join_set() {
    let (store, mut expired, _purger) = TtlStore::new();
    let start = Instant::now();
    let mut writers = JoinSet::new();
    for i in 1..=8u64 {
        let store = store.clone();
        writers.spawn(async move {
            // Writer i writes at i seconds an entry that lives 30 - 2i more: it expires at 30 - i.
            sleep(secs(i)).await;
            store.insert(&format!("w{i}"), i, Some(secs(30 - 2 * i)));
            (i, Instant::now() - start)
        });
    }
    let mut done = Vec::new();
    while let Some(res) = writers.join_next().await {
        done.push(res.unwrap());
    }
    done.sort();
    assert_eq!(done, (1..=8u64).map(|i| (i, secs(i))).collect::<Vec<_>>());
    assert_eq!(store.len(), 8);
    for i in (1..=8u64).rev() {
        let report = expired.recv().await.unwrap();
        assert_eq!((report.key, report.value), (format!("w{i}"), i));
        assert_eq!(report.at - start, secs(30 - i));
    }
    assert_eq!(store.len(), 0);
}

#[async_test(start_paused = true)]
async fn select_between_an_expiry_and_a_deadline() {
    let (store, mut expired, _purger) = TtlStore::new();
    let start = Instant::now();
    store.insert("slow", (), Some(10 * SEC));
    let mut outcomes = Vec::new();
    for _ in 0..3 {
        select! {
            report = expired.recv() => outcomes.push((report.unwrap().key, Instant::now() - start)),
            _ = sleep(4 * SEC) => outcomes.push(("tick".to_string(), Instant::now() - start)),
        }
    }
    assert_eq!(
        outcomes,
        vec![
            ("tick".to_string(), 4 * SEC),
            ("tick".to_string(), 8 * SEC),
            ("slow".to_string(), 10 * SEC),
        ]
    );
}

#[async_test(start_paused = true)]
async fn an_interval_samples_the_live_entries() {
    let (store, _expired, _purger) = TtlStore::new();
    store.insert("a", 1, Some(7 * SEC));
    store.insert("b", 2, Some(12 * SEC));
    store.insert("c", 3, None);
    let start = Instant::now();
    let mut every = interval(5 * SEC);
    let mut samples = Vec::new();
    for _ in 0..4 {
        let at = every.tick().await;
        samples.push((at - start, store.len()));
    }
    assert_eq!(
        samples,
        vec![(Duration::ZERO, 3), (5 * SEC, 3), (10 * SEC, 2), (15 * SEC, 1)]
    );
}

#[async_test(start_paused = true)]
async fn a_task_waiting_on_a_timeout_meets_the_store() {
    let (store, _expired, _purger) = TtlStore::new();
    let start = Instant::now();
    let waiter = {
        let store = store.clone();
        spawn(async move {
            // Polls for a key every second, for at most a minute.
            timeout(60 * SEC, async {
                loop {
                    if let Some(v) = store.get("ready") {
                        return (v, Instant::now() - start);
                    }
                    sleep(SEC).await;
                }
            })
            .await
        })
    };
    sleep(2500 * MS).await;
    store.insert("ready", 42, Some(SEC));
    assert_eq!(waiter.await.unwrap(), Ok((42, 3 * SEC)));
    let late = spawn(timeout(5 * SEC, std::future::pending::<()>()));
    assert!(late.await.unwrap().is_err());
    assert_eq!(Instant::now() - start, 8 * SEC);
}
