// A permit borrows its sender: it cannot be used after the sender is dropped.
use memkit_async::{MkAsyncChannel, MkBackpressure};

fn main() {
    let (tx, _rx) = MkAsyncChannel::<u32>::bounded(4, MkBackpressure::Wait);
    let permit = tx.try_reserve().unwrap();
    drop(tx);
    permit.send(1).unwrap();
}
