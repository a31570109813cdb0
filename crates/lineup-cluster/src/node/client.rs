//! Writes and linearizable reads from this node, wherever the leader is: propose locally
//! when leading, forward otherwise, and resolve a lost answer by reading the result back.

use std::time::Duration;

use lineup_core::codec;
use lineup_core::{Command, CommandBody, CommandId, CommandResult, Routing};
use openraft::metrics::WaitError;

use super::config::{CLIENT_WRITE_ATTEMPTS_MAX, COMMAND_MAX_BYTES};
use super::network::call_peer;
use super::serve::read_index_as_leader;
use super::ClusterNode;
use crate::rpc::{Committed, LeaderError, PeerRequest, PeerResponse};
use crate::transport::PeerTransport;
use crate::ClusterError;

impl<T: PeerTransport> ClusterNode<T> {
    /// Reads the state after everything committed before the call is applied here
    /// (linearizable): the leader confirms its leadership with a quorum and names a log
    /// index, this node waits until it has applied that index, then reads.
    pub async fn read_linearizable<R>(&self, read: impl FnOnce(&Routing) -> R) -> Result<R, ClusterError> {
        let timeout = Duration::from_millis(self.timing.client_write_timeout_ms);
        let index = self.read_index(timeout).await?;
        self.raft
            .wait(Some(timeout))
            .applied_index_at_least(Some(index), "linearizable read")
            .await
            .map_err(|e| read_wait_error(index, timeout, e))?;
        Ok(self.read_stale(read))
    }

    async fn read_index(&self, timeout: Duration) -> Result<u64, ClusterError> {
        let (leader, addr) = self.wait_for_leader(timeout).await?;
        if leader == self.site {
            // A leader cut off from its quorum never confirms: bound the wait.
            return match tokio::time::timeout(timeout, read_index_as_leader(&self.raft)).await {
                Ok(answer) => answer.map_err(|e| ClusterError::from_leader(leader, e)),
                Err(_) => Err(ClusterError::Timeout { site: leader, timeout_ms: timeout.as_millis() as u64 }),
            };
        }
        match call_peer(&*self.transport, leader, &addr, &PeerRequest::ReadIndex, timeout).await? {
            PeerResponse::ReadIndex(answer) => answer.map_err(|e| ClusterError::from_leader(leader, e)),
            other => Err(ClusterError::PeerRefused(format!("unexpected answer to ReadIndex: {}", other.kind()))),
        }
    }

    /// The current leader and its address, waiting (bounded) while there is none.
    async fn wait_for_leader(&self, timeout: Duration) -> Result<(u64, String), ClusterError> {
        let metrics = self
            .raft
            .wait(Some(timeout))
            .metrics(|m| m.current_leader.is_some(), "a leader is known")
            .await
            .map_err(|_| ClusterError::NoLeader { waited_ms: timeout.as_millis() as u64 })?;
        let leader = metrics.current_leader.ok_or(ClusterError::NoLeader { waited_ms: 0 })?;
        let addr = metrics.membership_config.membership().get_node(&leader).map(|n| n.addr.clone()).unwrap_or_default();
        Ok((leader, addr))
    }

    /// Proposes `body` with a fresh id from this node, stamped with the wall clock.
    pub async fn propose(&self, body: CommandBody) -> Result<Committed, ClusterError> {
        let command = Command { id: self.next_command_id(), at_ms: self.clock.now_unix_ms(), body };
        self.submit(command).await
    }

    /// Commits `command` through the leader, wherever it is, and returns its result.
    ///
    /// Errors are definite: when this returns an error the command was not applied, except
    /// [`ClusterError::OutcomeUnknown`], which says so explicitly. A lost answer is resolved
    /// by reading the result back by the command's id; resending the same id afterwards is
    /// safe because the core applies an id at most once.
    pub async fn submit(&self, command: Command) -> Result<Committed, ClusterError> {
        let size = encoded_size_within_bound(&command)?;
        let timeout = Duration::from_millis(self.timing.client_write_timeout_ms);
        let mut outcome_unknown = false;
        for _attempt in 0..CLIENT_WRITE_ATTEMPTS_MAX {
            let (leader, addr) = self.wait_for_leader(timeout).await?;
            let sent = if leader == self.site {
                match tokio::time::timeout(timeout, self.proposer.propose(command.clone(), size)).await {
                    Ok(answer) => Ok(answer),
                    Err(_) => Err(ClusterError::Timeout { site: leader, timeout_ms: timeout.as_millis() as u64 }),
                }
            } else {
                let request = PeerRequest::ClientWrite(command.clone());
                let forward = call_peer(&*self.transport, leader, &addr, &request, timeout);
                // A leader that died (kill -9, a cut link) may leave its connection looking
                // alive until the timeout: as soon as another leader is known, stop waiting
                // for this one and resolve the outcome with the new leader instead.
                tokio::select! {
                    answer = forward => match answer {
                        Ok(PeerResponse::ClientWrite(answer)) => Ok(answer),
                        Ok(other) => Err(ClusterError::PeerRefused(format!("unexpected answer to a write: {}", other.kind()))),
                        Err(e) => Err(e),
                    },
                    true = self.leader_changed_from(leader, timeout) => {
                        Err(ClusterError::ConnectionLost { site: leader, reason: "another leader took over".into() })
                    }
                }
            };
            match sent {
                Ok(Ok(committed)) => return Ok(committed),
                // The leader moved before proposing: nothing happened; go again.
                Ok(Err(LeaderError::NotLeader { .. })) => {
                    self.await_leader_change(leader, timeout).await;
                }
                // Not delivered: nothing happened; go again once a leader is known.
                Err(ClusterError::Unreachable { .. }) => {
                    self.await_leader_change(leader, timeout).await;
                }
                // Delivered but unanswered, or failed after proposing: read it back.
                // Refused before proposing: definite.
                Ok(Err(LeaderError::Refused(reason))) => return Err(ClusterError::PeerRefused(reason)),
                Ok(Err(LeaderError::Failed(_)))
                | Err(ClusterError::Timeout { .. })
                | Err(ClusterError::ConnectionLost { .. }) => {
                    outcome_unknown = true;
                    if let Ok(Some(result)) = self.result_of(command.id).await {
                        return Ok(Committed { apply_index: None, result, effects: Vec::new() });
                    }
                    // Not applied as of a linearizable read: resending the same id is safe.
                }
                Err(e) => return Err(e),
            }
        }
        if outcome_unknown {
            Err(ClusterError::OutcomeUnknown { origin: command.id.origin, serial: command.id.serial })
        } else {
            Err(ClusterError::NoLeader { waited_ms: timeout.as_millis() as u64 * u64::from(CLIENT_WRITE_ATTEMPTS_MAX) })
        }
    }

    /// Proposes through this node's own Raft (it must be the leader).
    pub(crate) async fn propose_as_leader(&self, command: Command) -> Result<Committed, LeaderError> {
        let size = codec::encode_versioned(&command).map_err(|e| LeaderError::Refused(e.to_string()))?.len();
        self.proposer.propose(command, size).await
    }

    /// True once another leader than `old` is known; false if none is within `timeout`.
    async fn leader_changed_from(&self, old: u64, timeout: Duration) -> bool {
        self.raft
            .wait(Some(timeout))
            .metrics(move |m| m.current_leader.is_some_and(|l| l != old), "another leader")
            .await
            .is_ok()
    }

    /// Waits (bounded) until the known leader is someone other than `old`.
    async fn await_leader_change(&self, old: u64, timeout: Duration) {
        let _ = self
            .raft
            .wait(Some(timeout))
            .metrics(move |m| m.current_leader.is_some_and(|l| l != old), "leader changed")
            .await;
    }

    /// The committed result of command `id`, read linearizably; `None` if it has not been
    /// applied (or has left the core's dedup window).
    pub async fn result_of(&self, id: CommandId) -> Result<Option<CommandResult>, ClusterError> {
        self.read_linearizable(|routing| routing.result_of(&id)).await
    }
}

/// Why this node did not get to apply up to a linearizable read's index.
fn read_wait_error(index: u64, timeout: Duration, e: WaitError) -> ClusterError {
    let what = match e {
        WaitError::Timeout(..) => {
            format!("this node did not apply up to the read index {index} within {} ms", timeout.as_millis())
        }
        WaitError::ShuttingDown => "the node is shutting down".to_string(),
    };
    ClusterError::raft(what, e)
}

/// The encoded size of `command`, refused above [`COMMAND_MAX_BYTES`] (a write to the log or
/// to an island's fork).
pub(super) fn encoded_size_within_bound(command: &Command) -> Result<usize, ClusterError> {
    let size = codec::encode_versioned(command)?.len();
    if size > COMMAND_MAX_BYTES {
        return Err(ClusterError::CommandTooLarge { size_bytes: size, limit_bytes: COMMAND_MAX_BYTES });
    }
    Ok(size)
}
