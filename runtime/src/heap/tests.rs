//! Unit tests of heap accounting, driving `MkGlobalAlloc` directly (not installed as the global
//! allocator), so they run under Miri.

use super::account::{Account, AccountRef, Shard};
use super::local::{enter_worker, exempt, Scope, FLUSH};
use super::MkGlobalAlloc;
use std::alloc::{GlobalAlloc, Layout};

static ALLOC: MkGlobalAlloc = MkGlobalAlloc::system();

/// Bytes an allocation of `size` costs its account: rounded up to 8, plus the trailer.
fn cost(size: usize) -> i64 {
    (size.next_multiple_of(8) + 8) as i64
}

fn alloc(size: usize) -> (*mut u8, Layout) {
    let layout = Layout::from_size_align(size, 8).unwrap();
    // SAFETY: non-zero size.
    let ptr = unsafe { ALLOC.alloc(layout) };
    assert!(!ptr.is_null());
    (ptr, layout)
}

fn free((ptr, layout): (*mut u8, Layout)) {
    // SAFETY: allocated by `alloc` with this layout, freed once.
    unsafe { ALLOC.dealloc(ptr, layout) }
}

fn scope(account: &AccountRef) -> Scope {
    // SAFETY: the tests keep `account` held until the scope ends.
    unsafe { Scope::enter(account.as_ptr()) }
}

fn holders(account: &AccountRef) -> u64 {
    account.account().holders()
}

#[test]
fn a_scope_publishes_its_bytes_to_every_level_when_it_ends() {
    let root = Account::create(None, 0);
    let child = Account::create(Some(&root), 0);
    let s = scope(&child);
    let block = alloc(100);
    // Below the flush threshold nothing is published yet.
    assert_eq!((child.account().live(), root.account().live()), (0, 0));
    assert_eq!(s.finish(), cost(100), "the scope grew by one block");
    assert_eq!(
        (child.account().live(), root.account().live()),
        (cost(100), cost(100))
    );
    free(block); // outside any scope: credited at once
    assert_eq!((child.account().live(), root.account().live()), (0, 0));
    assert_eq!(child.account().peak(), cost(100) as u64);
}

#[test]
fn more_than_the_threshold_is_published_during_the_scope() {
    let root = Account::create(None, 0);
    let s = scope(&root);
    let big = alloc(FLUSH as usize + 1);
    assert_eq!(root.account().live(), cost(FLUSH as usize + 1));
    free(big); // the owner's own free: back into its delta, published past the threshold
    assert_eq!(root.account().live(), 0);
    assert_eq!(s.finish(), 0);
    assert_eq!(root.account().live(), 0);
}

#[test]
fn a_free_on_another_thread_after_the_owner_let_go_frees_the_account_once() {
    let root = Account::create(None, 0);
    let child = Account::create(Some(&root), 0);
    assert_eq!(holders(&root), 2, "the budget and its child hold the root");
    let block = {
        let _s = scope(&child);
        alloc(4000)
    };
    drop(child); // the task ended: its allocation outlives the hold
    assert_eq!(holders(&root), 2, "the child lives on for its bytes");
    assert_eq!(root.account().live(), cost(4000));
    let block = SendPtr(block);
    std::thread::spawn(move || {
        let block = block;
        free(block.0)
    })
    .join()
    .unwrap();
    assert_eq!(root.account().live(), 0);
    assert_eq!(
        holders(&root),
        1,
        "the child was freed, letting go of the root"
    );
}

struct SendPtr((*mut u8, Layout));
// SAFETY: the block is plain bytes owned by the test.
unsafe impl Send for SendPtr {}

#[test]
fn foreign_frees_inside_a_scope_are_credited_by_its_end() {
    let root = Account::create(None, 0);
    let a = Account::create(Some(&root), 0);
    let b = Account::create(Some(&root), 0);
    let blocks: Vec<_> = {
        let _s = scope(&a);
        (0..10).map(|_| alloc(64)).collect()
    };
    assert_eq!(a.account().live(), 10 * cost(64));
    let s = scope(&b);
    blocks.into_iter().for_each(free);
    // Deferred while `b` is polled: one publication for the run of frees.
    assert_eq!(a.account().live(), 10 * cost(64));
    assert_eq!(s.finish(), 0, "freeing someone else's memory is not growth");
    assert_eq!(
        (
            a.account().live(),
            b.account().live(),
            root.account().live()
        ),
        (0, 0, 0)
    );
}

#[test]
fn realloc_credits_the_old_owner_and_charges_whoever_resized() {
    let root = Account::create(None, 0);
    let a = Account::create(Some(&root), 0);
    let b = Account::create(Some(&root), 0);
    let (ptr, layout) = {
        let _s = scope(&a);
        alloc(16)
    };
    // SAFETY: `ptr` is a live 16-byte block; the bytes are the test's.
    unsafe { ptr.write_bytes(7, 16) };
    let grown = {
        let _s = scope(&b);
        // SAFETY: a block of ours with its layout; 1 MiB with alignment 8 is a valid layout.
        unsafe { ALLOC.realloc(ptr, layout, 1 << 20) }
    };
    assert!(!grown.is_null());
    // SAFETY: the first 16 bytes were copied.
    assert_eq!(unsafe { std::slice::from_raw_parts(grown, 16) }, &[7; 16]);
    assert_eq!(a.account().live(), 0);
    assert_eq!(b.account().live(), cost(1 << 20));
    let grown_layout = Layout::from_size_align(1 << 20, 8).unwrap();
    let shrunk = {
        let _s = scope(&b);
        // SAFETY: as above.
        unsafe { ALLOC.realloc(grown, grown_layout, 3) }
    };
    assert_eq!(b.account().live(), cost(3));
    free((shrunk, Layout::from_size_align(3, 8).unwrap()));
    assert_eq!(root.account().live(), 0);
}

#[test]
fn over_aligned_blocks_cost_only_the_trailer() {
    let root = Account::create(None, 0);
    let s = scope(&root);
    let layout = Layout::from_size_align(10, 4096).unwrap();
    // SAFETY: non-zero size.
    let ptr = unsafe { ALLOC.alloc_zeroed(layout) };
    assert_eq!(ptr as usize % 4096, 0);
    // SAFETY: ten zeroed bytes.
    assert_eq!(unsafe { std::slice::from_raw_parts(ptr, 10) }, &[0; 10]);
    assert_eq!(s.finish(), cost(10));
    free((ptr, layout));
    assert_eq!(root.account().live(), 0);
}

#[test]
fn engine_memory_is_exempt() {
    let root = Account::create(None, 0);
    let s = scope(&root);
    let block = {
        let _e = exempt();
        alloc(1000)
    };
    free(block);
    assert_eq!(s.finish(), 0);
    assert_eq!(root.account().live(), 0);
}

#[test]
fn nested_scopes_charge_their_own_accounts() {
    let root = Account::create(None, 0);
    let outer = Account::create(Some(&root), 0);
    let inner = Account::create(Some(&root), 0);
    let s = scope(&outer);
    let a = alloc(8);
    let t = scope(&inner);
    let b = alloc(16);
    assert_eq!(t.finish(), cost(16));
    let c = alloc(24);
    assert_eq!(s.finish(), cost(8) + cost(24));
    assert_eq!(outer.account().live(), cost(8) + cost(24));
    assert_eq!(inner.account().live(), cost(16));
    [a, b, c].into_iter().for_each(free);
    assert_eq!(root.account().live(), 0);
}

#[test]
fn a_worker_writes_its_own_shard_and_spills_it_when_it_exits() {
    let root = Account::create(None, 2);
    let shard = Shard {
        root: root.as_ptr().as_ptr(),
        index: 1,
    };
    let blocks = {
        let _w = enter_worker(shard);
        let s = scope(&root);
        let blocks: Vec<_> = (0..4).map(|_| alloc(1000)).collect();
        s.finish();
        assert_eq!(root.account().live(), 4 * cost(1000));
        assert_eq!(
            root.account().live_central(),
            0,
            "held in the worker's shard"
        );
        blocks
    };
    assert_eq!(
        root.account().live_central(),
        4 * cost(1000),
        "spilled on exit"
    );
    blocks.into_iter().for_each(free);
    assert_eq!(root.account().live(), 0);
}

#[test]
fn try_charge_respects_the_limit_with_heap_bytes_counted() {
    let root = Account::create(None, 0);
    let block = {
        let _s = scope(&root);
        alloc(1000)
    };
    let heap = cost(1000);
    assert_eq!(
        root.account().try_charge(100, heap as u64 + 100),
        Ok(heap + 100)
    );
    assert_eq!(
        root.account().try_charge(1, heap as u64 + 100),
        Err(heap + 100)
    );
    assert_eq!(
        root.account().peak(),
        heap as u64,
        "the caller raises the peak"
    );
    // SAFETY: the 100 bytes were charged above; the owner holds the account.
    unsafe { Account::apply(root.as_ptr(), -100, None) };
    free(block);
    assert_eq!(root.account().live(), 0);
}
