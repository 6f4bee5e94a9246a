//! `task::Builder` and `spawn_with_budget`: spawning with a name, a byte budget, a policy and an
//! admission reservation.

use crate::memory::TaskBudget;
use crate::memory::{Acquire, MkAllocError, MkBackpressure, MkBudgetGuard, RuntimeMemory};
use crate::runtime::Handle;
use crate::task_core::{self, JoinHandle};
use std::cell::RefCell;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

/// Configures a task before spawning it.
///
/// ```
/// use memkit_async_runtime::memory::MkBackpressure;
/// use memkit_async_runtime::task;
///
/// let rt = memkit_async_runtime::Builder::new().memory_limit(64 << 20).build().unwrap();
/// let handle = rt.block_on(async {
///     task::Builder::new()
///         .name("ingest")
///         .budget(8 << 20)                 // a child budget of 8 MiB under the runtime's 64
///         .policy(MkBackpressure::Fail)
///         .reserve(1 << 20)                // admitted once 1 MiB fits under the parent
///         .spawn(async { task::name().as_deref() == Some("ingest") })
/// }).unwrap();
/// assert!(rt.block_on(handle).unwrap());
/// ```
#[derive(Debug, Default)]
pub struct Builder {
    name: Option<Arc<str>>,
    budget: Option<TaskBudget>,
    policy: Option<MkBackpressure>,
    reserve: usize,
}

impl Builder {
    /// A builder for a task charged to its spawner's budget, without a name or reservation.
    pub fn new() -> Builder {
        Builder::default()
    }

    /// Names the task; [`task::name`](crate::task::name) returns it inside the task.
    pub fn name(mut self, name: &str) -> Builder {
        self.name = Some(name.into());
        self
    }

    /// The task's budget: bytes (a child of the spawner's budget) or an existing `MkBudget`.
    pub fn budget(mut self, budget: impl Into<TaskBudget>) -> Builder {
        self.budget = Some(budget.into());
        self
    }

    /// The policy for the task's allocations. With a byte budget it is the child's policy;
    /// otherwise the task gets a child budget with the same limit as its parent and this policy.
    pub fn policy(mut self, policy: MkBackpressure) -> Builder {
        self.policy = Some(policy);
        self
    }

    /// Admission control: the task is first polled only once `bytes` fit under its parent
    /// budget, and holds them until it ends. Until then it waits, in FIFO order, in the
    /// parent's queue, without being polled.
    pub fn reserve(mut self, bytes: usize) -> Builder {
        self.reserve = bytes;
        self
    }

    /// Spawns the task on the current runtime.
    ///
    /// # Errors
    /// `ExceedsLimit` if the reservation can never fit under the parent budget.
    ///
    /// # Panics
    /// Outside a runtime, like [`spawn`](crate::spawn).
    #[track_caller]
    pub fn spawn<F>(self, future: F) -> Result<JoinHandle<F::Output>, MkAllocError>
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        let handle = match Handle::try_current() {
            Ok(handle) => handle,
            Err(e) => panic!("`task::Builder::spawn` called outside a memkit-async runtime: {e}"),
        };
        self.spawn_on(future, &handle)
    }

    /// Spawns the task on the runtime of `handle`.
    ///
    /// # Errors
    /// `ExceedsLimit` if the reservation can never fit under the parent budget.
    pub fn spawn_on<F>(
        self,
        future: F,
        handle: &Handle,
    ) -> Result<JoinHandle<F::Output>, MkAllocError>
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        let parent = task_core::current_budget().unwrap_or_else(|| handle.memory_budget().clone());
        let budget = match (self.budget, self.policy) {
            (Some(TaskBudget::Bytes(n)), policy) => Some(
                parent
                    .child(n)
                    .with_policy(policy.unwrap_or_else(|| parent.policy())),
            ),
            (Some(TaskBudget::Budget(b)), None) => Some(b),
            (Some(TaskBudget::Budget(b)), Some(p)) => Some(b.child(b.limit()).with_policy(p)),
            (None, Some(p)) => Some(parent.child(parent.limit()).with_policy(p)),
            (None, None) => None,
        };
        let admission = if self.reserve > 0 {
            parent.check_fits_ever(self.reserve)?;
            Some(Admission {
                acquire: parent.acquire_with(self.reserve, MkBackpressure::Wait),
                memory: handle.memory().admission_started(),
            })
        } else {
            None
        };
        let task = Prepared {
            name: self.name.clone(),
            admission,
            reservation: None,
            future: Box::pin(future),
        };
        Ok(handle.spawn_task(task, budget.or_else(task_core::current_budget), self.name))
    }
}

/// Spawns a task whose allocations are capped at `bytes`: a child budget of the spawner's
/// budget (the runtime's root for top-level tasks), with its policy.
///
/// # Panics
/// Outside a runtime, like [`spawn`](crate::spawn).
///
/// ```
/// use memkit_async_runtime::memory::MkAsyncBox;
///
/// let rt = memkit_async_runtime::Runtime::new().unwrap();
/// let used = rt.block_on(async {
///     memkit_async_runtime::spawn_with_budget(64 << 10, async {
///         let b = MkAsyncBox::new([0u8; 1000]).await.unwrap();
///         memkit_async_runtime::memory::MkBudget::current().unwrap().used() + b.len() - 1000
///     })
///     .await
///     .unwrap()
/// });
/// assert_eq!(used, 4096); // one 4 KiB chunk, charged once
/// ```
#[track_caller]
pub fn spawn_with_budget<F>(bytes: usize, future: F) -> JoinHandle<F::Output>
where
    F: Future + Send + 'static,
    F::Output: Send + 'static,
{
    match Builder::new().budget(bytes).spawn(future) {
        Ok(handle) => handle,
        Err(e) => unreachable!("a task without a reservation always spawns: {e}"),
    }
}

thread_local! {
    static NAME: RefCell<Option<Arc<str>>> = const { RefCell::new(None) };
}

/// The name of the task being polled on this thread, if it was given one with
/// [`Builder::name`].
pub fn name() -> Option<Arc<str>> {
    NAME.with(|n| n.borrow().clone())
}

struct Admission {
    acquire: Acquire,
    /// Counts the task as awaiting admission until it is admitted or dropped.
    memory: Arc<RuntimeMemory>,
}

/// The spawned future: waits for admission, then runs the user's future with its name set.
struct Prepared<F> {
    name: Option<Arc<str>>,
    admission: Option<Admission>,
    /// Held for the task's life once admitted.
    reservation: Option<MkBudgetGuard>,
    future: Pin<Box<F>>,
}

impl<F: Future> Future for Prepared<F> {
    type Output = F::Output;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        let this = &mut *self;
        if let Some(admission) = this.admission.as_mut() {
            match Pin::new(&mut admission.acquire).poll(cx) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(res) => {
                    // The reservation was checked against the limit at spawn and waits
                    // otherwise, so only an admitted guard comes back.
                    this.reservation = res.ok();
                    admission.memory.admission_ended();
                    this.admission = None;
                }
            }
        }
        let _name = NameGuard::enter(this.name.clone());
        this.future.as_mut().poll(cx)
    }
}

/// Makes a task's name current for one poll; the previous one comes back when the guard
/// drops, also when the poll unwinds (the worker goes on to poll other tasks).
struct NameGuard(Option<Arc<str>>);

impl NameGuard {
    fn enter(name: Option<Arc<str>>) -> NameGuard {
        NameGuard(NAME.with(|n| n.replace(name)))
    }
}

impl Drop for NameGuard {
    fn drop(&mut self) {
        let prev = self.0.take();
        NAME.with(|n| *n.borrow_mut() = prev);
    }
}

impl<F> Drop for Prepared<F> {
    fn drop(&mut self) {
        if let Some(admission) = self.admission.take() {
            admission.memory.admission_ended();
        }
    }
}
