//! The simulator's only source of randomness: SplitMix64 seeded from the run's seed. Every
//! draw happens on the single simulation thread in event order, so a seed fixes the run.

#[derive(Debug, Clone)]
pub struct Dice(u64);

impl Dice {
    pub fn new(seed: u64) -> Dice {
        // Mix the seed once so seeds 0, 1, 2, ... start far apart.
        let mut d = Dice(seed ^ 0x6A09_E667_F3BC_C908);
        d.next();
        d
    }

    /// An independent stream for one concern (network, workload, faults), so adding draws in
    /// one concern does not shift every other concern's numbers.
    pub fn fork(&mut self, stream: u64) -> Dice {
        Dice::new(self.next() ^ stream.wrapping_mul(0x9E37_79B9_7F4A_7C15))
    }

    pub fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in [0, 1).
    pub fn unit(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }

    /// Uniform in [low, high] (inclusive); `low` when the range is empty.
    pub fn range(&mut self, low: u64, high: u64) -> u64 {
        if high <= low {
            return low;
        }
        low + self.next() % (high - low + 1)
    }

    pub fn chance(&mut self, p: f64) -> bool {
        p > 0.0 && self.unit() < p
    }

    /// Exponential with the given mean (Poisson inter-arrival and service times).
    pub fn exponential(&mut self, mean: f64) -> f64 {
        -mean * (1.0 - self.unit()).ln()
    }

    /// Exponential with the given mean in whole milliseconds, at least 1.
    pub fn exponential_ms(&mut self, mean_ms: f64) -> u64 {
        (self.exponential(mean_ms).round() as u64).max(1)
    }

    pub fn pick(&mut self, len: usize) -> usize {
        if len == 0 {
            return 0;
        }
        (self.next() % len as u64) as usize
    }
}

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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_seed_same_numbers_and_exponential_mean_is_close() {
        let (mut a, mut b) = (Dice::new(7), Dice::new(7));
        assert!((0..100).all(|_| a.next() == b.next()));
        let mut d = Dice::new(1);
        let mean = (0..200_000).map(|_| d.exponential(10.0)).sum::<f64>() / 200_000.0;
        assert!((mean - 10.0).abs() < 0.1, "{mean}");
    }
}
