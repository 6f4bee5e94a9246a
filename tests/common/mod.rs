//! Helpers shared by the integration tests: time bounds, drop and poll counters, wakers that
//! count, panic-message extraction, runtimes built for a test, byte sizes, and the fixtures of
//! the memory, channel and network tests. Each test binary uses a different subset.
//!
//! A test file takes them with `mod common; use common::*;` (a test in a folder of its own,
//! with `#[path = "../common/mod.rs"] mod common;`).
#![allow(dead_code)]

mod alloc_errors;
mod bounds;
mod counters;
pub mod echo;
mod evict;
mod gate;
mod msg;
mod panics;
mod probe;
mod runtimes;
mod sizes;
mod table;
mod wakers;

// Every test binary takes a different subset.
#[allow(unused_imports)]
pub use self::{
    alloc_errors::*, bounds::*, counters::*, evict::*, gate::*, msg::*, panics::*, probe::*,
    runtimes::*, sizes::*, table::*, wakers::*,
};
