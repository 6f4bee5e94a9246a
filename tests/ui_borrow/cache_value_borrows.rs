// A cache keeps its values for as long as it lives, and any clone of it may live longer than
// the caller: values (and keys) must not borrow.
use memkit_async::{MkAsyncCache, MkByteSize};

struct Reader<'a>(&'a String);

impl Drop for Reader<'_> {
    fn drop(&mut self) {
        println!("{}", self.0);
    }
}

impl MkByteSize for Reader<'_> {
    fn byte_size(&self) -> usize {
        self.0.len()
    }
}

fn main() {
    let cache = MkAsyncCache::new(1 << 20);
    {
        let s = String::from("freed before the cache");
        let _ = cache.try_insert(1u64, Reader(&s));
    }
    drop(cache);
}
