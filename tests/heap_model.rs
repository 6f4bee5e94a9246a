//! Heap accounting against a model: random sequences of allocations, reallocations (growing,
//! shrinking, moving) and frees, of ordinary, zero-sized and over-aligned (4096) layouts, made
//! in tasks of two runtimes under different budgets and on plain threads, with frees after the
//! owning task, the budget handles and the runtimes are gone. After every step each budget's
//! count equals the live bytes the model charged to it, and at the end every count is 0.

use memkit_async::runtime::Builder;
use memkit_async::{task, MkBudget, MkGlobalAlloc, Runtime};
use proptest::prelude::*;
use std::alloc::{alloc, dealloc, realloc, Layout};

#[global_allocator]
static GLOBAL: MkGlobalAlloc = MkGlobalAlloc::system();

/// What an allocation costs its budget: its size rounded up to 8, plus the 8-byte trailer.
fn cost(size: usize) -> usize {
    size.next_multiple_of(8) + 8
}

/// Where a step runs: a task of runtime `rt` charged to budget `budget` (an index into the
/// model's budgets), or a plain thread (unattributed).
#[derive(Debug, Clone, Copy)]
enum Place {
    Task { rt: usize, budget: usize },
    Thread,
}

#[derive(Debug, Clone)]
enum Op {
    Alloc {
        at: Place,
        size: usize,
        align: usize,
    },
    Realloc {
        at: Place,
        which: usize,
        size: usize,
    },
    Free {
        at: Place,
        which: usize,
    },
    ZeroSized {
        at: Place,
    },
    /// The handle of a budget is dropped (its count is still checked through its parent).
    DropBudget {
        budget: usize,
    },
}

/// Budgets: 0 and 1 are children of runtime 0's root, 2 of runtime 1's root, 3 is a root of
/// its own shared by tasks of both runtimes.
const BUDGETS: usize = 4;

fn place() -> impl Strategy<Value = Place> {
    prop_oneof![
        4 => (0usize..BUDGETS).prop_map(|budget| Place::Task {
            rt: match budget {
                0 | 1 => 0,
                2 => 1,
                _ => budget % 2,
            },
            budget,
        }),
        1 => Just(Place::Thread),
    ]
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        5 => (place(), 0usize..20_000, prop_oneof![Just(1usize), Just(8), Just(16), Just(4096)])
            .prop_map(|(at, size, align)| Op::Alloc { at, size: size.max(1), align }),
        3 => (place(), any::<usize>(), 1usize..40_000)
            .prop_map(|(at, which, size)| Op::Realloc { at, which, size }),
        4 => (place(), any::<usize>()).prop_map(|(at, which)| Op::Free { at, which }),
        1 => place().prop_map(|at| Op::ZeroSized { at }),
        1 => (0usize..BUDGETS).prop_map(|budget| Op::DropBudget { budget }),
    ]
}

struct Block {
    ptr: usize,
    layout: Layout,
    /// The budget charged, if the block was allocated in a task.
    owner: Option<usize>,
}

struct World {
    runtimes: Vec<Runtime>,
    roots: Vec<MkBudget>,
    budgets: Vec<Option<MkBudget>>,
    /// The root each budget is charged into (`None`: a root itself).
    parent: [Option<usize>; BUDGETS],
    blocks: Vec<Block>,
}

impl World {
    fn new() -> World {
        let runtimes: Vec<Runtime> = (0..2)
            .map(|_| Builder::new().worker_threads(2).build().unwrap())
            .collect();
        let roots: Vec<MkBudget> = runtimes.iter().map(|r| r.memory_budget().clone()).collect();
        let budgets = vec![
            Some(roots[0].child(1 << 30)),
            Some(roots[0].child(1 << 30)),
            Some(roots[1].child(1 << 30)),
            Some(MkBudget::new(1 << 30)),
        ];
        World {
            runtimes,
            roots,
            budgets,
            parent: [Some(0), Some(0), Some(1), None],
            blocks: Vec::new(),
        }
    }

    /// Runs `f` at `place`: in a task under the budget (its handle may be gone: a clone kept
    /// by the task's own record charges it), or on a plain thread.
    fn at<R: Send + 'static>(&self, place: Place, f: impl FnOnce() -> R + Send + 'static) -> R {
        match place {
            Place::Thread => std::thread::spawn(f).join().unwrap(),
            Place::Task { rt, budget } => {
                let rt = &self.runtimes[rt];
                let task = match &self.budgets[budget] {
                    Some(b) => task::Builder::new().budget(b),
                    None => task::Builder::new(),
                }
                .spawn_on(async move { f() }, rt.handle())
                .unwrap();
                rt.block_on(task).unwrap()
            }
        }
    }

    fn owner(&self, place: Place) -> Option<usize> {
        match place {
            // A task whose budget handle is gone runs under its runtime's root (index 4 + rt).
            Place::Task { rt, budget } => Some(if self.budgets[budget].is_some() {
                budget
            } else {
                BUDGETS + rt
            }),
            Place::Thread => None,
        }
    }

    fn apply(&mut self, op: Op) {
        match op {
            Op::Alloc { at, size, align } => {
                let layout = Layout::from_size_align(size, align).unwrap();
                // SAFETY: non-zero size.
                let ptr = self.at(at, move || unsafe { alloc(layout) } as usize);
                assert_ne!(ptr, 0);
                assert_eq!(ptr % align, 0);
                let owner = self.owner(at);
                self.blocks.push(Block { ptr, layout, owner });
            }
            Op::Realloc { at, which, size } if !self.blocks.is_empty() => {
                let i = which % self.blocks.len();
                let Block { ptr, layout, .. } = self.blocks[i];
                // SAFETY: a live block with its layout; the new size with its alignment is valid.
                let moved = self.at(at, move || unsafe { realloc(ptr as *mut u8, layout, size) }
                    as usize);
                assert_ne!(moved, 0);
                let owner = self.owner(at);
                self.blocks[i] = Block {
                    ptr: moved,
                    layout: Layout::from_size_align(size, layout.align()).unwrap(),
                    owner,
                };
            }
            Op::Free { at, which } if !self.blocks.is_empty() => {
                let Block { ptr, layout, .. } = self.blocks.swap_remove(which % self.blocks.len());
                // SAFETY: a live block with its layout, freed once.
                self.at(at, move || unsafe { dealloc(ptr as *mut u8, layout) });
            }
            Op::ZeroSized { at } => self.at(at, || {
                let zst = Box::new(());
                let empty: Vec<u64> = Vec::with_capacity(0);
                drop((zst, empty));
            }),
            Op::DropBudget { budget } => self.budgets[budget] = None,
            Op::Realloc { .. } | Op::Free { .. } => {}
        }
    }

    /// The bytes the model charged to budget `b` (or to runtime `b - BUDGETS`'s root directly).
    fn charged(&self, b: usize) -> usize {
        self.blocks
            .iter()
            .filter(|blk| blk.owner == Some(b))
            .map(|blk| cost(blk.layout.size()))
            .sum()
    }

    fn check(&self, step: usize) {
        for (b, budget) in self.budgets.iter().enumerate() {
            if let Some(budget) = budget {
                assert_eq!(
                    budget.used(),
                    self.charged(b),
                    "budget {b} after step {step}"
                );
            }
        }
        for (r, root) in self.roots.iter().enumerate() {
            let expected: usize = (0..BUDGETS)
                .filter(|&b| self.parent[b] == Some(r))
                .map(|b| self.charged(b))
                .sum::<usize>()
                + self.charged(BUDGETS + r);
            assert_eq!(
                root.used(),
                expected,
                "runtime {r}'s root after step {step}"
            );
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 128, ..ProptestConfig::default() })]

    #[test]
    #[cfg_attr(miri, ignore = "runs two runtimes per case")]
    fn budget_counts_match_the_model_at_every_step(ops in proptest::collection::vec(op(), 1..40)) {
        let mut world = World::new();
        for (step, op) in ops.into_iter().enumerate() {
            world.apply(op);
            world.check(step);
        }
        // Every task, budget handle and runtime goes; then every block is freed.
        let roots = world.roots.clone();
        let shared = world.budgets[3].clone();
        world.budgets.iter_mut().for_each(|b| *b = None);
        world.runtimes.clear();
        for blk in world.blocks.drain(..) {
            // SAFETY: live blocks with their layouts, freed once.
            unsafe { dealloc(blk.ptr as *mut u8, blk.layout) };
        }
        for (r, root) in roots.iter().enumerate() {
            prop_assert_eq!(root.used(), 0, "runtime {}'s root at the end", r);
        }
        if let Some(shared) = shared {
            prop_assert_eq!(shared.used(), 0);
        }
    }
}
