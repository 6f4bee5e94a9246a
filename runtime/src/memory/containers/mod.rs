//! What users hold: handles into arena memory (boxes, vectors, owned arenas), futures that own
//! an arena (`MkArenaTask`), frame allocators and the byte-bounded cache. They allocate only
//! through the arena and budget types.

mod arena_task;
mod boxed;
mod byte_size;
mod cache;
mod frame;
mod owned;
mod transit;
mod vec;

pub use arena_task::MkArenaTask;
pub use boxed::{MkAsyncBox, NewBox};
pub use byte_size::MkByteSize;
pub use cache::MkAsyncCache;
pub use frame::{MkAsyncFrameAlloc, MkAsyncFrameConfig, MkAsyncFrameGuard};
pub use owned::MkArena;
pub use vec::MkAsyncVec;
