//! `Ready`: the readiness a source reported.

use super::readiness::{ERROR, READABLE, READ_CLOSED, WRITABLE, WRITE_CLOSED};
use std::fmt;
use std::ops::{BitOr, BitOrAssign};

/// The readiness a [`ready`](crate::net::TcpStream::ready) call saw: which operations may now
/// make progress, and whether a direction is closed or the socket reported an error.
///
/// Readiness is a hint, as the operating system gives it: the `try_*` call that follows may
/// still find nothing to do (`WouldBlock`, after which the readiness is cleared and the next
/// `ready` waits again). The type is opaque so that more flags can be added later.
///
/// ```
/// use memkit_async_runtime::io::Ready;
/// let r = Ready::READABLE | Ready::READ_CLOSED;
/// assert!(r.is_readable() && r.is_read_closed());
/// assert!(!r.is_writable() && !r.is_empty());
/// assert!(Ready::EMPTY.is_empty());
/// ```
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Ready(u8);

/// Every flag `Ready` can carry, in the readiness word's bits.
const ALL_BITS: usize = READABLE | WRITABLE | READ_CLOSED | WRITE_CLOSED | ERROR;

impl Ready {
    /// No readiness.
    pub const EMPTY: Ready = Ready(0);
    /// Data (or a connection, for a listener) may be read.
    pub const READABLE: Ready = Ready(READABLE as u8);
    /// There may be room to write.
    pub const WRITABLE: Ready = Ready(WRITABLE as u8);
    /// The peer closed its writing side: reads return end of stream once the data is consumed.
    pub const READ_CLOSED: Ready = Ready(READ_CLOSED as u8);
    /// Writing is no longer possible (the connection closed or was shut down).
    pub const WRITE_CLOSED: Ready = Ready(WRITE_CLOSED as u8);
    /// The socket reported an error; the next operation returns it.
    pub const ERROR: Ready = Ready(ERROR as u8);
    /// Every flag.
    pub const ALL: Ready = Ready(ALL_BITS as u8);

    /// From the readiness word's flag bits.
    pub(crate) fn from_bits(bits: usize) -> Ready {
        Ready((bits & ALL_BITS) as u8)
    }

    const fn has(self, bits: usize) -> bool {
        self.0 as usize & bits != 0
    }

    /// Whether no flag is set.
    pub const fn is_empty(self) -> bool {
        self.0 == 0
    }

    /// Whether a read may make progress: data is there, or the read side is closed (a read
    /// returns end of stream).
    pub const fn is_readable(self) -> bool {
        self.has(READABLE | READ_CLOSED)
    }

    /// Whether a write may make progress: there is room, or the write side is closed (a
    /// write fails at once).
    pub const fn is_writable(self) -> bool {
        self.has(WRITABLE | WRITE_CLOSED)
    }

    /// Whether the read side is closed.
    pub const fn is_read_closed(self) -> bool {
        self.has(READ_CLOSED)
    }

    /// Whether the write side is closed.
    pub const fn is_write_closed(self) -> bool {
        self.has(WRITE_CLOSED)
    }

    /// Whether the socket reported an error.
    pub const fn is_error(self) -> bool {
        self.has(ERROR)
    }
}

impl BitOr for Ready {
    type Output = Ready;

    fn bitor(self, other: Ready) -> Ready {
        Ready(self.0 | other.0)
    }
}

impl BitOrAssign for Ready {
    fn bitor_assign(&mut self, other: Ready) {
        self.0 |= other.0;
    }
}

impl fmt::Debug for Ready {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let names = [
            (READABLE, "READABLE"),
            (WRITABLE, "WRITABLE"),
            (READ_CLOSED, "READ_CLOSED"),
            (WRITE_CLOSED, "WRITE_CLOSED"),
            (ERROR, "ERROR"),
        ];
        let mut set = names.iter().filter(|(bit, _)| self.0 as usize & bit != 0);
        match set.next() {
            None => f.write_str("EMPTY"),
            Some((_, first)) => {
                f.write_str(first)?;
                set.try_for_each(|(_, name)| write!(f, " | {name}"))
            }
        }
    }
}
