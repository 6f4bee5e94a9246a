//! Signals raised on the test process itself. Each test listens for a signal of its own
//! (tests run in parallel and a delivery reaches every listener in the process), and always
//! listens before raising, so no signal's default action runs.

use super::unix::{signal, Signal, SignalKind};
use super::*;
use crate::time::{sleep, timeout};
use std::future::{poll_fn, Future};
use std::pin::pin;
use std::task::Poll;
use std::time::Duration;

/// A bound on waits that must end: exceeding it means a lost delivery, not a slow machine.
const LIMIT: Duration = Duration::from_secs(10);

fn raise(kind: SignalKind) {
    signal_hook::low_level::raise(kind.as_raw_value()).unwrap();
}

/// Polls `fut` once; whether it is still pending.
async fn pending_after_one_poll<F: Future>(fut: std::pin::Pin<&mut F>) -> bool {
    let mut fut = fut;
    poll_fn(|cx| Poll::Ready(fut.as_mut().poll(cx).is_pending())).await
}

/// Whether `sig` has no delivery waiting (one poll of `recv`).
async fn nothing_waiting(sig: &mut Signal) -> bool {
    pending_after_one_poll(pin!(sig.recv())).await
}

async fn delivered(sig: &mut Signal) -> Option<()> {
    timeout(LIMIT, sig.recv())
        .await
        .expect("the delivery reaches the listener")
}

#[test]
fn ctrl_c_completes_on_sigint_and_not_before() {
    let rt = crate::Runtime::new().unwrap();
    rt.block_on(async {
        let mut waiting = pin!(ctrl_c());
        // The first poll installs the handler; nothing completes it without a signal.
        assert!(pending_after_one_poll(waiting.as_mut()).await);
        sleep(Duration::from_millis(20)).await;
        assert!(pending_after_one_poll(waiting.as_mut()).await);
        // The process survives the signal: the future receives it.
        raise(SignalKind::interrupt());
        let res = timeout(LIMIT, waiting).await;
        assert!(matches!(res, Ok(Ok(()))), "{res:?}");
    });
}

#[test]
fn every_signal_for_a_kind_receives_each_delivery_and_bursts_coalesce() {
    let rt = crate::Runtime::new().unwrap();
    rt.block_on(async {
        let kind = SignalKind::user_defined1();
        let mut a = signal(kind).unwrap();
        let mut b = signal(kind).unwrap();
        assert!(nothing_waiting(&mut a).await && nothing_waiting(&mut b).await);
        raise(kind);
        assert_eq!(delivered(&mut a).await, Some(()));
        let polled = timeout(LIMIT, poll_fn(|cx| b.poll_recv(cx))).await;
        assert_eq!(polled, Ok(Some(())), "the poll API receives it too");
        assert!(nothing_waiting(&mut a).await && nothing_waiting(&mut b).await);
        // Two deliveries before anyone looks are one `recv`, for each listener.
        raise(kind);
        raise(kind);
        for sig in [&mut a, &mut b] {
            assert_eq!(delivered(sig).await, Some(()));
            assert!(nothing_waiting(sig).await, "the burst was consumed at once");
        }
    });
}

#[test]
fn recv_waits_for_a_delivery_from_another_thread_and_an_abandoned_recv_loses_none() {
    let rt = crate::Runtime::new().unwrap();
    rt.block_on(async {
        let kind = SignalKind::user_defined2();
        let mut sig = signal(kind).unwrap();
        {
            let mut waiting = pin!(sig.recv());
            assert!(pending_after_one_poll(waiting.as_mut()).await);
            sleep(Duration::from_millis(20)).await;
            assert!(pending_after_one_poll(waiting.as_mut()).await);
            std::thread::spawn(move || raise(kind)).join().unwrap();
            assert_eq!(timeout(LIMIT, waiting).await, Ok(Some(())));
        }
        // A recv dropped mid-wait: the delivery that follows goes to the next one.
        assert!(nothing_waiting(&mut sig).await);
        std::thread::spawn(move || raise(kind)).join().unwrap();
        assert_eq!(delivered(&mut sig).await, Some(()));
    });
}

#[test]
fn a_dropped_signal_stops_listening_and_the_process_keeps_ignoring_the_signal() {
    let rt = crate::Runtime::new().unwrap();
    rt.block_on(async {
        let kind = SignalKind::hangup();
        let dropped = signal(kind).unwrap();
        let mut kept = signal(kind).unwrap();
        drop(dropped);
        raise(kind);
        assert_eq!(delivered(&mut kept).await, Some(()));
        drop(kept);
        // Nobody listens: the delivery is ignored, the default action (exit) does not run.
        raise(kind);
        // A listener made afterwards sees only what comes after it.
        let mut late = signal(kind).unwrap();
        assert!(nothing_waiting(&mut late).await);
        raise(kind);
        assert_eq!(delivered(&mut late).await, Some(()));
    });
}

#[test]
fn real_time_signals_are_delivered_through_from_raw() {
    let rt = crate::Runtime::new().unwrap();
    rt.block_on(async {
        let kind = SignalKind::from_raw(libc::SIGRTMIN());
        assert_eq!(kind.as_raw_value(), libc::SIGRTMIN());
        let mut sig = signal(kind).unwrap();
        raise(kind);
        assert_eq!(delivered(&mut sig).await, Some(()));
    });
}

#[test]
fn signals_that_cannot_be_listened_for_are_a_clear_error() {
    let rt = crate::Runtime::new().unwrap();
    rt.block_on(async {
        for signum in [
            libc::SIGKILL,
            libc::SIGSTOP,
            libc::SIGSEGV,
            libc::SIGILL,
            libc::SIGFPE,
            0,
            -1,
        ] {
            let err = signal(SignalKind::from_raw(signum)).unwrap_err();
            assert_eq!(err.kind(), std::io::ErrorKind::InvalidInput, "{signum}");
            let msg = err.to_string();
            assert!(
                msg.contains(&format!("cannot listen for signal {signum}")),
                "{msg}"
            );
        }
        // Not a signal number at all: the kernel refuses it.
        let err = signal(SignalKind::from_raw(100_000)).unwrap_err();
        assert_eq!(err.kind(), std::io::ErrorKind::InvalidInput, "{err}");
    });
}

#[test]
fn signals_need_a_runtime_and_end_with_it() {
    let err = signal(SignalKind::window_change()).unwrap_err();
    assert!(err.to_string().contains("runtime"), "{err}");
    let rt = crate::Runtime::new().unwrap();
    let mut sig = rt
        .block_on(async { signal(SignalKind::window_change()) })
        .unwrap();
    drop(rt);
    // The reactor that delivered it is gone: no delivery can come any more.
    let other = crate::Runtime::new().unwrap();
    assert_eq!(other.block_on(timeout(LIMIT, sig.recv())), Ok(None));
}

#[test]
fn signal_kinds_name_the_usual_signals() {
    let kinds = [
        (SignalKind::alarm(), libc::SIGALRM),
        (SignalKind::child(), libc::SIGCHLD),
        (SignalKind::hangup(), libc::SIGHUP),
        (SignalKind::interrupt(), libc::SIGINT),
        (SignalKind::io(), libc::SIGIO),
        (SignalKind::pipe(), libc::SIGPIPE),
        (SignalKind::quit(), libc::SIGQUIT),
        (SignalKind::terminate(), libc::SIGTERM),
        (SignalKind::user_defined1(), libc::SIGUSR1),
        (SignalKind::user_defined2(), libc::SIGUSR2),
        (SignalKind::window_change(), libc::SIGWINCH),
    ];
    for (kind, signum) in kinds {
        assert_eq!(kind.as_raw_value(), signum);
        assert_eq!(SignalKind::from(signum), kind);
        assert_eq!(std::os::raw::c_int::from(kind), signum);
    }
}
