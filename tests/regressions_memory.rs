//! Memory defects that safe code could trigger, each pinned by the program that showed it:
//! budget bytes kept by the output of a finished task.

mod common;

use common::*;
use memkit_async::task::{yield_now, Builder as TaskBuilder};
use memkit_async::{Builder, MkAsyncBox, MkBackpressure, MkBudget, Runtime};

const CHUNK: usize = 4096;

fn rt() -> Runtime {
    Builder::new().worker_threads(2).build().unwrap()
}

/// A task output whose `Drop` allocates in the current task's arena, as any value's drop may.
struct AllocatesOnDrop(Counter);

impl Drop for AllocatesOnDrop {
    fn drop(&mut self) {
        if MkAsyncBox::try_new([7u8; 64]).is_ok() {
            self.0.inc();
        }
    }
}

/// A task spawned on `budget` that waits for `go`, then finishes with an `AllocatesOnDrop`.
fn spawn_allocating_output(
    rt: &Runtime,
    budget: &MkBudget,
    go: futures::channel::oneshot::Receiver<()>,
    allocated: &Counter,
) -> memkit_async::JoinHandle<AllocatesOnDrop> {
    let allocated = allocated.clone();
    TaskBuilder::new()
        .budget(budget)
        .spawn_on(
            async move {
                go.await.unwrap();
                AllocatesOnDrop(allocated)
            },
            rt.handle(),
        )
        .unwrap()
}

/// The budget has its whole limit back: a new task on it can take a full chunk.
fn assert_budget_whole(budget: &MkBudget) {
    assert_eq!(budget.used(), 0);
    let rt = rt();
    let full = TaskBuilder::new()
        .budget(budget)
        .spawn_on(
            async { MkAsyncBox::try_new([1u8; 4000]).map(|b| b[3999]) },
            rt.handle(),
        )
        .unwrap();
    assert_eq!(rt.block_on(full).unwrap(), Ok(1));
    drop(rt);
    assert_eq!(budget.used(), 0);
}

/// The output of a detached task is dropped when the task completes, with the task current;
/// an arena its drop creates (the task's own is gone by then) is freed with it.
#[test]
fn a_detached_output_that_allocates_in_its_drop_gives_every_byte_back() {
    with_timeout(DEADLINE, || {
        let budget = MkBudget::new(CHUNK).with_policy(MkBackpressure::Fail);
        let allocated = Counter::new();
        let rt = rt();
        let (go, wait) = futures::channel::oneshot::channel();
        drop(spawn_allocating_output(&rt, &budget, wait, &allocated));
        go.send(()).unwrap();
        wait_until("the detached output was dropped", || allocated.get() == 1);
        drop(rt);
        assert_budget_whole(&budget);
    });
}

/// A join handle held by a task that shutdown cancels is dropped with that task's future, and
/// with it the finished task's output: every byte its drop took comes back too.
#[test]
fn outputs_dropped_at_shutdown_give_every_byte_back() {
    with_timeout(DEADLINE, || {
        let budget = MkBudget::new(CHUNK).with_policy(MkBackpressure::Fail);
        let allocated = Counter::new();
        let rt = rt();
        let (go, wait) = futures::channel::oneshot::channel();
        let finished = spawn_allocating_output(&rt, &budget, wait, &allocated);
        let (held, is_held) = futures::channel::oneshot::channel();
        drop(rt.spawn(async move {
            while !finished.is_finished() {
                yield_now().await;
            }
            held.send(()).unwrap();
            std::future::pending::<()>().await;
            drop(finished);
        }));
        go.send(()).unwrap();
        rt.block_on(is_held).unwrap();
        assert_eq!(allocated.get(), 0, "the output is still held");
        drop(rt);
        assert_eq!(
            allocated.get(),
            1,
            "shutdown dropped the output inside the runtime"
        );
        assert_budget_whole(&budget);
    });
}
