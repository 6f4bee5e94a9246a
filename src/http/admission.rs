//! Request admission: a request's body is reserved on the connection's budget before anything
//! reads it, and a request that does not fit is answered with a clean `503`.
//!
//! The reservation is the body's declared length (`Content-Length`), or a configured amount
//! for a body sent without one (chunked, HTTP/2 without the header). It is taken with
//! `MkBudget::try_acquire` on the connection's budget, which is charged into the runtime's
//! memory limit, so a request is refused when either is full. It is held until the response
//! has been sent: the handler's copy of the body lives about that long.
//!
//! A refused request's body is read and dropped chunk by chunk (up to a configured amount)
//! before the `503` goes out: closing a socket with unread data makes the kernel send a reset,
//! which would destroy the response on its way. Reading it costs time, not memory. A client
//! that asked `Expect: 100-continue` has sent no body yet and gets its answer at once.
//!
//! The reservation alone bounds memory today. When heap allocations made while a connection's
//! task is polled are charged to its budget as well, the handler's copy of the body is counted
//! by both while the request runs, so admission errs on the safe side: it refuses earlier,
//! never admits beyond the limit.

use bytes::Bytes;
use http::header::{HeaderValue, CONNECTION, CONTENT_TYPE, EXPECT, RETRY_AFTER};
use http::{Request, Response, StatusCode, Version};
use http_body::{Body, Frame, SizeHint};
use hyper::body::Incoming;
use memkit_async_runtime::memory::{MkAllocError, MkBudget, MkBudgetGuard};
use pin_project::pin_project;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{ready, Context, Poll};

/// How request bodies are admitted.
#[derive(Clone, Debug)]
pub(crate) struct AdmitConfig {
    /// Reserved for a body without a declared length.
    pub(crate) unknown_length_reserve: usize,
    /// The most of a refused body read to keep the connection clean.
    pub(crate) max_drain: u64,
}

/// A service whose requests are admitted on `budget` before they reach `inner`.
#[derive(Clone)]
pub(crate) struct Admit<S> {
    pub(crate) inner: S,
    pub(crate) budget: MkBudget,
    pub(crate) config: Arc<AdmitConfig>,
}

/// The bytes `req`'s body needs reserved.
fn body_reservation(req: &Request<Incoming>, config: &AdmitConfig) -> usize {
    let body = req.body();
    if body.is_end_stream() {
        return 0;
    }
    match body.size_hint().exact() {
        Some(len) => usize::try_from(len).unwrap_or(usize::MAX),
        None => config.unknown_length_reserve,
    }
}

impl<S, B> hyper::service::Service<Request<Incoming>> for Admit<S>
where
    S: hyper::service::Service<Request<Incoming>, Response = Response<B>>,
    B: Body<Data = Bytes>,
{
    type Response = Response<AdmittedBody<B>>;
    type Error = S::Error;
    type Future = AdmitFuture<S::Future, B>;

    fn call(&self, req: Request<Incoming>) -> Self::Future {
        let need = body_reservation(&req, &self.config);
        let admitted = if need == 0 {
            Ok(None)
        } else {
            self.budget.try_acquire(need).map(Some)
        };
        match admitted {
            Ok(guard) => AdmitFuture::Admitted {
                future: self.inner.call(req),
                guard,
            },
            Err(error) => {
                let expects_continue = req
                    .headers()
                    .get(EXPECT)
                    .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"100-continue"));
                let version = req.version();
                let drain = (!expects_continue).then(|| req.into_body());
                AdmitFuture::Refused {
                    drain,
                    drained: 0,
                    max_drain: self.config.max_drain,
                    refusal: (error, version),
                    _body: std::marker::PhantomData,
                }
            }
        }
    }
}

/// The response of [`Admit`]: the service's, or a refusal once the body is drained.
#[pin_project(project = AdmitProj)]
pub(crate) enum AdmitFuture<F, B> {
    Admitted {
        #[pin]
        future: F,
        guard: Option<MkBudgetGuard>,
    },
    Refused {
        drain: Option<Incoming>,
        drained: u64,
        max_drain: u64,
        refusal: (MkAllocError, Version),
        _body: std::marker::PhantomData<fn() -> B>,
    },
}

impl<F, B, E> Future for AdmitFuture<F, B>
where
    F: Future<Output = Result<Response<B>, E>>,
    B: Body<Data = Bytes>,
{
    type Output = Result<Response<AdmittedBody<B>>, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match self.project() {
            AdmitProj::Admitted { future, guard } => {
                let response = ready!(future.poll(cx))?;
                Poll::Ready(Ok(response.map(|body| AdmittedBody::Served {
                    body,
                    guard: guard.take(),
                })))
            }
            AdmitProj::Refused {
                drain,
                drained,
                max_drain,
                refusal,
                ..
            } => {
                let mut complete = true;
                if let Some(body) = drain {
                    loop {
                        if *drained > *max_drain {
                            complete = false;
                            break;
                        }
                        match ready!(Pin::new(&mut *body).poll_frame(cx)) {
                            Some(Ok(frame)) => {
                                if let Some(data) = frame.data_ref() {
                                    *drained += data.len() as u64;
                                }
                            }
                            // The client is gone or the body ended: answer what can be.
                            Some(Err(_)) | None => break,
                        }
                    }
                }
                *drain = None;
                let (error, version) = refusal;
                Poll::Ready(Ok(refusal_response(error, *version, complete)))
            }
        }
    }
}

fn refusal_response<B>(
    error: &MkAllocError,
    version: Version,
    body_drained: bool,
) -> Response<AdmittedBody<B>> {
    let (status, message) = match error {
        MkAllocError::ExceedsLimit { requested, limit } => (
            StatusCode::PAYLOAD_TOO_LARGE,
            format!(
                "request body of {requested} bytes is larger than this server's memory budget \
                 for one connection ({limit} bytes); send a smaller body\n"
            ),
        ),
        other => (
            StatusCode::SERVICE_UNAVAILABLE,
            format!(
                "server at its memory limit: the request body could not be admitted ({other}); \
                 retry later\n"
            ),
        ),
    };
    let mut response = Response::new(AdmittedBody::Refused {
        message: Some(Bytes::from(message)),
    });
    *response.status_mut() = status;
    let headers = response.headers_mut();
    headers.insert(
        CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    if status == StatusCode::SERVICE_UNAVAILABLE {
        headers.insert(RETRY_AFTER, HeaderValue::from_static("1"));
    }
    if !body_drained && version < Version::HTTP_2 {
        // The rest of the body is unread: the connection cannot carry another request.
        headers.insert(CONNECTION, HeaderValue::from_static("close"));
    }
    response
}

/// A response body that holds its request's reservation until it has been sent.
#[pin_project(project = BodyProj)]
pub(crate) enum AdmittedBody<B> {
    Served {
        #[pin]
        body: B,
        guard: Option<MkBudgetGuard>,
    },
    Refused {
        message: Option<Bytes>,
    },
}

impl<B: Body<Data = Bytes>> Body for AdmittedBody<B> {
    type Data = Bytes;
    type Error = B::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, B::Error>>> {
        match self.project() {
            BodyProj::Served { body, guard } => {
                let frame = ready!(body.poll_frame(cx));
                if frame.is_none() {
                    drop(guard.take());
                }
                Poll::Ready(frame)
            }
            BodyProj::Refused { message } => {
                Poll::Ready(message.take().map(|m| Ok(Frame::data(m))))
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        match self {
            AdmittedBody::Served { body, .. } => body.is_end_stream(),
            AdmittedBody::Refused { message } => message.is_none(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match self {
            AdmittedBody::Served { body, .. } => body.size_hint(),
            AdmittedBody::Refused { message } => {
                SizeHint::with_exact(message.as_ref().map_or(0, |m| m.len() as u64))
            }
        }
    }
}
