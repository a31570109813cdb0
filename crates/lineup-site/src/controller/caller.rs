//! Caller legs: entry into the queue, announcements, exit keys, the callback dialogue, and
//! the caller's way out (dialplan, hangup).

use super::config::{CALLBACK_ACCEPT_KEY, CALLBACK_OTHER_NUMBER_KEY, DIGIT_TIMEOUT_MS};
use super::legs::{CallbackEntry, CallerLeg, CallerState};
use super::missed::UNAVAILABLE_RESULT;
use super::output::Purpose;
use super::proposals::never_committed;
use super::SiteController;
use crate::io::AriRequest;
use crate::prompts;
use lineup_ari::{ChannelId, HangupReason, Media, PlaybackId};
use lineup_core::{
    Announcement, CommandBody, CoreError, Enqueue, GateId, HungUpBy, Outcome, QueueId, Response, Routing,
};

/// A callback number as the core accepts it (`lineup_core::is_callback_number`).
pub(super) fn callback_number(number: &str) -> Option<String> {
    lineup_core::is_callback_number(number).then(|| number.to_string())
}

impl SiteController {
    /// A caller entered the queue's Stasis application: answered, hold music, `Enqueue`.
    pub(super) fn caller_entered(
        &mut self,
        ch: lineup_ari::Channel,
        queue: String,
        gate: Option<String>,
        priority: Option<u8>,
    ) {
        let id = ch.id.clone();
        self.counters.callers_entered += 1;
        let call = self.call_id_for(&id);
        self.callers.insert(id.clone(), CallerLeg::new(call.clone(), ch.caller.number.clone(), CallerState::Entering));
        self.call_channels.insert(call.clone(), id.clone());
        self.ari(AriRequest::Answer(id.clone()));
        self.start_moh(&id);
        let printable = |s: &str| s.chars().filter(|c| !c.is_control() && *c != '|').take(64).collect::<String>();
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

    /// A key from a waiting caller: an exit key, or a step of the callback dialogue.
    pub(super) fn caller_dtmf(&mut self, ch: &ChannelId, digit: char) {
        let Some(leg) = self.callers.get(ch) else { return };
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
            (Some(CallbackEntry::Keying { digits, .. }), d) if d.is_ascii_digit() => {
                self.key_callback_digit(ch, digits, d)
            }
            _ => {}
        }
    }

    fn key_callback_digit(&mut self, ch: &ChannelId, mut digits: String, digit: char) {
        // One digit past the longest number is kept, so a number too long is refused rather
        // than cut short.
        if digits.len() <= lineup_core::CALLBACK_NUMBER_MAX_DIGITS {
            digits.push(digit);
        }
        debug_assert!(digits.len() <= lineup_core::CALLBACK_NUMBER_MAX_DIGITS + 1);
        let deadline_ms = self.now_ms + DIGIT_TIMEOUT_MS;
        if let Some(leg) = self.callers.get_mut(ch) {
            leg.callback_entry = Some(CallbackEntry::Keying { digits, deadline_ms });
        }
    }

    /// Callers whose keyed number ended by silence.
    pub(super) fn end_timed_out_keying(&mut self) {
        let now = self.now_ms;
        let keyed_out: Vec<ChannelId> = self
            .callers
            .iter()
            .filter(|(_, l)| matches!(l.callback_entry, Some(CallbackEntry::Keying { deadline_ms, .. }) if deadline_ms <= now))
            .map(|(c, _)| c.clone())
            .collect();
        for ch in keyed_out {
            self.finish_keying(&ch);
        }
    }

    /// Plays a callback prompt (after any prompt in progress) and moves the entry on.
    fn callback_prompt(&mut self, ch: &ChannelId, entry: Option<CallbackEntry>, media: Vec<Media>) {
        let Some(leg) = self.callers.get_mut(ch) else { return };
        leg.callback_entry = entry;
        if leg.playback.is_some() {
            leg.queued_prompt = Some(media);
            return;
        }
        let playback = self.play(ch, media);
        if let Some(leg) = self.callers.get_mut(ch) {
            leg.playback = playback;
        }
    }

    fn start_keying(&mut self, ch: &ChannelId) {
        let deadline_ms = self.now_ms + DIGIT_TIMEOUT_MS + prompts::PROMPT_ALLOWANCE_MS;
        self.callback_prompt(
            ch,
            Some(CallbackEntry::Keying { digits: String::new(), deadline_ms }),
            vec![Media::Sound(prompts::SOUND_CALLBACK_ENTER_NUMBER.into())],
        );
    }

    /// The keyed number is complete (`#` or silence): use it if valid, else say so and let
    /// the caller wait on (pressing 1 again starts over).
    fn finish_keying(&mut self, ch: &ChannelId) {
        let Some(leg) = self.callers.get_mut(ch) else { return };
        let Some(CallbackEntry::Keying { digits, .. }) = leg.callback_entry.take() else { return };
        match callback_number(&digits) {
            Some(number) => self.commit_callback(ch, number),
            None => self.callback_prompt(ch, None, vec![Media::Sound(prompts::SOUND_CALLBACK_INVALID.into())]),
        }
    }

    fn commit_callback(&mut self, ch: &ChannelId, number: String) {
        let Some(leg) = self.callers.get_mut(ch) else { return };
        leg.callback_entry = None;
        let call = leg.call.clone();
        // The promise is committed before the caller hears the confirmation.
        self.propose(CommandBody::RequestCallback { call, number }, Purpose::Callback { channel: ch.clone() });
    }

    pub(super) fn exit_caller(&mut self, ch: &ChannelId, outcome: &Outcome) {
        let Some(leg) = self.callers.get_mut(ch) else { return };
        if leg.state == CallerState::Leaving {
            return;
        }
        leg.state = CallerState::Leaving;
        let mut extra = Vec::new();
        if let Outcome::ExitWithKey { key } = outcome {
            extra.push(("LINEUP_KEY".to_string(), key.to_string()));
        }
        self.ari(AriRequest::StopMoh(ch.clone()));
        self.continue_with(ch, outcome.dialplan_result(), extra);
    }

    /// A supervisor hung up this caller: the channel is hung up, and its end is reported as
    /// any hangup is (abandoned while waiting or offered, completed once connected). A caller
    /// already leaving (sent back to the dialplan) or unknown here is left alone.
    pub(super) fn hang_up_caller(&mut self, ch: &ChannelId) {
        let Some(leg) = self.callers.get(ch) else { return };
        if leg.state == CallerState::Leaving {
            return;
        }
        self.ari(AriRequest::Hangup(ch.clone(), HangupReason::Normal));
    }

    pub(super) fn forget_caller(&mut self, ch: &ChannelId) {
        if let Some(leg) = self.callers.remove(ch) {
            self.call_channels.remove(&leg.call);
        }
    }

    pub(super) fn on_enqueued(&mut self, ch: &ChannelId, result: lineup_core::CommandResult, routing: &Routing) {
        let Some(leg) = self.callers.get_mut(ch) else { return };
        if leg.state == CallerState::Leaving {
            return;
        }
        // The call is already queued: this entry was re-announced by a reconcile that read a
        // view not yet caught up (a restart replays its log before it hears the leader), so
        // the caller is in line already. (A call that ended is refused too, and is not live.)
        use lineup_core::CallStatus;
        let existing = match &result {
            Err(CoreError::DuplicateCall(call)) if *call == leg.call => routing.call_view(call).map(|v| v.status),
            _ => None,
        };
        let already_in_line =
            matches!(existing, Some(CallStatus::Waiting | CallStatus::Offered | CallStatus::Connected));
        match result {
            _ if matches!(
                existing,
                Some(CallStatus::CallbackWaiting | CallStatus::CallbackOffered | CallStatus::CallbackConnected)
            ) =>
            {
                // The caller took a callback and heard it confirmed; this is the leftover line.
                if leg.hung_up {
                    // Already gone (its StasisEnd came while this Enqueue was in flight), so
                    // no further event will end the leg: forget it now.
                    self.forget_caller(ch);
                } else {
                    leg.state = CallerState::Leaving;
                    self.ari(AriRequest::Hangup(ch.clone(), HangupReason::Normal));
                }
            }
            result if already_in_line || matches!(result, Ok(Response::Enqueued { exit: None, .. })) => {
                if already_in_line {
                    self.counters.channels_adopted += 1;
                }
                if leg.state == CallerState::Entering {
                    leg.state = CallerState::Waiting;
                }
                if leg.hung_up {
                    // Hung up before the Enqueue committed: it is in the queue now, so abandon.
                    // The channel's StasisEnd has come already, so nothing else ends the leg.
                    let call = leg.call.clone();
                    self.report(CommandBody::Abandoned { call });
                    self.forget_caller(ch);
                } else {
                    self.ari(AriRequest::MarkQueued(ch.clone()));
                }
            }
            Ok(Response::Enqueued { exit: Some(_), .. }) if leg.hung_up => {
                // Refused at once (FULL, CLOSED, EMPTY) and already gone: nothing to send back.
                self.forget_caller(ch);
            }
            Ok(Response::Enqueued { exit: Some(outcome), .. }) => {
                // The Exit effect carries the same outcome; act once, whichever comes first.
                leg.state = CallerState::Waiting;
                self.exit_caller(ch, &outcome);
            }
            Ok(_) | Err(_) => {
                self.counters.callers_invalid += 1;
                let hung_up = leg.hung_up;
                leg.state = CallerState::Leaving;
                if hung_up {
                    self.forget_caller(ch);
                    // Never queued: the dialplan's hangup handler left a missed-caller record
                    // (no LINEUP_QUEUED on the channel); book it now rather than at the next
                    // reconnect.
                    if never_committed(&result) {
                        self.ask_for_missed_records();
                    }
                } else {
                    self.ari(AriRequest::StopMoh(ch.clone()));
                    let handed_back = entry_refused_result(&result);
                    if handed_back == UNAVAILABLE_RESULT {
                        self.watch_fallback();
                    }
                    self.continue_with(ch, handed_back, vec![]);
                }
            }
        }
    }

    /// The caller's channel hung up or left Stasis.
    pub(super) fn caller_gone(&mut self, ch: &ChannelId) {
        let Some(leg) = self.callers.get_mut(ch) else { return };
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
    }

    /// A caller's prompt ended: hang up after the last one, play the next, or resume hold music.
    pub(super) fn caller_playback_finished(&mut self, ch: &ChannelId, playback: &PlaybackId) {
        let Some(leg) = self.callers.get_mut(ch) else { return };
        if leg.playback.as_ref() != Some(playback) {
            return;
        }
        leg.playback = None;
        let waiting = matches!(leg.state, CallerState::Entering | CallerState::Waiting);
        if leg.hangup_after.as_ref() == Some(playback) {
            self.ari(AriRequest::Hangup(ch.clone(), HangupReason::Normal));
        } else if let (true, Some(media)) = (waiting, leg.queued_prompt.take()) {
            let next = self.play(ch, media);
            if let Some(leg) = self.callers.get_mut(ch) {
                leg.playback = next;
            }
        } else if waiting {
            // A play pauses hold music for good: resume it.
            self.start_moh(ch);
        }
    }

    pub(super) fn on_announce(&mut self, ch: &ChannelId, announcement: &Announcement) {
        let Some(leg) = self.callers.get(ch) else { return self.untracked_caller() };
        // Effects of the Enqueue can arrive before its result: Entering counts as waiting.
        let waiting = matches!(leg.state, CallerState::Entering | CallerState::Waiting);
        if !waiting || leg.hung_up || leg.playback.is_some() {
            return; // never stack prompts; the next announcement comes soon enough
        }
        let playback = self.play(ch, prompts::announcement_media(announcement));
        if let Some(leg) = self.callers.get_mut(ch) {
            leg.playback = playback;
        }
    }

    pub(super) fn on_callback_offered(&mut self, ch: &ChannelId) {
        let Some(leg) = self.callers.get_mut(ch) else { return self.untracked_caller() };
        if !matches!(leg.state, CallerState::Entering | CallerState::Waiting) || leg.hung_up {
            return;
        }
        leg.callback_offered = true;
        let prompt = vec![Media::Sound(prompts::SOUND_CALLBACK_OFFER.into())];
        if leg.playback.is_some() {
            leg.queued_prompt = Some(prompt); // right after the position announcement
        } else {
            let playback = self.play(ch, prompt);
            if let Some(leg) = self.callers.get_mut(ch) {
                leg.playback = playback;
            }
        }
    }

    /// The callback promise committed: the caller hears it confirmed, then is hung up.
    pub(super) fn on_callback_committed(&mut self, ch: &ChannelId, result: &lineup_core::CommandResult) {
        match result {
            Ok(Response::CallbackAccepted { .. }) => {
                // Committed before the caller hears the confirmation.
                let playback = self.play(ch, vec![Media::Sound(prompts::SOUND_CALLBACK_CONFIRMED.into())]);
                if let Some(leg) = self.callers.get_mut(ch) {
                    leg.state = CallerState::Leaving;
                    leg.playback = playback.clone();
                    leg.hangup_after = playback;
                }
            }
            // The callback policy denies the number, or the core found it invalid: the caller
            // hears so and waits on in its place (pressing 1 again starts over).
            Ok(Response::CallbackDenied { .. }) | Err(CoreError::InvalidField { .. }) => {
                self.callback_prompt(ch, None, vec![Media::Sound(prompts::SOUND_CALLBACK_INVALID.into())]);
            }
            _ => {}
        }
    }
}

/// `LINEUP_RESULT` for a caller whose entry failed: `UNAVAILABLE` when it never committed
/// (no quorum heard through all its retries: the deploy dialplan sends the caller to the
/// box's own fallback, as when the node is down, rather than hanging up), `INVALID` when the
/// core refused it (an unknown queue or gate: the dialplan's mistake, not the cluster's).
fn entry_refused_result<T>(result: &Result<T, CoreError>) -> &'static str {
    if never_committed(result) {
        UNAVAILABLE_RESULT
    } else {
        "INVALID"
    }
}
