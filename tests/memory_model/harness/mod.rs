//! The harness: runs a scenario on the engine and on the model side by side, and checks them
//! against each other after every operation.

mod alloc;
mod run;
mod step;
mod tasks;

pub use run::run_scenario;

use crate::consumer::TestConsumer;
use crate::driven::{Job, Local};
use crate::model::{Model, Placed, Pol, CHUNK_ALIGN};
use crate::ops::{ParentSpec, Place, Scenario};
use crate::payload::{Held, Sink};
use futures::channel::mpsc;
use memkit_async::{Handle, JoinHandle, MkArena, MkBudget, MkBudgetGuard};
use proptest::prelude::*;
use proptest::test_runner::TestCaseError;
use std::alloc::Layout;
use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::Ordering::SeqCst;
use std::sync::{Arc, Mutex};
use std::time::Instant;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Holder {
    Test,
    Task(usize),
}

#[derive(Clone, Copy, Debug)]
pub enum What {
    Box,
    Vec { len: usize, cap: usize },
}

#[derive(Debug)]
pub struct MObj {
    pub id: u64,
    pub holder: Holder,
    pub what: What,
    pub range: (usize, usize),
    pub chunk: Option<usize>,
}

pub struct ArenaH {
    pub id: u64,
    pub holder: Holder,
    pub model: usize,
    pub ranges: Vec<(usize, usize)>,
}

pub struct TaskH {
    pub tx: mpsc::UnboundedSender<Job>,
    pub join: JoinHandle<Local>,
    pub budget: usize,
    pub arena: usize,
}

pub struct Harness {
    pub handle: Handle,
    pub model: Model,
    pub budgets: Vec<MkBudget>,
    pub tasks: Vec<Option<TaskH>>,
    pub objs: Vec<MObj>,
    pub test_objs: HashMap<u64, Box<dyn Held>>,
    pub arenas: Vec<ArenaH>,
    pub test_arenas: HashMap<u64, MkArena>,
    pub guards: Vec<(usize, MkBudgetGuard)>,
    pub consumers: Vec<Arc<TestConsumer>>,
    /// Live non-empty ranges: start -> (end, id).
    pub ranges: BTreeMap<usize, (usize, u64)>,
    pub sink: Arc<Sink>,
    pub arena_values: usize,
    pub next_id: u64,
    pub beat: Arc<Mutex<(Instant, String)>>,
}

pub fn pick(n: u8, len: usize) -> Option<usize> {
    (len > 0).then(|| n as usize % len)
}

pub fn mismatch<T: std::fmt::Debug, U: std::fmt::Debug>(
    what: &str,
    model: T,
    engine: U,
) -> TestCaseError {
    TestCaseError::fail(format!(
        "{what}: the model expects {model:?}, the engine gave {engine:?}"
    ))
}

impl Harness {
    pub fn new(handle: Handle, s: &Scenario, beat: Arc<Mutex<(Instant, String)>>) -> Harness {
        let mut model = Model::default();
        let root = handle.memory_budget().clone();
        model.add_budget(root.limit(), None, s.root_policy);
        let mut budgets = vec![root];
        let mut explicit_idx: Vec<usize> = Vec::new();
        for e in &s.explicit {
            let parent = match e.parent {
                ParentSpec::NewRoot => None,
                ParentSpec::RuntimeRoot => Some(0),
                ParentSpec::Earlier(i) => {
                    Some(pick(i, explicit_idx.len()).map_or(0, |i| explicit_idx[i]))
                }
            };
            let (made, policy) = match parent {
                None => {
                    let policy = e.policy.unwrap_or(Pol::Fail);
                    (MkBudget::new(e.limit).with_policy(policy.mk()), policy)
                }
                Some(p) => {
                    let child = budgets[p].child(e.limit);
                    match e.policy {
                        Some(policy) => (child.with_policy(policy.mk()), policy),
                        None => (child, model.budgets[p].policy),
                    }
                }
            };
            explicit_idx.push(model.add_budget(e.limit, parent, policy));
            budgets.push(made);
        }
        Harness {
            handle,
            model,
            budgets,
            tasks: Vec::new(),
            objs: Vec::new(),
            test_objs: HashMap::new(),
            arenas: Vec::new(),
            test_arenas: HashMap::new(),
            guards: Vec::new(),
            consumers: Vec::new(),
            ranges: BTreeMap::new(),
            sink: Arc::new(Sink::default()),
            arena_values: 0,
            next_id: 1,
            beat,
        }
    }

    pub fn id(&mut self) -> u64 {
        self.next_id += 1;
        self.next_id
    }

    pub fn live_tasks(&self) -> Vec<usize> {
        (0..self.tasks.len())
            .filter(|&t| self.tasks[t].is_some())
            .collect()
    }

    pub fn pick_task(&self, n: u8) -> Option<usize> {
        let live = self.live_tasks();
        pick(n, live.len()).map(|i| live[i])
    }

    pub fn holder(&self, p: Place) -> Holder {
        match p {
            Place::Test => Holder::Test,
            Place::Task(n) => self.pick_task(n).map_or(Holder::Test, Holder::Task),
        }
    }

    pub fn tx(&self, t: usize) -> mpsc::UnboundedSender<Job> {
        self.tasks[t].as_ref().expect("a live task").tx.clone()
    }

    /// Checks every budget against the model.
    pub fn check(&self, ctx: &str) -> Result<(), TestCaseError> {
        for (i, (b, m)) in self.budgets.iter().zip(&self.model.budgets).enumerate() {
            let used = b.used();
            prop_assert_eq!(used, m.used, "{}: used() of budget {}", ctx, i);
            prop_assert_eq!(b.waiting(), 0, "{}: waiting() of budget {}", ctx, i);
            prop_assert!(used <= b.limit(), "{}: budget {} over its limit", ctx, i);
            prop_assert_eq!(b.peak(), m.peak, "{}: peak() of budget {}", ctx, i);
            prop_assert!(
                b.peak() <= b.limit(),
                "{}: peak of budget {} over its limit",
                ctx,
                i
            );
            let chunk_bytes = used - self.model.guard_bytes_under(i);
            prop_assert_eq!(
                chunk_bytes % 4096,
                0,
                "{}: chunk bytes of budget {}",
                ctx,
                i
            );
        }
        prop_assert_eq!(
            self.handle.metrics().tasks_waiting_for_memory(),
            0,
            "{}",
            ctx
        );
        prop_assert_eq!(
            self.sink.corrupt.load(SeqCst),
            0,
            "{}: corrupt arena values",
            ctx
        );
        Ok(())
    }

    pub fn insert_range(
        &mut self,
        id: u64,
        (start, len): (usize, usize),
    ) -> Result<(), TestCaseError> {
        if len == 0 {
            return Ok(());
        }
        let end = start + len;
        if let Some((&s, &(e, other))) = self.ranges.range(..=start).next_back() {
            prop_assert!(
                e <= start,
                "object {} [{:#x}, {:#x}) overlaps object {} [{:#x}, {:#x})",
                id,
                start,
                end,
                other,
                s,
                e
            );
        }
        if let Some((&s, &(e, other))) = self.ranges.range(start..).next() {
            prop_assert!(
                s >= end,
                "object {} [{:#x}, {:#x}) overlaps object {} [{:#x}, {:#x})",
                id,
                start,
                end,
                other,
                s,
                e
            );
        }
        self.ranges.insert(start, (end, id));
        Ok(())
    }

    pub fn remove_range(&mut self, (start, len): (usize, usize)) {
        if len > 0 {
            self.ranges.remove(&start);
        }
    }

    /// Checks where the engine put an allocation against the model's placement.
    pub fn placed(
        &mut self,
        id: u64,
        range: (usize, usize),
        layout: Layout,
        placed: Placed,
    ) -> Result<Option<usize>, TestCaseError> {
        prop_assert_eq!(range.1, layout.size(), "size of object {}", id);
        prop_assert_eq!(range.0 % layout.align(), 0, "alignment of object {}", id);
        let chunk = match placed {
            Placed::Zst => {
                prop_assert_eq!(range.0, layout.align(), "a zero-sized object is dangling");
                return Ok(None);
            }
            Placed::At { chunk, offset } => match self.model.chunks[chunk].start {
                Some(start) => {
                    prop_assert_eq!(
                        range.0,
                        start + offset,
                        "object {} at its modelled offset",
                        id
                    );
                    chunk
                }
                None => {
                    prop_assert_eq!(offset, 0);
                    prop_assert_eq!(range.0 % CHUNK_ALIGN, 0, "a chunk starts 4 KiB-aligned");
                    let size = self.model.chunks[chunk].size;
                    for (i, c) in self.model.chunks.iter().enumerate() {
                        if let (false, Some(s)) = (c.dead, c.start) {
                            prop_assert!(
                                s + c.size <= range.0 || range.0 + size <= s,
                                "new chunk {} at {:#x} overlaps live chunk {} at {:#x}",
                                chunk,
                                range.0,
                                i,
                                s
                            );
                        }
                    }
                    self.model.chunks[chunk].start = Some(range.0);
                    chunk
                }
            },
        };
        self.insert_range(id, range)?;
        Ok(Some(chunk))
    }
}
