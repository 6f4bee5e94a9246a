//! A few requests in one task of a fresh runtime, for the contract properties and the shrunk
//! regression cases.

use crate::harness::pick;
use crate::payload::{Api, Held, KINDS};
use memkit_async::task as mtask;
use memkit_async::{Builder, MkBackpressure, MkBudget};
use proptest::prelude::*;
use std::time::Duration;

/// A request in one task: allocate a box of a kind, or drop one of the live boxes.
#[derive(Clone, Copy, Debug)]
pub enum Step {
    Alloc(u8),
    Drop(u8),
}

pub fn steps() -> impl Strategy<Value = Vec<Step>> {
    let step = prop_oneof![
        3 => any::<u8>().prop_map(Step::Alloc),
        2 => any::<u8>().prop_map(Step::Drop),
    ];
    proptest::collection::vec(step, 0..=24)
}

/// Runs `steps` in a task with a `limit`-byte `Fail` budget, then `then` on what is left.
pub fn in_one_task<R: Send + 'static>(
    limit: usize,
    steps: Vec<Step>,
    then: impl FnOnce(Vec<Box<dyn Held>>) -> R + Send + 'static,
) -> (Vec<String>, R) {
    in_task_with_budget(limit, MkBackpressure::Fail, async move {
        let mut live: Vec<Box<dyn Held>> = Vec::new();
        let mut refused = Vec::new();
        for step in steps {
            match step {
                Step::Alloc(k) => {
                    let kind = &KINDS[k as usize % KINDS.len()];
                    match (kind.boxed)(1, Api::Try).unwrap() {
                        Ok(h) => live.push(h),
                        Err(e) => refused.push(format!(
                            "{} with {} used: {e:?}",
                            kind.name,
                            MkBudget::current().unwrap().used()
                        )),
                    }
                }
                Step::Drop(i) => {
                    if let Some(i) = pick(i, live.len()) {
                        drop(live.swap_remove(i));
                    }
                }
            }
        }
        (refused, then(live))
    })
}

/// Runs `f` in a task spawned with a `limit`-byte budget under `policy` on a fresh 1-worker
/// runtime; fails if it has not finished within 5 s (a task parked forever).
pub fn in_task_with_budget<R: Send + 'static>(
    limit: usize,
    policy: MkBackpressure,
    f: impl std::future::Future<Output = R> + Send + 'static,
) -> R {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let rt = Builder::new().worker_threads(1).build().unwrap();
        let out = rt.block_on(async move {
            mtask::Builder::new()
                .budget(limit)
                .policy(policy)
                .spawn(f)
                .unwrap()
                .await
        });
        let _ = tx.send(out.map_err(|e| e.to_string()));
    });
    match rx.recv_timeout(Duration::from_secs(5)) {
        Ok(Ok(out)) => out,
        Ok(Err(e)) => panic!("the task failed: {e}"),
        Err(_) => panic!("the task did not finish within 5 s: it is parked forever"),
    }
}
