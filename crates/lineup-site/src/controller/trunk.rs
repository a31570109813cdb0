//! Cross-site calls: the trunk call the caller's site places, the trunk call the operator's
//! site receives (held a while if it beats its Offer), and the operator freed after the grace.

use super::config::{
    EARLY_TRUNK_LEGS_MAX, EARLY_TRUNK_WAIT_MS, OPERATOR_RELEASE_GRACE_MS, RELEASES_DUE_MAX, TRUNK_SETUP_GRACE_MS,
};
use super::legs::{channel, CallerState, ExecKind, OfferExec, OfferStage};
use super::offer::caller_id_of;
use super::SiteController;
use crate::io::AriRequest;
use lineup_ari::{BridgeId, BridgeType, ChannelId, CreateBridgeRequest, Endpoint, HangupReason};
use lineup_core::{CallId, CommandBody, Offer, OfferFailure, OperatorId, OperatorMode, Routing};

impl SiteController {
    /// Caller here, operator at another site: call that site over the trunk. Its half answers
    /// the trunk call once the operator is in its bridge; then this half bridges the caller.
    pub(super) fn trunk_out(&mut self, offer: Offer) {
        let Some(caller_channel) = offer.caller_channel.as_deref().and_then(channel) else { return };
        if !self.callers.contains_key(&caller_channel) {
            return self.untracked_caller();
        }
        let caller_ok = self
            .callers
            .get(&caller_channel)
            .is_some_and(|l| matches!(l.state, CallerState::Entering | CallerState::Waiting) && !l.hung_up);
        if !caller_ok {
            return;
        }
        let endpoint = self
            .cfg
            .trunk_endpoints
            .get(&offer.operator_site)
            .map(|template| template.replace("{call}", offer.call.as_str()))
            .and_then(|e| Endpoint::new(e).ok());
        let (Some(endpoint), Some(trunk_leg), Ok(bridge)) = (
            endpoint,
            channel(&self.offer_leg_id("trunk", &offer.call, offer.fence)),
            BridgeId::new(self.offer_leg_id("call", &offer.call, offer.fence)),
        ) else {
            self.report(CommandBody::OfferFailed {
                call: offer.call,
                operator: offer.operator,
                fence: offer.fence,
                reason: OfferFailure::BridgeFailed,
            });
            return;
        };
        self.counters.offers_executed += 1;
        if let Some(leg) = self.callers.get_mut(&caller_channel) {
            leg.state = CallerState::Offered { fence: offer.fence };
        }
        self.ring_legs.insert(trunk_leg.clone(), (offer.call.clone(), offer.fence));
        self.offers.insert(
            (offer.call.clone(), offer.fence),
            OfferExec {
                kind: ExecKind::TrunkOut,
                call: offer.call.clone(),
                operator: offer.operator.clone(),
                fence: offer.fence,
                caller_channel,
                operator_channel: trunk_leg.clone(),
                mode: OperatorMode::Ring,
                bridge,
                stage: OfferStage::Ringing,
                caller_in: false,
                operator_in: false,
                whisper: None, // the operator's site plays the whisper on its side
                whisper_playback: None,
            },
        );
        // Long enough for the far site to ring a ring-mode operator.
        let timeout_s = (offer.ring_timeout_ms + TRUNK_SETUP_GRACE_MS).div_ceil(1000) as i32;
        self.originate_into_app(endpoint, trunk_leg, caller_id_of(&offer), timeout_s, &offer.call, offer.fence);
    }

    /// Operator here, caller at another site: its trunk call arrived.
    pub(super) fn trunk_leg_arrived(&mut self, call: &CallId, inbound: ChannelId) {
        let Some(offer) = self.awaiting_trunk.remove(call) else {
            // No offer for it here yet: its Offer may still be on the way (see
            // EARLY_TRUNK_WAIT_MS). A newer call for the same caller replaces an older one.
            if self.early_trunks.len() < EARLY_TRUNK_LEGS_MAX || self.early_trunks.contains_key(call) {
                let deadline = self.now_ms + EARLY_TRUNK_WAIT_MS;
                if let Some((older, _)) = self.early_trunks.insert(call.clone(), (inbound.clone(), deadline)) {
                    if older != inbound {
                        self.ari(AriRequest::Hangup(older, HangupReason::Normal));
                    }
                }
            } else {
                self.counters.offers_fenced_out += 1;
                self.ari(AriRequest::Hangup(inbound, HangupReason::Normal));
            }
            return;
        };
        let Ok(bridge) = BridgeId::new(self.offer_leg_id("call", &offer.call, offer.fence)) else { return };
        self.counters.offers_executed += 1;
        let (operator_channel, stage) = match offer.mode {
            OperatorMode::Persistent => {
                let Some(op) = offer.operator_channel.as_deref().and_then(channel) else {
                    self.ari(AriRequest::Hangup(inbound, HangupReason::Normal));
                    self.report(CommandBody::OfferFailed {
                        call: offer.call,
                        operator: offer.operator,
                        fence: offer.fence,
                        reason: OfferFailure::OperatorUnreachable,
                    });
                    return;
                };
                (op, OfferStage::Bridging)
            }
            OperatorMode::Ring => {
                let Some(leg) = channel(&self.offer_leg_id("ring", &offer.call, offer.fence)) else { return };
                (leg, OfferStage::Ringing)
            }
        };
        self.offers.insert(
            (offer.call.clone(), offer.fence),
            OfferExec::new(
                ExecKind::TrunkIn,
                &offer,
                inbound,
                operator_channel.clone(),
                offer.mode,
                bridge.clone(),
                stage.clone(),
                offer.whisper.clone(),
            ),
        );
        match offer.mode {
            OperatorMode::Persistent => {
                let holding = self.operators.get_mut(&offer.operator).map(|l| {
                    l.busy_with = Some(offer.fence);
                    l.holding.clone()
                });
                self.ari_for_offer(
                    AriRequest::CreateBridge(CreateBridgeRequest {
                        bridge_id: bridge,
                        bridge_type: BridgeType::MixingDtmfEvents,
                        name: Some(offer.call.to_string()),
                    }),
                    &offer.call,
                    offer.fence,
                );
                if let Some(holding) = holding {
                    self.ari(AriRequest::RemoveChannels { bridge: holding, channels: vec![operator_channel] });
                }
                self.start_connecting(&offer.call, offer.fence);
            }
            OperatorMode::Ring => {
                self.ring_operator(&offer, operator_channel, caller_id_of(&offer));
            }
        }
    }

    /// Our side of a connected cross-site call is over: if the caller's site has not reported
    /// its end after the grace, free the operator (see `release_operators_due`).
    pub(super) fn release_after_grace(&mut self, call: &CallId, fence: u64, operator: &OperatorId) {
        if self.releases_due.len() < RELEASES_DUE_MAX {
            let due = self.now_ms + OPERATOR_RELEASE_GRACE_MS;
            self.releases_due.insert((call.clone(), fence), (operator.clone(), due));
        }
    }

    /// Frees this site's operators of cross-site calls that ended here but that the caller's
    /// site has not reported (it is silent: restarting, or cut off).
    pub(super) fn release_operators_due(&mut self, routing: &Routing) {
        let now = self.now_ms;
        let due: Vec<(CallId, u64)> =
            self.releases_due.iter().filter(|(_, (_, at))| *at <= now).map(|(k, _)| k.clone()).collect();
        for (call, fence) in due {
            let Some((operator, _)) = self.releases_due.remove(&(call.clone(), fence)) else { continue };
            let still_connected = routing.call_view(&call).is_some_and(|v| {
                v.status == lineup_core::CallStatus::Connected
                    && v.fence == Some(fence)
                    && v.operator.as_ref() == Some(&operator)
            });
            if still_connected {
                self.report(CommandBody::OperatorLegEnded { call, operator, fence });
            }
        }
    }
}
