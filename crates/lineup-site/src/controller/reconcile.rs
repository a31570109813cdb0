//! Reconcile: rebuilds the site's view from Asterisk's channels and bridges and the committed
//! state, after a restart or a reconnect. The adoption of callers, callbacks and trunk-in
//! calls has a file each beside this one.

use super::legs::{channel, stasis_app_and_args, CallerState, ExecKind, OfferStage, OperatorLeg};
use super::SiteController;
use crate::io::AriRequest;
use lineup_ari::{BridgeId, BridgeType, ChannelId, CreateBridgeRequest, HangupReason};
use lineup_core::{CommandBody, Routing};
use std::collections::BTreeMap;

impl SiteController {
    /// Rebuilds this site's view from what Asterisk holds and what the cluster committed:
    /// finishes what is gone, adopts what is live, and never builds a second bridge for a
    /// caller (bridge ids are derived from fences, so a repeat would be refused anyway).
    pub(super) fn reconcile(
        &mut self,
        channels: Vec<lineup_ari::Channel>,
        bridges: Vec<lineup_ari::Bridge>,
        routing: &Routing,
    ) {
        self.counters.reconciles += 1;
        // A new events connection starts a new stream.
        self.dedup.clear();
        let live = self.live_channels(channels);
        let bridged: BTreeMap<BridgeId, Vec<ChannelId>> = bridges.into_iter().map(|b| (b.id, b.channels)).collect();
        // 1. Whatever we track that Asterisk no longer has is gone.
        self.finish_gone_channels(&live);
        self.hang_up_confirmed_callbacks(&live);
        // 2. Bridges that completed while we were not listening, and legs we originated
        //    that answered meanwhile.
        self.count_bridges_completed_meanwhile(&bridged);
        self.ring_legs_answered_meanwhile(&live);
        // 3. After a restart: adopt the committed operators and callers that are still live.
        self.adopt_operators(&live, &bridged, routing);
        self.adopt_callers(&live, &bridged, routing);
        // 3b. Callbacks this site was placing or had connected (the operator is here and
        //     the callee leg is ours): nobody else reports how they end, so they are adopted
        //     or finished here, never left to the dialplan as unknown channels.
        self.adopt_callbacks(&live, &bridged, routing);
        // 3c. The operator's half of cross-site calls (their trunk legs came from elsewhere).
        self.adopt_trunk_ins(&live, &bridged, routing);
        // 4. Channels in our application that the cluster never heard of entered while we
        //    were away: their dialplan arguments are still on the channel.
        self.enter_unknown_channels(&live, routing);
    }

    /// Asterisk's channels, less those whose end was already handled: they are gone, whatever
    /// the (older) list says. The ends remembered are spent.
    fn live_channels(&mut self, channels: Vec<lineup_ari::Channel>) -> BTreeMap<ChannelId, lineup_ari::Channel> {
        let live: BTreeMap<ChannelId, lineup_ari::Channel> = channels
            .into_iter()
            .filter(|c| !self.ended_channel_set.contains(&c.id))
            .map(|c| (c.id.clone(), c))
            .collect();
        self.ended_channels.clear();
        self.ended_channel_set.clear();
        live
    }

    fn finish_gone_channels(&mut self, live: &BTreeMap<ChannelId, lineup_ari::Channel>) {
        let mut gone: Vec<ChannelId> = Vec::new();
        gone.extend(self.callers.keys().filter(|c| !live.contains_key(*c)).cloned());
        gone.extend(self.ring_legs.keys().filter(|c| !live.contains_key(*c)).cloned());
        gone.extend(self.operator_channels.keys().filter(|c| !live.contains_key(*c)).cloned());
        gone.extend(
            self.offers
                .values()
                .filter(|e| e.kind == ExecKind::TrunkIn && !live.contains_key(&e.caller_channel))
                .map(|e| e.caller_channel.clone()),
        );
        gone.sort();
        gone.dedup();
        for ch in gone {
            self.on_channel_gone(&ch, None);
            // Asterisk no longer has the channel, so no later event will finish it: a caller
            // now leaving is forgotten here (an entering one waits for its Enqueue result).
            if self.callers.get(&ch).is_some_and(|leg| matches!(leg.state, CallerState::Leaving)) {
                self.forget_caller(&ch);
            }
        }
        self.logins.retain(|ch, _| live.contains_key(ch));
        self.early_trunks.retain(|_, (inbound, _)| live.contains_key(inbound));
    }

    /// A caller to be hung up after a last prompt (the callback confirmation) whose
    /// PlaybackFinished may have been lost with the connection: hang up now rather than
    /// leave the caller in silence (they already heard that the promise is kept).
    fn hang_up_confirmed_callbacks(&mut self, live: &BTreeMap<ChannelId, lineup_ari::Channel>) {
        let closing: Vec<ChannelId> = self
            .callers
            .iter()
            .filter(|(ch, leg)| leg.hangup_after.is_some() && live.contains_key(*ch))
            .map(|(ch, _)| ch.clone())
            .collect();
        for ch in closing {
            if let Some(leg) = self.callers.get_mut(&ch) {
                leg.hangup_after = None;
            }
            self.ari(AriRequest::Hangup(ch, HangupReason::Normal));
        }
    }

    fn count_bridges_completed_meanwhile(&mut self, bridged: &BTreeMap<BridgeId, Vec<ChannelId>>) {
        let bridging: Vec<(BridgeId, ChannelId, ChannelId)> = self
            .offers
            .values()
            .filter(|e| e.stage == OfferStage::Bridging)
            .map(|e| (e.bridge.clone(), e.caller_channel.clone(), e.operator_channel.clone()))
            .collect();
        for (bridge, caller, operator) in bridging {
            if let Some(members) = bridged.get(&bridge) {
                for ch in [caller, operator] {
                    if members.contains(&ch) {
                        self.on_entered_bridge(&bridge, &ch);
                    }
                }
            }
        }
    }

    /// Committed operators logged in here on a persistent leg: a live leg is adopted (and put
    /// back in its holding bridge unless in a bridge already); a gone one is logged out.
    fn adopt_operators(
        &mut self,
        live: &BTreeMap<ChannelId, lineup_ari::Channel>,
        bridged: &BTreeMap<BridgeId, Vec<ChannelId>>,
        routing: &Routing,
    ) {
        for view in routing.operators() {
            let (Some(site), Some(channel_text)) = (view.site, view.channel.as_deref()) else { continue };
            if site != self.cfg.site || matches!(view.status, lineup_core::OperatorStatus::Offline) {
                continue;
            }
            let Some(ch) = channel(channel_text) else { continue };
            if self.operator_channels.contains_key(&ch) {
                continue;
            }
            if !live.contains_key(&ch) {
                self.report(CommandBody::OperatorLogout { operator: view.operator.clone() });
                continue;
            }
            let Ok(holding) = BridgeId::new(format!("hold-{}", view.operator.as_str())) else { continue };
            self.counters.channels_adopted += 1;
            self.operators.insert(view.operator.clone(), OperatorLeg { holding: holding.clone(), busy_with: None });
            self.operator_channels.insert(ch.clone(), view.operator.clone());
            let in_holding = bridged.get(&holding).is_some_and(|m| m.contains(&ch));
            let in_call = bridged.iter().any(|(id, m)| id.as_str().starts_with("call-") && m.contains(&ch));
            if !in_holding && !in_call {
                if !bridged.contains_key(&holding) {
                    self.ari(AriRequest::CreateBridge(CreateBridgeRequest {
                        bridge_id: holding.clone(),
                        bridge_type: BridgeType::Holding,
                        name: Some(view.operator.to_string()),
                    }));
                }
                self.ari(AriRequest::AddChannels { bridge: holding, channels: vec![ch] });
            }
        }
    }

    /// Legs this site originated (a ring-mode operator's phone, a callback's callee, a trunk
    /// call out) that answered while the events socket was down: their StasisStart was lost
    /// with it. An originated leg enters Stasis only when answered, so the list's "in
    /// Stasis" stands for the StasisStart, and the call connects now rather than when the
    /// caller gives up. A StasisStart still on the way then finds the offer past ringing.
    fn ring_legs_answered_meanwhile(&mut self, live: &BTreeMap<ChannelId, lineup_ari::Channel>) {
        let answered: Vec<(ChannelId, lineup_core::CallId, u64)> = self
            .ring_legs
            .iter()
            .filter(|(leg, _)| live.get(*leg).is_some_and(|ch| ch.dialplan.app_name == "Stasis"))
            .map(|(leg, (call, fence))| (leg.clone(), call.clone(), *fence))
            .collect();
        for (leg, call, fence) in answered {
            let ringing = self.offers.get(&(call.clone(), fence)).is_some_and(|e| e.stage == OfferStage::Ringing);
            if ringing {
                self.counters.channels_adopted += 1;
                self.ring_leg_answered(&leg, &call, fence);
            }
        }
    }

    /// Channels in Stasis that nothing here tracks enter as their StasisStart would have them
    /// (a login restarts at its first prompt). A StasisStart still on the way is then a no-op,
    /// since the channel is tracked by then.
    fn enter_unknown_channels(&mut self, live: &BTreeMap<ChannelId, lineup_ari::Channel>, routing: &Routing) {
        for (id, ch) in live {
            // A reader channel left by a run that died mid-read (this run's readers are hung
            // up before the driver lists channels again): hang it up, never route it.
            if super::missed::is_missed_reader(id) {
                self.counters.missed_readers_hung_up += 1;
                self.ari(AriRequest::Hangup(id.clone(), HangupReason::Normal));
                continue;
            }
            let known = self.callers.contains_key(id)
                || self.operator_channels.contains_key(id)
                || self.ring_legs.contains_key(id)
                || self.logins.contains_key(id)
                || self.early_trunks.values().any(|(inbound, _)| inbound == id)
                || self.monitor_channels.contains_key(id)
                || self.offers.values().any(|e| &e.caller_channel == id || &e.operator_channel == id);
            if known || ch.dialplan.app_name != "Stasis" {
                continue;
            }
            let (application, args) = stasis_app_and_args(ch);
            if application == lineup_ari::stasis_args::CALLER_APPLICATION
                || application == lineup_ari::stasis_args::LOGIN_APPLICATION
            {
                self.counters.channels_adopted += 1;
                self.on_stasis_start(&application, args, ch.clone(), routing);
            }
        }
    }
}
