//! The sender's two ties to the cluster node: every applied command from the state hook, and
//! whether this node leads, from Raft's metrics.

use super::WebhookSender;
use lineup_cluster::transport::PeerTransport;
use lineup_cluster::{ClusterNode, StateEvent};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

/// The state hook's part for webhooks: an applied command's effects, with the webhook list
/// right after it, go to the sender (which queues only while the node leads).
pub fn hand_applied(sender: &WebhookSender, event: &StateEvent<'_>) {
    if let StateEvent::Applied { apply_index, applied, routing, .. } = event {
        sender.on_applied(*apply_index, routing.now_ms(), &applied.effects, routing.webhooks());
    }
}

/// Keeps `leads` equal to "this node is the Raft leader" (the sender's gate) until the node
/// stops.
pub fn spawn_leader_watch<T: PeerTransport + 'static>(node: &Arc<ClusterNode<T>>, leads: Arc<AtomicBool>) {
    let mut metrics = node.raft().metrics();
    tokio::spawn(async move {
        loop {
            let leader = metrics.borrow_and_update().state == openraft::ServerState::Leader;
            leads.store(leader, Ordering::Relaxed);
            if metrics.changed().await.is_err() {
                leads.store(false, Ordering::Relaxed);
                return;
            }
        }
    });
}
