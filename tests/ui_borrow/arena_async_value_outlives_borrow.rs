// `MkArena::alloc_async` stores values the same way as `alloc`: none may borrow shorter-lived
// data.
use memkit_async::{MkArena, MkBudget};

struct Reader<'a>(&'a String);

impl Drop for Reader<'_> {
    fn drop(&mut self) {
        println!("{}", self.0);
    }
}

async fn fill(arena: &mut MkArena) {
    let s = String::from("freed before the arena");
    arena.alloc_async(Reader(&s)).await.unwrap();
}

fn main() {
    let mut arena = MkArena::new(&MkBudget::new(1 << 20));
    drop(fill(&mut arena));
    drop(arena);
}
