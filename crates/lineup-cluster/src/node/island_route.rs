//! Where this node's own site control proposes and reads (the feed switch, island-mode RFC
//! §2.4, §3.1, §3.5): the log while the node is part of the majority, the fork while it
//! serves one as an island, and neither while a frozen fork is being merged — proposals made
//! then are held, in the order they came, until the merge has committed, and then go to the
//! log.
//!
//! Every change of route (a fork served, frozen, thawed or merged) bumps a counter on a
//! `watch` channel ([`ClusterNode::site_route_changes`]), so the site's feed switches its
//! effect stream with it.

use std::sync::Arc;
use std::time::Duration;

use lineup_core::{Command, Routing};
use tokio::sync::watch;

use super::ClusterNode;
use crate::island::IslandProposer;
use crate::rpc::Committed;
use crate::transport::PeerTransport;
use crate::ClusterError;

/// How long a proposal made while a frozen fork merges waits for the merge; past it the
/// proposal answers an error (site control proposes it again, under the same id).
pub const ISLAND_HOLD_WAIT_MS: u64 = 10_000;
/// How often a proposal follows a route that changed under it before it answers an error.
pub const ROUTE_ATTEMPTS_MAX: u32 = 4;

/// Where the site's proposals and reads go now.
#[derive(Clone)]
pub enum SiteRoute {
    /// The log, through the leader.
    Log,
    /// The island's fork, through its proposer.
    Fork(IslandProposer),
    /// A frozen fork being merged: proposals wait; reads see the frozen fork.
    Frozen(Arc<Routing>),
}

impl<T: PeerTransport> ClusterNode<T> {
    /// Where the site's proposals and reads go now.
    pub fn site_route(&self) -> SiteRoute {
        let serving = self.serving();
        match (&serving.proposer, &serving.frozen) {
            (Some(proposer), _) => SiteRoute::Fork(proposer.clone()),
            (None, Some(frozen)) => SiteRoute::Frozen(frozen.fork.clone()),
            (None, None) => SiteRoute::Log,
        }
    }

    /// Changes of [`ClusterNode::site_route`], as a counter that grows with each.
    pub fn site_route_changes(&self) -> watch::Receiver<u64> {
        self.island_route.subscribe()
    }

    /// Whether a proposal of the site waits for a merge to commit now.
    pub fn proposals_held(&self) -> bool {
        self.held_proposals.try_lock().is_err()
    }

    pub(super) fn note_route_change(&self) {
        self.island_route.send_modify(|changes| *changes += 1);
    }

    /// Commits a command of this site where its site control's decisions go now: the log,
    /// or the fork while an island (one still waiting on the log when the site becomes an
    /// island goes to the fork); held while a frozen fork merges (in arrival order, at most
    /// [`ISLAND_HOLD_WAIT_MS`]) and then committed to the log.
    pub async fn submit_for_site(&self, command: Command) -> Result<Committed, ClusterError> {
        for _attempt in 0..ROUTE_ATTEMPTS_MAX {
            let mut changes = self.site_route_changes();
            match self.site_route() {
                SiteRoute::Log => {
                    let left_log = changes.wait_for(|_| !matches!(self.site_route(), SiteRoute::Log));
                    tokio::select! {
                        answer = self.submit(command.clone()) => return answer,
                        // An island now: the log may not answer while the cut lasts, and the
                        // caller or operator the command concerns is on this site's box. The
                        // fork applies it (same id); had the majority applied it too, the
                        // merge's upserts carry the island's state.
                        Ok(_) = left_log => continue,
                    }
                }
                SiteRoute::Fork(proposer) => match proposer.submit(command.clone()).await {
                    // Stopped (frozen) before it took the command: applied nowhere.
                    Err(ClusterError::NoIsland) => continue,
                    answer => return answer,
                },
                SiteRoute::Frozen(_) => {
                    let _in_order = self.held_proposals.lock().await;
                    let waited = Duration::from_millis(ISLAND_HOLD_WAIT_MS);
                    let unfrozen = changes.wait_for(|_| !matches!(self.site_route(), SiteRoute::Frozen(_)));
                    // The watch's guard is let go here, before the next await.
                    let merged = tokio::time::timeout(waited, unfrozen).await.is_ok_and(|seen| seen.is_ok());
                    if !merged {
                        return Err(ClusterError::Timeout { site: self.site, timeout_ms: ISLAND_HOLD_WAIT_MS });
                    }
                    // Still holding the order lock: the held proposals go on in their order.
                    if let SiteRoute::Log = self.site_route() {
                        return self.submit(command).await;
                    }
                }
            }
        }
        Err(ClusterError::NoIsland)
    }

    /// Reads the state the site's decisions follow now: the applied log (stale, as
    /// [`ClusterNode::read_stale`]), the served fork, or the frozen fork being merged.
    pub fn read_for_site<R>(&self, read: impl FnOnce(&Routing) -> R) -> R {
        match self.site_route() {
            SiteRoute::Log => self.read_stale(read),
            SiteRoute::Fork(proposer) => proposer.read(read),
            SiteRoute::Frozen(fork) => read(&fork),
        }
    }
}
