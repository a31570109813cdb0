//! Operator login by phone: operator id and PIN digits, the delegated PIN check, lockout,
//! logout, and the persistent operator legs held in holding bridges.

use super::config::{DIGITS_MAX, DIGIT_TIMEOUT_MS, LOGIN_ATTEMPTS_MAX};
use super::legs::{LoginSession, LoginStage, OfferStage, OperatorLeg};
use super::output::{Pending, Purpose};
use super::proposals::never_committed;
use super::SiteController;
use crate::io::{Action, AriRequest};
use crate::pin::{Pin, PinHash};
use crate::prompts;
use lineup_ari::{BridgeId, BridgeType, ChannelId, CreateBridgeRequest, HangupReason, Media, PlaybackId};
use lineup_core::{CommandBody, LoginChannel, OfferFailure, OperatorId, OperatorMode, Response, Routing};

impl SiteController {
    /// A login call entered the login application: answered, asked for the operator id, or
    /// for the PIN when the dialplan names the operator.
    pub(super) fn login_entered(&mut self, id: ChannelId, channel_name: String, operator: Option<String>) {
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
                channel_name,
            },
        );
    }

    /// A login prompt ended: hang up after the last one, or start timing the digit entry.
    pub(super) fn login_playback_finished(&mut self, ch: ChannelId, playback: &PlaybackId) {
        let Some(session) = self.logins.get_mut(&ch) else { return };
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
    }

    /// Login calls whose digit entry ended by silence.
    pub(super) fn end_timed_out_digits(&mut self, routing: &Routing) {
        let now = self.now_ms;
        let expired: Vec<ChannelId> = self
            .logins
            .iter()
            .filter(|(_, s)| s.deadline_ms.is_some_and(|d| d <= now))
            .map(|(c, _)| c.clone())
            .collect();
        for ch in expired {
            self.finish_digits(&ch, routing);
        }
    }

    /// The logout by `#` committed (or was refused): the operator's legs here are released
    /// if it is offline now, and the login call hears that it is logged off.
    pub(super) fn on_logout_committed(&mut self, channel: &ChannelId, result: &lineup_core::CommandResult) {
        if matches!(result, Ok(Response::Done)) {
            // Offline now (a busy operator goes offline after the call instead).
            if let Some(operator) = self.logins.get(channel).and_then(|s| s.operator.clone()) {
                self.release_operator_legs(&operator, None);
            }
        }
        let playback = self.play(channel, vec![Media::Sound(prompts::SOUND_AGENT_LOGGED_OFF.into())]);
        if let Some(s) = self.logins.get_mut(channel) {
            s.stage = LoginStage::Closing;
            s.playback = playback;
        }
    }

    /// A persistent operator's leg is gone: its offer ends or fails, its holding bridge goes,
    /// and it is logged out.
    pub(super) fn operator_leg_gone(&mut self, ch: &ChannelId, operator: OperatorId) {
        let busy = self.operators.get(&operator).and_then(|l| l.busy_with);
        if let Some(fence) = busy {
            // One entry may offer several callers, all under its fence: the operator picks theirs.
            let mine = self.offers.iter().find(|((_, f), exec)| *f == fence && exec.operator == operator);
            if let Some(call) = mine.map(|((c, _), _)| c.clone()) {
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
    }

    /// Logged out from elsewhere (a supervisor, the API, a login at another site): a
    /// persistent leg held here has nothing left to wait for, so it is hung up. A leg still
    /// in its own login dialogue is left to it (a `#` logout plays agent-loggedoff first).
    /// The effect can be stale: when the state applied by now has the operator logged in
    /// again here (a new leg whose login result came before this older effect), the offline
    /// belonged to the previous session and changes nothing.
    pub(super) fn on_operator_offline(&mut self, operator: &OperatorId, routing: &Routing) {
        if !self.operators.contains_key(operator) {
            return;
        }
        let logged_in_here = routing.operator_view(operator).is_some_and(|view| {
            view.status != lineup_core::OperatorStatus::Offline
                && view.site == Some(self.cfg.site)
                && view
                    .channel
                    .as_deref()
                    .and_then(super::legs::channel)
                    .is_some_and(|ch| self.operator_channels.get(&ch) == Some(operator))
        });
        if logged_in_here {
            return;
        }
        let in_dialogue = self
            .operator_channels
            .iter()
            .filter(|(_, op)| *op == operator)
            .any(|(ch, _)| self.logins.get(ch).is_some_and(|s| s.stage != LoginStage::Holding));
        if !in_dialogue {
            self.release_operator_legs(operator, None);
        }
    }

    pub(super) fn login_digit(&mut self, ch: &ChannelId, digit: char, routing: &Routing) {
        let Some(session) = self.logins.get_mut(ch) else { return };
        if !matches!(session.stage, LoginStage::AskId | LoginStage::AskPin) {
            return;
        }
        // A key stops the prompt (as Asterisk's AgentLogin and Read() do): a prompt left
        // playing would hold the answer to these digits back behind it, and ARI queues plays.
        if let Some(playback) = session.playback.take() {
            self.ari(AriRequest::StopPlayback(playback));
        }
        let Some(session) = self.logins.get_mut(ch) else { return };
        if digit == '#' {
            self.finish_digits(ch, routing);
            return;
        }
        if session.digits.len() < DIGITS_MAX && digit.is_ascii_digit() {
            session.digits.push(digit);
        }
        debug_assert!(session.digits.len() <= DIGITS_MAX);
        session.deadline_ms = Some(self.now_ms + DIGIT_TIMEOUT_MS);
    }

    fn finish_digits(&mut self, ch: &ChannelId, routing: &Routing) {
        let Some(session) = self.logins.get_mut(ch) else { return };
        session.deadline_ms = None;
        let digits = std::mem::take(&mut session.digits);
        match session.stage {
            LoginStage::AskId => {
                session.operator = Some(OperatorId::new(digits));
                session.stage = LoginStage::AskPin;
                let playback = self.play(ch, vec![Media::Sound(prompts::SOUND_AGENT_PASS.into())]);
                if let Some(s) = self.logins.get_mut(ch) {
                    s.playback = playback;
                }
            }
            LoginStage::AskPin => {
                let operator = session.operator.clone().unwrap_or_else(|| OperatorId::new(""));
                if digits.is_empty() {
                    // `#` alone at the PIN prompt: log out.
                    session.stage = LoginStage::Committing;
                    if routing.operator_config(&operator).is_some() {
                        self.propose(CommandBody::OperatorLogout { operator }, Purpose::Logout { channel: ch.clone() });
                    } else {
                        self.login_failed(ch);
                    }
                    return;
                }
                // The lockout is replicated: wrong PINs at any site count.
                let locked = routing.pin_locked_out(&operator);
                match routing.operator_config(&operator) {
                    Some(cfg) if !locked && !cfg.pin_hash.is_empty() => {
                        session.stage = LoginStage::Verifying;
                        let token = self.token();
                        self.pending.insert(token, Pending::Pin { channel: ch.clone() });
                        let (pin, phc) = (Pin::new(digits), PinHash::new(cfg.pin_hash.clone()));
                        self.out.push(Action::VerifyPin { token, pin, phc });
                    }
                    _ => self.login_failed(ch),
                }
            }
            _ => {}
        }
    }

    pub(super) fn on_pin_verified(&mut self, token: u64, ok: bool, routing: &Routing) {
        let Some(Pending::Pin { channel }) = self.pending.remove(&token) else { return };
        let Some(session) = self.logins.get_mut(&channel) else { return };
        let Some(operator) = session.operator.clone() else { return };
        if !ok {
            // Only a configured operator's PIN was checked: the count stays bounded.
            self.propose(CommandBody::PinRejected { operator: operator.clone() }, Purpose::Report);
            self.login_failed(&channel);
            return;
        }
        let Some(cfg) = routing.operator_config(&operator) else {
            self.login_failed(&channel);
            return;
        };
        session.stage = LoginStage::Committing;
        let leg = (cfg.mode == OperatorMode::Persistent).then(|| channel.as_str().to_string());
        let site = self.cfg.site;
        // Asterisk names every channel; a nameless one (never seen) logs in without it.
        let body = match session.channel_name.as_str() {
            "" => CommandBody::OperatorLogin { operator, site, channel: leg },
            name => {
                let login = LoginChannel { uniqueid: channel.as_str().to_string(), name: name.to_string() };
                CommandBody::OperatorLoginFrom { operator, site, channel: leg, login }
            }
        };
        self.propose(body, Purpose::Login { channel });
    }

    /// A wrong PIN, an unknown operator or a locked-out one: counted, and the caller hears it.
    fn login_failed(&mut self, ch: &ChannelId) {
        self.counters.logins_failed += 1;
        let Some(session) = self.logins.get_mut(ch) else { return };
        session.attempts += 1;
        debug_assert!(session.attempts <= LOGIN_ATTEMPTS_MAX, "a login call is closed at its last try");
        if session.attempts >= LOGIN_ATTEMPTS_MAX {
            session.stage = LoginStage::Closing;
            let playback = self.play(ch, vec![Media::Sound(prompts::SOUND_AGENT_INCORRECT.into())]);
            if let Some(s) = self.logins.get_mut(ch) {
                s.playback = playback;
            }
            return;
        }
        let ask_id = !session.operator_from_dialplan;
        session.stage = if ask_id { LoginStage::AskId } else { LoginStage::AskPin };
        if ask_id {
            session.operator = None;
        }
        let next = if ask_id { prompts::SOUND_AGENT_USER } else { prompts::SOUND_AGENT_PASS };
        let playback =
            self.play(ch, vec![Media::Sound(prompts::SOUND_AGENT_INCORRECT.into()), Media::Sound(next.into())]);
        if let Some(s) = self.logins.get_mut(ch) {
            s.playback = playback;
        }
    }

    /// Lets go of `operator`'s persistent legs here other than `keep` and hangs them up: after
    /// a logout nothing is kept in Stasis for nobody (app_agent_pool's logoff hangs the agent
    /// up too), and an older leg's later hangup must not log out the operator's newer session.
    fn release_operator_legs(&mut self, operator: &OperatorId, keep: Option<&ChannelId>) {
        let stale: Vec<ChannelId> = self
            .operator_channels
            .iter()
            .filter(|(ch, op)| *op == operator && Some(*ch) != keep)
            .map(|(ch, _)| ch.clone())
            .collect();
        for ch in stale {
            self.operator_channels.remove(&ch);
            self.logins.remove(&ch);
            self.ari(AriRequest::Hangup(ch, HangupReason::Normal));
        }
        if keep.is_none() {
            if let Some(leg) = self.operators.remove(operator) {
                self.ari(AriRequest::DestroyBridge(leg.holding));
            }
        }
    }

    pub(super) fn on_login_committed(&mut self, ch: &ChannelId, result: lineup_core::CommandResult, routing: &Routing) {
        let Some(session) = self.logins.get(ch) else { return };
        let Some(operator) = session.operator.clone() else { return };
        if result.is_err() {
            // A login the cluster never committed (no quorum heard through the retries) was
            // not refused: the PIN was right, so the operator hears to try later, not that
            // the login is incorrect.
            let sounds: &[&str] = if never_committed(&result) {
                self.counters.logins_not_committed += 1;
                &[prompts::SOUND_SORRY, prompts::SOUND_TRY_LATER]
            } else {
                &[prompts::SOUND_AGENT_INCORRECT]
            };
            let playback = self.play(ch, sounds.iter().map(|s| Media::Sound((*s).into())).collect());
            if let Some(s) = self.logins.get_mut(ch) {
                s.stage = LoginStage::Closing;
                s.playback = playback;
            }
            return;
        }
        self.counters.logins_ok += 1;
        let persistent = routing.operator_config(&operator).is_some_and(|c| c.mode == OperatorMode::Persistent);
        // The entry that logged the operator in may also have offered them a waiting caller,
        // and its effects may have come before this answer: that offer already took the leg.
        let busy_with = self.offers.iter().find(|(_, e)| e.operator == operator && e.operator_channel == *ch);
        let busy_with = busy_with.map(|((_, fence), _)| *fence);
        if persistent {
            // The leg stays on the line in a holding bridge between calls.
            let Ok(holding) = BridgeId::new(format!("hold-{}", operator.as_str())) else { return };
            self.operators.insert(operator.clone(), OperatorLeg { holding: holding.clone(), busy_with });
            self.operator_channels.insert(ch.clone(), operator.clone());
            // Logged in again on a new leg: the old one is done with.
            self.release_operator_legs(&operator, Some(ch));
            self.ari(AriRequest::CreateBridge(CreateBridgeRequest {
                bridge_id: holding.clone(),
                bridge_type: BridgeType::Holding,
                name: Some(operator.to_string()),
            }));
            if busy_with.is_none() {
                self.ari(AriRequest::AddChannels { bridge: holding, channels: vec![ch.clone()] });
            }
        }
        // Already talking to a caller: no prompt over the call.
        let playback = match busy_with {
            Some(_) => None,
            None => self.play(ch, vec![Media::Sound(prompts::SOUND_AGENT_LOGIN_OK.into())]),
        };
        if let Some(s) = self.logins.get_mut(ch) {
            s.playback = playback;
            // Ring mode: the login call ends after the prompt.
            s.stage = if persistent { LoginStage::Holding } else { LoginStage::RingDone };
        }
    }
}
