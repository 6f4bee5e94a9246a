//! Counted futures and objects: every one created is dropped exactly once, unchanged; task
//! outputs and injected panics.

use crate::common::panic_message;
use crate::counters::{bump, C};
use crate::rng::Rng;
use crate::state::fail;
use crate::INJECTED;
use memkit_async::{JoinError, MkArena, MkAsyncBox, MkAsyncVec};
use std::future::Future;
use std::sync::Once;

/// Bumps one counter when made and another when dropped.
pub struct Life(C);

impl Life {
    pub fn new(created: C, dropped: C) -> Life {
        bump(created);
        Life(dropped)
    }
}

impl Drop for Life {
    fn drop(&mut self) {
        bump(self.0);
    }
}

/// `future`, counted: created now, dropped with the future (polled or not).
pub fn counted<F: Future>(future: F) -> impl Future<Output = F::Output> {
    let life = Life::new(C::FutCreated, C::FutDropped);
    async move {
        let _life = life;
        future.await
    }
}

/// A blocking closure, counted like a future.
pub fn counted_fn<R>(f: impl FnOnce() -> R) -> impl FnOnce() -> R {
    let life = Life::new(C::FutCreated, C::FutDropped);
    move || {
        let _life = life;
        f()
    }
}

pub fn mix(tag: u64) -> u64 {
    tag.rotate_left(17) ^ 0xA5A5_5A5A_DEAD_BEEF
}

/// A value that checks its own contents when dropped, and is counted.
pub struct Obj {
    pub tag: u64,
    pub check: u64,
    pub _life: Life,
}

impl Obj {
    pub fn new(tag: u64) -> Obj {
        Obj {
            tag,
            check: mix(tag),
            _life: Life::new(C::ObjCreated, C::ObjDropped),
        }
    }

    pub fn ok(&self) -> bool {
        self.check == mix(self.tag)
    }
}

impl Drop for Obj {
    fn drop(&mut self) {
        if !self.ok() {
            fail(format!(
                "an object's contents changed: tag {:#x}, check {:#x}",
                self.tag, self.check
            ));
        }
    }
}

pub type Blob = [u64; 64];

/// What a top-level task hands back through its join handle (outputs that outlive the task).
pub enum Out {
    Unit,
    Obj(MkAsyncBox<Obj>),
    Blob(MkAsyncBox<Blob>),
    Vec(MkAsyncVec<u64>, u64),
    Arena(MkArena),
}

pub fn blob_ok(blob: &Blob) -> bool {
    blob.iter().all(|&x| x == blob[0])
}

pub fn vec_ok(v: &[u64], tag: u64) -> bool {
    v.iter()
        .enumerate()
        .all(|(i, &x)| x == tag.wrapping_add(i as u64))
}

pub fn check_out(out: Out, what: &str) {
    let ok = match &out {
        Out::Unit => true,
        // Its objects check themselves when dropped; its budget never goes above its limit.
        Out::Arena(a) => a.budget().used() <= a.budget().limit(),
        Out::Obj(b) => b.ok(),
        Out::Blob(b) => blob_ok(b),
        Out::Vec(v, tag) => vec_ok(v, *tag),
    };
    if !ok {
        fail(format!("{what}: the task's output changed after it ended"));
    }
}

/// Accounts for a join result: outputs are checked, panics must be injected ones.
pub fn note_join(res: Result<Out, JoinError>, what: &str) {
    match res {
        Ok(out) => {
            bump(C::JoinOk);
            check_out(out, what);
        }
        Err(e) if e.is_cancelled() => bump(C::JoinCancelled),
        Err(e) => note_panic(e, what),
    }
}

pub fn note_panic(e: JoinError, what: &str) {
    match e.try_into_panic() {
        Ok(payload) => {
            let msg = panic_message(&*payload);
            if msg.starts_with(INJECTED) {
                bump(C::JoinPanic);
            } else {
                fail(format!("{what}: a task panicked unexpectedly: {msg}"));
            }
        }
        Err(e) => fail(format!(
            "{what}: a JoinError neither cancelled nor panic: {e:?}"
        )),
    }
}

pub fn inject_panic(site: &str) -> ! {
    bump(C::FaultPanic);
    panic!("{INJECTED} ({site})")
}

pub fn maybe_panic(rng: &mut Rng, one_in: usize, site: &str) {
    if rng.one_in(one_in) {
        inject_panic(site);
    }
}

/// Keeps injected panics quiet; every other panic goes to the default hook.
pub fn install_panic_filter() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        let default = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            if !panic_message(info.payload()).starts_with(INJECTED) {
                default(info);
            }
        }));
    });
}
