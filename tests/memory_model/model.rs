//! The model: every budget, arena and chunk of a scenario, following the engine's chunk policy.

use crate::common::{KIB, MIB};
use crate::payload::Api;
use memkit_async::{MkAllocError, MkBackpressure};
use std::alloc::Layout;
use std::collections::VecDeque;

/// The first chunk of an arena, the smallest class, and the alignment of every chunk.
pub const MIN_CLASS: usize = 4 * KIB;
/// The largest pooled chunk class; larger requests get a dedicated chunk.
pub const MAX_CLASS: usize = MIB;
pub const CHUNK_ALIGN: usize = 4096;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Pol {
    Wait,
    Fail,
    Evict,
}

impl Pol {
    pub fn mk(self) -> MkBackpressure {
        match self {
            Pol::Wait => MkBackpressure::Wait,
            Pol::Fail => MkBackpressure::Fail,
            Pol::Evict => MkBackpressure::Evict,
        }
    }
}

/// Why the model expects a request to end without an allocation.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Refused {
    Err(MkAllocError),
    /// An async request under `Wait` that does not fit: it would wait.
    Pending,
}

impl From<MkAllocError> for Refused {
    fn from(e: MkAllocError) -> Refused {
        Refused::Err(e)
    }
}

pub struct MBudget {
    pub limit: usize,
    pub parent: Option<usize>,
    pub policy: Pol,
    pub used: usize,
    /// The highest `used` reached by a charge that succeeded on the whole path.
    pub peak: usize,
    /// Bytes of guards (the test's and consumers') charged directly here.
    pub guards: usize,
    pub consumers: Vec<usize>,
}

pub struct MConsumer {
    pub budget: usize,
    pub entries: VecDeque<usize>,
}

pub struct MChunk {
    pub size: usize,
    pub budget: usize,
    pub live: usize,
    pub retired: bool,
    pub dead: bool,
    /// Learned from the first object placed in it (at offset 0).
    pub start: Option<usize>,
}

pub struct MArena {
    pub budget: usize,
    /// Task arena (objects counted, chunks reused once empty) or `MkArena` (kept until drop).
    pub counted: bool,
    pub current: Option<usize>,
    pub bump: usize,
    pub next_size: usize,
    pub kept: Vec<usize>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Placed {
    Zst,
    At { chunk: usize, offset: usize },
}

#[derive(Default)]
pub struct Model {
    pub budgets: Vec<MBudget>,
    pub consumers: Vec<MConsumer>,
    pub chunks: Vec<MChunk>,
    pub arenas: Vec<MArena>,
}

/// The chunk size that holds `bytes` (chunk_pool.rs): the smallest power-of-two class from
/// 4 KiB, or above 1 MiB the size rounded up to 4 KiB.
pub fn chunk_size_for(bytes: usize) -> Option<usize> {
    if bytes <= MIN_CLASS {
        Some(MIN_CLASS)
    } else if bytes <= MAX_CLASS {
        Some(bytes.next_power_of_two())
    } else {
        bytes
            .checked_add(CHUNK_ALIGN - 1)
            .map(|b| b & !(CHUNK_ALIGN - 1))
    }
}

impl Model {
    pub fn add_budget(&mut self, limit: usize, parent: Option<usize>, policy: Pol) -> usize {
        self.budgets.push(MBudget {
            limit,
            parent,
            policy,
            used: 0,
            peak: 0,
            guards: 0,
            consumers: Vec::new(),
        });
        self.budgets.len() - 1
    }

    pub fn ancestors(&self, b: usize) -> Vec<usize> {
        std::iter::successors(Some(b), |&b| self.budgets[b].parent).collect()
    }

    /// The smallest limit on `b`'s chain, and never above the most a budget can count
    /// (64 TiB): a larger request can never fit, even under unlimited budgets.
    pub fn min_limit(&self, b: usize) -> usize {
        self.ancestors(b)
            .into_iter()
            .map(|a| self.budgets[a].limit)
            .min()
            .unwrap()
            .min(memkit_async::MkBudget::MAX_BYTES)
    }

    /// Guard bytes charged to `b` or below it.
    pub fn guard_bytes_under(&self, b: usize) -> usize {
        (0..self.budgets.len())
            .filter(|&i| self.ancestors(i).contains(&b))
            .map(|i| self.budgets[i].guards)
            .sum()
    }

    pub fn try_charge(&mut self, b: usize, bytes: usize) -> Result<(), usize> {
        let path = self.ancestors(b);
        for &a in &path {
            let m = &self.budgets[a];
            if m.used.checked_add(bytes).is_none_or(|n| n > m.limit) {
                return Err(a);
            }
        }
        for a in path {
            let m = &mut self.budgets[a];
            m.used += bytes;
            m.peak = m.peak.max(m.used);
        }
        Ok(())
    }

    pub fn release(&mut self, b: usize, bytes: usize) {
        for a in self.ancestors(b) {
            self.budgets[a].used -= bytes;
        }
    }

    pub fn capacity_reached(&self, full: usize, requested: usize) -> MkAllocError {
        MkAllocError::CapacityReached {
            requested,
            limit: self.budgets[full].limit,
            used: self.budgets[full].used,
        }
    }

    /// `MkBudget::try_acquire` (`Api::Try`) or the first poll of `MkBudget::acquire`.
    pub fn acquire(&mut self, b: usize, bytes: usize, api: Api) -> Result<(), Refused> {
        let min = self.min_limit(b);
        if bytes > min {
            return Err(MkAllocError::ExceedsLimit {
                requested: bytes,
                limit: min,
            }
            .into());
        }
        if bytes == 0 {
            return Ok(());
        }
        match self.try_charge(b, bytes) {
            Ok(()) => Ok(()),
            Err(full) => match self.budgets[b].policy {
                Pol::Evict => self.evict_for(b, bytes, full),
                Pol::Wait if api == Api::Async => Err(Refused::Pending),
                _ => Err(self.capacity_reached(full, bytes).into()),
            },
        }
    }

    /// `MkBudget::evict_for`: asks the consumers from `b` up to `full`, retrying after each.
    pub fn evict_for(&mut self, b: usize, bytes: usize, mut full: usize) -> Result<(), Refused> {
        loop {
            let m = &self.budgets[full];
            let wanted = bytes.saturating_sub(m.limit.saturating_sub(m.used));
            let path = self.ancestors(b);
            let upto = path.iter().position(|&a| a == full).unwrap();
            let consumers: Vec<usize> = path[..=upto]
                .iter()
                .flat_map(|&a| self.budgets[a].consumers.clone())
                .collect();
            let mut freed = 0;
            for c in consumers {
                freed += self.consumer_evict(c, wanted.max(1));
                match self.try_charge(b, bytes) {
                    Ok(()) => return Ok(()),
                    Err(now_full) => full = now_full,
                }
            }
            if freed == 0 {
                return Err(self.capacity_reached(full, bytes).into());
            }
        }
    }

    pub fn consumer_evict(&mut self, c: usize, wanted: usize) -> usize {
        let mut freed = 0;
        while freed < wanted {
            let Some(bytes) = self.consumers[c].entries.pop_front() else {
                break;
            };
            freed += bytes;
            let b = self.consumers[c].budget;
            self.budgets[b].guards -= bytes;
            self.release(b, bytes);
        }
        freed
    }

    pub fn add_arena(&mut self, budget: usize, counted: bool) -> usize {
        self.arenas.push(MArena {
            budget,
            counted,
            current: None,
            bump: 0,
            next_size: MIN_CLASS,
            kept: Vec::new(),
        });
        self.arenas.len() - 1
    }

    pub fn bump_in(&mut self, a: usize, c: usize, layout: Layout) -> Option<usize> {
        let size = self.chunks[c].size;
        let arena = &mut self.arenas[a];
        let start = arena.bump.checked_add(layout.align() - 1)? & !(layout.align() - 1);
        let end = start.checked_add(layout.size())?;
        if end > size {
            return None;
        }
        arena.bump = end;
        if arena.counted {
            self.chunks[c].live += 1;
        }
        Some(start)
    }

    /// `Arena::try_alloc` (or the first poll of an async allocation), as the engine does it
    /// today: bump in the current chunk (from its start again if it is empty, task arenas
    /// only), else charge a new chunk of `max(size, growth step)` rounded to its class while
    /// the old one is still charged, then retire (task arena) or keep (`MkArena`) the old one.
    pub fn arena_alloc(&mut self, a: usize, layout: Layout, api: Api) -> Result<Placed, Refused> {
        if layout.align() > CHUNK_ALIGN {
            return Err(MkAllocError::AlignmentTooLarge {
                align: layout.align(),
                max: CHUNK_ALIGN,
            }
            .into());
        }
        if layout.size() == 0 {
            return Ok(Placed::Zst);
        }
        if let Some(c) = self.arenas[a].current {
            if let Some(offset) = self.bump_in(a, c, layout) {
                return Ok(Placed::At { chunk: c, offset });
            }
            if self.arenas[a].counted && self.chunks[c].live == 0 {
                self.arenas[a].bump = 0;
                if let Some(offset) = self.bump_in(a, c, layout) {
                    return Ok(Placed::At { chunk: c, offset });
                }
            }
        }
        // An empty current chunk that was too small is given back before the arena grows.
        if self.arenas[a].counted {
            if let Some(c) = self.arenas[a].current {
                if self.chunks[c].live == 0 {
                    self.arenas[a].current = None;
                    self.arenas[a].bump = 0;
                    self.retire(c);
                }
            }
        }
        let overflow = MkAllocError::SizeOverflow {
            requested: layout.size(),
        };
        let smallest = chunk_size_for(layout.size()).ok_or(overflow.clone())?;
        let grown = chunk_size_for(layout.size().max(self.arenas[a].next_size)).ok_or(overflow)?;
        let budget = self.arenas[a].budget;
        // The growth step only if it is at most half the arena's budget and fits right now;
        // else the smallest chunk, under the policy.
        let size = if grown > smallest
            && grown <= self.budgets[budget].limit / 2
            && self.try_charge(budget, grown).is_ok()
        {
            grown
        } else {
            self.acquire(budget, smallest, api)?;
            smallest
        };
        if Layout::from_size_align(size, CHUNK_ALIGN).is_err() {
            self.release(budget, size);
            return Err(MkAllocError::SystemOutOfMemory { requested: size }.into());
        }
        self.chunks.push(MChunk {
            size,
            budget,
            live: 0,
            retired: false,
            dead: false,
            start: None,
        });
        let chunk = self.chunks.len() - 1;
        if let Some(old) = self.arenas[a].current.replace(chunk) {
            if self.arenas[a].counted {
                self.retire(old);
            } else {
                self.arenas[a].kept.push(old);
            }
        }
        let arena = &mut self.arenas[a];
        arena.bump = 0;
        if size <= MAX_CLASS {
            arena.next_size = (arena.next_size * 2).min(MAX_CLASS);
        }
        let offset = self
            .bump_in(a, chunk, layout)
            .expect("a new chunk holds the object");
        Ok(Placed::At { chunk, offset })
    }

    /// Whether an allocation of `layout` would get as far as asking the system for a chunk
    /// larger than any budget on the way can hold (such requests are not run).
    pub fn would_ask_system_for_huge(&self, a: usize, layout: Layout) -> bool {
        let wanted = layout.size().max(self.arenas[a].next_size);
        match chunk_size_for(wanted) {
            Some(size) => size >= 1 << 30 && size <= self.min_limit(self.arenas[a].budget),
            None => false,
        }
    }

    pub fn retire(&mut self, c: usize) {
        self.chunks[c].retired = true;
        if self.chunks[c].live == 0 {
            self.destroy(c);
        }
    }

    pub fn destroy(&mut self, c: usize) {
        let chunk = &mut self.chunks[c];
        assert!(!chunk.dead, "model: chunk {c} destroyed twice");
        chunk.dead = true;
        let (budget, size) = (chunk.budget, chunk.size);
        self.release(budget, size);
    }

    pub fn free(&mut self, chunk: Option<usize>) {
        if let Some(c) = chunk {
            self.chunks[c].live -= 1;
            if self.chunks[c].retired && self.chunks[c].live == 0 {
                self.destroy(c);
            }
        }
    }

    /// The task ended: its arena retires its current chunk.
    pub fn end_task_arena(&mut self, a: usize) {
        if let Some(c) = self.arenas[a].current.take() {
            self.retire(c);
        }
    }

    /// An `MkArena` dropped: all its chunks go.
    pub fn drop_owned_arena(&mut self, a: usize) {
        let kept = std::mem::take(&mut self.arenas[a].kept);
        for c in kept.into_iter().chain(self.arenas[a].current.take()) {
            self.destroy(c);
        }
    }
}
