//! `MkArena`: an owned arena that can be filled in one task and handed whole to another.
//!
//! Invariants: values live until the `MkArena` drops, which runs their destructors (newest
//! first) through type-erased drop functions and then frees its chunks; values are `'static`,
//! so nothing they borrow can die before that drop; references handed out borrow the arena, so
//! it cannot move or drop while they live. `MkArena` is `Send` (its values must be `Send`) and
//! `!Sync`, so only one thread allocates in it at a time.

use crate::memory::arena::{Arena, Mode};
use crate::memory::{MkAllocError, MkBudget, RuntimeMemory};
use std::alloc::Layout;
use std::cell::Cell;
use std::fmt;
use std::future::poll_fn;
use std::marker::PhantomData;
use std::ptr::NonNull;

use std::task::Poll;

type DropFn = unsafe fn(*mut u8);

/// An owned bump arena charged to a budget, that moves whole between tasks (a pointer move:
/// zero-copy hand-off of everything allocated in it).
///
/// ```
/// use memkit_async_runtime::memory::{MkArena, MkBudget};
///
/// let budget = MkBudget::new(1 << 20);
/// let arena = MkArena::new(&budget);
/// let batch = arena.alloc([7u64; 16]).unwrap();
/// batch[0] = 1;
/// assert_eq!(budget.used(), 4096); // one chunk, charged once
/// let handle = std::thread::spawn(move || arena); // moves the arena, not the data
/// drop(handle.join().unwrap());
/// assert_eq!(budget.used(), 0);
/// ```
pub struct MkArena {
    arena: Box<Arena>,
    drops: Cell<Vec<(NonNull<u8>, DropFn)>>,
    _not_sync: PhantomData<Cell<()>>,
}

// SAFETY: the arena exclusively owns its chunks and the `Send` values in them; it is `!Sync`,
// so moving it is the only way another thread reaches them.
unsafe impl Send for MkArena {}

impl MkArena {
    /// An empty arena whose chunks are charged to `budget` (nothing is taken until the first
    /// allocation). Inside a runtime it recycles chunks through the runtime's pool.
    pub fn new(budget: &MkBudget) -> MkArena {
        let pool = RuntimeMemory::current_pool();
        MkArena {
            arena: Arena::new(budget.clone(), pool, Mode::Owned),
            drops: Cell::new(Vec::new()),
            _not_sync: PhantomData,
        }
    }

    /// The budget the arena's chunks are charged to.
    pub fn budget(&self) -> &MkBudget {
        self.arena.budget()
    }

    /// Bytes of chunk memory the arena holds (what it is charged to its budget).
    ///
    /// ```
    /// use memkit_async_runtime::memory::{MkArena, MkBudget};
    ///
    /// let arena = MkArena::new(&MkBudget::new(1 << 20));
    /// assert_eq!(arena.allocated_bytes(), 0);
    /// arena.alloc(1u64).unwrap();
    /// assert_eq!(arena.allocated_bytes(), 4096);
    /// ```
    pub fn allocated_bytes(&self) -> usize {
        self.arena.installed_bytes()
    }

    /// Moves `value` into the arena without waiting: if a new chunk is needed and the budget is
    /// full, this fails (after evicting, under `Evict`).
    ///
    /// Values must be `'static`: the arena runs their destructors when it drops, and nothing in
    /// its type ties that moment to what a value borrows (it moves freely between tasks), so a
    /// borrowed value could be dropped after the data it borrows is gone.
    ///
    /// # Errors
    /// Per [`MkAllocError`]; the value is dropped on error.
    #[allow(clippy::mut_from_ref)] // Each call hands out a distinct, fresh slot.
    pub fn alloc<T: Send + 'static>(&self, value: T) -> Result<&mut T, MkAllocError> {
        let block = self.arena.try_alloc(Layout::new::<T>())?;
        // SAFETY: the block is fresh and laid out for `T`; it lives until the arena drops.
        Ok(unsafe { self.place(block.ptr, value) })
    }

    /// Moves `value` into the arena, applying the budget's policy when a new chunk does not fit
    /// (`Wait` parks the task until memory is released).
    ///
    /// It takes `&mut self` so the future is `Send` (an `MkArena` is not `Sync`) and can be
    /// awaited inside spawned tasks; to keep several values borrowed at once, use
    /// [`alloc`](Self::alloc), which never waits.
    ///
    /// Values must be `'static`, as in [`alloc`](Self::alloc).
    ///
    /// # Errors
    /// Per [`MkAllocError`]; the value is dropped on error.
    pub async fn alloc_async<T: Send + 'static>(
        &mut self,
        value: T,
    ) -> Result<&mut T, MkAllocError> {
        let layout = Layout::new::<T>();
        let mut acquire = None;
        // Held as `&mut` so the future stays `Send` (an `Arena` is `Send`, not `Sync`).
        let arena: &mut Arena = &mut self.arena;
        let block = poll_fn(move |cx| {
            arena
                .poll_alloc(layout, &mut acquire, cx)
                .map_or_else(|e| Poll::Ready(Err(e)), |p| p.map(Ok))
        })
        .await?;
        // SAFETY: as in `alloc`.
        Ok(unsafe { self.place(block.ptr, value) })
    }

    /// # Safety
    /// `ptr` is fresh arena memory laid out for `T`.
    #[allow(clippy::mut_from_ref)]
    unsafe fn place<T: 'static>(&self, ptr: NonNull<u8>, value: T) -> &mut T {
        let ptr = ptr.cast::<T>();
        // SAFETY: caller contract.
        unsafe { ptr.as_ptr().write(value) };
        if std::mem::needs_drop::<T>() {
            unsafe fn drop_value<T: 'static>(p: *mut u8) {
                // SAFETY: registered for a live `T` at `p`, run once when the arena drops.
                unsafe { p.cast::<T>().drop_in_place() }
            }
            let mut drops = self.drops.take();
            drops.push((ptr.cast(), drop_value::<T>));
            self.drops.set(drops);
        }
        // SAFETY: the slot is initialised, distinct from every other slot, and lives as long as
        // the arena, which the returned borrow keeps alive.
        unsafe { &mut *ptr.as_ptr() }
    }
}

impl Drop for MkArena {
    fn drop(&mut self) {
        let drops = self.drops.take();
        for (ptr, drop_fn) in drops.into_iter().rev() {
            // SAFETY: each registered value is alive and dropped once; no borrow of the arena
            // outlives `&mut self`.
            unsafe { drop_fn(ptr.as_ptr()) };
        }
        // The chunks are freed when `self.arena` drops.
    }
}

impl fmt::Debug for MkArena {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MkArena")
            .field("budget", self.budget())
            .finish_non_exhaustive()
    }
}
