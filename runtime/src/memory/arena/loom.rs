//! Loom models of the chunk counting protocol (chunk.rs), driven through the real `Arena`
//! (allocation, reuse of an empty chunk, retirement on drop), `Chunk::free_one` and the real
//! budget and chunk pool that a destroyed chunk goes back to.
//!
//! Run with
//! `RUSTFLAGS="--cfg loom -C debug-assertions" CARGO_TARGET_DIR=target/loom cargo test -p memkit-async-runtime --release --lib loom`.
//!
//! Every model checks, on every interleaving explored:
//! - each chunk is destroyed exactly once, after its last object: at the end the budget is
//!   back to 0 (each chunk's bytes released once) and the pool holds every chunk ever taken
//!   from the system, once each;
//! - memory is reused only after every object that lived in it is gone, and that drop is
//!   ordered before the reuse: each object's memory is a loom `UnsafeCell` (one per address,
//!   kept across reuse), written when the object is made and when it is dropped. The owner
//!   writes it again when it reuses an emptied chunk, and any thread that sees the budget back
//!   to 0 (the chunk destroyed, its memory in the pool for anyone) reads every cell, as the
//!   next user of the memory would. An ordering missing from the protocol shows up as a loom
//!   causality violation.
//!
//! Unsafe code: `Chunk::free_one` is called once per allocated object, after the model has
//! dropped it (its cell written), with the arena's identity only on the arena's own thread.

use super::chunk::Chunk;
use super::chunk_pool::{ChunkPool, MIN_CLASS};
use super::{Arena, Mode};
use crate::memory::MkBudget;
use crate::sync::loom_model;
use loom::cell::UnsafeCell;
use loom::thread;
use std::alloc::Layout;
use std::collections::HashMap;
use std::ptr::{self, NonNull};
use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
use std::sync::{Arc, Mutex};

/// Objects of half the smallest chunk: two fill the arena's first chunk.
const OBJECT: usize = MIN_CLASS / 2;

/// The bytes of one object slot, as loom sees them.
struct Memory(UnsafeCell<()>);

// SAFETY: the cell holds no data; it is only accessed through `with_mut`, which loom checks for
// accesses not ordered by the protocol (that is the point of the model).
unsafe impl Sync for Memory {}

impl Memory {
    fn write(&self) {
        self.0.with_mut(|_| ());
    }

    fn read(&self) {
        self.0.with(|_| ());
    }
}

/// An object allocated in a chunk, movable to another thread like an `MkAsyncBox`.
struct Object {
    addr: usize,
    chunk: NonNull<Chunk>,
}

// SAFETY: an object may be freed from any thread; the chunk is touched only through the
// counting protocol under test.
unsafe impl Send for Object {}

struct Harness {
    budget: MkBudget,
    pool: Arc<ChunkPool>,
    /// Object memory by address (the model's own bookkeeping: a std lock, invisible to loom).
    memory: Mutex<HashMap<usize, Arc<Memory>>>,
}

impl Harness {
    /// A budget of `chunks` smallest chunks, and a pool that keeps every chunk given back.
    fn new(chunks: usize) -> Arc<Harness> {
        Arc::new(Harness {
            budget: MkBudget::new(chunks * MIN_CLASS),
            pool: Arc::new(ChunkPool::new(0, usize::MAX)),
            memory: Mutex::new(HashMap::new()),
        })
    }

    fn arena(&self) -> Box<Arena> {
        Arena::new(self.budget.clone(), self.pool.clone(), Mode::Counted)
    }

    fn memory(&self, addr: usize) -> Arc<Memory> {
        let mut memory = self.memory.lock().unwrap();
        let cell = memory
            .entry(addr)
            .or_insert_with(|| Arc::new(Memory(UnsafeCell::new(()))));
        cell.clone()
    }

    /// Allocates an object in `arena` (its owner's thread) and writes it.
    fn alloc(&self, arena: &Arena) -> Object {
        let layout = Layout::from_size_align(OBJECT, 8).unwrap();
        let block = arena
            .try_alloc(layout)
            .expect("the budget holds the model's chunks");
        let addr = block.ptr.as_ptr() as usize;
        self.memory(addr).write();
        Object {
            addr,
            chunk: block.chunk.expect("a sized object lives in a chunk"),
        }
    }

    /// Drops `object` and frees it, as a thread whose current arena is `current` (the owning
    /// arena's identity for a local free, null for a free from outside any task).
    fn free(&self, object: Object, current: *const ()) {
        self.memory(object.addr).write();
        // SAFETY: the object was allocated in this chunk, has just been dropped and is freed
        // once (it is consumed); `current` is the arena's identity only on the arena's thread.
        unsafe { Chunk::free_one(object.chunk, current) };
    }

    /// If every chunk is destroyed (its bytes released after its memory went back to the
    /// pool), reads every slot's memory, as the pool's next user may. (A read, not a write:
    /// several threads may see the chunk destroyed, and their reads do not race each other.)
    ///
    /// The bytes are read with a read-modify-write, which sees the latest value: a plain load
    /// may see a 0 the budget went through earlier (an arena gives back an emptied chunk before
    /// it charges the next one) and take a chunk still in use for destroyed.
    fn reuse_if_destroyed(&self) {
        if self.budget.used_latest() == 0 {
            let cells: Vec<_> = self.memory.lock().unwrap().values().cloned().collect();
            cells.iter().for_each(|m| m.read());
        }
    }

    /// Every chunk destroyed exactly once: the bytes are back, the pool holds each chunk
    /// taken from the system once.
    fn assert_all_returned(&self, chunks: u64) {
        assert_eq!(self.budget.used(), 0, "{:?}", self.budget);
        assert_eq!(self.pool.chunks_from_system(), chunks);
        let bytes_taken = match chunks {
            1 => MIN_CLASS,
            // The arena's second chunk is its growth step, twice the first.
            2 => 3 * MIN_CLASS,
            _ => unreachable!("the models use at most two chunks"),
        };
        assert_eq!(self.pool.pooled_bytes(), bytes_taken);
    }
}

/// 5. The owner frees one object and retires the chunk (its arena drops) while another thread
///    frees the chunk's other object: whichever of the two comes last destroys the chunk, once.
#[test]
fn loom_chunk_remote_free_racing_retire() {
    loom_model("chunk_remote_free_racing_retire", None, || {
        let h = Harness::new(1);
        let arena = h.arena();
        let (kept, sent) = (h.alloc(&arena), h.alloc(&arena));
        assert_eq!(kept.chunk, sent.chunk);
        let remote = {
            let h = h.clone();
            thread::spawn(move || {
                h.free(sent, ptr::null());
                h.reuse_if_destroyed();
            })
        };
        h.free(kept, arena.id());
        drop(arena);
        h.reuse_if_destroyed();
        remote.join().unwrap();
        h.assert_all_returned(1);
    });
}

/// 6. After the owner retired the chunk with two objects alive, two threads free them at once:
///    exactly one of them destroys the chunk, after the other's object is gone.
#[test]
fn loom_chunk_two_remote_frees_after_retire() {
    loom_model("chunk_two_remote_frees_after_retire", None, || {
        let h = Harness::new(1);
        let arena = h.arena();
        let (first, second) = (h.alloc(&arena), h.alloc(&arena));
        drop(arena);
        assert_eq!(h.budget.used(), MIN_CLASS, "live objects keep the chunk");
        let remote = {
            let h = h.clone();
            thread::spawn(move || {
                h.free(first, ptr::null());
                h.reuse_if_destroyed();
            })
        };
        h.free(second, ptr::null());
        h.reuse_if_destroyed();
        remote.join().unwrap();
        h.assert_all_returned(1);
    });
}

/// Executions of model 7 in which the owner reused its emptied chunk, and in which it moved
/// to a new chunk: both must occur.
static REUSED: AtomicUsize = AtomicUsize::new(0);
static GREW: AtomicUsize = AtomicUsize::new(0);

/// 7. The owner's chunk is full; it frees one object and allocates again while another thread
///    frees the other. If the remote free is seen, the chunk is reset and its memory reused
///    (ordered after the remote object's drop); otherwise the owner moves to a new chunk and
///    the old one is destroyed by whichever free or check comes last. Either way, once the
///    owner's last object is freed and its arena drops, everything is given back once.
#[test]
fn loom_chunk_remote_free_racing_reuse() {
    loom_model("chunk_remote_free_racing_reuse", None, || {
        // Room for the first chunk and a grown one of twice its size (a grown chunk takes at
        // most half the budget).
        let h = Harness::new(4);
        let arena = h.arena();
        let (sent, kept) = (h.alloc(&arena), h.alloc(&arena));
        let start = sent.addr;
        let remote = {
            let h = h.clone();
            thread::spawn(move || {
                h.free(sent, ptr::null());
                h.reuse_if_destroyed();
            })
        };
        h.free(kept, arena.id());
        let next = h.alloc(&arena);
        // The old chunk's memory stays in the pool, so a new chunk never starts there.
        let reused = next.addr == start;
        h.free(next, arena.id());
        drop(arena);
        h.reuse_if_destroyed();
        remote.join().unwrap();
        h.assert_all_returned(if reused { 1 } else { 2 });
        if reused {
            REUSED.fetch_add(1, SeqCst);
        } else {
            GREW.fetch_add(1, SeqCst);
        }
    });
    assert!(REUSED.load(SeqCst) > 0 && GREW.load(SeqCst) > 0);
}
