//! After a restart: the callers of this site that the cluster has in line, offered or
//! connected, and that this process does not track.

use super::legs::{channel, CallerLeg, CallerState, ExecKind, OfferExec, OfferStage};
use super::output::Purpose;
use super::SiteController;
use crate::io::AriRequest;
use lineup_ari::{BridgeId, ChannelId};
use lineup_core::{CallId, CallStatus, CallView, CommandBody, HungUpBy, OperatorId, OperatorMode, Routing};
use std::collections::BTreeMap;

impl SiteController {
    /// Adopts every committed caller of this site whose channel is still in Stasis, and
    /// reports the end of those whose channel left while we were away. Only a channel still
    /// in Stasis is ours: one sent back to the dialplan has left the queue as surely as one
    /// that hung up.
    pub(super) fn adopt_callers(
        &mut self,
        live: &BTreeMap<ChannelId, lineup_ari::Channel>,
        bridged: &BTreeMap<BridgeId, Vec<ChannelId>>,
        routing: &Routing,
    ) {
        let calls: Vec<CallView> = routing.calls().filter(|v| v.entry_site == self.cfg.site).collect();
        for view in calls {
            let Some(ch) = routing.call_channel(&view.call).and_then(channel) else { continue };
            if self.callers.contains_key(&ch) {
                continue;
            }
            if live.get(&ch).is_none_or(|c| c.dialplan.app_name != "Stasis") {
                // Its end already reported here (the operator hung up, then the caller left
                // in the dialplan) and not committed yet: that report is the true one.
                if !self.end_report_pending(&view.call) {
                    self.report_caller_left(&view);
                }
                continue;
            }
            self.adopt_caller(&view, ch, live, bridged, routing);
        }
    }

    /// The caller left while we were away.
    fn report_caller_left(&mut self, view: &CallView) {
        let body = match (view.status, view.fence) {
            (CallStatus::Connected, Some(fence)) => {
                CommandBody::Completed { call: view.call.clone(), fence, by: HungUpBy::Caller }
            }
            _ => CommandBody::Abandoned { call: view.call.clone() },
        };
        self.report(body);
    }

    /// Tracks a live caller again, in the state its call bridge shows, and finishes what
    /// happened while we were away.
    fn adopt_caller(
        &mut self,
        view: &CallView,
        ch: ChannelId,
        live: &BTreeMap<ChannelId, lineup_ari::Channel>,
        bridged: &BTreeMap<BridgeId, Vec<ChannelId>>,
        routing: &Routing,
    ) {
        self.counters.channels_adopted += 1;
        // The run that queued the caller may have stopped before it could mark the channel.
        self.ari(AriRequest::MarkQueued(ch.clone()));
        if let (Some(fence), Some(operator)) = (view.fence, view.operator.as_ref()) {
            self.fence_settled_by_reconcile(&view.call, operator, fence);
        }
        let bridge = view.fence.and_then(|f| BridgeId::new(self.offer_leg_id("call", &view.call, f)).ok());
        let members = bridge.as_ref().and_then(|b| bridged.get(b));
        let in_bridge = members.is_some_and(|m| m.contains(&ch) && m.len() >= 2);
        // Out of a call bridge the other party is still in: only the caller's own hangup does
        // that (the operator's ends leave the caller in it), under way as the channels were
        // read and done by the time the bridges were.
        let hanging_up =
            view.status == CallStatus::Connected && members.is_some_and(|m| !m.contains(&ch) && !m.is_empty());
        let state = match (view.status, view.fence) {
            (CallStatus::Connected, Some(fence)) if hanging_up => CallerState::Connected { fence },
            (CallStatus::Connected, Some(_)) if !in_bridge => CallerState::Leaving,
            (CallStatus::Connected, Some(fence)) => CallerState::Connected { fence },
            // Both legs are in: connected, as on ChannelEnteredBridge (Connected proposed below).
            (CallStatus::Offered, Some(fence)) if in_bridge => CallerState::Connected { fence },
            _ => CallerState::Waiting,
        };
        self.callers.insert(ch.clone(), CallerLeg::new(view.call.clone(), String::new(), state));
        self.call_channels.insert(view.call.clone(), ch.clone());
        if in_bridge || hanging_up {
            if let (Some(fence), Some(operator), Some(bridge)) = (view.fence, view.operator.clone(), bridge.clone()) {
                self.adopt_call_bridge(&view.call, &operator, fence, &ch, bridge, bridged, routing);
            }
        }
        match (view.status, view.fence, view.operator.clone()) {
            // Ended as on the caller's hangup event: completed by the caller, the operator
            // freed. The caller's own end events, still to come, then only forget it.
            (CallStatus::Connected, Some(_), _) if hanging_up => self.caller_gone(&ch),
            (CallStatus::Connected, Some(fence), _) if !in_bridge => {
                self.complete_call_ended_meanwhile(&view.call, fence, &ch, bridge, bridged)
            }
            (CallStatus::Offered, Some(fence), Some(operator)) if in_bridge => {
                // The bridge came up while we were away: report it.
                self.propose(
                    CommandBody::Connected { call: view.call.clone(), operator, fence },
                    Purpose::Connected { call: view.call.clone(), fence },
                );
            }
            (CallStatus::Offered, Some(fence), Some(operator)) => {
                self.take_down_half_built_offer(&view.call, &operator, fence, &ch, live, bridged, routing);
            }
            (CallStatus::Waiting, _, _) => self.start_moh(&ch),
            _ => {}
        }
    }

    /// The operator's side ended while we were away (Asterisk keeps the bridge): the call is
    /// completed and the caller sent on in the dialplan.
    fn complete_call_ended_meanwhile(
        &mut self,
        call: &CallId,
        fence: u64,
        ch: &ChannelId,
        bridge: Option<BridgeId>,
        bridged: &BTreeMap<BridgeId, Vec<ChannelId>>,
    ) {
        self.report(CommandBody::Completed { call: call.clone(), fence, by: HungUpBy::Operator });
        if let Some(b) = bridge.filter(|b| bridged.contains_key(b)) {
            if bridged[&b].contains(ch) {
                self.ari(AriRequest::RemoveChannels { bridge: b.clone(), channels: vec![ch.clone()] });
            }
            self.ari(AriRequest::DestroyBridge(b));
        }
        self.continue_with(ch, "COMPLETED", vec![]);
    }

    /// After a restart: a caller found in its call bridge with the other party. Rebuilds the
    /// offer's execution as connected, so either side's hangup ends it as if this process had
    /// built it (operator back to holding, bridge taken down, ring or trunk leg hung up).
    #[allow(clippy::too_many_arguments)]
    fn adopt_call_bridge(
        &mut self,
        call: &CallId,
        operator: &OperatorId,
        fence: u64,
        caller: &ChannelId,
        bridge: BridgeId,
        bridged: &BTreeMap<BridgeId, Vec<ChannelId>>,
        routing: &Routing,
    ) {
        let Some(other) = bridged.get(&bridge).and_then(|m| m.iter().find(|c| *c != caller)).cloned() else { return };
        let operator_here = routing.operator_view(operator).and_then(|v| v.site) == Some(self.cfg.site);
        let (kind, mode) = match routing.operator_config(operator).map(|c| c.mode) {
            Some(mode) if operator_here => (ExecKind::Local, mode),
            // The other party is the trunk call to the operator's site.
            _ => (ExecKind::TrunkOut, OperatorMode::Ring),
        };
        match mode {
            OperatorMode::Ring => {
                self.ring_legs.insert(other.clone(), (call.clone(), fence));
            }
            OperatorMode::Persistent => {
                if let Some(leg) = self.operators.get_mut(operator) {
                    leg.busy_with = Some(fence);
                }
            }
        }
        self.offers.insert(
            (call.clone(), fence),
            OfferExec {
                kind,
                call: call.clone(),
                operator: operator.clone(),
                fence,
                caller_channel: caller.clone(),
                operator_channel: other,
                mode,
                bridge,
                stage: OfferStage::Connected,
                caller_in: true,
                operator_in: true,
                whisper: None,
                whisper_playback: None,
            },
        );
    }
}
