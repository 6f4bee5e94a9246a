// A value allocated in a frame is an `MkAsyncBox`: it cannot outlive what it borrows, even
// though the frame's memory outlives the borrowed data.
use memkit_async::{MkAsyncBox, MkAsyncFrameAlloc};

struct Reader<'a>(&'a String);

impl Drop for Reader<'_> {
    fn drop(&mut self) {
        println!("{}", self.0);
    }
}

async fn run(alloc: &MkAsyncFrameAlloc) {
    let _frame = alloc.begin_frame().await.unwrap();
    let kept: MkAsyncBox<Reader<'_>>;
    {
        let s = String::from("freed before the box");
        kept = alloc.alloc_with(Reader(&s)).await.unwrap();
    }
    drop(kept);
}

fn main() {
    let alloc = MkAsyncFrameAlloc::new(Default::default());
    drop(run(&alloc));
}
