//! `MkAsyncVec<T>`: a growable array in the current task's arena.
//!
//! Invariants: `ptr[..len]` are initialised; `ptr` has room for `cap` elements inside `chunk`
//! (or is dangling with no chunk when nothing was allocated or `T` is zero-sized); the buffer
//! counts as one live object of its chunk until it is freed.

use crate::memory::arena::{self, free, Arena, Block, Chunk};
use crate::memory::MkAllocError;
use std::alloc::Layout;
use std::fmt;
use std::future::poll_fn;
use std::marker::PhantomData;
use std::ops::{Deref, DerefMut};
use std::ptr::{self, NonNull};
use std::task::Poll;

/// A growable array whose buffer lives in the arena of the task that grows it.
///
/// Growing moves the elements to a larger block (the old block is freed); growth applies the
/// task budget's policy in the async methods and never waits in the `try_` ones.
///
/// ```
/// use memkit_async_runtime::memory::MkAsyncVec;
///
/// let rt = memkit_async_runtime::Runtime::new().unwrap();
/// let v = rt.block_on(rt.spawn(async {
///     let mut v = MkAsyncVec::with_capacity(4).await.unwrap();
///     for i in 0..10u32 {
///         v.push(i).await.unwrap();
///     }
///     v
/// })).unwrap();
/// assert_eq!(&v[..], &(0..10).collect::<Vec<_>>()[..]);
/// ```
pub struct MkAsyncVec<T> {
    ptr: NonNull<T>,
    len: usize,
    cap: usize,
    chunk: Option<NonNull<Chunk>>,
    _owns: PhantomData<T>,
}

// SAFETY: the vector owns its elements; its chunk is shared only through the protocol of
// memory/arena/chunk.rs.
unsafe impl<T: Send> Send for MkAsyncVec<T> {}
// SAFETY: `&MkAsyncVec<T>` only gives `&[T]`.
unsafe impl<T: Sync> Sync for MkAsyncVec<T> {}

impl<T> Default for MkAsyncVec<T> {
    fn default() -> Self {
        MkAsyncVec::new()
    }
}

impl<T> MkAsyncVec<T> {
    /// An empty vector; allocates nothing until elements are added.
    pub fn new() -> MkAsyncVec<T> {
        MkAsyncVec {
            ptr: NonNull::dangling(),
            len: 0,
            cap: if size_of::<T>() == 0 { usize::MAX } else { 0 },
            chunk: None,
            _owns: PhantomData,
        }
    }

    /// A vector with room for `capacity` elements, applying the budget's policy.
    ///
    /// # Errors
    /// Per [`MkAllocError`] (`SizeOverflow` when `capacity * size_of::<T>()` overflows).
    pub async fn with_capacity(capacity: usize) -> Result<MkAsyncVec<T>, MkAllocError> {
        let mut v = MkAsyncVec::new();
        v.reserve(capacity).await?;
        Ok(v)
    }

    /// As [`with_capacity`](Self::with_capacity), never waiting.
    ///
    /// # Errors
    /// Per [`MkAllocError`].
    pub fn try_with_capacity(capacity: usize) -> Result<MkAsyncVec<T>, MkAllocError> {
        let mut v = MkAsyncVec::new();
        v.try_reserve(capacity)?;
        Ok(v)
    }

    /// Number of elements.
    pub fn len(&self) -> usize {
        self.len
    }

    /// `true` if there are no elements.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Elements the buffer holds without growing.
    pub fn capacity(&self) -> usize {
        self.cap
    }

    /// The new capacity and its layout for `additional` more elements, if growth is needed.
    fn grow_layout(&self, additional: usize) -> Result<Option<(usize, Layout)>, MkAllocError> {
        let needed = self
            .len
            .checked_add(additional)
            .ok_or(MkAllocError::SizeOverflow {
                requested: usize::MAX,
            })?;
        if needed <= self.cap {
            return Ok(None);
        }
        let cap = needed.max(self.cap.saturating_mul(2)).max(4);
        let layout = Layout::array::<T>(cap).map_err(|_| MkAllocError::SizeOverflow {
            requested: cap.saturating_mul(size_of::<T>()),
        })?;
        Ok(Some((cap, layout)))
    }

    /// A vector of `len` elements made by `fill`, in `block` (fresh, laid out for `len` `T`s).
    pub(crate) fn filled_in(
        block: Block,
        len: usize,
        mut fill: impl FnMut() -> T,
    ) -> MkAsyncVec<T> {
        let mut v = MkAsyncVec::<T>::new();
        if size_of::<T>() != 0 {
            v.ptr = block.ptr.cast();
            v.cap = len;
            v.chunk = block.chunk;
        }
        while v.len < len {
            // SAFETY: `len <= cap` slots were allocated; each is written once, then counted.
            unsafe { v.ptr.as_ptr().add(v.len).write(fill()) };
            v.len += 1;
        }
        v
    }

    /// Moves the elements into `block` (room for `cap`) and frees the old buffer.
    fn adopt(&mut self, block: Block, cap: usize) {
        let new = block.ptr.cast::<T>();
        // SAFETY: the old buffer holds `len` initialised elements; the new block is fresh and
        // large enough; they do not overlap. The old buffer is freed once, after the move.
        unsafe { ptr::copy_nonoverlapping(self.ptr.as_ptr(), new.as_ptr(), self.len) };
        free(std::mem::replace(&mut self.chunk, block.chunk));
        self.ptr = new;
        self.cap = cap;
    }

    /// Ensures room for `additional` more elements, applying the budget's policy.
    ///
    /// # Errors
    /// Per [`MkAllocError`]; the vector is unchanged on error.
    pub async fn reserve(&mut self, additional: usize) -> Result<(), MkAllocError> {
        let Some((cap, layout)) = self.grow_layout(additional)? else {
            return Ok(());
        };
        let mut acquire = None;
        let block = poll_fn(|cx| {
            arena::with_task_arena(|arena| arena.poll_alloc(layout, &mut acquire, cx))
                .map_or_else(|e| Poll::Ready(Err(e)), |p| p.map(Ok))
        })
        .await?;
        self.adopt(block, cap);
        Ok(())
    }

    /// Ensures room for `additional` more elements without waiting.
    ///
    /// # Errors
    /// Per [`MkAllocError`]; the vector is unchanged on error.
    pub fn try_reserve(&mut self, additional: usize) -> Result<(), MkAllocError> {
        let Some((cap, layout)) = self.grow_layout(additional)? else {
            return Ok(());
        };
        let block = arena::with_task_arena(|arena: &Arena| arena.try_alloc(layout))?;
        self.adopt(block, cap);
        Ok(())
    }

    /// Appends `value`, growing under the budget's policy. On error the value is dropped.
    ///
    /// # Errors
    /// Per [`MkAllocError`].
    pub async fn push(&mut self, value: T) -> Result<(), MkAllocError> {
        self.reserve(1).await?;
        self.push_within_capacity(value);
        Ok(())
    }

    /// Appends `value` without waiting; on error the value is given back.
    ///
    /// # Errors
    /// Per [`MkAllocError`].
    pub fn try_push(&mut self, value: T) -> Result<(), (T, MkAllocError)> {
        match self.try_reserve(1) {
            Ok(()) => {
                self.push_within_capacity(value);
                Ok(())
            }
            Err(e) => Err((value, e)),
        }
    }

    fn push_within_capacity(&mut self, value: T) {
        debug_assert!(self.len < self.cap);
        // SAFETY: `len < cap`, so the slot is inside the buffer and uninitialised.
        unsafe { self.ptr.as_ptr().add(self.len).write(value) };
        self.len += 1;
    }

    /// Resizes to `new_len`, filling new slots with clones of `value` (growing under the
    /// budget's policy) or dropping the elements past `new_len`.
    ///
    /// # Errors
    /// Per [`MkAllocError`]; the vector is unchanged on error.
    pub async fn resize(&mut self, new_len: usize, value: T) -> Result<(), MkAllocError>
    where
        T: Clone,
    {
        self.reserve(new_len.saturating_sub(self.len)).await?;
        self.resize_within_capacity(new_len, value);
        Ok(())
    }

    /// As [`resize`](Self::resize), never waiting.
    ///
    /// # Errors
    /// Per [`MkAllocError`]; the vector is unchanged on error.
    pub fn try_resize(&mut self, new_len: usize, value: T) -> Result<(), MkAllocError>
    where
        T: Clone,
    {
        self.try_reserve(new_len.saturating_sub(self.len))?;
        self.resize_within_capacity(new_len, value);
        Ok(())
    }

    fn resize_within_capacity(&mut self, new_len: usize, value: T)
    where
        T: Clone,
    {
        while self.len > new_len {
            drop(self.pop());
        }
        while self.len < new_len {
            self.push_within_capacity(value.clone());
        }
    }

    /// Removes and returns the last element.
    pub fn pop(&mut self) -> Option<T> {
        if self.len == 0 {
            return None;
        }
        self.len -= 1;
        // SAFETY: the slot was initialised and is now outside `len`, so it is read once.
        Some(unsafe { self.ptr.as_ptr().add(self.len).read() })
    }

    /// Drops every element, keeping the buffer.
    pub fn clear(&mut self) {
        let len = std::mem::replace(&mut self.len, 0);
        // SAFETY: the first `len` elements were initialised; `len` is already 0, so a panic in
        // a drop leaks the rest instead of dropping twice.
        unsafe { ptr::slice_from_raw_parts_mut(self.ptr.as_ptr(), len).drop_in_place() };
    }
}

impl<T> Drop for MkAsyncVec<T> {
    fn drop(&mut self) {
        struct Free(Option<NonNull<Chunk>>);
        impl Drop for Free {
            fn drop(&mut self) {
                free(self.0);
            }
        }
        let _free = Free(self.chunk);
        self.clear();
    }
}

impl<T> Deref for MkAsyncVec<T> {
    type Target = [T];
    fn deref(&self) -> &[T] {
        // SAFETY: `ptr[..len]` is initialised (or `len` is 0 with an aligned dangling pointer).
        unsafe { std::slice::from_raw_parts(self.ptr.as_ptr(), self.len) }
    }
}

impl<T> DerefMut for MkAsyncVec<T> {
    fn deref_mut(&mut self) -> &mut [T] {
        // SAFETY: as in `deref`, and `&mut self` is unique.
        unsafe { std::slice::from_raw_parts_mut(self.ptr.as_ptr(), self.len) }
    }
}

impl<T: fmt::Debug> fmt::Debug for MkAsyncVec<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(self.iter()).finish()
    }
}
