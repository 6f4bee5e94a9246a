//! Spawning and handling tasks: [`spawn`], [`spawn_with_budget`], [`Builder`],
//! [`spawn_blocking`], [`JoinHandle`], [`yield_now`], and what a task knows about itself
//! ([`id`], [`try_id`], [`name`]).
//!
//! This module is the public face of tasks; it sits above the runtime. The machinery (header,
//! state word, wakers, owned list) lives in the engine's task layer, which knows nothing of
//! runtimes.

mod builder;

pub use crate::blocking::spawn_blocking;
pub use crate::memory::TaskBudget;
pub use crate::runtime::spawn;
pub use crate::task_core::{id, try_id, yield_now, Id, JoinError, JoinHandle};
pub use builder::{name, spawn_with_budget, Builder};
