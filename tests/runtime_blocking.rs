//! `spawn_blocking`: values, threads of its own, the thread cap, idle exit, panics, aborts.

mod common;

use common::*;
use memkit_async::{runtime, spawn, spawn_blocking, Builder, Handle};
use std::collections::HashSet;
use std::sync::{Arc, Condvar, Mutex};
use std::thread::{self, ThreadId};
use std::time::{Duration, Instant};

#[test]
fn blocking_closures_return_values_from_inside_and_outside() {
    with_timeout(DEADLINE, || {
        let rt = runtime(2);
        assert_eq!(rt.block_on(rt.spawn_blocking(|| 6 * 7)).unwrap(), 42);
        let sum = rt
            .block_on(rt.spawn(async {
                let hs: Vec<_> = (0..50u64).map(|i| spawn_blocking(move || i * i)).collect();
                let mut sum = 0;
                for h in hs {
                    sum += h.await.unwrap();
                }
                sum
            }))
            .unwrap();
        assert_eq!(sum, (0..50u64).map(|i| i * i).sum::<u64>());
        let s = rt.block_on(async { spawn_blocking(|| "owned".to_string()).await.unwrap() });
        assert_eq!(s, "owned");
    });
}

#[test]
fn blocking_closures_run_off_the_worker_threads() {
    with_timeout(DEADLINE, || {
        let ids: Arc<Mutex<Vec<ThreadId>>> = Arc::default();
        let i = ids.clone();
        let rt = Builder::new()
            .worker_threads(2)
            .on_thread_start(move || i.lock().unwrap().push(thread::current().id()))
            .build()
            .unwrap();
        wait_until("both workers started", || ids.lock().unwrap().len() == 2);
        let workers: HashSet<ThreadId> = ids.lock().unwrap().iter().copied().collect();
        let (tid, index, has_handle) = rt
            .block_on(rt.spawn(async {
                spawn_blocking(|| {
                    (
                        thread::current().id(),
                        runtime::worker_index(),
                        Handle::try_current().is_ok(),
                    )
                })
                .await
                .unwrap()
            }))
            .unwrap();
        assert!(
            !workers.contains(&tid),
            "a blocking closure ran on a worker thread"
        );
        assert_eq!(index, None);
        assert!(has_handle, "no runtime context inside a blocking closure");
        assert_eq!(
            ids.lock().unwrap().len(),
            3,
            "the blocking thread ran on_thread_start"
        );
        assert!(ids.lock().unwrap().contains(&tid));
    });
}

/// Waits on a two-party rendezvous with a deadline; `false` if the partner never came.
fn rendezvous(state: &(Mutex<usize>, Condvar)) -> bool {
    let (lock, cvar) = state;
    let mut arrived = lock.lock().unwrap();
    *arrived += 1;
    cvar.notify_all();
    let deadline = Instant::now() + Duration::from_secs(5);
    while *arrived < 2 {
        let now = Instant::now();
        if now >= deadline {
            return false;
        }
        arrived = cvar.wait_timeout(arrived, deadline - now).unwrap().0;
    }
    true
}

#[test]
fn more_closures_than_max_blocking_threads_all_complete_within_the_cap() {
    with_timeout(DEADLINE, || {
        let mut builder = Builder::new();
        builder
            .worker_threads(1)
            .max_blocking_threads(2)
            .thread_keep_alive(Duration::from_millis(100));
        let threads = ThreadCounts::install(&mut builder);
        let rt = builder.build().unwrap();
        wait_until("the worker started", || threads.starts.get() == 1);
        let m = rt.metrics();
        let running = Counter::new();
        let max_running = Arc::new(Mutex::new(0usize));
        let met = Arc::new((Mutex::new(0usize), Condvar::new()));
        let max_threads_seen = Arc::new(Mutex::new(0usize));
        let stop_sampling = Flag::new();
        let sampler = {
            let (m, seen, stop) = (m.clone(), max_threads_seen.clone(), stop_sampling.clone());
            thread::spawn(move || {
                while !stop.get() {
                    let n = m.num_blocking_threads();
                    let mut seen = seen.lock().unwrap();
                    *seen = (*seen).max(n);
                    drop(seen);
                    thread::sleep(Duration::from_micros(200));
                }
            })
        };
        const N: usize = 20;
        let hs: Vec<_> = (0..N)
            .map(|i| {
                let (running, max_running, met) =
                    (running.clone(), max_running.clone(), met.clone());
                rt.spawn_blocking(move || {
                    let now = running.inc();
                    {
                        let mut max = max_running.lock().unwrap();
                        *max = (*max).max(now);
                    }
                    // The first two meet: proof that two threads run at once.
                    let met_partner = if i < 2 { rendezvous(&met) } else { true };
                    thread::sleep(Duration::from_millis(5));
                    running.0.fetch_sub(1, std::sync::atomic::Ordering::SeqCst);
                    (i, met_partner)
                })
            })
            .collect();
        let outs = rt.block_on(async {
            let mut outs = Vec::new();
            for h in hs {
                outs.push(h.await.unwrap());
            }
            outs
        });
        stop_sampling.set();
        sampler.join().unwrap();
        for (i, (j, met_partner)) in outs.into_iter().enumerate() {
            assert_eq!(i, j);
            assert!(
                met_partner,
                "closure {i} never ran alongside another: the pool did not grow to 2"
            );
        }
        assert_eq!(
            *max_running.lock().unwrap(),
            2,
            "closures ran beyond max_blocking_threads(2)"
        );
        assert!(
            *max_threads_seen.lock().unwrap() <= 2,
            "num_blocking_threads exceeded the cap"
        );
        assert_eq!(m.blocking_queue_depth(), 0);
        // Idle threads exit after the keep-alive.
        wait_until("idle blocking threads exit", || {
            m.num_blocking_threads() == 0
        });
        assert_eq!(m.num_idle_blocking_threads(), 0);
        assert_eq!(
            threads.starts.get(),
            1 + 2,
            "the pool started more than 2 threads"
        );
        wait_until("both blocking threads ran on_thread_stop", || {
            threads.stops.get() == 2
        });
        // The pool starts threads again for new work.
        assert_eq!(rt.block_on(rt.spawn_blocking(|| 3)).unwrap(), 3);
        assert_eq!(threads.starts.get(), 4);
    });
}

#[test]
fn idle_blocking_threads_are_reused_before_exiting() {
    with_timeout(DEADLINE, || {
        let mut builder = Builder::new();
        builder
            .worker_threads(1)
            .thread_keep_alive(Duration::from_secs(5));
        let threads = ThreadCounts::install(&mut builder);
        let rt = builder.build().unwrap();
        let m = rt.metrics();
        for i in 0..50 {
            assert_eq!(rt.block_on(rt.spawn_blocking(move || i)).unwrap(), i);
            wait_until("the blocking thread is idle", || {
                m.num_idle_blocking_threads() == 1
            });
        }
        assert_eq!(
            m.num_blocking_threads(),
            1,
            "sequential closures did not reuse the idle thread"
        );
        // The worker's start hook runs on its own thread and may come last: nothing above
        // needed the worker.
        wait_until("the worker and one blocking thread started", || {
            threads.starts.get() >= 2
        });
        assert_eq!(threads.starts.get(), 1 + 1);
    });
}

#[test]
fn a_closure_submitted_while_the_only_blocking_thread_exits_still_runs() {
    // At the cap (1 thread), the idle thread decides to exit after its keep-alive. A closure
    // queued in that moment, while the exiting thread still counts toward the cap, must still
    // run: either the exiting thread takes it or a new thread is started.
    with_timeout(DEADLINE, || {
        let stopping = Flag::new();
        let s = stopping.clone();
        let rt = Builder::new()
            .worker_threads(1)
            .max_blocking_threads(1)
            .thread_keep_alive(Duration::from_millis(20))
            .on_thread_stop(move || {
                // Only blocking threads stop while the runtime is alive. Widen the window
                // between "decided to exit" and "gone".
                s.set();
                thread::sleep(Duration::from_millis(300));
            })
            .build()
            .unwrap();
        assert_eq!(rt.block_on(rt.spawn_blocking(|| 1)).unwrap(), 1);
        wait_until("the idle blocking thread is exiting", || stopping.get());
        let h = rt.spawn_blocking(|| 2);
        let (tx, rx) = std::sync::mpsc::channel();
        let handle = rt.handle().clone();
        thread::spawn(move || {
            let _ = tx.send(handle.block_on(h));
        });
        let res = rx.recv_timeout(Duration::from_secs(3)).expect(
            "a blocking closure queued while the only pool thread was exiting never ran: it \
             waits for a thread that is gone (the exiting thread still counted toward \
             max_blocking_threads)",
        );
        assert_eq!(res.unwrap(), 2);
    });
}

#[test]
fn panicking_blocking_closure_gives_a_panic_join_error() {
    with_timeout(DEADLINE, || {
        let rt = runtime(1);
        let err = rt
            .block_on(rt.spawn_blocking(|| panic!("blocking boom")))
            .unwrap_err();
        assert!(err.is_panic());
        assert_eq!(panic_message(&*err.into_panic()), "blocking boom");
        // The pool still works.
        assert_eq!(rt.block_on(rt.spawn_blocking(|| 5)).unwrap(), 5);
    });
}

#[test]
fn abort_of_a_queued_blocking_closure_drops_it_unrun() {
    with_timeout(DEADLINE, || {
        let rt = Builder::new()
            .worker_threads(1)
            .max_blocking_threads(1)
            .build()
            .unwrap();
        let (release, wait) = std::sync::mpsc::channel::<()>();
        let busy = Flag::new();
        let b = busy.clone();
        let first = rt.spawn_blocking(move || {
            b.set();
            wait.recv_timeout(DEADLINE).unwrap();
            1
        });
        wait_until("the only blocking thread is busy", || busy.get());
        let drops = Counter::new();
        let ran = Flag::new();
        let (guard, r) = (DropCount(drops.clone()), ran.clone());
        let queued = rt.spawn_blocking(move || {
            let _guard = guard;
            r.set();
        });
        queued.abort();
        release.send(()).unwrap();
        assert!(rt.block_on(queued).unwrap_err().is_cancelled());
        assert!(!ran.get());
        assert_eq!(drops.get(), 1);
        assert_eq!(rt.block_on(first).unwrap(), 1);
        // Aborting a closure that already ran changes nothing.
        let done = rt.spawn_blocking(|| 9);
        wait_until("the closure finished", || done.is_finished());
        done.abort();
        assert_eq!(rt.block_on(done).unwrap(), 9);
    });
}

#[test]
fn block_on_works_inside_a_blocking_closure() {
    with_timeout(DEADLINE, || {
        let rt = runtime(2);
        let out = rt
            .block_on(rt.spawn(async {
                spawn_blocking(|| {
                    let handle = Handle::current();
                    handle.block_on(async { spawn(async { 20 }).await.unwrap() + 1 })
                })
                .await
                .unwrap()
            }))
            .unwrap();
        assert_eq!(out, 21);
    });
}

#[test]
fn spawn_blocking_outside_a_runtime_panics() {
    let msg = expect_panic(|| spawn_blocking(|| ()));
    assert!(msg.contains("no memkit-async runtime"), "{msg}");
}

#[test]
fn max_blocking_threads_zero_is_rejected() {
    let err = Builder::new().max_blocking_threads(0).build().unwrap_err();
    assert_eq!(err.kind(), std::io::ErrorKind::InvalidInput);
    assert!(err.to_string().contains("max_blocking_threads"), "{err}");
}

#[test]
fn work_queued_for_a_thread_whose_start_hook_panics_fails_at_once() {
    with_timeout(DEADLINE, || {
        let starts = Counter::new();
        let failing = Flag::new();
        let (s, f) = (starts.clone(), failing.clone());
        let rt = Builder::new()
            .worker_threads(1)
            .on_thread_start(move || {
                s.inc();
                if f.get() {
                    panic!("a start hook that fails on purpose");
                }
            })
            .build()
            .unwrap();
        wait_until("the worker started", || starts.get() == 1);
        failing.set();
        // The blocking thread started for it fails its hook: the closure never runs, and its
        // handle says so instead of waiting for the next `spawn_blocking`.
        let ran = Flag::new();
        let r = ran.clone();
        let err = rt.block_on(rt.spawn_blocking(move || r.set())).unwrap_err();
        assert!(err.is_cancelled(), "{err:?}");
        assert!(!ran.get());
        assert_eq!(starts.get(), 2);
        wait_until("the failed thread is gone", || {
            rt.metrics().num_blocking_threads() == 0
        });
        // A later closure gets a new thread, whose hook succeeds.
        failing.0.store(false, std::sync::atomic::Ordering::SeqCst);
        assert_eq!(rt.block_on(rt.spawn_blocking(|| 6 * 7)).unwrap(), 42);
        assert_eq!(starts.get(), 3);
    });
}
