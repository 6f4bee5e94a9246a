//! The TTL store of `tests/port_ttl_store` and its tests on tokio, with tokio's paused clock.
//! `tests/ttl_store_memkit.rs` runs the same source on memkit-async: only `rt` differs.

mod rt {
    pub use tokio::select;
    pub use tokio::spawn;
    pub use tokio::sync::{mpsc, Notify};
    pub use tokio::task::{JoinHandle, JoinSet};
    pub use tokio::test as async_test;
    pub use tokio::time::{advance, interval, sleep, sleep_until, timeout, Duration, Instant};
}

include!("port_ttl_store/store.rs");
include!("port_ttl_store/tests.rs");
