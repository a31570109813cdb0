//! Reconcile: rebuilds the site's view from Asterisk's channels and bridges and the committed
//! state, after a restart or a reconnect.

use super::legs::{channel, stasis_app_and_args, CallerLeg, CallerState, ExecKind, OfferExec, OfferStage, OperatorLeg};
use super::output::Purpose;
use super::SiteController;
use crate::io::AriRequest;
use lineup_ari::{BridgeId, BridgeType, ChannelId, CreateBridgeRequest, HangupReason};
use lineup_core::{CallId, CommandBody, HungUpBy, OperatorId, OperatorMode, Routing};
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
        // A channel whose end was already handled is gone, whatever the (older) list says.
        let live: BTreeMap<ChannelId, lineup_ari::Channel> = channels
            .into_iter()
            .filter(|c| !self.ended_channel_set.contains(&c.id))
            .map(|c| (c.id.clone(), c))
            .collect();
        self.ended_channels.clear();
        self.ended_channel_set.clear();
        let bridged: BTreeMap<BridgeId, Vec<ChannelId>> = bridges.into_iter().map(|b| (b.id, b.channels)).collect();

        // 1. Whatever we track that Asterisk no longer has is gone.
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
        // A caller to be hung up after a last prompt (the callback confirmation) whose
        // PlaybackFinished may have been lost with the connection: hang up now rather than
        // leave the caller in silence (they already heard that the promise is kept).
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

        // 2. Bridges that completed while we were not listening.
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

        // 3. After a restart: adopt the committed operators and callers that are still live.
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
        let calls: Vec<lineup_core::CallView> = routing.calls().filter(|v| v.entry_site == self.cfg.site).collect();
        for view in calls {
            let Some(ch) = routing.call_channel(&view.call).and_then(channel) else { continue };
            if self.callers.contains_key(&ch) {
                continue;
            }
            // Only a channel still in Stasis is ours: one sent back to the dialplan has left
            // the queue as surely as one that hung up.
            if !live.get(&ch).is_some_and(|c| c.dialplan.app_name == "Stasis") {
                // The caller left while we were away.
                let body = match (view.status, view.fence) {
                    (lineup_core::CallStatus::Connected, Some(fence)) => {
                        CommandBody::Completed { call: view.call.clone(), fence, by: HungUpBy::Caller }
                    }
                    _ => CommandBody::Abandoned { call: view.call.clone() },
                };
                self.report(body);
                continue;
            }
            self.counters.channels_adopted += 1;
            let bridge = view.fence.and_then(|f| BridgeId::new(self.offer_leg_id("call", &view.call, f)).ok());
            let in_bridge =
                bridge.as_ref().and_then(|b| bridged.get(b)).is_some_and(|m| m.contains(&ch) && m.len() >= 2);
            let state = match (view.status, view.fence) {
                (lineup_core::CallStatus::Connected, Some(_)) if !in_bridge => CallerState::Leaving,
                (lineup_core::CallStatus::Connected, Some(fence)) => CallerState::Connected { fence },
                // Both legs are in: connected, as on ChannelEnteredBridge (Connected proposed below).
                (lineup_core::CallStatus::Offered, Some(fence)) if in_bridge => CallerState::Connected { fence },
                _ => CallerState::Waiting,
            };
            self.callers.insert(
                ch.clone(),
                CallerLeg {
                    call: view.call.clone(),
                    number: String::new(),
                    state: state.clone(),
                    playback: None,
                    callback_offered: false,
                    hung_up: false,
                    hangup_after: None,
                    queued_prompt: None,
                    callback_entry: None,
                },
            );
            self.call_channels.insert(view.call.clone(), ch.clone());
            if in_bridge {
                if let (Some(fence), Some(operator), Some(bridge)) = (view.fence, view.operator.clone(), bridge.clone())
                {
                    self.adopt_call_bridge(&view.call, &operator, fence, &ch, bridge, &bridged, routing);
                }
            }
            match (view.status, view.fence, view.operator.clone()) {
                (lineup_core::CallStatus::Connected, Some(fence), _) if !in_bridge => {
                    // The operator's side ended while we were away (Asterisk keeps the bridge):
                    // complete the call and send the caller on in the dialplan.
                    self.report(CommandBody::Completed { call: view.call.clone(), fence, by: HungUpBy::Operator });
                    if let Some(b) = bridge.filter(|b| bridged.contains_key(b)) {
                        if bridged[&b].contains(&ch) {
                            self.ari(AriRequest::RemoveChannels { bridge: b.clone(), channels: vec![ch.clone()] });
                        }
                        self.ari(AriRequest::DestroyBridge(b));
                    }
                    self.continue_with(&ch, "COMPLETED", vec![]);
                }
                (lineup_core::CallStatus::Offered, Some(fence), Some(operator)) if in_bridge => {
                    // The bridge came up while we were away: report it.
                    self.propose(
                        CommandBody::Connected { call: view.call.clone(), operator, fence },
                        Purpose::Connected { call: view.call.clone(), fence },
                    );
                }
                (lineup_core::CallStatus::Offered, Some(fence), Some(operator)) => {
                    self.take_down_half_built_offer(&view.call, &operator, fence, &ch, &live, &bridged, routing);
                }
                (lineup_core::CallStatus::Waiting, _, _) => self.start_moh(&ch),
                _ => {}
            }
        }

        // 3b. Callbacks this site was placing or had connected (the operator is here and
        //     the callee leg is ours): nobody else reports how they end, so they are adopted
        //     or finished here, never left to the dialplan as unknown channels.
        self.adopt_callbacks(&live, &bridged, routing);

        // 3c. The operator's half of cross-site calls (their trunk legs came from elsewhere).
        self.adopt_trunk_ins(&live, &bridged, routing);

        // 4. Channels in our application that the cluster never heard of entered while we
        //    were away: their dialplan arguments are still on the channel.
        for (id, ch) in &live {
            let known = self.callers.contains_key(id)
                || self.operator_channels.contains_key(id)
                || self.ring_legs.contains_key(id)
                || self.logins.contains_key(id)
                || self.early_trunks.values().any(|(inbound, _)| inbound == id)
                || self.offers.values().any(|e| &e.caller_channel == id || &e.operator_channel == id);
            if known || ch.dialplan.app_name != "Stasis" {
                continue;
            }
            let (application, args) = stasis_app_and_args(ch);
            // (A login restarts at its first prompt.) Its StasisStart may still be on the way;
            // handling it later is a no-op because the channel is tracked by then.
            if application == lineup_ari::stasis_args::CALLER_APPLICATION
                || application == lineup_ari::stasis_args::LOGIN_APPLICATION
            {
                self.counters.channels_adopted += 1;
                self.on_stasis_start(&application, args, ch.clone(), routing);
            }
        }
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
        self.call_fences.insert(call.clone(), fence);
        self.operator_fences.insert(operator.clone(), fence);
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
