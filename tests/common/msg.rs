//! A message type for the channel tests: counts as a chosen number of bytes and counts its
//! drops.

use super::{Counter, DropCount};
use memkit_async::MkByteSize;

/// A message of `bytes` bytes (as the channel counts it) that counts its drops.
pub struct Msg {
    pub id: usize,
    pub bytes: usize,
    _drop: DropCount,
}

impl MkByteSize for Msg {
    fn byte_size(&self) -> usize {
        self.bytes
    }
}

pub fn msg(id: usize, bytes: usize, drops: &Counter) -> Msg {
    Msg {
        id,
        bytes,
        _drop: DropCount(drops.clone()),
    }
}

/// The ids of `msgs`.
pub fn ids(msgs: &[Msg]) -> Vec<usize> {
    msgs.iter().map(|m| m.id).collect()
}
