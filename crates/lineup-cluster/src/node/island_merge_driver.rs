//! The merge driver (docs/rfcs/island-mode.md §3.1, §3.5, §3.7): when an island is heard
//! again for `ISLAND_HEAL_STABLE_MS` (the watch says `Healed`), it freezes the fork, proposes
//! the fork's merge plan to the global log through the normal write path, and once
//! `IslandMergeEnd` has committed closes the journal's epoch and the watch: the site is part
//! of the majority again.
//!
//! Freezing stops the fork's proposer (no command and no Tick changes the fork after it) and
//! journals `Frozen`; the plan is computed from the frozen fork, which a restart replays to
//! the same state, so a restarted node proposes the same plan. The journal says `Merging`
//! before the first merge command is sent.
//!
//! Every merge command is idempotent in the core (a Begin of the open merge and steps of a
//! merged epoch answer done; records, calls and operator chunks already merged are skipped),
//! so a merge interrupted anywhere (a write failing, the link cut again, a restart) resumes by
//! proposing the whole plan again, each command with a fresh id.
//!
//! Cut again before any merge command was sent, the fork thaws: `Open` again, served again in
//! the same epoch. Once one was sent (`Merging`) the merge's counts and digest are fixed at
//! the global state's Begin, so the fork stays frozen and the driver retries until the merge
//! commits: the site's callers in progress go on on the phones, new offers wait for the merge.

use std::sync::{Arc, Weak};
use std::time::Duration;

use lineup_core::{CommandBody, IslandEpoch, Routing};

use super::island_fork::blocking;
use super::island_watch::IslandWatch;
use super::ClusterNode;
use crate::island::JournalState;
use crate::transport::PeerTransport;
use crate::ClusterError;

/// How long the driver waits before proposing a merge command again after a write failed
/// (no leader, a cut link, an unknown outcome).
pub const MERGE_RETRY_MS: u64 = 500;
/// How long it waits after the global state refused a merge command: a refusal is not a
/// lost message, so it is retried slowly (and logged each time).
pub const MERGE_REFUSED_RETRY_MS: u64 = 5_000;

/// A fork that no proposer serves any more: frozen for its merge, or restored frozen or
/// merging at start.
#[derive(Clone)]
pub(super) struct FrozenFork {
    pub epoch: IslandEpoch,
    /// Shared with the site's reads while it merges (`island_route.rs`).
    pub fork: Arc<Routing>,
    /// A merge command may have been sent: the fork never thaws again.
    pub merging: bool,
}

/// What the driver does for a state of the watch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum DriverStep {
    Merge,
    Thaw,
    Wait,
}

/// The pure decision: merge once healed (or after a restart that found a frozen or merging
/// epoch), thaw a fork frozen but not yet merging when the site is cut again.
fn driver_step(watch: IslandWatch, frozen: Option<bool>, serving: bool) -> DriverStep {
    match (watch, frozen) {
        (IslandWatch::Island { .. }, Some(false)) => DriverStep::Thaw,
        (IslandWatch::Island { .. }, _) => DriverStep::Wait,
        (IslandWatch::Healed { .. }, _) if serving || frozen.is_some() => DriverStep::Merge,
        (IslandWatch::None, Some(_)) => DriverStep::Merge,
        _ => DriverStep::Wait,
    }
}

/// Follows the island watch and merges, thaws or waits. Holds only a weak reference between
/// steps, so it ends with the node.
pub(super) async fn island_merge_duty<T: PeerTransport>(node: Weak<ClusterNode<T>>) {
    let mut watch = match node.upgrade() {
        Some(node) => node.island.subscribe(),
        None => return,
    };
    loop {
        let state = *watch.borrow_and_update();
        let failed = {
            let Some(node) = node.upgrade() else { return };
            let (frozen, serving) = node.island_progress();
            let outcome = match driver_step(state, frozen, serving) {
                DriverStep::Merge => merge_epoch(&node).await,
                DriverStep::Thaw => node.thaw().await,
                DriverStep::Wait => Ok(()),
            };
            outcome.map_err(|e| tracing::error!(site = node.site, error = %e, "island: merge driver")).is_err()
        };
        if failed {
            // A journal error: try again on the watch's next change or after the pause.
            let _ = tokio::time::timeout(Duration::from_millis(MERGE_REFUSED_RETRY_MS), watch.changed()).await;
            continue;
        }
        if watch.changed().await.is_err() {
            return;
        }
    }
}

/// Freezes the fork (if a proposer still serves it), proposes its merge plan until
/// `IslandMergeEnd` has committed, then closes the epoch. Returns early, thawed, when the
/// site is cut again before the first merge command was sent.
async fn merge_epoch<T: PeerTransport>(node: &Arc<ClusterNode<T>>) -> Result<(), ClusterError> {
    let Some(frozen) = node.freeze().await? else { return Ok(()) };
    if !frozen.merging {
        if matches!(node.island.state(), IslandWatch::Island { .. }) {
            return node.thaw().await;
        }
        node.set_journal_state(JournalState::Merging).await?;
        node.mark_merging();
    }
    let plan = frozen.fork.merge_plan();
    tracing::warn!(
        site = node.site,
        epoch = ?frozen.epoch,
        commands = plan.commands.len(),
        live_left_out = plan.live_left_out,
        "island: merging the fork into the global log"
    );
    for body in plan.commands {
        propose_until_committed(node, body).await;
    }
    node.close_epoch().await?;
    tracing::warn!(site = node.site, epoch = ?frozen.epoch, "island: merged; this site follows the log again");
    Ok(())
}

/// Proposes `body` until the global state has applied it: a failed write is retried after
/// [`MERGE_RETRY_MS`], a refusal after [`MERGE_REFUSED_RETRY_MS`]. Every merge command may be
/// applied any number of times, so a fresh id per attempt is safe.
async fn propose_until_committed<T: PeerTransport>(node: &ClusterNode<T>, body: CommandBody) {
    loop {
        let pause_ms = match node.propose(body.clone()).await {
            Ok(committed) => match committed.result {
                Ok(_) => return,
                Err(refusal) => {
                    tracing::error!(site = node.site, kind = body.kind(), %refusal, "island: a merge command was refused");
                    MERGE_REFUSED_RETRY_MS
                }
            },
            Err(e) => {
                tracing::warn!(site = node.site, kind = body.kind(), error = %e, "island: a merge command is not committed yet");
                MERGE_RETRY_MS
            }
        };
        tokio::time::sleep(Duration::from_millis(pause_ms)).await;
    }
}

impl<T: PeerTransport> ClusterNode<T> {
    /// Whether a frozen fork is held (and whether it is merging), and whether a proposer
    /// serves a fork.
    fn island_progress(&self) -> (Option<bool>, bool) {
        let serving = self.serving();
        (serving.frozen.as_ref().map(|f| f.merging), serving.proposer.is_some())
    }

    /// Stops the fork's proposer and keeps its fork as it stands, journaled `Frozen`. The
    /// frozen fork already held (a restart, an earlier attempt) is answered as it is; None
    /// when the node serves no fork at all.
    async fn freeze(&self) -> Result<Option<FrozenFork>, ClusterError> {
        // Taken and marked frozen under one lock: the site's route never shows the log
        // while a fork is still unmerged.
        let proposer = {
            let mut serving = self.serving();
            let proposer = serving.proposer.take();
            if let Some(proposer) = &proposer {
                let fork = Arc::new(proposer.read(Routing::clone));
                serving.frozen = Some(FrozenFork { epoch: proposer.epoch(), fork, merging: false });
            }
            proposer
        };
        if let Some(proposer) = proposer {
            self.note_route_change();
            proposer.stop().await;
            // The batch the proposer held when it stopped is in the fork now.
            let fork = Arc::new(proposer.read(Routing::clone));
            if let Some(frozen) = self.serving().frozen.as_mut() {
                frozen.fork = fork;
            }
            self.set_journal_state(JournalState::Frozen).await?;
        }
        Ok(self.serving().frozen.clone())
    }

    /// Serves a fork frozen before any merge command was sent again, in the same epoch.
    async fn thaw(&self) -> Result<(), ClusterError> {
        let frozen = self.serving().frozen.clone();
        let Some(frozen) = frozen.filter(|f| !f.merging) else { return Ok(()) };
        let Some(journal) = self.island_journal() else { return Ok(()) };
        self.set_journal_state(JournalState::Open).await?;
        tracing::warn!(site = self.site, epoch = ?frozen.epoch, "island: cut again before the merge; serving the fork again");
        // Served before the frozen fork is let go: the site's route goes from it to the fork.
        self.serve_fork(frozen.epoch, (*frozen.fork).clone(), journal)?;
        self.serving().frozen = None;
        Ok(())
    }

    fn mark_merging(&self) {
        if let Some(frozen) = self.serving().frozen.as_mut() {
            frozen.merging = true;
        }
    }

    async fn set_journal_state(&self, state: JournalState) -> Result<(), ClusterError> {
        let Some(journal) = self.island_journal() else { return Ok(()) };
        blocking(move || journal.set_state(state)).await
    }

    /// The merge has committed: the journal's epoch is closed, the epoch unpublished and the
    /// watch back to `None`.
    async fn close_epoch(&self) -> Result<(), ClusterError> {
        // The site follows the log from the End on, even if the journal cannot be closed
        // now: a restart would find the epoch open and merge it again, which the global
        // state answers done step by step.
        self.serving().frozen = None;
        self.note_route_change();
        if let Some(journal) = self.island_journal() {
            blocking(move || journal.close().map(|_| ())).await?;
        }
        self.island.set_epoch(None);
        self.island.close();
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::time::Instant;

    #[test]
    fn merge_when_healed_or_restarted_frozen_and_thaw_only_before_merging() {
        let now = Instant::now();
        let island = IslandWatch::Island { since: now };
        let healed = IslandWatch::Healed { since: now, healed_at: now };
        assert_eq!(driver_step(healed, None, true), DriverStep::Merge);
        assert_eq!(driver_step(healed, Some(true), false), DriverStep::Merge);
        assert_eq!(driver_step(healed, None, false), DriverStep::Wait, "nothing forked, nothing to merge");
        assert_eq!(driver_step(IslandWatch::None, Some(false), false), DriverStep::Merge, "restarted frozen");
        assert_eq!(driver_step(IslandWatch::None, Some(true), false), DriverStep::Merge, "restarted merging");
        assert_eq!(driver_step(IslandWatch::None, None, false), DriverStep::Wait);
        assert_eq!(driver_step(island, Some(false), false), DriverStep::Thaw);
        assert_eq!(driver_step(island, Some(true), false), DriverStep::Wait, "a merging fork never thaws");
        assert_eq!(driver_step(island, None, true), DriverStep::Wait);
    }
}
