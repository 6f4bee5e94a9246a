// The handle of a local task stays on the set's thread too.
use memkit_async::task::LocalSet;

fn main() {
    let set = LocalSet::new();
    let handle = set.spawn_local(async { 1 });
    std::thread::spawn(move || drop(handle));
}
