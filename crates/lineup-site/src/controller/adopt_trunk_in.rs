//! After a restart: the operator's half of cross-site calls (the caller is at another site
//! and its trunk call arrived here). Without this, a restarted operator's site would treat
//! the live trunk leg as a new arrival and refuse it, cutting off a connected call.

use super::legs::{channel, stasis_app_and_args, ExecKind, OfferExec, OfferStage};
use super::output::Purpose;
use super::SiteController;
use crate::io::AriRequest;
use lineup_ari::{parse_stasis_entry, BridgeId, ChannelId, HangupReason, StasisEntry};
use lineup_core::{CallId, CallStatus, CallView, CommandBody, OfferFailure, OperatorId, OperatorMode, Routing};
use std::collections::BTreeMap;

/// What a reconcile found of one trunk-in call on this box.
struct TrunkInFound {
    call: CallId,
    operator: OperatorId,
    fence: u64,
    mode: OperatorMode,
    bridge: BridgeId,
    trunk: Option<ChannelId>,
    operator_leg: Option<ChannelId>,
    trunk_in: bool,
    operator_in: bool,
    bridge_exists: bool,
}

impl SiteController {
    /// Adopts, finishes or takes down every committed offer or connection whose operator is
    /// here and whose caller is at another site, from what Asterisk holds:
    /// - connected, both legs in the call bridge: adopted as connected (either side's hangup
    ///   then ends it as if this process had built it);
    /// - connected, one leg gone: the other is released as that hangup would have;
    /// - offered, both legs in the bridge: adopted and finished as the bridge event would;
    /// - offered, half-built: taken down and reported (`Interrupted`: the caller keeps its
    ///   place, the operator is not charged);
    /// - offered, nothing here yet: the trunk call may still come, so the offer waits for it.
    pub(super) fn adopt_trunk_ins(
        &mut self,
        live: &BTreeMap<ChannelId, lineup_ari::Channel>,
        bridged: &BTreeMap<BridgeId, Vec<ChannelId>>,
        routing: &Routing,
    ) {
        let trunk_legs = trunk_legs_by_call(live);
        let views: Vec<CallView> = routing
            .calls()
            .filter(|v| v.entry_site != self.cfg.site)
            .filter(|v| matches!(v.status, CallStatus::Offered | CallStatus::Connected))
            .collect();
        for view in views {
            let Some(found) = self.find_trunk_in(&view, live, bridged, &trunk_legs, routing) else { continue };
            if self.offers.contains_key(&(found.call.clone(), found.fence)) {
                continue;
            }
            self.counters.channels_adopted += 1;
            self.fence_settled_by_reconcile(&found.call, &found.operator, found.fence);
            match view.status {
                CallStatus::Connected => self.adopt_connected_trunk_in(found),
                _ if found.trunk_in && found.operator_in => self.adopt_bridged_trunk_in(found),
                _ if found.trunk.is_none() && !found.bridge_exists && !self.ring_leg_live(&found, live) => {
                    if let Some(offer) = routing.current_offer(&found.call) {
                        self.awaiting_trunk.insert(found.call.clone(), offer);
                    }
                }
                _ => self.take_down_trunk_in(found, live),
            }
        }
    }

    fn find_trunk_in(
        &self,
        view: &CallView,
        live: &BTreeMap<ChannelId, lineup_ari::Channel>,
        bridged: &BTreeMap<BridgeId, Vec<ChannelId>>,
        trunk_legs: &BTreeMap<String, ChannelId>,
        routing: &Routing,
    ) -> Option<TrunkInFound> {
        let (fence, operator) = (view.fence?, view.operator.clone()?);
        let operator_view = routing.operator_view(&operator)?;
        if operator_view.site != Some(self.cfg.site) || routing.call_channel(&view.call).is_none() {
            return None; // not ours, or a callback promise (placed by adopt_callbacks)
        }
        let mode = routing.operator_config(&operator).map_or(OperatorMode::Persistent, |c| c.mode);
        let operator_leg = match mode {
            OperatorMode::Persistent => operator_view.channel.as_deref().and_then(channel),
            OperatorMode::Ring => channel(&self.offer_leg_id("ring", &view.call, fence)),
        }
        .filter(|leg| live.contains_key(leg));
        let bridge = BridgeId::new(self.offer_leg_id("call", &view.call, fence)).ok()?;
        let members = bridged.get(&bridge);
        let trunk = trunk_legs.get(view.call.as_str()).cloned();
        let is_in = |leg: &Option<ChannelId>| leg.as_ref().is_some_and(|l| members.is_some_and(|m| m.contains(l)));
        Some(TrunkInFound {
            call: view.call.clone(),
            operator,
            fence,
            mode,
            trunk_in: is_in(&trunk),
            operator_in: is_in(&operator_leg),
            bridge_exists: members.is_some(),
            bridge,
            trunk,
            operator_leg,
        })
    }

    fn ring_leg_live(&self, found: &TrunkInFound, live: &BTreeMap<ChannelId, lineup_ari::Channel>) -> bool {
        found.mode == OperatorMode::Ring
            && channel(&self.offer_leg_id("ring", &found.call, found.fence)).is_some_and(|leg| live.contains_key(&leg))
    }

    /// Records the execution as this process would have built it.
    fn insert_trunk_in_exec(&mut self, found: &TrunkInFound, trunk: ChannelId, leg: ChannelId, stage: OfferStage) {
        match found.mode {
            OperatorMode::Ring => {
                self.ring_legs.insert(leg.clone(), (found.call.clone(), found.fence));
            }
            OperatorMode::Persistent => {
                if let Some(operator_leg) = self.operators.get_mut(&found.operator) {
                    operator_leg.busy_with = Some(found.fence);
                }
            }
        }
        let connected = stage == OfferStage::Connected;
        self.offers.insert(
            (found.call.clone(), found.fence),
            OfferExec {
                kind: ExecKind::TrunkIn,
                call: found.call.clone(),
                operator: found.operator.clone(),
                fence: found.fence,
                caller_channel: trunk,
                operator_channel: leg,
                mode: found.mode,
                bridge: found.bridge.clone(),
                stage,
                caller_in: connected,
                operator_in: connected,
                whisper: None,
                whisper_playback: None,
            },
        );
    }

    fn adopt_connected_trunk_in(&mut self, found: TrunkInFound) {
        let (Some(trunk), Some(leg)) = (found.trunk.clone(), found.operator_leg.clone()) else {
            return self.finish_half_gone_trunk_in(found);
        };
        if !(found.trunk_in && found.operator_in) {
            return self.finish_half_gone_trunk_in(found);
        }
        self.insert_trunk_in_exec(&found, trunk, leg, OfferStage::Connected);
    }

    /// Connected, but one leg left while we were away: end our half as its hangup would.
    /// The caller's site reports the completion (it sees the trunk call end).
    fn finish_half_gone_trunk_in(&mut self, found: TrunkInFound) {
        if let Some(trunk) = found.trunk.clone() {
            self.ari(AriRequest::Hangup(trunk, HangupReason::Normal));
        }
        match (found.mode, found.operator_leg.clone()) {
            (OperatorMode::Ring, Some(leg)) => self.ari(AriRequest::Hangup(leg, HangupReason::Normal)),
            (OperatorMode::Persistent, Some(leg)) => {
                self.return_to_holding_unless_taken(&found.operator, &leg, found.fence, Some(&found.bridge))
            }
            (_, None) => {}
        }
        if found.bridge_exists {
            self.ari(AriRequest::DestroyBridge(found.bridge.clone()));
        }
        self.release_after_grace(&found.call, found.fence, &found.operator);
    }

    /// Offered and both legs are in the call bridge: what remains is what the bridge event
    /// does (answer the trunk call, so the caller's site bridges its half).
    fn adopt_bridged_trunk_in(&mut self, found: TrunkInFound) {
        let (Some(trunk), Some(leg)) = (found.trunk.clone(), found.operator_leg.clone()) else { return };
        self.insert_trunk_in_exec(&found, trunk.clone(), leg.clone(), OfferStage::Bridging);
        self.on_entered_bridge(&found.bridge, &trunk);
        self.on_entered_bridge(&found.bridge, &leg);
    }

    /// Half-built: its ringing legs belong to the lost process. Hang up what is ours, put a
    /// persistent operator back in holding, refuse the trunk call (the caller's site reads
    /// the refusal) and report the offer failed without charging the operator.
    fn take_down_trunk_in(&mut self, found: TrunkInFound, live: &BTreeMap<ChannelId, lineup_ari::Channel>) {
        if let Some(trunk) = found.trunk.clone() {
            self.ari(AriRequest::Hangup(trunk, HangupReason::Congestion));
        }
        if self.ring_leg_live(&found, live) {
            if let Some(leg) = channel(&self.offer_leg_id("ring", &found.call, found.fence)) {
                self.ari(AriRequest::Hangup(leg, HangupReason::Normal));
            }
        }
        if let (OperatorMode::Persistent, Some(leg)) = (found.mode, found.operator_leg.clone()) {
            self.return_to_holding_unless_taken(&found.operator, &leg, found.fence, Some(&found.bridge));
        }
        if found.bridge_exists {
            self.ari(AriRequest::DestroyBridge(found.bridge.clone()));
        }
        self.propose(
            CommandBody::OfferFailed {
                call: found.call.clone(),
                operator: found.operator,
                fence: found.fence,
                reason: OfferFailure::Interrupted,
            },
            Purpose::Report,
        );
    }
}

/// Live trunk legs in our application (`Stasis(lineup,xfer=CALL)`), by call id.
fn trunk_legs_by_call(live: &BTreeMap<ChannelId, lineup_ari::Channel>) -> BTreeMap<String, ChannelId> {
    let mut legs = BTreeMap::new();
    for (id, ch) in live {
        if ch.dialplan.app_name != "Stasis" {
            continue;
        }
        let (application, args) = stasis_app_and_args(ch);
        if let Ok(StasisEntry::TrunkLeg { call }) = parse_stasis_entry(&application, &args) {
            legs.insert(call, id.clone());
        }
    }
    legs
}
