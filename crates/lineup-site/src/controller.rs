//! The site controller: a deterministic state machine between one Asterisk and the cluster.
//!
//! `handle(now_ms, input, routing) -> Vec<Action>`. It owns the site's view of channels,
//! bridges and playbacks, turns ARI events into commands, and committed effects into ARI
//! requests. It never waits: every request is an action whose result comes back as input.
//! The driver must execute `Action::Ari` requests in the order given (one at a time).
//!
//! This file holds the state and routes each input to the part that owns it; the parts are
//! the files under `controller/`, each adding to the one `impl SiteController`.

use self::legs::{channel, CallerLeg, CallerState, LoginSession, OfferExec, OperatorLeg};
use self::output::{Pending, Purpose};
use crate::io::{Action, AriFailure, Input, ProposeFailure};
use lineup_ari::{ChannelId, EventDeduplicator, PlaybackId};
use lineup_core::{CallId, CommandBody, CommandResult, Effect, Offer, OperatorId, Routing, SiteId};
use std::collections::{BTreeMap, BTreeSet, VecDeque};

mod adopt_callback;
mod adopt_caller;
mod adopt_trunk_in;
mod callback;
mod caller;
mod config;
mod connect;
mod events;
mod legs;
mod login;
mod missed;
mod monitor;
mod offer;
mod output;
mod proposals;
mod reconcile;
mod take_down;
mod trunk;

pub use config::{
    SiteConfig, SiteCounters, DIGIT_TIMEOUT_MS, EARLY_TRUNK_WAIT_MS, LOGIN_ATTEMPTS_MAX, MONITOR_RING_TIMEOUT_S,
    MONITOR_SESSIONS_MAX, MONITOR_TRUNK_WAIT_MS, PROPOSE_RETRIES_MAX, PROPOSE_RETRY_DELAY_MS,
    STRANDED_OFFER_RELEASE_MS,
};
use missed::FallbackWatch;
pub use missed::{
    is_missed_reader, missed_delete_variable, missed_keys_variable, missed_origin, missed_reader_channel_id,
    split_db_keys, FALLBACK_WATCH_MS, MISSED_CALLER_NUMBER_MAX_CHARS, MISSED_FAMILY, MISSED_KEY_FIELDS_COUNT,
    MISSED_READER_CHANNEL_ID_PREFIX, MISSED_READER_ENDPOINT, MISSED_RECORDS_PER_RECONCILE_MAX,
    MISSED_RECORDS_POLL_INTERVAL_MS, QUEUED_VARIABLE, UNAVAILABLE_RESULT,
};
pub use monitor::{monitor_trunk_name, snoop_directions, MONITOR_ID_PREFIX};

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
    /// Of those, the ones whose caller's site is unreachable: since when (this clock). See
    /// `STRANDED_OFFER_RELEASE_MS`; never holds a call `awaiting_trunk` does not.
    stranded_since: BTreeMap<CallId, u64>,
    /// Trunk calls that came before their Offer: call → (inbound leg, refuse after).
    early_trunks: BTreeMap<CallId, (ChannelId, u64)>,
    /// Connected cross-site calls whose operator side ended here: (call, fence) → (operator,
    /// release at). See `OPERATOR_RELEASE_GRACE_MS`.
    releases_due: BTreeMap<(CallId, u64), (OperatorId, u64)>,
    /// Highest fence executed per call and per operator (site-side fencing).
    call_fences: BTreeMap<CallId, u64>,
    operator_fences: BTreeMap<OperatorId, u64>,
    /// Planted bug, only settable with the `planted-bugs` feature (lineup-sim's checker
    /// test): the site-side fence check is skipped.
    skip_fence_check: bool,
    playbacks: BTreeMap<PlaybackId, ChannelId>,
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
    /// Missed-caller records proposed or being deleted, by key (at most
    /// `MISSED_RECORDS_PER_RECONCILE_MAX`).
    missed_in_flight: BTreeSet<String>,
    /// While callers handed to the box's fallback (`UNAVAILABLE`) may still hang up there:
    /// until when the missed-caller records are read every `MISSED_RECORDS_POLL_INTERVAL_MS`,
    /// and when they were last asked for.
    fallback_watch: Option<FallbackWatch>,
    /// Monitoring sessions this site carries a half of, by session (at most
    /// `MONITOR_SESSIONS_MAX`), and their channels.
    monitors: BTreeMap<u64, monitor::MonitorSession>,
    monitor_channels: BTreeMap<ChannelId, u64>,
    out: Vec<Action>,
}

impl SiteController {
    /// The serial the next proposal will get; every serial handed out so far is below it.
    pub fn next_serial(&self) -> u64 {
        self.next_serial
    }

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
            stranded_since: BTreeMap::new(),
            early_trunks: BTreeMap::new(),
            releases_due: BTreeMap::new(),
            call_fences: BTreeMap::new(),
            operator_fences: BTreeMap::new(),
            skip_fence_check: false,
            playbacks: BTreeMap::new(),
            parked: BTreeMap::new(),
            counters: SiteCounters::default(),
            dedup: EventDeduplicator::new(),
            ended_channels: VecDeque::new(),
            ended_channel_set: BTreeSet::new(),
            orphan_reconcile_at_ms: None,
            missed_in_flight: BTreeSet::new(),
            fallback_watch: None,
            monitors: BTreeMap::new(),
            monitor_channels: BTreeMap::new(),
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
            Input::Reconcile { channels, bridges } => {
                self.reconcile_monitors(&channels, &bridges);
                self.reconcile(channels, bridges, routing);
                self.ask_for_missed_records();
            }
            Input::MissedRecords { keys } => self.on_missed_records(keys),
        }
        self.end_stale_monitors();
        std::mem::take(&mut self.out)
    }

    fn on_effect(&mut self, effect: Effect, routing: &Routing) {
        match effect {
            Effect::Announce { channel, announcement, .. } => {
                let Some(ch) = self::channel(&channel) else { return };
                self.on_announce(&ch, &announcement);
            }
            Effect::OfferCallback { channel, .. } => {
                let Some(ch) = self::channel(&channel) else { return };
                self.on_callback_offered(&ch);
            }
            Effect::Exit { channel, outcome, .. } => {
                let Some(ch) = self::channel(&channel) else { return };
                self.exit_caller(&ch, &outcome);
            }
            Effect::HangUp { channel, .. } => {
                let Some(ch) = self::channel(&channel) else { return };
                self.hang_up_caller(&ch);
            }
            Effect::Offer(offer) => self.on_offer(offer, routing),
            Effect::DialCallback(offer) => self.on_dial_callback(offer),
            Effect::CancelOffer { call, fence, .. } => self.on_cancel(&call, fence),
            Effect::Monitor(order) => self.on_monitor(order),
            Effect::IslandMerged { end_index, .. } => self.clamp_fork_fences(end_index),
            Effect::OperatorChanged(view) if matches!(view.status, lineup_core::OperatorStatus::Offline) => {
                self.on_operator_offline(&view.operator, routing)
            }
            _ => {}
        }
    }

    /// A proposal's result goes to the part that proposed it, by its purpose.
    fn on_proposed(&mut self, token: u64, result: Result<CommandResult, ProposeFailure>, routing: &Routing) {
        let Some((command, purpose, result)) = self.settle_proposal(token, result) else { return };
        match purpose {
            Purpose::Enqueue { channel } => self.on_enqueued(&channel, result, routing),
            Purpose::Login { channel } => self.on_login_committed(&channel, result, routing),
            Purpose::Logout { channel } => self.on_logout_committed(&channel, &result),
            Purpose::Callback { channel } => self.on_callback_committed(&channel, &result),
            Purpose::Connected { call, fence } => self.on_connected_result(call, fence, &result),
            Purpose::CallbackAnswered { call, fence } => self.on_callback_answered_result(call, fence, &result),
            Purpose::CallbackTakenDown { call, fence } => self.on_callback_taken_down_result(call, fence, &result),
            Purpose::Report => self.on_report_result(&command, &result),
            Purpose::Missed { key } => self.on_missed_result(key, &result),
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
        match pending {
            Pending::AriOffer { call, fence } => self.offer_request_failed(call, fence, &failure),
            Pending::AriMonitor { session } => self.monitor_request_failed(session),
            _ => {}
        }
    }

    fn on_tick(&mut self, routing: &Routing) {
        self.release_operators_due(routing);
        self.refuse_expired_early_trunks();
        self.release_stranded_offers(routing);
        self.resend_due_proposals();
        self.end_timed_out_keying();
        self.end_timed_out_digits(routing);
        self.poll_fallback_records();
    }
}
