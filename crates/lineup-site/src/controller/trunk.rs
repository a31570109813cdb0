//! Cross-site calls: the trunk call the caller's site places and how its end is read, the
//! trunk call the operator's site receives (held a while if it beats its Offer), and the
//! operator freed after the grace when the caller's site is silent, or from an offer whose
//! trunk call cannot come while the caller's site is unreachable.

use super::config::{
    EARLY_TRUNK_LEGS_MAX, EARLY_TRUNK_WAIT_MS, FAR_SITE_REPORTS_CAUSES, STRANDED_OFFER_RELEASE_MS, TRUNK_SETUP_GRACE_MS,
};
use super::connect::caller_id_of;
use super::legs::{channel, ExecKind, OfferExec, OfferStage};
use super::SiteController;
use crate::io::AriRequest;
use lineup_ari::{BridgeId, ChannelId, Endpoint, HangupReason};
use lineup_core::{CallId, CommandBody, HungUpBy, Offer, OfferFailure, OperatorId, OperatorMode, Routing};

impl SiteController {
    /// Caller here, operator at another site: call that site over the trunk. Its half answers
    /// the trunk call once the operator is in its bridge; then this half bridges the caller.
    pub(super) fn trunk_out(&mut self, offer: Offer) {
        let Some(caller_channel) = offer.caller_channel.as_deref().and_then(channel) else { return };
        let Some(leg) = self.callers.get(&caller_channel) else { return self.untracked_caller() };
        if !leg.can_be_offered() {
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
            return self.report_offer_failed(&offer, OfferFailure::BridgeFailed);
        };
        self.counters.offers_executed += 1;
        if let Some(leg) = self.callers.get_mut(&caller_channel) {
            leg.mark_offered(offer.fence);
        }
        self.ring_legs.insert(trunk_leg.clone(), (offer.call.clone(), offer.fence));
        self.insert_exec(OfferExec {
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
        });
        // Long enough for the far site to ring a ring-mode operator.
        let timeout_s = (offer.ring_timeout_ms + TRUNK_SETUP_GRACE_MS).div_ceil(1000) as i32;
        self.originate_into_app(endpoint, trunk_leg, caller_id_of(&offer), timeout_s, &offer.call, offer.fence);
    }

    /// The trunk call to the operator's site ended unanswered. Cleared normally (or
    /// unanswered) by the operator's site, which then reports why itself; refused or failed
    /// on the way (the far box has no Lineup node running, the trunk is down or congested),
    /// reported here at once so the caller is offered again and the operator is not charged.
    pub(super) fn trunk_out_unanswered(&mut self, call: CallId, fence: u64, operator: OperatorId, cause: Option<i32>) {
        let Some(exec) = self.offers.remove(&(call.clone(), fence)) else { return };
        self.undo_offer(exec);
        if let Some(cause) = cause.filter(|c| !FAR_SITE_REPORTS_CAUSES.contains(c)) {
            let cause = u16::try_from(cause).unwrap_or(0);
            self.report(CommandBody::OfferFailed {
                call,
                operator,
                fence,
                reason: OfferFailure::TrunkFailed { cause },
            });
        }
    }

    /// Operator here, caller at another site: wait for the caller's site to call us on the
    /// trunk (`Stasis(lineup,xfer=CALL)`), unless its call came first.
    pub(super) fn await_trunk_leg(&mut self, offer: Offer) {
        let call = offer.call.clone();
        self.awaiting_trunk.insert(call.clone(), offer);
        if let Some((inbound, _)) = self.early_trunks.remove(&call) {
            self.trunk_leg_arrived(&call, inbound);
        }
    }

    /// Offers waiting for a trunk call that cannot come: their caller's site has been
    /// unreachable for `STRANDED_OFFER_RELEASE_MS`. The operator is freed; the caller keeps
    /// its place, frozen with its site; a trunk call for the offer arriving later finds no
    /// offer here and is refused after `EARLY_TRUNK_WAIT_MS`.
    pub(super) fn release_stranded_offers(&mut self, routing: &Routing) {
        let stranded: Vec<CallId> = self
            .awaiting_trunk
            .iter()
            .filter(|(_, offer)| routing.is_site_unreachable(offer.caller_site))
            .map(|(call, _)| call.clone())
            .collect();
        self.stranded_since.retain(|call, _| stranded.contains(call));
        for call in stranded {
            let since = *self.stranded_since.entry(call.clone()).or_insert(self.now_ms);
            if self.now_ms.saturating_sub(since) < STRANDED_OFFER_RELEASE_MS {
                continue;
            }
            self.stranded_since.remove(&call);
            if let Some(offer) = self.awaiting_trunk.remove(&call) {
                self.counters.offers_stranded_released += 1;
                self.report_offer_failed(&offer, OfferFailure::Interrupted);
            }
        }
        debug_assert!(self.stranded_since.keys().all(|call| self.awaiting_trunk.contains_key(call)));
    }

    /// A trunk call entered Stasis here. While this site serves an island's fork, no offer
    /// of another site can reach it, so a trunk call with no offer waiting here is refused
    /// at once instead of after `EARLY_TRUNK_WAIT_MS`: the far caller's site learns 5 s
    /// sooner that the connect failed.
    pub(super) fn trunk_leg_entered(&mut self, call: &CallId, inbound: ChannelId, routing: &Routing) {
        if routing.island().is_some() && !self.awaiting_trunk.contains_key(call) {
            return self.refuse_trunk_leg(inbound);
        }
        self.trunk_leg_arrived(call, inbound)
    }

    /// Operator here, caller at another site: its trunk call arrived.
    pub(super) fn trunk_leg_arrived(&mut self, call: &CallId, inbound: ChannelId) {
        let Some(offer) = self.awaiting_trunk.remove(call) else { return self.hold_early_trunk(call, inbound) };
        let Ok(bridge) = BridgeId::new(self.offer_leg_id("call", &offer.call, offer.fence)) else { return };
        self.counters.offers_executed += 1;
        let Some((operator_channel, stage)) = self.trunk_in_operator_leg(&offer, &inbound) else { return };
        self.insert_exec(OfferExec::new(
            ExecKind::TrunkIn,
            &offer,
            inbound,
            operator_channel.clone(),
            offer.mode,
            bridge.clone(),
            stage,
            offer.whisper.clone(),
        ));
        match offer.mode {
            OperatorMode::Persistent => self.bridge_persistent_operator(&offer, operator_channel, bridge),
            OperatorMode::Ring => self.ring_operator(&offer, operator_channel, caller_id_of(&offer)),
        }
    }

    /// The offer a trunk call was handed to is cancelled. A trunk call names the call, not
    /// the offer: the caller's site may have placed it for a newer offer of the same call,
    /// committed by the entry that cancelled this one (or soon after) and already connected
    /// there, while this site's view lagged. So only the operator's side is undone; the trunk
    /// call goes to the call's next offer here, or waits for it as an early trunk call and is
    /// refused after `EARLY_TRUNK_WAIT_MS`. A trunk call of the cancelled offer itself is
    /// hung up by the caller's site, which was cancelled by the same entry.
    pub(super) fn cancel_trunk_in(&mut self, exec: OfferExec) {
        debug_assert_eq!(exec.kind, ExecKind::TrunkIn);
        let (call, inbound) = (exec.call.clone(), exec.caller_channel.clone());
        self.ring_legs.remove(&inbound);
        self.undo_offer_keeping_far_leg(exec);
        self.trunk_leg_arrived(&call, inbound);
    }

    /// No offer for this trunk call here yet: its Offer may still be on the way (see
    /// `EARLY_TRUNK_WAIT_MS`). A newer call for the same caller replaces an older one.
    fn hold_early_trunk(&mut self, call: &CallId, inbound: ChannelId) {
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
        debug_assert!(self.early_trunks.len() <= EARLY_TRUNK_LEGS_MAX);
    }

    /// The operator's leg for a trunk-in offer, and the stage its execution starts in. A
    /// persistent operator without a leg refuses the trunk call and fails the offer.
    fn trunk_in_operator_leg(&mut self, offer: &Offer, inbound: &ChannelId) -> Option<(ChannelId, OfferStage)> {
        match offer.mode {
            OperatorMode::Persistent => {
                let Some(op) = offer.operator_channel.as_deref().and_then(channel) else {
                    self.ari(AriRequest::Hangup(inbound.clone(), HangupReason::Normal));
                    self.report_offer_failed(offer, OfferFailure::OperatorUnreachable);
                    return None;
                };
                Some((op, OfferStage::Bridging))
            }
            OperatorMode::Ring => {
                let leg = channel(&self.offer_leg_id("ring", &offer.call, offer.fence))?;
                Some((leg, OfferStage::Ringing))
            }
        }
    }

    /// Trunk calls whose Offer never came (cancelled, stale, or not ours): refused.
    pub(super) fn refuse_expired_early_trunks(&mut self) {
        let now = self.now_ms;
        let expired: Vec<CallId> =
            self.early_trunks.iter().filter(|(_, (_, deadline))| *deadline <= now).map(|(c, _)| c.clone()).collect();
        for call in expired {
            if let Some((inbound, _)) = self.early_trunks.remove(&call) {
                self.refuse_trunk_leg(inbound);
            }
        }
    }

    /// Hangs up a trunk call no offer here will take.
    fn refuse_trunk_leg(&mut self, inbound: ChannelId) {
        self.counters.offers_fenced_out += 1;
        // Not "normal clearing": the caller's site reads a refusal and reports it.
        self.ari(AriRequest::Hangup(inbound, HangupReason::Congestion));
    }

    /// The trunk-in offer whose caller leg (the trunk call from the caller's site) is `ch`.
    pub(super) fn trunk_in_carried_by(&self, ch: &ChannelId) -> Option<(CallId, u64)> {
        self.offers.iter().find(|(_, e)| e.kind == ExecKind::TrunkIn && &e.caller_channel == ch).map(|(k, _)| k.clone())
    }

    /// The caller's site ended the trunk call (caller gone, offer cancelled, or the call
    /// completed there). That site reports; here only the operator side is tidied.
    pub(super) fn trunk_in_gone(&mut self, key: (CallId, u64)) {
        let Some(exec) = self.offers.remove(&key) else { return };
        if exec.stage == OfferStage::Connected {
            self.offers.insert(key.clone(), exec);
            self.end_connected_offer(&key.0, key.1, HungUpBy::Caller);
        } else {
            self.undo_offer(exec);
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::controller::SiteConfig;
    use crate::io::{Action, Input};
    use lineup_ari::AriEvent;
    use lineup_core::{IslandEpoch, SiteId};

    /// Site 1's trunk call for `call` entering Stasis at site 2's box.
    fn trunk_call_for(call: &str) -> AriEvent {
        let text = format!(
            r#"{{"type": "StasisStart", "timestamp": "2026-12-08T01:00:00.000+0000", "args": ["xfer={call}"],
            "channel": {{"id": "1796700000.7", "name": "PJSIP/site-1-00000007", "state": "Ring", "protocol_id": "",
            "caller": {{"name": "Kim", "number": "5551234"}}, "connected": {{"name": "", "number": ""}},
            "accountcode": "", "dialplan": {{"context": "from-lineup", "exten": "lineup-{call}", "priority": 1,
            "app_name": "Stasis", "app_data": "lineup,xfer={call}"}}, "creationtime": "2026-12-08T01:00:00.000+0000",
            "language": "en"}}, "asterisk_id": "02:00:00:00:00:02", "application": "lineup"}}"#
        );
        AriEvent::parse(&text).expect("a trunk call's StasisStart")
    }

    fn refusals(actions: &[Action]) -> usize {
        let refused = |a: &&Action| {
            matches!(a, Action::Ari { request: AriRequest::Hangup(ch, HangupReason::Congestion), .. }
                if ch.as_str() == "1796700000.7")
        };
        actions.iter().filter(refused).count()
    }

    #[test]
    fn an_island_refuses_a_trunk_call_without_an_offer_at_once_and_the_majority_waits_for_its_offer() {
        let global = Routing::new();
        let mut site = SiteController::new(SiteConfig::new(SiteId(2), 1));
        let held = site.handle(1_000, Input::Ari(trunk_call_for("c1")), &global);
        assert_eq!(refusals(&held), 0, "the offer may still be on its way: {held:?}");
        assert_eq!(
            refusals(&site.handle(1_000 + EARLY_TRUNK_WAIT_MS, Input::Tick, &global)),
            1,
            "refused after the wait"
        );

        let epoch = IslandEpoch { site: SiteId(2), seq: 1, fork_index: 40 };
        let fork = global.fork_island(epoch, &[SiteId(1), SiteId(2), SiteId(3)], 0);
        let mut island = SiteController::new(SiteConfig::new(SiteId(2), 1));
        let refused = island.handle(1_000, Input::Ari(trunk_call_for("c1")), &fork);
        assert_eq!(refusals(&refused), 1, "no offer can reach an island: {refused:?}");
        assert_eq!(island.counters.offers_fenced_out, 1);
    }
}
