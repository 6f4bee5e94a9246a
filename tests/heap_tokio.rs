//! Per-task memory accounting in a tokio program, without changing runtime: with
//! `MkGlobalAlloc` installed, a tokio task wrapped by `memkit_async::tokio::spawn_with_budget`
//! has its ordinary heap memory charged to its budget.

use memkit_async::{MkBudget, MkGlobalAlloc};

#[global_allocator]
static GLOBAL: MkGlobalAlloc = MkGlobalAlloc::system();

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tokio_task_with_a_budget_is_charged_its_heap_memory() {
    let budget = MkBudget::new(64 << 20);
    let (tx, rx) = tokio::sync::oneshot::channel();
    let (go, wait) = tokio::sync::oneshot::channel::<()>();
    let task = memkit_async::tokio::spawn_with_budget(&budget, async move {
        let buf = vec![9u8; 1 << 20];
        tx.send(()).unwrap();
        wait.await.unwrap(); // the poll ends here: its bytes are published

        buf.len()
    });
    rx.await.unwrap();
    // The send happened inside the poll; its end (and publication) follows closely.
    let mut held = budget.used();
    for _ in 0..1000 {
        if held >= 1 << 20 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(1)).await;
        held = budget.used();
    }
    assert!(
        ((1 << 20) + 8..(1 << 20) + (64 << 10)).contains(&held),
        "the 1 MiB vector (and little else) is charged: {held}"
    );
    go.send(()).unwrap();
    assert_eq!(task.await.unwrap(), 1 << 20);
    assert_eq!(budget.used(), 0, "freed when the task dropped it");
}
