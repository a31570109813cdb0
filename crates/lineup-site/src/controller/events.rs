//! ARI events in: deduplicated, then routed to the caller, offer or login machine that owns
//! the channel.

use super::config::{ENDED_CHANNELS_REMEMBERED_MAX, SITE_CHANNELS_MAX};
use super::legs::ExecKind;
use super::SiteController;
use lineup_ari::{parse_stasis_entry, AriEvent, ChannelId, EventKind, PlaybackId, StasisEntry};
use lineup_core::{CallId, Routing};

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
        // The driver's own missed-caller reader: nothing to route, and no room taken. The
        // driver hangs it up once it has read the records.
        if matches!(parse_stasis_entry(application, &args), Ok(StasisEntry::MissedReader)) {
            self.counters.missed_readers_ignored += 1;
            return;
        }
        if let Some((call, fence)) = self.ring_legs.get(&id).cloned() {
            return self.ring_leg_answered(&id, &call, fence);
        }
        if let Some(session) = self.monitor_channels.get(&id).copied() {
            return self.monitor_leg_answered(session, &id);
        }
        // A monitoring leg or snoop a run before a restart left: monitoring is not resumed.
        if id.as_str().starts_with(super::monitor::MONITOR_ID_PREFIX) {
            self.ari(crate::io::AriRequest::Hangup(id, lineup_ari::HangupReason::Normal));
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
            Ok(StasisEntry::Caller { queue, gate, priority }) => self.caller_entered(ch, queue, gate, priority),
            Ok(StasisEntry::OperatorLogin { operator }) => self.login_entered(id, ch.name, operator),
            Ok(StasisEntry::TrunkLeg { call }) => {
                if !self.take_monitor_trunk(&call, &id) {
                    self.trunk_leg_entered(&CallId::new(call), id, routing)
                }
            }
            // Returned above, before the room check.
            Ok(StasisEntry::MissedReader) => {}
            Err(_) => {
                // A bad entry goes back to the dialplan: no caller is ever left in Stasis.
                self.counters.callers_invalid += 1;
                self.continue_with(&id, "INVALID", vec![]);
            }
        }
        let _ = routing;
    }

    /// A leg this site originated for an offer answered: a ring-mode operator, or the callee
    /// of a callback.
    pub(super) fn ring_leg_answered(&mut self, leg: &ChannelId, call: &CallId, fence: u64) {
        let callback = self.offers.get(&(call.clone(), fence)).and_then(|e| match &e.kind {
            ExecKind::Callback { .. } => Some(&e.caller_channel == leg),
            _ => None,
        });
        match callback {
            // The callee answered: connect it with the operator.
            Some(true) => self.operator_answered(call, fence),
            // A ring-mode operator answered a callback: now place the call to the number.
            Some(false) => self.dial_callee(call, fence),
            None => self.operator_answered(call, fence),
        }
    }

    fn on_dtmf(&mut self, ch: &ChannelId, digit: char, routing: &Routing) {
        if self.callers.contains_key(ch) {
            return self.caller_dtmf(ch, digit);
        }
        if self.logins.contains_key(ch) {
            self.login_digit(ch, digit, routing);
        }
    }

    /// A channel hung up or left Stasis; `cause` is the Q.850 hangup cause when the event
    /// carried one.
    pub(super) fn on_channel_gone(&mut self, ch: &ChannelId, cause: Option<i32>) {
        self.early_trunks.retain(|_, (inbound, _)| inbound != ch);
        if let Some(session) = self.monitor_channels.get(ch).copied() {
            return self.monitor_leg_gone(session, ch);
        }
        if self.callers.contains_key(ch) {
            return self.caller_gone(ch);
        }
        if let Some((call, fence)) = self.ring_legs.remove(ch) {
            let Some(exec) = self.offers.get(&(call.clone(), fence)) else { return };
            if let ExecKind::Callback { .. } = exec.kind {
                return self.callback_leg_gone(ch, call, fence);
            }
            return self.offer_leg_gone(call, fence, cause);
        }
        if let Some(key) = self.trunk_in_carried_by(ch) {
            return self.trunk_in_gone(key);
        }
        if let Some(operator) = self.operator_channels.get(ch).cloned() {
            return self.operator_leg_gone(ch, operator);
        }
        if self.logins.remove(ch).is_some() {
            return;
        }
        self.counters.events_ignored += 1;
    }

    fn on_playback_finished(&mut self, playback: &PlaybackId, routing: &Routing) {
        let Some(ch) = self.playbacks.remove(playback) else { return };
        if self.callers.contains_key(&ch) {
            return self.caller_playback_finished(&ch, playback);
        }
        if let Some(key) =
            self.offers.iter().find(|(_, e)| e.whisper_playback.as_ref() == Some(playback)).map(|(k, _)| k.clone())
        {
            return self.whisper_finished(key);
        }
        if self.logins.contains_key(&ch) {
            self.login_playback_finished(ch, playback);
        }
        let _ = routing;
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
        debug_assert_eq!(self.ended_channels.len(), self.ended_channel_set.len());
        debug_assert!(self.ended_channels.len() <= ENDED_CHANNELS_REMEMBERED_MAX);
    }
}
