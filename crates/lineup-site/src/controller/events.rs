//! ARI events in: deduplicated, then routed to the caller, offer or login machine that owns
//! the channel.

use super::caller::callback_number;
use super::config::{
    CALLBACK_ACCEPT_KEY, CALLBACK_DIGITS_MAX, CALLBACK_OTHER_NUMBER_KEY, DIGIT_TIMEOUT_MS,
    ENDED_CHANNELS_REMEMBERED_MAX, FAR_SITE_REPORTS_CAUSES, SITE_CHANNELS_MAX,
};
use super::legs::{CallbackEntry, CallerLeg, CallerState, ExecKind, LoginSession, LoginStage, OfferStage};
use super::output::Purpose;
use super::SiteController;
use crate::io::AriRequest;
use crate::prompts;
use lineup_ari::{parse_stasis_entry, AriEvent, ChannelId, EventKind, HangupReason, Media, PlaybackId, StasisEntry};
use lineup_core::{
    CallId, CommandBody, Enqueue, GateId, HungUpBy, OfferFailure, OperatorId, OperatorMode, QueueId, Routing,
};

impl SiteController {
    pub(super) fn on_event(&mut self, event: AriEvent, routing: &Routing) {
        if !self.dedup.admit_once(&event) {
            self.counters.events_duplicated += 1;
            return;
        }
        match event.kind {
            EventKind::StasisStart { args, channel, .. } => {
                // Back in Stasis (the dialplan sent it here again): it is live once more.
                if self.ended_channel_set.remove(&channel.id) {
                    self.ended_channels.retain(|c| c != &channel.id);
                }
                self.on_stasis_start(&event.application, args, channel, routing)
            }
            EventKind::ChannelDtmfReceived { digit, channel, .. } => {
                if let Some(d) = digit.chars().next() {
                    self.on_dtmf(&channel.id, d, routing);
                }
            }
            EventKind::StasisEnd { channel } => {
                self.remember_ended(&channel.id);
                self.on_channel_gone(&channel.id, None)
            }
            EventKind::ChannelDestroyed { channel, cause, .. } => {
                self.remember_ended(&channel.id);
                self.on_channel_gone(&channel.id, Some(cause))
            }
            EventKind::ChannelHangupRequest { channel, cause, .. } => self.on_channel_gone(&channel.id, cause),
            EventKind::ChannelEnteredBridge { bridge, channel: Some(channel) } => {
                self.on_entered_bridge(&bridge.id, &channel.id)
            }
            EventKind::PlaybackFinished { playback } => self.on_playback_finished(&playback.id, routing),
            _ => self.counters.events_ignored += 1,
        }
    }

    pub(super) fn on_stasis_start(
        &mut self,
        application: &str,
        args: Vec<String>,
        ch: lineup_ari::Channel,
        routing: &Routing,
    ) {
        let id = ch.id.clone();
        // A ring-mode operator leg we originated answered.
        if let Some((call, fence)) = self.ring_legs.get(&id).cloned() {
            let callback = self.offers.get(&(call.clone(), fence)).and_then(|e| match &e.kind {
                ExecKind::Callback { .. } => Some(e.caller_channel == id),
                _ => None,
            });
            match callback {
                // The callee answered: connect it with the operator.
                Some(true) => self.operator_answered(&call, fence),
                // A ring-mode operator answered a callback: now place the call to the number.
                Some(false) => self.dial_callee(&call, fence),
                None => self.operator_answered(&call, fence),
            }
            return;
        }
        // Already known (adopted by a reconcile that raced this event, or a duplicate).
        if self.callers.contains_key(&id) || self.logins.contains_key(&id) || self.operator_channels.contains_key(&id) {
            return;
        }
        if self.callers.len() + self.logins.len() + self.operators.len() >= SITE_CHANNELS_MAX {
            self.continue_with(&id, "FAILED", vec![]);
            return;
        }
        match parse_stasis_entry(application, &args) {
            Ok(StasisEntry::Caller { queue, gate, priority }) => {
                self.counters.callers_entered += 1;
                let call = self.call_id_for(&id);
                self.callers.insert(
                    id.clone(),
                    CallerLeg {
                        call: call.clone(),
                        number: ch.caller.number.clone(),
                        state: CallerState::Entering,
                        playback: None,
                        callback_offered: false,
                        hung_up: false,
                        hangup_after: None,
                        queued_prompt: None,
                        callback_entry: None,
                    },
                );
                self.call_channels.insert(call.clone(), id.clone());
                self.ari(AriRequest::Answer(id.clone()));
                self.start_moh(&id);
                let printable =
                    |s: &str| s.chars().filter(|c| !c.is_control() && *c != '|').take(64).collect::<String>();
                self.propose(
                    CommandBody::Enqueue(Enqueue {
                        call,
                        queue: QueueId::new(queue),
                        gate: gate.map(GateId::new),
                        priority,
                        caller_number: printable(&ch.caller.number),
                        caller_name: printable(&ch.caller.name),
                        site: self.cfg.site,
                        channel: Some(id.as_str().to_string()),
                        skills: Default::default(),
                        callback_number: None,
                    }),
                    Purpose::Enqueue { channel: id },
                );
            }
            Ok(StasisEntry::OperatorLogin { operator }) => {
                let from_dialplan = operator.is_some();
                let operator = operator.map(OperatorId::new);
                self.ari(AriRequest::Answer(id.clone()));
                let prompt = if operator.is_some() { prompts::SOUND_AGENT_PASS } else { prompts::SOUND_AGENT_USER };
                let playback = self.play(&id, vec![Media::Sound(prompt.into())]);
                self.logins.insert(
                    id,
                    LoginSession {
                        operator,
                        operator_from_dialplan: from_dialplan,
                        stage: if from_dialplan { LoginStage::AskPin } else { LoginStage::AskId },
                        digits: String::new(),
                        deadline_ms: None,
                        attempts: 0,
                        playback,
                    },
                );
                let _ = routing;
            }
            Ok(StasisEntry::TrunkLeg { call }) => self.trunk_leg_arrived(&CallId::new(call), id),
            Err(_) => {
                // A bad entry goes back to the dialplan: no caller is ever left in Stasis.
                self.counters.callers_invalid += 1;
                self.continue_with(&id, "INVALID", vec![]);
            }
        }
    }

    fn on_dtmf(&mut self, ch: &ChannelId, digit: char, routing: &Routing) {
        if let Some(leg) = self.callers.get(ch) {
            if !matches!(leg.state, CallerState::Entering | CallerState::Waiting) {
                return;
            }
            let call = leg.call.clone();
            match (leg.callback_entry.clone(), digit) {
                (None, CALLBACK_ACCEPT_KEY) if leg.callback_offered => {
                    // Confirm the caller id if it is a number we can call, else ask for one.
                    match callback_number(&leg.number) {
                        Some(number) => self.callback_prompt(
                            ch,
                            Some(CallbackEntry::Confirming { number: number.clone() }),
                            vec![
                                Media::Sound(prompts::SOUND_CALLBACK_NUMBER_IS.into()),
                                Media::Digits(number.trim_start_matches('+').to_string()),
                                Media::Sound(prompts::SOUND_CALLBACK_CONFIRM_KEYS.into()),
                            ],
                        ),
                        None => self.start_keying(ch),
                    }
                }
                (None, key) if self.cfg.exit_keys.contains(key) => {
                    self.report(CommandBody::ExitWithKey { call, key });
                }
                (Some(CallbackEntry::Confirming { number }), CALLBACK_ACCEPT_KEY) => {
                    self.commit_callback(ch, number);
                }
                (Some(CallbackEntry::Confirming { .. }), CALLBACK_OTHER_NUMBER_KEY) => self.start_keying(ch),
                (Some(CallbackEntry::Keying { .. }), '#') => self.finish_keying(ch),
                (Some(CallbackEntry::Keying { .. }), '*') => {
                    // Changed their mind: keep waiting.
                    if let Some(leg) = self.callers.get_mut(ch) {
                        leg.callback_entry = None;
                    }
                }
                (Some(CallbackEntry::Keying { mut digits, .. }), d) if d.is_ascii_digit() => {
                    if digits.len() <= CALLBACK_DIGITS_MAX {
                        digits.push(d);
                    }
                    let deadline_ms = self.now_ms + DIGIT_TIMEOUT_MS;
                    if let Some(leg) = self.callers.get_mut(ch) {
                        leg.callback_entry = Some(CallbackEntry::Keying { digits, deadline_ms });
                    }
                }
                _ => {}
            }
            return;
        }
        if self.logins.contains_key(ch) {
            self.login_digit(ch, digit, routing);
        }
    }

    /// A channel hung up or left Stasis; `cause` is the Q.850 hangup cause when the event
    /// carried one.
    pub(super) fn on_channel_gone(&mut self, ch: &ChannelId, cause: Option<i32>) {
        self.early_trunks.retain(|_, (inbound, _)| inbound != ch);
        if let Some(leg) = self.callers.get_mut(ch) {
            let call = leg.call.clone();
            match leg.state.clone() {
                CallerState::Entering => leg.hung_up = true,
                CallerState::Waiting | CallerState::Offered { .. } => {
                    leg.state = CallerState::Leaving;
                    self.report(CommandBody::Abandoned { call });
                }
                CallerState::Connected { fence } => {
                    leg.state = CallerState::Leaving;
                    self.report(CommandBody::Completed { call: call.clone(), fence, by: HungUpBy::Caller });
                    self.end_connected_offer(&call, fence, HungUpBy::Caller);
                }
                CallerState::Leaving => {
                    self.forget_caller(ch);
                }
            }
            return;
        }
        if let Some((call, fence)) = self.ring_legs.get(ch).cloned() {
            self.ring_legs.remove(ch);
            let Some(exec) = self.offers.get(&(call.clone(), fence)) else { return };
            if let ExecKind::Callback { .. } = exec.kind {
                let (operator, connected) = (exec.operator.clone(), exec.stage == OfferStage::Connected);
                let callee_gone = &exec.caller_channel == ch;
                let callee_dialled = self.ring_legs.values().filter(|v| **v == (call.clone(), fence)).count() > 0;
                if connected {
                    let by = if callee_gone { HungUpBy::Caller } else { HungUpBy::Operator };
                    self.report(CommandBody::Completed { call: call.clone(), fence, by });
                    self.end_connected_offer(&call, fence, by);
                } else {
                    let exec = self.offers.remove(&(call.clone(), fence)).expect("present");
                    let operator_rang_out = !callee_gone && exec.mode == OperatorMode::Ring;
                    self.undo_offer(exec);
                    if operator_rang_out && !callee_dialled {
                        self.report(CommandBody::RingNoAnswer { call, operator, fence });
                    } else {
                        self.report(CommandBody::CallbackResult { call, operator, fence, answered: false });
                    }
                }
                return;
            }
            if exec.stage == OfferStage::Ringing && exec.kind == ExecKind::TrunkOut {
                // Ended unanswered. Cleared normally (or unanswered) by the operator's site,
                // which then reports why itself; refused or failed on the way (the far box
                // has no Lineup node running, the trunk is down or congested), reported here
                // at once so the caller is offered again and the operator is not charged.
                let operator = exec.operator.clone();
                let exec = self.offers.remove(&(call.clone(), fence)).expect("present");
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
            } else if exec.stage == OfferStage::Ringing {
                // Never answered: the operator missed the offer.
                let operator = exec.operator.clone();
                let exec = self.offers.remove(&(call.clone(), fence)).expect("present");
                self.undo_offer(exec);
                self.report(CommandBody::RingNoAnswer { call, operator, fence });
            } else if exec.stage == OfferStage::Connected {
                self.operator_hung_up(&call, fence);
            } else {
                let operator = exec.operator.clone();
                self.fail_offer(&call, fence, &operator, OfferFailure::BridgeFailed);
            }
            return;
        }
        if let Some(key) = self
            .offers
            .iter()
            .find(|(_, e)| e.kind == ExecKind::TrunkIn && &e.caller_channel == ch)
            .map(|(k, _)| k.clone())
        {
            // The caller's site ended the trunk call (caller gone, offer cancelled, or the call
            // completed there). That site reports; here only the operator side is tidied.
            let exec = self.offers.remove(&key).expect("present");
            if exec.stage == OfferStage::Connected {
                self.offers.insert(key.clone(), exec);
                self.end_connected_offer(&key.0, key.1, HungUpBy::Caller);
            } else {
                self.undo_offer(exec);
            }
            return;
        }
        if let Some(operator) = self.operator_channels.get(ch).cloned() {
            // A persistent operator's leg is gone.
            let busy = self.operators.get(&operator).and_then(|l| l.busy_with);
            if let Some(fence) = busy {
                if let Some(call) = self.offers.keys().find(|(_, f)| *f == fence).map(|(c, _)| c.clone()) {
                    let stage = self.offers[&(call.clone(), fence)].stage.clone();
                    if stage == OfferStage::Connected {
                        self.operator_hung_up(&call, fence);
                    } else {
                        self.fail_offer(&call, fence, &operator, OfferFailure::OperatorUnreachable);
                    }
                }
            }
            if let Some(leg) = self.operators.remove(&operator) {
                self.ari(AriRequest::DestroyBridge(leg.holding));
            }
            self.operator_channels.remove(ch);
            self.logins.remove(ch);
            self.report(CommandBody::OperatorLogout { operator });
            return;
        }
        if self.logins.remove(ch).is_some() {
            return;
        }
        self.counters.events_ignored += 1;
    }

    fn on_playback_finished(&mut self, playback: &PlaybackId, routing: &Routing) {
        let Some(ch) = self.playbacks.remove(playback) else { return };
        if let Some(leg) = self.callers.get_mut(&ch) {
            if leg.playback.as_ref() == Some(playback) {
                leg.playback = None;
                let waiting = matches!(leg.state, CallerState::Entering | CallerState::Waiting);
                if leg.hangup_after.as_ref() == Some(playback) {
                    self.ari(AriRequest::Hangup(ch.clone(), HangupReason::Normal));
                } else if let (true, Some(media)) = (waiting, leg.queued_prompt.take()) {
                    let next = self.play(&ch, media);
                    if let Some(leg) = self.callers.get_mut(&ch) {
                        leg.playback = next;
                    }
                } else if waiting {
                    // A play pauses hold music for good: resume it.
                    self.start_moh(&ch);
                }
            }
            return;
        }
        if let Some(key) =
            self.offers.iter().find(|(_, e)| e.whisper_playback.as_ref() == Some(playback)).map(|(k, _)| k.clone())
        {
            let exec = self.offers.get_mut(&key).expect("found");
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
            return;
        }
        if let Some(session) = self.logins.get_mut(&ch) {
            if session.playback.as_ref() != Some(playback) {
                return;
            }
            session.playback = None;
            match session.stage {
                LoginStage::Closing | LoginStage::RingDone => {
                    self.logins.remove(&ch);
                    self.ari(AriRequest::Hangup(ch, HangupReason::Normal));
                }
                LoginStage::AskId | LoginStage::AskPin => {
                    session.deadline_ms = Some(self.now_ms + DIGIT_TIMEOUT_MS);
                }
                _ => {}
            }
            let _ = routing;
        }
    }

    fn remember_ended(&mut self, ch: &ChannelId) {
        if !self.ended_channel_set.insert(ch.clone()) {
            return;
        }
        self.ended_channels.push_back(ch.clone());
        if self.ended_channels.len() > ENDED_CHANNELS_REMEMBERED_MAX {
            if let Some(oldest) = self.ended_channels.pop_front() {
                self.ended_channel_set.remove(&oldest);
            }
        }
    }
}
