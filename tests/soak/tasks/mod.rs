//! Task bodies: what the operations run inside the runtime.

mod channels;
mod memory;
mod panics;
mod wakers;
mod work;

pub use channels::*;
pub use memory::*;
pub use panics::*;
pub use wakers::*;
pub use work::*;
