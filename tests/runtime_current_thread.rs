//! The current-thread runtime: every task runs on the thread in `block_on`, with the same task,
//! memory, time and I/O semantics as the multi-thread runtime.

mod common;

use common::*;
use futures::io::{AsyncReadExt, AsyncWriteExt};
use memkit_async::net::{TcpListener, TcpStream};
use memkit_async::runtime::Builder;
use memkit_async::task::{self, yield_now};
use memkit_async::time::{interval, sleep, timeout};
use memkit_async::{MkAsyncChannel, MkBackpressure, MkBudget, MkGlobalAlloc, Runtime};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering::SeqCst};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::Duration;

#[global_allocator]
static GLOBAL: MkGlobalAlloc = MkGlobalAlloc::system();

fn rt() -> Runtime {
    Builder::new_current_thread().build().unwrap()
}

#[test]
fn every_task_runs_on_the_block_on_thread() {
    with_timeout(DEADLINE, || {
        let rt = rt();
        assert_eq!(rt.metrics().num_workers(), 1);
        let me = thread::current().id();
        let ids = rt.block_on(async {
            let mut handles = Vec::new();
            for i in 0..20u32 {
                handles.push(memkit_async::spawn(async move {
                    yield_now().await;
                    // Spawned from inside a task.
                    let inner = memkit_async::spawn(async move { (i, thread::current().id()) });
                    let (j, inner_thread) = inner.await.unwrap();
                    (j, thread::current().id(), inner_thread)
                }));
            }
            let mut out = Vec::new();
            for h in handles {
                out.push(h.await.unwrap());
            }
            out
        });
        assert_eq!(ids.len(), 20);
        for (i, (j, outer, inner)) in ids.into_iter().enumerate() {
            assert_eq!(i as u32, j);
            assert_eq!(outer, me);
            assert_eq!(inner, me);
        }
        assert_eq!(
            rt.block_on(async { memkit_async::runtime::worker_index() }),
            Some(0)
        );
        assert_eq!(memkit_async::runtime::worker_index(), None);
    });
}

#[test]
fn join_handles_and_abort() {
    with_timeout(DEADLINE, || {
        let rt = rt();
        let drops = Counter::new();
        let (aborted, finished) = rt.block_on(async {
            let guard = DropCount(drops.clone());
            let never = memkit_async::spawn(async move {
                let _guard = guard;
                std::future::pending::<()>().await
            });
            yield_now().await;
            assert!(!never.is_finished());
            never.abort();
            let aborted = never.await.unwrap_err().is_cancelled();
            let done = memkit_async::spawn(async { 7 });
            (aborted, done.await.unwrap())
        });
        assert!(aborted);
        assert_eq!(finished, 7);
        assert_eq!(drops.get(), 1);
        let panicked = rt.block_on(rt.spawn(async { panic!("boom") }));
        assert!(panicked.unwrap_err().is_panic());
    });
}

struct DropCount(Counter);

impl Drop for DropCount {
    fn drop(&mut self) {
        self.0.inc();
    }
}

#[test]
fn timers_sleep_timeout_and_interval() {
    with_timeout(DEADLINE, || {
        let rt = rt();
        let order = rt.block_on(async {
            let order = Arc::new(Mutex::new(Vec::new()));
            let late = {
                let order = order.clone();
                memkit_async::spawn(async move {
                    sleep(Duration::from_millis(30)).await;
                    order.lock().unwrap().push("30ms");
                })
            };
            let early = {
                let order = order.clone();
                memkit_async::spawn(async move {
                    sleep(Duration::from_millis(5)).await;
                    order.lock().unwrap().push("5ms");
                })
            };
            let timed_out = timeout(Duration::from_millis(10), std::future::pending::<()>()).await;
            assert!(timed_out.is_err());
            let in_time = timeout(Duration::from_secs(5), async { 3 }).await;
            assert_eq!(in_time.unwrap(), 3);
            let mut ticks = interval(Duration::from_millis(2));
            for _ in 0..3 {
                ticks.tick().await;
            }
            late.await.unwrap();
            early.await.unwrap();
            let order = order.lock().unwrap().clone();
            order
        });
        assert_eq!(order, ["5ms", "30ms"]);
    });
}

#[test]
#[cfg_attr(miri, ignore = "sockets")]
fn tcp_echo_on_loopback() {
    with_timeout(DEADLINE, || {
        let rt = rt();
        let me = thread::current().id();
        let echoed = rt.block_on(async move {
            let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
            let addr = listener.local_addr().unwrap();
            let server = memkit_async::spawn(async move {
                let (mut s, _) = listener.accept().await.unwrap();
                assert_eq!(thread::current().id(), me);
                let mut buf = [0u8; 64];
                let mut total = 0;
                loop {
                    let n = s.read(&mut buf).await.unwrap();
                    if n == 0 {
                        break total;
                    }
                    s.write_all(&buf[..n]).await.unwrap();
                    total += n;
                }
            });
            let mut client = TcpStream::connect(addr).await.unwrap();
            let msg = b"hello, current thread";
            client.write_all(msg).await.unwrap();
            let mut back = vec![0u8; msg.len()];
            client.read_exact(&mut back).await.unwrap();
            assert_eq!(&back, msg);
            client.close().await.unwrap();
            drop(client);
            server.await.unwrap()
        });
        assert_eq!(echoed, 21);
    });
}

#[test]
fn a_wait_budget_parks_and_is_woken_by_a_release_on_the_same_thread() {
    with_timeout(DEADLINE, || {
        let rt = rt();
        let budget = MkBudget::new(1000).with_policy(MkBackpressure::Wait);
        let events = rt.block_on({
            let budget = budget.clone();
            async move {
                let events = Arc::new(Mutex::new(Vec::new()));
                let first = budget.acquire(800).await.unwrap();
                let waiter = {
                    let budget = budget.clone();
                    let events = events.clone();
                    memkit_async::spawn(async move {
                        events.lock().unwrap().push("waiting");
                        let g = budget.acquire(600).await.unwrap();
                        events.lock().unwrap().push("granted");
                        assert_eq!(budget.used(), 600);
                        drop(g);
                    })
                };
                // Let the waiter queue; it is parked, not polled again.
                while budget.waiting() == 0 {
                    yield_now().await;
                }
                events.lock().unwrap().push("release");
                drop(first);
                waiter.await.unwrap();
                let events = events.lock().unwrap().clone();
                events
            }
        });
        assert_eq!(events, ["waiting", "release", "granted"]);
        assert_eq!(budget.used(), 0);
    });
}

/// What an allocation of `size` bytes is charged with `MkGlobalAlloc`: rounded up to 8, plus
/// the 8-byte trailer.
fn cost(size: usize) -> usize {
    size.next_multiple_of(8) + 8
}

#[test]
fn heap_bytes_are_charged_to_the_task_and_come_back() {
    with_timeout(DEADLINE, || {
        let rt = rt();
        let budget = MkBudget::new(1 << 20);
        let charged = rt.block_on({
            let budget = budget.clone();
            async move {
                task::Builder::new()
                    .budget(budget.clone())
                    .spawn(async move {
                        let v = vec![7u8; 10_000];
                        yield_now().await;
                        let charged = budget.used();
                        drop(v);
                        yield_now().await;
                        (charged, budget.used())
                    })
                    .unwrap()
                    .await
                    .unwrap()
            }
        });
        assert_eq!(charged, (cost(10_000), 0));
        assert_eq!(budget.used(), 0);
    });
}

#[test]
fn a_memory_limit_applies() {
    with_timeout(DEADLINE, || {
        let rt = Builder::new_current_thread()
            .memory_limit(4096)
            .build()
            .unwrap();
        let err = rt.block_on(async {
            memkit_async::Handle::current()
                .memory_budget()
                .child(1 << 20)
                .with_policy(MkBackpressure::Fail)
                .acquire(8192)
                .await
                .unwrap_err()
        });
        assert!(err.to_string().contains("8192"), "{err}");
        assert_eq!(rt.memory_budget().used(), 0);
    });
}

#[test]
fn an_always_ready_task_does_not_starve_a_timer() {
    with_timeout(DEADLINE, || {
        let rt = rt();
        let fired_during_loop = rt.block_on(async {
            let (tx, mut rx) = MkAsyncChannel::<u32>::unbounded();
            let timer_fired = Arc::new(AtomicBool::new(false));
            let stop = Arc::new(AtomicBool::new(false));
            // Sends and receives on a channel that is always ready: it returns `Pending` only
            // when the cooperative budget runs out.
            let busy = {
                let timer_fired = timer_fired.clone();
                let stop = stop.clone();
                memkit_async::spawn(async move {
                    let mut rounds = 0u64;
                    while !stop.load(SeqCst) {
                        tx.send(1).await.unwrap();
                        rx.recv().await.unwrap();
                        rounds += 1;
                    }
                    (rounds, timer_fired.load(SeqCst))
                })
            };
            sleep(Duration::from_millis(10)).await;
            timer_fired.store(true, SeqCst);
            stop.store(true, SeqCst);
            let (rounds, seen) = busy.await.unwrap();
            assert!(rounds > 0);
            seen
        });
        // The timer fired (and `block_on`'s future ran) while the loop was still running.
        assert!(fired_during_loop);
    });
}

#[test]
fn an_always_ready_block_on_future_does_not_starve_the_tasks() {
    with_timeout(DEADLINE, || {
        let rt = rt();
        let rounds = rt.block_on(async {
            let ran = Arc::new(AtomicBool::new(false));
            {
                let ran = ran.clone();
                memkit_async::spawn(async move { ran.store(true, SeqCst) });
            }
            // Never waits for anything but the cooperative budget: the task must still run.
            let (tx, mut rx) = MkAsyncChannel::<u32>::unbounded();
            let mut rounds = 0u64;
            while !ran.load(SeqCst) {
                tx.send(1).await.unwrap();
                rx.recv().await.unwrap();
                rounds += 1;
            }
            rounds
        });
        // 64 round trips spend the 128 units of the first poll; the 65th send returns
        // `Pending`, the task runs, and the 65th round trip completes in the next poll.
        assert_eq!(rounds, 65);
    });
}

#[test]
fn block_on_inside_block_on_or_a_task_is_a_clear_error() {
    with_timeout(DEADLINE, || {
        let rt = Arc::new(rt());
        let inner = rt.clone();
        let nested = catch_unwind(AssertUnwindSafe(|| {
            rt.block_on(async { inner.block_on(async { 1 }) })
        }));
        let msg = panic_message(&*nested.unwrap_err());
        assert!(msg.contains("cannot block on a future"), "{msg}");
        let inner = rt.clone();
        let in_task = rt.block_on(rt.spawn(async move { inner.handle().block_on(async { 1 }) }));
        let msg = panic_message(&*in_task.unwrap_err().into_panic());
        assert!(msg.contains("cannot block on a future"), "{msg}");
        // The runtime still works.
        assert_eq!(rt.block_on(rt.spawn(async { 5 })).unwrap(), 5);
    });
}

#[test]
fn tasks_spawned_before_block_on_run_during_it() {
    with_timeout(DEADLINE, || {
        let rt = rt();
        let ran = Counter::new();
        let handles: Vec<_> = (0..5)
            .map(|_| {
                let ran = ran.clone();
                rt.spawn(async move {
                    ran.inc();
                })
            })
            .collect();
        // No thread runs them until `block_on`.
        thread::sleep(Duration::from_millis(20));
        assert_eq!(ran.get(), 0);
        // A `block_on` that never joins them still runs them in turn between its own polls
        // (it would wait forever if they did not run).
        let polls = rt.block_on(async {
            let mut polls = 0u32;
            while ran.get() < 5 {
                polls += 1;
                yield_now().await;
            }
            polls
        });
        assert!((1..=5).contains(&polls), "{polls} polls for 5 tasks");
        for h in handles {
            assert!(h.is_finished());
        }
        // Tasks left queued by one `block_on` run in the next.
        // The handle is returned on purpose: it is awaited by the next `block_on`.
        #[allow(clippy::async_yields_async)]
        let later = rt.block_on(async {
            let later = memkit_async::spawn(async {
                yield_now().await;
                9
            });
            // Let it start and yield: it stays queued on the worker when this `block_on` ends.
            yield_now().await;
            later
        });
        assert_eq!(rt.block_on(later).unwrap(), 9);
    });
}

#[test]
fn dropping_the_runtime_drops_pending_tasks_and_their_bytes() {
    with_timeout(DEADLINE, || {
        let rt = rt();
        let drops = Counter::new();
        let budget = MkBudget::new(1 << 20);
        let started = Arc::new(AtomicUsize::new(0));
        for _ in 0..3 {
            let guard = DropCount(drops.clone());
            let budget = budget.clone();
            let started = started.clone();
            rt.spawn(async move {
                let _bytes = budget.acquire(1000).await.unwrap();
                let _guard = guard;
                started.fetch_add(1, SeqCst);
                std::future::pending::<()>().await
            });
        }
        // Never started: queued when the runtime drops.
        let queued = DropCount(drops.clone());
        rt.block_on(async {
            while started.load(SeqCst) < 3 {
                yield_now().await;
            }
        });
        rt.spawn(async move {
            let _guard = queued;
        });
        assert_eq!(budget.used(), 3000);
        assert_eq!(drops.get(), 0);
        drop(rt);
        assert_eq!(drops.get(), 4);
        assert_eq!(budget.used(), 0);
    });
}

#[test]
fn dropping_the_runtime_inside_its_own_block_on() {
    with_timeout(DEADLINE, || {
        let rt = rt();
        let handle = rt.handle().clone();
        let drops = Counter::new();
        let guard = DropCount(drops.clone());
        let pending = rt.spawn(async move {
            let _guard = guard;
            std::future::pending::<()>().await
        });
        let cancelled = handle.block_on(async move {
            // Started and queued again on this thread's worker.
            yield_now().await;
            drop(rt);
            pending.await.unwrap_err().is_cancelled()
        });
        assert!(cancelled);
        assert_eq!(drops.get(), 1);
        // After shutdown a `block_on` still polls its own future.
        assert_eq!(handle.block_on(async { 4 }), 4);
    });
}

#[test]
fn an_idle_block_on_sleeps_in_the_driver() {
    with_timeout(DEADLINE, || {
        let rt = rt();
        rt.block_on(sleep(Duration::from_millis(50)));
        let m = rt.metrics();
        // It slept until the timer was due, instead of turning the loop meanwhile; a loop that
        // spins would count thousands of turns here.
        let parks = m.worker_park_count(0);
        assert!((1..=3).contains(&parks), "{parks} parks");
        assert_eq!(m.worker_poll_count(0), 0);
        assert_eq!(m.num_parked_workers(), 0);
    });
}

#[test]
fn spawn_blocking_runs_on_the_pool() {
    with_timeout(DEADLINE, || {
        let rt = rt();
        let me = thread::current().id();
        let there = rt.block_on(rt.spawn_blocking(|| thread::current().id()));
        assert_ne!(there.unwrap(), me);
    });
}

#[test]
fn another_thread_blocks_on_while_one_runs_the_tasks() {
    with_timeout(DEADLINE, || {
        let rt = Arc::new(rt());
        let (tx, rx) = std::sync::mpsc::channel::<()>();
        let other = {
            let rt = rt.clone();
            thread::spawn(move || {
                // Waits for a task that only this `block_on`'s thread or the main one runs.
                let task = rt.spawn(async { thread::current().id() });
                let _ = tx.send(());
                rt.block_on(task).unwrap()
            })
        };
        rx.recv().unwrap();
        let other_id = other.thread().id();
        let main = rt.block_on(async {
            sleep(Duration::from_millis(20)).await;
            thread::current().id()
        });
        let ran_on = other.join().unwrap();
        // The task ran on whichever thread held the worker then, and both calls returned.
        assert_eq!(main, thread::current().id());
        assert!(ran_on == main || ran_on == other_id);
    });
}

#[memkit_async::test(flavor = "current_thread")]
async fn the_test_attribute_builds_a_current_thread_runtime() {
    let me = thread::current().id();
    let there = memkit_async::spawn(async { thread::current().id() })
        .await
        .unwrap();
    assert_eq!(me, there);
    assert_eq!(memkit_async::Handle::current().metrics().num_workers(), 1);
}

#[memkit_async::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_multi_thread_flavor_takes_worker_threads() {
    assert_eq!(memkit_async::Handle::current().metrics().num_workers(), 2);
}

#[test]
fn the_main_attribute_builds_a_current_thread_runtime() {
    #[memkit_async::main(flavor = "current_thread")]
    async fn main() -> thread::ThreadId {
        memkit_async::spawn(async { thread::current().id() })
            .await
            .unwrap()
    }
    assert_eq!(main(), thread::current().id());
}
