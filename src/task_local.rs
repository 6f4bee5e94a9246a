//! `MkTaskLocal<T>`: a value per task, carried by the task's future.

use std::any::Any;
use std::cell::RefCell;
use std::fmt;
use std::future::Future;
use std::marker::PhantomData;
use std::pin::Pin;
use std::task::{Context, Poll};

/// A key for a value each task sets for itself with [`scope`](Self::scope).
///
/// The value travels with the task's future, not with a thread, so it stays the task's own
/// when the task moves between workers, and other tasks on the same worker never see it.
/// Child tasks start without it unless they ask for it with [`inherit`](Self::inherit).
/// Scopes nest: an inner scope of the same key shadows the outer one until it ends.
///
/// ```
/// use memkit_async::MkTaskLocal;
///
/// static REQUEST_ID: MkTaskLocal<u64> = MkTaskLocal::new();
///
/// #[memkit_async::main(worker_threads = 2)]
/// async fn main() {
///     REQUEST_ID
///         .scope(7, async {
///             memkit_async::task::yield_now().await; // may resume on another worker
///             assert_eq!(REQUEST_ID.get(), 7);
///             let child = memkit_async::spawn(REQUEST_ID.inherit(async { REQUEST_ID.get() }));
///             assert_eq!(child.await.unwrap(), 7);
///             let stranger = memkit_async::spawn(async { REQUEST_ID.try_get().is_err() });
///             assert!(stranger.await.unwrap());
///         })
///         .await;
/// }
/// # main();
/// ```
pub struct MkTaskLocal<T: 'static> {
    /// Gives every key its own address (the key's identity).
    _addr: u8,
    _value: PhantomData<fn() -> T>,
}

/// Why a task-local value could not be read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum MkTaskLocalError {
    /// The current task (or code) is not inside a `scope` of this key.
    NotSet,
    /// The value is already borrowed by an enclosing `with`/`with_mut` of the same key.
    Borrowed,
}

impl fmt::Display for MkTaskLocalError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            MkTaskLocalError::NotSet => f.write_str(
                "task-local value not set: run the code inside `KEY.scope(value, future)`, or \
                 spawn the child task with `KEY.inherit(future)` to pass the parent's value on",
            ),
            MkTaskLocalError::Borrowed => f.write_str(
                "task-local value already borrowed by an enclosing `with`/`with_mut` of the \
                 same key; use the value passed to that closure instead",
            ),
        }
    }
}

impl std::error::Error for MkTaskLocalError {}

/// The values of the scopes being polled on this thread, innermost last.
struct Entry {
    key: usize,
    value: Option<Box<dyn Any + Send>>,
}

thread_local! {
    static SCOPES: RefCell<Vec<Entry>> = const { RefCell::new(Vec::new()) };
}

impl<T: 'static> MkTaskLocal<T> {
    fn key(&'static self) -> usize {
        self as *const Self as usize
    }
}

impl<T: Send + 'static> MkTaskLocal<T> {
    /// A key; declare it as a `static`.
    #[allow(clippy::new_without_default)] // A key is meant to be a `static`, made in const.
    pub const fn new() -> MkTaskLocal<T> {
        MkTaskLocal {
            _addr: 0,
            _value: PhantomData,
        }
    }

    /// Runs `future` with `value` as this key's value (for the future and everything it polls
    /// inline, wherever it is polled).
    pub fn scope<F: Future>(&'static self, value: T, future: F) -> MkTaskLocalFuture<T, F> {
        MkTaskLocalFuture {
            key: self,
            value: Some(Box::new(value)),
            future: Some(future),
        }
    }

    /// Wraps `future` (typically a child task's) so it runs with a clone of the current value of
    /// this key; without a current value, the future runs without one.
    pub fn inherit<F: Future>(&'static self, future: F) -> MkTaskLocalFuture<T, F>
    where
        T: Clone,
    {
        MkTaskLocalFuture {
            key: self,
            value: self
                .try_with(|v| Box::new(v.clone()) as Box<dyn Any + Send>)
                .ok(),
            future: Some(future),
        }
    }

    /// Runs `f` with `value` as this key's value.
    pub fn sync_scope<R>(&'static self, value: T, f: impl FnOnce() -> R) -> R {
        let mut slot = Some(Box::new(value) as Box<dyn Any + Send>);
        let _entered = Entered::push(self.key(), &mut slot);
        f()
    }

    /// Calls `f` with the current value.
    ///
    /// # Errors
    /// `NotSet` outside a scope of this key; `Borrowed` inside a `with` of the same key.
    pub fn try_with<R>(&'static self, f: impl FnOnce(&T) -> R) -> Result<R, MkTaskLocalError> {
        self.try_with_mut(|v| f(v))
    }

    /// Calls `f` with the current value, mutably (the change lasts for the rest of the scope).
    ///
    /// # Errors
    /// As [`try_with`](Self::try_with).
    pub fn try_with_mut<R>(
        &'static self,
        f: impl FnOnce(&mut T) -> R,
    ) -> Result<R, MkTaskLocalError> {
        let key = self.key();
        let (index, value) = SCOPES.with_borrow_mut(|scopes| {
            let index = scopes
                .iter()
                .rposition(|e| e.key == key)
                .ok_or(MkTaskLocalError::NotSet)?;
            let value = scopes[index]
                .value
                .take()
                .ok_or(MkTaskLocalError::Borrowed)?;
            Ok((index, value))
        })?;
        let mut held = Restore { index, value };
        let value = held
            .value
            .downcast_mut::<T>()
            .expect("a key's entries hold values of its type");
        Ok(f(value))
    }

    /// Calls `f` with the current value.
    ///
    /// # Panics
    /// Outside a scope of this key, or inside a `with` of the same key (see
    /// [`try_with`](Self::try_with) for the non-panicking form).
    #[track_caller]
    pub fn with<R>(&'static self, f: impl FnOnce(&T) -> R) -> R {
        self.try_with(f).unwrap_or_else(|e| panic!("{e}"))
    }

    /// Calls `f` with the current value, mutably.
    ///
    /// # Panics
    /// As [`with`](Self::with).
    #[track_caller]
    pub fn with_mut<R>(&'static self, f: impl FnOnce(&mut T) -> R) -> R {
        self.try_with_mut(f).unwrap_or_else(|e| panic!("{e}"))
    }

    /// A clone of the current value.
    ///
    /// # Panics
    /// As [`with`](Self::with).
    #[track_caller]
    pub fn get(&'static self) -> T
    where
        T: Clone,
    {
        self.with(T::clone)
    }

    /// A clone of the current value.
    ///
    /// # Errors
    /// As [`try_with`](Self::try_with).
    pub fn try_get(&'static self) -> Result<T, MkTaskLocalError>
    where
        T: Clone,
    {
        self.try_with(T::clone)
    }
}

impl<T: 'static> fmt::Debug for MkTaskLocal<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MkTaskLocal").finish_non_exhaustive()
    }
}

/// Puts a value taken by `try_with_mut` back into its scope (also if the closure panics).
struct Restore {
    index: usize,
    value: Box<dyn Any + Send>,
}

impl Drop for Restore {
    fn drop(&mut self) {
        let value = std::mem::replace(&mut self.value, Box::new(()));
        SCOPES.with_borrow_mut(|scopes| scopes[self.index].value = Some(value));
    }
}

/// Makes a scope's value visible for as long as it lives, then takes it back (also on panic).
/// A scope without a value (`inherit` with nothing to inherit) pushes nothing.
struct Entered<'a> {
    slot: &'a mut Option<Box<dyn Any + Send>>,
    depth: Option<usize>,
}

impl<'a> Entered<'a> {
    fn push(key: usize, slot: &'a mut Option<Box<dyn Any + Send>>) -> Entered<'a> {
        let depth = slot.take().map(|value| {
            SCOPES.with_borrow_mut(|scopes| {
                scopes.push(Entry {
                    key,
                    value: Some(value),
                });
                scopes.len()
            })
        });
        Entered { slot, depth }
    }
}

impl Drop for Entered<'_> {
    fn drop(&mut self) {
        if let Some(depth) = self.depth {
            *self.slot = SCOPES.with_borrow_mut(|scopes| {
                // Inner scopes pushed meanwhile are gone by now (they pop on drop too).
                debug_assert_eq!(scopes.len(), depth);
                scopes.pop().and_then(|e| e.value)
            });
        }
    }
}

/// A future running with a task-local value: see [`MkTaskLocal::scope`].
///
/// The value is set while the inner future is polled and while it is dropped, so destructors
/// of values it holds (a guard dropped when the task is aborted or times out) still see it.
#[pin_project::pin_project(PinnedDrop)]
pub struct MkTaskLocalFuture<T: 'static, F> {
    key: &'static MkTaskLocal<T>,
    value: Option<Box<dyn Any + Send>>,
    /// `None` once dropped inside the scope, which the destructor does first.
    #[pin]
    future: Option<F>,
}

impl<T: Send + 'static, F: Future> Future for MkTaskLocalFuture<T, F> {
    type Output = F::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        let this = self.project();
        let _entered = Entered::push(this.key.key(), this.value);
        this.future
            .as_pin_mut()
            .expect("the inner future is taken only by the destructor")
            .poll(cx)
    }
}

#[pin_project::pinned_drop]
impl<T: 'static, F> PinnedDrop for MkTaskLocalFuture<T, F> {
    fn drop(self: Pin<&mut Self>) {
        let mut this = self.project();
        if this.future.is_none() {
            return;
        }
        if SCOPES.try_with(|_| ()).is_err() {
            // Dropped by a thread-local destructor after the scope stack's own: there is no
            // stack left to put the value on.
            this.future.set(None);
            return;
        }
        // The scope is left again even if the inner future's destructor panics.
        let _entered = Entered::push(this.key.key(), this.value);
        this.future.set(None);
    }
}

impl<T: 'static, F> fmt::Debug for MkTaskLocalFuture<T, F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MkTaskLocalFuture").finish_non_exhaustive()
    }
}
