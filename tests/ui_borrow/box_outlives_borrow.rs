// An `MkAsyncBox` drops its value when it drops, so it cannot outlive what the value borrows.
use memkit_async::MkAsyncBox;

struct Reader<'a>(&'a String);

impl Drop for Reader<'_> {
    fn drop(&mut self) {
        println!("{}", self.0);
    }
}

fn main() {
    let boxed;
    {
        let s = String::from("freed before the box");
        boxed = MkAsyncBox::try_new(Reader(&s));
    }
    drop(boxed);
}
