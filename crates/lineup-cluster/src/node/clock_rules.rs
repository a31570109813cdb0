//! The rules for the shared clock (the `Tick`s a leader proposes), as pure functions.
//!
//! Every timer and history timestamp runs on the shared clock, so one node's wrong wall
//! clock must not move it: a leader slews, NTP-style. Its Tick follows its own monotonic
//! clock from the shared clock at its previous tick, and its wall clock only within
//! [`CLOCK_SLEW_PERMILLE`] of the time elapsed, so the shared clock runs at 95–105 % of real
//! rate whatever that wall clock says. A larger step (the whole cluster was down, so the
//! shared clock is far behind every node) needs a majority of voters whose wall clocks agree
//! with the leader's within [`CLOCK_AGREEMENT_MS`]; a majority that disagrees means the
//! leader's own clock is wrong, and its Ticks then follow its monotonic clock alone.

/// How far a leader's wall clock may pull the shared clock off its monotonic course, in
/// thousandths of the elapsed time.
pub const CLOCK_SLEW_PERMILLE: u64 = 50;
/// Wall clocks within this of each other agree; a leader whose wall clock is further than
/// this from the shared clock raises the clock alarm.
pub const CLOCK_AGREEMENT_MS: u64 = 2_000;

/// The shared clock at the leader's previous committed Tick (or when it took office), and the
/// leader's monotonic time since.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClockAnchor {
    pub shared_ms: u64,
    pub elapsed_ms: u64,
}

impl ClockAnchor {
    /// Where the shared clock would be at real rate.
    pub fn expected_ms(&self) -> u64 {
        self.shared_ms.saturating_add(self.elapsed_ms)
    }

    /// The most a wall clock may pull the Tick off [`Self::expected_ms`].
    pub fn slew_ms(&self) -> u64 {
        self.elapsed_ms.saturating_mul(CLOCK_SLEW_PERMILLE) / 1_000
    }
}

/// What the voters' wall clocks say about the leader's.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PeerClocks {
    /// Not asked (the wall clock is within the slew) or no answer.
    Unknown,
    /// A majority of voters (the leader included) agree with the leader's wall clock.
    Agree,
    /// A majority of voters answered, and too few of them agree: the leader's clock is wrong.
    Disagree,
}

/// The Tick a leader proposes: its wall clock when a majority agrees with it, its monotonic
/// course when a majority disagrees, otherwise its wall clock clamped to the slew. Never
/// behind `shared_now_ms` (the core keeps the larger anyway).
pub fn tick_ms(wall_ms: u64, shared_now_ms: u64, anchor: ClockAnchor, peers: PeerClocks) -> u64 {
    let expected = anchor.expected_ms();
    let chosen = match peers {
        PeerClocks::Agree => wall_ms,
        PeerClocks::Disagree => expected,
        PeerClocks::Unknown => {
            let slew = anchor.slew_ms();
            wall_ms.clamp(expected.saturating_sub(slew), expected.saturating_add(slew))
        }
    };
    chosen.max(shared_now_ms)
}

/// Whether the wall clock is outside the slew, so only the voters can say which is right.
pub fn needs_peer_clocks(wall_ms: u64, anchor: ClockAnchor) -> bool {
    wall_ms.abs_diff(anchor.expected_ms()) > anchor.slew_ms()
}

/// Whether the leader's wall clock disagrees with the shared clock enough to alarm.
pub fn clock_alarm(wall_ms: u64, anchor: ClockAnchor) -> bool {
    wall_ms.abs_diff(anchor.expected_ms()) > CLOCK_AGREEMENT_MS
}

/// The verdict from the peers' answers: one `(leader's wall clock when it answered, the
/// peer's wall clock)` pair per voter that answered, out of `voters` (the leader included).
/// Unanswered voters count for neither side; a majority that answered without agreeing is a
/// disagreement (the leader then keeps real rate, which is safe whoever is wrong).
pub fn peer_verdict(answers: &[(u64, u64)], voters: usize) -> PeerClocks {
    let agreeing = 1 + answers.iter().filter(|(ours, theirs)| ours.abs_diff(*theirs) <= CLOCK_AGREEMENT_MS).count();
    let answered = 1 + answers.len();
    if agreeing * 2 > voters {
        PeerClocks::Agree
    } else if answered * 2 > voters {
        PeerClocks::Disagree
    } else {
        PeerClocks::Unknown
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const HOUR_MS: u64 = 3_600_000;
    const NOW: u64 = 1_800_000_000_000;

    fn anchor(elapsed_ms: u64) -> ClockAnchor {
        ClockAnchor { shared_ms: NOW, elapsed_ms }
    }

    #[test]
    fn a_right_clock_is_followed() {
        assert_eq!(tick_ms(NOW + 1_010, NOW, anchor(1_000), PeerClocks::Unknown), NOW + 1_010);
        assert!(!needs_peer_clocks(NOW + 1_010, anchor(1_000)));
        assert!(!clock_alarm(NOW + 1_010, anchor(1_000)));
    }

    #[test]
    fn a_clock_hours_ahead_moves_the_shared_clock_at_most_the_slew() {
        let wall = NOW + 3 * HOUR_MS;
        assert_eq!(tick_ms(wall, NOW, anchor(1_000), PeerClocks::Unknown), NOW + 1_050);
        assert_eq!(tick_ms(wall, NOW, anchor(1_000), PeerClocks::Disagree), NOW + 1_000);
        assert!(needs_peer_clocks(wall, anchor(1_000)));
        assert!(clock_alarm(wall, anchor(1_000)));
    }

    #[test]
    fn a_clock_hours_behind_does_not_freeze_the_shared_clock() {
        let wall = NOW - 3 * HOUR_MS;
        assert_eq!(tick_ms(wall, NOW, anchor(1_000), PeerClocks::Unknown), NOW + 950);
        assert_eq!(tick_ms(wall, NOW, anchor(1_000), PeerClocks::Disagree), NOW + 1_000);
        assert!(clock_alarm(wall, anchor(1_000)));
    }

    #[test]
    fn clocks_a_majority_agrees_on_may_step() {
        let wall = NOW + HOUR_MS;
        assert_eq!(tick_ms(wall, NOW, anchor(1_000), PeerClocks::Agree), wall);
        // Never behind the shared clock, even when everyone agrees on an earlier time.
        assert_eq!(tick_ms(NOW - HOUR_MS, NOW + 5, anchor(1_000), PeerClocks::Agree), NOW + 5);
    }

    #[test]
    fn the_verdict_needs_a_majority() {
        let agree = (NOW, NOW + 1_500);
        let differ = (NOW, NOW + 3 * HOUR_MS);
        assert_eq!(peer_verdict(&[agree], 3), PeerClocks::Agree);
        assert_eq!(peer_verdict(&[differ, differ], 3), PeerClocks::Disagree);
        assert_eq!(peer_verdict(&[differ], 3), PeerClocks::Disagree);
        assert_eq!(peer_verdict(&[], 3), PeerClocks::Unknown);
        assert_eq!(peer_verdict(&[agree], 5), PeerClocks::Unknown);
        assert_eq!(peer_verdict(&[agree, agree], 5), PeerClocks::Agree);
        assert_eq!(peer_verdict(&[], 1), PeerClocks::Agree);
    }

    /// Whatever the wall clocks say, without a majority's agreement the shared clock moves
    /// at 95–105 % of the leader's monotonic rate and never back.
    #[test]
    fn without_agreement_the_rate_stays_within_the_slew() {
        let mut state = 0x9e37_79b9_7f4a_7c15_u64;
        let mut next = move || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        for _ in 0..10_000 {
            let shared = NOW + next() % HOUR_MS;
            let elapsed = next() % 10_000;
            let wall = (NOW - 5 * HOUR_MS) + next() % (10 * HOUR_MS);
            let peers = if next() % 2 == 0 { PeerClocks::Unknown } else { PeerClocks::Disagree };
            let tick = tick_ms(wall, shared, ClockAnchor { shared_ms: shared, elapsed_ms: elapsed }, peers);
            assert!(tick >= shared);
            assert!(tick >= shared + elapsed - elapsed * CLOCK_SLEW_PERMILLE / 1_000, "too slow");
            assert!(tick <= shared + elapsed + elapsed * CLOCK_SLEW_PERMILLE / 1_000, "too fast");
        }
    }
}
