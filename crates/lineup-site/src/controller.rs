//! The site controller: a deterministic state machine between one Asterisk and the cluster.
//!
//! `handle(now_ms, input, routing) -> Vec<Action>`. It owns the site's view of channels,
//! bridges and playbacks, turns ARI events into commands, and committed effects into ARI
//! requests. It never waits: every request is an action whose result comes back as input.
//! The driver must execute `Action::Ari` requests in the order given (one at a time).

use crate::io::{Action, AriFailure, AriRequest, Input, ProposeFailure};
use crate::prompts;
use lineup_ari::{
    parse_stasis_entry, AriEvent, BridgeId, BridgeType, ChannelId, ContinueTarget, CreateBridgeRequest, Endpoint,
    EventDeduplicator, EventKind, HangupReason, Media, OriginateRequest, OriginateTarget, PlaybackId, StasisEntry,
};
use lineup_core::{
    CallId, Command, CommandBody, CommandId, CoreError, Effect, Enqueue, GateId, HungUpBy, Offer, OfferFailure,
    OperatorId, OperatorMode, Outcome, QueueId, Response, Routing, SiteId,
};
use std::collections::{BTreeMap, BTreeSet, VecDeque};

mod adopt_trunk_in;
mod take_down;

/// Digits a caller may key to leave the queue, unless configured otherwise.
pub const DEFAULT_EXIT_KEYS: &str = "0";
/// Key that accepts a callback offer, and then confirms the number.
pub const CALLBACK_ACCEPT_KEY: char = '1';
/// Key that asks to enter another number than the caller id.
pub const CALLBACK_OTHER_NUMBER_KEY: char = '2';
/// Callback numbers keyed by a caller: E.164 allows at most 15 digits.
pub const CALLBACK_DIGITS_MAX: usize = 15;
pub const CALLBACK_DIGITS_MIN: usize = 3;
/// Silence after which a digit entry (operator id, PIN) ends.
pub const DIGIT_TIMEOUT_MS: u64 = 5_000;
/// Longest digit entry kept (operator id or PIN).
pub const DIGITS_MAX: usize = 16;
/// PIN tries per login call before hanging up.
pub const LOGIN_ATTEMPTS_MAX: u8 = 3;
/// Failed PINs per operator within `LOCKOUT_WINDOW_MS` that lock the operator out.
pub const LOCKOUT_FAILURES_MAX: usize = 5;
pub const LOCKOUT_WINDOW_MS: u64 = 15 * 60_000;
/// A proposal that definitely did not commit is retried this many times (same command id,
/// so a late duplicate is harmless), this far apart.
pub const PROPOSE_RETRIES_MAX: u32 = 20;
pub const PROPOSE_RETRY_DELAY_MS: u64 = 500;
/// Extra time an outgoing trunk call is given beyond the ring timeout, for the far site to
/// set up its half.
pub const TRUNK_SETUP_GRACE_MS: u64 = 5_000;
/// How long a callback rings the promised number before counting as a failed attempt.
pub const CALLBACK_RING_TIMEOUT_MS: u64 = 30_000;
/// Most tracked channels (callers, operators, logins); beyond it new callers go straight back
/// to the dialplan with LINEUP_RESULT=FAILED.
pub const SITE_CHANNELS_MAX: usize = 50_000;
/// Channels whose end (StasisEnd, ChannelDestroyed) this site saw since its last reconcile,
/// most recent kept. A reconnect's channel list can be older than events handled before it,
/// and must not bring those channels back; a reconnect takes seconds, so a few thousand
/// ends is far more than can fall in that window.
pub const ENDED_CHANNELS_REMEMBERED_MAX: usize = 4_096;
/// A trunk call from the caller's site can arrive before this site has applied the Offer
/// it serves (the caller's site may learn of the commit first, and a call setup can be
/// faster than replication): it is held this long for the Offer before being refused.
pub const EARLY_TRUNK_WAIT_MS: u64 = 5_000;
/// Most trunk calls held for their Offer at once; beyond it they are refused at once.
pub const EARLY_TRUNK_LEGS_MAX: usize = 1_024;
/// Operator releases waiting for their grace at once (see `OPERATOR_RELEASE_GRACE_MS`).
pub const RELEASES_DUE_MAX: usize = 1_024;
/// After its side of a connected cross-site call ended, the operator's site waits this long
/// for the caller's site to report the end; if the call is still connected then (the
/// caller's site is silent), it frees its operator itself (`OperatorLegEnded`).
pub const OPERATOR_RELEASE_GRACE_MS: u64 = 2_000;
/// Q.850 causes with which the operator's site itself ends an unanswered trunk call (16
/// normal clearing: it took the offer down and reports why; 19 no answer: the ring ran
/// out). Any other cause is a refusal or a failure on the way, which the caller's site
/// reports at once.
pub const FAR_SITE_REPORTS_CAUSES: [i32; 2] = [16, 19];
/// Least time between two reconciles the controller asks for itself (see `Action::Reconcile`).
pub const ORPHAN_RECONCILE_INTERVAL_MS: u64 = 5_000;

#[derive(Debug, Clone)]
pub struct SiteConfig {
    pub site: SiteId,
    /// `CommandId::origin` of this site's proposals.
    pub origin: u64,
    /// First serial; pick something that grows across restarts (boot time in µs), so a
    /// restarted site never reuses a serial still in the cluster's dedup window.
    pub serial_base: u64,
    pub moh_class: Option<String>,
    pub exit_keys: String,
    /// Dial string template per remote site for cross-site connects; `{call}` is replaced by
    /// the call id, e.g. `PJSIP/lineup-{call}@site-b` or `IAX2/site-b/lineup-{call}`.
    pub trunk_endpoints: BTreeMap<SiteId, String>,
    /// Dial string template for callbacks; `{number}` is replaced by the promised number
    /// (already validated by the core: digits with an optional leading `+`), e.g.
    /// `PJSIP/{number}@carrier`. Without it this site's operators cannot serve callbacks.
    pub callback_endpoint: Option<String>,
    /// Test seam, always true outside the simulator: lineup-sim's planted-bug test turns the
    /// site-side fence check off to prove its checkers notice stale offers being executed.
    pub fence_check: bool,
}

impl SiteConfig {
    pub fn new(site: SiteId, serial_base: u64) -> Self {
        Self {
            site,
            origin: site.0,
            serial_base,
            moh_class: None,
            exit_keys: DEFAULT_EXIT_KEYS.to_string(),
            trunk_endpoints: BTreeMap::new(),
            callback_endpoint: None,
            fence_check: true,
        }
    }
}

/// What the controller counted (for metrics and the simulator's coverage).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SiteCounters {
    pub callers_entered: u64,
    pub callers_invalid: u64,
    pub offers_executed: u64,
    pub offers_fenced_out: u64,
    pub bridges_connected: u64,
    pub proposals_retried: u64,
    pub ari_failures: u64,
    pub logins_ok: u64,
    pub logins_failed: u64,
    pub events_ignored: u64,
    pub reconciles: u64,
    pub channels_adopted: u64,
    pub events_duplicated: u64,
    /// Reconciles this controller asked for because the cluster spoke of a caller it did
    /// not track.
    pub orphan_reconciles: u64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum CallerState {
    /// Enqueue proposed, result not back yet.
    Entering,
    Waiting,
    /// Being connected or connected, under this fence.
    Offered {
        fence: u64,
    },
    Connected {
        fence: u64,
    },
    /// Handed back to the dialplan or hung up; waiting for StasisEnd.
    Leaving,
}

#[derive(Debug, Clone)]
struct CallerLeg {
    call: CallId,
    number: String,
    state: CallerState,
    playback: Option<PlaybackId>,
    callback_offered: bool,
    /// Hung up while Entering: propose Abandoned once the Enqueue result is known.
    hung_up: bool,
    /// Hang up after this playback finishes (callback confirmation).
    hangup_after: Option<PlaybackId>,
    /// A prompt waiting for the current one to finish (prompts never overlap).
    queued_prompt: Option<Vec<Media>>,
    /// Where the caller is in accepting a callback (confirming or keying the number).
    callback_entry: Option<CallbackEntry>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum CallbackEntry {
    /// "We will call you back on <number>: 1 to confirm, 2 for another number."
    Confirming { number: String },
    /// Keying a number, ended by `#` or silence.
    Keying { digits: String, deadline_ms: u64 },
}

/// A callback number as the core accepts it (E.164: an optional `+`, at most 15 digits).
fn callback_number(number: &str) -> Option<String> {
    let digits = number.strip_prefix('+').unwrap_or(number);
    let ok = (CALLBACK_DIGITS_MIN..=CALLBACK_DIGITS_MAX).contains(&digits.len())
        && digits.bytes().all(|b| b.is_ascii_digit());
    ok.then(|| number.to_string())
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum OfferStage {
    /// Ring mode: the operator's phone is ringing.
    Ringing,
    /// The gate whisper plays to the operator.
    Whisper,
    /// Both legs are being added to the call bridge.
    Bridging,
    Connected,
}

/// Which half of a connect this site performs.
#[derive(Debug, Clone, PartialEq, Eq)]
enum ExecKind {
    /// Caller and operator are both here.
    Local,
    /// The caller is here; the "operator leg" is a trunk call to the operator's site.
    TrunkOut,
    /// The operator is here; the "caller leg" is the trunk call from the caller's site.
    TrunkIn,
    /// A callback promise: the "caller leg" is the call this site places to the number.
    Callback { number: String },
}

#[derive(Debug, Clone)]
struct OfferExec {
    kind: ExecKind,
    call: CallId,
    operator: OperatorId,
    fence: u64,
    caller_channel: ChannelId,
    operator_channel: ChannelId,
    mode: OperatorMode,
    bridge: BridgeId,
    stage: OfferStage,
    caller_in: bool,
    operator_in: bool,
    whisper: Option<String>,
    whisper_playback: Option<PlaybackId>,
}

impl OfferExec {
    #[allow(clippy::too_many_arguments)]
    fn new(
        kind: ExecKind,
        offer: &Offer,
        caller_channel: ChannelId,
        operator_channel: ChannelId,
        mode: OperatorMode,
        bridge: BridgeId,
        stage: OfferStage,
        whisper: Option<String>,
    ) -> Self {
        Self {
            kind,
            call: offer.call.clone(),
            operator: offer.operator.clone(),
            fence: offer.fence,
            caller_channel,
            operator_channel,
            mode,
            bridge,
            stage,
            caller_in: false,
            operator_in: false,
            whisper,
            whisper_playback: None,
        }
    }
}

#[derive(Debug, Clone)]
struct OperatorLeg {
    holding: BridgeId,
    /// The fence of the offer currently using this leg.
    busy_with: Option<u64>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum LoginStage {
    AskId,
    AskPin,
    Verifying,
    Committing,
    /// Login refused or logout done: hang up after the prompt.
    Closing,
    /// Ring mode logged in: hang up after agent-loginok.
    RingDone,
    /// Persistent: in the holding bridge.
    Holding,
}

#[derive(Debug, Clone)]
struct LoginSession {
    /// Known from the dialplan (`operator=ID`) or keyed in.
    operator: Option<OperatorId>,
    operator_from_dialplan: bool,
    stage: LoginStage,
    digits: String,
    /// When the current digit entry ends by silence.
    deadline_ms: Option<u64>,
    attempts: u8,
    playback: Option<PlaybackId>,
}

#[derive(Debug, Clone)]
enum Pending {
    /// A proposal whose result matters, plus what to do about it.
    Proposal {
        command: Command,
        purpose: Purpose,
        attempts: u32,
        retry_at_ms: Option<u64>,
    },
    /// An ARI request whose failure matters.
    AriOffer {
        call: CallId,
        fence: u64,
    },
    /// A request about one channel: a 404 means Asterisk no longer has it.
    AriChannel {
        channel: ChannelId,
    },
    AriOther,
    Pin {
        channel: ChannelId,
    },
}

#[derive(Debug, Clone)]
enum Purpose {
    Enqueue {
        channel: ChannelId,
    },
    Login {
        channel: ChannelId,
    },
    Logout {
        channel: ChannelId,
    },
    Callback {
        channel: ChannelId,
    },
    Connected {
        call: CallId,
        fence: u64,
    },
    /// A callback's callee answered and is bridged with the operator.
    CallbackAnswered {
        call: CallId,
        fence: u64,
    },
    /// A half-built callback was taken down after a restart (`OfferFailed`).
    CallbackTakenDown {
        call: CallId,
        fence: u64,
    },
    /// Nothing to do with the result (Abandoned, Completed, RingNoAnswer, ...).
    Report,
}

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

fn channel(id: &str) -> Option<ChannelId> {
    ChannelId::new(id).ok()
}

/// The application and arguments a channel in Stasis entered with, from its dialplan place
/// (`Stasis(lineup,queue=sales)` shows as app data `lineup,queue=sales`).
fn stasis_app_and_args(ch: &lineup_ari::Channel) -> (String, Vec<String>) {
    let mut parts = ch.dialplan.app_data.split(',').map(str::to_string);
    let application = parts.next().unwrap_or_default();
    (application, parts.collect())
}

/// `"Name" <number>` of the caller, shown on the operator's phone.
fn caller_id_of(offer: &Offer) -> Option<String> {
    Some(format!("\"{}\" <{}>", offer.caller_name, offer.caller_number))
}

/// The queue's ring timeout in whole seconds (ARI's unit), at least one.
fn ring_timeout_s(offer: &Offer) -> i32 {
    offer.ring_timeout_ms.div_ceil(1000).max(1) as i32
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

    /// The id of a bridge or leg this site creates for one offer. One command can make
    /// several offers, all carrying its apply index as their fence, so the fence alone does
    /// not name an offer: `(call, fence)` does. The call id enters as a hash to keep the id
    /// short and inside ARI's charset.
    fn offer_leg_id(&self, kind: &str, call: &CallId, fence: u64) -> String {
        let mut h: u64 = 0xcbf2_9ce4_8422_2325;
        for b in call.as_str().bytes() {
            h = (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3);
        }
        format!("{kind}-{}-{fence}-{h:016x}", self.cfg.site.0)
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

    // ------------------------------------------------------------ plumbing

    fn token(&mut self) -> u64 {
        let t = self.next_token;
        self.next_token += 1;
        t
    }

    fn propose(&mut self, body: CommandBody, purpose: Purpose) {
        // The end of a connection must commit after the connection itself: the core refuses
        // a Completed whose Connected/CallbackResult is still on its way (a slow quorum),
        // and nothing would send it again. Park it until that proposal has its result.
        if let CommandBody::Completed { call, fence, .. } | CommandBody::Transferred { call, fence, .. } = &body {
            let blocker = self.pending.iter().find_map(|(token, p)| match p {
                Pending::Proposal { command, .. } => match &command.body {
                    CommandBody::Connected { call: c, fence: f, .. }
                    | CommandBody::CallbackResult { call: c, fence: f, answered: true, .. }
                        if c == call && f == fence =>
                    {
                        Some(*token)
                    }
                    _ => None,
                },
                _ => None,
            });
            if let Some(token) = blocker {
                self.parked.entry(token).or_default().push((body, purpose));
                return;
            }
        }
        let command =
            Command { id: CommandId { origin: self.cfg.origin, serial: self.next_serial }, at_ms: self.now_ms, body };
        self.next_serial += 1;
        let token = self.token();
        self.pending
            .insert(token, Pending::Proposal { command: command.clone(), purpose, attempts: 0, retry_at_ms: None });
        self.out.push(Action::Propose { token, command });
    }

    fn report(&mut self, body: CommandBody) {
        self.propose(body, Purpose::Report);
    }

    fn ari(&mut self, request: AriRequest) {
        let token = self.token();
        let pending = match request.channel() {
            Some(channel) if !matches!(request, AriRequest::Originate(_)) => {
                Pending::AriChannel { channel: channel.clone() }
            }
            _ => Pending::AriOther,
        };
        self.pending.insert(token, pending);
        self.out.push(Action::Ari { token, request });
    }

    fn ari_for_offer(&mut self, request: AriRequest, call: &CallId, fence: u64) {
        let token = self.token();
        self.pending.insert(token, Pending::AriOffer { call: call.clone(), fence });
        self.out.push(Action::Ari { token, request });
    }

    fn play(&mut self, channel: &ChannelId, media: Vec<Media>) -> Option<PlaybackId> {
        let playback = PlaybackId::new(format!("pb-{}-{}", self.cfg.site.0, self.next_playback)).ok()?;
        self.next_playback += 1;
        self.playbacks.insert(playback.clone(), channel.clone());
        self.ari(AriRequest::Play { channel: channel.clone(), playback: playback.clone(), media });
        Some(playback)
    }

    fn start_moh(&mut self, channel: &ChannelId) {
        self.ari(AriRequest::StartMoh { channel: channel.clone(), class: self.cfg.moh_class.clone() });
    }

    fn continue_with(&mut self, channel: &ChannelId, result: &str, extra: Vec<(String, String)>) {
        let mut variables = vec![("LINEUP_RESULT".to_string(), result.to_string())];
        variables.extend(extra);
        self.ari(AriRequest::Continue {
            channel: channel.clone(),
            target: ContinueTarget { context: None, extension: None, priority: None },
            variables,
        });
    }

    // ------------------------------------------------------------ ARI events

    fn on_event(&mut self, event: AriEvent, routing: &Routing) {
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

    fn on_stasis_start(&mut self, application: &str, args: Vec<String>, ch: lineup_ari::Channel, routing: &Routing) {
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

    /// A channel hung up or left Stasis; `cause` is the Q.850 hangup cause when the event
    /// carried one.
    fn on_channel_gone(&mut self, ch: &ChannelId, cause: Option<i32>) {
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

    fn on_entered_bridge(&mut self, bridge: &BridgeId, ch: &ChannelId) {
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

    // ------------------------------------------------------------ effects

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

    /// Logged out from elsewhere (a supervisor, the API, a login at another site): a
    /// persistent leg held here has nothing left to wait for, so it is hung up. A leg still
    /// in its own login dialogue is left to it (a `#` logout plays agent-loggedoff first).
    fn on_operator_offline(&mut self, operator: &OperatorId) {
        if !self.operators.contains_key(operator) {
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

    fn exit_caller(&mut self, ch: &ChannelId, outcome: &Outcome) {
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

    /// The cluster speaks of a caller of this site that this controller does not track: its
    /// leg was forgotten or never seen (events lost; an Enqueue whose outcome was unknown
    /// committed after all), so nobody would ever report how the call ends. Ask Asterisk
    /// (a reconcile adopts the caller if still there, or reports that it left), at most
    /// once per `ORPHAN_RECONCILE_INTERVAL_MS`.
    fn untracked_caller(&mut self) {
        if self.orphan_reconcile_at_ms.is_some_and(|at| self.now_ms < at + ORPHAN_RECONCILE_INTERVAL_MS) {
            return;
        }
        self.orphan_reconcile_at_ms = Some(self.now_ms);
        self.counters.orphan_reconciles += 1;
        self.out.push(Action::Reconcile);
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

    fn forget_caller(&mut self, ch: &ChannelId) {
        if let Some(leg) = self.callers.remove(ch) {
            self.call_channels.remove(&leg.call);
        }
    }

    /// Site-side fence check: an effect older than one already executed for this call or
    /// operator is refused (the other half of the core's "where decided" check).
    fn fence_is_fresh(&mut self, call: &CallId, operator: &OperatorId, fence: u64) -> bool {
        let stale = self.cfg.fence_check
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

    fn on_offer(&mut self, offer: Offer, routing: &Routing) {
        if !self.fence_is_fresh(&offer.call, &offer.operator, offer.fence) {
            return;
        }
        let (caller_here, operator_here) = (offer.caller_site == self.cfg.site, offer.operator_site == self.cfg.site);
        if caller_here && !operator_here {
            self.trunk_out(offer);
            return;
        }
        if operator_here && !caller_here {
            // Wait for the caller's site to call us on the trunk (`Stasis(lineup,xfer=CALL)`),
            // unless its call came first.
            let call = offer.call.clone();
            self.awaiting_trunk.insert(call.clone(), offer);
            if let Some((inbound, _)) = self.early_trunks.remove(&call) {
                self.trunk_leg_arrived(&call, inbound);
            }
            return;
        }
        let Some(caller_channel) = offer.caller_channel.as_deref().and_then(channel) else {
            return; // callbacks (no caller leg) are dialled from DialCallback
        };
        if !self.callers.contains_key(&caller_channel) {
            return self.untracked_caller();
        }
        // The offer may arrive before the Enqueue's own result (same apply): Entering is fine.
        let caller_ok = self
            .callers
            .get(&caller_channel)
            .is_some_and(|l| matches!(l.state, CallerState::Entering | CallerState::Waiting) && !l.hung_up);
        if !caller_ok {
            // The caller already left; its Abandoned is on the way and will cancel the offer.
            return;
        }
        let Ok(bridge) = BridgeId::new(self.offer_leg_id("call", &offer.call, offer.fence)) else { return };
        self.counters.offers_executed += 1;
        if let Some(leg) = self.callers.get_mut(&caller_channel) {
            leg.state = CallerState::Offered { fence: offer.fence };
        }
        let _ = routing;
        match offer.mode {
            OperatorMode::Persistent => {
                let Some(op_channel) = offer.operator_channel.as_deref().and_then(channel) else {
                    self.report(CommandBody::OfferFailed {
                        call: offer.call,
                        operator: offer.operator,
                        fence: offer.fence,
                        reason: OfferFailure::OperatorUnreachable,
                    });
                    return;
                };
                let holding = self.operators.get_mut(&offer.operator).map(|l| {
                    l.busy_with = Some(offer.fence);
                    l.holding.clone()
                });
                let exec = OfferExec::new(
                    ExecKind::Local,
                    &offer,
                    caller_channel.clone(),
                    op_channel.clone(),
                    offer.mode,
                    bridge.clone(),
                    OfferStage::Bridging,
                    offer.whisper.clone(),
                );
                self.offers.insert((offer.call.clone(), offer.fence), exec);
                self.ari_for_offer(
                    AriRequest::CreateBridge(CreateBridgeRequest {
                        bridge_id: bridge.clone(),
                        bridge_type: BridgeType::MixingDtmfEvents,
                        name: Some(offer.call.to_string()),
                    }),
                    &offer.call,
                    offer.fence,
                );
                if let Some(holding) = holding {
                    self.ari(AriRequest::RemoveChannels { bridge: holding, channels: vec![op_channel.clone()] });
                }
                self.start_connecting(&offer.call, offer.fence);
            }
            OperatorMode::Ring => {
                let Some(endpoint) = offer.endpoint.as_deref().and_then(|e| Endpoint::new(e).ok()) else {
                    self.report(CommandBody::OfferFailed {
                        call: offer.call,
                        operator: offer.operator,
                        fence: offer.fence,
                        reason: OfferFailure::OperatorUnreachable,
                    });
                    return;
                };
                let Some(ring_leg) = channel(&self.offer_leg_id("ring", &offer.call, offer.fence)) else { return };
                self.ring_legs.insert(ring_leg.clone(), (offer.call.clone(), offer.fence));
                self.offers.insert(
                    (offer.call.clone(), offer.fence),
                    OfferExec::new(
                        ExecKind::Local,
                        &offer,
                        caller_channel,
                        ring_leg.clone(),
                        offer.mode,
                        bridge,
                        OfferStage::Ringing,
                        offer.whisper.clone(),
                    ),
                );
                self.originate_into_app(
                    endpoint,
                    ring_leg,
                    caller_id_of(&offer),
                    ring_timeout_s(&offer),
                    &offer.call,
                    offer.fence,
                );
            }
        }
    }

    /// Caller here, operator at another site: call that site over the trunk. Its half answers
    /// the trunk call once the operator is in its bridge; then this half bridges the caller.
    fn trunk_out(&mut self, offer: Offer) {
        let Some(caller_channel) = offer.caller_channel.as_deref().and_then(channel) else { return };
        if !self.callers.contains_key(&caller_channel) {
            return self.untracked_caller();
        }
        let caller_ok = self
            .callers
            .get(&caller_channel)
            .is_some_and(|l| matches!(l.state, CallerState::Entering | CallerState::Waiting) && !l.hung_up);
        if !caller_ok {
            return;
        }
        let endpoint = self
            .cfg
            .trunk_endpoints
            .get(&offer.operator_site)
            .map(|template| template.replace("{call}", offer.call.as_str()))
            .and_then(|e| Endpoint::new(e).ok());
        let (Some(endpoint), Some(trunk_leg), Ok(bridge)) = (
            endpoint,
            channel(&self.offer_leg_id("trunk", &offer.call, offer.fence)),
            BridgeId::new(self.offer_leg_id("call", &offer.call, offer.fence)),
        ) else {
            self.report(CommandBody::OfferFailed {
                call: offer.call,
                operator: offer.operator,
                fence: offer.fence,
                reason: OfferFailure::BridgeFailed,
            });
            return;
        };
        self.counters.offers_executed += 1;
        if let Some(leg) = self.callers.get_mut(&caller_channel) {
            leg.state = CallerState::Offered { fence: offer.fence };
        }
        self.ring_legs.insert(trunk_leg.clone(), (offer.call.clone(), offer.fence));
        self.offers.insert(
            (offer.call.clone(), offer.fence),
            OfferExec {
                kind: ExecKind::TrunkOut,
                call: offer.call.clone(),
                operator: offer.operator.clone(),
                fence: offer.fence,
                caller_channel,
                operator_channel: trunk_leg.clone(),
                mode: OperatorMode::Ring,
                bridge,
                stage: OfferStage::Ringing,
                caller_in: false,
                operator_in: false,
                whisper: None, // the operator's site plays the whisper on its side
                whisper_playback: None,
            },
        );
        // Long enough for the far site to ring a ring-mode operator.
        let timeout_s = (offer.ring_timeout_ms + TRUNK_SETUP_GRACE_MS).div_ceil(1000) as i32;
        self.originate_into_app(endpoint, trunk_leg, caller_id_of(&offer), timeout_s, &offer.call, offer.fence);
    }

    /// Operator here, caller at another site: its trunk call arrived.
    fn trunk_leg_arrived(&mut self, call: &CallId, inbound: ChannelId) {
        let Some(offer) = self.awaiting_trunk.remove(call) else {
            // No offer for it here yet: its Offer may still be on the way (see
            // EARLY_TRUNK_WAIT_MS). A newer call for the same caller replaces an older one.
            if self.early_trunks.len() < EARLY_TRUNK_LEGS_MAX || self.early_trunks.contains_key(call) {
                let deadline = self.now_ms + EARLY_TRUNK_WAIT_MS;
                if let Some((older, _)) = self.early_trunks.insert(call.clone(), (inbound.clone(), deadline)) {
                    if older != inbound {
                        self.ari(AriRequest::Hangup(older, HangupReason::Normal));
                    }
                }
            } else {
                self.counters.offers_fenced_out += 1;
                self.ari(AriRequest::Hangup(inbound, HangupReason::Normal));
            }
            return;
        };
        let Ok(bridge) = BridgeId::new(self.offer_leg_id("call", &offer.call, offer.fence)) else { return };
        self.counters.offers_executed += 1;
        let (operator_channel, stage) = match offer.mode {
            OperatorMode::Persistent => {
                let Some(op) = offer.operator_channel.as_deref().and_then(channel) else {
                    self.ari(AriRequest::Hangup(inbound, HangupReason::Normal));
                    self.report(CommandBody::OfferFailed {
                        call: offer.call,
                        operator: offer.operator,
                        fence: offer.fence,
                        reason: OfferFailure::OperatorUnreachable,
                    });
                    return;
                };
                (op, OfferStage::Bridging)
            }
            OperatorMode::Ring => {
                let Some(leg) = channel(&self.offer_leg_id("ring", &offer.call, offer.fence)) else { return };
                (leg, OfferStage::Ringing)
            }
        };
        self.offers.insert(
            (offer.call.clone(), offer.fence),
            OfferExec::new(
                ExecKind::TrunkIn,
                &offer,
                inbound,
                operator_channel.clone(),
                offer.mode,
                bridge.clone(),
                stage.clone(),
                offer.whisper.clone(),
            ),
        );
        match offer.mode {
            OperatorMode::Persistent => {
                let holding = self.operators.get_mut(&offer.operator).map(|l| {
                    l.busy_with = Some(offer.fence);
                    l.holding.clone()
                });
                self.ari_for_offer(
                    AriRequest::CreateBridge(CreateBridgeRequest {
                        bridge_id: bridge,
                        bridge_type: BridgeType::MixingDtmfEvents,
                        name: Some(offer.call.to_string()),
                    }),
                    &offer.call,
                    offer.fence,
                );
                if let Some(holding) = holding {
                    self.ari(AriRequest::RemoveChannels { bridge: holding, channels: vec![operator_channel] });
                }
                self.start_connecting(&offer.call, offer.fence);
            }
            OperatorMode::Ring => {
                self.ring_operator(&offer, operator_channel, caller_id_of(&offer));
            }
        }
    }

    /// A callback promise reached the head and an operator here: reach the operator (ring
    /// mode rings first), then call the number and connect the two.
    fn on_dial_callback(&mut self, offer: Offer) {
        if offer.operator_site != self.cfg.site || !self.fence_is_fresh(&offer.call, &offer.operator, offer.fence) {
            return;
        }
        let number = offer.callback_number.clone().unwrap_or_default();
        let callee = channel(&self.offer_leg_id("cb", &offer.call, offer.fence));
        let bridge = BridgeId::new(self.offer_leg_id("call", &offer.call, offer.fence)).ok();
        let operator_leg = match offer.mode {
            OperatorMode::Persistent => offer.operator_channel.as_deref().and_then(channel),
            OperatorMode::Ring => channel(&self.offer_leg_id("ring", &offer.call, offer.fence)),
        };
        let (Some(callee), Some(bridge), Some(operator_leg), true) =
            (callee, bridge, operator_leg, self.cfg.callback_endpoint.is_some())
        else {
            self.report(CommandBody::CallbackResult {
                call: offer.call,
                operator: offer.operator,
                fence: offer.fence,
                answered: false,
            });
            return;
        };
        self.counters.offers_executed += 1;
        self.offers.insert(
            (offer.call.clone(), offer.fence),
            OfferExec::new(
                ExecKind::Callback { number },
                &offer,
                callee,
                operator_leg.clone(),
                offer.mode,
                bridge,
                OfferStage::Ringing,
                offer.whisper.clone(),
            ),
        );
        match offer.mode {
            OperatorMode::Persistent => {
                if let Some(leg) = self.operators.get_mut(&offer.operator) {
                    leg.busy_with = Some(offer.fence);
                }
                self.dial_callee(&offer.call, offer.fence);
            }
            OperatorMode::Ring => {
                self.ring_operator(
                    &offer,
                    operator_leg,
                    Some(format!("\"Callback\" <{}>", offer.callback_number.as_deref().unwrap_or_default())),
                );
            }
        }
    }

    /// Places the callback call to the promised number.
    fn dial_callee(&mut self, call: &CallId, fence: u64) {
        let Some(exec) = self.offers.get(&(call.clone(), fence)) else { return };
        let ExecKind::Callback { number } = &exec.kind else { return };
        let endpoint = self
            .cfg
            .callback_endpoint
            .as_deref()
            .map(|template| template.replace("{number}", number))
            .and_then(|e| Endpoint::new(e).ok());
        let callee = exec.caller_channel.clone();
        let Some(endpoint) = endpoint else { return };
        self.ring_legs.insert(callee.clone(), (call.clone(), fence));
        self.originate_into_app(endpoint, callee, None, (CALLBACK_RING_TIMEOUT_MS / 1000) as i32, call, fence);
    }

    /// Rings a ring-mode operator's endpoint on `leg` (its answer arrives as StasisStart).
    /// Endpoints are validated when the operator is configured, so a bad one cannot get here;
    /// if it did, the core's offer deadline would take the offer back.
    fn ring_operator(&mut self, offer: &Offer, leg: ChannelId, caller_id: Option<String>) {
        let Some(endpoint) = offer.endpoint.as_deref().and_then(|e| Endpoint::new(e).ok()) else { return };
        self.ring_legs.insert(leg.clone(), (offer.call.clone(), offer.fence));
        self.originate_into_app(endpoint, leg, caller_id, ring_timeout_s(offer), &offer.call, offer.fence);
    }

    /// Originates a leg into our Stasis application; its StasisStart (answer) is matched by
    /// the deterministic channel id, and a failed request fails the offer.
    fn originate_into_app(
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
    fn operator_answered(&mut self, call: &CallId, fence: u64) {
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
        self.ari_for_offer(
            AriRequest::CreateBridge(CreateBridgeRequest {
                bridge_id: bridge,
                bridge_type: BridgeType::MixingDtmfEvents,
                name: Some(call.to_string()),
            }),
            call,
            fence,
        );
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

    fn on_cancel(&mut self, call: &CallId, fence: u64) {
        if self.awaiting_trunk.get(call).is_some_and(|o| o.fence == fence) {
            self.awaiting_trunk.remove(call);
        }
        let Some(exec) = self.offers.remove(&(call.clone(), fence)) else { return };
        // Even a bridged offer is taken down: the core cancels an offer only while it is
        // not connected (its deadline passed before the sites' Connected was committed, held
        // up by a partition or a restart), and from then on it offers the caller and the
        // operator to others. Talking on would book the operator twice. The caller keeps its
        // place and is offered again at once.
        self.undo_offer(exec);
    }

    /// Tears down an offer's execution (half-built or bridged): ring leg hung up, bridge
    /// destroyed, caller back on hold music, persistent operator back in the holding bridge.
    fn undo_offer(&mut self, exec: OfferExec) {
        match exec.mode {
            OperatorMode::Ring => {
                self.ring_legs.remove(&exec.operator_channel);
                self.ari(AriRequest::Hangup(exec.operator_channel.clone(), HangupReason::Normal));
            }
            OperatorMode::Persistent => {
                if let Some(leg) = self.operators.get_mut(&exec.operator) {
                    leg.busy_with = None;
                    let holding = leg.holding.clone();
                    self.ari(AriRequest::AddChannels {
                        bridge: holding,
                        channels: vec![exec.operator_channel.clone()],
                    });
                }
            }
        }
        if exec.stage != OfferStage::Ringing || exec.kind == ExecKind::TrunkIn {
            self.ari(AriRequest::DestroyBridge(exec.bridge.clone()));
        }
        if matches!(exec.kind, ExecKind::TrunkIn | ExecKind::Callback { .. }) {
            self.ring_legs.remove(&exec.caller_channel);
            self.ari(AriRequest::Hangup(exec.caller_channel.clone(), HangupReason::Normal));
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

    fn fail_offer(&mut self, call: &CallId, fence: u64, operator: &OperatorId, reason: OfferFailure) {
        if let Some(exec) = self.offers.remove(&(call.clone(), fence)) {
            self.undo_offer(exec);
        }
        self.report(CommandBody::OfferFailed { call: call.clone(), operator: operator.clone(), fence, reason });
    }

    /// The operator hung up a connected call.
    fn operator_hung_up(&mut self, call: &CallId, fence: u64) {
        let trunk_in = self.offers.get(&(call.clone(), fence)).is_some_and(|e| e.kind == ExecKind::TrunkIn);
        if !trunk_in {
            // Completions are reported by the caller's site; for a trunk-in leg it learns of
            // the hangup when we end the trunk call.
            self.report(CommandBody::Completed { call: call.clone(), fence, by: HungUpBy::Operator });
        }
        self.end_connected_offer(call, fence, HungUpBy::Operator);
    }

    /// Tidies up after a connected call ended on either side.
    fn end_connected_offer(&mut self, call: &CallId, fence: u64, by: HungUpBy) {
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
                if let Some(leg) = self.operators.get_mut(&exec.operator) {
                    leg.busy_with = None;
                    let holding = leg.holding.clone();
                    self.ari(AriRequest::RemoveChannels {
                        bridge: exec.bridge.clone(),
                        channels: vec![exec.operator_channel.clone()],
                    });
                    self.ari(AriRequest::AddChannels {
                        bridge: holding,
                        channels: vec![exec.operator_channel.clone()],
                    });
                }
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

    // ------------------------------------------------------------ results

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

    fn on_enqueued(&mut self, ch: &ChannelId, result: lineup_core::CommandResult, routing: &Routing) {
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

    /// Our side of a connected cross-site call is over: if the caller's site has not reported
    /// its end after the grace, free the operator (see `release_operators_due`).
    fn release_after_grace(&mut self, call: &CallId, fence: u64, operator: &OperatorId) {
        if self.releases_due.len() < RELEASES_DUE_MAX {
            let due = self.now_ms + OPERATOR_RELEASE_GRACE_MS;
            self.releases_due.insert((call.clone(), fence), (operator.clone(), due));
        }
    }

    /// Frees this site's operators of cross-site calls that ended here but that the caller's
    /// site has not reported (it is silent: restarting, or cut off).
    fn release_operators_due(&mut self, routing: &Routing) {
        let now = self.now_ms;
        let due: Vec<(CallId, u64)> =
            self.releases_due.iter().filter(|(_, (_, at))| *at <= now).map(|(k, _)| k.clone()).collect();
        for (call, fence) in due {
            let Some((operator, _)) = self.releases_due.remove(&(call.clone(), fence)) else { continue };
            let still_connected = routing.call_view(&call).is_some_and(|v| {
                v.status == lineup_core::CallStatus::Connected
                    && v.fence == Some(fence)
                    && v.operator.as_ref() == Some(&operator)
            });
            if still_connected {
                self.report(CommandBody::OperatorLegEnded { call, operator, fence });
            }
        }
    }

    // ------------------------------------------------------------ reconcile

    /// Rebuilds this site's view from what Asterisk holds and what the cluster committed:
    /// finishes what is gone, adopts what is live, and never builds a second bridge for a
    /// caller (bridge ids are derived from fences, so a repeat would be refused anyway).
    fn reconcile(&mut self, channels: Vec<lineup_ari::Channel>, bridges: Vec<lineup_ari::Bridge>, routing: &Routing) {
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

    /// After a restart: the callbacks committed to an operator of this site whose execution
    /// this process does not hold. A connected callback with both parties in its bridge is
    /// adopted (either side's hangup then ends it as usual); one whose party left while we
    /// were away is completed and tidied; one still being set up cannot be resumed (its
    /// ringing legs belong to the lost process), so its legs are hung up and the offer is
    /// failed, which gives the promise its place back without spending an attempt.
    fn adopt_callbacks(
        &mut self,
        live: &BTreeMap<ChannelId, lineup_ari::Channel>,
        bridged: &BTreeMap<BridgeId, Vec<ChannelId>>,
        routing: &Routing,
    ) {
        use lineup_core::CallStatus;
        let callbacks: Vec<lineup_core::CallView> = routing
            .calls()
            .filter(|v| matches!(v.status, CallStatus::CallbackOffered | CallStatus::CallbackConnected))
            .collect();
        for view in callbacks {
            let (Some(fence), Some(operator)) = (view.fence, view.operator.clone()) else { continue };
            let call = view.call.clone();
            if self.offers.contains_key(&(call.clone(), fence)) {
                continue;
            }
            let Some(operator_view) = routing.operator_view(&operator) else { continue };
            if operator_view.site != Some(self.cfg.site) {
                continue;
            }
            let mode = routing.operator_config(&operator).map_or(OperatorMode::Persistent, |c| c.mode);
            let callee = channel(&self.offer_leg_id("cb", &call, fence));
            let bridge = BridgeId::new(self.offer_leg_id("call", &call, fence)).ok();
            let operator_leg = match mode {
                OperatorMode::Persistent => operator_view.channel.as_deref().and_then(channel),
                OperatorMode::Ring => channel(&self.offer_leg_id("ring", &call, fence)),
            };
            let (Some(callee), Some(bridge), Some(operator_leg)) = (callee, bridge, operator_leg) else { continue };
            let members = bridged.get(&bridge);
            let callee_in = members.is_some_and(|m| m.contains(&callee));
            let operator_in = members.is_some_and(|m| m.contains(&operator_leg));
            let both_in = callee_in && operator_in;
            self.counters.channels_adopted += 1;
            self.call_fences.insert(call.clone(), fence);
            self.operator_fences.insert(operator.clone(), fence);
            if view.status == CallStatus::CallbackOffered && !both_in {
                // Half-built: hang up what we placed, put the operator back, fail the offer.
                if live.contains_key(&callee) {
                    self.ari(AriRequest::Hangup(callee, HangupReason::Normal));
                }
                if mode == OperatorMode::Ring && live.contains_key(&operator_leg) {
                    self.ari(AriRequest::Hangup(operator_leg.clone(), HangupReason::Normal));
                }
                if members.is_some() {
                    self.ari(AriRequest::DestroyBridge(bridge));
                }
                if let Some(holding) = self.operators.get(&operator).map(|leg| leg.holding.clone()) {
                    let in_holding = bridged.get(&holding).is_some_and(|m| m.contains(&operator_leg));
                    if mode == OperatorMode::Persistent && !in_holding && live.contains_key(&operator_leg) {
                        self.ari(AriRequest::AddChannels { bridge: holding, channels: vec![operator_leg] });
                    }
                }
                self.propose(
                    CommandBody::OfferFailed {
                        call: call.clone(),
                        operator,
                        fence,
                        reason: OfferFailure::BridgeFailed,
                    },
                    Purpose::CallbackTakenDown { call, fence },
                );
                continue;
            }
            if live.contains_key(&callee) {
                self.ring_legs.insert(callee.clone(), (call.clone(), fence));
            }
            if mode == OperatorMode::Ring && live.contains_key(&operator_leg) {
                self.ring_legs.insert(operator_leg.clone(), (call.clone(), fence));
            }
            if let Some(leg) = self.operators.get_mut(&operator) {
                leg.busy_with = Some(fence);
            }
            self.offers.insert(
                (call.clone(), fence),
                OfferExec {
                    // The number is only needed to dial, and an adopted callback is never redialled.
                    kind: ExecKind::Callback { number: String::new() },
                    call: call.clone(),
                    operator: operator.clone(),
                    fence,
                    caller_channel: callee.clone(),
                    operator_channel: operator_leg,
                    mode,
                    bridge,
                    stage: OfferStage::Connected,
                    caller_in: callee_in,
                    operator_in,
                    whisper: None,
                    whisper_playback: None,
                },
            );
            match (view.status, both_in) {
                (CallStatus::CallbackConnected, true) => {}
                (_, true) => {
                    // Connected while we were away: report it as the bridge event would have.
                    self.counters.bridges_connected += 1;
                    self.propose(
                        CommandBody::CallbackResult { call: call.clone(), operator, fence, answered: true },
                        Purpose::CallbackAnswered { call: call.clone(), fence },
                    );
                }
                (_, false) => {
                    // Connected, and a party left while we were away.
                    let by = if live.contains_key(&callee) { HungUpBy::Operator } else { HungUpBy::Caller };
                    self.report(CommandBody::Completed { call: call.clone(), fence, by });
                    self.end_connected_offer(&call, fence, by);
                }
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

    // ------------------------------------------------------------ operator login

    fn login_digit(&mut self, ch: &ChannelId, digit: char, routing: &Routing) {
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
                        self.login_failed(ch, &operator);
                    }
                    return;
                }
                let locked = self.pin_failures.get(&operator).is_some_and(|times| {
                    times.iter().filter(|t| **t + LOCKOUT_WINDOW_MS > self.now_ms).count() >= LOCKOUT_FAILURES_MAX
                });
                match routing.operator_config(&operator) {
                    Some(cfg) if !locked && !cfg.pin_hash.is_empty() => {
                        session.stage = LoginStage::Verifying;
                        let token = self.token();
                        self.pending.insert(token, Pending::Pin { channel: ch.clone() });
                        self.out.push(Action::VerifyPin { token, pin: digits, phc: cfg.pin_hash.clone() });
                    }
                    _ => self.login_failed(ch, &operator),
                }
            }
            _ => {}
        }
    }

    fn on_pin_verified(&mut self, token: u64, ok: bool, routing: &Routing) {
        let Some(Pending::Pin { channel }) = self.pending.remove(&token) else { return };
        let Some(session) = self.logins.get_mut(&channel) else { return };
        let Some(operator) = session.operator.clone() else { return };
        if !ok {
            self.login_failed(&channel, &operator);
            return;
        }
        let Some(cfg) = routing.operator_config(&operator) else {
            self.login_failed(&channel, &operator);
            return;
        };
        session.stage = LoginStage::Committing;
        let leg = (cfg.mode == OperatorMode::Persistent).then(|| channel.as_str().to_string());
        self.propose(
            CommandBody::OperatorLogin { operator, site: self.cfg.site, channel: leg },
            Purpose::Login { channel },
        );
    }

    fn login_failed(&mut self, ch: &ChannelId, operator: &OperatorId) {
        self.counters.logins_failed += 1;
        self.pin_failures.entry(operator.clone()).or_default().push(self.now_ms);
        let now = self.now_ms;
        if let Some(times) = self.pin_failures.get_mut(operator) {
            times.retain(|t| t + LOCKOUT_WINDOW_MS > now);
        }
        let Some(session) = self.logins.get_mut(ch) else { return };
        session.attempts += 1;
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

    fn on_login_committed(&mut self, ch: &ChannelId, result: lineup_core::CommandResult, routing: &Routing) {
        let Some(session) = self.logins.get(ch) else { return };
        let Some(operator) = session.operator.clone() else { return };
        if result.is_err() {
            let playback = self.play(ch, vec![Media::Sound(prompts::SOUND_AGENT_INCORRECT.into())]);
            if let Some(s) = self.logins.get_mut(ch) {
                s.stage = LoginStage::Closing;
                s.playback = playback;
            }
            return;
        }
        self.counters.logins_ok += 1;
        self.pin_failures.remove(&operator);
        let persistent = routing.operator_config(&operator).is_some_and(|c| c.mode == OperatorMode::Persistent);
        if persistent {
            // The leg stays on the line in a holding bridge between calls.
            let Ok(holding) = BridgeId::new(format!("hold-{}", operator.as_str())) else { return };
            self.operators.insert(operator.clone(), OperatorLeg { holding: holding.clone(), busy_with: None });
            self.operator_channels.insert(ch.clone(), operator.clone());
            // Logged in again on a new leg: the old one is done with.
            self.release_operator_legs(&operator, Some(ch));
            self.ari(AriRequest::CreateBridge(CreateBridgeRequest {
                bridge_id: holding.clone(),
                bridge_type: BridgeType::Holding,
                name: Some(operator.to_string()),
            }));
            self.ari(AriRequest::AddChannels { bridge: holding, channels: vec![ch.clone()] });
        }
        let playback = self.play(ch, vec![Media::Sound(prompts::SOUND_AGENT_LOGIN_OK.into())]);
        if let Some(s) = self.logins.get_mut(ch) {
            s.playback = playback;
            // Ring mode: the login call ends after the prompt.
            s.stage = if persistent { LoginStage::Holding } else { LoginStage::RingDone };
        }
    }
}
