// A pool keeps its idle objects for as long as it lives: objects must not borrow.
use memkit_async::MkAsyncPool;

struct Reader<'a>(&'a String);

impl Drop for Reader<'_> {
    fn drop(&mut self) {
        println!("{}", self.0);
    }
}

fn main() {
    let pool;
    {
        let s = String::from("freed before the pool");
        let r = &s;
        pool = MkAsyncPool::builder(1, move || Reader(r)).build();
        drop(pool.try_acquire());
    }
    drop(pool);
}
