//! `ChunkPool`: arena memory comes from the system in chunks of a few size classes and is
//! recycled through per-worker caches and a global pool; past the pool's cap, chunks go back to
//! the system, so the process's memory falls after a burst.
//!
//! Invariants: a `ChunkMem` owns `size` bytes allocated with `Layout(size, CHUNK_ALIGN)`; it is
//! in at most one cache or pool list, or owned by one chunk in use; class chunks are exactly a
//! class size, dedicated chunks (above the largest class) are never pooled.

use crate::context;
use crate::memory::MkAllocError;
use crate::sync::lock_std as lock;
use std::alloc::{self, Layout};
use std::ptr::NonNull;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering::Relaxed};
use std::sync::Mutex;

/// Alignment of every chunk, and the largest alignment an arena object may ask for.
pub(crate) const CHUNK_ALIGN: usize = 4096;
/// The smallest chunk class; classes double up to `MAX_CLASS`.
pub(crate) const MIN_CLASS: usize = 4 << 10;
/// The largest pooled chunk; larger requests get a dedicated chunk.
pub(crate) const MAX_CLASS: usize = 1 << 20;
const CLASSES: usize = (MAX_CLASS / MIN_CLASS).trailing_zeros() as usize + 1;
/// Chunks of each class a worker keeps for itself before using the global pool.
const WORKER_CACHE: usize = 4;

/// Raw chunk memory.
pub(crate) struct ChunkMem {
    ptr: NonNull<u8>,
    size: usize,
}

// SAFETY: `ChunkMem` is a unique owner of plain bytes.
unsafe impl Send for ChunkMem {}

impl ChunkMem {
    pub(crate) fn ptr(&self) -> NonNull<u8> {
        self.ptr
    }

    pub(crate) fn size(&self) -> usize {
        self.size
    }
}

type Classes = [Vec<ChunkMem>; CLASSES];

/// A pool of arena chunks shared by one runtime's tasks.
pub(crate) struct ChunkPool {
    global: Mutex<Classes>,
    workers: Box<[Mutex<Classes>]>,
    cap: usize,
    pooled_bytes: AtomicUsize,
    from_system: AtomicU64,
    to_system: AtomicU64,
    reused: AtomicU64,
}

/// The chunk size that holds `bytes`: the smallest class, or `bytes` rounded up to
/// `CHUNK_ALIGN` above the largest class. `None` on overflow.
pub(crate) fn chunk_size_for(bytes: usize) -> Option<usize> {
    if bytes <= MIN_CLASS {
        Some(MIN_CLASS)
    } else if bytes <= MAX_CLASS {
        Some(bytes.next_power_of_two())
    } else {
        bytes
            .checked_add(CHUNK_ALIGN - 1)
            .map(|b| b & !(CHUNK_ALIGN - 1))
    }
}

fn class_of(size: usize) -> Option<usize> {
    (size.is_power_of_two() && (MIN_CLASS..=MAX_CLASS).contains(&size))
        .then(|| (size / MIN_CLASS).trailing_zeros() as usize)
}

impl ChunkPool {
    /// A pool for `workers` worker threads that keeps at most `cap` bytes of idle chunks
    /// globally (worker caches hold a few more, at most `WORKER_CACHE` per class each).
    pub(crate) fn new(workers: usize, cap: usize) -> ChunkPool {
        ChunkPool {
            global: Mutex::new(Default::default()),
            workers: (0..workers)
                .map(|_| Mutex::new(Default::default()))
                .collect(),
            cap,
            pooled_bytes: AtomicUsize::new(0),
            from_system: AtomicU64::new(0),
            to_system: AtomicU64::new(0),
            reused: AtomicU64::new(0),
        }
    }

    fn worker_cache(&self) -> Option<&Mutex<Classes>> {
        context::worker_index().and_then(|i| self.workers.get(i))
    }

    /// A chunk of exactly `size` bytes (a value from `chunk_size_for`).
    pub(crate) fn take(&self, size: usize) -> Result<ChunkMem, MkAllocError> {
        if let Some(class) = class_of(size) {
            let cached = self
                .worker_cache()
                .and_then(|c| lock(c)[class].pop())
                .or_else(|| {
                    let mem = lock(&self.global)[class].pop()?;
                    self.pooled_bytes.fetch_sub(mem.size, Relaxed);
                    Some(mem)
                });
            if let Some(mem) = cached {
                self.reused.fetch_add(1, Relaxed);
                return Ok(mem);
            }
        }
        let layout = Layout::from_size_align(size, CHUNK_ALIGN)
            .map_err(|_| MkAllocError::SystemOutOfMemory { requested: size })?;
        // Counted by the arena's budget guard, not again as heap memory.
        let _exempt = crate::heap::exempt();
        // SAFETY: `size` is never zero (at least `MIN_CLASS`).
        let ptr = unsafe { alloc::alloc(layout) };
        let ptr = NonNull::new(ptr).ok_or(MkAllocError::SystemOutOfMemory { requested: size })?;
        self.from_system.fetch_add(1, Relaxed);
        Ok(ChunkMem { ptr, size })
    }

    /// Takes back a chunk no longer in use.
    pub(crate) fn put(&self, mem: ChunkMem) {
        let Some(class) = class_of(mem.size) else {
            return self.release_to_system(mem);
        };
        if let Some(cache) = self.worker_cache() {
            let mut cache = lock(cache);
            if cache[class].len() < WORKER_CACHE {
                cache[class].push(mem);
                return;
            }
        }
        let mut global = lock(&self.global);
        if self.pooled_bytes.load(Relaxed) + mem.size <= self.cap {
            self.pooled_bytes.fetch_add(mem.size, Relaxed);
            global[class].push(mem);
            return;
        }
        drop(global);
        self.release_to_system(mem);
    }

    fn release_to_system(&self, mem: ChunkMem) {
        self.to_system.fetch_add(1, Relaxed);
        // SAFETY: allocated in `take` with this layout and owned uniquely (file invariant).
        unsafe {
            alloc::dealloc(
                mem.ptr.as_ptr(),
                Layout::from_size_align_unchecked(mem.size, CHUNK_ALIGN),
            )
        }
    }

    /// Idle bytes held in the global pool.
    pub(crate) fn pooled_bytes(&self) -> usize {
        self.pooled_bytes.load(Relaxed)
    }

    /// Chunks allocated from the system so far.
    pub(crate) fn chunks_from_system(&self) -> u64 {
        self.from_system.load(Relaxed)
    }

    /// Chunks given back to the system so far.
    pub(crate) fn chunks_to_system(&self) -> u64 {
        self.to_system.load(Relaxed)
    }

    /// Chunk requests served from a cache or the pool.
    pub(crate) fn chunks_reused(&self) -> u64 {
        self.reused.load(Relaxed)
    }
}

impl Drop for ChunkPool {
    fn drop(&mut self) {
        let caches = std::iter::once(&self.global).chain(self.workers.iter());
        let all: Vec<ChunkMem> = caches
            .flat_map(|c| {
                lock(c)
                    .iter_mut()
                    .flat_map(std::mem::take)
                    .collect::<Vec<_>>()
            })
            .collect();
        for mem in all {
            self.release_to_system(mem);
        }
    }
}

impl std::fmt::Debug for ChunkPool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ChunkPool")
            .field("cap", &self.cap)
            .field("pooled_bytes", &self.pooled_bytes())
            .finish_non_exhaustive()
    }
}
