//! A chunk in use by an arena, and the counting protocol that recycles it once its last object
//! is gone, wherever that object dies.
//!
//! Invariants:
//! - `allocs` and `local_frees` are touched only by the chunk's owner: the thread running the
//!   arena's task (task state transitions order successive polls on different threads), while
//!   `owner` still names that arena. A free is local only if the freeing thread's current arena
//!   is `owner`; every other free (another task, another thread, after retirement) goes through
//!   `outstanding`.
//! - `outstanding` starts at 0 and each remote free subtracts 1, so before retirement it is
//!   never positive and a remote free can never bring it to 0. Retirement adds the objects still
//!   live by local count; from then on it is exactly the number of live objects, and whoever
//!   brings it to 0 (the retiring owner or the last remote free) destroys the chunk.
//! - The owner may reset an empty chunk (no live object: local live count plus `outstanding`
//!   is 0) and allocate from its start again; no remote free can be pending then.

use super::chunk_pool::{ChunkMem, ChunkPool};
use crate::memory::MkBudgetGuard;
use crate::sync::{AtomicIsize, AtomicPtr, Ordering};
use std::cell::Cell;
use std::mem::ManuallyDrop;
use std::ptr::{self, NonNull};
use std::sync::Arc;

pub(crate) struct Chunk {
    mem: ManuallyDrop<ChunkMem>,
    pool: Arc<ChunkPool>,
    /// Holds the chunk's bytes in its budget until the chunk is destroyed.
    charge: ManuallyDrop<MkBudgetGuard>,
    owner: AtomicPtr<()>,
    allocs: Cell<usize>,
    local_frees: Cell<usize>,
    outstanding: AtomicIsize,
}

impl Chunk {
    pub(crate) fn new(
        mem: ChunkMem,
        pool: Arc<ChunkPool>,
        charge: MkBudgetGuard,
        owner: *const (),
    ) -> NonNull<Chunk> {
        let chunk = Box::new(Chunk {
            mem: ManuallyDrop::new(mem),
            pool,
            charge: ManuallyDrop::new(charge),
            owner: AtomicPtr::new(owner.cast_mut()),
            allocs: Cell::new(0),
            local_frees: Cell::new(0),
            outstanding: AtomicIsize::new(0),
        });
        NonNull::from(Box::leak(chunk))
    }

    #[inline(always)]
    pub(crate) fn start(&self) -> usize {
        self.mem.ptr().as_ptr() as usize
    }

    pub(crate) fn end(&self) -> usize {
        self.start() + self.mem.size()
    }

    /// Bytes of the chunk (what it holds in its budget).
    pub(crate) fn size(&self) -> usize {
        self.mem.size()
    }

    /// Owner only: records an allocation.
    #[inline(always)]
    pub(crate) fn note_alloc(&self) {
        self.allocs.set(self.allocs.get() + 1);
    }

    /// Owner only: `true` if nothing allocated in the chunk is alive, in which case the counts
    /// are reset and the chunk can be bump-allocated from its start again.
    pub(crate) fn reset_if_empty(&self) -> bool {
        let local_live = (self.allocs.get() - self.local_frees.get()) as isize;
        // Acquire: remote frees released the objects' memory before decrementing.
        if local_live + self.outstanding.load(Ordering::Acquire) != 0 {
            return false;
        }
        self.allocs.set(0);
        self.local_frees.set(0);
        self.outstanding.store(0, Ordering::Relaxed);
        true
    }

    /// Frees one object of `this`; `current_arena` is the freeing thread's current arena.
    /// Returns the bytes this gave back to the budget: the chunk's, if that was the last live
    /// object of a retired chunk, else 0.
    ///
    /// # Safety
    /// `this` is a live chunk holding an object that has just been dropped, which is not freed
    /// again.
    #[inline(always)]
    pub(crate) unsafe fn free_one(this: NonNull<Chunk>, current_arena: *const ()) -> usize {
        // SAFETY: the object being freed keeps the chunk alive until this call ends.
        let chunk = unsafe { this.as_ref() };
        if !current_arena.is_null()
            && chunk.owner.load(Ordering::Relaxed) == current_arena.cast_mut()
        {
            chunk.local_frees.set(chunk.local_frees.get() + 1);
            return 0;
        }
        // SAFETY: forwarded caller contract.
        unsafe { Chunk::free_remote(this) }
    }

    /// # Safety
    /// As `free_one`.
    unsafe fn free_remote(this: NonNull<Chunk>) -> usize {
        // SAFETY: the object being freed keeps the chunk alive until its count drops.
        let chunk = unsafe { this.as_ref() };
        if chunk.outstanding.fetch_sub(1, Ordering::AcqRel) == 1 {
            // SAFETY: that was the last live object of a retired chunk.
            return unsafe { Chunk::destroy(this) };
        }
        0
    }

    /// Owner only: stops allocating from `this`; it is destroyed now if empty, else by its last
    /// free.
    ///
    /// # Safety
    /// `this` is a live chunk of the calling owner, retired once.
    pub(crate) unsafe fn retire(this: NonNull<Chunk>) {
        // SAFETY: the owner keeps the chunk alive until it is retired.
        let chunk = unsafe { this.as_ref() };
        chunk.owner.store(ptr::null_mut(), Ordering::Relaxed);
        let local_live = (chunk.allocs.get() - chunk.local_frees.get()) as isize;
        if chunk.outstanding.fetch_add(local_live, Ordering::AcqRel) + local_live == 0 {
            // SAFETY: no live object remains and the owner is done with it.
            unsafe { Chunk::destroy(this) };
        }
    }

    /// Returns the chunk's memory to the pool and its bytes to the budget; the bytes.
    ///
    /// # Safety
    /// Nothing references `this` any more.
    unsafe fn destroy(this: NonNull<Chunk>) -> usize {
        // SAFETY: chunks are created by `Box::leak` in `new`, destroyed once (caller).
        let mut chunk = unsafe { Box::from_raw(this.as_ptr()) };
        // SAFETY: both fields are taken exactly once, here, and the box is not used after.
        let (mem, charge) = unsafe {
            (
                ManuallyDrop::take(&mut chunk.mem),
                ManuallyDrop::take(&mut chunk.charge),
            )
        };
        chunk.pool.put(mem);
        // The bytes go back to the budget after the memory is back in the pool.
        let bytes = charge.bytes();
        drop(charge);
        bytes
    }
}
