//! After a restart: callbacks committed to an operator here whose execution this process does
//! not hold.

use super::legs::{channel, ExecKind, OfferExec, OfferStage};
use super::output::Purpose;
use super::SiteController;
use crate::io::AriRequest;
use lineup_ari::{BridgeId, ChannelId, HangupReason};
use lineup_core::{
    CallId, CallStatus, CallView, CommandBody, CommandResult, CoreError, HungUpBy, OfferFailure, OperatorId,
    OperatorMode, Routing,
};
use std::collections::BTreeMap;

/// What a reconcile found of one callback served by an operator here.
struct CallbackFound {
    call: CallId,
    operator: OperatorId,
    fence: u64,
    mode: OperatorMode,
    callee: ChannelId,
    operator_leg: ChannelId,
    bridge: BridgeId,
    bridge_exists: bool,
    callee_in: bool,
    operator_in: bool,
}

impl SiteController {
    /// After a restart: the callbacks committed to an operator of this site whose execution
    /// this process does not hold. A connected callback with both parties in its bridge is
    /// adopted (either side's hangup then ends it as usual); one whose party left while we
    /// were away is completed and tidied; one still being set up cannot be resumed (its
    /// ringing legs belong to the lost process), so its legs are hung up and the offer is
    /// failed, which gives the promise its place back without spending an attempt.
    pub(super) fn adopt_callbacks(
        &mut self,
        live: &BTreeMap<ChannelId, lineup_ari::Channel>,
        bridged: &BTreeMap<BridgeId, Vec<ChannelId>>,
        routing: &Routing,
    ) {
        let callbacks: Vec<CallView> = routing
            .calls()
            .filter(|v| matches!(v.status, CallStatus::CallbackOffered | CallStatus::CallbackConnected))
            .collect();
        for view in callbacks {
            let Some(found) = self.find_callback(&view, bridged, routing) else { continue };
            self.counters.channels_adopted += 1;
            self.fence_settled_by_reconcile(&found.call, &found.operator, found.fence);
            let both_in = found.callee_in && found.operator_in;
            if view.status == CallStatus::CallbackOffered && !both_in {
                self.take_down_callback(found, live, bridged);
                continue;
            }
            self.insert_callback_exec(&found, live);
            self.finish_adopted_callback(view.status, found, live);
        }
    }

    /// The callback's legs and bridge as this site names them, if its operator is here and
    /// this process does not already execute it.
    fn find_callback(
        &self,
        view: &CallView,
        bridged: &BTreeMap<BridgeId, Vec<ChannelId>>,
        routing: &Routing,
    ) -> Option<CallbackFound> {
        let (fence, operator) = (view.fence?, view.operator.clone()?);
        let call = view.call.clone();
        if self.offers.contains_key(&(call.clone(), fence)) {
            return None;
        }
        let operator_view = routing.operator_view(&operator)?;
        if operator_view.site != Some(self.cfg.site) {
            return None;
        }
        let mode = routing.operator_config(&operator).map_or(OperatorMode::Persistent, |c| c.mode);
        let callee = channel(&self.offer_leg_id("cb", &call, fence))?;
        let bridge = BridgeId::new(self.offer_leg_id("call", &call, fence)).ok()?;
        let operator_leg = match mode {
            OperatorMode::Persistent => operator_view.channel.as_deref().and_then(channel),
            OperatorMode::Ring => channel(&self.offer_leg_id("ring", &call, fence)),
        }?;
        let members = bridged.get(&bridge);
        Some(CallbackFound {
            callee_in: members.is_some_and(|m| m.contains(&callee)),
            operator_in: members.is_some_and(|m| m.contains(&operator_leg)),
            bridge_exists: members.is_some(),
            call,
            operator,
            fence,
            mode,
            callee,
            operator_leg,
            bridge,
        })
    }

    /// Half-built: hang up what we placed, put the operator back, fail the offer.
    fn take_down_callback(
        &mut self,
        found: CallbackFound,
        live: &BTreeMap<ChannelId, lineup_ari::Channel>,
        bridged: &BTreeMap<BridgeId, Vec<ChannelId>>,
    ) {
        let CallbackFound { call, operator, fence, mode, callee, operator_leg, bridge, .. } = found;
        if live.contains_key(&callee) {
            self.ari(AriRequest::Hangup(callee, HangupReason::Normal));
        }
        if mode == OperatorMode::Ring && live.contains_key(&operator_leg) {
            self.ari(AriRequest::Hangup(operator_leg.clone(), HangupReason::Normal));
        }
        if found.bridge_exists {
            self.ari(AriRequest::DestroyBridge(bridge));
        }
        if let Some(holding) = self.operators.get(&operator).map(|leg| leg.holding.clone()) {
            let in_holding = bridged.get(&holding).is_some_and(|m| m.contains(&operator_leg));
            if mode == OperatorMode::Persistent && !in_holding && live.contains_key(&operator_leg) {
                self.return_to_holding_unless_taken(&operator, &operator_leg, fence, None);
            }
        }
        self.propose(
            CommandBody::OfferFailed { call: call.clone(), operator, fence, reason: OfferFailure::BridgeFailed },
            Purpose::CallbackTakenDown { call, fence },
        );
    }

    /// Records the execution as connected, its live legs tracked as this process would have.
    fn insert_callback_exec(&mut self, found: &CallbackFound, live: &BTreeMap<ChannelId, lineup_ari::Channel>) {
        let (call, fence) = (found.call.clone(), found.fence);
        if live.contains_key(&found.callee) {
            self.ring_legs.insert(found.callee.clone(), (call.clone(), fence));
        }
        if found.mode == OperatorMode::Ring && live.contains_key(&found.operator_leg) {
            self.ring_legs.insert(found.operator_leg.clone(), (call.clone(), fence));
        }
        if let Some(leg) = self.operators.get_mut(&found.operator) {
            leg.busy_with = Some(fence);
        }
        self.offers.insert(
            (call.clone(), fence),
            OfferExec {
                // The number is only needed to dial, and an adopted callback is never redialled.
                kind: ExecKind::Callback { number: String::new() },
                call,
                operator: found.operator.clone(),
                fence,
                caller_channel: found.callee.clone(),
                operator_channel: found.operator_leg.clone(),
                mode: found.mode,
                bridge: found.bridge.clone(),
                stage: OfferStage::Connected,
                caller_in: found.callee_in,
                operator_in: found.operator_in,
                whisper: None,
                whisper_playback: None,
            },
        );
    }

    /// Reports what happened while we were away, as the bridge or hangup events would have.
    fn finish_adopted_callback(
        &mut self,
        status: CallStatus,
        found: CallbackFound,
        live: &BTreeMap<ChannelId, lineup_ari::Channel>,
    ) {
        let CallbackFound { call, operator, fence, callee, .. } = found;
        match (status, found.callee_in && found.operator_in) {
            (CallStatus::CallbackConnected, true) => {}
            (_, true) => {
                // Connected while we were away: report it as the bridge event would have.
                self.counters.bridges_connected += 1;
                self.propose(
                    CommandBody::CallbackResult { call: call.clone(), operator, fence, answered: true },
                    Purpose::CallbackAnswered { call: call.clone(), fence },
                );
            }
            (_, false) => {
                // Connected, and a party left while we were away.
                let by = if live.contains_key(&callee) { HungUpBy::Operator } else { HungUpBy::Caller };
                self.report(CommandBody::Completed { call: call.clone(), fence, by });
                self.end_connected_offer(&call, fence, by);
            }
        }
    }

    /// The half-built callback this site took down (after a restart, its view not caught up)
    /// had in fact connected under this very offer (a refusal naming the same fence as
    /// current): its legs are gone now, so the call ends here, or the promise stays connected
    /// for ever.
    pub(super) fn on_callback_taken_down_result(&mut self, call: CallId, fence: u64, result: &CommandResult) {
        if matches!(result, Err(CoreError::StaleFence { current, .. }) if *current == Some(fence)) {
            self.report(CommandBody::Completed { call, fence, by: HungUpBy::Operator });
        }
    }
}
