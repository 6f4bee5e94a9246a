#[memkit_async::main(threads = 4)]
async fn main() {}
