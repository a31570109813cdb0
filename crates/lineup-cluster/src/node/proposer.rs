//! The leader's proposer: gathers the commands waiting to be proposed into one
//! [`CommandBatch`] entry per Raft write and hands each submitter its own result.

use std::sync::Arc;

use lineup_core::{Applied, Command};
use tokio::sync::{mpsc, oneshot, Semaphore};

use crate::batch::{
    apply_index, CommandBatch, BATCHES_IN_FLIGHT_MAX, ENTRY_COMMANDS_MAX, ENTRY_GATHER_BYTES,
    PROPOSAL_QUEUE_COMMANDS_MAX,
};
use crate::raft_types::LineupRaftHandle;
use crate::rpc::{leader_error, Committed, LeaderError};

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
