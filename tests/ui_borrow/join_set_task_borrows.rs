// A task in a `JoinSet` may outlive the caller's stack: it cannot borrow from it.
use memkit_async::task::JoinSet;

fn main() {
    let mut set = JoinSet::new();
    let local = String::from("local");
    set.spawn(async { local.len() });
    drop(local);
}
