//! Proposals to the cluster: a fresh command id each, ends of a connection parked behind
//! the connection itself, retries under the same id, and refused reports.

use super::output::{Pending, Purpose};
use super::SiteController;
use crate::io::Action;
use lineup_core::{Command, CommandBody, CommandId};

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
        self.pending
            .insert(token, Pending::Proposal { command: command.clone(), purpose, attempts: 0, retry_at_ms: None });
        self.out.push(Action::Propose { token, command });
    }

    pub(super) fn report(&mut self, body: CommandBody) {
        self.propose(body, Purpose::Report);
    }
}
