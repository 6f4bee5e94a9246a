//! `MkByteSize`: how many bytes a value holds, for containers bounded by bytes.

use crate::memory::{MkArena, MkAsyncBox, MkAsyncVec};
use std::mem::size_of;

/// The bytes a value holds, as counted by byte-bounded containers
/// (byte-bounded channels and caches).
///
/// For handles into arena memory (`MkAsyncBox`, `MkAsyncVec`, `MkArena`) and heap containers it
/// is the size of what they point to (moving them moves a pointer, but the bytes they hold are
/// what the bound is about); for plain values it is their size. The count is shallow: the
/// elements of a `Vec<String>` count as `size_of::<String>()` each. Implement it for your own
/// message types to count what they own.
///
/// ```
/// use memkit_async_runtime::memory::MkByteSize;
///
/// assert_eq!(vec![0u32; 10].byte_size(), 40);
/// assert_eq!(String::from("hello").byte_size(), 5);
/// assert_eq!(7u64.byte_size(), 8);
/// ```
pub trait MkByteSize {
    /// Bytes this value holds.
    fn byte_size(&self) -> usize;
}

impl<T> MkByteSize for MkAsyncBox<T> {
    fn byte_size(&self) -> usize {
        size_of::<T>()
    }
}

impl<T> MkByteSize for MkAsyncVec<T> {
    fn byte_size(&self) -> usize {
        self.capacity().saturating_mul(size_of::<T>())
    }
}

impl MkByteSize for MkArena {
    fn byte_size(&self) -> usize {
        self.allocated_bytes()
    }
}

impl<T> MkByteSize for Vec<T> {
    fn byte_size(&self) -> usize {
        self.capacity().saturating_mul(size_of::<T>())
    }
}

impl<T> MkByteSize for Box<T> {
    fn byte_size(&self) -> usize {
        size_of::<T>()
    }
}

impl<T> MkByteSize for Box<[T]> {
    fn byte_size(&self) -> usize {
        std::mem::size_of_val::<[T]>(self)
    }
}

impl MkByteSize for String {
    fn byte_size(&self) -> usize {
        self.capacity()
    }
}

impl<T: Copy, const N: usize> MkByteSize for [T; N] {
    fn byte_size(&self) -> usize {
        size_of::<[T; N]>()
    }
}

macro_rules! plain_size {
    ($($t:ty),*) => {$(
        impl MkByteSize for $t {
            fn byte_size(&self) -> usize {
                size_of::<$t>()
            }
        }
    )*};
}

plain_size!(
    (),
    bool,
    char,
    u8,
    u16,
    u32,
    u64,
    u128,
    usize,
    i8,
    i16,
    i32,
    i64,
    i128,
    isize,
    f32,
    f64
);
