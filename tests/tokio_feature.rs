//! The `tokio` feature in both directions, with exact expectations.
//!
//! Direction 1, memkit memory inside tokio tasks: tasks spawned with
//! `memkit_async::tokio::spawn_with_budget` (or wrapped with `with_budget`) allocate in their own
//! arena, charged per chunk to their budget, under its policy, and give every byte back.
//!
//! Direction 2, tokio-based code inside memkit tasks: `tokio::time`, `tokio::net`,
//! `tokio::task::spawn_blocking` and `tokio::spawn` work inside memkit tasks through the
//! runtime's background tokio reactor, which shuts down with the runtime.
//!
//! Budgets are charged per chunk: an arena's first chunk is 4 KiB; an object larger than that
//! gets the smallest power-of-two chunk that holds it.

mod common;

use common::*;
use memkit_async::tokio::{spawn_with_budget, with_budget};
use memkit_async::{task, MkAllocError, MkAsyncBox, MkAsyncVec, MkBackpressure, MkBudget};
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// Runs `future` on a fresh two-worker tokio runtime, failing after [`DEADLINE`].
fn on_tokio<F>(future: F) -> F::Output
where
    F: Future + Send + 'static,
    F::Output: Send + 'static,
{
    with_timeout(DEADLINE, move || {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("build a tokio runtime")
            .block_on(future)
    })
}

/// Sleeps (on tokio's timer) until `cond` holds; fails with `what` after [`DEADLINE`].
async fn until(what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + DEADLINE;
    while !cond() {
        assert!(Instant::now() < deadline, "timed out waiting until {what}");
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
}

// ---------------------------------------------------------------------------------------------
// Direction 1: memkit arenas and budgets inside tokio tasks.
// ---------------------------------------------------------------------------------------------

#[test]
fn a_wrapped_tokio_task_allocates_in_its_own_arena_and_gives_every_byte_back() {
    let budget = MkBudget::new(64 * KIB).with_policy(MkBackpressure::Fail);
    let b = budget.clone();
    let (sum, len, used_inside, limit_inside) = on_tokio(async move {
        spawn_with_budget(&b, async {
            let mut boxes = Vec::new();
            for i in 0..10u64 {
                boxes.push(MkAsyncBox::new([i; 8]).await.unwrap());
                tokio::task::yield_now().await; // may resume on the other worker
            }
            let mut v = MkAsyncVec::new();
            for i in 0..100u32 {
                v.push(i).await.unwrap();
            }
            let current = MkBudget::current().expect("the wrapped task's budget is current");
            let sum: u64 = boxes.iter().map(|b| b.iter().sum::<u64>()).sum();
            (sum, v.len(), current.used(), current.limit())
        })
        .await
        .unwrap()
    });
    assert_eq!((sum, len), (8 * 45, 100));
    // Ten 64-byte boxes and the vector's buffers all fit in the first chunk.
    assert_eq!((used_inside, limit_inside), (CHUNK, 64 * KIB));
    assert_eq!(
        (budget.used(), budget.peak(), budget.waiting()),
        (0, CHUNK, 0)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrapped_tasks_move_between_tokio_workers_with_exact_accounting() {
    const TASKS: usize = 64;
    let root = MkBudget::new(1 << 20).with_policy(MkBackpressure::Fail);
    let handles: Vec<_> = (0..TASKS)
        .map(|t| {
            spawn_with_budget(root.child(8 * KIB), async move {
                let mut boxes = Vec::new();
                for i in 0..16 {
                    boxes.push(MkAsyncBox::new([t * 100 + i; 4]).await.unwrap());
                    tokio::task::yield_now().await;
                }
                for (i, b) in boxes.iter().enumerate() {
                    assert_eq!(**b, [t * 100 + i; 4], "task {t}: box {i} changed");
                }
                MkBudget::current().unwrap().used()
            })
        })
        .collect();
    let all = async {
        for h in handles {
            // 16 boxes of 32 bytes: one chunk per task.
            assert_eq!(h.await.unwrap(), CHUNK);
        }
    };
    tokio::time::timeout(DEADLINE, all)
        .await
        .expect("the wrapped tasks finished");
    assert_eq!((root.used(), root.waiting()), (0, 0));
}

#[test]
fn wait_parks_a_wrapped_task_until_memory_is_released() {
    let budget = MkBudget::new(8 * KIB).with_policy(MkBackpressure::Wait);
    let probe = Probe::new();
    let (b, p) = (budget.clone(), probe.clone());
    let out = on_tokio(async move {
        let (release, released) = tokio::sync::oneshot::channel::<()>();
        let holder = spawn_with_budget(&b, async move {
            let big = MkAsyncBox::new([7u8; 8000]).await.unwrap(); // an 8 KiB chunk: all of it
            released.await.unwrap();
            drop(big);
        });
        until("the holder took the whole budget", || b.used() == 8 * KIB).await;
        let waiter = spawn_with_budget(
            &b,
            p.track(async {
                let small = MkAsyncBox::new([1u8; 4000]).await.unwrap();
                small.iter().map(|&x| x as usize).sum::<usize>()
            }),
        );
        until("the waiter is queued on the budget", || b.waiting() == 1).await;
        assert_eq!(p.polls.get(), 1, "a waiting task is not polled again");
        release.send(()).unwrap();
        holder.await.unwrap();
        waiter.await.unwrap()
    });
    assert_eq!(out, 4000);
    // Polled once to queue, once when its bytes were granted: parked, never spinning.
    assert_eq!(probe.polls.get(), 2);
    probe.assert_sound();
    assert_eq!(
        (budget.used(), budget.peak(), budget.waiting()),
        (0, 8 * KIB, 0)
    );
}

#[test]
fn fail_timeout_and_oversized_requests_return_their_errors_in_tokio_tasks() {
    let fail = MkBudget::new(CHUNK).with_policy(MkBackpressure::Fail);
    let timeout =
        MkBudget::new(CHUNK).with_policy(MkBackpressure::Timeout(Duration::from_millis(50)));
    let (f, t) = (fail.clone(), timeout.clone());
    let (failed, timed_out, oversized) = on_tokio(async move {
        // A full first chunk, then an object that needs a second one.
        let two_chunks = || async {
            let _held = MkAsyncBox::new([0u8; 4000]).await.unwrap();
            MkAsyncBox::new([0u8; 200]).await.map(|_| ())
        };
        let failed = spawn_with_budget(&f, two_chunks()).await.unwrap();
        let timed_out = spawn_with_budget(&t, two_chunks()).await.unwrap();
        let oversized =
            spawn_with_budget(&f, async { MkAsyncBox::new([0u8; 5000]).await.map(|_| ()) })
                .await
                .unwrap();
        (failed, timed_out, oversized)
    });
    assert_eq!(
        failed,
        Err(MkAllocError::CapacityReached {
            requested: CHUNK,
            limit: CHUNK,
            used: CHUNK
        })
    );
    let (request, waited) = expect_timed_out(timed_out.expect_err("the request timed out"));
    assert_eq!(request, (CHUNK, CHUNK, CHUNK));
    assert!(
        waited >= Duration::from_millis(50) && waited < DEADLINE,
        "waited {waited:?} for a 50 ms timeout"
    );
    // 5000 bytes need an 8 KiB chunk, which a 4 KiB budget can never hold.
    assert_eq!(
        oversized,
        Err(MkAllocError::ExceedsLimit {
            requested: 8 * KIB,
            limit: CHUNK
        })
    );
    for budget in [&fail, &timeout] {
        assert_eq!((budget.used(), budget.waiting()), (0, 0));
    }
}

#[test]
fn boxes_escaping_a_wrapped_task_stay_valid_and_free_their_chunk_where_they_drop() {
    let a = MkBudget::new(64 * KIB);
    let b = MkBudget::new(64 * KIB);
    let (a2, b2) = (a.clone(), b.clone());
    let kept = on_tokio(async move {
        // One box leaves as the task's output, one through a channel into another wrapped task.
        let (tx, rx) = tokio::sync::oneshot::channel();
        let out = spawn_with_budget(&a2, async move {
            let sent = MkAsyncBox::new([2u8; 300]).await.unwrap();
            tx.send(sent).unwrap();
            MkAsyncBox::new([1u8; 300]).await.unwrap()
        })
        .await
        .unwrap();
        assert_eq!(
            a2.used(),
            CHUNK,
            "the ended task's chunk lives on for its two boxes"
        );
        let seen = spawn_with_budget(&b2, async move {
            let sent = rx.await.unwrap();
            let sum: usize = sent.iter().map(|&x| x as usize).sum();
            drop(sent); // a remote free: the chunk is the other task's
            sum
        })
        .await
        .unwrap();
        assert_eq!(seen, 600);
        assert_eq!((a2.used(), b2.used()), (CHUNK, 0));
        out
    });
    // The last box dies on a plain thread, outside any task.
    let sum = std::thread::spawn(move || kept.iter().map(|&x| x as usize).sum::<usize>())
        .join()
        .unwrap();
    assert_eq!(sum, 300);
    assert_eq!((a.used(), a.peak(), b.peak()), (0, CHUNK, 0));
}

#[test]
fn aborting_a_waiting_wrapped_task_withdraws_its_request_and_drops_its_value() {
    let budget = MkBudget::new(CHUNK).with_policy(MkBackpressure::Wait);
    let drops = Counter::new();
    let (b, d) = (budget.clone(), drops.clone());
    let cancelled = on_tokio(async move {
        let held = b.try_acquire(CHUNK).unwrap();
        let value = DropCount(d.clone());
        let task = spawn_with_budget(&b, async move {
            let _never = MkAsyncBox::new(value).await;
        });
        until("the task waits for memory", || b.waiting() == 1).await;
        task.abort();
        let cancelled = task.await.unwrap_err().is_cancelled();
        assert_eq!((b.waiting(), b.used(), d.get()), (0, CHUNK, 1));
        drop(held);
        cancelled
    });
    assert!(cancelled);
    assert_eq!((budget.used(), budget.waiting(), drops.get()), (0, 0, 1));
}

#[test]
fn a_wrapped_future_awaited_in_a_memkit_task_takes_over_then_hands_back() {
    with_timeout(DEADLINE, || {
        let rt = runtime_with_limit(2, 1 << 20);
        let root = rt.memory_budget().clone();
        let task = spawn_budgeted(&rt, 64 * KIB, async {
            let outer = MkBudget::current().unwrap();
            let mine = MkAsyncBox::new(5u64).await.unwrap();
            let id = task::try_id();
            let inside = with_budget(16 * KIB, async {
                let inner = MkBudget::current().unwrap();
                let _b = MkAsyncBox::new([0u8; 100]).await.unwrap();
                (
                    inner.limit(),
                    inner.parent().map(MkBudget::limit),
                    inner.used(),
                    MkBudget::current().unwrap().parent().unwrap().used(),
                    task::try_id(),
                )
            })
            .await;
            let after = MkBudget::current().unwrap();
            let again = MkAsyncBox::new(6u64).await.unwrap();
            (
                inside,
                id.is_some(),
                after.limit(),
                outer.used(),
                *mine + *again,
            )
        });
        let (inside, had_id, limit_after, outer_used, sum) = rt.block_on(task).unwrap();
        // Inside: a 16 KiB child of the task's budget, one chunk of its own, and the task's
        // chunk plus that one charged to the task's budget.
        assert_eq!(inside, (16 * KIB, Some(64 * KIB), CHUNK, 2 * CHUNK, None));
        // After: the task's arena again, which still has room in its first chunk.
        assert!(had_id);
        assert_eq!((limit_after, outer_used, sum), (64 * KIB, CHUNK, 11));
        assert_eq!(root.used(), 0);
    });
}

#[test]
fn arena_allocation_in_a_plain_tokio_task_says_how_to_get_an_arena() {
    let err = on_tokio(async {
        tokio::spawn(async { MkAsyncBox::new(1u8).await.map(|_| ()) })
            .await
            .unwrap()
    })
    .unwrap_err();
    assert_eq!(err, MkAllocError::NoTask);
    assert!(
        err.to_string()
            .contains("memkit_async::tokio::spawn_with_budget"),
        "{err}"
    );
    assert_eq!(MkBudget::current().map(|b| b.limit()), None);
}

// ---------------------------------------------------------------------------------------------
// Direction 2: tokio-based code inside memkit tasks.
// ---------------------------------------------------------------------------------------------

#[test]
fn tokio_timers_work_inside_memkit_tasks() {
    with_timeout(DEADLINE, || {
        let rt = runtime(2);
        let handles: Vec<_> = (0..20u64)
            .map(|i| {
                rt.spawn(async move {
                    let d = Duration::from_millis(10 + i);
                    let start = Instant::now();
                    tokio::time::sleep(d).await;
                    (i, start.elapsed() >= d)
                })
            })
            .collect();
        let (slept, timed_out) = rt.block_on(async {
            let mut slept = Vec::new();
            for h in handles {
                slept.push(h.await.unwrap());
            }
            let never = std::future::pending::<()>();
            let timed_out = tokio::time::timeout(Duration::from_millis(10), never).await;
            (slept, timed_out.is_err())
        });
        assert_eq!(slept, (0..20).map(|i| (i, true)).collect::<Vec<_>>());
        assert!(timed_out);
    });
}

/// Writes `data` to an echo peer from a task of its own, then half-closes, while reading the
/// reply to its end (both at once: a large reply would otherwise fill both socket buffers);
/// whether the reply is `data` unchanged.
async fn comes_back_unchanged<R, W>(mut rd: R, mut wr: W, data: Vec<u8>) -> bool
where
    R: tokio::io::AsyncRead + Unpin,
    W: tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let expected = data.clone();
    let writer = memkit_async::spawn(async move {
        wr.write_all(&data).await.unwrap();
        wr.shutdown().await.unwrap();
    });
    let mut back = Vec::new();
    rd.read_to_end(&mut back).await.unwrap();
    writer.await.unwrap();
    back == expected
}

#[test]
fn tokio_tcp_echo_between_memkit_tasks() {
    const CLIENTS: usize = 4;
    const LEN: usize = 64 * KIB;
    with_timeout(DEADLINE, || {
        let rt = runtime_with_limit(2, 1 << 20);
        let root = rt.memory_budget().clone();
        let echoed = rt.block_on(async {
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            let addr = listener.local_addr().unwrap();
            let server = memkit_async::spawn(async move {
                for _ in 0..CLIENTS {
                    let (mut conn, _) = listener.accept().await.unwrap();
                    memkit_async::spawn_with_budget(16 * KIB, async move {
                        // The echo buffer lives in the connection task's arena.
                        let mut buf = MkAsyncBox::new([0u8; 4096]).await.unwrap();
                        loop {
                            let n = conn.read(&mut buf[..]).await.unwrap();
                            if n == 0 {
                                break;
                            }
                            conn.write_all(&buf[..n]).await.unwrap();
                        }
                    });
                }
            });
            let clients: Vec<_> = (0..CLIENTS)
                .map(|c| {
                    memkit_async::spawn(async move {
                        let data: Vec<u8> = (0..LEN).map(|i| (i * 7 + c) as u8).collect();
                        let conn = tokio::net::TcpStream::connect(addr).await.unwrap();
                        let (rd, wr) = conn.into_split();
                        comes_back_unchanged(rd, wr, data).await
                    })
                })
                .collect();
            let mut echoed = Vec::new();
            for c in clients {
                echoed.push(c.await.unwrap());
            }
            server.await.unwrap();
            echoed
        });
        assert_eq!(echoed, vec![true; CLIENTS]);
        drop(rt);
        assert_eq!(root.used(), 0);
    });
}

#[test]
fn tokio_spawn_blocking_and_tokio_spawn_work_inside_memkit_tasks() {
    with_timeout(DEADLINE, || {
        let rt = runtime(2);
        let names = rt.block_on(rt.spawn(async {
            let name = || std::thread::current().name().map(String::from);
            let blocking = tokio::task::spawn_blocking(move || (6 * 7, name()))
                .await
                .unwrap();
            let spawned = tokio::spawn(async move {
                tokio::time::sleep(Duration::from_millis(1)).await;
                name()
            })
            .await
            .unwrap();
            (blocking, spawned, name())
        }));
        let ((answer, blocking), spawned, worker) = names.unwrap();
        assert_eq!(answer, 42);
        assert_eq!(blocking.as_deref(), Some("memkit-tokio-blk"));
        assert_eq!(spawned.as_deref(), Some("memkit-tokio"));
        assert_eq!(worker.as_deref(), Some("memkit-worker"));
    });
}

#[test]
fn block_on_and_blocking_threads_enter_the_tokio_context() {
    with_timeout(DEADLINE, || {
        let rt = runtime(1);
        let in_block_on = rt.block_on(async {
            tokio::time::sleep(Duration::from_millis(2)).await;
            tokio::runtime::Handle::try_current().is_ok()
        });
        let in_blocking = rt
            .block_on(rt.spawn_blocking(|| tokio::runtime::Handle::try_current().is_ok()))
            .unwrap();
        assert!(in_block_on && in_blocking);
        assert!(
            tokio::runtime::Handle::try_current().is_err(),
            "the context is left when block_on returns"
        );
    });
}

/// The kernel id of the calling thread.
#[cfg(target_os = "linux")]
fn tid() -> String {
    let link = std::fs::read_link("/proc/thread-self").unwrap();
    link.file_name().unwrap().to_string_lossy().into_owned()
}

#[cfg(target_os = "linux")]
fn thread_alive(tid: &str) -> bool {
    std::path::Path::new("/proc/self/task").join(tid).exists()
}

#[cfg(target_os = "linux")]
#[test]
fn dropping_the_runtime_stops_the_tokio_runtime_and_joins_its_threads() {
    with_timeout(DEADLINE, || {
        let rt = runtime(2);
        let dropped = Counter::new();
        let d = dropped.clone();
        let (tids, sleeper) = rt.block_on(async move {
            let worker = rt_spawn_tid().await;
            let bridge = tokio::spawn(async { tid() }).await.unwrap();
            let blocking = tokio::task::spawn_blocking(tid).await.unwrap();
            // Left pending at shutdown: a tokio task and a memkit task in a tokio sleep.
            let guard = DropCount(d);
            tokio::spawn(async move {
                let _guard = guard;
                std::future::pending::<()>().await
            });
            let sleeper = memkit_async::spawn(tokio::time::sleep(Duration::from_secs(3600)));
            (vec![worker, bridge, blocking], sleeper)
        });
        assert!(tids.iter().all(|t| thread_alive(t)));
        drop(rt);
        for t in &tids {
            assert!(!thread_alive(t), "thread {t} outlived the runtime");
        }
        assert_eq!(dropped.get(), 1, "the pending tokio task was dropped");
        let res = futures::executor::block_on(sleeper);
        assert!(res.unwrap_err().is_cancelled());
    });
}

#[cfg(target_os = "linux")]
async fn rt_spawn_tid() -> String {
    memkit_async::spawn(async { tid() }).await.unwrap()
}

#[test]
fn dropping_the_runtime_waits_for_a_blocking_closure_that_uses_tokio() {
    with_timeout(DEADLINE, || {
        let rt = runtime(1);
        let started = Flag::new();
        let outcome = Arc::new(Mutex::new(None));
        let (s, o) = (started.clone(), outcome.clone());
        rt.spawn_blocking(move || {
            s.set();
            let slept = std::panic::catch_unwind(|| {
                tokio::runtime::Handle::current()
                    .block_on(tokio::time::sleep(Duration::from_millis(300)))
            });
            *o.lock().unwrap() = Some(slept.map_err(|p| panic_message(&*p)));
        });
        wait_until("the blocking closure runs", || started.get());
        // Waits for the running closure, whose tokio timer keeps working until it returns.
        drop(rt);
        assert_eq!(*outcome.lock().unwrap(), Some(Ok(())));
    });
}

#[test]
fn shutdown_timeout_bounds_the_wait_for_tokio_blocking_work() {
    with_timeout(DEADLINE, || {
        let rt = runtime(1);
        let (tx, rx) = std::sync::mpsc::channel::<()>();
        let started = Flag::new();
        let s = started.clone();
        rt.spawn(async move {
            let _ = tokio::task::spawn_blocking(move || {
                s.set();
                let _ = rx.recv_timeout(DEADLINE);
            })
            .await;
        });
        wait_until("the blocking closure runs", || started.get());
        let start = Instant::now();
        rt.shutdown_timeout(Duration::from_millis(50));
        let took = start.elapsed();
        tx.send(()).unwrap(); // lets the detached closure end
        assert!(
            took < Duration::from_secs(2),
            "shutdown_timeout(50 ms) took {took:?}"
        );
    });
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn frames_belong_to_a_wrapped_tokio_task_wherever_it_runs() {
    use memkit_async::{MkAsyncFrameAlloc, MkAsyncFrameConfig};
    let alloc =
        MkAsyncFrameAlloc::new(MkAsyncFrameConfig::new(1 << 20).backpressure(MkBackpressure::Fail));
    let handles: Vec<_> = (0..16u64)
        .map(|t| {
            let alloc = alloc.clone();
            spawn_with_budget(8 * KIB, async move {
                let frame = alloc.begin_frame().await.unwrap();
                let mut sum = 0;
                for i in 0..16u64 {
                    // Each task allocates in its own frame, even on another tokio worker.
                    sum += *alloc.alloc_with(t * 100 + i).await.unwrap();
                    tokio::task::yield_now().await;
                }
                drop(frame);
                sum
            })
        })
        .collect();
    let all = async {
        for (t, h) in handles.into_iter().enumerate() {
            assert_eq!(h.await.unwrap(), (0..16).map(|i| t as u64 * 100 + i).sum());
        }
    };
    tokio::time::timeout(DEADLINE, all)
        .await
        .expect("the wrapped tasks finished");
    assert_eq!(alloc.used(), 0);
    assert_eq!(alloc.frame(), 16);
}

#[test]
fn memkit_tcp_streams_speak_tokio_io() {
    const LEN: usize = 256 * KIB;
    with_timeout(DEADLINE, || {
        let rt = runtime_with_limit(2, 1 << 20);
        let echoed = rt.block_on(async {
            let listener = memkit_async::net::TcpListener::bind("127.0.0.1:0")
                .await
                .unwrap();
            let addr = listener.local_addr().unwrap();
            let server = memkit_async::spawn(async move {
                let (conn, _) = listener.accept().await.unwrap();
                let (mut rd, mut wr) = conn.into_split();
                // tokio's copy over memkit's halves, then tokio's shutdown (a half-close).
                let n = tokio::io::copy(&mut rd, &mut wr).await.unwrap();
                wr.shutdown().await.unwrap();
                n
            });
            let data: Vec<u8> = (0..LEN).map(|i| (i * 13) as u8).collect();
            let conn = memkit_async::net::TcpStream::connect(addr).await.unwrap();
            let (rd, wr) = conn.into_split();
            let unchanged = comes_back_unchanged(rd, wr, data).await;
            (server.await.unwrap(), unchanged)
        });
        assert_eq!(echoed, (LEN as u64, true));
    });
}
