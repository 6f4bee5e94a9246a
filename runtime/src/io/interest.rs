//! `Interest`: the readiness an operation waits for.

use std::fmt;
use std::ops::{BitOr, BitOrAssign};

/// What a [`ready`](crate::net::TcpStream::ready) call waits for: reading, writing, or
/// either (`Interest::READABLE | Interest::WRITABLE`).
///
/// The flags are constants; combine them with `|`. The type is opaque so that more kinds of
/// interest can be added later without breaking code that uses these.
///
/// ```
/// use memkit_async_runtime::io::Interest;
/// let both = Interest::READABLE | Interest::WRITABLE;
/// assert!(both.is_readable() && both.is_writable());
/// assert_eq!(both.remove(Interest::WRITABLE), Some(Interest::READABLE));
/// assert_eq!(Interest::READABLE.remove(Interest::READABLE), None);
/// ```
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Interest(u8);

const READ: u8 = 1;
const WRITE: u8 = 1 << 1;

impl Interest {
    /// Waits for the source to become readable (data, end of stream or an error).
    pub const READABLE: Interest = Interest(READ);
    /// Waits for the source to become writable (room in the send buffer, or an error).
    pub const WRITABLE: Interest = Interest(WRITE);

    /// Whether this interest includes reading.
    pub const fn is_readable(self) -> bool {
        self.0 & READ != 0
    }

    /// Whether this interest includes writing.
    pub const fn is_writable(self) -> bool {
        self.0 & WRITE != 0
    }

    /// Both interests together (the same as `self | other`, usable in `const`).
    #[must_use]
    pub const fn add(self, other: Interest) -> Interest {
        Interest(self.0 | other.0)
    }

    /// This interest without `other`'s flags; `None` if nothing would be left (an interest
    /// is never empty).
    #[must_use]
    pub const fn remove(self, other: Interest) -> Option<Interest> {
        let left = self.0 & !other.0;
        if left == 0 {
            None
        } else {
            Some(Interest(left))
        }
    }
}

impl BitOr for Interest {
    type Output = Interest;

    fn bitor(self, other: Interest) -> Interest {
        self.add(other)
    }
}

impl BitOrAssign for Interest {
    fn bitor_assign(&mut self, other: Interest) {
        *self = self.add(other);
    }
}

impl fmt::Debug for Interest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (self.is_readable(), self.is_writable()) {
            (true, true) => f.write_str("READABLE | WRITABLE"),
            (true, false) => f.write_str("READABLE"),
            (false, true) => f.write_str("WRITABLE"),
            (false, false) => unreachable!("an interest is never empty"),
        }
    }
}
