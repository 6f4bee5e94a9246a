//! I/O: the reactor on `mio` that the networking types register with, and the readiness
//! types of their `ready` methods: [`Interest`] (what to wait for) and [`Ready`] (what was
//! seen).
//!
//! The runtime's `mio::Poll` is turned by its workers (see `crate::driver`); this module holds
//! the shared half: the table of registered sources, their readiness and waiting wakers, and
//! `PollEvented`, the wrapper every socket type is built on.

mod interest;
mod reactor;
mod readiness;
mod ready;
mod registration;

pub use interest::Interest;
pub use ready::Ready;

#[cfg(all(feature = "signal", unix))]
pub(crate) use reactor::shutdown_error;
pub(crate) use reactor::Reactor;
pub(crate) use readiness::Direction;
pub(crate) use registration::PollEvented;
