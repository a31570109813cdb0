//! The island's fork at the node (docs/rfcs/island-mode.md §2.2, §3.7; step 9a): when the
//! island watch says `Island`, island mode is on and `NodeConfig::island_fork` allows it
//! (only the fork's tests do until the merge exists), fork the applied state, journal the
//! new epoch and serve the fork through an [`IslandProposer`]; at start, restore an epoch
//! the journal holds open and serve it again (a restart while an island).
//!
//! The journal is `<data_dir>/island.redb`; a node in memory keeps island mode off
//! (`NodeConfig::validate`), so it has none. A node with island mode off still opens an
//! existing journal at start: an open epoch is never abandoned (it ends by its merge or a
//! `declare-lost`), whatever the node file says now.
//!
//! A `Frozen` or `Merging` epoch restored at start is not served: it is held frozen for the
//! merge driver (`island_merge_driver.rs`), which merges it. Site control reaches the fork
//! through the node's route (`island_route.rs`).

use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use lineup_core::{Command, IslandEpoch, Routing, SiteId};

use super::config::{NodeConfig, NodeStorage};
use super::island_merge_driver::FrozenFork;
use super::island_watch::IslandWatch;
use super::ClusterNode;
use crate::island::{IslandJournal, IslandProposer, IslandProposerConfig, JournalState, ISLAND_JOURNAL_FILE};
use crate::rpc::Committed;
use crate::transport::PeerTransport;
use crate::ClusterError;

/// The island's journal and, while it serves a fork, its proposer.
#[derive(Default)]
pub(super) struct IslandServing {
    journal: Option<Arc<IslandJournal>>,
    pub(super) proposer: Option<IslandProposer>,
    /// The fork no proposer serves any more, held for its merge.
    pub(super) frozen: Option<FrozenFork>,
}

/// An open epoch read back at start, to serve again once the node runs.
pub(super) struct RestoredFork {
    epoch: IslandEpoch,
    state: JournalState,
    fork: Routing,
}

/// Opens the node's island journal (when it may have one) and restores its open epoch, if
/// any: the fork replayed from its snapshot and entries. Blocking IO on a blocking thread.
pub(super) async fn open_island(
    config: &NodeConfig,
) -> Result<(Mutex<IslandServing>, Option<RestoredFork>), ClusterError> {
    let NodeStorage::Dir(dir) = &config.storage else { return Ok((Mutex::default(), None)) };
    let path = dir.join(ISLAND_JOURNAL_FILE);
    let forks = config.island.is_some() && config.island_fork;
    if !forks && !path.exists() {
        return Ok((Mutex::default(), None));
    }
    std::fs::create_dir_all(dir)?;
    let (journal, restored) = blocking(move || {
        let journal = Arc::new(IslandJournal::open(&path)?);
        let restored = match journal.restore()? {
            Some(restored) => {
                let fork = restored.replay()?;
                Some(RestoredFork { epoch: restored.epoch, state: restored.state, fork })
            }
            None => None,
        };
        Ok((journal, restored))
    })
    .await?;
    Ok((Mutex::new(IslandServing { journal: Some(journal), proposer: None, frozen: None }), restored))
}

/// Runs `work` on a blocking thread (the journal's redb IO) and answers what it answers.
pub(super) async fn blocking<R: Send + 'static>(
    work: impl FnOnce() -> Result<R, ClusterError> + Send + 'static,
) -> Result<R, ClusterError> {
    tokio::task::spawn_blocking(work).await.map_err(|e| ClusterError::IslandJournal {
        what: format!("the journal's blocking task failed: {e}"),
        source: None,
    })?
}

/// Forks when the watch says `Island` and no epoch is served yet; a fork refused (its own
/// site unreachable at the fork, a failing disk) is tried again at the watch's next change.
/// Holds only a weak reference, so it ends with the node.
pub(super) async fn island_fork_duty<T: PeerTransport>(node: Weak<ClusterNode<T>>) {
    let mut watch = match node.upgrade() {
        Some(node) => node.island.subscribe(),
        None => return,
    };
    loop {
        let island = matches!(*watch.borrow_and_update(), IslandWatch::Island { .. });
        if island {
            let Some(node) = node.upgrade() else { return };
            // A frozen fork is the merge driver's: it thaws it or merges it.
            if node.island_proposer().is_none() && node.serving().frozen.is_none() {
                match begin_epoch(&node).await {
                    Ok(Some(epoch)) => {
                        tracing::warn!(site = node.site, ?epoch, "island: serving this site from a fork")
                    }
                    Ok(None) => {}
                    Err(e) => tracing::error!(site = node.site, error = %e, "island: could not fork"),
                }
            }
        }
        if watch.changed().await.is_err() {
            return;
        }
    }
}

/// Begins the next epoch from the applied state: forks it, journals the fork, publishes the
/// epoch and starts the proposer. `None` when the node has no journal.
async fn begin_epoch<T: PeerTransport>(node: &Arc<ClusterNode<T>>) -> Result<Option<IslandEpoch>, ClusterError> {
    let Some(journal) = node.island_journal() else { return Ok(None) };
    let last = blocking({
        let journal = journal.clone();
        move || journal.last_epoch()
    })
    .await?;
    if let Some((open, _)) = last.filter(|(_, state)| state.is_open()) {
        // Restored at start and served since; a stopped proposer is not re-forked.
        return Err(ClusterError::IslandEpochOpen { open });
    }
    let seq = last.map(|(epoch, _)| epoch.seq + 1).unwrap_or(1);
    let site = SiteId(node.site);
    let members: Vec<SiteId> =
        node.raft.metrics().borrow().membership_config.membership().voter_ids().map(SiteId).collect();
    let (epoch, fork) = {
        let applied = node.store.read();
        let fork_index = applied.last_applied.as_ref().map(|id| id.index).unwrap_or(0);
        let routing = applied.app.routing();
        if routing.is_site_unreachable(site) {
            // Forking pairs nothing, so the fork could never make its own parties offerable.
            return Err(ClusterError::IslandJournal {
                what: format!("site {} is unreachable in the applied state at {fork_index}: no fork", site.0),
                source: None,
            });
        }
        let epoch = IslandEpoch { site, seq, fork_index };
        (epoch, routing.fork_island(epoch, &members, routing.now_ms()))
    };
    let snapshot = fork.snapshot_bytes();
    blocking({
        let journal = journal.clone();
        move || journal.begin(epoch, &snapshot)
    })
    .await?;
    node.island.set_epoch(Some(epoch));
    node.serve_fork(epoch, fork, journal)?;
    Ok(Some(epoch))
}

impl<T: PeerTransport> ClusterNode<T> {
    /// Serves an epoch restored at start: its epoch is published; an `Open` one is served
    /// again by a new proposer and the watch starts as an island (it heals once the quorum
    /// is heard for the stable time, and the merge follows); a `Frozen` or `Merging` one is
    /// held for the merge driver, which merges it at once.
    pub(super) fn resume_island(&self, restored: RestoredFork) -> Result<(), ClusterError> {
        let RestoredFork { epoch, state, fork } = restored;
        self.island.set_epoch(Some(epoch));
        let Some(journal) = self.island_journal() else { return Ok(()) };
        if state != JournalState::Open {
            tracing::warn!(site = self.site, ?epoch, ?state, "island: resuming the merge of a restored fork");
            let fork = Arc::new(fork);
            self.serving().frozen = Some(FrozenFork { epoch, fork, merging: state == JournalState::Merging });
            return Ok(());
        }
        tracing::warn!(site = self.site, ?epoch, "island: serving this site from its restored fork");
        self.island.resume_island();
        self.serve_fork(epoch, fork, journal)
    }

    pub(super) fn serve_fork(
        &self,
        epoch: IslandEpoch,
        fork: Routing,
        journal: Arc<IslandJournal>,
    ) -> Result<(), ClusterError> {
        let ids = self.ids.clone();
        let config = IslandProposerConfig {
            site: SiteId(self.site),
            tick_interval: Duration::from_millis(self.timing.tick_interval_ms),
            clock: self.clock,
            next_id: Arc::new(move || ids.next()),
        };
        let proposer = IslandProposer::start(epoch, fork, journal, config)?;
        self.serving().proposer = Some(proposer);
        self.note_route_change();
        Ok(())
    }

    pub(super) fn serving(&self) -> std::sync::MutexGuard<'_, IslandServing> {
        self.island_serving.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub(super) fn island_journal(&self) -> Option<Arc<IslandJournal>> {
        self.serving().journal.clone()
    }

    /// The proposer of the fork this node serves while an island (None otherwise): the
    /// site's route submits to it and the site's feed follows its effects.
    pub fn island_proposer(&self) -> Option<IslandProposer> {
        self.serving().proposer.clone()
    }

    /// Decides `command` on this island's fork (journaled, applied, answered with its fork
    /// apply index). [`ClusterError::NoIsland`] when the node serves no fork.
    pub async fn island_submit(&self, command: Command) -> Result<Committed, ClusterError> {
        super::client::encoded_size_within_bound(&command)?;
        let proposer = self.island_proposer().ok_or(ClusterError::NoIsland)?;
        proposer.submit(command).await
    }

    /// Reads the fork this node serves (stale, as [`ClusterNode::read_stale`]); None when it
    /// serves none.
    pub fn island_read<R>(&self, read: impl FnOnce(&Routing) -> R) -> Option<R> {
        self.island_proposer().map(|proposer| proposer.read(read))
    }

    /// Stops the fork's proposer and releases the journal (shutdown).
    pub(super) async fn stop_island(&self) {
        let proposer = self.serving().proposer.take();
        if let Some(proposer) = proposer {
            proposer.stop().await;
        }
        let mut serving = self.serving();
        serving.frozen.take();
        serving.journal.take();
    }
}
