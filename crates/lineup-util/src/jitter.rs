//! Retry and reconnect jitter: a delay in `[base/2, base]`, so nodes or drainers that failed
//! together do not retry in step. Seeded callers (the simulator) get the same delays from the
//! same seed; the others draw from the clock.

use std::time::{SystemTime, UNIX_EPOCH};

/// One xorshift64 step on `state` (which must not be 0): plenty for jitter, and keeps
/// `rand` out of the tree.
pub fn xorshift64(state: &mut u64) -> u64 {
    debug_assert!(*state != 0, "xorshift64 state 0 stays 0");
    *state ^= *state << 13;
    *state ^= *state >> 7;
    *state ^= *state << 17;
    *state
}

/// A delay in `[base/2, base]` ms chosen by `random`.
pub fn jitter_ms(base_ms: u64, random: u64) -> u64 {
    let half = base_ms / 2;
    half + random % (base_ms - half + 1)
}

/// A delay in `[base/2, base]` ms drawn from the xorshift generator `state`.
pub fn seeded_jitter_ms(state: &mut u64, base_ms: u64) -> u64 {
    jitter_ms(base_ms, xorshift64(state))
}

/// A delay in `[base/2, base]` ms drawn from the clock's sub-second nanoseconds.
pub fn clock_jitter_ms(base_ms: u64) -> u64 {
    let nanos = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| u64::from(d.subsec_nanos()));
    let mut state = nanos ^ 0x9E37_79B9_7F4A_7C15;
    seeded_jitter_ms(&mut state, base_ms)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jitter_stays_within_half_to_full_base() {
        let mut state = 1;
        for base in [0, 1, 2, 7, 100, 30_000] {
            for _ in 0..200 {
                let seeded = seeded_jitter_ms(&mut state, base);
                let clocked = clock_jitter_ms(base);
                assert!((base / 2..=base).contains(&seeded), "{seeded} for {base}");
                assert!((base / 2..=base).contains(&clocked), "{clocked} for {base}");
            }
        }
    }
}
