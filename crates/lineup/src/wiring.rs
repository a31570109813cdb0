//! Glue between the cluster node and site control (wiring only: no routing decisions).

use lineup_cluster::batch::ENTRY_COMMANDS_MAX;
use lineup_cluster::transport::PeerTransport;
use lineup_cluster::ClusterNode;
use lineup_core::{Command, CommandResult, Routing};
use lineup_site::driver::{ClusterFeed, ClusterPort};
use lineup_site::ProposeFailure;
use lineup_store::{ConfigMirror, EntryAssembler, HistoryPipeline};
use std::sync::Arc;
use std::time::Duration;
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
            .submit(command)
            .await
            .map(|committed| committed.result)
            .map_err(|e| ProposeFailure::NotCommitted(e.to_string()))
    }

    fn read<R>(&self, read: impl FnOnce(&Routing) -> R) -> R {
        self.0.read_stale(read)
    }
}

/// Forwards this site's committed effects to the site driver; a gap in the broadcast (the
/// driver fell behind) becomes a reconcile.
pub fn feed_site<T: PeerTransport + 'static>(node: &Arc<ClusterNode<T>>) -> mpsc::Receiver<ClusterFeed> {
    let (tx, rx) = mpsc::channel(SITE_FEED_CAPACITY);
    let mut effects = node.subscribe_effects();
    tokio::spawn(async move {
        loop {
            let item = match effects.recv().await {
                Ok(e) => ClusterFeed::Effects { log_index: e.apply_index, effects: vec![e.effect] },
                Err(broadcast::error::RecvError::Lagged(_)) => ClusterFeed::Gap,
                Err(broadcast::error::RecvError::Closed) => return,
            };
            if tx.send(item).await.is_err() {
                return;
            }
        }
    });
    rx
}

/// Feeds whole applied entries to the history pipeline (outbox → database and queue_log).
/// Effects arrive one at a time; an entry is handed over once the node has applied all of
/// it. The routing config is mirrored for SQL reports whenever it changes.
pub fn feed_history<T: PeerTransport + 'static>(node: Arc<ClusterNode<T>>, pipeline: Arc<HistoryPipeline>) {
    let mut effects = node.subscribe_effects();
    tokio::spawn(async move {
        let mut assembler = EntryAssembler::new();
        let mut mirrored_at = 0u64;
        loop {
            let wait = Duration::from_millis(lineup_store::assembler::ASSEMBLER_OPEN_RECHECK_MS);
            match tokio::time::timeout(wait, effects.recv()).await {
                Ok(Ok(e)) => assembler.push(e.apply_index, e.effect),
                Ok(Err(broadcast::error::RecvError::Lagged(n))) => {
                    tracing::warn!(skipped = n, "history feed fell behind the apply stream");
                }
                Ok(Err(broadcast::error::RecvError::Closed)) => return,
                Err(_) => {}
            }
            // Read how far the node applied *before* draining: everything received after
            // this read belongs to entries that are complete up to it.
            let applied = node.applied_index();
            let applied_through = (applied + 1) * ENTRY_COMMANDS_MAX - 1;
            while let Ok(e) = effects.try_recv() {
                assembler.push(e.apply_index, e.effect);
            }
            for (index, entry) in assembler.take_complete(applied_through) {
                if let Err(error) = pipeline.submit(index, entry) {
                    tracing::error!(%error, index, "history outbox write failed");
                }
            }
            if applied != mirrored_at {
                pipeline.update_config(node.read_stale(ConfigMirror::from_routing));
                mirrored_at = applied;
            }
        }
    });
}
