//! After a restart: callbacks committed to an operator here whose execution this process does
//! not hold.

use super::legs::{channel, ExecKind, OfferExec, OfferStage};
use super::output::Purpose;
use super::SiteController;
use crate::io::AriRequest;
use lineup_ari::{BridgeId, ChannelId, HangupReason};
use lineup_core::{CommandBody, HungUpBy, OfferFailure, OperatorMode, Routing};
use std::collections::BTreeMap;

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
        use lineup_core::CallStatus;
        let callbacks: Vec<lineup_core::CallView> = routing
            .calls()
            .filter(|v| matches!(v.status, CallStatus::CallbackOffered | CallStatus::CallbackConnected))
            .collect();
        for view in callbacks {
            let (Some(fence), Some(operator)) = (view.fence, view.operator.clone()) else { continue };
            let call = view.call.clone();
            if self.offers.contains_key(&(call.clone(), fence)) {
                continue;
            }
            let Some(operator_view) = routing.operator_view(&operator) else { continue };
            if operator_view.site != Some(self.cfg.site) {
                continue;
            }
            let mode = routing.operator_config(&operator).map_or(OperatorMode::Persistent, |c| c.mode);
            let callee = channel(&self.offer_leg_id("cb", &call, fence));
            let bridge = BridgeId::new(self.offer_leg_id("call", &call, fence)).ok();
            let operator_leg = match mode {
                OperatorMode::Persistent => operator_view.channel.as_deref().and_then(channel),
                OperatorMode::Ring => channel(&self.offer_leg_id("ring", &call, fence)),
            };
            let (Some(callee), Some(bridge), Some(operator_leg)) = (callee, bridge, operator_leg) else { continue };
            let members = bridged.get(&bridge);
            let callee_in = members.is_some_and(|m| m.contains(&callee));
            let operator_in = members.is_some_and(|m| m.contains(&operator_leg));
            let both_in = callee_in && operator_in;
            self.counters.channels_adopted += 1;
            self.call_fences.insert(call.clone(), fence);
            self.operator_fences.insert(operator.clone(), fence);
            if view.status == CallStatus::CallbackOffered && !both_in {
                // Half-built: hang up what we placed, put the operator back, fail the offer.
                if live.contains_key(&callee) {
                    self.ari(AriRequest::Hangup(callee, HangupReason::Normal));
                }
                if mode == OperatorMode::Ring && live.contains_key(&operator_leg) {
                    self.ari(AriRequest::Hangup(operator_leg.clone(), HangupReason::Normal));
                }
                if members.is_some() {
                    self.ari(AriRequest::DestroyBridge(bridge));
                }
                if let Some(holding) = self.operators.get(&operator).map(|leg| leg.holding.clone()) {
                    let in_holding = bridged.get(&holding).is_some_and(|m| m.contains(&operator_leg));
                    if mode == OperatorMode::Persistent && !in_holding && live.contains_key(&operator_leg) {
                        self.ari(AriRequest::AddChannels { bridge: holding, channels: vec![operator_leg] });
                    }
                }
                self.propose(
                    CommandBody::OfferFailed {
                        call: call.clone(),
                        operator,
                        fence,
                        reason: OfferFailure::BridgeFailed,
                    },
                    Purpose::CallbackTakenDown { call, fence },
                );
                continue;
            }
            if live.contains_key(&callee) {
                self.ring_legs.insert(callee.clone(), (call.clone(), fence));
            }
            if mode == OperatorMode::Ring && live.contains_key(&operator_leg) {
                self.ring_legs.insert(operator_leg.clone(), (call.clone(), fence));
            }
            if let Some(leg) = self.operators.get_mut(&operator) {
                leg.busy_with = Some(fence);
            }
            self.offers.insert(
                (call.clone(), fence),
                OfferExec {
                    // The number is only needed to dial, and an adopted callback is never redialled.
                    kind: ExecKind::Callback { number: String::new() },
                    call: call.clone(),
                    operator: operator.clone(),
                    fence,
                    caller_channel: callee.clone(),
                    operator_channel: operator_leg,
                    mode,
                    bridge,
                    stage: OfferStage::Connected,
                    caller_in: callee_in,
                    operator_in,
                    whisper: None,
                    whisper_playback: None,
                },
            );
            match (view.status, both_in) {
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
    }
}
