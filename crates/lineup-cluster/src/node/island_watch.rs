//! Whether this node is an island (docs/rfcs/island-mode.md §1.2, §3.7): cut off from the
//! quorum for `island_after_ms`, with its Asterisk connected, island mode on, and itself a
//! voter not declared lost. A pure decision, tested without a cluster; `island_watch` runs it
//! every heartbeat interval and publishes the result for the feed switch and the merge
//! driver (later steps).
//!
//! Contact with the quorum is noted on the monotonic clock: as a follower when it accepts a
//! leader's AppendEntries or InstallSnapshot or grants a vote (`serve.rs`), as a leader while
//! it hears a quorum (`leader_duty.rs`). What the node sends counts for nothing, so a node
//! that can send but not hear becomes an island. A restarted node counts from its start.
//!
//! An island is healed once it has been heard again for [`ISLAND_HEAL_STABLE_MS`] without a
//! gap, so a link that flaps every second does not start (and interrupt) merge after merge.
//! Healed, it becomes an island again (the same epoch) after `island_after_ms` without quorum;
//! only the merge driver closes it ([`IslandWatchHandle::close`]).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, Weak};
use std::time::Duration;

use lineup_core::{IslandEpoch, SiteId};
use serde::{Deserialize, Serialize};
use tokio::sync::watch;
use tokio::time::Instant;

use super::ClusterNode;
use crate::transport::PeerTransport;

/// How long an island must be heard again, with no gap, before it counts as healed (§3.7).
pub const ISLAND_HEAL_STABLE_MS: u64 = 1_000;

/// The node file's `[island] mode`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum IslandMode {
    /// Becomes an island when cut off (§1.2).
    Auto,
    /// Never an island: a cut-off site waits, as before island mode.
    #[default]
    Off,
}

/// What the node knows at one check.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WatchInputs {
    pub now: Instant,
    /// The last contact with the quorum, or the process start if later.
    pub last_quorum_contact: Instant,
    pub island_after: Duration,
    /// Silence longer than this between accepted requests restarts the heal's stable time
    /// (the election timeout: a follower that long without its leader may see an election).
    pub heal_gap: Duration,
    pub ari_connected: bool,
    pub mode: IslandMode,
    /// A voter of the current membership, not declared lost in its last applied state.
    pub voter_not_lost: bool,
}

/// §1.2: whether a node that is no island now becomes one.
pub fn island_due(inputs: &WatchInputs) -> bool {
    inputs.mode == IslandMode::Auto
        && inputs.ari_connected
        && inputs.voter_not_lost
        && inputs.now.saturating_duration_since(inputs.last_quorum_contact) >= inputs.island_after
}

/// This node's island state, as published on [`IslandWatchHandle::subscribe`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum IslandWatch {
    /// Part of the majority (or island mode off).
    #[default]
    None,
    /// Cut off since `since`: the site is served from its fork.
    Island { since: Instant },
    /// An island heard again for [`ISLAND_HEAL_STABLE_MS`] at `healed_at`: time to merge.
    Healed { since: Instant, healed_at: Instant },
}

impl IslandWatch {
    pub fn phase(&self) -> IslandPhase {
        match self {
            IslandWatch::None => IslandPhase::None,
            IslandWatch::Island { .. } => IslandPhase::Island,
            IslandWatch::Healed { .. } => IslandPhase::Healed,
        }
    }
}

/// [`IslandWatch`] on the wire (`PeerResponse::IslandStatus`), without the local instants.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum IslandPhase {
    None,
    Island,
    Healed,
}

/// The watch's state between checks: the published state and, while an island, since when
/// it has been heard again without a gap.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct WatchTrack {
    pub state: IslandWatch,
    pub heard_again_from: Option<Instant>,
}

/// One check: the next state from the previous one.
pub fn next_watch(track: WatchTrack, inputs: &WatchInputs) -> WatchTrack {
    match track.state {
        IslandWatch::None if island_due(inputs) => {
            WatchTrack { state: IslandWatch::Island { since: inputs.now }, heard_again_from: None }
        }
        IslandWatch::None => WatchTrack::default(),
        IslandWatch::Island { since } => {
            let heard_after_cut = inputs.last_quorum_contact > since;
            let without_gap = inputs.now.saturating_duration_since(inputs.last_quorum_contact) < inputs.heal_gap;
            // Only the last contact is known: counting from it is later (safer) than the first.
            let heard_again_from = match (heard_after_cut && without_gap, track.heard_again_from) {
                (false, _) => None,
                (true, from) => Some(from.unwrap_or(inputs.last_quorum_contact)),
            };
            let stable = Duration::from_millis(ISLAND_HEAL_STABLE_MS);
            match heard_again_from {
                Some(from) if inputs.now.saturating_duration_since(from) >= stable => {
                    WatchTrack { state: IslandWatch::Healed { since, healed_at: inputs.now }, heard_again_from: None }
                }
                _ => WatchTrack { state: IslandWatch::Island { since }, heard_again_from },
            }
        }
        // Cut again before the merge closed the island: it serves again, in the same epoch.
        IslandWatch::Healed { since, .. } if island_due(inputs) => {
            WatchTrack { state: IslandWatch::Island { since }, heard_again_from: None }
        }
        IslandWatch::Healed { .. } => track,
    }
}

/// What the node shares about its island: the published state, the open epoch (set by the
/// island proposer when it forks), and whether its Asterisk is connected (set by the binary).
#[derive(Debug)]
pub struct IslandWatchHandle {
    state: watch::Sender<IslandWatch>,
    epoch: Mutex<Option<IslandEpoch>>,
    ari_connected: AtomicBool,
}

impl Default for IslandWatchHandle {
    fn default() -> Self {
        Self {
            state: watch::Sender::new(IslandWatch::None),
            epoch: Mutex::new(None),
            ari_connected: AtomicBool::new(false),
        }
    }
}

impl IslandWatchHandle {
    pub fn subscribe(&self) -> watch::Receiver<IslandWatch> {
        self.state.subscribe()
    }

    pub fn state(&self) -> IslandWatch {
        *self.state.borrow()
    }

    pub fn epoch(&self) -> Option<IslandEpoch> {
        *self.epoch.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The island epoch this node has open (journaled), or `None` once it is merged.
    pub fn set_epoch(&self, epoch: Option<IslandEpoch>) {
        *self.epoch.lock().unwrap_or_else(|p| p.into_inner()) = epoch;
    }

    pub fn set_ari_connected(&self, connected: bool) {
        self.ari_connected.store(connected, Ordering::Relaxed);
    }

    pub fn ari_connected(&self) -> bool {
        self.ari_connected.load(Ordering::Relaxed)
    }

    /// A restart found an open epoch: this node is an island from now until it is heard
    /// again for the stable time.
    pub fn resume_island(&self) {
        self.state.send_replace(IslandWatch::Island { since: Instant::now() });
    }

    /// The merge has committed (`IslandMergeEnd`): this node is part of the majority again.
    pub fn close(&self) {
        self.state.send_replace(IslandWatch::None);
    }

    /// Publishes `next` unless the merge driver closed the island since `previous` was read.
    fn publish(&self, previous: IslandWatch, next: IslandWatch) -> bool {
        self.state.send_if_modified(|state| {
            if *state != previous || next == previous {
                return false;
            }
            *state = next;
            true
        })
    }
}

/// Checks every heartbeat interval whether this node is an island (or healed), and publishes
/// it. Holds only a weak reference, so it ends with the node.
pub(crate) async fn island_watch<T: PeerTransport>(
    node: Weak<ClusterNode<T>>,
    mode: IslandMode,
    island_after: Duration,
) {
    let started = Instant::now();
    let Some((period, heal_gap)) = node.upgrade().map(|node| {
        (
            Duration::from_millis(node.timing.heartbeat_interval_ms),
            Duration::from_millis(node.timing.election_timeout_min_ms),
        )
    }) else {
        return;
    };
    let mut interval = tokio::time::interval(period);
    interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut heard_again_from = None;
    loop {
        interval.tick().await;
        let Some(node) = node.upgrade() else { return };
        let contact = node.contact.quorum_contact_at().map_or(started, |at| at.max(started));
        let site = node.site;
        let voter = node.raft.metrics().borrow().membership_config.membership().voter_ids().any(|s| s == site);
        let lost = node.read_stale(|r| r.is_site_lost(SiteId(site)));
        let inputs = WatchInputs {
            now: Instant::now(),
            last_quorum_contact: contact,
            island_after,
            heal_gap,
            ari_connected: node.island.ari_connected(),
            mode,
            voter_not_lost: voter && !lost,
        };
        let previous = node.island.state();
        let next = next_watch(WatchTrack { state: previous, heard_again_from }, &inputs);
        heard_again_from = next.heard_again_from;
        if node.island.publish(previous, next.state) {
            tracing::warn!(site, state = ?next.state.phase(), "island state changed");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const AFTER: Duration = Duration::from_millis(6_000);
    const GAP: Duration = Duration::from_millis(500);

    fn inputs(start: Instant, now_ms: u64, contact_ms: u64) -> WatchInputs {
        WatchInputs {
            now: start + Duration::from_millis(now_ms),
            last_quorum_contact: start + Duration::from_millis(contact_ms),
            island_after: AFTER,
            heal_gap: GAP,
            ari_connected: true,
            mode: IslandMode::Auto,
            voter_not_lost: true,
        }
    }

    #[test]
    fn an_island_only_after_island_after_ms_without_quorum() {
        let start = Instant::now();
        assert!(!island_due(&inputs(start, 5_999, 0)));
        assert!(island_due(&inputs(start, 6_000, 0)));
        assert!(!island_due(&inputs(start, 9_000, 3_001)), "contact since then restarts the wait");
    }

    #[test]
    fn every_condition_is_needed() {
        let start = Instant::now();
        let cut = inputs(start, 7_000, 0);
        assert!(island_due(&cut));
        assert!(!island_due(&WatchInputs { ari_connected: false, ..cut }), "no Asterisk: serves nobody");
        assert!(!island_due(&WatchInputs { mode: IslandMode::Off, ..cut }));
        assert!(!island_due(&WatchInputs { voter_not_lost: false, ..cut }));
    }

    #[test]
    fn a_contact_from_the_future_counts_as_now() {
        let start = Instant::now() + Duration::from_secs(60);
        let late = WatchInputs { now: start, last_quorum_contact: start + AFTER, ..inputs(start, 0, 0) };
        assert!(!island_due(&late));
    }

    fn run(track: WatchTrack, start: Instant, now_ms: u64, contact_ms: u64) -> WatchTrack {
        next_watch(track, &inputs(start, now_ms, contact_ms))
    }

    #[test]
    fn an_island_heals_after_being_heard_again_for_the_stable_time() {
        let start = Instant::now();
        let island = run(WatchTrack::default(), start, 6_000, 0);
        assert_eq!(island.state, IslandWatch::Island { since: start + AFTER });
        // Heard again at 10 s, every heartbeat.
        let mut track = island;
        for now_ms in (10_000..11_000).step_by(150) {
            track = run(track, start, now_ms, now_ms);
            assert_eq!(track.state.phase(), IslandPhase::Island, "at {now_ms} ms");
        }
        let healed = run(track, start, 11_050, 11_050);
        assert_eq!(
            healed.state,
            IslandWatch::Healed { since: start + AFTER, healed_at: start + Duration::from_millis(11_050) }
        );
        assert_eq!(run(healed, start, 12_000, 12_000), healed, "healed stays healed until merged");
    }

    #[test]
    fn a_gap_while_heard_again_restarts_the_stable_time() {
        let start = Instant::now();
        let mut track = run(WatchTrack::default(), start, 6_000, 0);
        track = run(track, start, 10_000, 10_000);
        track = run(track, start, 10_800, 10_200);
        assert_eq!(track.heard_again_from, None, "600 ms without contact is a gap");
        track = run(track, start, 10_900, 10_900);
        track = run(track, start, 11_500, 11_500);
        assert_eq!(track.state.phase(), IslandPhase::Island);
        assert_eq!(run(track, start, 11_900, 11_900).state.phase(), IslandPhase::Healed);
    }

    #[test]
    fn a_healed_island_cut_again_is_the_same_island() {
        let start = Instant::now();
        let healed = WatchTrack {
            state: IslandWatch::Healed { since: start, healed_at: start + Duration::from_millis(20_000) },
            heard_again_from: None,
        };
        assert_eq!(run(healed, start, 25_000, 20_000), healed);
        assert_eq!(run(healed, start, 26_000, 20_000).state, IslandWatch::Island { since: start });
    }

    #[test]
    fn an_island_stays_one_when_its_asterisk_or_mode_goes() {
        let start = Instant::now();
        let island = run(WatchTrack::default(), start, 6_000, 0);
        let off = WatchInputs { ari_connected: false, mode: IslandMode::Off, ..inputs(start, 7_000, 0) };
        assert_eq!(next_watch(island, &off).state, island.state, "an open island ends only by merge");
    }

    #[test]
    fn a_closed_island_is_not_reopened_by_a_stale_check() {
        let handle = IslandWatchHandle::default();
        let island = IslandWatch::Island { since: Instant::now() };
        assert!(handle.publish(IslandWatch::None, island));
        handle.close();
        assert!(!handle.publish(island, IslandWatch::Healed { since: Instant::now(), healed_at: Instant::now() }));
        assert_eq!(handle.state(), IslandWatch::None);
    }
}
