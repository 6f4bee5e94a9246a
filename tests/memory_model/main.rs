//! Property-based tests of the allocation API against a model (this suite stands in for
//! `cargo fuzz` on the stable toolchain).
//!
//! Each case builds a runtime (1 or 2 workers), a tree of budgets (task budgets made by
//! `spawn_with_budget` / `task::Builder`, explicit ones made by `MkBudget::new(..).child(..)`),
//! and runs a random sequence of operations: boxes of many sizes and alignments, vectors with
//! random capacities (0 included) that grow, `MkArena` values and whole-arena drops, budget
//! guards and an evictable consumer; objects are freed in random order, in the task that made
//! them, in another task, on a plain thread, or after their task ended. Nothing ever waits:
//! under `Wait` only the `try_` APIs are used, or an async API is polled once and dropped.
//!
//! The model follows every arena and chunk exactly (the engine's chunk policy: first chunk
//! 4 KiB; when an arena grows, an empty current chunk is given back first, then it takes the
//! next growth step (doubling up to 1 MiB, at least the object) if the budget has those bytes
//! right now, else the smallest chunk that holds the object, under the budget's policy; classes
//! are powers of two from 4 KiB to 1 MiB, above that a dedicated chunk rounded to 4 KiB; a chunk
//! is charged whole to its budget and every ancestor, reused once empty, and released when its
//! arena has retired it and its last object is gone). After every operation it checks:
//! 1. accounting: each budget's `used()` equals the model's bytes (chunks plus guards), chunk
//!    bytes are a multiple of 4096, `used() <= limit()`, nobody is waiting;
//! 2. memory: every object sits at the modelled offset of its chunk, no two live objects (nor
//!    two live chunks) overlap, and each object still holds the bytes written into it when it is
//!    dropped (arena values check themselves when their arena drops);
//! 3. errors: every refusal is exactly the modelled one (`ExceedsLimit`, `CapacityReached`,
//!    `SizeOverflow`, `AlignmentTooLarge`, `NoTask`), and nothing panics;
//! 4. teardown: once everything is dropped, every budget is back to 0 used and 0 waiting.
//!
//! The two model properties (`allocations_match_the_model`, `budget_pressure_matches_the_model`)
//! mirror the engine's chunk policy exactly; change `Model::arena_alloc` with it. Two contract
//! properties check what the policy must guarantee whatever its details (`ExceedsLimit` only for
//! requests above the limit; a task with nothing alive can allocate what fits its budget), and
//! the `regression_*` tests are the minimal engine failures they found, kept as regression tests.
//!
//! `PROPTEST_CASES` overrides the number of cases of each property.
//!
//! Layout: `payload` (what is allocated and how it checks its bytes), `driven` (the tasks the
//! test sends jobs to), `consumer` (the evictable consumer), `model` (the engine's accounting and
//! chunk policy), `ops` and `strategies` (random scenarios), `harness` (runs a scenario on the
//! engine and the model side by side), `single_task` (the helpers of the contract and regression
//! tests below).

#[path = "../common/mod.rs"]
mod common;
mod consumer;
mod driven;
mod harness;
mod model;
mod ops;
mod payload;
mod single_task;
mod strategies;

use crate::common::{KIB, MIB};
use crate::harness::run_scenario;
use crate::model::{chunk_size_for, CHUNK_ALIGN};
use crate::payload::{Al2, Al4096, Al8192, Api, KINDS};
use crate::single_task::{in_one_task, in_task_with_budget, steps};
use crate::strategies::{huge_cap, op, pressure_scenario, scenario};
use memkit_async::{
    spawn_with_budget, Builder, MkAllocError, MkArena, MkAsyncBox, MkAsyncVec, MkBackpressure,
    MkBudget,
};
use proptest::prelude::*;
use std::alloc::Layout;

fn cases(default: u32) -> u32 {
    std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(default)
}

fn config(default_cases: u32) -> ProptestConfig {
    ProptestConfig {
        cases: cases(default_cases),
        // Shrunk failures are kept as regular tests below, not in files next to the sources.
        failure_persistence: None,
        max_shrink_iters: 2048,
        ..ProptestConfig::default()
    }
}

// ---------------------------------------------------------------------------------------------
// Properties.

proptest! {
    #![proptest_config(config(128))]

    /// Boxes, vectors and arena values of every size and alignment, freed anywhere in any
    /// order, match the model exactly.
    #[test]
    #[cfg_attr(miri, ignore = "spawns runtimes and threads per case; too slow under Miri")]
    fn allocations_match_the_model(s in scenario(op(), 96)) {
        run_scenario(&s)?;
    }

    /// Guards, evictable consumers and every policy on full budgets match the model exactly.
    #[test]
    #[cfg_attr(miri, ignore = "spawns runtimes and threads per case; too slow under Miri")]
    fn budget_pressure_matches_the_model(s in pressure_scenario()) {
        run_scenario(&s)?;
    }
}

proptest! {
    #![proptest_config(config(256))]

    /// Requests no arena can serve get their documented error, inside and outside tasks, and
    /// never a panic.
    #[test]
    #[cfg_attr(miri, ignore = "spawns a runtime; too slow under Miri")]
    fn impossible_requests_get_their_documented_error(
        cap in huge_cap(),
        limit in 0usize..=MIB,
        kind in any::<u8>(),
    ) {
        let k = kind as usize % KINDS.len();
        let rt = Builder::new().worker_threads(1).build().unwrap();
        let res = rt.block_on(async move {
            spawn_with_budget(limit, async move {
                let wide = MkAsyncVec::<u64>::try_with_capacity(cap).err();
                let narrow = MkAsyncVec::<u8>::try_with_capacity(cap).err();
                let over_aligned = MkAsyncBox::try_new(Al8192::<1>([1])).err();
                let arena = MkArena::new(&MkBudget::current().unwrap());
                let arena_over_aligned = arena.alloc(Al8192::<1>([1])).err();
                let boxed = (KINDS[k].boxed)(7, Api::Try).map(|r| r.map(|h| h.range()));
                (wide, narrow, over_aligned, arena_over_aligned, boxed)
            })
            .await
        });
        let (wide, narrow, over_aligned, arena_over_aligned, boxed) = res.unwrap();
        let new_cap = cap.max(4);
        let want_wide = match Layout::array::<u64>(new_cap) {
            Err(_) => MkAllocError::SizeOverflow { requested: new_cap.saturating_mul(8) },
            Ok(l) => MkAllocError::ExceedsLimit { requested: chunk_size_for(l.size()).unwrap(), limit },
        };
        prop_assert_eq!(wide, Some(want_wide));
        let want_narrow = match Layout::array::<u8>(new_cap) {
            Err(_) => MkAllocError::SizeOverflow { requested: new_cap },
            Ok(l) => MkAllocError::ExceedsLimit { requested: chunk_size_for(l.size()).unwrap(), limit },
        };
        prop_assert_eq!(narrow, Some(want_narrow));
        let too_aligned = MkAllocError::AlignmentTooLarge { align: 8192, max: 4096 };
        prop_assert_eq!(over_aligned, Some(too_aligned.clone()));
        prop_assert_eq!(arena_over_aligned, Some(too_aligned.clone()));
        // A fresh arena: the object goes at the start of a chunk of the class that holds it.
        let layout = KINDS[k].layout;
        let want_box = if layout.align() > CHUNK_ALIGN {
            Err(too_aligned)
        } else if layout.size() == 0 {
            Ok((layout.align(), 0))
        } else {
            let chunk = chunk_size_for(layout.size()).unwrap();
            if chunk > limit {
                Err(MkAllocError::ExceedsLimit { requested: chunk, limit })
            } else {
                Ok((0, layout.size()))
            }
        };
        match (boxed, want_box) {
            (Some(Ok((addr, size))), Ok((want_addr, want_size))) => {
                prop_assert_eq!(size, want_size);
                if want_size == 0 {
                    prop_assert_eq!(addr, want_addr);
                } else {
                    prop_assert_eq!(addr % CHUNK_ALIGN, 0, "the first object starts its chunk");
                }
            }
            (Some(Err(e)), Err(want)) => prop_assert_eq!(e, want),
            (got, want) => prop_assert!(false, "box of {}: got {:?}, want {:?}", KINDS[k].name, got, want),
        }
        prop_assert_eq!(rt.memory_budget().used(), 0);
    }
}

// ---------------------------------------------------------------------------------------------
// Shrunk cases of engine bugs found by the model, kept as regular tests.

proptest! {
    #![proptest_config(config(128))]

    /// Contract (DESIGN.md, `MkAllocError::ExceedsLimit`): only a request larger than the
    /// limit is refused as one that can never fit. A box whose smallest chunk fits under the
    /// task's limit may be refused for lack of room (`CapacityReached`), never as
    /// `ExceedsLimit`.
    #[test]
    #[cfg_attr(miri, ignore = "spawns a runtime per case; too slow under Miri")]
    fn only_requests_above_the_limit_are_refused_as_exceeding_it(
        limit in prop_oneof![Just(12 * KIB), Just(16 * KIB), 4 * KIB..=256 * KIB],
        steps in steps(),
    ) {
        let (refused, ()) = in_one_task(limit, steps, drop);
        for r in refused {
            let exceeds = r.contains("ExceedsLimit");
            let kind = KINDS.iter().find(|k| r.starts_with(&format!("{} ", k.name))).unwrap();
            let smallest = chunk_size_for(kind.layout.size()).unwrap();
            prop_assert!(!exceeds || smallest > limit, "limit {}: {}", limit, r);
        }
    }

    /// Contract: a task whose objects are all gone, alone on its budget, can allocate any box
    /// whose smallest chunk fits under the limit: its empty chunks never stand in the way.
    #[test]
    #[cfg_attr(miri, ignore = "spawns a runtime per case; too slow under Miri")]
    fn a_task_with_nothing_alive_can_allocate_what_fits_its_budget(
        limit in prop_oneof![Just(16 * KIB), Just(64 * KIB), 4 * KIB..=256 * KIB],
        steps in steps(),
        last in any::<u8>(),
    ) {
        let kind = &KINDS[last as usize % KINDS.len()];
        prop_assume!(kind.layout.align() <= CHUNK_ALIGN);
        prop_assume!(chunk_size_for(kind.layout.size()).unwrap() <= limit);
        let boxed = kind.boxed;
        let (_, got) = in_one_task(limit, steps, move |live| {
            drop(live);
            let used = MkBudget::current().unwrap().used();
            (used, boxed(2, Api::Try).unwrap().map(drop))
        });
        prop_assert!(got.1.is_ok(), "{} in a {} B budget with nothing alive ({} B of empty chunks): {:?}", kind.name, limit, got.0, got.1);
    }
}

/// Shrunk from `only_requests_above_the_limit_are_refused_as_exceeding_it`. In a 12 KiB task
/// budget, a 1-byte box takes a 4 KiB chunk and a 4 KiB-aligned 4 KiB box an 8 KiB one; the
/// growth step is now 16 KiB, so an 8 KiB box is refused with
/// `ExceedsLimit { requested: 16384, limit: 12288 }`: "can never fit", although an 8 KiB
/// object fits a 12 KiB budget (it is `CapacityReached` now, and fits once the others drop).
/// Under `Wait` the request fails at once instead of waiting.
#[test]
#[cfg_attr(miri, ignore = "spawns a runtime; too slow under Miri")]
fn regression_an_8_kib_box_is_not_refused_as_exceeding_a_12_kib_limit() {
    let refused = in_task_with_budget(12 * KIB, MkBackpressure::Fail, async {
        let small = MkAsyncBox::try_new([1u8; 1]).unwrap();
        let aligned = MkAsyncBox::try_new(Al4096::<1>([2])).unwrap();
        let res = MkAsyncBox::try_new(Al4096::<5000>([3; 5000]))
            .map(drop)
            .err();
        drop((small, aligned));
        res
    });
    assert!(
        !matches!(refused, Some(MkAllocError::ExceedsLimit { .. })),
        "an 8 KiB box in a 12 KiB budget was refused as exceeding the limit: {refused:?}"
    );
}

/// The same growth step with room to spare: 8 KiB of a 12 KiB budget in use, a 1-byte box
/// that needs a new chunk is refused with `ExceedsLimit { requested: 16384, .. }` while a
/// 4 KiB chunk would fit right now.
#[test]
#[cfg_attr(miri, ignore = "spawns a runtime; too slow under Miri")]
fn regression_a_1_byte_box_fits_the_4_kib_left_once_the_growth_step_exceeds_the_limit() {
    let (used, res) = in_task_with_budget(12 * KIB, MkBackpressure::Fail, async {
        let a = MkAsyncBox::try_new([1u8; 4096]).unwrap(); // chunk 1: 4 KiB, full
        let b = MkAsyncBox::try_new([2u8; 4096]).unwrap(); // chunk 2: 8 KiB
        let c = MkAsyncBox::try_new([3u8; 4096]).unwrap(); // chunk 2, now full
        drop(a); // chunk 1 goes: 8 KiB of 12 used
        let used = MkBudget::current().unwrap().used();
        let res = MkAsyncBox::try_new([4u8; 1]).map(drop);
        drop((b, c));
        (used, res)
    });
    assert_eq!(used, 8 * KIB);
    assert_eq!(
        res,
        Ok(()),
        "a 1-byte box with 4 KiB of a 12 KiB budget free"
    );
}

/// Shrunk from `a_task_with_nothing_alive_can_allocate_what_fits_its_budget`. A task with a
/// 64 KiB budget allocates a 4-byte box (a 4 KiB chunk) and drops it: nothing is alive, but
/// the empty chunk stays charged while the next one is acquired, so a 40 000-byte box (a
/// 64 KiB chunk) is refused with `CapacityReached { requested: 65536, limit: 65536, used:
/// 4096 }`; under `Wait` the task parks forever, waiting for bytes only it holds.
#[test]
#[cfg_attr(miri, ignore = "spawns a runtime; too slow under Miri")]
fn regression_an_empty_chunk_is_given_back_before_the_arena_grows() {
    let res = in_task_with_budget(64 * KIB, MkBackpressure::Fail, async {
        drop(MkAsyncBox::try_new(Al2::<3>([1; 3])).unwrap());
        MkAsyncBox::try_new([2u8; 40000]).map(drop)
    });
    assert_eq!(res, Ok(()), "under Fail, with nothing alive in the task");
    let res = in_task_with_budget(64 * KIB, MkBackpressure::Wait, async {
        drop(MkAsyncBox::try_new(Al2::<3>([1; 3])).unwrap());
        MkAsyncBox::new([2u8; 40000]).await.map(drop)
    });
    assert_eq!(res, Ok(()), "under Wait, with nothing alive in the task");
}
