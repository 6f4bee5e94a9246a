//! A request waiting on a budget for heap memory is served by its runtime's own workers when
//! the memory comes back on a thread the runtime never sees. Budgets waiting for heap frees
//! are listed process-wide, so any runtime's workers serve them: this test has a binary of its
//! own, with one runtime in the process, so that another test's runtime cannot hide a worker
//! that goes to sleep with the woken task still queued on it.

mod common;

use common::*;
use memkit_async::runtime::Builder;
use memkit_async::task;
use memkit_async::{MkBudget, MkGlobalAlloc};

#[global_allocator]
static GLOBAL: MkGlobalAlloc = MkGlobalAlloc::system();

/// What an allocation of `size` bytes is charged: rounded up to 8, plus the 8-byte trailer.
fn cost(size: usize) -> usize {
    size.next_multiple_of(8) + 8
}

#[test]
#[cfg_attr(miri, ignore = "spawns worker threads")]
fn a_wait_request_is_granted_when_heap_memory_on_its_budget_is_freed() {
    with_timeout(DEADLINE, || {
        let rt = Builder::new().worker_threads(2).build().unwrap();
        let budget = MkBudget::new(1 << 20);
        // Bounded: its slot is allocated here, not by the first send inside the task.
        let (tx, rx) = std::sync::mpsc::sync_channel::<Vec<u8>>(1);
        // A task fills the budget with a plain vector and hands it to a std thread.
        let filler = task::Builder::new()
            .budget(&budget)
            .spawn_on(
                async move {
                    tx.send(vec![7u8; 900 << 10]).unwrap();
                },
                rt.handle(),
            )
            .unwrap();
        rt.block_on(filler).unwrap();
        assert_eq!(budget.used(), cost(900 << 10));
        // A request that does not fit now waits in the budget's queue.
        let waiter = {
            let budget = budget.clone();
            rt.spawn(async move { budget.acquire(512 << 10).await.map(|g| g.bytes()) })
        };
        while budget.waiting() == 0 {
            std::thread::yield_now();
        }
        // Freed on a thread the runtime never sees: no guard is released through the budget.
        drop(rx.recv().unwrap());
        assert_eq!(rt.block_on(waiter).unwrap().unwrap(), 512 << 10);
        assert_eq!((budget.used(), budget.waiting()), (0, 0));
    });
}
