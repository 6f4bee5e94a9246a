//! Requests whose outcome the model predicts: probes outside tasks, vectors that grow, and
//! requests no arena can serve.

use crate::driven::run_in;
use crate::harness::{mismatch, pick, Harness, Holder, MObj, What};
use crate::model::{Model, Placed, Refused};
use crate::payload::{Api, FILL_MAX, KINDS};
use memkit_async::{MkAllocError, MkAsyncVec};
use proptest::prelude::*;
use proptest::test_runner::TestCaseError;
use std::alloc::Layout;

impl Harness {
    /// What the probe of `Op::Outside` gets in a `spawn_blocking` closure: a task arena charged
    /// to the root, each object dropped at once, the arena gone when the closure returns.
    /// `None` if the vector would ask the system for a huge chunk (not run).
    #[allow(clippy::type_complexity)]
    pub fn model_blocking_probe(
        &mut self,
        k: usize,
        cap: usize,
    ) -> Option<(
        Option<Result<(usize, usize), MkAllocError>>,
        Option<Result<(usize, usize), MkAllocError>>,
        Option<Result<(usize, usize), MkAllocError>>,
    )> {
        let a = self.model.add_arena(0, true);
        if let Ok(layout) = Layout::array::<u8>(cap.max(4)) {
            if self.model.would_ask_system_for_huge(a, layout) {
                return None;
            }
        }
        let layout = KINDS[k].layout;
        let now = |model: &mut Model, api: Api| match model.arena_alloc(a, layout, api) {
            Ok(placed) => {
                if let Placed::At { chunk, .. } = placed {
                    model.free(Some(chunk));
                }
                Some(Ok((0, layout.size())))
            }
            Err(Refused::Err(e)) => Some(Err(e)),
            Err(Refused::Pending) => None,
        };
        let boxed = now(&mut self.model, Api::Try);
        let async_boxed = now(&mut self.model, Api::Async);
        let vec = match self.model_grow(a, 0, 0, cap, Api::Try) {
            None => unreachable!("checked above"),
            Some((Ok(placed), layout, _)) => {
                if let Placed::At { chunk, .. } = placed {
                    self.model.free(Some(chunk));
                }
                Some(Ok((0, layout.size())))
            }
            Some((Err(Refused::Err(e)), _, _)) => Some(Err(e)),
            Some((Err(Refused::Pending), _, _)) => None,
        };
        self.model.end_task_arena(a);
        Some((boxed, async_boxed, vec))
    }

    /// The model's side of a vector growing from `(len, cap)` by `additional` in arena `a`:
    /// `None` when the request is not run (it would ask the system for a huge chunk), else the
    /// outcome, the layout and the new capacity (the old one when nothing grows).
    #[allow(clippy::type_complexity)]
    pub fn model_grow(
        &mut self,
        a: usize,
        len: usize,
        cap: usize,
        additional: usize,
        api: Api,
    ) -> Option<(Result<Placed, Refused>, Layout, usize)> {
        let empty = Layout::new::<()>();
        let Some(needed) = len.checked_add(additional) else {
            let e = MkAllocError::SizeOverflow {
                requested: usize::MAX,
            };
            return Some((Err(e.into()), empty, cap));
        };
        if needed <= cap {
            return Some((Ok(Placed::Zst), empty, cap));
        }
        let new_cap = needed.max(cap.saturating_mul(2)).max(4);
        let Ok(layout) = Layout::array::<u8>(new_cap) else {
            let e = MkAllocError::SizeOverflow { requested: new_cap };
            return Some((Err(e.into()), empty, cap));
        };
        if self.model.would_ask_system_for_huge(a, layout) {
            return None;
        }
        Some((self.model.arena_alloc(a, layout, api), layout, new_cap))
    }

    #[allow(clippy::too_many_arguments)]
    pub fn alloc_outcome(
        &mut self,
        what: &str,
        id: u64,
        holder: Holder,
        w: What,
        layout: Layout,
        model: Result<Placed, Refused>,
        got: Option<Result<(usize, usize), MkAllocError>>,
    ) -> Result<(), TestCaseError> {
        match (model, got) {
            (Ok(placed), Some(Ok(range))) => {
                let chunk = self.placed(id, range, layout, placed)?;
                self.objs.push(MObj {
                    id,
                    holder,
                    what: w,
                    range,
                    chunk,
                });
                Ok(())
            }
            (Err(Refused::Err(e)), Some(Err(g))) if e == g => Ok(()),
            (Err(Refused::Pending), None) => Ok(()),
            (m, g) => Err(mismatch(what, m, g)),
        }
    }

    pub async fn grow(
        &mut self,
        obj: u8,
        additional: usize,
        api: Api,
    ) -> Result<(), TestCaseError> {
        let vecs: Vec<usize> = (0..self.objs.len())
            .filter(|&i| matches!(self.objs[i].what, What::Vec { .. }))
            .collect();
        let Some(i) = pick(obj, vecs.len()).map(|i| vecs[i]) else {
            return Ok(());
        };
        let What::Vec { len, cap } = self.objs[i].what else {
            unreachable!()
        };
        let (id, holder) = (self.objs[i].id, self.objs[i].holder);
        let what =
            format!("growing vec {id} ({len}/{cap}) by {additional} in {holder:?} ({api:?})");
        // Outside a task, growth that needs memory fails with `NoTask` after the size checks.
        let outcome = match holder {
            Holder::Task(t) => {
                let a = self.tasks[t].as_ref().unwrap().arena;
                match self.model_grow(a, len, cap, additional, api) {
                    Some(x) => x,
                    None => return Ok(()),
                }
            }
            Holder::Test => {
                let needed = len.checked_add(additional);
                let new_cap = needed.map(|n| n.max(cap.saturating_mul(2)).max(4));
                let e = match (needed, new_cap) {
                    (None, _) => Err(MkAllocError::SizeOverflow {
                        requested: usize::MAX,
                    }
                    .into()),
                    (Some(n), _) if n <= cap => Ok(Placed::Zst),
                    (_, Some(nc)) if Layout::array::<u8>(nc).is_err() => {
                        Err(MkAllocError::SizeOverflow { requested: nc }.into())
                    }
                    _ => Err(MkAllocError::NoTask.into()),
                };
                (e, Layout::new::<()>(), cap)
            }
        };
        let (model, layout, new_cap) = outcome;
        let got = match holder {
            Holder::Test => {
                let h = self.test_objs.get_mut(&id).unwrap();
                h.grow(additional, api).map(|r| r.map(|()| h.range()))
            }
            Holder::Task(t) => {
                run_in(&self.tx(t), move |l| {
                    let h = l.objs.get_mut(&id).unwrap();
                    h.grow(additional, api).map(|r| r.map(|()| h.range()))
                })
                .await
            }
        };
        match (model, got) {
            (Ok(Placed::Zst), Some(Ok(range))) if new_cap == cap => {
                prop_assert_eq!(range, self.objs[i].range, "{}: nothing moves", what);
                Ok(())
            }
            (Ok(placed), Some(Ok(range))) => {
                let old = std::mem::replace(&mut self.objs[i].range, range);
                let chunk = self.placed(id, range, layout, placed)?;
                // The elements moved, then the old buffer was freed.
                self.remove_range_of(old, id);
                let old_chunk = std::mem::replace(&mut self.objs[i].chunk, chunk);
                self.model.free(old_chunk);
                self.objs[i].what = What::Vec {
                    len: new_cap.min(FILL_MAX),
                    cap: new_cap,
                };
                Ok(())
            }
            (Err(Refused::Err(e)), Some(Err(g))) if e == g => Ok(()),
            (Err(Refused::Pending), None) => Ok(()),
            (m, g) => Err(mismatch(&what, m, g)),
        }
    }

    /// Removes `range` if it still belongs to `id` (the new range may start at the same place
    /// only if the old one was empty).
    pub fn remove_range_of(&mut self, (start, len): (usize, usize), id: u64) {
        if len > 0
            && self
                .ranges
                .get(&start)
                .is_some_and(|&(_, owner)| owner == id)
        {
            self.ranges.remove(&start);
        }
    }

    pub async fn huge(&mut self, task: u8, cap: usize, wide: bool) -> Result<(), TestCaseError> {
        let Some(t) = self.pick_task(task) else {
            return Ok(());
        };
        let a = self.tasks[t].as_ref().unwrap().arena;
        let new_cap = cap.max(4);
        let layout = if wide {
            Layout::array::<u64>(new_cap)
        } else {
            Layout::array::<u8>(new_cap)
        };
        let model = match layout {
            Err(_) => Err(Refused::Err(MkAllocError::SizeOverflow {
                requested: new_cap.saturating_mul(if wide { 8 } else { 1 }),
            })),
            Ok(layout) => {
                if self.model.would_ask_system_for_huge(a, layout) {
                    return Ok(());
                }
                self.model.arena_alloc(a, layout, Api::Try)
            }
        };
        prop_assert!(model.is_err(), "huge requests never fit");
        let got = run_in(&self.tx(t), move |_| {
            if wide {
                MkAsyncVec::<u64>::try_with_capacity(cap).map(|v| v.capacity())
            } else {
                MkAsyncVec::<u8>::try_with_capacity(cap).map(|v| v.capacity())
            }
        })
        .await;
        match (model, got) {
            (Err(Refused::Err(e)), Err(g)) if e == g => Ok(()),
            (m, g) => Err(mismatch(
                &format!("vec of {cap} (wide: {wide}) in task {t}"),
                m,
                g,
            )),
        }
    }
}
