//! `#[memkit_async::main]` and `#[memkit_async::test]` used the way a user would.

#[memkit_async::test]
async fn awaits_a_spawned_task() {
    assert_eq!(memkit_async::spawn(async { 1 + 1 }).await.unwrap(), 2);
}

#[memkit_async::test(worker_threads = 1)]
async fn runs_on_one_worker() {
    let handles: Vec<_> = (0..8u64)
        .map(|i| memkit_async::spawn(async move { i * i }))
        .collect();
    let mut sum = 0;
    for handle in handles {
        sum += handle.await.unwrap();
    }
    assert_eq!(sum, 140);
}

#[memkit_async::test]
async fn returns_a_result() -> Result<(), String> {
    let n: u32 = "21".parse().map_err(|e| format!("{e}"))?;
    let doubled = memkit_async::spawn(async move { n * 2 })
        .await
        .map_err(|e| format!("{e:?}"))?;
    assert_eq!(doubled, 42);
    Ok(())
}

#[memkit_async::test]
#[should_panic(expected = "boom")]
async fn other_test_attributes_apply() {
    panic!("boom");
}

mod app {
    use std::error::Error;

    // `?` must infer its error type from the declared return type, as in `#[tokio::main]`.
    #[memkit_async::main(worker_threads = 2)]
    pub async fn main() -> Result<u32, Box<dyn Error>> {
        let n: u32 = "41".parse()?;
        Ok(memkit_async::spawn(async move { n + 1 }).await.unwrap())
    }

    // A function other than `main` may take arguments; they move into the body.
    #[memkit_async::main]
    pub async fn run(words: Vec<String>) -> usize {
        memkit_async::spawn(async move { words.len() })
            .await
            .unwrap()
    }
}

#[test]
fn a_main_like_fn_can_be_called_from_a_test() {
    assert_eq!(app::main().unwrap(), 42);
    assert_eq!(app::run(vec!["a".into(), "b".into()]), 2);
}

mod renamed {
    pub use memkit_async::runtime;
}

#[memkit_async::test(crate = "crate::renamed")]
async fn crate_path_can_be_overridden() {
    assert_eq!(memkit_async::spawn(async { 7 }).await.unwrap(), 7);
}

#[memkit_async::test(worker_threads = 2, memory_limit = 8 << 20)]
async fn memory_limit_sets_the_runtime_root_budget() {
    let handle = memkit_async::Handle::current();
    assert_eq!(handle.memory_budget().limit(), 8 << 20);
    assert_eq!(handle.metrics().num_workers(), 2);
}
