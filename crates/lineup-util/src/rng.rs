//! SplitMix64: a small deterministic generator for simulations, workloads, fault filters and
//! jitter. One seed gives one sequence on every platform. Not for anything security related.

use std::hash::{BuildHasher, Hasher};

/// The golden-ratio increment of SplitMix64 (also its stream separator in [`SplitMix64::fork`]).
const GOLDEN_GAMMA: u64 = 0x9E37_79B9_7F4A_7C15;

/// Mixed into a seed by [`SplitMix64::from_seed`] so seeds 0, 1, 2, ... start far apart.
const SEED_SPREAD: u64 = 0x6A09_E667_F3BC_C908;

#[derive(Debug, Clone)]
pub struct SplitMix64(u64);

impl SplitMix64 {
    /// Starts at `state` as it is: the first draw is SplitMix64's first output for it.
    pub fn new(state: u64) -> Self {
        Self(state)
    }

    /// Starts from `seed` mixed once, so neighbouring seeds give unrelated sequences.
    pub fn from_seed(seed: u64) -> Self {
        let mut d = Self(seed ^ SEED_SPREAD);
        d.next_u64();
        d
    }

    /// A state that differs between processes and calls (jitter in production).
    pub fn from_entropy() -> Self {
        Self(entropy_seed())
    }

    /// An independent stream for one concern (network, workload, faults), so adding draws in
    /// one concern does not shift every other concern's numbers.
    pub fn fork(&mut self, stream: u64) -> Self {
        Self::from_seed(self.next_u64() ^ stream.wrapping_mul(GOLDEN_GAMMA))
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(GOLDEN_GAMMA);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in [0, 1).
    pub fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }

    /// Uniform in [low, high] (inclusive); `low`, without a draw, when the range is empty.
    pub fn range(&mut self, low: u64, high: u64) -> u64 {
        if high <= low {
            return low;
        }
        low + self.next_u64() % (high - low + 1)
    }

    /// Uniform in `0..bound`; 0 when `bound` is 0 (a draw is still made).
    pub fn below(&mut self, bound: u64) -> u64 {
        self.next_u64() % bound.max(1)
    }

    /// Uniform index in `0..len`; 0, without a draw, when `len` is 0.
    pub fn pick(&mut self, len: usize) -> usize {
        if len == 0 {
            return 0;
        }
        (self.next_u64() % len as u64) as usize
    }

    /// True with probability `p`; no draw when `p` is not positive.
    pub fn chance(&mut self, p: f64) -> bool {
        p > 0.0 && self.unit() < p
    }

    /// True with probability `percent` / 100.
    pub fn chance_percent(&mut self, percent: u8) -> bool {
        self.below(100) < u64::from(percent)
    }

    /// Exponential with the given mean (Poisson inter-arrival and service times).
    pub fn exponential(&mut self, mean: f64) -> f64 {
        -mean * (1.0 - self.unit()).ln()
    }

    /// Exponential with the given mean in whole milliseconds, at least 1.
    pub fn exponential_ms(&mut self, mean_ms: f64) -> u64 {
        (self.exponential(mean_ms).round() as u64).max(1)
    }
}

/// A seed that differs between processes and calls: the standard library's per-instance
/// random hasher keys, with the process id.
pub fn entropy_seed() -> u64 {
    let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
    hasher.write_u64(u64::from(std::process::id()));
    hasher.finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_seed_same_numbers_and_exponential_mean_is_close() {
        let (mut a, mut b) = (SplitMix64::from_seed(7), SplitMix64::from_seed(7));
        assert!((0..100).all(|_| a.next_u64() == b.next_u64()));
        let mut d = SplitMix64::from_seed(1);
        let mean = (0..200_000).map(|_| d.exponential(10.0)).sum::<f64>() / 200_000.0;
        assert!((mean - 10.0).abs() < 0.1, "{mean}");
    }

    #[test]
    fn raw_state_gives_the_reference_splitmix64_outputs() {
        // First outputs of SplitMix64 from state 0 (the reference implementation's values).
        let mut d = SplitMix64::new(0);
        assert_eq!(d.next_u64(), 0xE220_A839_7B1D_CDAF);
        assert_eq!(d.next_u64(), 0x6E78_9E6A_A1B9_65F4);
    }

    #[test]
    fn seeded_sequence_is_pinned() {
        // Pins the simulator's seed mixing: a change here changes every simulator trace.
        let mut d = SplitMix64::from_seed(42);
        let firsts: Vec<u64> = (0..3).map(|_| d.next_u64()).collect();
        assert_eq!(firsts, PINNED_FROM_SEED_42);
    }

    const PINNED_FROM_SEED_42: [u64; 3] = [0x5F08_08DF_CFFD_370F, 0x9C68_574D_8D6E_68C4, 0x98D9_D658_8BFF_3D31];
}
