//! A small PRNG, so that a seed replays the same sequence of operations.

use memkit_async::MkBackpressure;
use std::time::Duration;

/// xorshift64*, seeded through splitmix64.
#[derive(Clone, Debug)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        let mut z = seed.wrapping_add(0x9E37_79B9_7F4A_7C15);
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^= z >> 31;
        Rng(if z == 0 { 1 } else { z })
    }

    pub fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// Uniform in `0..n` (`n > 0`).
    pub fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }

    /// Uniform in `lo..=hi`.
    pub fn range(&mut self, lo: usize, hi: usize) -> usize {
        lo + self.below(hi - lo + 1)
    }

    pub fn one_in(&mut self, n: usize) -> bool {
        self.below(n) == 0
    }

    pub fn micros(&mut self, max: usize) -> Duration {
        Duration::from_micros(self.range(0, max) as u64)
    }

    /// An independent generator for a task.
    pub fn fork(&mut self) -> Rng {
        Rng::new(self.next())
    }

    pub fn policy(&mut self) -> MkBackpressure {
        match self.below(4) {
            0 => MkBackpressure::Wait,
            1 => MkBackpressure::Fail,
            2 => MkBackpressure::Timeout(Duration::from_millis(self.range(1, 5) as u64)),
            _ => MkBackpressure::Evict,
        }
    }
}
