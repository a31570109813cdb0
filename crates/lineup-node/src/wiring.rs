//! Glue between the cluster node and site control (wiring only: no routing decisions).

use lineup_cluster::transport::PeerTransport;
use lineup_cluster::ClusterNode;
use lineup_core::{Command, CommandResult, Routing};
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
                Ok(e) => ClusterFeed::Effects { apply_index: e.apply_index, effects: vec![e.effect] },
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
