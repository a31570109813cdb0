//! Nearest-rank percentiles of benchmark samples.

/// The nearest-rank value at `fraction` (0.0 to 1.0) of `sorted`, which must be in
/// ascending order; `T::default()` when there are no samples.
pub fn percentile<T: Copy + Default>(sorted: &[T], fraction: f64) -> T {
    debug_assert!((0.0..=1.0).contains(&fraction), "fraction {fraction} outside 0..=1");
    if sorted.is_empty() {
        return T::default();
    }
    let rank = ((sorted.len() - 1) as f64 * fraction).round() as usize;
    sorted[rank.min(sorted.len() - 1)]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_pick_nearest_ranks() {
        let samples: Vec<f64> = (1..=100).map(f64::from).collect();
        assert_eq!(percentile(&samples, 0.50), 51.0);
        assert_eq!(percentile(&samples, 0.99), 99.0);
        assert_eq!(percentile(&samples, 1.0), 100.0);
        assert_eq!(percentile::<f64>(&[], 0.50), 0.0);
        assert_eq!(percentile(&[3u64, 5, 9], 0.0), 3);
    }
}
