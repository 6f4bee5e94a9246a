// Nor can another thread borrow a `LocalSet` to spawn on it.
use memkit_async::task::LocalSet;

fn main() {
    let set = LocalSet::new();
    std::thread::scope(|s| {
        s.spawn(|| {
            drop(set.spawn_local(async {}));
        });
    });
}
