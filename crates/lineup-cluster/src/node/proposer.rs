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
    apply_index, gathered_commands_max, CommandBatch, BATCHES_IN_FLIGHT_MAX, ENTRY_COMMANDS_MAX, ENTRY_GATHER_BYTES,
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
        let voters = metrics.borrow().membership_config.membership().voter_ids().count();
        let batch = gather(first, &mut proposals, gathered_commands_max(voters));
        let Ok(permit) = in_flight.clone().acquire_owned().await else { return };
        append_batch(&raft, &lease, &mut log_end, batch, permit).await;
    }
}

/// `first` and whatever else waits, up to `commands_max` and an entry's byte bound.
fn gather(first: Proposal, proposals: &mut mpsc::Receiver<Proposal>, commands_max: usize) -> Vec<Proposal> {
    let mut gathered_bytes = first.size_bytes;
    let mut batch = vec![first];
    while batch.len() < commands_max && gathered_bytes < ENTRY_GATHER_BYTES {
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
    let mut shaped = match lease.shape(raft, log_end, &commands).await {
        Some(shaped) => shaped,
        // Not the leader: Raft's core refuses the write and names the leader.
        None => Shaped { commands, prepended: 0, held_back: Vec::new(), checked_at: tokio::time::Instant::now() },
    };
    let (mut kept, held_back) = split_held_back(batch, &shaped.held_back);
    for proposal in trim_to_entry(&mut shaped.commands, &mut kept) {
        let _ = proposal.reply.send(Err(LeaderError::Failed("not committed: the entry was full (retry)".into())));
    }
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

/// Cuts the entry back to [`ENTRY_COMMANDS_MAX`] commands, taking the excess from the end of
/// `kept` (whose commands end `commands`), and returns those proposals. The gather leaves
/// room for what the lease prepends; this holds if the membership grew in between.
fn trim_to_entry(commands: &mut Vec<Command>, kept: &mut Vec<Proposal>) -> Vec<Proposal> {
    let excess = commands.len().saturating_sub(ENTRY_COMMANDS_MAX as usize).min(kept.len());
    commands.truncate(commands.len() - excess);
    let trimmed = kept.split_off(kept.len() - excess);
    debug_assert!(commands.len() as u64 <= ENTRY_COMMANDS_MAX, "an entry beyond its apply indexes");
    trimmed
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

#[cfg(test)]
mod tests {
    use super::*;
    use lineup_core::{CommandBody, CommandId, SiteId};

    fn proposal(serial: u64) -> (Proposal, oneshot::Receiver<Result<Committed, LeaderError>>) {
        let (reply, answer) = oneshot::channel();
        let command = Command { id: CommandId { origin: 1, serial }, at_ms: 0, body: CommandBody::Tick { now_ms: 0 } };
        (Proposal { command, size_bytes: 16, reply }, answer)
    }

    #[test]
    fn a_gather_takes_at_most_its_bound_and_leaves_the_rest_waiting() {
        let (queue, mut proposals) = mpsc::channel(PROPOSAL_QUEUE_COMMANDS_MAX);
        let mut answers = Vec::new();
        for serial in 1..=300 {
            let (p, answer) = proposal(serial);
            assert!(queue.try_send(p).is_ok(), "room for {serial}");
            answers.push(answer);
        }
        let first = proposals.try_recv().unwrap();
        let batch = gather(first, &mut proposals, gathered_commands_max(3));
        assert_eq!(batch.len(), 253);
        assert_eq!(batch.last().map(|p| p.command.id.serial), Some(253));
        assert_eq!(proposals.len(), 47, "the rest wait for the next entry");
    }

    #[test]
    fn an_entry_past_its_apply_indexes_is_cut_back_and_the_cut_proposals_answered() {
        let unreachable = |site| Command {
            id: CommandId { origin: 9, serial: site },
            at_ms: 0,
            body: CommandBody::SiteUnreachable { site: SiteId(site) },
        };
        let (mut kept, _answers): (Vec<_>, Vec<_>) = (1..=ENTRY_COMMANDS_MAX).map(proposal).unzip();
        let mut commands: Vec<Command> = vec![unreachable(2), unreachable(3)];
        commands.extend(kept.iter().map(|p| p.command.clone()));
        let cut = trim_to_entry(&mut commands, &mut kept);
        assert_eq!(commands.len() as u64, ENTRY_COMMANDS_MAX);
        assert_eq!(kept.len() as u64, ENTRY_COMMANDS_MAX - 2);
        assert_eq!(cut.iter().map(|p| p.command.id.serial).collect::<Vec<_>>(), [255, 256]);
        assert_eq!(commands.last().map(|c| c.id.serial), Some(254), "the entry ends where kept ends");
    }
}
