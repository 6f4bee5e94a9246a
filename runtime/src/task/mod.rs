//! Spawning and handling tasks: [`spawn`], [`spawn_with_budget`], [`Builder`],
//! [`spawn_blocking`], [`block_in_place`], [`JoinHandle`], [`JoinSet`], `!Send` tasks on a
//! [`LocalSet`] ([`spawn_local`]), [`yield_now`], the cooperative budget
//! ([`coop`]), and what a task knows about itself ([`id`], [`try_id`], [`name`]).
//!
//! This module is the public face of tasks; it sits above the runtime. The machinery (header,
//! state word, wakers, owned list) lives in the engine's task layer, which knows nothing of
//! runtimes.

mod builder;
mod join_set;
mod local;

/// The cooperative budget: how many operations on memkit's resources one poll of a task may
/// complete before they return `Pending` (see [`poll_proceed`](coop::poll_proceed)).
pub mod coop {
    pub use crate::coop::{
        has_budget_remaining, poll_budgeted, poll_proceed, RestoreOnPending, Unconstrained,
    };
}

pub use crate::blocking::spawn_blocking;
pub use crate::coop::{consume_budget, unconstrained};
pub use crate::memory::TaskBudget;
pub use crate::runtime::{block_in_place, spawn};
pub use crate::task_core::{id, try_id, yield_now, AbortHandle, Id, JoinError, JoinHandle};
pub use builder::{name, spawn_with_budget, Builder};
pub use join_set::JoinSet;
pub use local::{spawn_local, LocalJoinHandle, LocalSet, RunUntil};
