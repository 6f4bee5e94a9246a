#[memkit_async::main(worker_threads = "4")]
async fn main() {}
