//! The `Wait` rule cannot deadlock: whatever independent tasks do with their heap memory
//! under a full `Wait` budget (grow, shrink, yield, sleep, finish), every one of them completes
//! and every byte comes back. Tasks are held back (before they start, or after a poll that
//! grew them) while the budget is over its limit; if every live task under it is held, the
//! oldest that has started runs one poll (`scheduler/held.rs`).

use memkit_async::runtime::Builder;
use memkit_async::task::{self, yield_now};
use memkit_async::{MkBudget, MkGlobalAlloc};
use proptest::prelude::*;
use std::time::Duration;

#[global_allocator]
static GLOBAL: MkGlobalAlloc = MkGlobalAlloc::system();

#[derive(Debug, Clone)]
enum Step {
    Grow(usize),
    Shrink,
    Yield,
    Sleep(u64),
}

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        4 => (1usize..64).prop_map(|kib| Step::Grow(kib << 10)),
        2 => Just(Step::Shrink),
        1 => Just(Step::Yield),
        1 => (0u64..3).prop_map(Step::Sleep),
    ]
}

async fn run(steps: Vec<Step>) -> usize {
    let mut held: Vec<Vec<u8>> = Vec::with_capacity(steps.len());
    let mut most = 0;
    for step in steps {
        match step {
            Step::Grow(n) => held.push(vec![1; n]),
            Step::Shrink => drop(held.pop()),
            Step::Yield => yield_now().await,
            Step::Sleep(ms) => memkit_async::time::sleep(Duration::from_millis(ms)).await,
        }
        most = most.max(held.iter().map(Vec::len).sum());
        yield_now().await;
    }
    most
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]

    #[test]
    #[cfg_attr(miri, ignore = "hundreds of tasks over real timers")]
    fn every_task_completes_and_every_byte_comes_back(
        programs in proptest::collection::vec(proptest::collection::vec(step(), 1..12), 1..10),
        workers in 1usize..3,
        limit_kib in 64usize..512,
    ) {
        let rt = Builder::new().worker_threads(workers).build().unwrap();
        let budget = MkBudget::new(limit_kib << 10);
        let handles: Vec<_> = programs
            .into_iter()
            .map(|p| {
                task::Builder::new()
                    .budget(&budget)
                    .spawn_on(run(p), rt.handle())
                    .unwrap()
            })
            .collect();
        let (tx, rx) = std::sync::mpsc::channel();
        let waiter = std::thread::spawn(move || {
            let done = rt.block_on(async move {
                let mut done = 0;
                for h in handles {
                    h.await.unwrap();
                    done += 1;
                }
                done
            });
            let _ = tx.send(done);
            rt
        });
        let done = rx.recv_timeout(Duration::from_secs(30));
        prop_assert!(done.is_ok(), "tasks stuck under the budget: {budget:?}");
        drop(waiter.join().unwrap());
        prop_assert_eq!(budget.used(), 0);
        prop_assert_eq!(budget.parked(), 0);
    }
}
