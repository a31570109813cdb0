//! The simulator's only source of randomness: SplitMix64 seeded from the run's seed. Every
//! draw happens on the single simulation thread in event order, so a seed fixes the run.

pub use lineup_util::SplitMix64;

/// The simulator's dice: [`SplitMix64`], started with [`SplitMix64::from_seed`] (never
/// `new`) so a run's seed fixes every stream.
pub type Dice = SplitMix64;

/// 64-bit FNV-1a: the trace hash. Stable across platforms and Rust versions (unlike
/// `DefaultHasher`), so a hash printed by CI can be compared with a local run.
#[derive(Debug, Clone, Copy)]
pub struct TraceHash(pub u64);

impl Default for TraceHash {
    fn default() -> Self {
        TraceHash(0xcbf2_9ce4_8422_2325)
    }
}

impl TraceHash {
    pub fn bytes(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.0 ^= u64::from(*b);
            self.0 = self.0.wrapping_mul(0x0100_0000_01b3);
        }
    }

    pub fn u64(&mut self, v: u64) {
        self.bytes(&v.to_le_bytes());
    }

    pub fn str(&mut self, s: &str) {
        self.u64(s.len() as u64);
        self.bytes(s.as_bytes());
    }
}
