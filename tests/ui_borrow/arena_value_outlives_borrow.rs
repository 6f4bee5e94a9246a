// An `MkArena` runs its values' destructors when it drops, so a value in it must not borrow
// data that dies first: here `Reader`'s `Drop` would read a freed `String`.
use memkit_async::{MkArena, MkBudget};

struct Reader<'a>(&'a String);

impl Drop for Reader<'_> {
    fn drop(&mut self) {
        println!("{}", self.0);
    }
}

fn main() {
    let budget = MkBudget::new(1 << 20);
    let arena = MkArena::new(&budget);
    {
        let s = String::from("freed before the arena");
        arena.alloc(Reader(&s)).unwrap();
    }
    drop(arena);
}
