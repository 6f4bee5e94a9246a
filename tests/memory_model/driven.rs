//! Tasks driven by the test: each runs jobs sent to it, one at a time, and replies.

use crate::payload::Held;
use futures::channel::{mpsc, oneshot};
use futures::StreamExt;
use memkit_async::task::yield_now;
use memkit_async::MkArena;
use std::collections::HashMap;

pub type Job = Box<dyn FnOnce(&mut Local) -> bool + Send>;

/// What a task holds between jobs; returned as its output when it ends.
#[derive(Default)]
pub struct Local {
    pub objs: HashMap<u64, Box<dyn Held>>,
    pub arenas: HashMap<u64, MkArena>,
}

pub async fn worker(mut rx: mpsc::UnboundedReceiver<Job>) -> Local {
    let mut local = Local::default();
    while let Some(job) = rx.next().await {
        if !job(&mut local) {
            break;
        }
        // Lets the task move to another worker between jobs.
        yield_now().await;
    }
    local
}

/// Runs `f` inside the task behind `tx` and returns its result. The job (and everything it
/// captured) is gone before the reply is sent, so its memory effects are all visible then.
pub async fn run_in<R: Send + 'static>(
    tx: &mpsc::UnboundedSender<Job>,
    f: impl FnOnce(&mut Local) -> R + Send + 'static,
) -> R {
    let (rtx, rrx) = oneshot::channel();
    let job: Job = Box::new(move |local| {
        let r = f(local);
        let _ = rtx.send(r);
        true
    });
    tx.unbounded_send(job).expect("the task is alive");
    rrx.await.expect("the task replied")
}
