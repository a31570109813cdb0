//! `HangUpCall`: a supervisor ends a caller's call (app_queue's users do it with `channel
//! request hangup`). Checked here and carried out by the caller's site (`Effect::HangUp`);
//! the routing state does not change: the site's report of the ended channel (abandoned while
//! waiting or offered, completed by the caller once connected) ends the call as any hangup
//! does, so its outcome, statistics and queue_log line are the ones a hangup always gives.

use super::refusals::invalid;
use crate::effect::Effect;
use crate::ids::{CallId, SiteId};
use crate::{CommandResult, CoreError, Response, Routing};

impl Routing {
    /// The caller's site and channel a `HangUpCall` would hang up: a caller on the line at a
    /// site that can be reached. A callback promise has no caller on the line.
    pub(super) fn check_hang_up_call(&self, id: &CallId) -> Result<(SiteId, String), CoreError> {
        let call = &self.state.calls[&self.call_number_of(id)?];
        if call.callback.is_some() {
            return Err(invalid("a callback promise has no caller on the line to hang up", id.to_string()));
        }
        let Some(channel) = call.channel.clone() else {
            return Err(invalid("the call has no caller channel to hang up", id.to_string()));
        };
        self.check_site_can_act(call.entry_site)?;
        Ok((call.entry_site, channel))
    }

    pub(super) fn hang_up_call(&mut self, id: &CallId) -> CommandResult {
        let (site, channel) = self.check_hang_up_call(id)?;
        self.scratch.out.push(Effect::HangUp { call: id.clone(), site, channel });
        Ok(Response::Done)
    }
}
