// An `MkAsyncVec` drops its elements when it drops, so it cannot outlive what they borrow.
use memkit_async::MkAsyncVec;

struct Reader<'a>(&'a String);

impl Drop for Reader<'_> {
    fn drop(&mut self) {
        println!("{}", self.0);
    }
}

fn main() {
    let mut v = MkAsyncVec::new();
    {
        let s = String::from("freed before the vector");
        let _ = v.try_push(Reader(&s));
    }
    drop(v);
}
