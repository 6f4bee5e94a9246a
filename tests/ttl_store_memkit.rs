//! The TTL store of `tests/port_ttl_store` and its tests on memkit-async, with memkit's paused
//! clock: the same source as `tests/ttl_store_tokio.rs`, only `rt` differs. Tasks, `JoinSet`,
//! timers, the clock and the test attribute are memkit's; `select!`, `Notify` and `mpsc` are
//! tokio's executor-independent parts, which work on any runtime.

mod rt {
    pub use memkit_async::spawn;
    pub use memkit_async::task::{JoinHandle, JoinSet};
    pub use memkit_async::test as async_test;
    pub use memkit_async::time::{
        advance, interval, sleep, sleep_until, timeout, Duration, Instant,
    };
    pub use tokio::select;
    pub use tokio::sync::{mpsc, Notify};
}

include!("port_ttl_store/store.rs");
include!("port_ttl_store/tests.rs");
