//! `#[memkit_async::main]` and `#[memkit_async::test]`, drop-in replacements for
//! `#[tokio::main]` and `#[tokio::test]`.
//!
//! Do not depend on this crate directly: use the attributes through `memkit_async`, which
//! re-exports them and provides the runtime they expand to.

extern crate proc_macro;

mod args;
mod expand;
mod item;

use proc_macro::TokenStream;

use crate::expand::{expand, Kind};

/// Runs an `async fn` to completion on a new memkit-async runtime.
///
/// Use it as `#[memkit_async::main]`. The function loses its `async`, keeps its name,
/// visibility, attributes, arguments and return type, and its body builds a runtime with
/// `memkit_async::runtime::Builder` and `block_on`s the original body. It is usually put
/// on `main`, but any function can carry it (a function other than `main` may also take
/// arguments, which move into the body).
///
/// ```ignore
/// #[memkit_async::main]
/// async fn main() {
///     let answer = memkit_async::spawn(async { 6 * 7 }).await.unwrap();
///     println!("{answer}");
/// }
/// ```
///
/// # Arguments
///
/// All optional, in any order, each at most once:
///
/// - `flavor = "current_thread"`: a runtime with no worker threads, whose tasks all run on
///   the thread of the function (`Builder::new_current_thread`); `flavor = "multi_thread"`
///   (the default) keeps the work-stealing workers.
/// - `worker_threads = N`: the number of worker threads, an integer literal of at least 1
///   (default: the available parallelism).
/// - `memory_limit = EXPR`: the runtime's root byte budget, any `usize` expression.
/// - `start_paused = true`: the runtime's clock starts paused (`Builder::start_paused`), so
///   timers come due as soon as the runtime has nothing else to do and `time::advance` moves
///   the clock; for tests.
/// - `crate = "path"`: where to find memkit-async when it is re-exported under another
///   name (default: `::memkit_async`).
///
/// ```ignore
/// #[memkit_async::main(worker_threads = 4, memory_limit = 512 << 20)]
/// async fn main() -> Result<(), Box<dyn std::error::Error>> {
///     let config = std::fs::read_to_string("app.toml")?;
///     serve(config).await?;
///     Ok(())
/// }
/// ```
///
/// This expands to about:
///
/// ```ignore
/// fn main() -> Result<(), Box<dyn std::error::Error>> {
///     let body = async move {
///         let config = std::fs::read_to_string("app.toml")?;
///         serve(config).await?;
///         Ok(())
///     };
///     return ::memkit_async::runtime::Builder::new()
///         .worker_threads(4)
///         .memory_limit(512 << 20)
///         .build()
///         .expect("failed to build the memkit-async runtime")
///         .block_on(body);
/// }
/// ```
///
/// A function that is not `async`, a `main` that takes arguments, and unknown, repeated or
/// invalid arguments are compile errors.
#[proc_macro_attribute]
pub fn main(args: TokenStream, item: TokenStream) -> TokenStream {
    expand(Kind::Main, args.into(), item.into()).into()
}

/// Runs an `async` test on its own memkit-async runtime.
///
/// Use it as `#[memkit_async::test]` instead of `#[test]`: it adds `#[test]` itself, so
/// other test attributes such as `#[should_panic]` or `#[ignore]` still apply. The test may
/// return anything `#[test]` accepts, such as `Result<(), E>`. It takes the same arguments
/// as [`macro@main`]: `flavor`, `worker_threads`, `memory_limit`, `start_paused` and `crate`.
///
/// ```ignore
/// #[memkit_async::test]
/// async fn spawned_task_runs() {
///     assert_eq!(memkit_async::spawn(async { 1 + 1 }).await.unwrap(), 2);
/// }
///
/// #[memkit_async::test(worker_threads = 1)]
/// async fn on_one_worker() -> Result<(), String> {
///     let n = memkit_async::spawn(async { 3 }).await.map_err(|e| e.to_string())?;
///     assert_eq!(n, 3);
///     Ok(())
/// }
///
/// #[memkit_async::test(start_paused = true)]
/// async fn an_hour_in_no_time() {
///     let start = memkit_async::time::Instant::now();
///     memkit_async::time::sleep(std::time::Duration::from_secs(3600)).await;
///     assert_eq!(start.elapsed(), std::time::Duration::from_secs(3600));
/// }
/// ```
///
/// A test function that is not `async`, takes arguments, or already carries `#[test]` is
/// a compile error.
#[proc_macro_attribute]
pub fn test(args: TokenStream, item: TokenStream) -> TokenStream {
    expand(Kind::Test, args.into(), item.into()).into()
}
