//! The leader's side of the shared clock: which Tick to propose (see [`super::clock_rules`]),
//! asking the voters' wall clocks when its own is outside the slew, and the clock alarm.

use std::sync::Arc;
use std::time::Duration;

use tokio::task::JoinSet;
use tokio::time::Instant;

use super::clock_rules::{
    clock_alarm, needs_peer_clocks, peer_verdict, tick_ms, ClockAnchor, PeerClocks, CLOCK_AGREEMENT_MS,
};
use super::network::call_peer;
use super::ClusterNode;
use crate::rpc::{PeerRequest, PeerResponse};
use crate::transport::PeerTransport;

/// Bound on one voter's answer with its wall clock; the answer's age is part of the error,
/// so it stays well under [`super::clock_rules::CLOCK_AGREEMENT_MS`].
pub const PEER_CLOCK_TIMEOUT_MS: u64 = 500;
/// Least time between two rounds of asking the voters' wall clocks; a disagreement or
/// silence is kept until the next round.
pub const PEER_CLOCK_ASK_INTERVAL_MS: u64 = 5_000;
/// Least time between two warnings about the leader's clock in the log.
pub const CLOCK_ALARM_LOG_INTERVAL_MS: u64 = 60_000;

/// What the leader remembers between Ticks; reset when it stops leading.
#[derive(Debug, Default)]
pub(crate) struct LeaderClock {
    /// The shared clock at the last committed Tick (or taking office), and when.
    anchor: Option<(u64, Instant)>,
    asked_at: Option<Instant>,
    kept_verdict: Option<PeerClocks>,
    warned_at: Option<Instant>,
}

impl LeaderClock {
    /// Proposes the next Tick, waiting at most `write_timeout` for it to commit.
    pub(crate) async fn propose_tick<T: PeerTransport>(
        &mut self,
        node: &Arc<ClusterNode<T>>,
        peers: &[u64],
        write_timeout: Duration,
    ) {
        let now = Instant::now();
        let shared_now_ms = node.read_stale(|r| r.now_ms());
        let (shared_ms, at) = *self.anchor.get_or_insert((shared_now_ms, now));
        let anchor = ClockAnchor { shared_ms, elapsed_ms: now.duration_since(at).as_millis() as u64 };
        let wall_ms = node.clock.now_unix_ms();
        self.raise_alarm(node, wall_ms, anchor, now);
        let peers_say = if needs_peer_clocks(wall_ms, anchor) {
            self.peer_clocks(node, peers, now).await
        } else {
            PeerClocks::Unknown
        };
        // The anchor keeps the leader's own course: commands stamped by a fast proposer may
        // have pushed the shared clock ahead of it (bounded by the core), and anchoring on
        // that would let such pushes accumulate Tick after Tick.
        let course_ms = tick_ms(wall_ms, 0, anchor, peers_say);
        let now_ms = course_ms.max(shared_now_ms);
        let id = node.next_command_id();
        let tick = lineup_core::Command { id, at_ms: now_ms, body: lineup_core::CommandBody::Tick { now_ms } };
        match tokio::time::timeout(write_timeout, node.propose_as_leader(tick)).await {
            Ok(Ok(_)) => self.anchor = Some((course_ms, now)),
            Ok(Err(e)) => tracing::debug!(site = node.site, error = ?e, "tick not committed"),
            Err(_) => tracing::debug!(site = node.site, "tick not committed in time"),
        }
    }

    /// Sets or clears the node's clock alarm; warns in the log at most once a minute.
    fn raise_alarm<T: PeerTransport>(
        &mut self,
        node: &ClusterNode<T>,
        wall_ms: u64,
        anchor: ClockAnchor,
        now: Instant,
    ) {
        if !clock_alarm(wall_ms, anchor) {
            node.set_clock_alarm(None);
            return;
        }
        let off_ms = wall_ms as i128 - anchor.expected_ms() as i128;
        let problem = format!(
            "this leader's wall clock is {off_ms} ms off the cluster's clock; the cluster's clock keeps real time (check NTP on this node)"
        );
        let log_every = Duration::from_millis(CLOCK_ALARM_LOG_INTERVAL_MS);
        if self.warned_at.is_none_or(|at| now.duration_since(at) >= log_every) {
            self.warned_at = Some(now);
            tracing::warn!(site = node.site, off_ms = off_ms as i64, "{problem}");
        }
        node.set_clock_alarm(Some(problem));
    }

    /// The voters' verdict on this leader's wall clock: asked at most every
    /// [`PEER_CLOCK_ASK_INTERVAL_MS`]; an agreement is used once (it allows a step), a
    /// disagreement or silence is kept until the next round.
    async fn peer_clocks<T: PeerTransport>(
        &mut self,
        node: &Arc<ClusterNode<T>>,
        peers: &[u64],
        now: Instant,
    ) -> PeerClocks {
        let interval = Duration::from_millis(PEER_CLOCK_ASK_INTERVAL_MS);
        if self.asked_at.is_some_and(|at| now.duration_since(at) < interval) {
            return self.kept_verdict.unwrap_or(PeerClocks::Unknown);
        }
        self.asked_at = Some(now);
        let verdict = ask_wall_clocks(node, peers).await;
        self.kept_verdict = (verdict != PeerClocks::Agree).then_some(verdict);
        verdict
    }
}

/// Asks every peer for its wall clock at once, and answers the verdict as soon as it is
/// decided (a new leader must not wait for a dead peer's timeout before its first Tick).
async fn ask_wall_clocks<T: PeerTransport>(node: &Arc<ClusterNode<T>>, peers: &[u64]) -> PeerClocks {
    let membership = node.raft.metrics().borrow().membership_config.membership().clone();
    let mut asks = JoinSet::new();
    for site in peers {
        let Some(addr) = membership.get_node(site).map(|n| n.addr.clone()) else { continue };
        let (node, site) = (Arc::clone(node), *site);
        asks.spawn(async move {
            let timeout = Duration::from_millis(PEER_CLOCK_TIMEOUT_MS);
            let answer = call_peer(&*node.transport, site, &addr, &PeerRequest::WallClock, timeout).await;
            match answer {
                Ok(PeerResponse::WallClock(theirs)) => Some((node.clock.now_unix_ms(), theirs)),
                _ => None,
            }
        });
    }
    let voters = peers.len() + 1;
    let mut answers = Vec::with_capacity(peers.len());
    while let Some(joined) = asks.join_next().await {
        answers.extend(joined.ok().flatten());
        let agreeing = answers.iter().filter(|(ours, theirs)| ours.abs_diff(*theirs) <= CLOCK_AGREEMENT_MS).count();
        let still_possible = agreeing + 1 + asks.len();
        if (agreeing + 1) * 2 > voters || still_possible * 2 <= voters {
            break;
        }
    }
    // Dropping the set aborts the asks still out.
    peer_verdict(&answers, voters)
}
