//! Committed offers: which half of a connect this site performs, a same-site offer's legs,
//! cancellation, and how the end of an offer's leg or a failed request of it is reported.

use super::connect::{caller_id_of, ring_timeout_s};
use super::legs::{channel, ExecKind, OfferExec, OfferStage};
use super::SiteController;
use crate::io::AriFailure;
use lineup_ari::{BridgeId, ChannelId, Endpoint};
use lineup_core::{CallId, CommandBody, Offer, OfferFailure, OperatorMode, Routing};

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
            self.await_trunk_leg(offer);
            return;
        }
        let _ = routing;
        self.offer_here(offer);
    }

    /// Caller and operator are both at this site.
    fn offer_here(&mut self, offer: Offer) {
        let Some(caller_channel) = offer.caller_channel.as_deref().and_then(channel) else {
            return; // callbacks (no caller leg) are dialled from DialCallback
        };
        let Some(leg) = self.callers.get(&caller_channel) else { return self.untracked_caller() };
        if !leg.can_be_offered() {
            // The caller already left; its Abandoned is on the way and will cancel the offer.
            return;
        }
        let Ok(bridge) = BridgeId::new(self.offer_leg_id("call", &offer.call, offer.fence)) else { return };
        self.counters.offers_executed += 1;
        if let Some(leg) = self.callers.get_mut(&caller_channel) {
            leg.mark_offered(offer.fence);
        }
        match offer.mode {
            OperatorMode::Persistent => self.offer_persistent_here(offer, caller_channel, bridge),
            OperatorMode::Ring => self.offer_ring_here(offer, caller_channel, bridge),
        }
    }

    /// A persistent operator here: out of its holding bridge and into the call bridge.
    fn offer_persistent_here(&mut self, offer: Offer, caller_channel: ChannelId, bridge: BridgeId) {
        let Some(op_channel) = offer.operator_channel.as_deref().and_then(channel) else {
            return self.report_offer_failed(&offer, OfferFailure::OperatorUnreachable);
        };
        let exec = OfferExec::new(
            ExecKind::Local,
            &offer,
            caller_channel,
            op_channel.clone(),
            offer.mode,
            bridge.clone(),
            OfferStage::Bridging,
            offer.whisper.clone(),
        );
        self.insert_exec(exec);
        self.bridge_persistent_operator(&offer, op_channel, bridge);
    }

    /// A ring-mode operator here: its phone rings; its answer connects.
    fn offer_ring_here(&mut self, offer: Offer, caller_channel: ChannelId, bridge: BridgeId) {
        let Some(endpoint) = offer.endpoint.as_deref().and_then(|e| Endpoint::new(e).ok()) else {
            return self.report_offer_failed(&offer, OfferFailure::OperatorUnreachable);
        };
        let Some(ring_leg) = channel(&self.offer_leg_id("ring", &offer.call, offer.fence)) else { return };
        self.ring_legs.insert(ring_leg.clone(), (offer.call.clone(), offer.fence));
        self.insert_exec(OfferExec::new(
            ExecKind::Local,
            &offer,
            caller_channel,
            ring_leg.clone(),
            offer.mode,
            bridge,
            OfferStage::Ringing,
            offer.whisper.clone(),
        ));
        self.originate_into_app(
            endpoint,
            ring_leg,
            caller_id_of(&offer),
            ring_timeout_s(&offer),
            &offer.call,
            offer.fence,
        );
    }

    pub(super) fn on_cancel(&mut self, call: &CallId, fence: u64) {
        if self.awaiting_trunk.get(call).is_some_and(|o| o.fence == fence) {
            self.awaiting_trunk.remove(call);
        }
        let Some(exec) = self.offers.remove(&(call.clone(), fence)) else { return };
        if exec.kind == ExecKind::TrunkIn {
            return self.cancel_trunk_in(exec);
        }
        // Even a bridged offer is taken down: the core cancels an offer only while it is
        // not connected (its deadline passed before the sites' Connected was committed, held
        // up by a partition or a restart), and from then on it offers the caller and the
        // operator to others. Talking on would book the operator twice. The caller keeps its
        // place and is offered again at once.
        self.undo_offer(exec);
    }

    /// A ring leg or outgoing trunk leg of a (non-callback) offer ended.
    pub(super) fn offer_leg_gone(&mut self, call: CallId, fence: u64, cause: Option<i32>) {
        let Some(exec) = self.offers.get(&(call.clone(), fence)) else { return };
        let operator = exec.operator.clone();
        if exec.stage == OfferStage::Ringing && exec.kind == ExecKind::TrunkOut {
            self.trunk_out_unanswered(call, fence, operator, cause);
        } else if exec.stage == OfferStage::Ringing {
            // Never answered: the operator missed the offer.
            let exec = self.offers.remove(&(call.clone(), fence)).expect("present");
            self.undo_offer(exec);
            self.report(CommandBody::RingNoAnswer { call, operator, fence });
        } else if exec.stage == OfferStage::Connected {
            self.operator_hung_up(&call, fence);
        } else {
            self.fail_offer(&call, fence, &operator, OfferFailure::BridgeFailed);
        }
    }

    /// An ARI request of an offer failed: unless already connected, the offer is taken down
    /// and reported failed, with the reason that does not charge the operator for the site's
    /// or the trunk's fault.
    pub(super) fn offer_request_failed(&mut self, call: CallId, fence: u64, failure: &AriFailure) {
        let Some(exec) = self.offers.get(&(call.clone(), fence)) else { return };
        if exec.stage == OfferStage::Connected {
            return;
        }
        let operator = exec.operator.clone();
        let reason = match (failure, &exec.kind, exec.mode, &exec.stage) {
            // The trunk call to the operator's site could not be placed: not the operator's miss.
            (_, ExecKind::TrunkOut, _, OfferStage::Ringing) => OfferFailure::TrunkFailed { cause: 0 },
            (AriFailure::Gone(_), _, OperatorMode::Ring, OfferStage::Ringing) => OfferFailure::OperatorUnreachable,
            _ => OfferFailure::BridgeFailed,
        };
        self.fail_offer(&call, fence, &operator, reason);
    }
}
