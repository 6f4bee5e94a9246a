//! Byte sizes the memory tests count in.

pub const KIB: usize = 1024;
pub const MIB: usize = 1024 * KIB;
/// The first chunk of every arena: the smallest chunk class, and the alignment of every chunk.
pub const CHUNK: usize = 4 * KIB;
