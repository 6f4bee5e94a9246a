//! `MkGlobalAlloc`: the global allocator that charges ordinary heap memory (`Vec`, `String`,
//! `Box`, whatever libraries allocate) to the budget of the task that allocates it.
//!
//! Each block carries an 8-byte trailer after the caller's bytes (at the caller's size rounded
//! up to 8) that names the account charged for it, so a free, on any thread and at any time,
//! credits that account. A trailer rather than a header keeps over-aligned requests cheap (a
//! header in front of a 4096-aligned block would cost 4096 bytes); BENCHMARKS.md has the
//! measured time and memory cost.
//!
//! Invariants: every block handed out was allocated from the inner allocator with
//! `outer(layout)`, whose size leaves room for the trailer at `tail(layout)`, 8-aligned because
//! `outer` raises the alignment to at least 8; the trailer holds the tag `charge` returned for
//! `outer(layout).size()` bytes, credited exactly once when the block is freed or moved.

use super::local::{with_local, Local, UNATTRIBUTED};
use std::alloc::{GlobalAlloc, Layout, System};
use std::fmt;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};

/// Set on the first allocation through an `MkGlobalAlloc`: the engine keeps per-task accounts
/// only then.
static INSTALLED: AtomicBool = AtomicBool::new(false);

/// Whether an `MkGlobalAlloc` has served an allocation in this process.
#[inline(always)]
pub(crate) fn installed() -> bool {
    INSTALLED.load(Relaxed)
}

/// A global allocator that charges every allocation made while a memkit task is polled to that
/// task's budget (its own, else its runtime's root), and credits each free to the budget that
/// was charged, whenever and wherever it happens. Memory allocated outside tasks is counted as
/// unattributed.
///
/// Install it in the binary:
///
/// ```
/// #[global_allocator]
/// static GLOBAL: memkit_async_runtime::heap::MkGlobalAlloc = memkit_async_runtime::heap::MkGlobalAlloc::system();
///
/// let rt = memkit_async_runtime::Builder::new().memory_limit(64 << 20).build().unwrap();
/// let used = rt.block_on(rt.spawn(async {
///     let v = vec![0u8; 1 << 20];
///     memkit_async_runtime::task::yield_now().await;
///     v.len()
/// }));
/// assert_eq!(used.unwrap(), 1 << 20);
/// ```
///
/// Any `GlobalAlloc` can serve the memory: `MkGlobalAlloc::new(mimalloc::MiMalloc)`.
///
/// Nothing is refused inside an allocation (a `GlobalAlloc` can neither wait nor fail without
/// aborting the process): budgets are enforced between polls, by the scheduler, through each
/// budget's policy.
pub struct MkGlobalAlloc<A = System> {
    inner: A,
}

impl MkGlobalAlloc<System> {
    /// Accounting over the system allocator.
    pub const fn system() -> MkGlobalAlloc<System> {
        MkGlobalAlloc { inner: System }
    }
}

impl<A> MkGlobalAlloc<A> {
    /// Accounting over `inner`, which serves the memory.
    pub const fn new(inner: A) -> MkGlobalAlloc<A> {
        MkGlobalAlloc { inner }
    }

    /// The allocator that serves the memory.
    pub fn inner(&self) -> &A {
        &self.inner
    }
}

impl<A: fmt::Debug> fmt::Debug for MkGlobalAlloc<A> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MkGlobalAlloc")
            .field("inner", &self.inner)
            .finish()
    }
}

/// Where the trailer sits: the caller's size rounded up to 8.
#[inline(always)]
fn tail(size: usize) -> Option<usize> {
    size.checked_next_multiple_of(8)
}

/// The layout asked of the inner allocator: room for the trailer, aligned to at least 8.
#[inline(always)]
pub(crate) fn outer(layout: Layout) -> Option<Layout> {
    let size = tail(layout.size())?.checked_add(8)?;
    Layout::from_size_align(size, layout.align().max(8)).ok()
}

/// # Safety
/// `ptr` is a block allocated with `outer(layout)`, which succeeded.
#[inline(always)]
unsafe fn trailer(ptr: *mut u8, layout: Layout) -> *mut usize {
    // SAFETY: `tail` succeeded when the block was allocated; the trailer lies inside the block
    // and is 8-aligned (file invariant).
    unsafe { ptr.add(tail(layout.size()).unwrap_unchecked()).cast() }
}

#[inline(always)]
fn charge(bytes: usize) -> usize {
    with_local(|l| l.charge(bytes as u64)).unwrap_or(UNATTRIBUTED)
}

/// # Safety
/// `tag` was returned by `charge` for `bytes`; credited once.
#[inline(always)]
unsafe fn credit(tag: usize, bytes: usize) {
    // SAFETY: forwarded caller contract.
    let done = with_local(|l| unsafe { l.credit(tag, bytes as u64) });
    if done.is_none() {
        // No thread state (never seen on the supported platforms): credit on a scratch state
        // with no scope, which publishes at once.
        let scratch = Local::new();
        // SAFETY: as above.
        unsafe { scratch.credit(tag, bytes as u64) };
        crate::heap::local::flush_state(&scratch);
    }
}

#[inline(always)]
fn mark_installed<A: 'static>() {
    if !INSTALLED.load(Relaxed) {
        installing::<A>();
    }
}

#[cold]
fn installing<A: 'static>() {
    if std::any::TypeId::of::<A>() == std::any::TypeId::of::<System>() {
        RELEASES_TO_SYSTEM.store(true, Relaxed);
    }
    INSTALLED.store(true, Relaxed);
}

/// The installed allocator serves memory from `System`, whose retained memory
/// `release_retained` can hand back.
static RELEASES_TO_SYSTEM: AtomicBool = AtomicBool::new(false);
/// When `release_retained` last ran, in milliseconds since `EPOCH`.
static LAST_RELEASE: AtomicU64 = AtomicU64::new(0);

/// Asks the system allocator to return the free memory it keeps to the operating system
/// (glibc keeps freed blocks in per-thread arenas, so a process's resident memory can stay
/// tens of MiB above its live bytes). The scheduler calls this when memory comes back while
/// tasks are held for it; at most once per 10 ms, and only where it means something (the
/// system allocator on glibc).
pub(crate) fn release_retained() {
    if !RELEASES_TO_SYSTEM.load(Relaxed) {
        return;
    }
    static EPOCH: std::sync::OnceLock<std::time::Instant> = std::sync::OnceLock::new();
    let now = EPOCH
        .get_or_init(std::time::Instant::now)
        .elapsed()
        .as_millis() as u64
        + 10;
    let last = LAST_RELEASE.load(Relaxed);
    if now < last + 10
        || LAST_RELEASE
            .compare_exchange(last, now, Relaxed, Relaxed)
            .is_err()
    {
        return;
    }
    trim_system();
}

#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn trim_system() {
    extern "C" {
        fn malloc_trim(pad: usize) -> i32;
    }
    // SAFETY: `malloc_trim` takes no pointers and is thread-safe; it only returns free memory
    // of glibc's arenas to the kernel.
    unsafe { malloc_trim(0) };
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn trim_system() {}

// SAFETY: every block comes from the inner allocator with a layout (`outer`) that the
// allocator's callers never see; `dealloc` and `realloc` rebuild the same layout from the
// caller's, so the inner allocator gets back exactly what it handed out. The caller's bytes
// are untouched: the trailer lies past them.
unsafe impl<A: GlobalAlloc + 'static> GlobalAlloc for MkGlobalAlloc<A> {
    #[inline]
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let Some(outer) = outer(layout) else {
            return std::ptr::null_mut();
        };
        // SAFETY: `outer` has a non-zero size (it holds the trailer).
        let ptr = unsafe { self.inner.alloc(outer) };
        if !ptr.is_null() {
            mark_installed::<A>();
            // SAFETY: the block was just allocated with `outer(layout)`.
            unsafe { trailer(ptr, layout).write(charge(outer.size())) };
        }
        ptr
    }

    #[inline]
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        let Some(outer) = outer(layout) else {
            return std::ptr::null_mut();
        };
        // SAFETY: as in `alloc`.
        let ptr = unsafe { self.inner.alloc_zeroed(outer) };
        if !ptr.is_null() {
            mark_installed::<A>();
            // SAFETY: as in `alloc`.
            unsafe { trailer(ptr, layout).write(charge(outer.size())) };
        }
        ptr
    }

    #[inline]
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: the caller passes a block of ours with its layout, so `outer` succeeded.
        let outer = unsafe { outer(layout).unwrap_unchecked() };
        // SAFETY: as above.
        let tag = unsafe { trailer(ptr, layout).read() };
        // SAFETY: allocated from the inner allocator with `outer`.
        unsafe { self.inner.dealloc(ptr, outer) };
        // SAFETY: the trailer holds the tag charged for `outer.size()` bytes; the block is
        // freed once.
        unsafe { credit(tag, outer.size()) };
    }

    #[inline]
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: as in `dealloc`.
        let old = unsafe { outer(layout).unwrap_unchecked() };
        // SAFETY: the caller guarantees `new_size` with `layout.align()` is a valid layout.
        let new_layout = unsafe { Layout::from_size_align_unchecked(new_size, layout.align()) };
        let Some(new) = outer(new_layout) else {
            return std::ptr::null_mut();
        };
        // SAFETY: as in `dealloc`; read before the block may move or shrink.
        let tag = unsafe { trailer(ptr, layout).read() };
        // SAFETY: the block came from the inner allocator with `old`; `new.size()` is non-zero
        // and, with the same alignment, a valid layout.
        let moved = unsafe { self.inner.realloc(ptr, old, new.size()) };
        if moved.is_null() {
            // The old block (and its trailer) is untouched and still the caller's.
            return moved;
        }
        // The old block is gone: credit its owner, charge the new one to whoever resized it.
        // SAFETY: as in `dealloc`.
        unsafe { credit(tag, old.size()) };
        // SAFETY: the new block has the size of `outer(new_layout)`.
        unsafe { trailer(moved, new_layout).write(charge(new.size())) };
        moved
    }
}
