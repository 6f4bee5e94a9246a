//! I/O: the reactor on `mio` that the networking types register with.
//!
//! The runtime's `mio::Poll` is turned by its workers (see `crate::driver`); this module holds
//! the shared half: the table of registered sources, their readiness and waiting wakers, and
//! [`PollEvented`], the wrapper every socket type is built on.

mod reactor;
mod readiness;
mod registration;

pub(crate) use reactor::Reactor;
pub(crate) use readiness::Direction;
pub(crate) use registration::PollEvented;
