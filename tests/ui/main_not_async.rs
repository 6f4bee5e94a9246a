#[memkit_async::main]
fn main() {}
