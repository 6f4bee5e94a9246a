//! Frames: scoped arenas that a task opens and closes, all drawing on one shared capacity.
//!
//! Invariants:
//! - Each open frame owns a boxed `Arena` (counted mode) kept in the allocator's frame table
//!   under the table's mutex; the arena and its chunks' owner-only counters are only touched
//!   with that mutex held, which orders every use of them, whatever thread the task runs on.
//! - No user code runs with the mutex held: new chunks are charged to the budget (which may
//!   evict, and an evictable may close a frame of this allocator) before it is taken, and
//!   chunks and charges let go of under it are dropped after (memory/arena/shared.rs).
//! - No frame arena is ever a task's current arena, so every free of a frame object (wherever
//!   it happens) takes memory/arena/chunk.rs's remote path.
//! - Closing a frame drops its arena outside the mutex: chunks with live objects stay alive
//!   until their last object is freed (memory/arena/chunk.rs), so handles outlive their frame
//!   safely.

use crate::memory::arena::{self, shared, Arena, Block, Mode, MIN_CLASS};
use crate::memory::RuntimeMemory;
use crate::memory::{MkAllocError, MkAsyncBox, MkAsyncVec, MkBackpressure, MkBudget};
use crate::sync::lock_std as lock;
use crate::task_core as task;
use std::alloc::Layout;
use std::collections::HashMap;
use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::{self, ThreadId};

/// Settings of an [`MkAsyncFrameAlloc`]. Made with [`new`](Self::new) or `default()` and
/// adjusted with [`backpressure`](Self::backpressure); the fields can be read and changed, and
/// more may be added, so it is not built with a struct expression.
///
/// ```
/// use memkit_async_runtime::memory::{MkAsyncFrameConfig, MkBackpressure};
///
/// let config = MkAsyncFrameConfig::new(1 << 20);
/// assert_eq!(config.backpressure, MkBackpressure::Wait);
/// let config = config.backpressure(MkBackpressure::Fail);
/// assert_eq!((config.arena_size, config.backpressure), (1 << 20, MkBackpressure::Fail));
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct MkAsyncFrameConfig {
    /// Bytes all frames of the allocator (and its clones) may hold at once. Memory is taken in
    /// chunks of at least 4 KiB, so a capacity below 4096 bytes cannot open a frame.
    pub arena_size: usize,
    /// What `begin_frame` and allocations do when the capacity is exhausted.
    pub backpressure: MkBackpressure,
}

impl MkAsyncFrameConfig {
    /// `arena_size` bytes of capacity for all frames together, under [`MkBackpressure::Wait`].
    pub fn new(arena_size: usize) -> MkAsyncFrameConfig {
        MkAsyncFrameConfig {
            arena_size,
            backpressure: MkBackpressure::Wait,
        }
    }

    /// The same capacity under `policy`.
    #[must_use]
    pub fn backpressure(self, policy: MkBackpressure) -> MkAsyncFrameConfig {
        MkAsyncFrameConfig {
            backpressure: policy,
            ..self
        }
    }
}

impl Default for MkAsyncFrameConfig {
    /// 16 MiB, [`MkBackpressure::Wait`].
    fn default() -> Self {
        MkAsyncFrameConfig::new(16 << 20)
    }
}

/// A frame allocator: tasks open frames (scoped arenas) on it and allocate in their innermost
/// open frame; all frames share one capacity, charged into the runtime's memory limit.
///
/// Allocation returns owned handles ([`MkAsyncBox`], [`MkAsyncVec`]) that stay valid across
/// `.await` and task migration, and may be moved out of the frame or the task. A frame's memory
/// is recycled when its guard drops and nothing allocated in it is still alive.
///
/// Frames belong to the task that opens them (a memkit task, an
/// [`MkArenaTask`](crate::memory::MkArenaTask) in another executor, else the thread) and nest:
/// allocations go to the innermost frame still open. Clones share the capacity and the frames.
///
/// ```
/// use memkit_async_runtime::memory::{MkAsyncFrameAlloc, MkAsyncFrameConfig};
///
/// let rt = memkit_async_runtime::Runtime::new().unwrap();
/// rt.block_on(rt.spawn(async {
///     let alloc = MkAsyncFrameAlloc::new(MkAsyncFrameConfig::default());
///     let frame = alloc.begin_frame().await.unwrap();
///     let mut data = alloc.alloc_with([0u64; 64]).await.unwrap();
///     data[0] = 7;
///     memkit_async_runtime::task::yield_now().await; // may resume on another worker
///     assert_eq!(data[0], 7);
///     assert_eq!(alloc.used(), 4096);
///     drop(data);
///     drop(frame); // the frame's chunk goes back
///     assert_eq!(alloc.used(), 0);
/// })).unwrap();
/// ```
#[derive(Clone)]
pub struct MkAsyncFrameAlloc {
    inner: Arc<Inner>,
}

struct Inner {
    budget: MkBudget,
    frames: Mutex<HashMap<Owner, Vec<OpenFrame>>>,
    begun: AtomicU64,
}

/// Who a frame belongs to.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
enum Owner {
    Task(task::Id),
    /// An `MkArenaTask` (a future carrying its own arena, e.g. in a tokio task).
    Scope(u64),
    Thread(ThreadId),
}

impl Owner {
    fn current() -> Owner {
        if let Some(id) = task::try_id() {
            Owner::Task(id)
        } else if let Some(id) = arena::current_scope_id() {
            Owner::Scope(id)
        } else {
            Owner::Thread(thread::current().id())
        }
    }
}

struct OpenFrame {
    number: u64,
    arena: Box<Arena>,
}

impl MkAsyncFrameAlloc {
    /// A frame allocator with `config.arena_size` bytes of capacity. Inside a runtime the
    /// capacity is a child of the runtime's memory limit, so frames count against it too.
    pub fn new(config: MkAsyncFrameConfig) -> MkAsyncFrameAlloc {
        let budget =
            MkBudget::in_current_runtime(config.arena_size).with_policy(config.backpressure);
        MkAsyncFrameAlloc {
            inner: Arc::new(Inner {
                budget,
                frames: Mutex::new(HashMap::new()),
                begun: AtomicU64::new(0),
            }),
        }
    }

    /// Opens a frame in the current task, nested in any frame it has open. Opening takes the
    /// frame's first chunk (4 KiB) from the capacity, applying the policy if it is exhausted
    /// (`Wait` parks the task until a frame or object releases memory).
    ///
    /// # Errors
    /// Per [`MkAllocError`]: `CapacityReached` (`Fail`, or `Evict` with nothing to evict),
    /// `TimedOut`, or `ExceedsLimit` if the capacity is below one 4 KiB chunk.
    pub async fn begin_frame(&self) -> Result<MkAsyncFrameGuard, MkAllocError> {
        let charge = self.inner.budget.acquire(MIN_CLASS).await?;
        let pool = RuntimeMemory::current_pool();
        let arena = Arena::new(self.inner.budget.clone(), pool, Mode::Counted);
        let mem = arena.take_chunk(MIN_CLASS)?;
        drop(arena.install(mem, charge)); // A new arena: nothing to retire.
        let number = self.inner.begun.fetch_add(1, Ordering::Relaxed) + 1;
        let owner = Owner::current();
        lock(&self.inner.frames)
            .entry(owner)
            .or_default()
            .push(OpenFrame { number, arena });
        Ok(MkAsyncFrameGuard {
            inner: self.inner.clone(),
            owner,
            number,
        })
    }

    /// Allocates `T::default()` in the current task's innermost open frame.
    ///
    /// # Errors
    /// As [`alloc_with`](Self::alloc_with).
    pub async fn alloc<T: Default>(&self) -> Result<MkAsyncBox<T>, MkAllocError> {
        self.alloc_with(T::default()).await
    }

    /// Moves `value` into the current task's innermost open frame, applying the policy when the
    /// frame needs a new chunk and the capacity is exhausted.
    ///
    /// # Errors
    /// `NoFrame` if the task has no open frame (or the frame is closed while the allocation
    /// waits), else per [`MkAllocError`]. The value is dropped on error.
    pub async fn alloc_with<T>(&self, value: T) -> Result<MkAsyncBox<T>, MkAllocError> {
        let block = self.alloc_block(Layout::new::<T>()).await?;
        // SAFETY: the block is fresh and laid out for `T`.
        Ok(unsafe { MkAsyncBox::write(block, value) })
    }

    /// Allocates `len` default values, contiguous, in the current task's innermost open frame.
    /// The vector can grow later; growing moves it to the task's own arena.
    ///
    /// # Errors
    /// `SizeOverflow` if `len * size_of::<T>()` overflows, else as
    /// [`alloc_with`](Self::alloc_with).
    pub async fn alloc_slice<T: Default>(&self, len: usize) -> Result<MkAsyncVec<T>, MkAllocError> {
        let layout = Layout::array::<T>(len).map_err(|_| MkAllocError::SizeOverflow {
            requested: len.saturating_mul(size_of::<T>()),
        })?;
        let block = self.alloc_block(layout).await?;
        Ok(MkAsyncVec::filled_in(block, len, T::default))
    }

    /// A block in the innermost open frame (the one found first, if the allocation has to
    /// wait for a chunk). The frame table is locked only to bump and install: a new chunk is
    /// charged with no lock held, since eviction runs user code that may close frames.
    async fn alloc_block(&self, layout: Layout) -> Result<Block, MkAllocError> {
        let owner = Owner::current();
        let mut frame = None;
        shared::alloc(&self.inner.budget, |charge, spare| {
            let frames = lock(&self.inner.frames);
            let open = frames.get(&owner).and_then(|stack| match frame {
                None => stack.last(),
                Some(n) => stack.iter().find(|f| f.number == n),
            });
            let Some(open) = open else {
                spare.give_back(charge);
                return Err(MkAllocError::NoFrame);
            };
            frame = Some(open.number);
            open.arena.step_shared(layout, charge, spare)
        })
        .await
    }

    /// Bytes held by all open frames and the objects that outlive theirs.
    pub fn used(&self) -> usize {
        self.inner.budget.used()
    }

    /// Bytes of capacity not in use.
    pub fn remaining(&self) -> usize {
        self.inner.budget.limit().saturating_sub(self.used())
    }

    /// The number of frames begun on this allocator (and its clones) so far.
    pub fn frame(&self) -> u64 {
        self.inner.begun.load(Ordering::Relaxed)
    }

    /// The budget frames are charged to (its limit is `arena_size`).
    pub fn budget(&self) -> &MkBudget {
        &self.inner.budget
    }
}

impl fmt::Debug for MkAsyncFrameAlloc {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MkAsyncFrameAlloc")
            .field("capacity", &self.inner.budget.limit())
            .field("used", &self.used())
            .field("frames_begun", &self.frame())
            .finish()
    }
}

/// An open frame; dropping it closes the frame.
///
/// Frames may be closed in any order: closing an outer frame leaves inner ones open, and
/// allocation goes to the innermost frame still open. The guard may be moved to and dropped in
/// another task or thread: the frame still belongs to (and is removed from) the task that
/// opened it. Objects allocated in a frame outlive it safely; its memory is recycled once the
/// guard is gone and they are all dropped. Forgetting the guard (`mem::forget`) keeps the frame
/// open, and its memory counted, until the allocator is dropped.
#[must_use = "dropping the guard closes the frame at once"]
pub struct MkAsyncFrameGuard {
    inner: Arc<Inner>,
    owner: Owner,
    number: u64,
}

impl MkAsyncFrameGuard {
    /// The frame's number: the value of [`MkAsyncFrameAlloc::frame`] right after it was begun.
    pub fn number(&self) -> u64 {
        self.number
    }
}

impl Drop for MkAsyncFrameGuard {
    fn drop(&mut self) {
        let closed = {
            let mut frames = lock(&self.inner.frames);
            let Some(stack) = frames.get_mut(&self.owner) else {
                return;
            };
            let closed = stack
                .iter()
                .position(|f| f.number == self.number)
                .map(|i| stack.remove(i));
            if stack.is_empty() {
                frames.remove(&self.owner);
            }
            closed
        };
        // Dropped outside the lock: releasing chunks serves waiters, who may take it.
        drop(closed);
    }
}

impl fmt::Debug for MkAsyncFrameGuard {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MkAsyncFrameGuard")
            .field("number", &self.number)
            .finish_non_exhaustive()
    }
}
