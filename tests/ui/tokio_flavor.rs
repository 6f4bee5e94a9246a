#[memkit_async::main(flavor = "current_thread")]
async fn main() {}
