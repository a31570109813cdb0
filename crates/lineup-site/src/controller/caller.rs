//! Caller legs: entry into the queue, announcements, exit keys, the callback dialogue, and
//! the caller's way out (dialplan, hangup).

use super::config::{CALLBACK_DIGITS_MAX, CALLBACK_DIGITS_MIN, DIGIT_TIMEOUT_MS};
use super::legs::{CallbackEntry, CallerState};
use super::output::Purpose;
use super::SiteController;
use crate::io::AriRequest;
use crate::prompts;
use lineup_ari::{ChannelId, HangupReason, Media};
use lineup_core::{CommandBody, CoreError, Outcome, Response, Routing};

/// A callback number as the core accepts it (E.164: an optional `+`, at most 15 digits).
pub(super) fn callback_number(number: &str) -> Option<String> {
    let digits = number.strip_prefix('+').unwrap_or(number);
    let ok = (CALLBACK_DIGITS_MIN..=CALLBACK_DIGITS_MAX).contains(&digits.len())
        && digits.bytes().all(|b| b.is_ascii_digit());
    ok.then(|| number.to_string())
}

impl SiteController {
    /// Plays a callback prompt (after any prompt in progress) and moves the entry on.
    pub(super) fn callback_prompt(&mut self, ch: &ChannelId, entry: Option<CallbackEntry>, media: Vec<Media>) {
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

    pub(super) fn start_keying(&mut self, ch: &ChannelId) {
        let deadline_ms = self.now_ms + DIGIT_TIMEOUT_MS + prompts::PROMPT_ALLOWANCE_MS;
        self.callback_prompt(
            ch,
            Some(CallbackEntry::Keying { digits: String::new(), deadline_ms }),
            vec![Media::Sound(prompts::SOUND_CALLBACK_ENTER_NUMBER.into())],
        );
    }

    /// The keyed number is complete (`#` or silence): use it if valid, else say so and let
    /// the caller wait on (pressing 1 again starts over).
    pub(super) fn finish_keying(&mut self, ch: &ChannelId) {
        let Some(leg) = self.callers.get_mut(ch) else { return };
        let Some(CallbackEntry::Keying { digits, .. }) = leg.callback_entry.take() else { return };
        match callback_number(&digits) {
            Some(number) => self.commit_callback(ch, number),
            None => self.callback_prompt(ch, None, vec![Media::Sound(prompts::SOUND_CALLBACK_INVALID.into())]),
        }
    }

    pub(super) fn commit_callback(&mut self, ch: &ChannelId, number: String) {
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
                } else {
                    self.ari(AriRequest::StopMoh(ch.clone()));
                    self.continue_with(ch, "INVALID", vec![]);
                }
            }
        }
    }
}
