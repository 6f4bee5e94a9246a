//! The tokio bridge (feature `tokio`): a background tokio runtime whose context every thread of
//! a memkit runtime enters, so tokio-based code (`tokio::net`, `tokio::time`,
//! `tokio::task::spawn_blocking`, libraries built on them) runs inside memkit tasks.
//!
//! The bridge is a current-thread tokio runtime with its I/O and time drivers, driven by one
//! thread of its own (`memkit-tokio`), asleep in the I/O driver while nothing is ready. Worker
//! threads and blocking threads enter its context for their whole life, `block_on` for its
//! call. A tokio resource used by a memkit task registers with this reactor; readiness wakes
//! the memkit task through its waker, and the task keeps running on the memkit workers.
//! `tokio::spawn` inside memkit tasks runs its task on the bridge thread.
//!
//! Cost, paid only with the feature: per runtime, one thread parked in `epoll_wait` (no CPU
//! while idle), one tokio runtime (an I/O driver with its poll instance, a timer wheel, a
//! blocking pool started on demand), and one context entry per thread; per poll, nothing.
//! Without the feature the bridge is an empty type and every call on it compiles away.
//!
//! The trap, made visible: a task spawned with `tokio::spawn` runs on the bridge's one thread,
//! not on memkit's workers. [`RuntimeMetrics::num_bridge_tasks`](crate::runtime::RuntimeMetrics)
//! counts them, and the first time the bridge thread finds 64 of them alive as it
//! goes idle or wakes up, a `tracing` warning names the memkit function to use instead.
//!
//! Shutdown: once the memkit tasks are gone and the memkit blocking closures that were running
//! have returned (they may use tokio-based code to the end), the bridge thread is told to stop,
//! drops the tokio runtime (tasks spawned on it are dropped, its blocking threads waited for
//! within what is left of the shutdown's time limit), and is joined.

#[cfg(feature = "tokio")]
pub(crate) use bridge::TokioBridge;
#[cfg(not(feature = "tokio"))]
pub(crate) use disabled::TokioBridge;

#[cfg(feature = "tokio")]
mod bridge {
    use crate::runtime::Handle;
    use crate::sync::{lock_std as lock, wait_while_for};
    use std::future::Future;
    use std::io;
    use std::pin::Pin;
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::{Arc, Condvar, Mutex, OnceLock};
    use std::task::{Context, Poll, Waker};
    use std::thread;
    use std::time::Duration;

    /// Name of the thread that drives the tokio runtime, and prefix of its blocking threads.
    const THREAD_NAME: &str = "memkit-tokio";

    /// Tasks alive on the bridge thread from which the runtime warns, once, that work piles up
    /// there.
    pub(crate) const PILE_UP: usize = 64;

    pub(crate) struct TokioBridge {
        handle: tokio::runtime::Handle,
        driver: Mutex<Option<thread::JoinHandle<()>>>,
        stop: Arc<Stop>,
    }

    /// Keeps the bridge's tokio context entered until dropped.
    pub(crate) struct Entered<'a> {
        _guard: tokio::runtime::EnterGuard<'a>,
    }

    /// The stop request and the driver thread's exit, shared with that thread.
    #[derive(Default)]
    struct Stop {
        state: Mutex<StopState>,
        exited: Condvar,
    }

    #[derive(Default)]
    struct StopState {
        /// `Some(limit)` once stopping: how long the tokio runtime may wait for its blocking
        /// threads (`None`: as long as they run).
        requested: Option<Option<Duration>>,
        waker: Option<Waker>,
        exited: bool,
    }

    impl TokioBridge {
        /// Builds the tokio runtime and starts the thread that drives it.
        pub(crate) fn start() -> io::Result<TokioBridge> {
            let watch = Arc::new(PileUpWatch::default());
            let (on_park, on_unpark) = (watch.clone(), watch.clone());
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .thread_name(format!("{THREAD_NAME}-blk"))
                .on_thread_park(move || on_park.check())
                .on_thread_unpark(move || on_unpark.check())
                .build()?;
            let handle = runtime.handle().clone();
            let _ = watch.handle.set(handle.clone());
            let stop = Arc::new(Stop::default());
            let thread_stop = stop.clone();
            let driver = thread::Builder::new()
                .name(THREAD_NAME.into())
                .spawn(move || drive(runtime, &thread_stop))?;
            Ok(TokioBridge {
                handle,
                driver: Mutex::new(Some(driver)),
                stop,
            })
        }

        /// Tasks alive on the bridge's tokio runtime (spawned with `tokio::spawn`).
        pub(crate) fn num_alive_tasks(&self) -> usize {
            self.handle.metrics().num_alive_tasks()
        }

        /// Enters the tokio context on this thread until the guard drops.
        pub(crate) fn enter(&self) -> Entered<'_> {
            Entered {
                _guard: self.handle.enter(),
            }
        }

        /// Stops the tokio runtime and joins its thread, waiting at most `timeout` (forever if
        /// `None`); a thread still busy after that is left to finish on its own.
        pub(crate) fn shutdown(&self, timeout: Option<Duration>) {
            let Some(driver) = lock(&self.driver).take() else {
                return;
            };
            let waker = {
                let mut state = lock(&self.stop.state);
                state.requested = Some(timeout);
                state.waker.take()
            };
            if let Some(waker) = waker {
                crate::unwind::wake(waker);
            }
            if driver.thread().id() == thread::current().id() {
                // Shut down from a tokio task on the bridge thread: it stops once that task's
                // poll returns, and cannot wait for itself.
                return;
            }
            let state = lock(&self.stop.state);
            let (state, timed_out) =
                wait_while_for(&self.stop.exited, state, timeout, |s| !s.exited);
            drop(state);
            if !timed_out {
                let _ = driver.join();
            }
        }
    }

    impl Drop for TokioBridge {
        fn drop(&mut self) {
            // The runtime's shutdown already stopped it; this covers a bridge never started
            // into a runtime (a failed build), without waiting on blocking threads.
            self.shutdown(Some(Duration::ZERO));
        }
    }

    /// Warns once when tasks pile up on the bridge thread. Checked by that thread as it parks
    /// and unparks: one atomic load each time, no timer of its own.
    #[derive(Default)]
    struct PileUpWatch {
        handle: OnceLock<tokio::runtime::Handle>,
        warned: AtomicBool,
    }

    impl PileUpWatch {
        fn check(&self) {
            if self.warned.load(Ordering::Relaxed) {
                return;
            }
            let Some(handle) = self.handle.get() else {
                return;
            };
            let alive = handle.metrics().num_alive_tasks();
            if alive >= PILE_UP && !self.warned.swap(true, Ordering::Relaxed) {
                tracing::warn!(
                    alive,
                    "{alive} tasks are alive on the memkit-tokio bridge thread: tasks spawned \
                     with `tokio::spawn` inside memkit tasks all run on that one thread, not on \
                     memkit's workers, and without memkit budgets. Spawn them with \
                     `memkit_async::spawn` instead; for hyper or axum servers use \
                     `memkit_async::http::serve` (feature `hyper`) instead of `axum::serve`, and \
                     `memkit_async::http::MkExecutor` instead of hyper-util's `TokioExecutor`. \
                     `RuntimeMetrics::num_bridge_tasks` counts them."
                );
            }
        }
    }

    /// The driver thread: runs the tokio runtime until asked to stop, then drops it.
    fn drive(runtime: tokio::runtime::Runtime, stop: &Stop) {
        // Marks the exit even if the runtime's shutdown panics, so nobody waits forever.
        struct Exit<'a>(&'a Stop);
        impl Drop for Exit<'_> {
            fn drop(&mut self) {
                lock(&self.0.state).exited = true;
                self.0.exited.notify_all();
            }
        }
        let _exit = Exit(stop);
        runtime.block_on(Stopped(stop));
        let requested = lock(&stop.state).requested;
        match requested {
            Some(Some(limit)) => runtime.shutdown_timeout(limit),
            _ => drop(runtime),
        }
    }

    /// Resolves once a stop is requested.
    struct Stopped<'a>(&'a Stop);

    impl Future for Stopped<'_> {
        type Output = ();

        fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
            let mut state = lock(&self.0.state);
            if state.requested.is_some() {
                return Poll::Ready(());
            }
            match &state.waker {
                Some(w) if w.will_wake(cx.waker()) => {}
                _ => state.waker = Some(cx.waker().clone()),
            }
            Poll::Pending
        }
    }

    impl Handle {
        /// The handle of the background tokio runtime that lets tokio-based code run inside
        /// this runtime's tasks (feature `tokio`). Its context is already entered on the
        /// runtime's threads and in `block_on`; use this handle to enter it elsewhere.
        ///
        /// ```
        /// let rt = memkit_async_runtime::Runtime::new().unwrap();
        /// let tokio = rt.handle().tokio_handle().clone();
        /// std::thread::spawn(move || {
        ///     let _ctx = tokio.enter(); // a thread of our own can now create tokio resources
        ///     assert!(tokio::runtime::Handle::try_current().is_ok());
        /// })
        /// .join()
        /// .unwrap();
        /// ```
        pub fn tokio_handle(&self) -> &tokio::runtime::Handle {
            &self.bridge().handle
        }
    }
}

#[cfg(not(feature = "tokio"))]
mod disabled {
    use std::io;
    use std::marker::PhantomData;
    use std::time::Duration;

    /// Without the feature there is no tokio runtime to bridge to.
    pub(crate) struct TokioBridge;

    pub(crate) struct Entered<'a>(PhantomData<&'a ()>);

    impl TokioBridge {
        pub(crate) fn start() -> io::Result<TokioBridge> {
            Ok(TokioBridge)
        }

        #[inline(always)]
        pub(crate) fn enter(&self) -> Entered<'_> {
            Entered(PhantomData)
        }

        pub(crate) fn shutdown(&self, _timeout: Option<Duration>) {}
    }
}
