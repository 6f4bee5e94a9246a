//! `Watch`: the graceful-shutdown state shared by a server and its connections.
//!
//! Each connection joins once (its task's waker is stored once, not per poll) and leaves when
//! it ends. Firing wakes every connection; the server then waits until none is left.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll, Waker};

#[derive(Clone, Default)]
pub(crate) struct Watch {
    inner: Arc<Inner>,
}

#[derive(Default)]
struct Inner {
    fired: AtomicBool,
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    /// Connection wakers by slot; `None` in free slots or once woken by a fire.
    members: Vec<Option<Waker>>,
    free: Vec<usize>,
    live: usize,
    /// The server waiting for the connections to end.
    server: Option<Waker>,
}

impl Inner {
    fn state(&self) -> MutexGuard<'_, State> {
        // Nothing runs user code while holding it; a poisoned state is still consistent.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl Watch {
    pub(crate) fn new() -> Watch {
        Watch::default()
    }

    /// A connection's membership, counted as live from now until it is dropped.
    pub(crate) fn member(&self) -> Member {
        let mut state = self.inner.state();
        state.live += 1;
        let slot = match state.free.pop() {
            Some(slot) => slot,
            None => {
                state.members.push(None);
                state.members.len() - 1
            }
        };
        Member {
            watch: self.clone(),
            slot,
            registered: false,
        }
    }

    /// Asks every connection to shut down gracefully.
    pub(crate) fn fire(&self) {
        self.inner.fired.store(true, Ordering::SeqCst);
        let wakers: Vec<Waker> = {
            let mut state = self.inner.state();
            state.members.iter_mut().filter_map(Option::take).collect()
        };
        wakers.into_iter().for_each(Waker::wake);
    }

    /// Ready once no connection is live.
    pub(crate) fn poll_drained(&self, cx: &mut Context<'_>) -> Poll<()> {
        let mut state = self.inner.state();
        if state.live == 0 {
            return Poll::Ready(());
        }
        let old = state.server.replace(cx.waker().clone());
        drop(state);
        drop(old);
        Poll::Pending
    }
}

/// One connection's place in a [`Watch`].
pub(crate) struct Member {
    watch: Watch,
    slot: usize,
    registered: bool,
}

impl Member {
    /// Whether shutdown was requested; otherwise makes sure the task is woken when it is. The
    /// connection's task waker never changes, so it is stored on the first call only.
    pub(crate) fn poll_fired(&mut self, cx: &mut Context<'_>) -> bool {
        let inner = &self.watch.inner;
        if inner.fired.load(Ordering::SeqCst) {
            return true;
        }
        if !self.registered {
            let mut state = inner.state();
            state.members[self.slot] = Some(cx.waker().clone());
            self.registered = true;
            drop(state);
            // A fire between the first look and the registration took no waker from us.
            return inner.fired.load(Ordering::SeqCst);
        }
        false
    }
}

impl Drop for Member {
    fn drop(&mut self) {
        let (waker, server) = {
            let mut state = self.watch.inner.state();
            let waker = state.members[self.slot].take();
            state.free.push(self.slot);
            state.live -= 1;
            let server = if state.live == 0 {
                state.server.take()
            } else {
                None
            };
            (waker, server)
        };
        drop(waker);
        if let Some(server) = server {
            server.wake();
        }
    }
}
