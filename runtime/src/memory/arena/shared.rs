//! Allocation in an arena that threads share under a lock (a cache's arena, the frames of a
//! frame allocator).
//!
//! The lock is held only to bump and to install a chunk; the budget is asked for a new chunk
//! with no lock held, because what it may run is user code: eviction (`MkEvictable::evict`,
//! which may close frames or insert into the same cache), the drops of what it evicts, and the
//! wakers of tasks that bytes given back are granted to. A step under the lock never touches
//! the budget: what it lets go of (a charge it no longer needs, a retired chunk) is dropped by
//! the caller once the lock is released.

use super::{grow_now, Arena, Block, Retired};
use crate::memory::{MkAllocError, MkBudget, MkBudgetGuard};
use std::alloc::Layout;

/// A chunk's bytes, charged with no lock held, and the chunk size they pay for.
pub(crate) type Charge = (MkBudgetGuard, usize);

/// What an allocation in a shared arena does next.
pub(crate) enum Step {
    /// The block is allocated.
    Done(Block),
    /// The arena needs a new chunk: `grown` bytes if the budget has them at once, else
    /// `smallest` under the budget's policy.
    Grow { grown: usize, smallest: usize },
}

/// What a step let go of, dropped after the lock is released: both give bytes back to the
/// budget, which wakes tasks.
#[derive(Default)]
pub(crate) struct Spare {
    charge: Option<MkBudgetGuard>,
    retired: Option<Retired>,
}

impl Spare {
    /// Keeps a charge the step did not use (the arena it was for is gone).
    pub(crate) fn give_back(&mut self, charge: Option<Charge>) {
        self.charge = charge.map(|(guard, _)| guard);
    }
}

impl Arena {
    /// One step of allocating `layout`, run with the arena's lock held. With `charge` (a chunk
    /// charged after a `Grow`), it installs that chunk, unless the current one has room by now
    /// (another thread installed a chunk meanwhile).
    pub(crate) fn step_shared(
        &self,
        layout: Layout,
        charge: Option<Charge>,
        spare: &mut Spare,
    ) -> Result<Step, MkAllocError> {
        Arena::check_layout(layout)?;
        if let Some(block) = self.alloc_fast(layout) {
            spare.give_back(charge);
            return Ok(Step::Done(block));
        }
        let Some((charge, size)) = charge else {
            spare.retired = Some(self.release_current_if_empty());
            let (grown, smallest) = self.next_chunk_sizes(layout)?;
            return Ok(Step::Grow { grown, smallest });
        };
        let mem = match self.take_chunk(size) {
            Ok(mem) => mem,
            Err(err) => {
                spare.charge = Some(charge);
                return Err(err);
            }
        };
        spare.retired = Some(self.install(mem, charge));
        self.alloc_fast(layout)
            .map(Step::Done)
            .ok_or(MkAllocError::SizeOverflow {
                requested: layout.size(),
            })
    }
}

/// Runs one step (`step` locks, calls [`Arena::step_shared`] and unlocks), then drops what it
/// let go of, with the lock released.
fn run_step(
    step: &mut impl FnMut(Option<Charge>, &mut Spare) -> Result<Step, MkAllocError>,
    charge: Option<Charge>,
) -> Result<Step, MkAllocError> {
    let mut spare = Spare::default();
    let next = step(charge, &mut spare);
    drop(spare);
    next
}

/// Allocates in a shared arena without waiting: a new chunk is charged to `budget` (the
/// arena's) with [`MkBudget::try_acquire`], which evicts under `Evict`.
pub(crate) fn try_alloc(
    budget: &MkBudget,
    mut step: impl FnMut(Option<Charge>, &mut Spare) -> Result<Step, MkAllocError>,
) -> Result<Block, MkAllocError> {
    let mut charge = None;
    loop {
        match run_step(&mut step, charge.take())? {
            Step::Done(block) => return Ok(block),
            Step::Grow { grown, smallest } => {
                charge = Some(match grow_now(budget, grown, smallest) {
                    Some(guard) => (guard, grown),
                    None => (budget.try_acquire(smallest)?, smallest),
                });
            }
        }
    }
}

/// Allocates in a shared arena, applying `budget`'s policy when a new chunk does not fit
/// (`Wait` parks the task until memory is released).
pub(crate) async fn alloc(
    budget: &MkBudget,
    mut step: impl FnMut(Option<Charge>, &mut Spare) -> Result<Step, MkAllocError>,
) -> Result<Block, MkAllocError> {
    let mut charge = None;
    loop {
        // Bound apart from the `await` below: a `Block` is not `Send`, and neither would the
        // future be if a match over the step's result were still alive across the wait.
        let (grown, smallest) = match run_step(&mut step, charge.take())? {
            Step::Done(block) => return Ok(block),
            Step::Grow { grown, smallest } => (grown, smallest),
        };
        charge = Some(match grow_now(budget, grown, smallest) {
            Some(guard) => (guard, grown),
            None => (budget.acquire(smallest).await?, smallest),
        });
    }
}
