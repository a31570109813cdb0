//! The site controller: a deterministic state machine between one Asterisk and the cluster.
//!
//! `handle(now_ms, input, routing) -> Vec<Action>`. It owns the site's view of channels,
//! bridges and playbacks, turns ARI events into commands, and committed effects into ARI
//! requests. It never waits: every request is an action whose result comes back as input.
//! The driver must execute `Action::Ari` requests in the order given (one at a time).

use self::config::{PROPOSE_RETRIES_MAX, PROPOSE_RETRY_DELAY_MS};
use self::legs::{
    channel, CallbackEntry, CallerLeg, CallerState, ExecKind, LoginSession, LoginStage, OfferExec, OfferStage,
    OperatorLeg,
};
use self::output::{Pending, Purpose};
use crate::io::{Action, AriFailure, AriRequest, Input, ProposeFailure};
use crate::prompts;
use lineup_ari::{ChannelId, EventDeduplicator, HangupReason, Media, PlaybackId};
use lineup_core::{
    CallId, CommandBody, CoreError, Effect, HungUpBy, Offer, OfferFailure, OperatorId, OperatorMode, Response, Routing,
    SiteId,
};
use std::collections::{BTreeMap, BTreeSet, VecDeque};

mod adopt_callback;
mod adopt_trunk_in;
mod callback;
mod caller;
mod config;
mod connect;
mod events;
mod legs;
mod login;
mod offer;
mod output;
mod proposals;
mod reconcile;
mod take_down;
mod trunk;

pub use config::{SiteConfig, SiteCounters, DIGIT_TIMEOUT_MS, EARLY_TRUNK_WAIT_MS, LOGIN_ATTEMPTS_MAX};

pub struct SiteController {
    cfg: SiteConfig,
    now_ms: u64,
    next_serial: u64,
    next_token: u64,
    next_playback: u64,
    pending: BTreeMap<u64, Pending>,
    callers: BTreeMap<ChannelId, CallerLeg>,
    call_channels: BTreeMap<CallId, ChannelId>,
    operators: BTreeMap<OperatorId, OperatorLeg>,
    operator_channels: BTreeMap<ChannelId, OperatorId>,
    logins: BTreeMap<ChannelId, LoginSession>,
    offers: BTreeMap<(CallId, u64), OfferExec>,
    /// Ring-mode operator legs and outgoing trunk legs we originated: channel → (call, fence).
    ring_legs: BTreeMap<ChannelId, (CallId, u64)>,
    /// Offers to an operator here for a caller at another site, waiting for its trunk leg.
    awaiting_trunk: BTreeMap<CallId, Offer>,
    /// Trunk calls that came before their Offer: call → (inbound leg, refuse after).
    early_trunks: BTreeMap<CallId, (ChannelId, u64)>,
    /// Connected cross-site calls whose operator side ended here: (call, fence) → (operator,
    /// release at). See `OPERATOR_RELEASE_GRACE_MS`.
    releases_due: BTreeMap<(CallId, u64), (OperatorId, u64)>,
    /// Highest fence executed per call and per operator (site-side fencing).
    call_fences: BTreeMap<CallId, u64>,
    operator_fences: BTreeMap<OperatorId, u64>,
    playbacks: BTreeMap<PlaybackId, ChannelId>,
    pin_failures: BTreeMap<OperatorId, Vec<u64>>,
    /// Proposals waiting for an earlier proposal's result (by its token).
    parked: BTreeMap<u64, Vec<(CommandBody, Purpose)>>,
    pub counters: SiteCounters,
    /// Asterisk sends one copy of an event per subscribed application; the events stream
    /// drops them, and this drops any that reach the controller another way, and redeliveries
    /// of one event (a repeated DTMF event would key a digit twice).
    dedup: EventDeduplicator,
    /// See `ENDED_CHANNELS_REMEMBERED_MAX`; cleared by each reconcile.
    ended_channels: VecDeque<ChannelId>,
    ended_channel_set: BTreeSet<ChannelId>,
    /// When this controller last asked for a reconcile itself.
    orphan_reconcile_at_ms: Option<u64>,
    out: Vec<Action>,
}

impl SiteController {
    pub fn new(cfg: SiteConfig) -> Self {
        let next_serial = cfg.serial_base;
        Self {
            cfg,
            now_ms: 0,
            next_serial,
            next_token: 1,
            next_playback: 1,
            pending: BTreeMap::new(),
            callers: BTreeMap::new(),
            call_channels: BTreeMap::new(),
            operators: BTreeMap::new(),
            operator_channels: BTreeMap::new(),
            logins: BTreeMap::new(),
            offers: BTreeMap::new(),
            ring_legs: BTreeMap::new(),
            awaiting_trunk: BTreeMap::new(),
            early_trunks: BTreeMap::new(),
            releases_due: BTreeMap::new(),
            call_fences: BTreeMap::new(),
            operator_fences: BTreeMap::new(),
            playbacks: BTreeMap::new(),
            pin_failures: BTreeMap::new(),
            parked: BTreeMap::new(),
            counters: SiteCounters::default(),
            dedup: EventDeduplicator::new(),
            ended_channels: VecDeque::new(),
            ended_channel_set: BTreeSet::new(),
            orphan_reconcile_at_ms: None,
            out: Vec::new(),
        }
    }

    pub fn site(&self) -> SiteId {
        self.cfg.site
    }

    /// The call id this site gives a caller channel: unique across sites.
    pub fn call_id_for(&self, channel: &ChannelId) -> CallId {
        CallId::new(format!("{}-{}", self.cfg.site.0, channel.as_str()))
    }

    /// Number of caller channels this site tracks (for tests and metrics).
    pub fn tracked_callers(&self) -> usize {
        self.callers.len()
    }

    /// The caller channels this site tracks (the simulator names leftovers with them).
    pub fn tracked_caller_channels(&self) -> impl Iterator<Item = &ChannelId> {
        self.callers.keys()
    }

    pub fn handle(&mut self, now_ms: u64, input: Input, routing: &Routing) -> Vec<Action> {
        self.now_ms = self.now_ms.max(now_ms);
        match input {
            Input::Ari(event) => self.on_event(event, routing),
            Input::Effects { effects, .. } => {
                for effect in effects {
                    if effect.is_for(self.cfg.site) {
                        self.on_effect(effect, routing);
                    }
                }
            }
            Input::Proposed { token, result } => self.on_proposed(token, result, routing),
            Input::AriDone { token, result } => self.on_ari_done(token, result),
            Input::PinVerified { token, ok } => self.on_pin_verified(token, ok, routing),
            Input::Tick => self.on_tick(routing),
            Input::Reconcile { channels, bridges } => self.reconcile(channels, bridges, routing),
        }
        std::mem::take(&mut self.out)
    }

    fn on_effect(&mut self, effect: Effect, routing: &Routing) {
        match effect {
            Effect::Announce { channel, announcement, .. } => {
                let Some(ch) = self::channel(&channel) else { return };
                let Some(leg) = self.callers.get(&ch) else { return self.untracked_caller() };
                // Effects of the Enqueue can arrive before its result: Entering counts as waiting.
                let waiting = matches!(leg.state, CallerState::Entering | CallerState::Waiting);
                if !waiting || leg.hung_up || leg.playback.is_some() {
                    return; // never stack prompts; the next announcement comes soon enough
                }
                let playback = self.play(&ch, prompts::announcement_media(&announcement));
                if let Some(leg) = self.callers.get_mut(&ch) {
                    leg.playback = playback;
                }
            }
            Effect::OfferCallback { channel, .. } => {
                let Some(ch) = self::channel(&channel) else { return };
                let Some(leg) = self.callers.get_mut(&ch) else { return self.untracked_caller() };
                if !matches!(leg.state, CallerState::Entering | CallerState::Waiting) || leg.hung_up {
                    return;
                }
                leg.callback_offered = true;
                let prompt = vec![Media::Sound(prompts::SOUND_CALLBACK_OFFER.into())];
                if leg.playback.is_some() {
                    leg.queued_prompt = Some(prompt); // right after the position announcement
                } else {
                    let playback = self.play(&ch, prompt);
                    if let Some(leg) = self.callers.get_mut(&ch) {
                        leg.playback = playback;
                    }
                }
            }
            Effect::Exit { channel, outcome, .. } => {
                let Some(ch) = self::channel(&channel) else { return };
                self.exit_caller(&ch, &outcome);
            }
            Effect::Offer(offer) => self.on_offer(offer, routing),
            Effect::DialCallback(offer) => self.on_dial_callback(offer),
            Effect::CancelOffer { call, fence, .. } => self.on_cancel(&call, fence),
            Effect::OperatorChanged(view) if matches!(view.status, lineup_core::OperatorStatus::Offline) => {
                self.on_operator_offline(&view.operator)
            }
            _ => {}
        }
    }

    fn on_proposed(
        &mut self,
        token: u64,
        result: Result<lineup_core::CommandResult, ProposeFailure>,
        routing: &Routing,
    ) {
        let Some(Pending::Proposal { command, purpose, attempts, .. }) = self.pending.remove(&token) else { return };
        if !matches!(result, Err(ProposeFailure::NotCommitted(_)) if attempts < PROPOSE_RETRIES_MAX) {
            for (body, purpose) in self.parked.remove(&token).unwrap_or_default() {
                self.propose(body, purpose);
            }
        }
        let result = match result {
            Ok(r) => r,
            Err(ProposeFailure::NotCommitted(_)) if attempts < PROPOSE_RETRIES_MAX => {
                self.counters.proposals_retried += 1;
                self.pending.insert(
                    token,
                    Pending::Proposal {
                        command,
                        purpose,
                        attempts: attempts + 1,
                        retry_at_ms: Some(self.now_ms + PROPOSE_RETRY_DELAY_MS),
                    },
                );
                return;
            }
            Err(ProposeFailure::NotCommitted(reason)) => {
                Err(CoreError::InvalidState { what: "not committed".into(), detail: reason })
            }
        };
        match purpose {
            Purpose::Enqueue { channel } => self.on_enqueued(&channel, result, routing),
            Purpose::Login { channel } => self.on_login_committed(&channel, result, routing),
            Purpose::Logout { channel } => {
                if matches!(result, Ok(Response::Done)) {
                    // Offline now (a busy operator goes offline after the call instead).
                    if let Some(operator) = self.logins.get(&channel).and_then(|s| s.operator.clone()) {
                        self.release_operator_legs(&operator, None);
                    }
                }
                let playback = self.play(&channel, vec![Media::Sound(prompts::SOUND_AGENT_LOGGED_OFF.into())]);
                if let Some(s) = self.logins.get_mut(&channel) {
                    s.stage = LoginStage::Closing;
                    s.playback = playback;
                }
            }
            Purpose::Callback { channel } => {
                if result.is_ok() {
                    // Committed before the caller hears the confirmation.
                    let playback = self.play(&channel, vec![Media::Sound(prompts::SOUND_CALLBACK_CONFIRMED.into())]);
                    if let Some(leg) = self.callers.get_mut(&channel) {
                        leg.state = CallerState::Leaving;
                        leg.playback = playback.clone();
                        leg.hangup_after = playback;
                    }
                }
            }
            Purpose::Connected { call, fence } => {
                if matches!(result, Err(CoreError::StaleFence { .. })) {
                    // The core took the offer back before the bridge came up: tear it down.
                    if let Some(exec) = self.offers.remove(&(call, fence)) {
                        self.undo_offer(exec);
                    }
                }
            }
            Purpose::CallbackAnswered { call, fence } => {
                // The core had moved the promise on (this site dialled on an offer that was
                // already taken back, e.g. while it lagged): the number may now be called by
                // another site, so take this attempt down at once.
                if matches!(&result, Err(CoreError::StaleFence { current, .. }) if *current != Some(fence)) {
                    if let Some(exec) = self.offers.remove(&(call, fence)) {
                        self.undo_offer(exec);
                    }
                }
            }
            Purpose::CallbackTakenDown { call, fence } => {
                // The half-built callback this site took down (after a restart, its view not
                // caught up) had in fact connected under this very offer (a refusal naming
                // the same fence as current): its legs are gone now, so the call ends here,
                // or the promise stays connected for ever.
                if matches!(&result, Err(CoreError::StaleFence { current, .. }) if *current == Some(fence)) {
                    self.report(CommandBody::Completed { call, fence, by: HungUpBy::Operator });
                }
            }
            Purpose::Report => {
                // The caller is gone, but the core moved the call on to another offer (the
                // Connected came too late): say the caller left, or the call waits forever.
                if let (CommandBody::Completed { call, by: HungUpBy::Caller, .. }, Err(CoreError::StaleFence { .. })) =
                    (&command.body, &result)
                {
                    self.report(CommandBody::Abandoned { call: call.clone() });
                }
            }
        }
    }

    fn on_ari_done(&mut self, token: u64, result: Result<(), AriFailure>) {
        let Some(pending) = self.pending.remove(&token) else { return };
        let Err(failure) = result else { return };
        self.counters.ari_failures += 1;
        if let (Pending::AriChannel { channel }, AriFailure::Gone(_)) = (&pending, &failure) {
            // Asterisk no longer has this caller's channel (its last events were lost, or a
            // stale channel list brought it back): end the leg as its hangup would, and
            // forget it, since no event about it will come.
            if self.callers.contains_key(channel) {
                let channel = channel.clone();
                self.on_channel_gone(&channel, None);
                if self.callers.get(&channel).is_some_and(|leg| leg.state == CallerState::Leaving) {
                    self.forget_caller(&channel);
                }
            }
            return;
        }
        if let Pending::AriOffer { call, fence } = pending {
            let Some(exec) = self.offers.get(&(call.clone(), fence)) else { return };
            if exec.stage == OfferStage::Connected {
                return;
            }
            let operator = exec.operator.clone();
            let reason = match (&failure, &exec.kind, exec.mode, &exec.stage) {
                // The trunk call to the operator's site could not be placed: not the operator's miss.
                (_, ExecKind::TrunkOut, _, OfferStage::Ringing) => OfferFailure::TrunkFailed { cause: 0 },
                (AriFailure::Gone(_), _, OperatorMode::Ring, OfferStage::Ringing) => OfferFailure::OperatorUnreachable,
                _ => OfferFailure::BridgeFailed,
            };
            self.fail_offer(&call, fence, &operator, reason);
        }
    }

    fn on_tick(&mut self, routing: &Routing) {
        let now = self.now_ms;
        self.release_operators_due(routing);
        // Trunk calls whose Offer never came (cancelled, stale, or not ours): refuse them.
        let expired: Vec<CallId> =
            self.early_trunks.iter().filter(|(_, (_, deadline))| *deadline <= now).map(|(c, _)| c.clone()).collect();
        for call in expired {
            if let Some((inbound, _)) = self.early_trunks.remove(&call) {
                self.counters.offers_fenced_out += 1;
                // Not "normal clearing": the caller's site reads a refusal and reports it.
                self.ari(AriRequest::Hangup(inbound, HangupReason::Congestion));
            }
        }
        let due: Vec<u64> = self
            .pending
            .iter()
            .filter_map(|(t, p)| match p {
                Pending::Proposal { retry_at_ms: Some(at), .. } if *at <= now => Some(*t),
                _ => None,
            })
            .collect();
        for token in due {
            if let Some(Pending::Proposal { command, retry_at_ms, .. }) = self.pending.get_mut(&token) {
                *retry_at_ms = None;
                let command = command.clone();
                self.out.push(Action::Propose { token, command });
            }
        }
        let keyed_out: Vec<ChannelId> = self
            .callers
            .iter()
            .filter(|(_, l)| matches!(l.callback_entry, Some(CallbackEntry::Keying { deadline_ms, .. }) if deadline_ms <= now))
            .map(|(c, _)| c.clone())
            .collect();
        for ch in keyed_out {
            self.finish_keying(&ch);
        }
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
}
