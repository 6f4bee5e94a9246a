//! Wakers that panic: the threads that fire them (the fallback timer thread, a worker turning
//! timers and I/O, a runtime shutting down) catch the panic and go on, so a faulty waker costs
//! only its own wake-up, never the timers, tasks and sockets the thread serves.

mod common;

use common::*;
use memkit_async::time::{sleep, timeout};
use std::future::Future;
use std::pin::pin;
use std::sync::{Arc, Once};
use std::task::{Context, Wake, Waker};
use std::time::Duration;

const PANIC: &str = "a waker that panics on purpose";

/// Counts its wake-ups, then panics.
struct Panics(Counter);

impl Wake for Panics {
    fn wake(self: Arc<Self>) {
        self.0.inc();
        panic!("{PANIC}");
    }
}

fn panicking_waker() -> (Waker, Counter) {
    let fired = Counter::new();
    (Waker::from(Arc::new(Panics(fired.clone()))), fired)
}

/// Keeps the expected panics quiet; every other panic goes to the default hook.
fn quiet() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        let default = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            if panic_message(info.payload()) != PANIC {
                default(info);
            }
        }));
    });
}

#[test]
fn the_fallback_timer_thread_survives_a_panicking_waker() {
    quiet();
    with_timeout(DEADLINE, || {
        let (waker, fired) = panicking_waker();
        // Outside any runtime: the process-wide fallback thread fires this timer.
        let mut doomed = Box::pin(sleep(Duration::from_millis(2)));
        assert!(doomed
            .as_mut()
            .poll(&mut Context::from_waker(&waker))
            .is_pending());
        wait_until("the panicking waker fired", || fired.get() == 1);
        // The thread still fires every later timer.
        futures::executor::block_on(sleep(Duration::from_millis(2)));
        let elapsed = futures::executor::block_on(timeout(
            Duration::from_millis(2),
            std::future::pending::<()>(),
        ));
        assert!(elapsed.is_err());
        assert_eq!(fired.get(), 1);
    });
}

#[test]
fn a_worker_survives_a_panicking_waker_among_its_timers() {
    quiet();
    with_timeout(DEADLINE, || {
        let rt = runtime(1);
        let (waker, fired) = panicking_waker();
        let f = fired.clone();
        let out = rt
            .block_on(rt.spawn(async move {
                let mut doomed = pin!(sleep(Duration::from_millis(2)));
                assert!(doomed
                    .as_mut()
                    .poll(&mut Context::from_waker(&waker))
                    .is_pending());
                // The only worker parks in the driver and fires both timers.
                while f.get() == 0 {
                    sleep(Duration::from_millis(1)).await;
                }
                7
            }))
            .unwrap();
        assert_eq!((out, fired.get()), (7, 1));
        // The worker goes on running tasks and timers.
        let later = rt.block_on(rt.spawn(async {
            sleep(Duration::from_millis(1)).await;
            8
        }));
        assert_eq!(later.unwrap(), 8);
    });
}

#[cfg(not(miri))] // Miri has no network sockets.
#[test]
fn a_worker_survives_a_panicking_waker_among_its_sockets() {
    use memkit_async::net::UdpSocket;
    quiet();
    with_timeout(DEADLINE, || {
        let rt = runtime(1);
        let (waker, fired) = panicking_waker();
        let f = fired.clone();
        let got = rt
            .block_on(rt.spawn(async move {
                let sock = UdpSocket::bind("127.0.0.1:0").await.unwrap();
                let peer = UdpSocket::bind("127.0.0.1:0").await.unwrap();
                let mut buf = [0u8; 16];
                {
                    let mut doomed = pin!(sock.recv_from(&mut buf));
                    assert!(doomed
                        .as_mut()
                        .poll(&mut Context::from_waker(&waker))
                        .is_pending());
                    peer.send_to(b"wake", sock.local_addr().unwrap())
                        .await
                        .unwrap();
                    // The only worker parks in the reactor and fires the panicking waker.
                    while f.get() == 0 {
                        sleep(Duration::from_millis(1)).await;
                    }
                }
                let (n, _) = sock.recv_from(&mut buf).await.unwrap();
                buf[..n].to_vec()
            }))
            .unwrap();
        assert_eq!((&got[..], fired.get()), (&b"wake"[..], 1));
        assert_eq!(rt.block_on(rt.spawn(async { 9 })).unwrap(), 9);
    });
}

#[cfg(not(miri))] // Miri has no network sockets.
#[test]
fn a_runtime_shutting_down_survives_panicking_wakers_on_its_timers_and_sockets() {
    use memkit_async::net::UdpSocket;
    quiet();
    with_timeout(DEADLINE, || {
        let rt = runtime(1);
        let (waker, fired) = panicking_waker();
        let mut cx = Context::from_waker(&waker);
        let sock = rt.block_on(UdpSocket::bind("127.0.0.1:0")).unwrap();
        let mut buf = [0u8; 16];
        let mut recv = pin!(sock.recv_from(&mut buf));
        let mut timer = pin!(sleep(Duration::from_secs(3600)));
        {
            // Registered on the runtime's own timer wheel.
            let _enter = rt.enter();
            assert!(timer.as_mut().poll(&mut cx).is_pending());
        }
        assert!(recv.as_mut().poll(&mut cx).is_pending());
        // The shutdown ends both waits, firing both wakers, and completes.
        drop(rt);
        assert_eq!(fired.get(), 2);
        let ended = recv.as_mut().poll(&mut Context::from_waker(Waker::noop()));
        let err = match ended {
            std::task::Poll::Ready(Err(e)) => e,
            other => panic!("the wait ends with an error, got {other:?}"),
        };
        assert!(err.to_string().contains("shut down"), "{err}");
    });
}
