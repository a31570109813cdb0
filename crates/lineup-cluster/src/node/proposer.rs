//! The leader's proposer: gathers the commands waiting to be proposed into one
//! [`CommandBatch`] entry per Raft write, applies the lease to it (`lease_guard.rs`) and
//! hands each submitter its own result.
//!
//! Batches are checked and handed to Raft's core one at a time, in order, so the order of
//! the lease checks is the order of the appends and the proposer's record of the end of the
//! log ([`LogEnd`]) stays true; only the waits for commit run side by side.
//!
//! Check to append: the lease is checked after every wait of the proposer (gathering, the
//! in-flight bound, a new leader's acquire wait), directly before the entry is queued to
//! Raft's core. What follows (the core's queue and its append) is inside openraft 0.9 and
//! offers no hook to check again, and an entry once queued cannot be taken back; a hand-over
//! longer than [`LEASE_CHECK_TO_APPEND_MAX_MS`] is therefore only reported, and the rest is
//! what §1.4's `pause_margin_ms` budgets for.

use std::sync::Arc;
use std::time::Duration;

use lineup_core::{Applied, Command};
use tokio::sync::{mpsc, oneshot, OwnedSemaphorePermit, Semaphore};

use super::lease::LEASE_CHECK_TO_APPEND_MAX_MS;
use super::lease_guard::{LeaseGuard, LogEnd, Shaped};
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
    pub(crate) fn start(raft: LineupRaftHandle, lease: LeaseGuard) -> (Self, tokio::task::JoinHandle<()>) {
        let (queue, proposals) = mpsc::channel(PROPOSAL_QUEUE_COMMANDS_MAX);
        let task = tokio::spawn(run_proposer(raft, lease, proposals));
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

async fn run_proposer(raft: LineupRaftHandle, lease: LeaseGuard, mut proposals: mpsc::Receiver<Proposal>) {
    let in_flight = Arc::new(Semaphore::new(BATCHES_IN_FLIGHT_MAX));
    let mut metrics = raft.metrics();
    let mut log_end = LogEnd::default();
    loop {
        // Following the metrics between batches dates a new leadership from its election,
        // not from its first batch.
        let first = tokio::select! {
            proposal = proposals.recv() => match proposal {
                Some(first) => first,
                None => return,
            },
            changed = metrics.changed() => {
                if changed.is_err() {
                    return;
                }
                log_end.observe(&metrics.borrow_and_update());
                continue;
            }
        };
        let batch = gather(first, &mut proposals);
        let Ok(permit) = in_flight.clone().acquire_owned().await else { return };
        append_batch(&raft, &lease, &mut log_end, batch, permit).await;
    }
}

/// `first` and whatever else waits, up to an entry's bounds.
fn gather(first: Proposal, proposals: &mut mpsc::Receiver<Proposal>) -> Vec<Proposal> {
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
    batch
}

/// Lease-checks `batch`, queues it to Raft's core and leaves a task to answer its
/// submitters once it commits.
async fn append_batch(
    raft: &LineupRaftHandle,
    lease: &LeaseGuard,
    log_end: &mut LogEnd,
    batch: Vec<Proposal>,
    permit: OwnedSemaphorePermit,
) {
    let commands: Vec<Command> = batch.iter().map(|p| p.command.clone()).collect();
    let shaped = match lease.shape(raft, log_end, &commands).await {
        Some(shaped) => shaped,
        // Not the leader: Raft's core refuses the write and names the leader.
        None => Shaped { commands, prepended: 0, held_back: Vec::new(), checked_at: tokio::time::Instant::now() },
    };
    let (kept, held_back) = split_held_back(batch, &shaped.held_back);
    for proposal in held_back {
        let kind = proposal.command.body.kind();
        let _ = proposal.reply.send(Err(LeaderError::Failed(format!(
            "not committed: {kind} for a site this leader holds no lease on (it retries once the site answers)"
        ))));
    }
    if shaped.commands.is_empty() {
        return;
    }
    let sent = raft.client_write_ff(CommandBatch { commands: shaped.commands }).await;
    let handed_over = shaped.checked_at.elapsed();
    if handed_over > Duration::from_millis(LEASE_CHECK_TO_APPEND_MAX_MS) {
        tracing::warn!(ms = handed_over.as_millis() as u64, "lease check to append took longer than budgeted");
    }
    let prepended = shaped.prepended;
    match sent {
        Ok(committed) => {
            tokio::spawn(async move {
                let answers = answers(committed.await, prepended, kept.len());
                reply_all(kept, answers);
                drop(permit);
            });
        }
        Err(fatal) => {
            let e = LeaderError::Failed(fatal.to_string());
            let answers = kept.iter().map(|_| Err(e.clone())).collect();
            reply_all(kept, answers);
        }
    }
}

fn split_held_back(batch: Vec<Proposal>, held_back: &[usize]) -> (Vec<Proposal>, Vec<Proposal>) {
    let (held, kept): (Vec<_>, Vec<_>) = batch.into_iter().enumerate().partition(|(i, _)| held_back.contains(i));
    (kept.into_iter().map(|(_, p)| p).collect(), held.into_iter().map(|(_, p)| p).collect())
}

type WriteResult = Result<
    openraft::raft::ClientWriteResponse<crate::raft_types::LineupRaft>,
    openraft::error::ClientWriteError<u64, openraft::BasicNode>,
>;

/// Each kept command's answer: the entry's results after the `prepended` commands.
fn answers<E: std::fmt::Display>(
    committed: Result<WriteResult, E>,
    prepended: usize,
    kept: usize,
) -> Vec<Result<Committed, LeaderError>> {
    let failed = |e: LeaderError| (0..kept).map(|_| Err(e.clone())).collect();
    let response = match committed {
        Ok(Ok(response)) => response,
        Ok(Err(e)) => return failed(leader_error(openraft::error::RaftError::APIError(e))),
        Err(e) => return failed(LeaderError::Failed(format!("raft dropped the write: {e}"))),
    };
    let log_index = response.log_id.index;
    let applied: Vec<Applied> = response.data.unwrap_or_default();
    if applied.len() != prepended + kept {
        return failed(LeaderError::Failed(format!("{} results for {} commands", applied.len(), prepended + kept)));
    }
    applied
        .into_iter()
        .enumerate()
        .skip(prepended)
        .map(|(position, applied)| Ok(Committed::from_applied(apply_index(log_index, position), applied)))
        .collect()
}

fn reply_all(batch: Vec<Proposal>, answers: Vec<Result<Committed, LeaderError>>) {
    for (proposal, answer) in batch.into_iter().zip(answers) {
        // The submitter may have given up (timeout); it resolves its outcome by read-back.
        let _ = proposal.reply.send(answer);
    }
}
