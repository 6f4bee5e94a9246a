//! The scheduler's intervals set on the builder (`global_queue_interval`, `event_interval`),
//! their validation, and `Handle::id`.

mod common;

use common::*;
use memkit_async::net::{TcpListener, TcpStream};
use memkit_async::time::sleep;
use memkit_async::{spawn, Builder, Handle};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// On a one-worker runtime busy with `locals` tasks queued on its worker, how many of them ran
/// before a task spawned from another thread (the shared queue) did.
fn locals_before_a_remote_task(global_queue_interval: u32, locals: usize) -> usize {
    let rt = Builder::new()
        .worker_threads(1)
        .global_queue_interval(global_queue_interval)
        .build()
        .unwrap();
    let ran = Arc::new(Mutex::new(0usize));
    let remote_saw = Arc::new(Mutex::new(None));
    let handle = rt.handle().clone();
    let (r, s) = (ran.clone(), remote_saw.clone());
    rt.block_on(rt.spawn(async move {
        // Queued behind nothing on the shared queue before the local ones exist.
        let remote = std::thread::spawn(move || {
            handle.spawn(async move { *s.lock().unwrap() = Some(*r.lock().unwrap()) })
        })
        .join()
        .unwrap();
        let locals: Vec<_> = (0..locals)
            .map(|_| {
                let ran = ran.clone();
                spawn(async move { *ran.lock().unwrap() += 1 })
            })
            .collect();
        remote.await.unwrap();
        for local in locals {
            local.await.unwrap();
        }
    }))
    .unwrap();
    let saw = remote_saw.lock().unwrap().expect("the remote task ran");
    saw
}

#[test]
fn a_short_global_queue_interval_serves_remote_spawns_between_local_tasks() {
    with_timeout(DEADLINE, || {
        // The worker's own queue first: 200 tasks are fewer than the interval.
        assert_eq!(locals_before_a_remote_task(1000, 200), 200);
        // At least every 8th (61st) task comes from the shared queue: the worker looks there
        // first within that many tasks.
        let before = locals_before_a_remote_task(8, 200);
        assert!(before < 8, "{before} local tasks ran before the remote one");
        let before = locals_before_a_remote_task(61, 200);
        assert!(
            (8..61).contains(&before),
            "{before} local tasks ran before the remote one"
        );
    });
}

#[test]
fn zero_intervals_are_refused_with_what_to_pass() {
    let err = Builder::new().event_interval(0).build().unwrap_err();
    assert_eq!(err.kind(), std::io::ErrorKind::InvalidInput);
    assert!(err.to_string().starts_with("event_interval(0):"), "{err}");
    assert!(err.to_string().contains("pass 1 or more"), "{err}");
    let err = Builder::new().global_queue_interval(0).build().unwrap_err();
    assert_eq!(err.kind(), std::io::ErrorKind::InvalidInput);
    assert!(
        err.to_string().starts_with("global_queue_interval(0):"),
        "{err}"
    );
    assert!(err.to_string().contains("pass 1 or more"), "{err}");
}

#[test]
fn intervals_of_one_still_run_tasks_timers_and_sockets() {
    with_timeout(DEADLINE, || {
        let rt = Builder::new()
            .worker_threads(1)
            .event_interval(1)
            .global_queue_interval(1)
            .build()
            .unwrap();
        let sum = rt.block_on(async {
            let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
            let addr = listener.local_addr().unwrap();
            let client = spawn(async move {
                sleep(Duration::from_millis(5)).await;
                let _stream = TcpStream::connect(addr).await.unwrap();
                let tasks: Vec<_> = (0..100u64).map(|i| spawn(async move { i })).collect();
                let mut sum = 0;
                for task in tasks {
                    sum += task.await.unwrap();
                }
                sum
            });
            listener.accept().await.unwrap();
            client.await.unwrap()
        });
        assert_eq!(sum, 4950);
    });
}

#[test]
fn each_runtime_has_its_own_id_the_same_from_every_handle() {
    let a = runtime(1);
    let b = Builder::new_current_thread().build().unwrap();
    let (ida, idb) = (a.handle().id(), b.handle().id());
    assert_ne!(ida, idb);
    assert_eq!(a.handle().clone().id(), ida);
    assert_eq!(
        a.block_on(a.spawn(async { Handle::current().id() }))
            .unwrap(),
        ida
    );
    assert_eq!(b.block_on(async { Handle::current().id() }), idb);
    // Ids are not reused: a runtime built after `a` is dropped gets a new one.
    drop(a);
    let c = runtime(1);
    assert!(c.handle().id() != ida && c.handle().id() != idb);
    assert!(ida.to_string().parse::<u64>().is_ok(), "{ida}");
}
