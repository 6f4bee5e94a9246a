#[memkit_async::main(flavor = "local")]
async fn unknown_flavor() {}

#[memkit_async::main(flavor = "current_thread", worker_threads = 2)]
async fn current_thread_with_workers() {}

fn main() {}
