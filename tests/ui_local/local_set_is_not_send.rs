// A `LocalSet` holds `!Send` tasks: it cannot move to another thread.
use memkit_async::task::LocalSet;

fn main() {
    let set = LocalSet::new();
    std::thread::spawn(move || drop(set));
}
