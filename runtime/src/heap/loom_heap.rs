//! Loom models of heap accounting across threads: an owner publishing its delta while other
//! threads credit frees of its memory, the last hold and the last bytes racing to free an
//! account, and a worker's shard spilling while a foreign thread credits the same root.
//!
//! Run with
//! `RUSTFLAGS="--cfg loom -C debug-assertions" CARGO_TARGET_DIR=target/loom cargo test -p memkit-async-runtime --release --lib loom`.
//!
//! Every model checks on every interleaving that each account is freed exactly once, after the
//! last use of it on any thread (accounts carry a loom cell that frees write and uses read, so
//! a use not ordered before the free is reported), and that every count ends exact.

use super::account::{Account, Shard, FREED};
use super::local::Local;
use crate::sync::loom_model;
use loom::thread;
use std::ptr::NonNull;

/// An allocation's tag and cost, as the trailer would carry them.
#[derive(Clone, Copy)]
struct Block {
    tag: usize,
    bytes: u64,
}

// SAFETY: a tag is the address of a `Sync` account; blocks move between threads like memory.
unsafe impl Send for Block {}

fn charge(local: &Local, bytes: u64) -> Block {
    Block {
        tag: local.charge(bytes),
        bytes,
    }
}

fn credit(local: &Local, block: Block) {
    // SAFETY: each block is credited once, with the tag its charge returned.
    unsafe { local.credit(block.tag, block.bytes) }
}

#[test]
fn loom_owner_publishes_while_another_thread_credits_its_memory() {
    loom_model("owner publish vs remote credit", None, || {
        let freed = FREED.with(|f| f.get());
        let root = Account::create(None, 0);
        let task = Account::create(Some(&root), 0);
        let owner = Local::new();
        // SAFETY: `task` is held until the scope ends.
        let mut scope = unsafe { owner.enter(task.as_ptr()) };
        let sent = charge(&owner, 100);
        owner.exit(&mut scope);
        let other = thread::spawn(move || credit(&Local::new(), sent));
        // SAFETY: as above.
        let mut scope = unsafe { owner.enter(task.as_ptr()) };
        let kept = charge(&owner, 40);
        owner.exit(&mut scope);
        drop(task); // the task ends while its memory is still being freed elsewhere
        other.join().unwrap();
        assert_eq!(root.account().live(), 40);
        credit(&Local::new(), kept);
        assert_eq!((root.account().live(), root.account().holders()), (0, 1));
        assert_eq!(
            FREED.with(|f| f.get()) - freed,
            1,
            "the task's account, once"
        );
    });
}

#[test]
fn loom_the_last_credits_and_the_last_hold_race_to_free() {
    loom_model("last credit vs last hold", None, || {
        let freed = FREED.with(|f| f.get());
        let root = Account::create(None, 0);
        let task = Account::create(Some(&root), 0);
        let owner = Local::new();
        // SAFETY: `task` is held until the scope ends.
        let mut scope = unsafe { owner.enter(task.as_ptr()) };
        let (a, b) = (charge(&owner, 8), charge(&owner, 16));
        owner.exit(&mut scope);
        let t1 = thread::spawn(move || credit(&Local::new(), a));
        let t2 = thread::spawn(move || credit(&Local::new(), b));
        drop(task);
        t1.join().unwrap();
        t2.join().unwrap();
        assert_eq!((root.account().live(), root.account().holders()), (0, 1));
        assert_eq!(FREED.with(|f| f.get()) - freed, 1);
        drop(root);
        assert_eq!(FREED.with(|f| f.get()) - freed, 2);
    });
}

#[test]
fn loom_a_worker_spills_its_shard_while_a_foreign_thread_credits() {
    loom_model("shard spill vs foreign credit", None, || {
        let root = Account::create(None, 2);
        let (early, other) = {
            let l = Local::new();
            // SAFETY: `root` is held until the scope ends.
            let mut scope = unsafe { l.enter(root.as_ptr()) };
            let blocks = (charge(&l, 24), charge(&l, 32));
            l.exit(&mut scope);
            blocks
        };
        let ptr = SendAccount(root.as_ptr());
        let worker = thread::spawn(move || {
            let ptr = ptr;
            let l = Local::new();
            l.set_shard(Shard {
                root: ptr.0.as_ptr(),
                index: 1,
            });
            // SAFETY: the model holds the root until the worker has exited.
            let mut scope = unsafe { l.enter(ptr.0) };
            let block = charge(&l, 100);
            credit(&l, early); // through this worker's shard
            l.exit(&mut scope);
            // SAFETY: this thread is worker 1 of the root, which the model still holds.
            unsafe { Account::spill(ptr.0, 1) };
            block
        });
        let foreign = thread::spawn(move || credit(&Local::new(), other));
        let kept = worker.join().unwrap();
        foreign.join().unwrap();
        assert_eq!(root.account().live(), 100);
        assert_eq!(root.account().live_central(), 100, "spilled");
        credit(&Local::new(), kept);
        assert_eq!(root.account().live(), 0);
    });
}

struct SendAccount(NonNull<Account>);
// SAFETY: accounts are `Sync`; the model keeps this one held while the pointer is used.
unsafe impl Send for SendAccount {}
