//! Executing an offer: the site-side fence check, ringing and originating legs, the whisper,
//! both legs into the call bridge, and taking an execution down or ending a connected call.

use super::config::{OPERATOR_RELEASE_GRACE_MS, RELEASES_DUE_MAX};
use super::legs::{CallerState, ExecKind, OfferExec, OfferStage};
use super::output::Purpose;
use super::SiteController;
use crate::io::AriRequest;
use lineup_ari::{
    BridgeId, BridgeType, ChannelId, CreateBridgeRequest, Endpoint, HangupReason, Media, OriginateRequest,
    OriginateTarget,
};
use lineup_core::island::is_fork_apply_index;
use lineup_core::{CallId, CommandBody, HungUpBy, Offer, OfferFailure, OperatorId, OperatorMode};

/// `"Name" <number>` of the caller, shown on the operator's phone.
pub(super) fn caller_id_of(offer: &Offer) -> Option<String> {
    Some(format!("\"{}\" <{}>", offer.caller_name, offer.caller_number))
}

/// The queue's ring timeout in whole seconds (ARI's unit), at least one.
pub(super) fn ring_timeout_s(offer: &Offer) -> i32 {
    offer.ring_timeout_ms.div_ceil(1000).max(1) as i32
}

impl SiteController {
    /// Test seam for lineup-sim's planted-bug run: turns the site-side fence check off, to
    /// prove the simulator's checkers notice stale offers being executed. Not part of the
    /// site's configuration; production builds do not enable the feature.
    #[cfg(feature = "planted-bugs")]
    #[doc(hidden)]
    pub fn plant_skipped_fence_check(&mut self) {
        self.skip_fence_check = true;
    }

    /// Site-side fence check: an effect older than one already executed for this call or
    /// operator is refused (the other half of the core's "where decided" check).
    pub(super) fn fence_is_fresh(&mut self, call: &CallId, operator: &OperatorId, fence: u64) -> bool {
        let stale = !self.skip_fence_check
            && (self.call_fences.get(call).is_some_and(|f| *f >= fence)
                || self.operator_fences.get(operator).is_some_and(|f| *f >= fence));
        if stale {
            self.counters.offers_fenced_out += 1;
            return false;
        }
        self.call_fences.insert(call.clone(), fence);
        self.operator_fences.insert(operator.clone(), fence);
        true
    }

    /// An island's merge ended at apply index `end_index`: the fences this site executed on
    /// its fork (in the fork band, above every index of the log) come down to it, so the
    /// first offer of the log after the merge (a fence above `end_index`) passes
    /// `fence_is_fresh`, while anything the merge superseded still does not.
    pub(super) fn clamp_fork_fences(&mut self, end_index: u64) {
        for fence in self.call_fences.values_mut().chain(self.operator_fences.values_mut()) {
            if is_fork_apply_index(*fence) {
                *fence = end_index;
            }
        }
    }

    /// After a restart: an offer the reconcile found committed (adopted, finished or taken
    /// down) is settled here; its Offer effect, fed again after the reconcile, must not be
    /// executed a second time, so its fence counts as executed.
    pub(super) fn fence_settled_by_reconcile(&mut self, call: &CallId, operator: &OperatorId, fence: u64) {
        let call_fence = self.call_fences.entry(call.clone()).or_insert(fence);
        *call_fence = (*call_fence).max(fence);
        let operator_fence = self.operator_fences.entry(operator.clone()).or_insert(fence);
        *operator_fence = (*operator_fence).max(fence);
    }

    /// Records an offer's execution under `(call, fence)`. Only an offer whose fence went
    /// through `fence_is_fresh` is executed.
    pub(super) fn insert_exec(&mut self, exec: OfferExec) {
        debug_assert!(self.call_fences.contains_key(&exec.call), "{} executed unfenced", exec.call);
        debug_assert!(self.operator_fences.contains_key(&exec.operator), "{} executed unfenced", exec.operator);
        self.offers.insert((exec.call.clone(), exec.fence), exec);
    }

    pub(super) fn report_offer_failed(&mut self, offer: &Offer, reason: OfferFailure) {
        self.report(CommandBody::OfferFailed {
            call: offer.call.clone(),
            operator: offer.operator.clone(),
            fence: offer.fence,
            reason,
        });
    }

    /// The call bridge of one offer (`mixing,dtmf_events`: keys still reach the controller).
    fn create_call_bridge(&mut self, bridge: BridgeId, call: &CallId, fence: u64) {
        self.ari_for_offer(
            AriRequest::CreateBridge(CreateBridgeRequest {
                bridge_id: bridge,
                bridge_type: BridgeType::MixingDtmfEvents,
                name: Some(call.to_string()),
            }),
            call,
            fence,
        );
    }

    /// A persistent operator's offer, its execution recorded: the call bridge is created, the
    /// operator's leg leaves its holding bridge, and connecting starts.
    pub(super) fn bridge_persistent_operator(&mut self, offer: &Offer, operator_channel: ChannelId, bridge: BridgeId) {
        let holding = self.operators.get_mut(&offer.operator).map(|l| {
            l.busy_with = Some(offer.fence);
            l.holding.clone()
        });
        self.create_call_bridge(bridge, &offer.call, offer.fence);
        if let Some(holding) = holding {
            self.ari(AriRequest::RemoveChannels { bridge: holding, channels: vec![operator_channel] });
        }
        self.start_connecting(&offer.call, offer.fence);
    }

    pub(super) fn on_entered_bridge(&mut self, bridge: &BridgeId, ch: &ChannelId) {
        let Some(key) = self.offers.iter().find(|(_, e)| &e.bridge == bridge).map(|(k, _)| k.clone()) else { return };
        let exec = self.offers.get_mut(&key).expect("found");
        if &exec.caller_channel == ch {
            exec.caller_in = true;
        }
        if &exec.operator_channel == ch {
            exec.operator_in = true;
        }
        if exec.caller_in && exec.operator_in && exec.stage == OfferStage::Bridging {
            exec.stage = OfferStage::Connected;
            let (call, operator, fence) = (exec.call.clone(), exec.operator.clone(), exec.fence);
            self.counters.bridges_connected += 1;
            if let ExecKind::Callback { .. } = exec.kind {
                self.propose(
                    CommandBody::CallbackResult { call: call.clone(), operator, fence, answered: true },
                    Purpose::CallbackAnswered { call, fence },
                );
                return;
            }
            if exec.kind == ExecKind::TrunkIn {
                // Answering the trunk leg tells the caller's site the operator is there; that
                // site bridges its half and proposes Connected.
                let inbound = exec.caller_channel.clone();
                self.ari(AriRequest::Answer(inbound));
                return;
            }
            if let Some(leg) = self.call_channels.get(&call).and_then(|c| self.callers.get_mut(c)) {
                leg.state = CallerState::Connected { fence };
            }
            self.propose(
                CommandBody::Connected { call: call.clone(), operator, fence },
                Purpose::Connected { call, fence },
            );
        }
    }

    /// Rings a ring-mode operator's endpoint on `leg` (its answer arrives as StasisStart).
    /// Endpoints are validated when the operator is configured, so a bad one cannot get here;
    /// if it did, the core's offer deadline would take the offer back.
    pub(super) fn ring_operator(&mut self, offer: &Offer, leg: ChannelId, caller_id: Option<String>) {
        let Some(endpoint) = offer.endpoint.as_deref().and_then(|e| Endpoint::new(e).ok()) else { return };
        self.ring_legs.insert(leg.clone(), (offer.call.clone(), offer.fence));
        self.originate_into_app(endpoint, leg, caller_id, ring_timeout_s(offer), &offer.call, offer.fence);
    }

    /// Originates a leg into our Stasis application; its StasisStart (answer) is matched by
    /// the deterministic channel id, and a failed request fails the offer.
    pub(super) fn originate_into_app(
        &mut self,
        endpoint: Endpoint,
        channel_id: ChannelId,
        caller_id: Option<String>,
        timeout_s: i32,
        call: &CallId,
        fence: u64,
    ) {
        let app = lineup_ari::ApplicationName::new(lineup_ari::stasis_args::CALLER_APPLICATION)
            .expect("static application name is valid");
        self.ari_for_offer(
            AriRequest::Originate(OriginateRequest {
                endpoint,
                target: OriginateTarget::Application { app, app_args: vec![] },
                channel_id: Some(channel_id),
                other_channel_id: None,
                caller_id,
                timeout_s: Some(timeout_s),
                originator: None,
                variables: Default::default(),
            }),
            call,
            fence,
        );
    }

    /// Ring-mode leg answered: create the bridge and connect.
    pub(super) fn operator_answered(&mut self, call: &CallId, fence: u64) {
        let Some(exec) = self.offers.get_mut(&(call.clone(), fence)) else { return };
        if exec.stage != OfferStage::Ringing {
            return;
        }
        exec.stage = OfferStage::Bridging;
        let bridge = exec.bridge.clone();
        if matches!(exec.kind, ExecKind::Callback { .. }) && exec.mode == OperatorMode::Persistent {
            // The operator's leg leaves the holding bridge only now the callee is on the line.
            let (operator, op_channel) = (exec.operator.clone(), exec.operator_channel.clone());
            if let Some(holding) = self.operators.get(&operator).map(|l| l.holding.clone()) {
                self.ari(AriRequest::RemoveChannels { bridge: holding, channels: vec![op_channel] });
            }
        }
        self.create_call_bridge(bridge, call, fence);
        self.start_connecting(call, fence);
    }

    /// Whisper to the operator first (if the gate has one), then add both legs.
    fn start_connecting(&mut self, call: &CallId, fence: u64) {
        let Some(exec) = self.offers.get(&(call.clone(), fence)).cloned() else { return };
        if exec.kind == ExecKind::Local || exec.kind == ExecKind::TrunkOut {
            self.ari(AriRequest::StopMoh(exec.caller_channel.clone()));
            // A prompt still playing to the caller (the entry announcement runs ~6 s) would
            // hold the caller off the bridge while the operator hears silence: stop it. Its
            // PlaybackFinished then finds the caller connecting and restarts nothing.
            let playing = self.callers.get_mut(&exec.caller_channel).and_then(|leg| {
                leg.queued_prompt = None;
                leg.playback.clone()
            });
            if let Some(playback) = playing {
                self.ari(AriRequest::StopPlayback(playback));
            }
        }
        if let Some(whisper) = exec.whisper.clone() {
            let playback = self.play(&exec.operator_channel, vec![Media::Sound(whisper)]);
            if let Some(e) = self.offers.get_mut(&(call.clone(), fence)) {
                e.stage = OfferStage::Whisper;
                e.whisper_playback = playback;
            }
            return;
        }
        self.ari_for_offer(
            AriRequest::AddChannels { bridge: exec.bridge, channels: vec![exec.caller_channel, exec.operator_channel] },
            call,
            fence,
        );
    }

    /// Tears down an offer's execution (half-built or bridged): ring leg hung up, bridge
    /// destroyed, caller back on hold music, persistent operator back in the holding bridge.
    pub(super) fn undo_offer(&mut self, exec: OfferExec) {
        let far_leg =
            matches!(exec.kind, ExecKind::TrunkIn | ExecKind::Callback { .. }).then(|| exec.caller_channel.clone());
        self.undo_offer_keeping_far_leg(exec);
        if let Some(leg) = far_leg {
            self.ring_legs.remove(&leg);
            self.ari(AriRequest::Hangup(leg, HangupReason::Normal));
        }
    }

    /// `undo_offer` but for the leg that is not this site's caller (a trunk call in, a
    /// callback's callee), which stays up.
    pub(super) fn undo_offer_keeping_far_leg(&mut self, exec: OfferExec) {
        match exec.mode {
            OperatorMode::Ring => {
                self.ring_legs.remove(&exec.operator_channel);
                self.ari(AriRequest::Hangup(exec.operator_channel.clone(), HangupReason::Normal));
            }
            OperatorMode::Persistent => {
                self.return_to_holding_unless_taken(&exec.operator, &exec.operator_channel, exec.fence, None);
            }
        }
        if exec.stage != OfferStage::Ringing || exec.kind == ExecKind::TrunkIn {
            self.ari(AriRequest::DestroyBridge(exec.bridge.clone()));
        }
        if let Some(leg) = self.callers.get_mut(&exec.caller_channel) {
            let this_offer = leg.state == (CallerState::Offered { fence: exec.fence })
                || leg.state == (CallerState::Connected { fence: exec.fence });
            if this_offer {
                leg.state = CallerState::Waiting;
                self.start_moh(&exec.caller_channel);
            }
        }
    }

    /// A persistent operator's leg goes back to its holding bridge (out of `from`, the
    /// offer's call bridge, if given) once the offer `fence` is over — unless a newer offer
    /// already took the leg. A site whose events socket was cut carries out the next offer
    /// as soon as it is committed, before it learns (at the reconnect) that the previous
    /// call ended; moving the leg then would pull the operator out of the new call and
    /// leave its caller alone in a bridge.
    pub(super) fn return_to_holding_unless_taken(
        &mut self,
        operator: &OperatorId,
        leg: &ChannelId,
        fence: u64,
        from: Option<&BridgeId>,
    ) {
        let Some(operator_leg) = self.operators.get_mut(operator) else { return };
        if operator_leg.busy_with.is_some_and(|taken_by| taken_by != fence) {
            return;
        }
        operator_leg.busy_with = None;
        let holding = operator_leg.holding.clone();
        if let Some(bridge) = from {
            self.ari(AriRequest::RemoveChannels { bridge: bridge.clone(), channels: vec![leg.clone()] });
        }
        self.ari(AriRequest::AddChannels { bridge: holding, channels: vec![leg.clone()] });
    }

    pub(super) fn fail_offer(&mut self, call: &CallId, fence: u64, operator: &OperatorId, reason: OfferFailure) {
        if let Some(exec) = self.offers.remove(&(call.clone(), fence)) {
            self.undo_offer(exec);
        }
        self.report(CommandBody::OfferFailed { call: call.clone(), operator: operator.clone(), fence, reason });
    }

    /// The operator hung up a connected call.
    pub(super) fn operator_hung_up(&mut self, call: &CallId, fence: u64) {
        let trunk_in = self.offers.get(&(call.clone(), fence)).is_some_and(|e| e.kind == ExecKind::TrunkIn);
        if !trunk_in {
            // Completions are reported by the caller's site; for a trunk-in leg it learns of
            // the hangup when we end the trunk call.
            self.report(CommandBody::Completed { call: call.clone(), fence, by: HungUpBy::Operator });
        }
        self.end_connected_offer(call, fence, HungUpBy::Operator);
    }

    /// Tidies up after a connected call ended on either side.
    pub(super) fn end_connected_offer(&mut self, call: &CallId, fence: u64, by: HungUpBy) {
        let Some(exec) = self.offers.remove(&(call.clone(), fence)) else { return };
        if exec.kind == ExecKind::TrunkIn {
            self.release_after_grace(call, fence, &exec.operator);
        }
        match (exec.mode, by) {
            (OperatorMode::Ring, HungUpBy::Caller) => {
                self.ring_legs.remove(&exec.operator_channel);
                self.ari(AriRequest::Hangup(exec.operator_channel.clone(), HangupReason::Normal));
            }
            (OperatorMode::Persistent, HungUpBy::Caller) => {
                let (operator, leg, bridge) = (&exec.operator, &exec.operator_channel, Some(&exec.bridge));
                self.return_to_holding_unless_taken(operator, leg, exec.fence, bridge);
            }
            (_, _) if matches!(exec.kind, ExecKind::TrunkIn | ExecKind::Callback { .. }) => {
                self.ring_legs.remove(&exec.caller_channel);
                self.ari(AriRequest::Hangup(exec.caller_channel.clone(), HangupReason::Normal));
            }
            (_, _) => {
                // The operator ended it: the caller goes back to the dialplan (surveys etc.).
                if let Some(leg) = self.callers.get_mut(&exec.caller_channel) {
                    if leg.state != CallerState::Leaving {
                        leg.state = CallerState::Leaving;
                        let caller = exec.caller_channel.clone();
                        self.ari(AriRequest::RemoveChannels {
                            bridge: exec.bridge.clone(),
                            channels: vec![caller.clone()],
                        });
                        self.continue_with(&caller, "COMPLETED", vec![]);
                    }
                }
            }
        }
        self.ari(AriRequest::DestroyBridge(exec.bridge));
    }

    /// The whisper to the operator ended: both legs go into the call bridge.
    pub(super) fn whisper_finished(&mut self, key: (CallId, u64)) {
        let Some(exec) = self.offers.get_mut(&key) else { return };
        debug_assert_eq!(exec.stage, OfferStage::Whisper);
        exec.whisper_playback = None;
        exec.stage = OfferStage::Bridging;
        let (bridge, caller, op, call, fence) = (
            exec.bridge.clone(),
            exec.caller_channel.clone(),
            exec.operator_channel.clone(),
            exec.call.clone(),
            exec.fence,
        );
        self.ari_for_offer(AriRequest::AddChannels { bridge, channels: vec![caller, op] }, &call, fence);
    }

    /// The core refused this site's `Connected` as stale: it took the offer back before the
    /// bridge came up, so the bridge is taken down.
    pub(super) fn on_connected_result(&mut self, call: CallId, fence: u64, result: &lineup_core::CommandResult) {
        if matches!(result, Err(lineup_core::CoreError::StaleFence { .. })) {
            if let Some(exec) = self.offers.remove(&(call, fence)) {
                self.undo_offer(exec);
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
        debug_assert!(self.releases_due.len() <= RELEASES_DUE_MAX);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::controller::SiteConfig;
    use crate::io::Input;
    use lineup_core::island::ISLAND_APPLY_INDEX_BASE;
    use lineup_core::{Effect, IslandEpoch, Routing, SiteId};

    #[test]
    fn a_merge_lowers_the_fork_fences_so_the_logs_next_offer_is_fresh() {
        let mut site = SiteController::new(SiteConfig::new(SiteId(1), 1));
        let (call, alice) = (CallId::new("c1"), OperatorId::new("alice"));
        let fork_fence = ISLAND_APPLY_INDEX_BASE + 7;
        assert!(site.fence_is_fresh(&call, &alice, fork_fence), "the fork's offer");
        let end_index = 9_000;
        assert!(!site.fence_is_fresh(&CallId::new("c2"), &alice, end_index + 1), "fenced out before the merge");
        let epoch = IslandEpoch { site: SiteId(1), seq: 1, fork_index: 40 };
        let merged = Effect::IslandMerged { site: SiteId(1), epoch, end_index };
        site.handle(0, Input::Effects { apply_index: end_index, effects: vec![merged] }, &Routing::new());
        assert!(!site.fence_is_fresh(&call, &alice, end_index), "what the merge superseded stays stale");
        assert!(site.fence_is_fresh(&CallId::new("c2"), &alice, end_index + 1), "the log's next offer");
        assert!(!site.fence_is_fresh(&CallId::new("c2"), &alice, end_index + 1), "executed once");
    }
}
