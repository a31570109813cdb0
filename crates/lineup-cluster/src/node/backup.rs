//! Taking a backup from a running node: the committed state, read linearizably.

use super::ClusterNode;
use crate::backup::Backup;
use crate::transport::PeerTransport;
use crate::ClusterError;

impl<T: PeerTransport> ClusterNode<T> {
    /// The routing state with everything committed before the call applied (a linearizable
    /// read), with the log entry, term and membership it was read at: one consistent cut.
    pub async fn backup(&self) -> Result<Backup, ClusterError> {
        self.read_linearizable(|_| ()).await?;
        let state = self.store.read();
        let last_applied = state.last_applied.ok_or_else(|| ClusterError::Backup {
            what: "this node has applied nothing yet: there is no state to back up".into(),
        })?;
        let members = state.membership.membership().nodes().map(|(site, node)| (*site, node.addr.clone())).collect();
        Ok(Backup {
            taken_at_ms: self.clock.now_unix_ms(),
            taken_on_site: self.site,
            log_index: last_applied.index,
            log_term: last_applied.leader_id.get_term(),
            members,
            state: state.app.routing().snapshot_bytes(),
        })
    }
}
