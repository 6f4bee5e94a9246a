//! Allocation under a policy, with outcome accounting.

use crate::counted::{Blob, Obj};
use crate::counters::{bump, C};
use crate::env::Env;
use crate::state::fail;
use memkit_async::{MkAllocError, MkAsyncBox, MkAsyncVec, MkBackpressure, MkBudget};

/// The allocation policy of a task, and how many more `Wait` requests it may await (the rest
/// use the `try_` forms, which never wait).
pub struct Al {
    pub policy: MkBackpressure,
    pub waits_left: u32,
}

impl Al {
    pub fn new(policy: MkBackpressure, waits: u32) -> Al {
        Al {
            policy,
            waits_left: waits,
        }
    }

    /// For the current task: its budget's policy, or the root's for a task without one.
    pub fn current(env: &Env, waits: u32) -> Al {
        let policy = MkBudget::current().map_or_else(|| env.root.policy(), |b| b.policy());
        Al::new(policy, waits)
    }

    pub fn many(&self) -> bool {
        self.policy != MkBackpressure::Wait || self.waits_left == u32::MAX
    }

    pub fn may_await(&mut self) -> bool {
        if self.policy != MkBackpressure::Wait || self.waits_left == u32::MAX {
            return true;
        }
        if self.waits_left == 0 {
            return false;
        }
        self.waits_left -= 1;
        true
    }

    pub fn note<T>(&self, awaited: bool, res: Result<T, MkAllocError>) -> Option<T> {
        let policy = self.policy;
        match res {
            Ok(v) => {
                bump(match policy {
                    MkBackpressure::Wait => C::AllocWait,
                    MkBackpressure::Fail => C::AllocFail,
                    MkBackpressure::Timeout(_) => C::AllocTimeout,
                    MkBackpressure::Evict => C::AllocEvict,
                    other => unreachable!("the soak picks only the four policies, not {other:?}"),
                });
                Some(v)
            }
            Err(MkAllocError::CapacityReached { .. }) if !awaited => {
                bump(C::ErrTry);
                None
            }
            Err(MkAllocError::CapacityReached { .. }) if policy == MkBackpressure::Fail => {
                bump(C::ErrFail);
                None
            }
            Err(MkAllocError::CapacityReached { .. }) if policy == MkBackpressure::Evict => {
                bump(C::ErrEvict);
                None
            }
            Err(MkAllocError::TimedOut { .. })
                if awaited && matches!(policy, MkBackpressure::Timeout(_)) =>
            {
                bump(C::ErrTimeout);
                None
            }
            Err(e) => {
                fail(format!(
                    "unexpected allocation error under {policy:?} (awaited: {awaited}): {e}"
                ));
                None
            }
        }
    }

    pub async fn obj(&mut self, tag: u64) -> Option<MkAsyncBox<Obj>> {
        let awaited = self.may_await();
        let res = if awaited {
            MkAsyncBox::new(Obj::new(tag)).await
        } else {
            MkAsyncBox::try_new(Obj::new(tag))
        };
        self.note(awaited, res)
    }

    pub async fn blob(&mut self, tag: u64) -> Option<MkAsyncBox<Blob>> {
        let awaited = self.may_await();
        let res = if awaited {
            MkAsyncBox::new([tag; 64]).await
        } else {
            MkAsyncBox::try_new([tag; 64])
        };
        self.note(awaited, res)
    }

    /// `n` values `tag, tag + 1, ...`; grows (awaiting) only when many waits are allowed,
    /// otherwise takes its whole capacity in one request.
    pub async fn vec(&mut self, n: usize, tag: u64) -> Option<(MkAsyncVec<u64>, u64)> {
        let many = self.many();
        let awaited = self.may_await();
        let res = match (awaited, many) {
            (true, true) => MkAsyncVec::with_capacity(n.min(8)).await,
            (true, false) => MkAsyncVec::with_capacity(n).await,
            (false, _) => MkAsyncVec::try_with_capacity(n),
        };
        let mut v = self.note(awaited, res)?;
        for i in 0..n {
            let x = tag.wrapping_add(i as u64);
            if awaited && many {
                if let Err(e) = v.push(x).await {
                    self.note::<()>(true, Err(e));
                    break;
                }
            } else if let Err((_, e)) = v.try_push(x) {
                self.note::<()>(false, Err(e));
                break;
            }
        }
        Some((v, tag))
    }
}
