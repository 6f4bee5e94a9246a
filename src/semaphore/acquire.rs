//! The futures of `MkAsyncSemaphore::acquire*`.

use super::{MkAsyncSemaphore, MkOwnedSemaphorePermit, MkSemaphoreError, MkSemaphorePermit};
use memkit_async_runtime::wait_list::WaitKey;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{ready, Context, Poll};

/// One request for `n` permits: tries the atomic word, else queues.
struct Request {
    n: usize,
    /// The wait-list slot this request owns while queued.
    waiter: Option<WaitKey>,
    done: bool,
}

impl Request {
    fn new(n: usize) -> Request {
        Request {
            n,
            waiter: None,
            done: false,
        }
    }

    fn poll(
        &mut self,
        sem: &MkAsyncSemaphore,
        cx: &mut Context<'_>,
    ) -> Poll<Result<(), MkSemaphoreError>> {
        memkit_async_runtime::task::coop::poll_budgeted(cx, |cx| {
            assert!(
                !self.done,
                "semaphore acquire future polled after it completed"
            );
            let out = match self.waiter {
                Some(key) => ready!(sem.waiters.poll(key, cx)),
                None => match sem.try_take(self.n) {
                    Err(MkSemaphoreError::NoPermits { .. }) => {
                        match sem.waiters.enqueue(sem, self.n, cx.waker()) {
                            Ok(Some(key)) => {
                                self.waiter = Some(key);
                                return Poll::Pending;
                            }
                            Ok(None) => Ok(()),
                            Err(e) => Err(e),
                        }
                    }
                    other => other,
                },
            };
            self.waiter = None;
            self.done = true;
            Poll::Ready(out)
        })
    }

    fn cancel(&mut self, sem: &MkAsyncSemaphore) {
        if let Some(key) = self.waiter.take() {
            sem.waiters.cancel(sem, key);
        }
    }
}

/// The future of [`MkAsyncSemaphore::acquire`] and
/// [`acquire_many`](MkAsyncSemaphore::acquire_many). Dropping it withdraws the request and
/// passes on permits it had been given.
#[must_use = "futures do nothing unless polled"]
pub struct MkSemaphoreAcquire<'a> {
    sem: &'a MkAsyncSemaphore,
    req: Request,
}

impl<'a> MkSemaphoreAcquire<'a> {
    pub(super) fn new(sem: &'a MkAsyncSemaphore, n: usize) -> Self {
        MkSemaphoreAcquire {
            sem,
            req: Request::new(n),
        }
    }
}

impl<'a> Future for MkSemaphoreAcquire<'a> {
    type Output = Result<MkSemaphorePermit<'a>, MkSemaphoreError>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = &mut *self;
        let sem = this.sem;
        this.req.poll(sem, cx).map_ok(|()| MkSemaphorePermit {
            sem,
            permits: this.req.n,
        })
    }
}

impl Drop for MkSemaphoreAcquire<'_> {
    fn drop(&mut self) {
        self.req.cancel(self.sem);
    }
}

/// The future of [`MkAsyncSemaphore::acquire_owned`] and
/// [`acquire_many_owned`](MkAsyncSemaphore::acquire_many_owned). Dropping it withdraws the
/// request and passes on permits it had been given.
#[must_use = "futures do nothing unless polled"]
pub struct MkSemaphoreAcquireOwned {
    sem: Arc<MkAsyncSemaphore>,
    req: Request,
}

impl MkSemaphoreAcquireOwned {
    pub(super) fn new(sem: Arc<MkAsyncSemaphore>, n: usize) -> Self {
        MkSemaphoreAcquireOwned {
            sem,
            req: Request::new(n),
        }
    }
}

impl Future for MkSemaphoreAcquireOwned {
    type Output = Result<MkOwnedSemaphorePermit, MkSemaphoreError>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = &mut *self;
        this.req
            .poll(&this.sem, cx)
            .map_ok(|()| MkOwnedSemaphorePermit {
                sem: this.sem.clone(),
                permits: this.req.n,
            })
    }
}

impl Drop for MkSemaphoreAcquireOwned {
    fn drop(&mut self) {
        self.req.cancel(&self.sem);
    }
}

impl fmt::Debug for MkSemaphoreAcquire<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MkSemaphoreAcquire")
            .field("permits", &self.req.n)
            .field("queued", &self.req.waiter.is_some())
            .finish_non_exhaustive()
    }
}

impl fmt::Debug for MkSemaphoreAcquireOwned {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MkSemaphoreAcquireOwned")
            .field("permits", &self.req.n)
            .field("queued", &self.req.waiter.is_some())
            .finish_non_exhaustive()
    }
}
