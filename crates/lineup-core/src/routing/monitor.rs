//! `MonitorCall`: a supervisor's request to monitor a connected call. Checked here, carried
//! out by the sites (`Effect::Monitor`); nothing in the routing state changes.

use super::refusals::invalid;
use crate::effect::Effect;
use crate::ids::{CallId, SiteId};
use crate::model::CallState;
use crate::monitor::{validate_monitor_endpoint, MonitorMode, MonitorOrder};
use crate::{CommandResult, CoreError, Response, Routing};

impl Routing {
    /// The order a `MonitorCall` gives, without its session: a connected call, a valid
    /// endpoint, and a supervisor's site that can be reached.
    pub(super) fn check_monitor_call(
        &self,
        call: &CallId,
        mode: MonitorMode,
        endpoint: &str,
        supervisor_site: SiteId,
    ) -> Result<MonitorOrder, CoreError> {
        validate_monitor_endpoint(endpoint)?;
        let call_number = self.call_number_of(call)?;
        let CallState::Connected { operator, fence, operator_site, .. } = &self.state.calls[&call_number].state else {
            return Err(invalid("only a connected call can be monitored", call.to_string()));
        };
        if self.is_site_unreachable(*operator_site) {
            return Err(CoreError::SiteUnreachable(*operator_site));
        }
        self.check_site_can_act(supervisor_site)?;
        Ok(MonitorOrder {
            session: 0,
            call: call.clone(),
            operator: operator.clone(),
            fence: *fence,
            operator_site: *operator_site,
            supervisor_site,
            mode,
            endpoint: endpoint.to_string(),
        })
    }

    pub(super) fn monitor_call(
        &mut self,
        index: u64,
        call: &CallId,
        mode: MonitorMode,
        endpoint: &str,
        supervisor_site: SiteId,
    ) -> CommandResult {
        let order = self.check_monitor_call(call, mode, endpoint, supervisor_site)?;
        self.scratch.out.push(Effect::Monitor(MonitorOrder { session: index, ..order }));
        Ok(Response::Done)
    }
}
