//! Strategies: random scenarios, weighted towards the cases that find bugs.

use crate::common::{KIB, MIB};
use crate::model::Pol;
use crate::ops::{
    BudgetChoice, ExplicitSpec, How, Op, Outside, ParentSpec, Place, Scenario, SpawnSpec,
};
use crate::payload::Api;
use proptest::prelude::*;

pub fn pol() -> impl Strategy<Value = Pol> {
    prop_oneof![Just(Pol::Wait), Just(Pol::Fail), Just(Pol::Evict)]
}

pub fn api() -> impl Strategy<Value = Api> {
    prop_oneof![3 => Just(Api::Try), 1 => Just(Api::Async)]
}

pub fn limit() -> impl Strategy<Value = usize> {
    prop_oneof![
        1 => Just(0usize),
        2 => Just(4 * KIB),
        2 => Just(12 * KIB),
        2 => Just(16 * KIB),
        3 => 1usize..=300 * KIB,
        2 => Just(64 * KIB),
        2 => Just(MIB),
        2 => Just(2 * MIB),
        1 => Just(4 * MIB),
    ]
}

pub fn capacity() -> impl Strategy<Value = usize> {
    prop_oneof![
        2 => Just(0usize),
        4 => 1usize..=64,
        4 => 65usize..=8 * KIB,
        2 => 8 * KIB..=70 * KIB,
        1 => 70 * KIB..=300 * KIB,
        1 => Just(1_100_000usize),
    ]
}

pub fn additional() -> impl Strategy<Value = usize> {
    prop_oneof![
        3 => 0usize..=64,
        3 => 0usize..=70 * KIB,
        1 => 70 * KIB..=300 * KIB,
        1 => Just(usize::MAX),
        1 => (isize::MAX as usize)..=usize::MAX,
    ]
}

pub fn guard_bytes() -> impl Strategy<Value = usize> {
    prop_oneof![
        1 => Just(0usize),
        4 => 1usize..=64 * KIB,
        2 => 64 * KIB..=2 * MIB,
        1 => Just(usize::MAX),
    ]
}

pub fn huge_cap() -> impl Strategy<Value = usize> {
    prop_oneof![
        (isize::MAX as usize / 8)..=usize::MAX,
        (1usize << 30)..=(isize::MAX as usize),
        Just(usize::MAX),
    ]
}

pub fn place() -> impl Strategy<Value = Place> {
    prop_oneof![1 => Just(Place::Test), 3 => any::<u8>().prop_map(Place::Task)]
}

pub fn how() -> impl Strategy<Value = How> {
    prop_oneof![
        3 => Just(How::Holder),
        1 => Just(How::Thread),
        2 => any::<u8>().prop_map(How::Task),
        1 => Just(How::IntoInner),
    ]
}

pub fn spawn_spec() -> impl Strategy<Value = SpawnSpec> {
    let budget = prop_oneof![
        1 => Just(BudgetChoice::Inherit),
        4 => limit().prop_map(BudgetChoice::Bytes),
        2 => any::<u8>().prop_map(BudgetChoice::Explicit),
    ];
    (
        proptest::option::weighted(0.3, any::<u8>()),
        budget,
        proptest::option::weighted(0.6, pol()),
    )
        .prop_map(|(inside, budget, policy)| SpawnSpec {
            inside,
            budget,
            policy,
        })
}

pub fn explicit_spec() -> impl Strategy<Value = ExplicitSpec> {
    let parent = prop_oneof![
        Just(ParentSpec::NewRoot),
        Just(ParentSpec::RuntimeRoot),
        any::<u8>().prop_map(ParentSpec::Earlier),
    ];
    (parent, limit(), proptest::option::of(pol())).prop_map(|(parent, limit, policy)| {
        ExplicitSpec {
            parent,
            limit,
            policy,
        }
    })
}

/// Operations on task arenas, vectors and objects, with everything else mixed in.
pub fn op() -> impl Strategy<Value = Op> {
    let n = any::<u8>;
    prop_oneof![
        2 => spawn_spec().prop_map(Op::Spawn),
        10 => (n(), n(), api()).prop_map(|(task, kind, api)| Op::Box { task, kind, api }),
        6 => (n(), capacity(), api()).prop_map(|(task, cap, api)| Op::Vec { task, cap, api }),
        3 => (n(), additional(), api()).prop_map(|(obj, additional, api)| Op::Grow { obj, additional, api }),
        10 => (n(), how()).prop_map(|(obj, how)| Op::Drop { obj, how }),
        3 => (n(), place()).prop_map(|(obj, to)| Op::Move { obj, to }),
        1 => (n(), any::<bool>()).prop_map(|(task, keep)| Op::EndTask { task, keep }),
        2 => (place(), n()).prop_map(|(at, budget)| Op::ArenaNew { at, budget }),
        5 => (n(), n(), api()).prop_map(|(arena, kind, api)| Op::ArenaAlloc { arena, kind, api }),
        1 => (n(), how()).prop_map(|(arena, how)| Op::ArenaDrop { arena, how }),
        1 => (n(), place()).prop_map(|(arena, to)| Op::ArenaMove { arena, to }),
        2 => (n(), guard_bytes(), api()).prop_map(|(budget, bytes, api)| Op::Guard { budget, bytes, api }),
        2 => n().prop_map(|guard| Op::GuardDrop { guard }),
        1 => n().prop_map(|budget| Op::AddConsumer { budget }),
        2 => (n(), guard_bytes()).prop_map(|(consumer, bytes)| Op::ConsumerFill { consumer, bytes }),
        1 => (n(), prop_oneof![Just(0usize), 1usize..=100, huge_cap()], prop_oneof![
            Just(Outside::BlockOn),
            Just(Outside::PlainThread),
            Just(Outside::Blocking)
        ])
            .prop_map(|(kind, cap, at)| Op::Outside { kind, cap, at }),
        1 => (n(), huge_cap(), any::<bool>()).prop_map(|(task, cap, wide)| Op::Huge { task, cap, wide }),
        1 => Just(Op::VerifyAll),
    ]
}

/// Budget pressure: guards, consumers and `Evict` on small budgets, with fewer kinds of objects.
pub fn pressure_op() -> impl Strategy<Value = Op> {
    let n = any::<u8>;
    let small = || prop_oneof![1usize..=8 * KIB, 8 * KIB..=64 * KIB];
    let cap = prop_oneof![1usize..=4 * KIB, 4 * KIB..=40 * KIB];
    prop_oneof![
        1 => evict_spawn_spec().prop_map(Op::Spawn),
        6 => (n(), n(), api()).prop_map(|(task, kind, api)| Op::Box { task, kind, api }),
        3 => (n(), cap, api()).prop_map(|(task, cap, api)| Op::Vec { task, cap, api }),
        6 => (n(), how()).prop_map(|(obj, how)| Op::Drop { obj, how }),
        1 => (place(), n()).prop_map(|(at, budget)| Op::ArenaNew { at, budget }),
        3 => (n(), n(), api()).prop_map(|(arena, kind, api)| Op::ArenaAlloc { arena, kind, api }),
        1 => (n(), how()).prop_map(|(arena, how)| Op::ArenaDrop { arena, how }),
        2 => (n(), small(), api()).prop_map(|(budget, bytes, api)| Op::Guard { budget, bytes, api }),
        2 => n().prop_map(|guard| Op::GuardDrop { guard }),
        1 => n().prop_map(|budget| Op::AddConsumer { budget }),
        6 => (n(), small()).prop_map(|(consumer, bytes)| Op::ConsumerFill { consumer, bytes }),
        1 => (n(), any::<bool>()).prop_map(|(task, keep)| Op::EndTask { task, keep }),
    ]
}

/// Mostly `Evict` budgets: the tasks' own, or shared explicit ones.
pub fn evict_spawn_spec() -> impl Strategy<Value = SpawnSpec> {
    let budget = prop_oneof![
        1 => Just(BudgetChoice::Inherit),
        3 => prop_oneof![Just(16 * KIB), Just(64 * KIB), 4 * KIB..=256 * KIB].prop_map(BudgetChoice::Bytes),
        2 => any::<u8>().prop_map(BudgetChoice::Explicit),
    ];
    let policy =
        prop_oneof![3 => Just(Some(Pol::Evict)), 1 => Just(None), 1 => pol().prop_map(Some)];
    (proptest::option::weighted(0.3, any::<u8>()), budget, policy).prop_map(
        |(inside, budget, policy)| SpawnSpec {
            inside,
            budget,
            policy,
        },
    )
}

pub fn pressure_scenario() -> impl Strategy<Value = Scenario> {
    let explicit = (
        prop_oneof![
            Just(ParentSpec::NewRoot),
            Just(ParentSpec::RuntimeRoot),
            any::<u8>().prop_map(ParentSpec::Earlier)
        ],
        prop_oneof![Just(32 * KIB), Just(128 * KIB), 8 * KIB..=512 * KIB],
        prop_oneof![3 => Just(Some(Pol::Evict)), 1 => pol().prop_map(Some)],
    )
        .prop_map(|(parent, limit, policy)| ExplicitSpec {
            parent,
            limit,
            policy,
        });
    (
        1usize..=2,
        prop_oneof![Just(64 * KIB), Just(256 * KIB), Just(MIB)],
        prop_oneof![3 => Just(Pol::Evict), 1 => pol()],
        proptest::collection::vec(explicit, 0..=3),
        proptest::collection::vec(evict_spawn_spec(), 1..=3),
        proptest::collection::vec(any::<u8>(), 1..=3),
        proptest::collection::vec(pressure_op(), 1..=64),
    )
        .prop_map(
            |(workers, root_limit, root_policy, explicit, tasks, consumers, ops)| {
                // Consumers first, on the root and a few other budgets.
                let ops = std::iter::once(Op::AddConsumer { budget: 0 })
                    .chain(
                        consumers
                            .into_iter()
                            .map(|budget| Op::AddConsumer { budget }),
                    )
                    .chain(ops)
                    .collect();
                Scenario {
                    workers,
                    root_limit,
                    root_policy,
                    explicit,
                    tasks,
                    ops,
                }
            },
        )
}

pub fn scenario(op: impl Strategy<Value = Op>, max_ops: usize) -> impl Strategy<Value = Scenario> {
    (
        1usize..=2,
        prop_oneof![
            Just(64 * KIB),
            Just(256 * KIB),
            Just(MIB),
            Just(8 * MIB),
            Just(usize::MAX)
        ],
        pol(),
        proptest::collection::vec(explicit_spec(), 0..=3),
        proptest::collection::vec(spawn_spec(), 1..=3),
        proptest::collection::vec(op, 1..=max_ops),
    )
        .prop_map(
            |(workers, root_limit, root_policy, explicit, tasks, ops)| Scenario {
                workers,
                root_limit,
                root_policy,
                explicit,
                tasks,
                ops,
            },
        )
}
