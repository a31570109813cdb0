//! Committed offers: which half of a connect this site performs, a same-site offer's legs,
//! and cancellation.

use super::legs::{channel, CallerState, ExecKind, OfferExec, OfferStage};
use super::SiteController;
use crate::io::AriRequest;
use lineup_ari::{BridgeId, BridgeType, CreateBridgeRequest, Endpoint};
use lineup_core::{CallId, CommandBody, Offer, OfferFailure, OperatorMode, Routing};

/// `"Name" <number>` of the caller, shown on the operator's phone.
pub(super) fn caller_id_of(offer: &Offer) -> Option<String> {
    Some(format!("\"{}\" <{}>", offer.caller_name, offer.caller_number))
}

/// The queue's ring timeout in whole seconds (ARI's unit), at least one.
pub(super) fn ring_timeout_s(offer: &Offer) -> i32 {
    offer.ring_timeout_ms.div_ceil(1000).max(1) as i32
}

impl SiteController {
    pub(super) fn on_offer(&mut self, offer: Offer, routing: &Routing) {
        if !self.fence_is_fresh(&offer.call, &offer.operator, offer.fence) {
            return;
        }
        let (caller_here, operator_here) = (offer.caller_site == self.cfg.site, offer.operator_site == self.cfg.site);
        if caller_here && !operator_here {
            self.trunk_out(offer);
            return;
        }
        if operator_here && !caller_here {
            // Wait for the caller's site to call us on the trunk (`Stasis(lineup,xfer=CALL)`),
            // unless its call came first.
            let call = offer.call.clone();
            self.awaiting_trunk.insert(call.clone(), offer);
            if let Some((inbound, _)) = self.early_trunks.remove(&call) {
                self.trunk_leg_arrived(&call, inbound);
            }
            return;
        }
        let Some(caller_channel) = offer.caller_channel.as_deref().and_then(channel) else {
            return; // callbacks (no caller leg) are dialled from DialCallback
        };
        if !self.callers.contains_key(&caller_channel) {
            return self.untracked_caller();
        }
        // The offer may arrive before the Enqueue's own result (same apply): Entering is fine.
        let caller_ok = self
            .callers
            .get(&caller_channel)
            .is_some_and(|l| matches!(l.state, CallerState::Entering | CallerState::Waiting) && !l.hung_up);
        if !caller_ok {
            // The caller already left; its Abandoned is on the way and will cancel the offer.
            return;
        }
        let Ok(bridge) = BridgeId::new(self.offer_leg_id("call", &offer.call, offer.fence)) else { return };
        self.counters.offers_executed += 1;
        if let Some(leg) = self.callers.get_mut(&caller_channel) {
            leg.state = CallerState::Offered { fence: offer.fence };
        }
        let _ = routing;
        match offer.mode {
            OperatorMode::Persistent => {
                let Some(op_channel) = offer.operator_channel.as_deref().and_then(channel) else {
                    self.report(CommandBody::OfferFailed {
                        call: offer.call,
                        operator: offer.operator,
                        fence: offer.fence,
                        reason: OfferFailure::OperatorUnreachable,
                    });
                    return;
                };
                let holding = self.operators.get_mut(&offer.operator).map(|l| {
                    l.busy_with = Some(offer.fence);
                    l.holding.clone()
                });
                let exec = OfferExec::new(
                    ExecKind::Local,
                    &offer,
                    caller_channel.clone(),
                    op_channel.clone(),
                    offer.mode,
                    bridge.clone(),
                    OfferStage::Bridging,
                    offer.whisper.clone(),
                );
                self.offers.insert((offer.call.clone(), offer.fence), exec);
                self.ari_for_offer(
                    AriRequest::CreateBridge(CreateBridgeRequest {
                        bridge_id: bridge.clone(),
                        bridge_type: BridgeType::MixingDtmfEvents,
                        name: Some(offer.call.to_string()),
                    }),
                    &offer.call,
                    offer.fence,
                );
                if let Some(holding) = holding {
                    self.ari(AriRequest::RemoveChannels { bridge: holding, channels: vec![op_channel.clone()] });
                }
                self.start_connecting(&offer.call, offer.fence);
            }
            OperatorMode::Ring => {
                let Some(endpoint) = offer.endpoint.as_deref().and_then(|e| Endpoint::new(e).ok()) else {
                    self.report(CommandBody::OfferFailed {
                        call: offer.call,
                        operator: offer.operator,
                        fence: offer.fence,
                        reason: OfferFailure::OperatorUnreachable,
                    });
                    return;
                };
                let Some(ring_leg) = channel(&self.offer_leg_id("ring", &offer.call, offer.fence)) else { return };
                self.ring_legs.insert(ring_leg.clone(), (offer.call.clone(), offer.fence));
                self.offers.insert(
                    (offer.call.clone(), offer.fence),
                    OfferExec::new(
                        ExecKind::Local,
                        &offer,
                        caller_channel,
                        ring_leg.clone(),
                        offer.mode,
                        bridge,
                        OfferStage::Ringing,
                        offer.whisper.clone(),
                    ),
                );
                self.originate_into_app(
                    endpoint,
                    ring_leg,
                    caller_id_of(&offer),
                    ring_timeout_s(&offer),
                    &offer.call,
                    offer.fence,
                );
            }
        }
    }

    pub(super) fn on_cancel(&mut self, call: &CallId, fence: u64) {
        if self.awaiting_trunk.get(call).is_some_and(|o| o.fence == fence) {
            self.awaiting_trunk.remove(call);
        }
        let Some(exec) = self.offers.remove(&(call.clone(), fence)) else { return };
        // Even a bridged offer is taken down: the core cancels an offer only while it is
        // not connected (its deadline passed before the sites' Connected was committed, held
        // up by a partition or a restart), and from then on it offers the caller and the
        // operator to others. Talking on would book the operator twice. The caller keeps its
        // place and is offered again at once.
        self.undo_offer(exec);
    }
}
