//! `MkAsyncBox<T>`: an owned value in the current task's arena.
//!
//! Invariants: `ptr` points to an initialised `T` inside `chunk` (or is dangling and aligned for
//! a zero-sized `T`, with no chunk); the box counts as one live object of its chunk until its
//! drop frees it, wherever that drop runs (memory/arena/chunk.rs decides local or remote).

use crate::memory::arena::{self, free, Arena, Block, Chunk};
use crate::memory::{Acquire, MkAllocError};
use std::alloc::Layout;
use std::fmt;
use std::future::Future;
use std::marker::PhantomData;
use std::mem::ManuallyDrop;
use std::ops::{Deref, DerefMut};
use std::pin::Pin;
use std::ptr::NonNull;
use std::task::{Context, Poll};

/// An owned value allocated in the arena of the task that creates it.
///
/// Allocation is a pointer bump in the task's current chunk (no atomic, no lock); chunks are
/// charged to the task's budget, whose policy decides what [`new`](Self::new) does when it is
/// full. The box can be held across `.await` while the task moves between workers, and moved to
/// other tasks and threads: moving it moves a pointer, and dropping it anywhere frees it
/// (remote frees are counted separately, and a chunk is reused only once nothing in it is
/// alive).
///
/// ```
/// use memkit_async_runtime::memory::MkAsyncBox;
///
/// let rt = memkit_async_runtime::Runtime::new().unwrap();
/// let boxed = rt.block_on(rt.spawn(async {
///     let mut b = MkAsyncBox::new([0u8; 1024]).await.unwrap();
///     b[0] = 7;
///     memkit_async_runtime::task::yield_now().await; // may resume on another worker
///     b
/// })).unwrap();
/// assert_eq!(boxed[0], 7); // outlives its task
/// ```
pub struct MkAsyncBox<T> {
    ptr: NonNull<T>,
    chunk: Option<NonNull<Chunk>>,
    _owns: PhantomData<T>,
}

// SAFETY: the box owns its `T`; the chunk it points to is only touched through the counting
// protocol of memory/arena/chunk.rs, which is safe from any thread.
unsafe impl<T: Send> Send for MkAsyncBox<T> {}
// SAFETY: `&MkAsyncBox<T>` only gives `&T`.
unsafe impl<T: Sync> Sync for MkAsyncBox<T> {}

impl<T> MkAsyncBox<T> {
    /// Allocates `value` in the current task's arena, applying the task budget's policy when a
    /// new chunk does not fit (`Wait` parks the task until memory is released).
    ///
    /// Resolves to `Err(MkAllocError::NoTask)` outside a task spawned on a memkit-async
    /// runtime (for example directly in `block_on`); the value is dropped on error.
    #[allow(clippy::new_ret_no_self)] // Allocation may wait, so `new` returns its future.
    pub fn new(value: T) -> NewBox<T> {
        NewBox {
            value: Some(value),
            acquire: None,
        }
    }

    /// Allocates `value` in the current task's arena without ever waiting: if a new chunk is
    /// needed and the budget is full, this fails (after evicting, under `Evict`).
    ///
    /// # Errors
    /// Per [`MkAllocError`]; the value is dropped on error.
    #[inline(always)]
    pub fn try_new(value: T) -> Result<MkAsyncBox<T>, MkAllocError> {
        let block = arena::with_task_arena(|arena| arena.try_alloc(Layout::new::<T>()))?;
        // SAFETY: the block is fresh, sized and aligned for `T`.
        Ok(unsafe { MkAsyncBox::write(block, value) })
    }

    /// # Safety
    /// `block` is fresh memory laid out for `T`, counted in its chunk.
    pub(crate) unsafe fn write(block: Block, value: T) -> MkAsyncBox<T> {
        let ptr = block.ptr.cast::<T>();
        // SAFETY: caller contract.
        unsafe { ptr.as_ptr().write(value) };
        MkAsyncBox {
            ptr,
            chunk: block.chunk,
            _owns: PhantomData,
        }
    }

    /// The address of the value (stable for the box's life, whoever holds it).
    pub fn as_ptr(this: &MkAsyncBox<T>) -> *const T {
        this.ptr.as_ptr()
    }

    /// Moves the value out, freeing its arena slot.
    pub fn into_inner(this: MkAsyncBox<T>) -> T {
        MkAsyncBox::into_inner_counted(this).0
    }

    /// Moves the value out, as [`into_inner`](Self::into_inner) does, with the bytes freeing its
    /// slot gave back to the budget (its chunk's, if the slot was the last live object of a
    /// retired chunk). The slot is free before the caller drops the value.
    pub(crate) fn into_inner_counted(this: MkAsyncBox<T>) -> (T, usize) {
        let this = ManuallyDrop::new(this);
        // SAFETY: the value is initialised and read once; the slot is freed right after and
        // `this` is never dropped.
        let value = unsafe { this.ptr.as_ptr().read() };
        (value, free(this.chunk))
    }
}

/// Frees a slot when dropped: after its value's drop, even if that panics.
struct FreeOnDrop(Option<NonNull<Chunk>>);

impl Drop for FreeOnDrop {
    #[inline(always)]
    fn drop(&mut self) {
        free(self.0.take());
    }
}

impl<T> Drop for MkAsyncBox<T> {
    #[inline(always)]
    fn drop(&mut self) {
        let _free = FreeOnDrop(self.chunk);
        // SAFETY: the value is initialised and dropped once, here.
        unsafe { self.ptr.as_ptr().drop_in_place() };
    }
}

impl<T> Deref for MkAsyncBox<T> {
    type Target = T;
    fn deref(&self) -> &T {
        // SAFETY: the value is initialised and owned by the box.
        unsafe { self.ptr.as_ref() }
    }
}

impl<T> DerefMut for MkAsyncBox<T> {
    fn deref_mut(&mut self) -> &mut T {
        // SAFETY: as in `deref`, and `&mut self` is unique.
        unsafe { self.ptr.as_mut() }
    }
}

impl<T: fmt::Debug> fmt::Debug for MkAsyncBox<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        T::fmt(self, f)
    }
}

impl<T: PartialEq> PartialEq for MkAsyncBox<T> {
    fn eq(&self, other: &Self) -> bool {
        **self == **other
    }
}

/// The future returned by [`MkAsyncBox::new`].
#[must_use = "futures do nothing unless polled"]
pub struct NewBox<T> {
    value: Option<T>,
    acquire: Option<(Acquire, usize)>,
}

impl<T> Unpin for NewBox<T> {}

impl<T> fmt::Debug for NewBox<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("NewBox")
            .field(
                "waiting_for_bytes",
                &self.acquire.as_ref().map(|(_, bytes)| *bytes),
            )
            .finish_non_exhaustive()
    }
}

impl<T> Future for NewBox<T> {
    type Output = Result<MkAsyncBox<T>, MkAllocError>;

    #[inline(always)]
    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = &mut *self;
        let layout = Layout::new::<T>();
        // The bump fast path, as in `try_new`; waiting for a chunk is the slow path below.
        if this.acquire.is_none() {
            if let Ok(block) = arena::with_task_arena(|arena| {
                Arena::check_layout(layout)?;
                arena.alloc_fast(layout).ok_or(MkAllocError::NoTask)
            }) {
                return Poll::Ready(Ok(this.write(block)));
            }
        }
        this.poll_slow(layout, cx)
    }
}

impl<T> NewBox<T> {
    #[inline(always)]
    fn write(&mut self, block: Block) -> MkAsyncBox<T> {
        let value = self.value.take().expect("`NewBox` polled after completion");
        // SAFETY: the block is fresh, sized and aligned for `T`.
        unsafe { MkAsyncBox::write(block, value) }
    }

    #[cold]
    fn poll_slow(
        &mut self,
        layout: Layout,
        cx: &mut Context<'_>,
    ) -> Poll<Result<MkAsyncBox<T>, MkAllocError>> {
        let res = arena::with_task_arena(|arena| arena.poll_alloc(layout, &mut self.acquire, cx));
        match res {
            Ok(Poll::Pending) => Poll::Pending,
            Ok(Poll::Ready(block)) => Poll::Ready(Ok(self.write(block))),
            Err(err) => {
                self.value = None;
                Poll::Ready(Err(err))
            }
        }
    }
}
