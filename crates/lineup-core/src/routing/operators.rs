//! Operator commands: log in and out, break and available, and pull a call.

use super::refusals::{invalid, validate_channel_field, validate_login_channel};
use super::{CommandResult, Response, Routing};
use crate::command::RequestedState;
use crate::config::{validate_text, OperatorMode};
use crate::effect::{OperatorStatus, QueueLogVerb};
use crate::ids::{CallId, OperatorId, SiteId};
use crate::model::LoginChannel;
use crate::CoreError;

impl Routing {
    /// `login` is the phone call the operator logged in from (a PIN login), if any.
    pub(super) fn login(
        &mut self,
        id: &OperatorId,
        site: SiteId,
        channel: &Option<String>,
        login: Option<&LoginChannel>,
    ) -> CommandResult {
        let op = self.state.operators.get(id).ok_or_else(|| CoreError::UnknownOperator(id.clone()))?;
        if self.state.lost_sites.contains(&site) {
            return Err(CoreError::SiteDown(site));
        }
        if let Some(ch) = channel {
            validate_channel_field("channel", ch)?;
        }
        if let Some(login) = login {
            validate_login_channel(login)?;
        }
        if op.config.mode == OperatorMode::Persistent && channel.is_none() {
            return Err(CoreError::InvalidField {
                field: "channel".into(),
                reason: "a persistent operator logs in with the channel that stays on the line".into(),
            });
        }
        let now = self.state.now_ms;
        match &op.status {
            OperatorStatus::Offline => {}
            OperatorStatus::Offered { .. } | OperatorStatus::Busy { .. } => {
                return Err(invalid("operator is on a call", id.to_string()));
            }
            _ => {
                // Logging in again (new holding channel after a reconnect): keep the state.
                self.with_operator(id, |op| {
                    op.site = Some(site);
                    op.channel = channel.clone();
                });
                if let Some(login) = login {
                    self.state.phone_logins.calls.insert(id.clone(), login.clone());
                }
                self.forget_pin_failures(id);
                return Ok(Response::Done);
            }
        }
        self.with_operator(id, |op| {
            op.status = OperatorStatus::Available;
            op.site = Some(site);
            op.channel = channel.clone();
            op.since_ms = now;
            op.idle_since_ms = now;
            op.logged_in_at_ms = now;
            op.misses = 0;
            op.wake_ms = None;
            op.after_call = None;
        });
        self.forget_pin_failures(id);
        self.log_agent_login(id, channel, login);
        for q in self.state.operators[id].config.memberships.keys().cloned().collect::<Vec<_>>() {
            self.log(None, Some(q), None, Some(id.clone()), QueueLogVerb::AddMember, vec![String::new()]);
        }
        self.scratch.dirty_operators.insert(id.clone());
        Ok(Response::Done)
    }

    /// AGENTLOGIN as app_agent_pool writes it (the login call's unique id and channel name),
    /// or with the device when the login came from no phone call.
    fn log_agent_login(&mut self, id: &OperatorId, channel: &Option<String>, login: Option<&LoginChannel>) {
        match login {
            Some(login) => {
                self.state.phone_logins.calls.insert(id.clone(), login.clone());
                let (uniqueid, name) = (CallId::new(&login.uniqueid), login.name.clone());
                self.log(Some(uniqueid), None, None, Some(id.clone()), QueueLogVerb::AgentLogin, vec![name]);
            }
            None => {
                self.state.phone_logins.calls.remove(id);
                let op = &self.state.operators[id];
                let device = channel.clone().unwrap_or_else(|| op.config.endpoint.clone().unwrap_or_default());
                self.log(None, None, None, Some(id.clone()), QueueLogVerb::AgentLogin, vec![device]);
            }
        }
    }

    /// What `logout` refuses, decided without changing anything.
    pub(super) fn check_logout(&self, id: &OperatorId) -> Result<(), CoreError> {
        let op = self.state.operators.get(id).ok_or_else(|| CoreError::UnknownOperator(id.clone()))?;
        match op.status {
            OperatorStatus::Offline => Err(CoreError::OperatorNotLoggedIn(id.clone())),
            _ => Ok(()),
        }
    }

    pub(super) fn logout(&mut self, id: &OperatorId) -> CommandResult {
        self.check_logout(id)?;
        let op = &self.state.operators[id];
        match &op.status {
            OperatorStatus::Offline => Err(CoreError::OperatorNotLoggedIn(id.clone())),
            OperatorStatus::Busy { .. } => {
                self.with_operator(id, |op| op.after_call = Some(RequestedState::Offline));
                Ok(Response::AfterCurrentCall)
            }
            OperatorStatus::Offered { call, .. } => {
                let call_number = self.call_number_of(call)?;
                self.cancel_offer(call_number);
                self.return_to_queue(call_number);
                self.go_offline(id);
                Ok(Response::Done)
            }
            _ => {
                self.go_offline(id);
                Ok(Response::Done)
            }
        }
    }

    /// What `operator_state` refuses, decided without changing anything.
    pub(super) fn check_operator_state(&self, id: &OperatorId, requested: &RequestedState) -> Result<(), CoreError> {
        let op = self.state.operators.get(id).ok_or_else(|| CoreError::UnknownOperator(id.clone()))?;
        if let RequestedState::Break { reason } = requested {
            validate_text("reason", reason)?;
        }
        match (&op.status, requested) {
            (_, RequestedState::Offline) => self.check_logout(id),
            (OperatorStatus::Offline, _) => Err(CoreError::OperatorNotLoggedIn(id.clone())),
            (OperatorStatus::Offered { .. }, RequestedState::Available) => {
                Err(invalid("operator has an offer in progress", id.to_string()))
            }
            _ => Ok(()),
        }
    }

    pub(super) fn operator_state(&mut self, id: &OperatorId, requested: &RequestedState) -> CommandResult {
        self.check_operator_state(id, requested)?;
        if matches!(requested, RequestedState::Offline) {
            return self.logout(id);
        }
        let status = self.state.operators[id].status.clone();
        match (status, requested) {
            (OperatorStatus::Offline, _) => Err(CoreError::OperatorNotLoggedIn(id.clone())),
            (OperatorStatus::Busy { .. }, RequestedState::Available) => {
                self.with_operator(id, |op| op.after_call = None);
                Ok(Response::Done)
            }
            (OperatorStatus::Busy { .. }, other) => {
                let other = other.clone();
                self.with_operator(id, |op| op.after_call = Some(other));
                Ok(Response::AfterCurrentCall)
            }
            (OperatorStatus::Offered { .. }, RequestedState::Available) => {
                Err(invalid("operator has an offer in progress", id.to_string()))
            }
            (OperatorStatus::Offered { call, .. }, RequestedState::Break { reason }) => {
                let call_number = self.call_number_of(&call)?;
                self.cancel_offer(call_number);
                self.return_to_queue(call_number);
                self.go_break(id, reason);
                Ok(Response::Done)
            }
            (OperatorStatus::Break { .. }, RequestedState::Available)
            | (OperatorStatus::WrapUp { .. }, RequestedState::Available)
            | (OperatorStatus::Available, RequestedState::Available) => {
                self.go_available(id, true);
                Ok(Response::Done)
            }
            (_, RequestedState::Break { reason }) => {
                self.go_break(id, reason);
                Ok(Response::Done)
            }
            (_, RequestedState::Offline) => unreachable!("handled above"),
        }
    }

    pub(super) fn pull(&mut self, index: u64, id: &OperatorId, named: Option<&CallId>) -> CommandResult {
        let call_number = self.check_pull(id, named)?;
        // Pulling is explicit: a rest after a missed offer does not stop it.
        self.with_operator(id, |op| op.wake_ms = None);
        self.make_offer(call_number, id);
        // Where acted on: the call was checked pullable, so the offer was made under this fence.
        debug_assert_eq!(self.state.calls[&call_number].offer_fence(), Some(index));
        Ok(Response::Pulled { call: self.state.calls[&call_number].id.clone(), fence: index })
    }

    /// What `pull` refuses, decided without changing anything; else the call to offer.
    pub(super) fn check_pull(&self, id: &OperatorId, named: Option<&CallId>) -> Result<u64, CoreError> {
        let op = self.state.operators.get(id).ok_or_else(|| CoreError::UnknownOperator(id.clone()))?;
        if !matches!(op.status, OperatorStatus::Available) {
            return Err(invalid("only an available operator can pull a call", id.to_string()));
        }
        let call_number = match named {
            Some(call_id) => {
                let call_number = self.call_number_of(call_id)?;
                self.check_may_take(op, call_number, call_id)?;
                call_number
            }
            None => self.best_call_for(op, true).ok_or_else(|| CoreError::NothingToPull(id.clone()))?,
        };
        Ok(call_number)
    }

    /// Whether `op` may take this waiting call by `Pull`, its own state aside: a member of
    /// the call's queue, eligible by skills and callback delay, the queue not capped.
    fn check_may_take(&self, op: &crate::model::Operator, call_number: u64, call_id: &CallId) -> Result<(), CoreError> {
        let call = &self.state.calls[&call_number];
        if !call.is_waiting() {
            return Err(invalid("call is not waiting", call_id.to_string()));
        }
        let penalty = op
            .config
            .memberships
            .get(&call.queue)
            .ok_or_else(|| invalid("operator is not a member of the call's queue", call.queue.to_string()))?;
        if self.is_capped(&call.queue) || !self.eligible(op, *penalty, call, false) {
            return Err(invalid("operator cannot take this call (skills, cap or callback delay)", call_id.to_string()));
        }
        Ok(())
    }

    /// The waiting calls this operator may take by `Pull` (as `Pull` names them: its own
    /// state aside), at most `max`, in the global serving order; empty for an unknown operator.
    pub fn pullable_calls(&self, id: &OperatorId, max: usize) -> Vec<CallId> {
        let Some(op) = self.state.operators.get(id) else { return Vec::new() };
        self.waiting_calls()
            .into_iter()
            .filter(|w| {
                self.indexes.call_numbers.get(&w.call).is_some_and(|&n| self.check_may_take(op, n, &w.call).is_ok())
            })
            .take(max)
            .map(|w| w.call)
            .collect()
    }
}
