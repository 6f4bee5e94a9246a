//! Local tasks: `!Send` futures run by a [`LocalSet`] on the thread that polls it.
//!
//! The parts: the set and its futures (`set.rs`, `run_until.rs`), the tasks it holds and how
//! one poll of the set runs them (`set_core.rs`, `task.rs`), the thread-safe ready queue that
//! local wakers push to (`queue.rs`), the handle (`handle.rs`), and the thread's current set
//! that [`spawn_local`] spawns on (`context.rs`). No unsafe code: the set is `!Send` through
//! `Rc`, and only its ready queue is shared with other threads.

mod context;
mod handle;
mod queue;
mod run_until;
mod set;
mod set_core;
mod task;

pub use context::spawn_local;
pub use handle::LocalJoinHandle;
pub use run_until::RunUntil;
pub use set::LocalSet;
