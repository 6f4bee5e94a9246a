//! Wakers that panic when the runtime fires them, and socket waits cancelled every way.

use crate::common::{drop_counting_waker, Counter};
use crate::counted::{counted, maybe_panic, note_join, Out};
use crate::counters::{bump, C};
use crate::env::Env;
use crate::rng::Rng;
use crate::state::fail;
use crate::timer::{bounded, sleep};
use crate::INJECTED;
use crate::WAIT_LIMIT;
use futures::future::{select, Either};
use memkit_async::net::UdpSocket;
use std::future::Future;
use std::pin::pin;
use std::sync::atomic::AtomicBool;
use std::sync::atomic::Ordering::SeqCst;
use std::sync::Arc;
use std::task::{Context, Wake, Waker};
use std::time::{Duration, Instant};

/// A waker that panics when woken (an injected fault: the thread that fires it must go on).
pub struct PanickingWaker(AtomicBool);

impl Wake for PanickingWaker {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        self.0.store(true, SeqCst);
        bump(C::FaultWakerPanic);
        panic!("{INJECTED} (a waker)");
    }
}

pub fn panicking_waker() -> (Waker, Arc<PanickingWaker>) {
    let fired = Arc::new(PanickingWaker(AtomicBool::new(false)));
    (Waker::from(fired.clone()), fired)
}

/// Whether `e` says that the runtime's reactor shut down while the operation ran: an injected
/// mid-flight `shutdown_background` lets a poll that is under way finish after the driver is
/// gone, and that poll then gets this error instead of hanging.
pub fn shut_down_under_us(e: &std::io::Error) -> bool {
    e.to_string()
        .contains("runtime that drove this I/O resource has shut down")
}

pub async fn bind_udp(what: &str) -> Option<UdpSocket> {
    match UdpSocket::bind("127.0.0.1:0").await {
        Ok(s) => Some(s),
        Err(e) if shut_down_under_us(&e) => None,
        Err(e) => {
            fail(format!(
                "{what}: binding a UDP socket on 127.0.0.1 failed: {e}"
            ));
            None
        }
    }
}

/// Waits (on the soak's own timer) until `waker` has fired; `false` with a failure after
/// [`WAIT_LIMIT`].
pub async fn fired(waker: &PanickingWaker, what: &str) -> bool {
    let deadline = Instant::now() + WAIT_LIMIT;
    while !waker.0.load(SeqCst) {
        if Instant::now() > deadline {
            fail(format!("stuck: {what} never fired its waker"));
            return false;
        }
        sleep(Duration::from_millis(1)).await;
    }
    true
}

/// A runtime timer, a socket wait, or (on a foreign thread) a fallback timer, each polled with
/// a waker that panics; the thread that fires it must keep serving everything else.
pub async fn waker_panics(env: Arc<Env>, mut rng: Rng) -> Out {
    let (waker, probe) = panicking_waker();
    match rng.below(3) {
        0 => {
            // Fired by whichever worker turns the timers, or cancelled by the drop, or drained
            // by a shutdown.
            let mut timer = pin!(memkit_async::time::sleep(rng.micros(3000)));
            if timer
                .as_mut()
                .poll(&mut Context::from_waker(&waker))
                .is_pending()
            {
                sleep(rng.micros(4000)).await;
            }
        }
        1 => {
            let (Some(sock), Some(peer)) = (
                bind_udp("a panicking socket waker").await,
                bind_udp("a panicking socket waker").await,
            ) else {
                return Out::Unit;
            };
            let addr = sock.local_addr().expect("a bound socket has an address");
            let mut buf = [0u8; 8];
            {
                let mut recv = pin!(sock.recv_from(&mut buf));
                if recv
                    .as_mut()
                    .poll(&mut Context::from_waker(&waker))
                    .is_ready()
                {
                    fail("a socket received a datagram nobody sent".into());
                    return Out::Unit;
                }
                if let Err(e) = peer.send_to(b"wake", addr).await {
                    if !shut_down_under_us(&e) {
                        fail(format!("send_to on loopback failed: {e}"));
                    }
                    return Out::Unit;
                }
                // The reactor's dispatch (on some worker) fires the panicking waker.
                if !fired(&probe, "a socket wait").await {
                    return Out::Unit;
                }
            }
            match bounded(
                WAIT_LIMIT,
                "a datagram after a panicking waker",
                sock.recv_from(&mut buf),
            )
            .await
            {
                Some(Ok((4, _))) if &buf[..4] == b"wake" => bump(C::Datagrams),
                Some(Err(e)) if shut_down_under_us(&e) => {}
                Some(other) => fail(format!("a datagram after a panicking waker: {other:?}")),
                None => {}
            }
        }
        _ => {
            let delay = rng.micros(2000);
            env.thread(move || {
                // Outside any runtime: the process-wide fallback timer thread fires it.
                let (waker, probe) = panicking_waker();
                let mut timer = Box::pin(memkit_async::time::sleep(delay));
                if timer
                    .as_mut()
                    .poll(&mut Context::from_waker(&waker))
                    .is_pending()
                {
                    futures::executor::block_on(fired(&probe, "a fallback timer"));
                }
                // The fallback thread keeps firing every later timer.
                futures::executor::block_on(bounded(
                    WAIT_LIMIT,
                    "a fallback sleep after a panicking waker",
                    memkit_async::time::sleep(Duration::from_millis(1)),
                ));
            });
        }
    }
    Out::Unit
}

/// Socket waits cancelled every way: polled once and dropped (each must drop its waker at
/// once), cut off by a timeout, abandoned in a `select`, aborted with their task; the socket
/// then still receives every datagram, each once.
pub async fn socket_waits(mut rng: Rng) -> Out {
    let (Some(sock), Some(peer)) = (
        bind_udp("cancelled socket waits").await,
        bind_udp("cancelled socket waits").await,
    ) else {
        return Out::Unit;
    };
    let sock = Arc::new(sock);
    let addr = sock.local_addr().expect("a bound socket has an address");
    let mut buf = [0u8; 8];
    let dropped = Counter::new();
    let n = rng.range(1, 64);
    for _ in 0..n {
        let waker = drop_counting_waker(&dropped);
        let mut recv = pin!(sock.recv_from(&mut buf));
        if recv
            .as_mut()
            .poll(&mut Context::from_waker(&waker))
            .is_ready()
        {
            fail("a socket received a datagram nobody sent".into());
        }
        bump(C::SocketAbandoned);
    }
    if dropped.get() != n {
        fail(format!(
            "{n} socket waits polled once and dropped still hold {} wakers",
            n - dropped.get()
        ));
    }
    // Waiters in other tasks, aborted or left to their timeouts.
    let mut kids = Vec::new();
    for _ in 0..rng.range(0, 4) {
        let (s, limit) = (sock.clone(), rng.micros(3000));
        kids.push(memkit_async::spawn(counted(async move {
            let mut buf = [0u8; 8];
            match memkit_async::time::timeout(limit, s.recv_from(&mut buf)).await {
                Err(_) => bump(C::SocketTimedOut),
                Ok(Err(e)) if shut_down_under_us(&e) => {}
                Ok(res) => fail(format!("a datagram nobody sent reached a waiter: {res:?}")),
            }
            Out::Unit
        })));
    }
    for kid in &kids {
        if rng.one_in(2) {
            kid.abort();
            bump(C::FaultAbort);
        }
    }
    for _ in 0..rng.range(0, 3) {
        if rng.one_in(2) {
            match memkit_async::time::timeout(rng.micros(2000), sock.recv_from(&mut buf)).await {
                Err(_) => bump(C::SocketTimedOut),
                Ok(Err(e)) if shut_down_under_us(&e) => {}
                Ok(res) => fail(format!("a datagram nobody sent arrived: {res:?}")),
            }
        } else {
            let recv = pin!(sock.recv_from(&mut buf));
            match select(recv, sleep(rng.micros(2000))).await {
                Either::Right(_) => bump(C::SocketTimedOut),
                Either::Left((Err(e), _)) if shut_down_under_us(&e) => {}
                Either::Left((res, _)) => fail(format!("a datagram nobody sent arrived: {res:?}")),
            }
        }
    }
    for kid in kids {
        if let Some(res) = bounded(WAIT_LIMIT, "a socket waiter", kid).await {
            note_join(res, "socket waiter");
        }
    }
    maybe_panic(&mut rng, 30, "socket waits");
    // Every datagram arrives, once, in a wait that nobody cancels.
    let k = rng.range(1, 8);
    for i in 0..k as u64 {
        if let Err(e) = peer.send_to(&i.to_le_bytes(), addr).await {
            if !shut_down_under_us(&e) {
                fail(format!("send_to on loopback failed: {e}"));
            }
            return Out::Unit;
        }
    }
    let mut seen = vec![false; k];
    for _ in 0..k {
        match bounded(
            WAIT_LIMIT,
            "a datagram after cancelled waits",
            sock.recv_from(&mut buf),
        )
        .await
        {
            Some(Ok((8, _))) => {
                let i = u64::from_le_bytes(buf) as usize;
                if i >= k || std::mem::replace(&mut seen[i], true) {
                    fail(format!(
                        "datagram {i} of {k} arrived twice or was never sent"
                    ));
                }
                bump(C::Datagrams);
            }
            Some(Err(e)) if shut_down_under_us(&e) => return Out::Unit,
            Some(other) => fail(format!("a datagram after cancelled waits: {other:?}")),
            None => return Out::Unit,
        }
    }
    Out::Unit
}
