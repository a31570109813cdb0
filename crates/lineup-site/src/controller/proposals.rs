//! Proposals to the cluster: a fresh command id each, ends of a connection parked behind
//! the connection itself, retries under the same id, and refused reports.

use super::config::{PROPOSE_RETRIES_MAX, PROPOSE_RETRY_DELAY_MS};
use super::output::{Pending, Purpose};
use super::SiteController;
use crate::io::{Action, ProposeFailure};
use lineup_core::{CallId, Command, CommandBody, CommandId, CommandResult, CoreError, HungUpBy};

/// `InvalidState::what` of a proposal that never committed after its retries.
pub(super) const NOT_COMMITTED: &str = "not committed";

/// Whether a proposal's result says it never committed (no quorum through its retries),
/// rather than that the core refused it.
pub(super) fn never_committed<T>(result: &Result<T, CoreError>) -> bool {
    matches!(result, Err(CoreError::InvalidState { what, .. }) if what == NOT_COMMITTED)
}

impl SiteController {
    pub(super) fn propose(&mut self, body: CommandBody, purpose: Purpose) {
        // The end of a connection must commit after the connection itself: the core refuses
        // a Completed whose Connected/CallbackResult is still on its way (a slow quorum),
        // and nothing would send it again. Park it until that proposal has its result.
        if let CommandBody::Completed { call, fence, .. } | CommandBody::Transferred { call, fence, .. } = &body {
            let blocker = self.pending.iter().find_map(|(token, p)| match p {
                Pending::Proposal { command, .. } => match &command.body {
                    CommandBody::Connected { call: c, fence: f, .. }
                    | CommandBody::CallbackResult { call: c, fence: f, answered: true, .. }
                        if c == call && f == fence =>
                    {
                        Some(*token)
                    }
                    _ => None,
                },
                _ => None,
            });
            if let Some(token) = blocker {
                self.parked.entry(token).or_default().push((body, purpose));
                return;
            }
        }
        let command =
            Command { id: CommandId { origin: self.cfg.origin, serial: self.next_serial }, at_ms: self.now_ms, body };
        self.next_serial += 1;
        let token = self.token();
        debug_assert!(!self.pending.contains_key(&token), "token {token} reused");
        self.pending
            .insert(token, Pending::Proposal { command: command.clone(), purpose, attempts: 0, retry_at_ms: None });
        self.out.push(Action::Propose { token, command });
    }

    pub(super) fn report(&mut self, body: CommandBody) {
        self.propose(body, Purpose::Report);
    }

    /// Whether this site has reported how `call` ended (completed, transferred, abandoned)
    /// and that report has no result yet: sent, waiting to be sent again, or parked.
    pub(super) fn end_report_pending(&self, call: &CallId) -> bool {
        let ends = |body: &CommandBody| match body {
            CommandBody::Completed { call: c, .. }
            | CommandBody::Transferred { call: c, .. }
            | CommandBody::Abandoned { call: c } => c == call,
            _ => false,
        };
        let proposed =
            self.pending.values().any(|p| matches!(p, Pending::Proposal { command, .. } if ends(&command.body)));
        proposed || self.parked.values().flatten().any(|(body, _)| ends(body))
    }

    /// A proposal's outcome. One that definitely did not commit is scheduled again under the
    /// same command id (`None`: nothing to act on yet) until `PROPOSE_RETRIES_MAX`; otherwise
    /// the proposals parked behind it go out, and the command, its purpose and its result are
    /// handed back to act on.
    pub(super) fn settle_proposal(
        &mut self,
        token: u64,
        result: Result<CommandResult, ProposeFailure>,
    ) -> Option<(Command, Purpose, CommandResult)> {
        let Some(Pending::Proposal { command, purpose, attempts, .. }) = self.pending.remove(&token) else {
            return None;
        };
        debug_assert!(attempts <= PROPOSE_RETRIES_MAX);
        if !matches!(result, Err(ProposeFailure::NotCommitted(_)) if attempts < PROPOSE_RETRIES_MAX) {
            for (body, purpose) in self.parked.remove(&token).unwrap_or_default() {
                self.propose(body, purpose);
            }
        }
        let result = match result {
            Ok(r) => r,
            Err(ProposeFailure::NotCommitted(_)) if attempts < PROPOSE_RETRIES_MAX => {
                self.counters.proposals_retried += 1;
                self.pending.insert(
                    token,
                    Pending::Proposal {
                        command,
                        purpose,
                        attempts: attempts + 1,
                        retry_at_ms: Some(self.now_ms + PROPOSE_RETRY_DELAY_MS),
                    },
                );
                return None;
            }
            Err(ProposeFailure::NotCommitted(reason)) => {
                Err(CoreError::InvalidState { what: NOT_COMMITTED.into(), detail: reason })
            }
        };
        Some((command, purpose, result))
    }

    /// Proposals whose retry is due go out again, same token, same command.
    pub(super) fn resend_due_proposals(&mut self) {
        let now = self.now_ms;
        let due: Vec<u64> = self
            .pending
            .iter()
            .filter_map(|(t, p)| match p {
                Pending::Proposal { retry_at_ms: Some(at), .. } if *at <= now => Some(*t),
                _ => None,
            })
            .collect();
        for token in due {
            if let Some(Pending::Proposal { command, retry_at_ms, .. }) = self.pending.get_mut(&token) {
                *retry_at_ms = None;
                let command = command.clone();
                self.out.push(Action::Propose { token, command });
            }
        }
    }

    /// The caller is gone, but the core moved the call on to another offer (the Connected
    /// came too late): say the caller left, or the call waits forever.
    pub(super) fn on_report_result(&mut self, command: &Command, result: &CommandResult) {
        if let (CommandBody::Completed { call, by: HungUpBy::Caller, .. }, Err(CoreError::StaleFence { .. })) =
            (&command.body, result)
        {
            self.report(CommandBody::Abandoned { call: call.clone() });
        }
    }
}
