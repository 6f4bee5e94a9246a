//! Heap memory of local tasks is charged where their `LocalSet` is polled: with
//! `MkGlobalAlloc` installed, a plain vector allocated by a local task polled inside an
//! `MkArenaTask` is charged to that task's budget, and credited back wherever it is freed.
//! A binary of its own, because it installs the global allocator.

mod common;

use common::*;
use memkit_async::task::LocalSet;
use memkit_async::{MkArenaTask, MkBudget, MkGlobalAlloc};

#[global_allocator]
static GLOBAL: MkGlobalAlloc = MkGlobalAlloc::system();

/// What an allocation of `size` bytes is charged: rounded up to 8, plus the 8-byte trailer.
fn cost(size: usize) -> usize {
    size.next_multiple_of(8) + 8
}

#[test]
#[cfg_attr(miri, ignore = "allocates 64 KiB through the accounting allocator")]
fn a_local_tasks_vector_is_charged_to_the_budget_around_the_set() {
    with_timeout(DEADLINE, || {
        let rt = runtime(1);
        let set = LocalSet::new();
        let budget = MkBudget::new(1 << 20);
        // Bounded: its slot is allocated here, not by the send inside the task.
        let (tx, rx) = std::sync::mpsc::sync_channel::<Vec<u8>>(1);
        // Spawned here, so the task's own allocation is not the budget's.
        let task = set.spawn_local(async move {
            let held = std::rc::Rc::new(vec![7u8; 64 << 10]);
            tx.send(std::rc::Rc::try_unwrap(held).unwrap()).unwrap();
        });
        // The set's polls run inside the arena task's: the local task's memory is its.
        rt.block_on(MkArenaTask::new(&budget, set.run_until(task)))
            .unwrap();
        assert_eq!(budget.used(), cost(64 << 10));
        // Freed on this thread, outside any task: credited to the budget that paid.
        drop(rx.recv().unwrap());
        assert_eq!(budget.used(), 0);
    });
}
