//! One operation of a scenario, run on the engine and on the model.

use crate::consumer::TestConsumer;
use crate::driven::run_in;
use crate::harness::{mismatch, pick, ArenaH, Harness, Holder, MObj, What};
use crate::model::{MConsumer, Refused};
use crate::ops::{How, Op, Outside};
use crate::payload::{new_vec, Api, Held, FILL_MAX, KINDS};
use futures::FutureExt;
use memkit_async::{spawn_blocking, MkAllocError, MkArena, MkEvictable};
use proptest::prelude::*;
use proptest::test_runner::TestCaseError;
use std::collections::VecDeque;
use std::sync::atomic::Ordering::SeqCst;
use std::sync::{Arc, Mutex};

impl Harness {
    pub async fn step(&mut self, op: &Op) -> Result<(), TestCaseError> {
        match *op {
            Op::Spawn(spec) => self.spawn(spec).await,
            Op::Box { task, kind, api } => {
                let Some(t) = self.pick_task(task) else {
                    return Ok(());
                };
                let k = kind as usize % KINDS.len();
                let a = self.tasks[t].as_ref().unwrap().arena;
                let layout = KINDS[k].layout;
                let model = self.model.arena_alloc(a, layout, api);
                let id = self.id();
                let got = run_in(&self.tx(t), move |l| {
                    (KINDS[k].boxed)(id, api).map(|r| {
                        r.map(|h| {
                            let range = h.range();
                            l.objs.insert(id, h);
                            range
                        })
                    })
                })
                .await;
                let what = format!("box of {} in task {t} ({api:?})", KINDS[k].name);
                self.alloc_outcome(&what, id, Holder::Task(t), What::Box, layout, model, got)
            }
            Op::Vec { task, cap, api } => {
                let Some(t) = self.pick_task(task) else {
                    return Ok(());
                };
                let a = self.tasks[t].as_ref().unwrap().arena;
                let id = self.id();
                let (model, layout, new_cap) = match self.model_grow(a, 0, 0, cap, api) {
                    Some(x) => x,
                    None => return Ok(()),
                };
                let got = run_in(&self.tx(t), move |l| {
                    new_vec(cap, id, api).map(|r| {
                        r.map(|h| {
                            let range = h.range();
                            l.objs.insert(id, h);
                            range
                        })
                    })
                })
                .await;
                let what = format!("vec with capacity {cap} in task {t} ({api:?})");
                if new_cap == 0 {
                    // Capacity 0: nothing allocated, the buffer is dangling.
                    let range = match got {
                        Some(Ok(r)) => r,
                        other => return Err(mismatch(&what, "Ok(empty)", other)),
                    };
                    prop_assert_eq!(range, (1, 0), "{}", what);
                    self.objs.push(MObj {
                        id,
                        holder: Holder::Task(t),
                        what: What::Vec { len: 0, cap: 0 },
                        range,
                        chunk: None,
                    });
                    return Ok(());
                }
                let v = What::Vec {
                    len: new_cap.min(FILL_MAX),
                    cap: new_cap,
                };
                self.alloc_outcome(&what, id, Holder::Task(t), v, layout, model, got)
            }
            Op::Grow {
                obj,
                additional,
                api,
            } => self.grow(obj, additional, api).await,
            Op::Drop { obj, how } => {
                let Some(i) = pick(obj, self.objs.len()) else {
                    return Ok(());
                };
                let o = self.objs.remove(i);
                let (id, holder) = (o.id, o.holder);
                let consume = matches!(how, How::IntoInner);
                let ok = match how {
                    How::Holder | How::IntoInner => match holder {
                        Holder::Test => {
                            let h = self.test_objs.remove(&id).unwrap();
                            finish(h, consume)
                        }
                        Holder::Task(t) => {
                            run_in(&self.tx(t), move |l| {
                                finish(l.objs.remove(&id).unwrap(), consume)
                            })
                            .await
                        }
                    },
                    How::Thread => {
                        let h = self.take_obj(id, holder).await;
                        std::thread::spawn(move || finish(h, false)).join().unwrap()
                    }
                    How::Task(n) => {
                        let h = self.take_obj(id, holder).await;
                        match self.pick_task(n) {
                            Some(u) => run_in(&self.tx(u), move |_| finish(h, false)).await,
                            None => finish(h, false),
                        }
                    }
                };
                prop_assert!(ok, "object {:?} lost its bytes before its drop", o);
                self.remove_range(o.range);
                self.model.free(o.chunk);
                Ok(())
            }
            Op::Move { obj, to } => {
                let Some(i) = pick(obj, self.objs.len()) else {
                    return Ok(());
                };
                let to = self.holder(to);
                let (id, from) = (self.objs[i].id, self.objs[i].holder);
                let h = self.take_obj(id, from).await;
                match to {
                    Holder::Test => {
                        self.test_objs.insert(id, h);
                    }
                    Holder::Task(u) => {
                        run_in(&self.tx(u), move |l| {
                            l.objs.insert(id, h);
                        })
                        .await
                    }
                }
                self.objs[i].holder = to;
                Ok(())
            }
            Op::EndTask { task, keep } => {
                let Some(t) = self.pick_task(task) else {
                    return Ok(());
                };
                self.end_task(t, keep).await
            }
            Op::ArenaNew { at, budget } => {
                let b = budget as usize % self.budgets.len();
                let holder = self.holder(at);
                let id = self.id();
                let handle = self.budgets[b].clone();
                match holder {
                    Holder::Test => {
                        self.test_arenas.insert(id, MkArena::new(&handle));
                    }
                    Holder::Task(t) => {
                        run_in(&self.tx(t), move |l| {
                            l.arenas.insert(id, MkArena::new(&handle));
                        })
                        .await
                    }
                }
                let model = self.model.add_arena(b, false);
                self.arenas.push(ArenaH {
                    id,
                    holder,
                    model,
                    ranges: Vec::new(),
                });
                Ok(())
            }
            Op::ArenaAlloc { arena, kind, api } => {
                let Some(i) = pick(arena, self.arenas.len()) else {
                    return Ok(());
                };
                let k = kind as usize % KINDS.len();
                let (id, holder, ma) = (
                    self.arenas[i].id,
                    self.arenas[i].holder,
                    self.arenas[i].model,
                );
                let layout = KINDS[k].arena_layout;
                let model = self.model.arena_alloc(ma, layout, api);
                let vid = self.id();
                let sink = self.sink.clone();
                let got = match holder {
                    Holder::Test => {
                        (KINDS[k].arena)(self.test_arenas.get_mut(&id).unwrap(), vid, &sink, api)
                    }
                    Holder::Task(t) => {
                        run_in(&self.tx(t), move |l| {
                            (KINDS[k].arena)(l.arenas.get_mut(&id).unwrap(), vid, &sink, api)
                        })
                        .await
                    }
                };
                let what = format!("arena value of {} in arena {id} ({api:?})", KINDS[k].name);
                match (model, got) {
                    (Ok(placed), Some(Ok(range))) => {
                        self.arena_values += 1;
                        self.placed(vid, range, layout, placed)?;
                        self.arenas[i].ranges.push(range);
                        Ok(())
                    }
                    (Err(Refused::Err(e)), Some(Err(g))) if e == g => Ok(()),
                    (Err(Refused::Pending), None) => Ok(()),
                    (m, g) => Err(mismatch(&what, m, g)),
                }
            }
            Op::ArenaDrop { arena, how } => {
                let Some(i) = pick(arena, self.arenas.len()) else {
                    return Ok(());
                };
                let a = self.arenas.remove(i);
                let before = self.sink.drops.load(SeqCst);
                let arena = self.take_arena(a.id, a.holder).await;
                match how {
                    How::Holder | How::IntoInner => match a.holder {
                        Holder::Test => drop(arena),
                        Holder::Task(t) => run_in(&self.tx(t), move |_| drop(arena)).await,
                    },
                    How::Thread => std::thread::spawn(move || drop(arena)).join().unwrap(),
                    How::Task(n) => match self.pick_task(n) {
                        Some(u) => run_in(&self.tx(u), move |_| drop(arena)).await,
                        None => drop(arena),
                    },
                }
                let dropped = self.sink.drops.load(SeqCst) - before;
                prop_assert_eq!(
                    dropped,
                    a.ranges.len(),
                    "values dropped with arena {}",
                    a.id
                );
                for r in a.ranges {
                    self.remove_range(r);
                }
                self.model.drop_owned_arena(a.model);
                Ok(())
            }
            Op::ArenaMove { arena, to } => {
                let Some(i) = pick(arena, self.arenas.len()) else {
                    return Ok(());
                };
                let to = self.holder(to);
                let (id, from) = (self.arenas[i].id, self.arenas[i].holder);
                let arena = self.take_arena(id, from).await;
                match to {
                    Holder::Test => {
                        self.test_arenas.insert(id, arena);
                    }
                    Holder::Task(u) => {
                        run_in(&self.tx(u), move |l| {
                            l.arenas.insert(id, arena);
                        })
                        .await
                    }
                }
                self.arenas[i].holder = to;
                Ok(())
            }
            Op::Guard { budget, bytes, api } => {
                let b = budget as usize % self.budgets.len();
                let model = self.model.acquire(b, bytes, api);
                let got = match api {
                    Api::Try => Some(self.budgets[b].try_acquire(bytes)),
                    Api::Async => self.budgets[b].acquire(bytes).now_or_never(),
                };
                match (model, got) {
                    (Ok(()), Some(Ok(g))) => {
                        prop_assert_eq!(g.bytes(), bytes);
                        self.model.budgets[b].guards += bytes;
                        self.guards.push((b, g));
                        Ok(())
                    }
                    (Err(Refused::Err(e)), Some(Err(g))) if e == g => Ok(()),
                    (Err(Refused::Pending), None) => Ok(()),
                    (m, g) => Err(mismatch(
                        &format!("guard of {bytes} on budget {b} ({api:?})"),
                        m,
                        g,
                    )),
                }
            }
            Op::GuardDrop { guard } => {
                if let Some(i) = pick(guard, self.guards.len()) {
                    let (b, g) = self.guards.remove(i);
                    let bytes = g.bytes();
                    drop(g);
                    self.model.budgets[b].guards -= bytes;
                    self.model.release(b, bytes);
                }
                Ok(())
            }
            Op::AddConsumer { budget } => {
                let b = budget as usize % self.budgets.len();
                if !self.model.budgets[b].consumers.is_empty() {
                    return Ok(());
                }
                let consumer = Arc::new(TestConsumer {
                    budget: self.budgets[b].clone(),
                    entries: Mutex::new(VecDeque::new()),
                });
                let dynamic: Arc<dyn MkEvictable> = consumer.clone();
                self.budgets[b].register_evictable(&dynamic);
                self.consumers.push(consumer);
                self.model.consumers.push(MConsumer {
                    budget: b,
                    entries: VecDeque::new(),
                });
                let c = self.model.consumers.len() - 1;
                self.model.budgets[b].consumers.push(c);
                Ok(())
            }
            Op::ConsumerFill { consumer, bytes } => {
                let Some(c) = pick(consumer, self.consumers.len()) else {
                    return Ok(());
                };
                let b = self.model.consumers[c].budget;
                let model = self.model.acquire(b, bytes, Api::Try);
                let got = self.consumers[c].budget.try_acquire(bytes);
                match (model, got) {
                    (Ok(()), Ok(g)) => {
                        self.consumers[c].entries.lock().unwrap().push_back(g);
                        self.model.consumers[c].entries.push_back(bytes);
                        self.model.budgets[b].guards += bytes;
                        Ok(())
                    }
                    (Err(Refused::Err(e)), Err(g)) if e == g => Ok(()),
                    (m, g) => Err(mismatch(&format!("consumer {c} takes {bytes}"), m, g)),
                }
            }
            Op::Outside { kind, cap, at } => {
                let k = kind as usize % KINDS.len();
                let seed = self.id();
                let probe = move || {
                    let boxed = (KINDS[k].boxed)(seed, Api::Try).map(|r| r.map(|h| h.range()));
                    let async_boxed =
                        (KINDS[k].boxed)(seed, Api::Async).map(|r| r.map(|h| h.range()));
                    let vec = new_vec(cap, seed, Api::Try).map(|r| r.map(|h| h.range()));
                    (boxed, async_boxed, vec)
                };
                // A `spawn_blocking` closure runs as a task (one poll) charged to its spawner's
                // budget, here the runtime's root: its arena works like any task's.
                let model = match at {
                    Outside::Blocking => match self.model_blocking_probe(k, cap) {
                        Some(want) => Some(want),
                        None => return Ok(()),
                    },
                    _ => None,
                };
                let (boxed, async_boxed, vec) = match at {
                    Outside::BlockOn => probe(),
                    Outside::PlainThread => std::thread::spawn(probe).join().unwrap(),
                    Outside::Blocking => spawn_blocking(probe).await.unwrap(),
                };
                let what = format!("{} and vec of {cap} in {at:?}", KINDS[k].name);
                let (want_box, want_async_box, want_vec) = match model {
                    Some(want) => want,
                    None => {
                        let no_task = Some(Err(MkAllocError::NoTask));
                        let vec = if cap == 0 {
                            Some(Ok((1, 0)))
                        } else if cap > isize::MAX as usize {
                            Some(Err(MkAllocError::SizeOverflow { requested: cap }))
                        } else {
                            no_task.clone()
                        };
                        (no_task.clone(), no_task, vec)
                    }
                };
                let size = |r: &Option<Result<(usize, usize), MkAllocError>>| {
                    r.clone().map(|r| r.map(|(_, len)| len))
                };
                prop_assert_eq!(size(&boxed), size(&want_box), "box: {}", what);
                prop_assert_eq!(
                    size(&async_boxed),
                    size(&want_async_box),
                    "async box: {}",
                    what
                );
                prop_assert_eq!(size(&vec), size(&want_vec), "vec: {}", what);
                Ok(())
            }
            Op::Huge { task, cap, wide } => self.huge(task, cap, wide).await,
            Op::VerifyAll => {
                for t in self.live_tasks() {
                    let ok = run_in(&self.tx(t), |l| l.objs.values().all(|h| h.verify())).await;
                    prop_assert!(ok, "an object held by task {} lost its bytes", t);
                }
                prop_assert!(self.test_objs.values().all(|h| h.verify()));
                Ok(())
            }
        }
    }
}

/// Verifies and frees a held object, by `into_inner` when `consume`.
pub fn finish(h: Box<dyn Held>, consume: bool) -> bool {
    if consume {
        h.consume()
    } else {
        let ok = h.verify();
        drop(h);
        ok
    }
}
