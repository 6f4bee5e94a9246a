#[memkit_async::main]
struct Config;

fn main() {}
