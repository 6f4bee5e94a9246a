//! Runs a scenario from start to teardown under a watchdog.

use crate::harness::Harness;
use crate::ops::Scenario;
use memkit_async::Builder;
use proptest::test_runner::TestCaseError;
use std::sync::atomic::AtomicBool;
use std::sync::atomic::Ordering::SeqCst;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// A case whose steps stop making progress for this long fails instead of hanging.
pub const STEP_DEADLINE: Duration = Duration::from_secs(30);

/// Fails the process if a case stops making progress, instead of hanging the test binary.
pub struct Watchdog {
    pub beat: Arc<Mutex<(Instant, String)>>,
    pub done: Arc<AtomicBool>,
}

impl Watchdog {
    pub fn start() -> Watchdog {
        let beat = Arc::new(Mutex::new((Instant::now(), String::from("start"))));
        let done = Arc::new(AtomicBool::new(false));
        let (b, d) = (beat.clone(), done.clone());
        std::thread::spawn(move || {
            while !d.load(SeqCst) {
                std::thread::sleep(Duration::from_millis(50));
                let (at, what) = b.lock().unwrap().clone();
                if at.elapsed() > STEP_DEADLINE && !d.load(SeqCst) {
                    eprintln!("memory_model: no progress for {STEP_DEADLINE:?} in step: {what}");
                    std::process::abort();
                }
            }
        });
        Watchdog { beat, done }
    }
}

impl Drop for Watchdog {
    fn drop(&mut self) {
        self.done.store(true, SeqCst);
    }
}

pub fn run_scenario(s: &Scenario) -> Result<(), TestCaseError> {
    let watchdog = Watchdog::start();
    let rt = Builder::new()
        .worker_threads(s.workers)
        .memory_limit(s.root_limit)
        .memory_policy(s.root_policy.mk())
        .build()
        .expect("build the runtime");
    let mut h = Harness::new(rt.handle().clone(), s, watchdog.beat.clone());
    let res = rt.block_on(async {
        h.check("start")?;
        for (i, spec) in s.tasks.iter().enumerate() {
            h.spawn(*spec).await?;
            h.check(&format!("initial task {i}"))?;
        }
        for (i, op) in s.ops.iter().enumerate() {
            *h.beat.lock().unwrap() = (Instant::now(), format!("op {i}: {op:?}"));
            h.step(op).await?;
            h.check(&format!("after op {i}: {op:?}"))?;
        }
        *h.beat.lock().unwrap() = (Instant::now(), String::from("teardown"));
        h.teardown().await
    });
    drop(h);
    drop(rt);
    res
}
