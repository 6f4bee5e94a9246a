//! Tasks of a scenario: spawning, moving objects out of them, ending them, and the teardown
//! that checks every budget is back to zero.

use crate::driven::{run_in, worker, Job, Local};
use crate::harness::{ArenaH, Harness, Holder, MObj, TaskH};
use crate::ops::{BudgetChoice, SpawnSpec};
use crate::payload::Held;
use futures::channel::mpsc;
use memkit_async::task as mtask;
use memkit_async::{spawn_with_budget, JoinHandle, MkArena, MkBudget};
use proptest::prelude::*;
use proptest::test_runner::TestCaseError;
use std::sync::atomic::Ordering::SeqCst;

impl Harness {
    pub async fn take_obj(&mut self, id: u64, holder: Holder) -> Box<dyn Held> {
        match holder {
            Holder::Test => self.test_objs.remove(&id).unwrap(),
            Holder::Task(t) => run_in(&self.tx(t), move |l| l.objs.remove(&id).unwrap()).await,
        }
    }

    pub async fn take_arena(&mut self, id: u64, holder: Holder) -> MkArena {
        match holder {
            Holder::Test => self.test_arenas.remove(&id).unwrap(),
            Holder::Task(t) => run_in(&self.tx(t), move |l| l.arenas.remove(&id).unwrap()).await,
        }
    }

    pub async fn spawn(&mut self, spec: SpawnSpec) -> Result<(), TestCaseError> {
        let inside = match spec.inside {
            Some(n) => self.pick_task(n),
            None => None,
        };
        let parent = inside.map_or(0, |t| self.tasks[t].as_ref().unwrap().budget);
        // An existing budget other than the runtime's root (explicit ones, or other tasks').
        let others = self.budgets.len() - 1;
        let budget = match spec.budget {
            BudgetChoice::Explicit(n) if others > 0 => BudgetChoice::Explicit(n),
            BudgetChoice::Explicit(_) => BudgetChoice::Inherit,
            other => other,
        };
        let shared = |n: u8| 1 + n as usize % others.max(1);
        let (tx, rx) = mpsc::unbounded();
        let task_budget = match budget {
            BudgetChoice::Bytes(n) => Some(memkit_async::task::TaskBudget::Bytes(n)),
            BudgetChoice::Explicit(n) => Some(self.budgets[shared(n)].clone().into()),
            BudgetChoice::Inherit => None,
        };
        let policy = spec.policy;
        let start = move || {
            if let (Some(mtask::TaskBudget::Bytes(n)), None) = (&task_budget, policy) {
                return Ok(spawn_with_budget(*n, worker(rx)));
            }
            let mut b = mtask::Builder::new();
            if let Some(tb) = task_budget {
                b = b.budget(tb);
            }
            if let Some(p) = policy {
                b = b.policy(p.mk());
            }
            b.spawn(worker(rx))
        };
        let join = match inside {
            None => start(),
            Some(t) => run_in(&self.tx(t), move |_| start()).await,
        };
        let join = match join {
            Ok(j) => j,
            Err(e) => return Err(TestCaseError::fail(format!("spawn failed: {e}"))),
        };
        // The model's budget for the task.
        let m = &mut self.model;
        let node = match (budget, policy) {
            (BudgetChoice::Bytes(n), p) => {
                let pol = p.unwrap_or(m.budgets[parent].policy);
                Some(m.add_budget(n, Some(parent), pol))
            }
            (BudgetChoice::Explicit(n), None) => {
                let i = shared(n);
                let got = run_in(&tx, |_| MkBudget::current().map(|b| b.limit())).await;
                prop_assert_eq!(got, Some(self.budgets[i].limit()));
                self.new_task(tx, join, i);
                return Ok(());
            }
            (BudgetChoice::Explicit(n), Some(p)) => {
                let i = shared(n);
                let limit = m.budgets[i].limit;
                Some(m.add_budget(limit, Some(i), p))
            }
            (BudgetChoice::Inherit, Some(p)) => {
                let limit = m.budgets[parent].limit;
                Some(m.add_budget(limit, Some(parent), p))
            }
            (BudgetChoice::Inherit, None) => None,
        };
        let current = run_in(&tx, |_| MkBudget::current()).await;
        let node = match (node, current) {
            (Some(node), Some(handle)) => {
                prop_assert_eq!(handle.limit(), self.model.budgets[node].limit);
                prop_assert_eq!(handle.policy(), self.model.budgets[node].policy.mk());
                self.budgets.push(handle);
                node
            }
            (None, current) => {
                // Inherits its spawner's budget: the parent's (none for the test, i.e. root).
                prop_assert_eq!(
                    current.map(|b| b.limit()),
                    (parent != 0).then(|| self.model.budgets[parent].limit)
                );
                parent
            }
            (Some(_), None) => {
                return Err(TestCaseError::fail("a task spawned with a budget has none"))
            }
        };
        self.new_task(tx, join, node);
        Ok(())
    }

    pub fn new_task(
        &mut self,
        tx: mpsc::UnboundedSender<Job>,
        join: JoinHandle<Local>,
        budget: usize,
    ) -> usize {
        let arena = self.model.add_arena(budget, true);
        self.tasks.push(Some(TaskH {
            tx,
            join,
            budget,
            arena,
        }));
        self.tasks.len() - 1
    }

    pub async fn end_task(&mut self, t: usize, keep: bool) -> Result<(), TestCaseError> {
        let task = self.tasks[t].take().unwrap();
        if !keep {
            // Dropped by the task itself, before it ends.
            let ok = run_in(&task.tx, |l| {
                let ok = l.objs.values().all(|h| h.verify());
                l.objs.clear();
                l.arenas.clear();
                ok
            })
            .await;
            prop_assert!(ok, "an object held by task {} lost its bytes", t);
        }
        let exit: Job = Box::new(|_| false);
        task.tx.unbounded_send(exit).expect("the task is alive");
        let local = match task.join.await {
            Ok(local) => local,
            Err(e) => return Err(TestCaseError::fail(format!("task {t} failed: {e}"))),
        };
        self.model.end_task_arena(task.arena);
        // What the task held now outlives it, held by the test.
        for (id, h) in local.objs {
            self.test_objs.insert(id, h);
        }
        for (id, a) in local.arenas {
            self.test_arenas.insert(id, a);
        }
        let holder = Holder::Task(t);
        if keep {
            for o in self.objs.iter_mut().filter(|o| o.holder == holder) {
                o.holder = Holder::Test;
            }
            for a in self.arenas.iter_mut().filter(|a| a.holder == holder) {
                a.holder = Holder::Test;
            }
        } else {
            let (gone, kept): (Vec<MObj>, Vec<MObj>) = std::mem::take(&mut self.objs)
                .into_iter()
                .partition(|o| o.holder == holder);
            self.objs = kept;
            for o in gone {
                self.remove_range(o.range);
                self.model.free(o.chunk);
            }
            let (gone, kept): (Vec<ArenaH>, Vec<ArenaH>) = std::mem::take(&mut self.arenas)
                .into_iter()
                .partition(|a| a.holder == holder);
            self.arenas = kept;
            for a in gone {
                for r in a.ranges {
                    self.remove_range(r);
                }
                self.model.drop_owned_arena(a.model);
            }
        }
        Ok(())
    }

    /// Ends every task, drops everything, and checks that every budget is back to zero.
    pub async fn teardown(&mut self) -> Result<(), TestCaseError> {
        for t in self.live_tasks() {
            self.end_task(t, t % 2 == 0).await?;
            self.check(&format!("teardown: after task {t} ended"))?;
        }
        for o in std::mem::take(&mut self.objs) {
            let h = self.test_objs.remove(&o.id).unwrap();
            prop_assert!(h.verify(), "object {:?} lost its bytes", o);
            drop(h);
            self.remove_range(o.range);
            self.model.free(o.chunk);
        }
        for a in std::mem::take(&mut self.arenas) {
            drop(self.test_arenas.remove(&a.id).unwrap());
            for r in a.ranges {
                self.remove_range(r);
            }
            self.model.drop_owned_arena(a.model);
        }
        for (b, g) in std::mem::take(&mut self.guards) {
            self.model.budgets[b].guards -= g.bytes();
            self.model.release(b, g.bytes());
        }
        for (c, consumer) in self.consumers.iter().enumerate() {
            consumer.entries.lock().unwrap().clear();
            let b = self.model.consumers[c].budget;
            for bytes in std::mem::take(&mut self.model.consumers[c].entries) {
                self.model.budgets[b].guards -= bytes;
                self.model.release(b, bytes);
            }
        }
        self.check("teardown")?;
        for (i, b) in self.budgets.iter().enumerate() {
            prop_assert_eq!(
                (b.used(), b.waiting()),
                (0, 0),
                "budget {} after teardown",
                i
            );
        }
        prop_assert!(self.ranges.is_empty());
        prop_assert_eq!(
            self.sink.drops.load(SeqCst),
            self.arena_values,
            "every arena value dropped once"
        );
        Ok(())
    }
}
