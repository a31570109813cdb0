//! The PIN lockout, replicated: every site counts an operator's wrong PINs into the same
//! state, so a guesser gains nothing by rotating sites or waiting for a node to restart.

use super::{CommandResult, Response, Routing, PIN_LOCKOUT_FAILURES_MAX, PIN_LOCKOUT_WINDOW_MS};
use crate::ids::OperatorId;
use crate::CoreError;

impl Routing {
    pub(super) fn pin_rejected(&mut self, id: &OperatorId) -> CommandResult {
        if !self.state.operators.contains_key(id) {
            return Err(CoreError::UnknownOperator(id.clone()));
        }
        let now = self.state.now_ms;
        let times = self.state.phone_logins.pin_failures.entry(id.clone()).or_default();
        times.retain(|t| t + PIN_LOCKOUT_WINDOW_MS > now);
        if times.len() == PIN_LOCKOUT_FAILURES_MAX {
            times.pop_front();
        }
        times.push_back(now);
        debug_assert!(times.len() <= PIN_LOCKOUT_FAILURES_MAX);
        self.keep_fork_pin_failure(id, now);
        Ok(Response::Done)
    }

    /// Adds wrong PINs typed on an island (at `times`, core times) to the operator's: the
    /// newest `PIN_LOCKOUT_FAILURES_MAX` of both are kept. An unknown operator has none.
    pub(super) fn merge_pin_failures(&mut self, id: &OperatorId, times: &[u64]) {
        if !self.state.operators.contains_key(id) || times.is_empty() {
            return;
        }
        let kept = self.state.phone_logins.pin_failures.entry(id.clone()).or_default();
        let mut all: Vec<u64> = kept.iter().chain(times).copied().collect();
        all.sort_unstable();
        let newest = all.len().saturating_sub(PIN_LOCKOUT_FAILURES_MAX);
        *kept = all[newest..].iter().copied().collect();
        debug_assert!(!kept.is_empty() && kept.len() <= PIN_LOCKOUT_FAILURES_MAX);
    }

    /// A login clears the operator's wrong PINs; so does removing the operator.
    pub(super) fn forget_pin_failures(&mut self, id: &OperatorId) {
        self.state.phone_logins.pin_failures.remove(id);
    }

    /// Is `operator` locked out of logging in by phone now (the core's time)? Every site
    /// asks this before checking a PIN.
    pub fn pin_locked_out(&self, operator: &OperatorId) -> bool {
        let now = self.state.now_ms;
        self.state.phone_logins.pin_failures.get(operator).is_some_and(|times| {
            times.iter().filter(|t| **t + PIN_LOCKOUT_WINDOW_MS > now).count() >= PIN_LOCKOUT_FAILURES_MAX
        })
    }
}
