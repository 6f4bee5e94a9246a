#[memkit_async::test]
#[test]
async fn twice() {}

fn main() {}
