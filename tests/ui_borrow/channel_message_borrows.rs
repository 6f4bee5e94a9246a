// A channel's queued messages are dropped with its last handle, which may live anywhere:
// messages must not borrow.
use memkit_async::{MkAsyncChannel, MkBackpressure};

struct Reader<'a>(&'a String);

impl Drop for Reader<'_> {
    fn drop(&mut self) {
        println!("{}", self.0);
    }
}

fn main() {
    let (tx, rx) = MkAsyncChannel::bounded(4, MkBackpressure::Fail);
    {
        let s = String::from("freed before the channel");
        let _ = tx.try_send(Reader(&s));
    }
    drop((tx, rx));
}
