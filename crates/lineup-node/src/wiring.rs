//! Glue between the cluster node and site control (wiring only: no routing decisions).
//!
//! Site control proposes and reads where the node routes its site now
//! (`ClusterNode::submit_for_site`, `read_for_site`): the log, or the island's fork while
//! the site is cut off. Its feed follows the same route: the log's effects, the fork's while
//! an island, nothing while a frozen fork merges but the merge's end (`IslandMerged`), from
//! which on the log's effects are the site's again.

use lineup_cluster::island_route::SiteRoute;
use lineup_cluster::transport::PeerTransport;
use lineup_cluster::{ClusterNode, SiteEffect};
use lineup_core::{Command, CommandResult, Effect, Routing, SiteId};
use lineup_site::ProposeFailure;
use lineup_site_driver::{ClusterFeed, ClusterPort};
use std::sync::Arc;
use tokio::sync::{broadcast, mpsc};

/// Effects waiting between the cluster's broadcast and the site driver.
pub const SITE_FEED_CAPACITY: usize = 8_192;

/// A cluster node as site control's [`ClusterPort`].
pub struct NodePort<T: PeerTransport>(pub Arc<ClusterNode<T>>);

impl<T: PeerTransport + 'static> ClusterPort for NodePort<T> {
    async fn submit(&self, command: Command) -> Result<CommandResult, ProposeFailure> {
        // Every error the node returns is definite except OutcomeUnknown; resending the same
        // command id is safe in both cases (the core applies an id once), so both retry.
        self.0
            .submit_for_site(command)
            .await
            .map(|committed| committed.result)
            .map_err(|e| ProposeFailure::NotCommitted(e.to_string()))
    }

    fn read<R>(&self, read: impl FnOnce(&Routing) -> R) -> R {
        self.0.read_for_site(read)
    }
}

/// Which stream the feed forwards.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FeedMode {
    Log,
    Fork,
    /// A frozen fork merges: only the merge's end passes.
    Frozen,
}

impl FeedMode {
    fn of(route: &SiteRoute) -> Self {
        match route {
            SiteRoute::Log => FeedMode::Log,
            SiteRoute::Fork(_) => FeedMode::Fork,
            SiteRoute::Frozen(_) => FeedMode::Frozen,
        }
    }
}

/// Does site control read its state again (a gap) when the feed switches from `from` to
/// `to`? Onto a fork, yes: the fork's first effects may have gone by before the switch.
/// From a frozen fork to the log without having seen the merge's end, yes: what the log did
/// since is unknown. Freezing needs none (the fork only stopped).
pub fn gap_on_switch(from: FeedMode, to: FeedMode) -> bool {
    matches!((from, to), (_, FeedMode::Fork) | (FeedMode::Frozen, FeedMode::Log))
}

/// What a log effect does in `mode`: whether it is forwarded, and the mode after it. While
/// frozen, this site's `IslandMerged` is forwarded and makes the log the site's stream again
/// (the effects after the merge's end are the site's).
pub fn on_log_effect(mode: FeedMode, effect: &Effect, site: SiteId) -> (bool, FeedMode) {
    match (mode, effect) {
        (FeedMode::Log, _) => (true, FeedMode::Log),
        (FeedMode::Frozen, Effect::IslandMerged { site: merged, .. }) if *merged == site => (true, FeedMode::Log),
        (mode, _) => (false, mode),
    }
}

/// Forwards this site's effects to the site driver, from the stream its route says; a gap
/// in a broadcast (the driver fell behind) or a switch that may have skipped effects becomes
/// a reconcile.
pub fn feed_site<T: PeerTransport + 'static>(node: &Arc<ClusterNode<T>>) -> mpsc::Receiver<ClusterFeed> {
    let (tx, rx) = mpsc::channel(SITE_FEED_CAPACITY);
    tokio::spawn(run_feed(Arc::clone(node), tx));
    rx
}

async fn run_feed<T: PeerTransport + 'static>(node: Arc<ClusterNode<T>>, tx: mpsc::Sender<ClusterFeed>) {
    let site = SiteId(node.site());
    let mut log = node.subscribe_effects();
    let mut changes = node.site_route_changes();
    let route = node.site_route();
    let (mut mode, mut fork) = (FeedMode::of(&route), fork_effects(&route));
    loop {
        let item = tokio::select! {
            changed = changes.changed() => {
                if changed.is_err() {
                    return;
                }
                let route = node.site_route();
                let next = FeedMode::of(&route);
                let gap = next != mode && gap_on_switch(mode, next);
                (mode, fork) = (next, fork_effects(&route));
                gap.then_some(ClusterFeed::Gap)
            }
            effect = log.recv() => match effect {
                Ok(SiteEffect { apply_index, effect }) => {
                    let (forward, next) = on_log_effect(mode, &effect, site);
                    mode = next;
                    forward.then(|| ClusterFeed::Effects { apply_index, effects: vec![effect] })
                }
                Err(broadcast::error::RecvError::Lagged(_)) => (mode == FeedMode::Log).then_some(ClusterFeed::Gap),
                Err(broadcast::error::RecvError::Closed) => return,
            },
            effect = next_fork_effect(&mut fork) => match effect {
                Ok(SiteEffect { apply_index, effect }) => {
                    Some(ClusterFeed::Effects { apply_index, effects: vec![effect] })
                }
                Err(broadcast::error::RecvError::Lagged(_)) => Some(ClusterFeed::Gap),
                // The proposer stopped: the route change that follows says what comes next.
                Err(broadcast::error::RecvError::Closed) => {
                    fork = None;
                    None
                }
            },
        };
        if let Some(item) = item {
            if tx.send(item).await.is_err() {
                return;
            }
        }
    }
}

fn fork_effects(route: &SiteRoute) -> Option<broadcast::Receiver<SiteEffect>> {
    match route {
        SiteRoute::Fork(proposer) => Some(proposer.subscribe_effects()),
        SiteRoute::Log | SiteRoute::Frozen(_) => None,
    }
}

/// The fork's next effect; never, while no fork is served.
async fn next_fork_effect(
    fork: &mut Option<broadcast::Receiver<SiteEffect>>,
) -> Result<SiteEffect, broadcast::error::RecvError> {
    match fork {
        Some(effects) => effects.recv().await,
        None => std::future::pending().await,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use lineup_core::{IslandEpoch, QueueId};

    #[test]
    fn the_feed_switches_with_the_route_and_reads_again_where_effects_may_be_missed() {
        use FeedMode::*;
        assert!(gap_on_switch(Log, Fork) && gap_on_switch(Frozen, Fork), "onto a fork");
        assert!(gap_on_switch(Frozen, Log), "the merge's end not seen");
        assert!(!gap_on_switch(Fork, Frozen) && !gap_on_switch(Log, Frozen));

        let site = SiteId(3);
        let merged =
            |site| Effect::IslandMerged { site, epoch: IslandEpoch { site, seq: 1, fork_index: 9 }, end_index: 99 };
        let other = Effect::Alarm {
            queue: QueueId::new("sales"),
            kind: lineup_core::AlarmKind::Depth,
            raised: true,
            value: 1,
            threshold: 1,
        };
        assert_eq!(on_log_effect(Log, &other, site), (true, Log));
        assert_eq!(on_log_effect(Fork, &other, site), (false, Fork), "the log is not an island's");
        assert_eq!(on_log_effect(Frozen, &other, site), (false, Frozen), "what the merge superseded");
        assert_eq!(on_log_effect(Frozen, &merged(SiteId(2)), site), (false, Frozen), "another site's merge");
        assert_eq!(on_log_effect(Frozen, &merged(site), site), (true, Log), "the merge's end, then the log");
    }
}
