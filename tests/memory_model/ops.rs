//! Operations: what a scenario does, step by step.

use crate::model::Pol;
use crate::payload::Api;

#[derive(Clone, Copy, Debug)]
pub enum ParentSpec {
    NewRoot,
    RuntimeRoot,
    Earlier(u8),
}

#[derive(Clone, Debug)]
pub struct ExplicitSpec {
    pub parent: ParentSpec,
    pub limit: usize,
    pub policy: Option<Pol>,
}

#[derive(Clone, Copy, Debug)]
pub enum BudgetChoice {
    Inherit,
    Bytes(usize),
    Explicit(u8),
}

#[derive(Clone, Copy, Debug)]
pub struct SpawnSpec {
    /// Spawned from inside this (live) task instead of from the test.
    pub inside: Option<u8>,
    pub budget: BudgetChoice,
    pub policy: Option<Pol>,
}

#[derive(Clone, Copy, Debug)]
pub enum Place {
    Test,
    Task(u8),
}

#[derive(Clone, Copy, Debug)]
pub enum How {
    /// By whoever holds it.
    Holder,
    /// On a plain thread.
    Thread,
    /// In another (or the same) task.
    Task(u8),
    /// `MkAsyncBox::into_inner` by the holder (vectors just drop).
    IntoInner,
}

#[derive(Clone, Copy, Debug)]
pub enum Outside {
    /// In `block_on`, which is not a task.
    BlockOn,
    /// On a thread without a runtime.
    PlainThread,
    /// In `spawn_blocking`.
    Blocking,
}

#[derive(Clone, Debug)]
pub enum Op {
    Spawn(SpawnSpec),
    Box {
        task: u8,
        kind: u8,
        api: Api,
    },
    Vec {
        task: u8,
        cap: usize,
        api: Api,
    },
    Grow {
        obj: u8,
        additional: usize,
        api: Api,
    },
    Drop {
        obj: u8,
        how: How,
    },
    Move {
        obj: u8,
        to: Place,
    },
    EndTask {
        task: u8,
        keep: bool,
    },
    ArenaNew {
        at: Place,
        budget: u8,
    },
    ArenaAlloc {
        arena: u8,
        kind: u8,
        api: Api,
    },
    ArenaDrop {
        arena: u8,
        how: How,
    },
    ArenaMove {
        arena: u8,
        to: Place,
    },
    Guard {
        budget: u8,
        bytes: usize,
        api: Api,
    },
    GuardDrop {
        guard: u8,
    },
    AddConsumer {
        budget: u8,
    },
    ConsumerFill {
        consumer: u8,
        bytes: usize,
    },
    Outside {
        kind: u8,
        cap: usize,
        at: Outside,
    },
    Huge {
        task: u8,
        cap: usize,
        wide: bool,
    },
    VerifyAll,
}

#[derive(Clone, Debug)]
pub struct Scenario {
    pub workers: usize,
    pub root_limit: usize,
    pub root_policy: Pol,
    pub explicit: Vec<ExplicitSpec>,
    pub tasks: Vec<SpawnSpec>,
    pub ops: Vec<Op>,
}
