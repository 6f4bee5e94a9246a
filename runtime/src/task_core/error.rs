//! Why a task did not produce its output.
//!
//! Unsafe code: `Payload` is `Sync` because shared access only reads `Sync` types out of it.

use super::Id;
use std::any::Any;
use std::fmt;
use std::io;

/// The error a [`JoinHandle`](crate::JoinHandle) resolves to when its task did not complete
/// normally: it panicked, or it was cancelled (by [`abort`](crate::JoinHandle::abort), by
/// runtime shutdown, or by the scheduler because the task's memory went over a budget whose
/// policy gives up: see [`is_memory_exceeded`](Self::is_memory_exceeded)).
///
/// ```
/// let rt = memkit_async_runtime::Runtime::new().unwrap();
/// let err = rt.block_on(rt.spawn(async { panic!("boom") })).unwrap_err();
/// assert!(err.is_panic());
/// assert_eq!(*err.into_panic().downcast::<&str>().unwrap(), "boom");
/// ```
pub struct JoinError {
    id: Id,
    repr: Repr,
}

enum Repr {
    Cancelled,
    Panic(Payload),
    /// Boxed: a `JoinError` lives in every task's output slot, so it stays two words.
    Memory(Box<MemoryExceeded>),
}

/// Why the scheduler cancelled a task for its memory.
struct MemoryExceeded {
    name: Option<std::sync::Arc<str>>,
    used: usize,
    limit: usize,
    /// The budget's policy, as written in the message.
    policy: &'static str,
}

/// A panic payload that makes `JoinError` `Sync`, so it can travel in
/// `Box<dyn Error + Send + Sync>`: shared access only ever reads `Sync` types out of it.
struct Payload(Box<dyn Any + Send + 'static>);

// SAFETY: through `&Payload` the only access is `downcast_ref` to a `Sync` type (`&str` or
// `String`); the payload itself is reached only by value.
unsafe impl Sync for Payload {}

impl Payload {
    fn downcast_ref<T: Any + Sync>(&self) -> Option<&T> {
        self.0.downcast_ref()
    }
}

impl JoinError {
    pub(crate) fn cancelled(id: Id) -> JoinError {
        JoinError {
            id,
            repr: Repr::Cancelled,
        }
    }

    pub(crate) fn panic(id: Id, payload: Box<dyn Any + Send + 'static>) -> JoinError {
        JoinError {
            id,
            repr: Repr::Panic(Payload(payload)),
        }
    }

    pub(crate) fn memory_exceeded(
        id: Id,
        name: Option<std::sync::Arc<str>>,
        used: usize,
        limit: usize,
        policy: &'static str,
    ) -> JoinError {
        JoinError {
            id,
            repr: Repr::Memory(Box::new(MemoryExceeded {
                name,
                used,
                limit,
                policy,
            })),
        }
    }

    /// `true` if the task was cancelled before it completed: aborted, dropped at shutdown, or
    /// cancelled for its memory (then [`is_memory_exceeded`](Self::is_memory_exceeded) is
    /// `true` too).
    pub fn is_cancelled(&self) -> bool {
        matches!(self.repr, Repr::Cancelled | Repr::Memory(_))
    }

    /// `true` if the scheduler cancelled the task because its memory went over a budget whose
    /// policy gives up (`Fail`, `Timeout` once its time ran out, `Evict` with nothing left to
    /// evict); the message names the task, the bytes in use and the limit.
    pub fn is_memory_exceeded(&self) -> bool {
        matches!(self.repr, Repr::Memory(_))
    }

    /// `true` if the task panicked.
    pub fn is_panic(&self) -> bool {
        matches!(self.repr, Repr::Panic(_))
    }

    /// The panic payload.
    ///
    /// # Panics
    ///
    /// If the task was cancelled rather than panicked; use [`try_into_panic`](Self::try_into_panic)
    /// to handle both.
    #[track_caller]
    pub fn into_panic(self) -> Box<dyn Any + Send + 'static> {
        match self.try_into_panic() {
            Ok(payload) => payload,
            Err(err) => {
                panic!("`JoinError::into_panic` called on a task that did not panic: {err}")
            }
        }
    }

    /// The panic payload, or `self` back if the task was cancelled.
    pub fn try_into_panic(self) -> Result<Box<dyn Any + Send + 'static>, JoinError> {
        match self.repr {
            Repr::Panic(p) => Ok(p.0),
            Repr::Cancelled | Repr::Memory(_) => Err(self),
        }
    }

    /// The id of the task that failed.
    pub fn id(&self) -> Id {
        self.id
    }

    fn panic_message(&self) -> Option<String> {
        let Repr::Panic(p) = &self.repr else {
            return None;
        };
        p.downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| p.downcast_ref::<String>().cloned())
    }
}

impl fmt::Display for JoinError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (&self.repr, self.panic_message()) {
            (Repr::Cancelled, _) => write!(f, "task {} was cancelled", self.id),
            (Repr::Memory(m), _) => {
                write!(f, "task {}", self.id)?;
                if let Some(name) = &m.name {
                    write!(f, " ({name:?})")?;
                }
                write!(
                    f,
                    " was cancelled: memory limit exceeded, {} bytes in use of a {} byte budget \
                     with the {} policy; raise the task's budget, make it allocate less, or use \
                     the Wait policy to park it until memory is released",
                    m.used, m.limit, m.policy
                )
            }
            (Repr::Panic(_), Some(msg)) => {
                write!(f, "task {} panicked with message {msg:?}", self.id)
            }
            (Repr::Panic(_), None) => write!(f, "task {} panicked", self.id),
        }
    }
}

impl fmt::Debug for JoinError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (&self.repr, self.panic_message()) {
            (Repr::Cancelled, _) => write!(f, "JoinError::Cancelled({:?})", self.id),
            (Repr::Memory(m), _) => write!(
                f,
                "JoinError::MemoryExceeded({:?}, name: {:?}, used: {}, limit: {})",
                self.id, m.name, m.used, m.limit
            ),
            (Repr::Panic(_), Some(msg)) => {
                write!(f, "JoinError::Panic({:?}, {msg:?}, ...)", self.id)
            }
            (Repr::Panic(_), None) => write!(f, "JoinError::Panic({:?}, ...)", self.id),
        }
    }
}

impl std::error::Error for JoinError {}

impl From<JoinError> for io::Error {
    fn from(err: JoinError) -> io::Error {
        io::Error::other(err.to_string())
    }
}
