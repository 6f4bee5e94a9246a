//! Named counters of everything the soak does; the watchdog watches them move.

use std::sync::atomic::AtomicU64;
use std::sync::atomic::Ordering::SeqCst;

macro_rules! counters {
    ($($name:ident => $label:literal,)*) => {
        /// A named counter; its label's first word groups it in the summary.
        #[derive(Clone, Copy, Debug, PartialEq, Eq)]
        pub enum C { $($name,)* }
        pub const LABELS: &[&str] = &[$($label,)*];
    };
}

counters! {
    OpSpawn => "op spawn",
    OpNest => "op spawn + nested children",
    OpSpawnBudget => "op spawn_with_budget",
    OpBuilder => "op task::Builder (name/budget/policy/reserve)",
    OpReserve => "op admission batch (reserve)",
    OpAbort => "op abort",
    OpPanic => "op panicking task",
    OpForeign => "op foreign-thread wake-ups",
    OpWait => "op alloc Wait",
    OpFail => "op alloc Fail",
    OpTimeout => "op alloc Timeout",
    OpEvict => "op alloc Evict",
    OpBoxes => "op channel of boxes",
    OpArenas => "op channel of arenas",
    OpBlocking => "op spawn_blocking",
    OpBlockOn => "op block_on(join handle)",
    OpWakerPanic => "op panicking wakers",
    OpSockets => "op cancelled socket waits",
    FaultPanic => "fault panics injected",
    FaultAbort => "fault aborts requested",
    FaultExceeds => "fault oversize requests refused (ExceedsLimit)",
    FaultWakerPanic => "fault panicking wakers fired",
    ShutdownDrop => "fault mid-flight shutdown: drop",
    ShutdownTimeout => "fault mid-flight shutdown: shutdown_timeout",
    ShutdownBackground => "fault mid-flight shutdown: shutdown_background",
    ShutdownThread => "fault mid-flight shutdown: drop on another thread",
    JoinOk => "join ok",
    JoinPanic => "join panicked (injected)",
    JoinCancelled => "join cancelled",
    AllocWait => "alloc ok under Wait",
    AllocFail => "alloc ok under Fail",
    AllocTimeout => "alloc ok under Timeout",
    AllocEvict => "alloc ok under Evict",
    ErrFail => "alloc Fail -> CapacityReached",
    ErrTimeout => "alloc Timeout -> TimedOut",
    ErrEvict => "alloc Evict -> CapacityReached",
    ErrTry => "alloc try_ refused (never waits)",
    Evicted => "alloc cache entries evicted",
    Acquired => "alloc MkBudget acquire/try_acquire served",
    BoxesSent => "flow boxes sent",
    BoxesReceived => "flow boxes received",
    SendsRefused => "flow channel sends refused (Fail, Timeout)",
    ArenasSent => "flow arenas sent",
    ArenasReceived => "flow arenas received",
    RemoteFrees => "flow boxes/arenas dropped on a foreign thread",
    ForeignWakes => "flow wake-ups from foreign threads",
    ForeignCanceled => "flow oneshots dropped by a foreign thread",
    ForeignSpawns => "flow tasks spawned from foreign threads",
    ForeignBlockOn => "flow memory waits on foreign threads",
    Admitted => "flow tasks admitted after reserve",
    SocketAbandoned => "flow socket waits polled once and dropped",
    SocketTimedOut => "flow socket waits timed out",
    Datagrams => "flow datagrams received after cancelled waits",
    Runtimes => "runtime created",
    Graceful => "runtime drained and dropped",
    FutCreated => "check futures created",
    FutDropped => "check futures dropped",
    ObjCreated => "check objects created",
    ObjDropped => "check objects dropped",
    BudgetsChecked => "check budgets back to 0",
    Failures => "check failures",
}

pub static COUNTS: [AtomicU64; LABELS.len()] = [const { AtomicU64::new(0) }; LABELS.len()];
/// Moves whenever anything happens; the watchdog watches it.
pub static PROGRESS: AtomicU64 = AtomicU64::new(0);

pub fn bump(c: C) {
    COUNTS[c as usize].fetch_add(1, SeqCst);
    PROGRESS.fetch_add(1, SeqCst);
}

pub fn get(c: C) -> u64 {
    COUNTS[c as usize].load(SeqCst)
}

pub fn live_futures() -> u64 {
    // Dropped first: a drop is never counted before its creation.
    let dropped = get(C::FutDropped);
    get(C::FutCreated).saturating_sub(dropped)
}
