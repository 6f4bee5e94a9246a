//! Arenas: where memkit's containers put their objects. Memory comes in chunks from a pool
//! (chunk_pool.rs), each charged to a budget and recycled once its last object dies
//! (chunk.rs); an `Arena` bump-allocates in its current chunk. A task's arena hangs off its
//! header (task.rs), an `MkArenaTask`'s off its scope (scope.rs), and arenas that threads share
//! under a lock (caches, frames) allocate in steps that never touch the budget under that lock
//! (shared.rs).
//!
//! Invariants:
//! - An `Arena` is always boxed and never moves: its address is its identity as chunk owner.
//! - It is used by one thread at a time: a task arena only by the thread polling (or dropping)
//!   its task, through the header's `arena` slot; an `MkArena` through `&self`, which cannot be
//!   shared between threads (`MkArena` is `!Sync`); the arenas of caches and frames under their
//!   owner's lock (shared.rs).
//! - `[bump, end)` is free space in `current`; objects below `bump` belong to live or freed
//!   allocations counted in the chunk.
//! - A chunk the arena lets go of leaves it as a `Retired`, which nothing but its holder
//!   reaches, and is retired when that drops: for shared arenas, after the lock is released.

mod chunk;
mod chunk_pool;
#[cfg(all(test, loom))]
mod loom;
mod scope;
pub(crate) mod shared;
mod task;

pub(crate) use chunk::Chunk;
pub(crate) use chunk_pool::{ChunkPool, MIN_CLASS};
pub(crate) use scope::{current_budget as scope_budget, current_scope_id, Scope};
pub(crate) use task::{drop_task_arena, free, with_task_arena};

use crate::heap::Account;
use crate::memory::{Acquire, MkAllocError, MkBudget, MkBudgetGuard};
use chunk_pool::{chunk_size_for, ChunkMem, CHUNK_ALIGN, MAX_CLASS};
use std::alloc::Layout;
use std::cell::Cell;
use std::future::Future;
use std::pin::Pin;
use std::ptr::NonNull;
use std::sync::Arc;
use std::task::{Context, Poll};

/// How an arena's objects die.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Mode {
    /// One by one (boxes, vectors): chunks count allocations and frees, are reused once empty,
    /// and are retired when the arena moves on.
    Counted,
    /// All at once, when the arena drops (`MkArena`): chunks are kept until then.
    Owned,
}

pub(crate) struct Arena {
    mode: Mode,
    /// `Owned` mode: earlier chunks, retired when the arena drops.
    kept: Cell<Vec<NonNull<Chunk>>>,
    current: Cell<Option<NonNull<Chunk>>>,
    bump: Cell<usize>,
    end: Cell<usize>,
    next_size: Cell<usize>,
    /// Bytes of the chunks installed so far (`Owned` mode keeps them all until it drops).
    installed: Cell<usize>,
    budget: MkBudget,
    pool: Arc<ChunkPool>,
    /// A task arena's heap account, which its chunks are also counted on.
    task_account: Option<NonNull<Account>>,
}

// SAFETY: an arena exclusively owns its chunk pointers; moving it to another thread moves that
// ownership whole (it is not `Sync`: one thread uses it at a time, file invariant).
unsafe impl Send for Arena {}

/// A block handed out by an arena: where the object goes and the chunk that counts it (`None`
/// for zero-sized objects, which take no memory).
pub(crate) struct Block {
    pub(crate) ptr: NonNull<u8>,
    pub(crate) chunk: Option<NonNull<Chunk>>,
}

impl Arena {
    pub(crate) fn new(budget: MkBudget, pool: Arc<ChunkPool>, mode: Mode) -> Box<Arena> {
        Box::new(Arena {
            mode,
            kept: Cell::new(Vec::new()),
            current: Cell::new(None),
            bump: Cell::new(0),
            end: Cell::new(0),
            next_size: Cell::new(MIN_CLASS),
            installed: Cell::new(0),
            budget,
            pool,
            task_account: None,
        })
    }

    /// A task's arena: its chunks also count on the task's account (per-task figures).
    fn for_task(
        budget: MkBudget,
        pool: Arc<ChunkPool>,
        account: Option<NonNull<Account>>,
    ) -> Box<Arena> {
        let mut arena = Arena::new(budget, pool, Mode::Counted);
        arena.task_account = account;
        arena
    }

    #[inline(always)]
    pub(crate) fn id(&self) -> *const () {
        (self as *const Arena).cast()
    }

    /// Bytes of every chunk installed so far (for `Owned` arenas: the chunks held now).
    pub(crate) fn installed_bytes(&self) -> usize {
        self.installed.get()
    }

    pub(crate) fn budget(&self) -> &MkBudget {
        &self.budget
    }

    /// Checks what no chunk can satisfy.
    #[inline(always)]
    pub(crate) fn check_layout(layout: Layout) -> Result<(), MkAllocError> {
        if layout.align() > CHUNK_ALIGN {
            return Err(MkAllocError::AlignmentTooLarge {
                align: layout.align(),
                max: CHUNK_ALIGN,
            });
        }
        Ok(())
    }

    /// The pointer-bump fast path: no atomic, no lock.
    #[inline(always)]
    pub(crate) fn alloc_fast(&self, layout: Layout) -> Option<Block> {
        if layout.size() == 0 {
            // Zero-sized: any aligned, non-null address will do.
            let ptr = NonNull::new(std::ptr::without_provenance_mut(layout.align()))?;
            return Some(Block { ptr, chunk: None });
        }
        let chunk = self.current.get()?;
        self.bump_in(chunk, layout)
            .or_else(|| self.reuse_if_empty(chunk, layout))
    }

    /// The current chunk is full: if nothing in it is alive, allocate from its start again.
    #[cold]
    fn reuse_if_empty(&self, chunk: NonNull<Chunk>, layout: Layout) -> Option<Block> {
        // SAFETY: `current` is a live chunk owned by this arena (file invariant).
        let c = unsafe { chunk.as_ref() };
        if self.mode == Mode::Owned || !c.reset_if_empty() {
            return None;
        }
        self.bump.set(c.start());
        self.bump_in(chunk, layout)
    }

    #[inline(always)]
    fn bump_in(&self, chunk: NonNull<Chunk>, layout: Layout) -> Option<Block> {
        let start = self.bump.get().checked_add(layout.align() - 1)? & !(layout.align() - 1);
        let end = start.checked_add(layout.size())?;
        if end > self.end.get() {
            return None;
        }
        self.bump.set(end);
        if self.mode == Mode::Counted {
            // SAFETY: `current` is a live chunk owned by this arena.
            unsafe { chunk.as_ref() }.note_alloc();
        }
        Some(Block {
            // SAFETY: `start` lies inside the chunk's allocation, which is non-null.
            ptr: unsafe { NonNull::new_unchecked(start as *mut u8) },
            chunk: Some(chunk),
        })
    }

    /// The chunk sizes for `layout` when the arena must grow: the next growth step (at least
    /// the object) and the smallest chunk that holds the object. Chunks start
    /// `CHUNK_ALIGN`-aligned, so an object at the start needs no padding.
    pub(crate) fn next_chunk_sizes(&self, layout: Layout) -> Result<(usize, usize), MkAllocError> {
        let overflow = MkAllocError::SizeOverflow {
            requested: layout.size(),
        };
        let smallest = chunk_size_for(layout.size()).ok_or(overflow.clone())?;
        if smallest as u64 > crate::heap::MAX_BYTES {
            // More than any machine has: refused as the system would (after the budget's own
            // verdict), before any budget is charged for it.
            self.budget.check_fits_ever(smallest)?;
            return Err(MkAllocError::SystemOutOfMemory {
                requested: smallest,
            });
        }
        let grown = chunk_size_for(layout.size().max(self.next_size.get())).ok_or(overflow)?;
        Ok((grown, smallest))
    }

    /// The growth step's bytes, if the budget has them right now (see [`grow_now`]).
    pub(crate) fn grow_now(&self, grown: usize, smallest: usize) -> Option<MkBudgetGuard> {
        grow_now(&self.budget, grown, smallest)
    }

    /// Before growing: lets go of a current chunk in which nothing is alive (it was too small
    /// for the request), so the arena never holds budget it does not use while it asks for more.
    pub(crate) fn release_current_if_empty(&self) -> Retired {
        let Some(chunk) = self.current.get() else {
            return Retired(None);
        };
        // SAFETY: `current` is a live chunk owned by this arena.
        if self.mode == Mode::Counted && unsafe { chunk.as_ref() }.reset_if_empty() {
            self.current.set(None);
            self.bump.set(0);
            self.end.set(0);
            return Retired(Some(chunk));
        }
        Retired(None)
    }

    pub(crate) fn take_chunk(&self, size: usize) -> Result<ChunkMem, MkAllocError> {
        self.pool.take(size)
    }

    /// Makes `mem` (charged by `charge`) the current chunk; the previous one is let go of
    /// (`Owned` arenas keep it until they drop).
    pub(crate) fn install(&self, mem: ChunkMem, mut charge: MkBudgetGuard) -> Retired {
        if let Some(account) = self.task_account {
            // SAFETY: the task's memory record holds its account for as long as the task's
            // arena exists (the arena is dropped when the task completes, before the record).
            unsafe { charge.count_on_task(account) };
        }
        let size = mem.size();
        self.installed.set(self.installed.get() + size);
        let chunk = Chunk::new(mem, self.pool.clone(), charge, self.id());
        let mut retired = Retired(None);
        if let Some(old) = self.current.replace(Some(chunk)) {
            match self.mode {
                Mode::Counted => retired = Retired(Some(old)),
                Mode::Owned => {
                    let mut kept = self.kept.take();
                    kept.push(old);
                    self.kept.set(kept);
                }
            }
        }
        // SAFETY: just created, owned by this arena.
        let c = unsafe { chunk.as_ref() };
        self.bump.set(c.start());
        self.end.set(c.end());
        if size <= MAX_CLASS {
            self.next_size
                .set((self.next_size.get() * 2).min(MAX_CLASS));
        }
        retired
    }

    /// Allocates without waiting: the fast path, else a new chunk if the budget has room now
    /// (under `Evict`, after evicting).
    #[inline(always)]
    pub(crate) fn try_alloc(&self, layout: Layout) -> Result<Block, MkAllocError> {
        Arena::check_layout(layout)?;
        match self.alloc_fast(layout) {
            Some(block) => Ok(block),
            None => self.try_alloc_in_new_chunk(layout),
        }
    }

    /// One poll of an allocation that may need a new chunk: bump, or acquire the chunk's bytes
    /// under the budget's policy (`acquire` keeps the request between polls) and install it.
    /// For arenas that no lock guards (task arenas, `MkArena`): shared arenas allocate through
    /// shared.rs.
    pub(crate) fn poll_alloc(
        &self,
        layout: Layout,
        acquire: &mut Option<(Acquire, usize)>,
        cx: &mut Context<'_>,
    ) -> Result<Poll<Block>, MkAllocError> {
        Arena::check_layout(layout)?;
        loop {
            if let Some((pending, size)) = acquire.as_mut() {
                let charge = match Pin::new(pending).poll(cx) {
                    Poll::Pending => return Ok(Poll::Pending),
                    Poll::Ready(res) => res?,
                };
                let size = *size;
                *acquire = None;
                let mem = self.take_chunk(size)?;
                drop(self.install(mem, charge));
            }
            if let Some(block) = self.alloc_fast(layout) {
                return Ok(Poll::Ready(block));
            }
            drop(self.release_current_if_empty());
            let (grown, smallest) = self.next_chunk_sizes(layout)?;
            if let Some(charge) = self.grow_now(grown, smallest) {
                let mem = self.take_chunk(grown)?;
                drop(self.install(mem, charge));
                continue;
            }
            let size = smallest;
            *acquire = Some((self.budget.acquire(size), size));
        }
    }

    #[cold]
    fn try_alloc_in_new_chunk(&self, layout: Layout) -> Result<Block, MkAllocError> {
        drop(self.release_current_if_empty());
        let (grown, smallest) = self.next_chunk_sizes(layout)?;
        let (size, charge) = match self.grow_now(grown, smallest) {
            Some(charge) => (grown, charge),
            None => (smallest, self.budget.try_acquire(smallest)?),
        };
        let mem = self.take_chunk(size)?;
        drop(self.install(mem, charge));
        self.alloc_fast(layout).ok_or(MkAllocError::SizeOverflow {
            requested: layout.size(),
        })
    }
}

/// `grown` bytes of `budget` for an arena's next chunk, if the budget has them right now (no
/// waiting, no eviction); otherwise the arena grows by the smallest chunk, under the budget's
/// policy, so a step larger than what is free (or than the limit) never makes a request wait
/// or fail. A grown chunk takes at most half the budget's limit: one live value in a chunk
/// keeps all of it charged, and a chunk as large as the budget would leave eviction nothing
/// to give back short of every value, nor another thread room for a chunk of its own.
pub(crate) fn grow_now(budget: &MkBudget, grown: usize, smallest: usize) -> Option<MkBudgetGuard> {
    (grown > smallest && grown <= budget.limit() / 2 && budget.try_charge_fair(grown).is_ok())
        .then(|| budget.guard(grown))
}

/// A chunk an arena has let go of, retired when this drops. Retiring a chunk in which nothing
/// is alive gives its bytes back to the budget, which wakes waiting tasks: an arena shared
/// under a lock (caches, frames) drops this only once the lock is released.
#[must_use = "dropping it retires the chunk"]
pub(crate) struct Retired(Option<NonNull<Chunk>>);

impl Retired {
    /// Bytes of the chunk, if there is one.
    pub(crate) fn bytes(&self) -> usize {
        // SAFETY: a held chunk is alive until this retires it.
        self.0.map_or(0, |chunk| unsafe { chunk.as_ref() }.size())
    }
}

impl Drop for Retired {
    fn drop(&mut self) {
        if let Some(chunk) = self.0.take() {
            // SAFETY: its arena no longer reaches the chunk (it left `current` while the arena
            // was in the hands of this thread), so this is its owner's one retirement.
            unsafe { Chunk::retire(chunk) }
        }
    }
}

impl Drop for Arena {
    fn drop(&mut self) {
        let kept = self.kept.take();
        for chunk in kept.into_iter().chain(self.current.take()) {
            // SAFETY: these chunks are owned by this arena and retired once, here; in `Owned`
            // mode nothing was counted in them, so they are destroyed at once.
            unsafe { Chunk::retire(chunk) };
        }
    }
}
