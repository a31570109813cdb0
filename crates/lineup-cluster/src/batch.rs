//! Several commands per Raft entry.
//!
//! openraft 0.9 waits for each leader append to be flushed before it handles the next
//! client write, so one command per entry caps a leader at one command per fsync. The
//! leader therefore gathers the commands waiting to be proposed into one [`CommandBatch`]
//! entry (group commit at the Raft level).
//!
//! Each command in an entry still gets its own position in the global order: the core
//! applies it at its *apply index*, `log_index * ENTRY_COMMANDS_MAX + position`. Apply
//! indexes grow strictly with log order, so they serve as the Enqueue order key and the
//! Offer fence exactly as a log index would (unique, increasing, identical at every site),
//! and [`log_index_of`] maps one back to the Raft log index that holds it.

use std::sync::Arc;

use lineup_core::{Applied, Command};
use serde::{Deserialize, Serialize};
use tokio::sync::{mpsc, oneshot, Semaphore};

use crate::raft_types::LineupRaftHandle;
use crate::rpc::{leader_error, Committed, LeaderError};

/// Commands in one Raft entry at most; also the stride of apply indexes.
pub const ENTRY_COMMANDS_MAX: u64 = 256;
/// Encoded commands gathered into one entry stop once they reach this many bytes (the last
/// command may carry an entry up to this plus one command).
pub const ENTRY_GATHER_BYTES: usize = 32 * 1024;
/// Commands waiting for a batch before submitters wait for room.
pub const PROPOSAL_QUEUE_COMMANDS_MAX: usize = 4_096;
/// Batches proposed to Raft and not yet committed, at most.
pub const BATCHES_IN_FLIGHT_MAX: usize = 8;

/// The Raft log entry payload: commands applied in order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CommandBatch {
    pub commands: Vec<Command>,
}

/// The apply index of the command at `position` in the entry at `log_index`.
pub fn apply_index(log_index: u64, position: usize) -> u64 {
    log_index * ENTRY_COMMANDS_MAX + position as u64
}

/// The Raft log index of the entry holding the command with this apply index (an offer's
/// fence, an Enqueue's order key).
pub fn log_index_of(apply_index: u64) -> u64 {
    apply_index / ENTRY_COMMANDS_MAX
}

struct Proposal {
    command: Command,
    size_bytes: usize,
    reply: oneshot::Sender<Result<Committed, LeaderError>>,
}

/// Gathers commands into batches and proposes them through this node's Raft.
#[derive(Clone)]
pub(crate) struct Proposer {
    queue: mpsc::Sender<Proposal>,
}

impl Proposer {
    pub(crate) fn start(raft: LineupRaftHandle) -> (Self, tokio::task::JoinHandle<()>) {
        let (queue, proposals) = mpsc::channel(PROPOSAL_QUEUE_COMMANDS_MAX);
        let task = tokio::spawn(run_proposer(raft, proposals));
        (Self { queue }, task)
    }

    /// Proposes `command` (of `size_bytes` encoded) and waits for its commit and apply.
    pub(crate) async fn propose(&self, command: Command, size_bytes: usize) -> Result<Committed, LeaderError> {
        let (reply, answer) = oneshot::channel();
        let proposal = Proposal { command, size_bytes, reply };
        if self.queue.send(proposal).await.is_err() {
            return Err(LeaderError::Failed("the node is stopping".into()));
        }
        answer.await.unwrap_or_else(|_| Err(LeaderError::Failed("the proposal was dropped".into())))
    }
}

async fn run_proposer(raft: LineupRaftHandle, mut proposals: mpsc::Receiver<Proposal>) {
    let in_flight = Arc::new(Semaphore::new(BATCHES_IN_FLIGHT_MAX));
    while let Some(first) = proposals.recv().await {
        let mut gathered_bytes = first.size_bytes;
        let mut batch = vec![first];
        while (batch.len() as u64) < ENTRY_COMMANDS_MAX && gathered_bytes < ENTRY_GATHER_BYTES {
            match proposals.try_recv() {
                Ok(next) => {
                    gathered_bytes += next.size_bytes;
                    batch.push(next);
                }
                Err(_) => break,
            }
        }
        let Ok(permit) = in_flight.clone().acquire_owned().await else { return };
        let raft = raft.clone();
        tokio::spawn(async move {
            commit_batch(&raft, batch).await;
            drop(permit);
        });
    }
}

async fn commit_batch(raft: &LineupRaftHandle, batch: Vec<Proposal>) {
    let commands = CommandBatch { commands: batch.iter().map(|p| p.command.clone()).collect() };
    let answers: Vec<Result<Committed, LeaderError>> = match raft.client_write(commands).await {
        Ok(response) => {
            let log_index = response.log_id.index;
            let applied: Vec<Applied> = response.data.unwrap_or_default();
            if applied.len() != batch.len() {
                let e = LeaderError::Failed(format!("{} results for {} commands", applied.len(), batch.len()));
                batch.iter().map(|_| Err(e.clone())).collect()
            } else {
                applied
                    .into_iter()
                    .enumerate()
                    .map(|(position, applied)| Ok(Committed::from_applied(apply_index(log_index, position), applied)))
                    .collect()
            }
        }
        Err(e) => {
            let e = leader_error(e);
            batch.iter().map(|_| Err(e.clone())).collect()
        }
    };
    for (proposal, answer) in batch.into_iter().zip(answers) {
        // The submitter may have given up (timeout); it resolves its outcome by read-back.
        let _ = proposal.reply.send(answer);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn apply_indexes_grow_with_log_order_and_map_back() {
        assert!(apply_index(7, ENTRY_COMMANDS_MAX as usize - 1) < apply_index(8, 0));
        assert!(apply_index(7, 0) < apply_index(7, 1));
        assert_eq!(log_index_of(apply_index(7, 5)), 7);
        assert_eq!(log_index_of(apply_index(8, 0)), 8);
    }
}
