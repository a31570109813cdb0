//! The Asterisk model: boxes (one per site), channels, bridges, playbacks, trunks between
//! boxes, and the scripted humans at the far end of phone channels.
//!
//! Sans-IO: no sockets, no clock, no randomness. Time enters through `advance_to(now_ms)`;
//! every operation happens at the current virtual time; events leave through
//! `drain_outputs()`. The same `PbxWorld` is driven by the deterministic simulator directly
//! and by `server::LiveWorld` behind the HTTP + WebSocket face.

use crate::dialplan::{split_goto_if, Dialplan, GotoTarget};
use crate::error::SimError;
use crate::expression::{self, condition_is_true, leading_integer};
use crate::sounds::media_duration_ms;
use crate::time::format_timestamp;
use lineup_ari::model::{cause_text, parse_caller_id};
use lineup_ari::stasis_args::split_stasis_app_data;
use lineup_ari::{
    AriError, AriEvent, Bridge, BridgeKind, CallerId, Channel, ChannelId, ChannelState, DialplanLocation, EventKind,
    Playback, PlaybackId, PlaybackState,
};
use std::collections::{BTreeMap, BTreeSet, VecDeque};

/// Most live channels per box.
pub const CHANNELS_PER_BOX_MAX_COUNT: usize = 4_096;
/// Most live bridges per box.
pub const BRIDGES_PER_BOX_MAX_COUNT: usize = 2_048;
/// Most commands waiting on one channel (plays, DTMF, bridge joins behind a prompt).
pub const CONTROL_QUEUE_MAX_COMMANDS: usize = 64;
/// Most undrained outputs; past this the oldest are dropped and counted.
pub const PENDING_OUTPUTS_MAX_COUNT: usize = 65_536;
/// Most pending timers in the whole world.
pub const TIMERS_MAX_COUNT: usize = 65_536;
/// Most timers one `advance_to` fires, so a timer storm is a visible stop, not a hang.
pub const TIMERS_PER_ADVANCE_MAX_COUNT: usize = 1_000_000;
/// Most dialplan steps one channel runs without waiting.
pub const DIALPLAN_STEPS_PER_RUN_MAX_COUNT: usize = 64;
/// Most hops followed when working out who hears whom.
pub const AUDIO_PATH_HOPS_MAX_COUNT: usize = 64;
/// How long one ARI-sent digit occupies the channel (recording: digits 300 ms apart).
pub const DTMF_COMMAND_SPAN_MS: u64 = 300;
/// When, within that span, the far end reports the digit (recording: 200 ms after start).
pub const DTMF_RECEIVED_OFFSET_MS: u64 = 200;
/// `duration_ms` of every DTMF digit.
pub const DTMF_DURATION_MS: u32 = 100;
/// Gap between two keys a scripted human presses in one burst.
pub const KEY_SPACING_MS: u64 = 250;
/// Delay before the dialplan step after `Answer()` runs (54 ms in the recording).
pub const DIALPLAN_ANSWER_SETTLE_MS: u64 = 54;
/// Delay between an originate's answer and the start of dialing: Asterisk dials from another
/// thread after replying, so the reply always precedes the first event (recorded: 1 ms).
pub const ORIGINATE_DIAL_DELAY_MS: u64 = 1;
/// Ring timeout when an originate gives none (Asterisk's default).
pub const RING_TIMEOUT_S_DEFAULT: u64 = 30;
/// Ended channels remembered per box (`ended_channel`); the oldest is forgotten first.
pub const ENDED_CHANNELS_PER_BOX_MAX_COUNT: usize = 1_024;

/// Which box (stand-in Asterisk) of the world.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct BoxIndex(pub usize);

/// A trunk from one box to another: `PJSIP/<exten>@<trunk>` or `IAX2/<trunk>/<exten>`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TrunkRoute {
    /// `PJSIP` or `IAX2`.
    pub technology: String,
    /// The trunk name in the dial string (`site-b`).
    pub trunk: String,
    pub target: BoxIndex,
    /// The context calls arrive in at the target box (`from-lineup` in the deploy snippets).
    pub context: String,
}

/// One stand-in Asterisk.
#[derive(Clone, Debug)]
pub struct BoxConfig {
    /// The site name (`site-a`); the far end of a trunk names its channels after it.
    pub name: String,
    /// `asterisk_id` in events.
    pub asterisk_id: String,
    pub dialplan: Dialplan,
    pub trunks: Vec<TrunkRoute>,
}

/// The dialplan users deploy (`deploy/asterisk/extensions.conf`), as the stand-in runs it.
pub const DEPLOYED_EXTENSIONS_CONF: &str = include_str!("../../../deploy/asterisk/extensions.conf");

/// The context cross-site legs arrive in (`[from-lineup]` in the deployed dialplan).
pub const TRUNK_ENTRY_CONTEXT: &str = "from-lineup";

/// A world of `site_names.len()` boxes running the deployed dialplan, each with a PJSIP trunk
/// to every other named after it (`PJSIP/lineup-<call>@<site>`), as in the demo.
pub fn federated_sites(epoch_ms: u64, site_names: &[&str]) -> Result<PbxWorld, SimError> {
    let dialplan = Dialplan::parse(DEPLOYED_EXTENSIONS_CONF)?;
    let boxes = site_names
        .iter()
        .enumerate()
        .map(|(index, name)| BoxConfig {
            name: name.to_string(),
            asterisk_id: format!("02:fc:00:00:00:{:02x}", index + 1),
            dialplan: dialplan.clone(),
            trunks: site_names
                .iter()
                .enumerate()
                .filter(|(other, _)| *other != index)
                .map(|(other, other_name)| TrunkRoute {
                    technology: "PJSIP".into(),
                    trunk: other_name.to_string(),
                    target: BoxIndex(other),
                    context: TRUNK_ENTRY_CONTEXT.into(),
                })
                .collect(),
        })
        .collect();
    PbxWorld::new(epoch_ms, boxes)
}

/// What a scripted human at a phone does when it rings, and once answered.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PhoneBehaviour {
    /// Answer this long after ringing starts; `None` never answers.
    pub answer_after_ms: Option<u64>,
    /// Hang up this long after answering; `None` stays until the other side hangs up.
    pub hang_up_after_answer_ms: Option<u64>,
    /// Keys pressed after answering.
    pub keys_after_answer: Vec<ScriptedKeys>,
    /// Rejects every call as busy (Dial `BUSY`, cause 17) instead of ringing.
    pub busy: bool,
}

/// Keys a scripted human presses, `at_ms` after the call started (or was answered).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ScriptedKeys {
    pub at_ms: u64,
    /// `0-9 * # A-D`, pressed `KEY_SPACING_MS` apart.
    pub digits: String,
}

/// A scripted caller (or an operator's login call): a phone dials into the dialplan.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PhoneCall {
    /// The PJSIP endpoint of the phone (`alice`); the channel is `PJSIP/alice-<n>`.
    pub phone: String,
    pub caller: CallerId,
    pub context: String,
    pub exten: String,
    /// Hang up this long after dialing unless the call ended first.
    pub patience_ms: Option<u64>,
    pub keys: Vec<ScriptedKeys>,
}

impl PhoneCall {
    /// An operator's login call: dial the login extension, key the PIN and `#` once the
    /// prompt had time to play.
    pub fn operator_login(
        phone: &str,
        caller: CallerId,
        context: &str,
        exten: &str,
        pin: &str,
        pin_at_ms: u64,
    ) -> PhoneCall {
        PhoneCall {
            phone: phone.to_string(),
            caller,
            context: context.to_string(),
            exten: exten.to_string(),
            patience_ms: None,
            keys: vec![ScriptedKeys { at_ms: pin_at_ms, digits: format!("{pin}#") }],
        }
    }
}

/// What a channel's human hears right now.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AudioPath {
    Silence,
    Ringing,
    MusicOnHold {
        class: String,
    },
    Prompt {
        media_uri: String,
    },
    /// Talking with these humans (box, channel name), through bridges, Local pairs and trunks.
    Connected {
        parties: Vec<(BoxIndex, String)>,
    },
}

/// What a channel looked like when it was destroyed, like the CDR Asterisk writes for it: the
/// final snapshot (its dialplan location shows where the dialplan was when it ended, and
/// `app_name` the last application), the hangup cause and its channel variables. Tests read
/// it to see what the dialplan got back from Stasis (`LINEUP_RESULT`) after the channel is
/// gone.
#[derive(Clone, Debug, PartialEq)]
pub struct EndedChannel {
    pub channel: Channel,
    pub cause: i32,
    pub variables: BTreeMap<String, String>,
    /// Who ended it. An observation for harnesses (the chaos harness tells a scripted hangup
    /// from one sent over ARI); Asterisk's CDR has no such field.
    pub ended_by: EndedBy,
}

/// What ended a channel.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum EndedBy {
    /// `DELETE /channels/{id}` over ARI.
    Ari,
    /// The scripted human on the phone hung up (`phone_hangup`, a call's patience).
    Human,
    /// The dialplan hung up (`Hangup()`, a missing extension, or the end of one).
    Dialplan,
    /// The other half of its Local pair or trunk call went away first.
    Peer { box_index: BoxIndex, channel: String },
    /// Dialing it failed (no answer, busy, unavailable, congestion).
    DialFailed,
}

/// One event for one application of one box.
#[derive(Clone, Debug, PartialEq)]
pub struct WorldOutput {
    pub box_index: BoxIndex,
    pub event: AriEvent,
}

#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
struct ChannelRef {
    box_index: BoxIndex,
    id: String,
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum ChannelRole {
    /// A half of a Local channel pair.
    Local,
    /// A leg of a trunk call between boxes.
    Trunk,
    /// A phone with a scripted human behind it.
    Phone { resource: String, behaviour: PhoneBehaviour },
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum Moh {
    Off,
    Playing(String),
    /// A play paused it; Asterisk does not resume it.
    Paused(String),
}

/// Where the dialplan goes after one step.
enum StepFlow {
    /// On at the next priority, now.
    Next,
    /// On at this location, now (a Goto).
    Jump { context: String, exten: String, priority: i64 },
    /// Not now: the channel waits (a timer, Stasis) or is gone.
    Stop,
}

/// A variable as the dialplan reads it on `record`: the channel's location, its caller id,
/// or a channel variable.
fn dialplan_variable(record: &ChannelRecord, name: &str) -> Option<String> {
    let location = &record.snapshot.dialplan;
    match name {
        "EXTEN" => Some(location.exten.clone()),
        "CONTEXT" => Some(location.context.clone()),
        "PRIORITY" => Some(location.priority.to_string()),
        "CALLERID(num)" => Some(record.snapshot.caller.number.clone()),
        "CALLERID(name)" => Some(record.snapshot.caller.name.clone()),
        _ => record.variables.get(name).cloned(),
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum ControlCommand {
    Play(String),
    Dtmf(char),
    JoinBridge(String),
    Continue { context: Option<String>, exten: Option<String>, priority: Option<i64> },
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum HangupOrigin {
    /// `DELETE /channels/{id}` with this cause.
    Rest { cause: i32 },
    /// The dialplan hung up.
    Local { cause: i32 },
    /// The scripted human hung up (reported to ARI exactly like `Local`).
    Human { cause: i32 },
    /// The other half of a Local pair or trunk call went away.
    Peer { cause: i32, from: ChannelRef },
    /// Dialing failed (no answer, unavailable): no hangup request is reported.
    DialFailed { cause: i32, dialstatus: &'static str },
}

#[derive(Clone, Debug)]
struct DialState {
    dialstring: String,
}

#[derive(Clone, Debug)]
struct ChannelRecord {
    snapshot: Channel,
    role: ChannelRole,
    stasis_app: Option<String>,
    /// Originate/create with `app`: enter that application once answered.
    stasis_pending: Option<(String, Vec<String>)>,
    /// Originate to the dialplan: run from here once answered.
    dialplan_after_answer: Option<(String, String, i64)>,
    /// Applications that subscribed through originate/create; they keep the channel's events
    /// until it is destroyed (the recording shows `ChannelDestroyed` reaching them).
    originate_subscribers: BTreeSet<String>,
    media_peer: Option<ChannelRef>,
    control_queue: VecDeque<ControlCommand>,
    control_busy: bool,
    current_playback: Option<String>,
    moh: Moh,
    bridge: Option<String>,
    variables: BTreeMap<String, String>,
    dialing: Option<DialState>,
    hanging_up: bool,
    /// The dialplan application before Stasis, shown again after StasisEnd (recorded).
    application_before_stasis: Option<(String, String)>,
    /// Parked in a dialplan application (`Wait`): a hangup interrupts it and clears it.
    in_dialplan_application: bool,
    /// What `dial` rings, for a channel made with `create`.
    dial_resource: Option<String>,
}

#[derive(Clone, Debug)]
struct BridgeRecord {
    snapshot: Bridge,
    subscribers: BTreeSet<String>,
    /// Whether Asterisk could bridge natively (media bypassing the core, so no DTMF events).
    native_capable: bool,
}

#[derive(Clone, Debug)]
struct PlaybackRecord {
    snapshot: Playback,
    channel: String,
    media: Vec<String>,
    index: usize,
}

#[derive(Clone, Debug)]
struct PbxBox {
    config: BoxConfig,
    channels: BTreeMap<String, ChannelRecord>,
    bridges: BTreeMap<String, BridgeRecord>,
    playbacks: BTreeMap<String, PlaybackRecord>,
    applications: BTreeSet<String>,
    phones: BTreeMap<String, PhoneBehaviour>,
    /// The last `ENDED_CHANNELS_PER_BOX_MAX_COUNT` channels destroyed, oldest first.
    ended: VecDeque<EndedChannel>,
    next_unique_sequence: u64,
    next_local_sequence: u64,
    next_technology_sequence: u64,
    next_object_sequence: u64,
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum Timer {
    StartLocalDial { first: ChannelRef, second: ChannelRef, dialstring: String },
    StartDial { channel: ChannelRef, dialstring: String, timeout_s: u64, caller: CallerId },
    PlaybackItemDone { box_index: BoxIndex, playback: String },
    ControlDone { channel: ChannelRef },
    DtmfReceived { channel: ChannelRef, digit: char },
    DialplanResume { channel: ChannelRef, priority: i64 },
    MusicOnHoldDone { channel: ChannelRef, priority: i64 },
    PhoneRinging { channel: ChannelRef },
    PhoneAnswer { channel: ChannelRef },
    RingTimeout { channel: ChannelRef },
    PhoneHangup { channel: ChannelRef },
    PhoneKey { channel: ChannelRef, digit: char },
}

/// The whole modelled telephony: one or more boxes joined by trunks.
#[derive(Clone, Debug)]
pub struct PbxWorld {
    epoch_ms: u64,
    now_ms: u64,
    boxes: Vec<PbxBox>,
    timers: BTreeMap<(u64, u64), Timer>,
    timer_sequence: u64,
    outputs: VecDeque<WorldOutput>,
    dropped_outputs: u64,
    dropped_timers: u64,
}

fn not_found(what: &str) -> AriError {
    AriError::NotFound { message: format!("{what} not found") }
}

fn not_in_stasis() -> AriError {
    AriError::Conflict { message: "Channel not in Stasis application".into() }
}

impl PbxWorld {
    /// A world at virtual time 0; `epoch_ms` is the wall-clock time that 0 stands for (it only
    /// shows in timestamps and uniqueids).
    pub fn new(epoch_ms: u64, boxes: Vec<BoxConfig>) -> Result<PbxWorld, SimError> {
        if boxes.is_empty() {
            return Err(SimError::InvalidSetup("a world needs at least one box".into()));
        }
        for config in &boxes {
            for route in &config.trunks {
                if route.target.0 >= boxes.len() {
                    return Err(SimError::InvalidSetup(format!("trunk {} targets a missing box", route.trunk)));
                }
            }
        }
        let boxes = boxes
            .into_iter()
            .map(|config| PbxBox {
                config,
                channels: BTreeMap::new(),
                bridges: BTreeMap::new(),
                playbacks: BTreeMap::new(),
                applications: BTreeSet::new(),
                phones: BTreeMap::new(),
                ended: VecDeque::new(),
                next_unique_sequence: 0,
                next_local_sequence: 0,
                next_technology_sequence: 0,
                next_object_sequence: 0,
            })
            .collect();
        Ok(PbxWorld {
            epoch_ms,
            now_ms: 0,
            boxes,
            timers: BTreeMap::new(),
            timer_sequence: 0,
            outputs: VecDeque::new(),
            dropped_outputs: 0,
            dropped_timers: 0,
        })
    }

    pub fn now_ms(&self) -> u64 {
        self.now_ms
    }

    pub fn box_count(&self) -> usize {
        self.boxes.len()
    }

    /// Outputs dropped because nobody drained them (see `PENDING_OUTPUTS_MAX_COUNT`).
    pub fn dropped_outputs(&self) -> u64 {
        self.dropped_outputs
    }

    /// When the next timer is due, if any.
    pub fn next_timer_due_ms(&self) -> Option<u64> {
        self.timers.keys().next().map(|(due, _)| *due)
    }

    /// Takes every event produced so far, in order.
    pub fn drain_outputs(&mut self) -> Vec<WorldOutput> {
        self.outputs.drain(..).collect()
    }

    /// Runs every timer due up to `now_ms` in order, then sets the clock to `now_ms`.
    /// Time never goes back: an earlier `now_ms` only fires what is already due.
    pub fn advance_to(&mut self, now_ms: u64) {
        let target = now_ms.max(self.now_ms);
        for _ in 0..TIMERS_PER_ADVANCE_MAX_COUNT {
            let Some((&(due, sequence), _)) = self.timers.iter().next() else { break };
            if due > target {
                break;
            }
            let timer = self.timers.remove(&(due, sequence)).expect("timer just seen");
            self.now_ms = due.max(self.now_ms);
            self.fire(timer);
        }
        self.now_ms = target;
    }

    /// Registers a Stasis application (a WebSocket connected for it). Channels reaching
    /// `Stasis(app)` for an unregistered app continue in the dialplan, as in Asterisk.
    pub fn register_application(&mut self, box_index: BoxIndex, application: &str) {
        if let Some(pbx) = self.boxes.get_mut(box_index.0) {
            pbx.applications.insert(application.to_string());
        }
    }

    pub fn unregister_application(&mut self, box_index: BoxIndex, application: &str) {
        if let Some(pbx) = self.boxes.get_mut(box_index.0) {
            pbx.applications.remove(application);
        }
    }

    /// A phone an originate or dial can reach at `PJSIP/<resource>`.
    pub fn register_phone(
        &mut self,
        box_index: BoxIndex,
        resource: &str,
        behaviour: PhoneBehaviour,
    ) -> Result<(), SimError> {
        let pbx = self.boxes.get_mut(box_index.0).ok_or_else(|| SimError::InvalidSetup("no such box".into()))?;
        pbx.phones.insert(resource.to_string(), behaviour);
        Ok(())
    }

    // ----- small helpers -------------------------------------------------------------------

    fn timestamp(&self) -> String {
        format_timestamp(self.epoch_ms + self.now_ms)
    }

    fn schedule(&mut self, delay_ms: u64, timer: Timer) {
        if self.timers.len() >= TIMERS_MAX_COUNT {
            self.dropped_timers += 1;
            return;
        }
        self.timer_sequence += 1;
        self.timers.insert((self.now_ms + delay_ms, self.timer_sequence), timer);
    }

    fn push_output(&mut self, box_index: BoxIndex, event: AriEvent) {
        if self.outputs.len() >= PENDING_OUTPUTS_MAX_COUNT {
            self.outputs.pop_front();
            self.dropped_outputs += 1;
        }
        self.outputs.push_back(WorldOutput { box_index, event });
    }

    fn emit(&mut self, box_index: BoxIndex, applications: &BTreeSet<String>, kind: EventKind) {
        let timestamp = self.timestamp();
        let asterisk_id = Some(self.boxes[box_index.0].config.asterisk_id.clone());
        for application in applications {
            let event = AriEvent {
                application: application.clone(),
                timestamp: timestamp.clone(),
                asterisk_id: asterisk_id.clone(),
                kind: kind.clone(),
            };
            self.push_output(box_index, event);
        }
    }

    fn channel(&self, channel: &ChannelRef) -> Option<&ChannelRecord> {
        self.boxes.get(channel.box_index.0)?.channels.get(&channel.id)
    }

    fn channel_mut(&mut self, channel: &ChannelRef) -> Option<&mut ChannelRecord> {
        self.boxes.get_mut(channel.box_index.0)?.channels.get_mut(&channel.id)
    }

    fn subscribers(&self, channel: &ChannelRef) -> BTreeSet<String> {
        let Some(record) = self.channel(channel) else { return BTreeSet::new() };
        let mut applications = record.originate_subscribers.clone();
        if let Some(application) = &record.stasis_app {
            applications.insert(application.clone());
        }
        applications
    }

    fn emit_for_channel(&mut self, channel: &ChannelRef, kind: EventKind) {
        let applications = self.subscribers(channel);
        self.emit(channel.box_index, &applications, kind);
    }

    fn snapshot(&self, channel: &ChannelRef) -> Option<Channel> {
        self.channel(channel).map(|record| record.snapshot.clone())
    }

    fn pbx(&self, box_index: BoxIndex) -> Result<&PbxBox, AriError> {
        self.boxes.get(box_index.0).ok_or_else(|| not_found("Box"))
    }

    fn existing(&self, box_index: BoxIndex, id: &str) -> Result<ChannelRef, AriError> {
        let pbx = self.pbx(box_index)?;
        if pbx.channels.contains_key(id) {
            Ok(ChannelRef { box_index, id: id.to_string() })
        } else {
            Err(not_found("Channel"))
        }
    }

    fn in_stasis(&self, box_index: BoxIndex, id: &str) -> Result<ChannelRef, AriError> {
        let channel = self.existing(box_index, id)?;
        let record = self.channel(&channel).expect("exists");
        if record.stasis_app.is_none() || record.hanging_up {
            return Err(not_in_stasis());
        }
        Ok(channel)
    }

    fn allocate_unique_id(&mut self, box_index: BoxIndex) -> String {
        let seconds = (self.epoch_ms + self.now_ms) / 1000;
        let pbx = &mut self.boxes[box_index.0];
        let sequence = pbx.next_unique_sequence;
        pbx.next_unique_sequence += 1;
        format!("{seconds}.{sequence}")
    }

    fn next_object_id(&mut self, box_index: BoxIndex, prefix: &str) -> String {
        let pbx = &mut self.boxes[box_index.0];
        pbx.next_object_sequence += 1;
        format!("{prefix}-{}-{:08}", box_index.0, pbx.next_object_sequence)
    }

    #[allow(clippy::too_many_arguments)]
    fn create_channel_record(
        &mut self,
        box_index: BoxIndex,
        requested_id: Option<&ChannelId>,
        name: String,
        state: ChannelState,
        caller: CallerId,
        dialplan: DialplanLocation,
        role: ChannelRole,
    ) -> Result<ChannelRef, AriError> {
        let pbx = self.pbx(box_index)?;
        if pbx.channels.len() >= CHANNELS_PER_BOX_MAX_COUNT {
            return Err(AriError::ServerError { message: "Too many channels".into() });
        }
        let id = match requested_id {
            Some(id) if pbx.channels.contains_key(id.as_str()) => {
                return Err(AriError::Conflict { message: format!("Channel with id '{id}' already exists") })
            }
            Some(id) => id.to_string(),
            None => self.allocate_unique_id(box_index),
        };
        let snapshot = Channel {
            id: ChannelId::new(id.clone())?,
            name,
            state,
            protocol_id: String::new(),
            caller: caller.clone(),
            connected: caller,
            accountcode: String::new(),
            dialplan,
            creationtime: self.timestamp(),
            language: "en".into(),
            channelvars: None,
        };
        let record = ChannelRecord {
            snapshot,
            role,
            stasis_app: None,
            stasis_pending: None,
            dialplan_after_answer: None,
            originate_subscribers: BTreeSet::new(),
            media_peer: None,
            control_queue: VecDeque::new(),
            control_busy: false,
            current_playback: None,
            moh: Moh::Off,
            bridge: None,
            variables: BTreeMap::new(),
            dialing: None,
            hanging_up: false,
            application_before_stasis: None,
            in_dialplan_application: false,
            dial_resource: None,
        };
        self.boxes[box_index.0].channels.insert(id.clone(), record);
        Ok(ChannelRef { box_index, id })
    }

    fn technology_channel_name(&mut self, box_index: BoxIndex, technology: &str, resource: &str) -> String {
        let pbx = &mut self.boxes[box_index.0];
        let sequence = pbx.next_technology_sequence;
        pbx.next_technology_sequence += 1;
        format!("{technology}/{resource}-{sequence:08x}")
    }

    // ----- scripted humans -----------------------------------------------------------------

    /// A phone dials `context`/`exten`: the channel appears ringing and runs the dialplan.
    pub fn place_call(&mut self, box_index: BoxIndex, call: PhoneCall) -> Result<ChannelId, SimError> {
        let pbx = self.boxes.get(box_index.0).ok_or_else(|| SimError::InvalidSetup("no such box".into()))?;
        if pbx.config.dialplan.find(&call.context, &call.exten).is_none() {
            return Err(SimError::InvalidSetup(format!("no extension {}@{}", call.exten, call.context)));
        }
        for keys in &call.keys {
            lineup_ari::model::validate_dtmf(&keys.digits)
                .map_err(|error| SimError::InvalidSetup(error.to_string()))?;
        }
        let name = self.technology_channel_name(box_index, "PJSIP", &call.phone);
        let dialplan = DialplanLocation {
            context: call.context.clone(),
            exten: call.exten.clone(),
            priority: 1,
            app_name: String::new(),
            app_data: String::new(),
        };
        let role = ChannelRole::Phone { resource: call.phone.clone(), behaviour: PhoneBehaviour::default() };
        let channel = self
            .create_channel_record(box_index, None, name, ChannelState::Ring, call.caller.clone(), dialplan, role)
            .map_err(|error| SimError::InvalidSetup(error.to_string()))?;
        if let Some(patience_ms) = call.patience_ms {
            self.schedule(patience_ms, Timer::PhoneHangup { channel: channel.clone() });
        }
        self.schedule_keys(&channel, &call.keys);
        let id = ChannelId::new(channel.id.clone()).map_err(|error| SimError::InvalidSetup(error.to_string()))?;
        self.run_dialplan(&channel);
        Ok(id)
    }

    fn schedule_keys(&mut self, channel: &ChannelRef, keys: &[ScriptedKeys]) {
        for burst in keys {
            for (index, digit) in burst.digits.chars().enumerate() {
                let delay = burst.at_ms + KEY_SPACING_MS * index as u64;
                self.schedule(delay, Timer::PhoneKey { channel: channel.clone(), digit });
            }
        }
    }

    /// The human on a phone channel hangs up.
    pub fn phone_hangup(&mut self, box_index: BoxIndex, channel: &ChannelId) -> bool {
        let channel = ChannelRef { box_index, id: channel.to_string() };
        if self.channel(&channel).is_none() {
            return false;
        }
        self.hangup(&channel, HangupOrigin::Human { cause: 16 });
        true
    }

    /// The human on a phone channel presses keys now (spaced `KEY_SPACING_MS`).
    pub fn phone_press(&mut self, box_index: BoxIndex, channel: &ChannelId, digits: &str) -> Result<(), SimError> {
        lineup_ari::model::validate_dtmf(digits).map_err(|error| SimError::InvalidSetup(error.to_string()))?;
        let channel = ChannelRef { box_index, id: channel.to_string() };
        self.schedule_keys(&channel, &[ScriptedKeys { at_ms: 0, digits: digits.to_string() }]);
        Ok(())
    }

    /// What the human on `channel` hears now.
    pub fn audio_path(&self, box_index: BoxIndex, channel: &ChannelId) -> Option<AudioPath> {
        let start = ChannelRef { box_index, id: channel.to_string() };
        let record = self.channel(&start)?;
        if let Some(playback) = &record.current_playback {
            let media_uri = self.boxes[box_index.0].playbacks.get(playback).map(|p| p.snapshot.media_uri.clone());
            return Some(AudioPath::Prompt { media_uri: media_uri.unwrap_or_default() });
        }
        if let Moh::Playing(class) = &record.moh {
            return Some(AudioPath::MusicOnHold { class: class.clone() });
        }
        let parties = self.connected_parties(&start);
        if !parties.is_empty() {
            return Some(AudioPath::Connected { parties });
        }
        if record.snapshot.state != ChannelState::Up {
            return Some(AudioPath::Ringing);
        }
        Some(AudioPath::Silence)
    }

    /// Humans reachable from `start` through bridges, Local pairs and trunk legs.
    fn connected_parties(&self, start: &ChannelRef) -> Vec<(BoxIndex, String)> {
        let mut seen: BTreeSet<ChannelRef> = BTreeSet::from([start.clone()]);
        let mut frontier = vec![start.clone()];
        let mut parties = Vec::new();
        for _ in 0..AUDIO_PATH_HOPS_MAX_COUNT {
            let Some(current) = frontier.pop() else { break };
            let Some(record) = self.channel(&current) else { continue };
            let mut next: Vec<ChannelRef> = Vec::new();
            if let Some(peer) = &record.media_peer {
                // Media through a Local pair or trunk only flows once answered.
                if record.snapshot.state == ChannelState::Up {
                    next.push(peer.clone());
                }
            }
            // Participants of a holding bridge wait side by side; they do not hear each other.
            let bridge = record.bridge.as_ref().and_then(|id| self.boxes[current.box_index.0].bridges.get(id));
            if let Some(bridge) = bridge.filter(|bridge| bridge.snapshot.bridge_type == BridgeKind::Mixing) {
                for member in &bridge.snapshot.channels {
                    next.push(ChannelRef { box_index: current.box_index, id: member.to_string() });
                }
            }
            for candidate in next {
                if !seen.insert(candidate.clone()) {
                    continue;
                }
                if let Some(found) = self.channel(&candidate) {
                    if matches!(found.role, ChannelRole::Phone { .. }) {
                        parties.push((candidate.box_index, found.snapshot.name.clone()));
                    } else {
                        frontier.push(candidate);
                    }
                }
            }
        }
        parties.sort();
        parties
    }

    /// The record of a channel of `box_index` that has been destroyed (the most recent one
    /// with this id), while it is among the last `ENDED_CHANNELS_PER_BOX_MAX_COUNT`.
    pub fn ended_channel(&self, box_index: BoxIndex, channel: &ChannelId) -> Option<EndedChannel> {
        self.boxes.get(box_index.0)?.ended.iter().rev().find(|ended| &ended.channel.id == channel).cloned()
    }

    /// The other half of `channel`'s Local pair or trunk call, and whether media flows to it
    /// (the channel is answered). An observation for harnesses that follow a call's legs.
    pub fn media_peer(&self, box_index: BoxIndex, channel: &ChannelId) -> Option<(BoxIndex, ChannelId, bool)> {
        let record = self.channel(&ChannelRef { box_index, id: channel.to_string() })?;
        let peer = record.media_peer.as_ref()?;
        let id = ChannelId::new(peer.id.clone()).ok()?;
        Some((peer.box_index, id, record.snapshot.state == ChannelState::Up))
    }

    /// The bridge `channel` is in, if any.
    pub fn channel_bridge(&self, box_index: BoxIndex, channel: &ChannelId) -> Option<String> {
        self.channel(&ChannelRef { box_index, id: channel.to_string() })?.bridge.clone()
    }

    /// Ids and names of the live channels of a box (for tests and the simulator).
    pub fn channel_names(&self, box_index: BoxIndex) -> Vec<(ChannelId, String)> {
        self.boxes
            .get(box_index.0)
            .map(|pbx| {
                pbx.channels.values().map(|record| (record.snapshot.id.clone(), record.snapshot.name.clone())).collect()
            })
            .unwrap_or_default()
    }

    // ----- dialplan ------------------------------------------------------------------------

    fn run_dialplan(&mut self, channel: &ChannelRef) {
        // Bounded: a dialplan that loops without waiting stops here instead of spinning.
        for _ in 0..DIALPLAN_STEPS_PER_RUN_MAX_COUNT {
            let Some(record) = self.channel(channel) else { return };
            if record.hanging_up || record.stasis_app.is_some() {
                return;
            }
            let location = record.snapshot.dialplan.clone();
            let dialplan = &self.boxes[channel.box_index.0].config.dialplan;
            let Some(extension) = dialplan.find(&location.context, &location.exten) else {
                self.hangup(channel, HangupOrigin::Local { cause: 1 });
                return;
            };
            let Some(step) = usize::try_from(location.priority - 1).ok().and_then(|index| extension.steps.get(index))
            else {
                // Falling off the end of an extension hangs up, as in Asterisk.
                self.hangup(channel, HangupOrigin::Local { cause: 16 });
                return;
            };
            let application = step.application.clone();
            // As in Asterisk, the application sees its data with variables and expressions
            // substituted.
            let data = expression::substitute(&step.data, &|name| dialplan_variable(record, name));
            if let Some(record) = self.channel_mut(channel) {
                record.snapshot.dialplan.app_name = application.clone();
                record.snapshot.dialplan.app_data = data.clone();
            }
            let snapshot = self.snapshot(channel).expect("live");
            self.emit_for_channel(
                channel,
                EventKind::ChannelDialplan {
                    dialplan_app: application.clone(),
                    dialplan_app_data: data.clone(),
                    channel: snapshot,
                },
            );
            let next = match self.run_step(channel, &location, &application, &data) {
                StepFlow::Next => (location.context, location.exten, location.priority + 1),
                StepFlow::Jump { context, exten, priority } => (context, exten, priority),
                StepFlow::Stop => return,
            };
            match self.channel_mut(channel) {
                Some(record) if !record.hanging_up => {
                    let (context, exten, priority) = next;
                    record.snapshot.dialplan.context = context;
                    record.snapshot.dialplan.exten = exten;
                    record.snapshot.dialplan.priority = priority;
                }
                _ => return,
            }
        }
    }

    /// Runs one application with its substituted data.
    fn run_step(
        &mut self,
        channel: &ChannelRef,
        location: &DialplanLocation,
        application: &str,
        data: &str,
    ) -> StepFlow {
        match application {
            "Answer" => {
                // Answering an answered channel returns at once (no media settle to wait for).
                if self.channel(channel).is_some_and(|record| record.snapshot.state == ChannelState::Up) {
                    return StepFlow::Next;
                }
                self.answer_channel(channel);
                let priority = location.priority + 1;
                self.schedule(DIALPLAN_ANSWER_SETTLE_MS, Timer::DialplanResume { channel: channel.clone(), priority });
                StepFlow::Stop
            }
            "Wait" => {
                let seconds: f64 = data.trim().parse().unwrap_or(0.0);
                let delay_ms = (seconds.max(0.0) * 1000.0) as u64;
                self.schedule(
                    delay_ms,
                    Timer::DialplanResume { channel: channel.clone(), priority: location.priority + 1 },
                );
                if let Some(record) = self.channel_mut(channel) {
                    record.in_dialplan_application = true;
                }
                StepFlow::Stop
            }
            "MusicOnHold" => {
                self.dialplan_music_on_hold(channel, location.priority + 1, data);
                StepFlow::Stop
            }
            "Stasis" => {
                let (application, args) = split_stasis_app_data(data);
                if self.boxes[channel.box_index.0].applications.contains(&application) {
                    self.enter_stasis(channel, application, args);
                    return StepFlow::Stop;
                }
                self.set_variable_internal(channel, "STASISSTATUS", "FAILED");
                StepFlow::Next
            }
            "Set" => {
                if let Some((name, value)) = data.split_once('=') {
                    self.set_variable_internal(channel, name.trim(), value);
                }
                StepFlow::Next
            }
            "Goto" => self.goto(channel, location, data),
            "GotoIf" => {
                // Without a `?` Asterisk ignores the GotoIf and goes on.
                let Some((condition, if_true, if_false)) = split_goto_if(data) else { return StepFlow::Next };
                let destination = if condition_is_true(condition) { if_true } else { if_false };
                if destination.is_empty() {
                    return StepFlow::Next;
                }
                self.goto(channel, location, destination)
            }
            "Hangup" => {
                let cause = data.trim().parse().unwrap_or(16);
                self.hangup(channel, HangupOrigin::Local { cause });
                StepFlow::Stop
            }
            // Other applications (NoOp, Verbose, Queue, Playback, ...) have no modelled effect.
            _ => StepFlow::Next,
        }
    }

    /// `Goto([[context,]exten,]priority)`: a destination that names no existing priority
    /// or label ends the call, as the failed application does in Asterisk. A jump to an
    /// extension that does not exist is taken, and `run_dialplan` then hangs up.
    fn goto(&mut self, channel: &ChannelRef, location: &DialplanLocation, target: &str) -> StepFlow {
        match self.goto_destination(channel.box_index, location, target) {
            Some((context, exten, priority)) => StepFlow::Jump { context, exten, priority },
            None => {
                self.hangup(channel, HangupOrigin::Local { cause: 16 });
                StepFlow::Stop
            }
        }
    }

    fn goto_destination(
        &self,
        box_index: BoxIndex,
        location: &DialplanLocation,
        target: &str,
    ) -> Option<(String, String, i64)> {
        let target = GotoTarget::parse(target)?;
        let context = target.context.unwrap_or_else(|| location.context.clone());
        let exten = target.exten.unwrap_or_else(|| location.exten.clone());
        let priority = match target.priority.parse::<i64>() {
            Ok(number) => (number >= 1).then_some(number)?,
            Err(_) => {
                self.boxes[box_index.0].config.dialplan.find(&context, &exten)?.label_priority(&target.priority)?
            }
        };
        Some((context, exten, priority))
    }

    /// `MusicOnHold(class[,duration])`: hold music of `class` (`default` when empty) for
    /// `duration` whole seconds, then the next priority; without a positive duration, until
    /// the channel hangs up (Asterisk reads the duration with `%d`).
    fn dialplan_music_on_hold(&mut self, channel: &ChannelRef, next_priority: i64, data: &str) {
        let (class, duration) = data.split_once(',').unwrap_or((data, ""));
        let class = match class.trim() {
            "" => "default",
            class => class,
        };
        let Some(record) = self.channel_mut(channel) else { return };
        record.moh = Moh::Playing(class.to_string());
        record.in_dialplan_application = true;
        if let Some(seconds) = leading_integer(duration.trim()).filter(|seconds| *seconds > 0) {
            let delay_ms = u64::try_from(seconds).unwrap_or(0).saturating_mul(1000);
            self.schedule(delay_ms, Timer::MusicOnHoldDone { channel: channel.clone(), priority: next_priority });
        }
    }

    /// A dialplan application that held the channel is over: go on at `priority`, unless
    /// the channel has left the dialplan meanwhile.
    fn resume_dialplan(&mut self, channel: &ChannelRef, priority: i64) {
        let Some(record) = self.channel_mut(channel) else { return };
        if record.stasis_app.is_some() || record.hanging_up {
            return;
        }
        record.in_dialplan_application = false;
        record.snapshot.dialplan.priority = priority;
        self.run_dialplan(channel);
    }

    fn enter_stasis(&mut self, channel: &ChannelRef, application: String, args: Vec<String>) {
        let Some(record) = self.channel_mut(channel) else { return };
        record.in_dialplan_application = false;
        record.application_before_stasis =
            Some((record.snapshot.dialplan.app_name.clone(), record.snapshot.dialplan.app_data.clone()));
        record.snapshot.dialplan.app_name = "Stasis".into();
        record.snapshot.dialplan.app_data =
            if args.is_empty() { application.clone() } else { format!("{application},{}", args.join(",")) };
        // Subscribers from an originate see STASISSTATUS cleared first, as recorded.
        if !self.subscribers(channel).is_empty() {
            self.set_variable_internal(channel, "STASISSTATUS", "");
        }
        let Some(record) = self.channel_mut(channel) else { return };
        record.stasis_app = Some(application.clone());
        let snapshot = record.snapshot.clone();
        self.emit_for_channel(channel, EventKind::StasisStart { args, channel: snapshot, replace_channel: None });
    }

    fn leave_stasis(&mut self, channel: &ChannelRef) {
        let Some(record) = self.channel(channel) else { return };
        if record.stasis_app.is_none() {
            return;
        }
        let snapshot = record.snapshot.clone();
        self.emit_for_channel(channel, EventKind::StasisEnd { channel: snapshot });
        if let Some(record) = self.channel_mut(channel) {
            record.stasis_app = None;
        }
        self.set_variable_internal(channel, "STASISSTATUS", "SUCCESS");
        if let Some(record) = self.channel_mut(channel) {
            if let Some((name, data)) = record.application_before_stasis.take() {
                record.snapshot.dialplan.app_name = name;
                record.snapshot.dialplan.app_data = data;
            }
        }
    }

    fn set_variable_internal(&mut self, channel: &ChannelRef, name: &str, value: &str) {
        let Some(record) = self.channel_mut(channel) else { return };
        record.variables.insert(name.to_string(), value.to_string());
        let snapshot = record.snapshot.clone();
        self.emit_for_channel(
            channel,
            EventKind::ChannelVarset { variable: name.to_string(), value: value.to_string(), channel: Some(snapshot) },
        );
    }

    fn set_state(&mut self, channel: &ChannelRef, state: ChannelState) {
        let Some(record) = self.channel_mut(channel) else { return };
        if record.snapshot.state == state {
            return;
        }
        record.snapshot.state = state;
        let snapshot = record.snapshot.clone();
        self.emit_for_channel(channel, EventKind::ChannelStateChange { channel: snapshot });
    }

    /// Answers a channel and, through a Local pair or trunk, the channel that dialed it.
    fn answer_channel(&mut self, channel: &ChannelRef) {
        let Some(record) = self.channel(channel) else { return };
        if record.snapshot.state == ChannelState::Up {
            return;
        }
        let peer = record.media_peer.clone();
        self.set_state(channel, ChannelState::Up);
        if let Some(peer) = peer {
            let peer_waits = self.channel(&peer).map(|p| p.snapshot.state != ChannelState::Up).unwrap_or(false);
            if peer_waits {
                self.dialed_channel_answered(&peer);
            }
        }
    }

    /// The far end of a dialed channel answered: report it and start what was waiting.
    fn dialed_channel_answered(&mut self, channel: &ChannelRef) {
        self.set_state(channel, ChannelState::Up);
        let Some(record) = self.channel_mut(channel) else { return };
        let dialing = record.dialing.take();
        let pending_stasis = record.stasis_pending.take();
        let dialplan_after = record.dialplan_after_answer.take();
        let role = record.role.clone();
        if let Some(dialing) = dialing {
            let peer = self.snapshot(channel).expect("live");
            self.emit_for_channel(
                channel,
                EventKind::Dial {
                    peer,
                    dialstatus: "ANSWER".into(),
                    caller: None,
                    dialstring: Some(dialing.dialstring),
                    forward: Some(String::new()),
                },
            );
        }
        if let ChannelRole::Phone { behaviour, .. } = role {
            if let Some(after_ms) = behaviour.hang_up_after_answer_ms {
                self.schedule(after_ms, Timer::PhoneHangup { channel: channel.clone() });
            }
            self.schedule_keys(channel, &behaviour.keys_after_answer);
        }
        if let Some((application, args)) = pending_stasis {
            self.enter_stasis(channel, application, args);
        } else if let Some((context, exten, priority)) = dialplan_after {
            if let Some(record) = self.channel_mut(channel) {
                record.snapshot.dialplan.context = context;
                record.snapshot.dialplan.exten = exten;
                record.snapshot.dialplan.priority = priority;
            }
            self.run_dialplan(channel);
        }
    }

    // ----- hangup --------------------------------------------------------------------------

    fn hangup(&mut self, channel: &ChannelRef, origin: HangupOrigin) {
        let Some(record) = self.channel_mut(channel) else { return };
        if record.hanging_up {
            return;
        }
        record.hanging_up = true;
        record.control_queue.clear();
        let snapshot = record.snapshot.clone();
        let cause = match &origin {
            HangupOrigin::Rest { cause }
            | HangupOrigin::Local { cause }
            | HangupOrigin::Human { cause }
            | HangupOrigin::Peer { cause, .. }
            | HangupOrigin::DialFailed { cause, .. } => *cause,
        };
        let ended_by = match &origin {
            HangupOrigin::Rest { .. } => EndedBy::Ari,
            HangupOrigin::Local { .. } => EndedBy::Dialplan,
            HangupOrigin::Human { .. } => EndedBy::Human,
            HangupOrigin::Peer { from, .. } => EndedBy::Peer { box_index: from.box_index, channel: from.id.clone() },
            HangupOrigin::DialFailed { .. } => EndedBy::DialFailed,
        };
        match &origin {
            // ARI's soft hangup reports AST_SOFTHANGUP_EXPLICIT (32) as the cause (recorded).
            HangupOrigin::Rest { .. } => self.emit_for_channel(
                channel,
                EventKind::ChannelHangupRequest {
                    cause: Some(32),
                    tech_cause: None,
                    soft: Some(true),
                    channel: snapshot,
                },
            ),
            HangupOrigin::Local { cause } | HangupOrigin::Human { cause } => self.emit_for_channel(
                channel,
                EventKind::ChannelHangupRequest {
                    cause: Some(*cause),
                    tech_cause: None,
                    soft: None,
                    channel: snapshot,
                },
            ),
            HangupOrigin::Peer { cause, .. } => {
                self.emit_for_channel(
                    channel,
                    EventKind::ChannelHangupRequest {
                        cause: Some(*cause),
                        tech_cause: None,
                        soft: None,
                        channel: snapshot.clone(),
                    },
                );
                self.emit_for_channel(
                    channel,
                    EventKind::ChannelHangupRequest {
                        cause: Some(*cause),
                        tech_cause: None,
                        soft: Some(true),
                        channel: snapshot,
                    },
                );
            }
            HangupOrigin::DialFailed { dialstatus, .. } => {
                let dialstring = self.channel(channel).and_then(|r| r.dialing.as_ref()).map(|d| d.dialstring.clone());
                if dialstring.is_some() {
                    self.emit_for_channel(
                        channel,
                        EventKind::Dial {
                            peer: snapshot,
                            dialstatus: dialstatus.to_string(),
                            caller: None,
                            dialstring,
                            forward: Some(String::new()),
                        },
                    );
                }
            }
        }
        // A hangup while the channel is still being dialed cancels the dial.
        let dial_outcome = match origin {
            HangupOrigin::DialFailed { .. } => None,
            HangupOrigin::Rest { .. } | HangupOrigin::Local { .. } | HangupOrigin::Human { .. } => Some("CANCEL"),
            // The dialed side (the far half of a Local pair, the far leg of a trunk) refused.
            HangupOrigin::Peer { cause, .. } => Some(match cause {
                17 => "BUSY",
                18 | 19 => "NOANSWER",
                34 => "CONGESTION",
                _ => "CANCEL",
            }),
        };
        let unanswered_dial = dial_outcome.and_then(|status| {
            self.channel_mut(channel).and_then(|record| record.dialing.take()).map(|dialing| (status, dialing))
        });
        if let Some((dialstatus, dialing)) = unanswered_dial {
            let peer = self.snapshot(channel).expect("live");
            self.emit_for_channel(
                channel,
                EventKind::Dial {
                    peer,
                    dialstatus: dialstatus.into(),
                    caller: None,
                    dialstring: Some(dialing.dialstring),
                    forward: Some(String::new()),
                },
            );
        }
        self.stop_current_playback(channel);
        if let Some(bridge) = self.channel(channel).and_then(|record| record.bridge.clone()) {
            self.leave_bridge(channel, &bridge);
        }
        self.leave_stasis(channel);
        if let Some(peer) = self.channel(channel).and_then(|record| record.media_peer.clone()) {
            self.hangup(&peer, HangupOrigin::Peer { cause, from: channel.clone() });
        }
        // A Local half takes its partner's connected line as its caller when the pair tears
        // down, and an interrupted dialplan application is cleared (both recorded).
        let partner_connected = self
            .channel(channel)
            .filter(|record| record.role == ChannelRole::Local)
            .and_then(|record| record.media_peer.as_ref())
            .and_then(|peer| self.channel(peer))
            .map(|peer| peer.snapshot.connected.clone());
        let Some(record) = self.channel_mut(channel) else { return };
        if let Some(connected) = partner_connected {
            record.snapshot.caller = connected;
        }
        if record.in_dialplan_application {
            record.snapshot.dialplan.app_name.clear();
            record.snapshot.dialplan.app_data.clear();
        }
        let snapshot = record.snapshot.clone();
        self.emit_for_channel(
            channel,
            EventKind::ChannelDestroyed {
                cause,
                cause_txt: cause_text(cause).to_string(),
                tech_cause: None,
                channel: snapshot,
            },
        );
        let pbx = &mut self.boxes[channel.box_index.0];
        if let Some(record) = pbx.channels.remove(&channel.id) {
            if pbx.ended.len() >= ENDED_CHANNELS_PER_BOX_MAX_COUNT {
                pbx.ended.pop_front();
            }
            pbx.ended.push_back(EndedChannel {
                channel: record.snapshot,
                cause,
                variables: record.variables,
                ended_by,
            });
        }
    }

    // ----- control queue -------------------------------------------------------------------

    fn enqueue_control(&mut self, channel: &ChannelRef, command: ControlCommand) -> Result<(), AriError> {
        let record = self.channel_mut(channel).ok_or_else(|| not_found("Channel"))?;
        if record.control_queue.len() >= CONTROL_QUEUE_MAX_COMMANDS {
            return Err(AriError::ServerError { message: "Channel control queue full".into() });
        }
        record.control_queue.push_back(command);
        self.pump_control(channel);
        Ok(())
    }

    /// Starts queued commands until one occupies the channel (a prompt or a digit).
    fn pump_control(&mut self, channel: &ChannelRef) {
        for _ in 0..=CONTROL_QUEUE_MAX_COMMANDS {
            let Some(record) = self.channel_mut(channel) else { return };
            if record.control_busy || record.hanging_up {
                return;
            }
            let Some(command) = record.control_queue.pop_front() else { return };
            match command {
                ControlCommand::Play(playback) => {
                    if self.start_playback(channel, &playback) {
                        return;
                    }
                }
                ControlCommand::Dtmf(digit) => {
                    if let Some(record) = self.channel_mut(channel) {
                        record.control_busy = true;
                    }
                    if let Some(peer) = self.channel(channel).and_then(|record| record.media_peer.clone()) {
                        self.schedule(DTMF_RECEIVED_OFFSET_MS, Timer::DtmfReceived { channel: peer, digit });
                    }
                    self.schedule(DTMF_COMMAND_SPAN_MS, Timer::ControlDone { channel: channel.clone() });
                    return;
                }
                ControlCommand::JoinBridge(bridge) => self.join_bridge(channel, &bridge),
                ControlCommand::Continue { context, exten, priority } => {
                    // Leaving Stasis takes the channel out of its bridge first, as in Asterisk.
                    if let Some(bridge) = self.channel(channel).and_then(|record| record.bridge.clone()) {
                        self.leave_bridge(channel, &bridge);
                    }
                    self.leave_stasis(channel);
                    if let Some(record) = self.channel_mut(channel) {
                        let location = &mut record.snapshot.dialplan;
                        let explicit = context.is_some() || exten.is_some();
                        if let Some(context) = context {
                            location.context = context;
                        }
                        if let Some(exten) = exten {
                            location.exten = exten;
                        }
                        location.priority = match priority {
                            Some(priority) => priority,
                            None if explicit => 1,
                            None => location.priority + 1,
                        };
                    }
                    self.run_dialplan(channel);
                    return;
                }
            }
        }
    }

    fn control_done(&mut self, channel: &ChannelRef) {
        if let Some(record) = self.channel_mut(channel) {
            record.control_busy = false;
        }
        self.pump_control(channel);
    }

    // ----- playbacks -----------------------------------------------------------------------

    /// Returns true if the playback now occupies the channel.
    fn start_playback(&mut self, channel: &ChannelRef, playback: &str) -> bool {
        let box_index = channel.box_index;
        let Some(record) = self.boxes[box_index.0].playbacks.get_mut(playback) else { return false };
        record.snapshot.state = PlaybackState::Playing;
        let snapshot = record.snapshot.clone();
        let duration = media_duration_ms(&record.media[0]);
        if let Some(channel_record) = self.channel_mut(channel) {
            channel_record.control_busy = true;
            channel_record.current_playback = Some(playback.to_string());
            if let Moh::Playing(class) = &channel_record.moh {
                channel_record.moh = Moh::Paused(class.clone());
            }
        }
        self.emit_for_channel(channel, EventKind::PlaybackStarted { playback: snapshot });
        self.schedule(duration, Timer::PlaybackItemDone { box_index, playback: playback.to_string() });
        true
    }

    fn playback_item_done(&mut self, box_index: BoxIndex, playback: &str) {
        let Some(record) = self.boxes[box_index.0].playbacks.get_mut(playback) else { return };
        let channel = ChannelRef { box_index, id: record.channel.clone() };
        if record.index + 1 < record.media.len() {
            record.snapshot.state = PlaybackState::Continuing;
            let continuing = record.snapshot.clone();
            record.index += 1;
            record.snapshot.media_uri = record.media[record.index].clone();
            record.snapshot.next_media_uri = record.media.get(record.index + 1).cloned();
            record.snapshot.state = PlaybackState::Playing;
            let started = record.snapshot.clone();
            let duration = media_duration_ms(&record.media[record.index]);
            self.emit_for_channel(&channel, EventKind::PlaybackContinuing { playback: continuing });
            self.emit_for_channel(&channel, EventKind::PlaybackStarted { playback: started });
            self.schedule(duration, Timer::PlaybackItemDone { box_index, playback: playback.to_string() });
            return;
        }
        self.finish_playback(box_index, playback);
        self.control_done(&channel);
    }

    fn finish_playback(&mut self, box_index: BoxIndex, playback: &str) {
        let Some(mut record) = self.boxes[box_index.0].playbacks.remove(playback) else { return };
        record.snapshot.state = PlaybackState::Done;
        let channel = ChannelRef { box_index, id: record.channel.clone() };
        if let Some(channel_record) = self.channel_mut(&channel) {
            if channel_record.current_playback.as_deref() == Some(playback) {
                channel_record.current_playback = None;
            }
        }
        self.emit_for_channel(&channel, EventKind::PlaybackFinished { playback: record.snapshot });
    }

    fn stop_current_playback(&mut self, channel: &ChannelRef) {
        let Some(playback) = self.channel(channel).and_then(|record| record.current_playback.clone()) else { return };
        self.finish_playback(channel.box_index, &playback);
        if let Some(record) = self.channel_mut(channel) {
            record.control_busy = false;
        }
    }

    // ----- bridges -------------------------------------------------------------------------

    fn join_bridge(&mut self, channel: &ChannelRef, bridge: &str) {
        let box_index = channel.box_index;
        if !self.boxes[box_index.0].bridges.contains_key(bridge) {
            return;
        }
        if let Some(old) = self.channel(channel).and_then(|record| record.bridge.clone()) {
            if old == bridge {
                return;
            }
            self.leave_bridge(channel, &old);
        }
        let Some(application) = self.channel(channel).and_then(|record| record.stasis_app.clone()) else { return };
        let snapshot = self.snapshot(channel).expect("live");
        let record = self.boxes[box_index.0].bridges.get_mut(bridge).expect("checked");
        record.snapshot.channels.push(snapshot.id.clone());
        record.subscribers.insert(application);
        let bridge_snapshot = record.snapshot.clone();
        let subscribers = record.subscribers.clone();
        let members = record.snapshot.channels.clone();
        if let Some(channel_record) = self.channel_mut(channel) {
            channel_record.bridge = Some(bridge.to_string());
        }
        self.emit(
            box_index,
            &subscribers,
            EventKind::ChannelEnteredBridge { bridge: bridge_snapshot, channel: Some(snapshot) },
        );
        if members.len() == 2 {
            let other = ChannelRef { box_index, id: members[0].to_string() };
            self.pair_connected_lines(channel, &other);
        }
    }

    /// Two parties in one bridge: each learns the other (BRIDGEPEER, connected line).
    fn pair_connected_lines(&mut self, joined: &ChannelRef, other: &ChannelRef) {
        let (Some(joined_record), Some(other_record)) = (self.channel(joined), self.channel(other)) else { return };
        let joined_name = joined_record.snapshot.name.clone();
        let other_name = other_record.snapshot.name.clone();
        let joined_caller = joined_record.snapshot.caller.clone();
        let other_caller = other_record.snapshot.caller.clone();
        self.set_variable_internal(joined, "BRIDGEPEER", &other_name);
        if let Some(record) = self.channel_mut(joined) {
            record.snapshot.connected = other_caller;
        }
        self.set_variable_internal(other, "BRIDGEPEER", &joined_name);
        if let Some(record) = self.channel_mut(other) {
            record.snapshot.connected = joined_caller;
        }
    }

    fn leave_bridge(&mut self, channel: &ChannelRef, bridge: &str) {
        let box_index = channel.box_index;
        let peer_set =
            self.channel(channel).and_then(|r| r.variables.get("BRIDGEPEER")).map(|v| !v.is_empty()).unwrap_or(false);
        if peer_set {
            self.set_variable_internal(channel, "BRIDGEPEER", "");
        }
        if let Some(record) = self.channel_mut(channel) {
            record.bridge = None;
        }
        let Some(snapshot) = self.snapshot(channel) else { return };
        let Some(record) = self.boxes[box_index.0].bridges.get_mut(bridge) else { return };
        record.snapshot.channels.retain(|member| member.as_str() != channel.id);
        let bridge_snapshot = record.snapshot.clone();
        let subscribers = record.subscribers.clone();
        self.emit(box_index, &subscribers, EventKind::ChannelLeftBridge { bridge: bridge_snapshot, channel: snapshot });
    }

    // ----- timers --------------------------------------------------------------------------

    fn fire(&mut self, timer: Timer) {
        match timer {
            Timer::StartLocalDial { first, second, dialstring } => self.start_local_dial(&first, &second, dialstring),
            Timer::StartDial { channel, dialstring, timeout_s, caller } => {
                if self.channel(&channel).is_some() {
                    self.start_dialing(&channel, &dialstring, timeout_s, caller);
                }
            }
            Timer::PlaybackItemDone { box_index, playback } => self.playback_item_done(box_index, &playback),
            Timer::ControlDone { channel } => self.control_done(&channel),
            Timer::DtmfReceived { channel, digit } => self.dtmf_received(&channel, digit),
            Timer::DialplanResume { channel, priority } => self.resume_dialplan(&channel, priority),
            Timer::MusicOnHoldDone { channel, priority } => {
                if let Some(record) = self.channel_mut(&channel) {
                    record.moh = Moh::Off;
                }
                self.resume_dialplan(&channel, priority);
            }
            Timer::PhoneRinging { channel } => {
                let ringing = self.channel(&channel).map(|r| r.dialing.is_some()).unwrap_or(false);
                if ringing {
                    self.set_state(&channel, ChannelState::Ringing);
                    let record = self.channel(&channel).expect("live");
                    let dialstring = record.dialing.as_ref().map(|d| d.dialstring.clone());
                    let peer = record.snapshot.clone();
                    self.emit_for_channel(
                        &channel,
                        EventKind::Dial {
                            peer,
                            dialstatus: "RINGING".into(),
                            caller: None,
                            dialstring,
                            forward: Some(String::new()),
                        },
                    );
                }
            }
            Timer::PhoneAnswer { channel } => {
                let ringing = self.channel(&channel).map(|r| r.dialing.is_some()).unwrap_or(false);
                if ringing {
                    self.dialed_channel_answered(&channel);
                }
            }
            Timer::RingTimeout { channel } => {
                let ringing = self.channel(&channel).map(|r| r.dialing.is_some()).unwrap_or(false);
                if ringing {
                    self.hangup(&channel, HangupOrigin::DialFailed { cause: 19, dialstatus: "NOANSWER" });
                }
            }
            Timer::PhoneHangup { channel } => self.hangup(&channel, HangupOrigin::Human { cause: 16 }),
            Timer::PhoneKey { channel, digit } => self.dtmf_received(&channel, digit),
        }
    }

    fn dtmf_received(&mut self, channel: &ChannelRef, digit: char) {
        let Some(record) = self.channel(channel) else { return };
        if record.hanging_up {
            return;
        }
        // In a bridge that may go native, media (and RFC 4733 digits) bypass the core.
        if let Some(bridge) = record.bridge.as_ref().and_then(|id| self.boxes[channel.box_index.0].bridges.get(id)) {
            if bridge.native_capable && bridge.snapshot.channels.len() == 2 {
                return;
            }
        }
        let snapshot = record.snapshot.clone();
        self.emit_for_channel(
            channel,
            EventKind::ChannelDtmfReceived {
                digit: digit.to_string(),
                duration_ms: DTMF_DURATION_MS,
                channel: snapshot,
            },
        );
    }
}

/// The ARI operations, as Asterisk answers them.
impl PbxWorld {
    pub fn list_channels(&self, box_index: BoxIndex) -> Result<Vec<Channel>, AriError> {
        Ok(self.pbx(box_index)?.channels.values().map(|record| record.snapshot.clone()).collect())
    }

    pub fn get_channel(&self, box_index: BoxIndex, id: &str) -> Result<Channel, AriError> {
        let channel = self.existing(box_index, id)?;
        Ok(self.snapshot(&channel).expect("exists"))
    }

    pub fn answer(&mut self, box_index: BoxIndex, id: &str) -> Result<(), AriError> {
        let channel = self.in_stasis(box_index, id)?;
        self.answer_channel(&channel);
        Ok(())
    }

    pub fn ring(&mut self, box_index: BoxIndex, id: &str) -> Result<(), AriError> {
        let channel = self.in_stasis(box_index, id)?;
        let state = self.channel(&channel).map(|record| record.snapshot.state).expect("exists");
        if state != ChannelState::Up {
            self.set_state(&channel, ChannelState::Ringing);
        }
        Ok(())
    }

    /// `DELETE /channels/{id}`; `cause` from `reason`/`reason_code` (16 when neither).
    pub fn hangup_channel(&mut self, box_index: BoxIndex, id: &str, cause: i32) -> Result<(), AriError> {
        let channel = self.existing(box_index, id)?;
        self.hangup(&channel, HangupOrigin::Rest { cause });
        Ok(())
    }

    pub fn start_moh(&mut self, box_index: BoxIndex, id: &str, class: Option<&str>) -> Result<(), AriError> {
        let channel = self.in_stasis(box_index, id)?;
        let record = self.channel_mut(&channel).expect("exists");
        record.moh = Moh::Playing(class.unwrap_or("default").to_string());
        Ok(())
    }

    pub fn stop_moh(&mut self, box_index: BoxIndex, id: &str) -> Result<(), AriError> {
        let channel = self.in_stasis(box_index, id)?;
        self.channel_mut(&channel).expect("exists").moh = Moh::Off;
        Ok(())
    }

    /// `POST /channels/{id}/play`: queued behind whatever occupies the channel.
    pub fn play(
        &mut self,
        box_index: BoxIndex,
        id: &str,
        playback_id: Option<&PlaybackId>,
        media: &[String],
    ) -> Result<Playback, AriError> {
        let channel = self.in_stasis(box_index, id)?;
        if media.is_empty() || media.len() > lineup_ari::model::MEDIA_PER_PLAY_MAX_COUNT {
            return Err(AriError::BadRequest { message: "media: 1 to 16 media URIs are required".into() });
        }
        for uri in media {
            if lineup_ari::Media::parse(uri).is_err() {
                return Err(AriError::BadRequest { message: format!("Invalid media URI '{uri}'") });
            }
        }
        let playback = match playback_id {
            Some(id) if self.boxes[box_index.0].playbacks.contains_key(id.as_str()) => {
                return Err(AriError::Conflict { message: format!("Playback with id '{id}' already exists") })
            }
            Some(id) => id.to_string(),
            None => self.next_object_id(box_index, "playback"),
        };
        let snapshot = Playback {
            id: PlaybackId::new(playback.clone())?,
            media_uri: media[0].clone(),
            next_media_uri: media.get(1).cloned(),
            target_uri: format!("channel:{id}"),
            language: Some("en".into()),
            state: PlaybackState::Queued,
        };
        let record =
            PlaybackRecord { snapshot: snapshot.clone(), channel: id.to_string(), media: media.to_vec(), index: 0 };
        self.boxes[box_index.0].playbacks.insert(playback.clone(), record);
        self.enqueue_control(&channel, ControlCommand::Play(playback))?;
        Ok(snapshot)
    }

    pub fn get_playback(&self, box_index: BoxIndex, id: &str) -> Result<Playback, AriError> {
        self.pbx(box_index)?
            .playbacks
            .get(id)
            .map(|record| record.snapshot.clone())
            .ok_or_else(|| not_found("Playback"))
    }

    /// `DELETE /playbacks/{id}`: a playing one finishes now; a queued one is dropped.
    pub fn stop_playback(&mut self, box_index: BoxIndex, id: &str) -> Result<(), AriError> {
        let record = self.pbx(box_index)?.playbacks.get(id).ok_or_else(|| not_found("Playback"))?;
        let channel = ChannelRef { box_index, id: record.channel.clone() };
        let playing = self.channel(&channel).and_then(|r| r.current_playback.as_deref()) == Some(id);
        if playing {
            self.finish_playback(box_index, id);
            self.control_done(&channel);
        } else {
            self.boxes[box_index.0].playbacks.remove(id);
            if let Some(record) = self.channel_mut(&channel) {
                record.control_queue.retain(|command| command != &ControlCommand::Play(id.to_string()));
            }
        }
        Ok(())
    }

    /// `POST /channels/{id}/dtmf`: each digit queued behind a playing prompt, then sent to
    /// the far end (the other half of a Local pair, or the trunk's other leg).
    pub fn send_dtmf(&mut self, box_index: BoxIndex, id: &str, digits: &str) -> Result<(), AriError> {
        let channel = self.in_stasis(box_index, id)?;
        lineup_ari::model::validate_dtmf(digits)
            .map_err(|_| AriError::BadRequest { message: "DTMF is required".into() })?;
        for digit in digits.chars() {
            self.enqueue_control(&channel, ControlCommand::Dtmf(digit))?;
        }
        Ok(())
    }

    pub fn get_variable(&self, box_index: BoxIndex, id: &str, name: &str) -> Result<String, AriError> {
        let channel = self.existing(box_index, id)?;
        let record = self.channel(&channel).expect("exists");
        match name {
            "CALLERID(num)" => return Ok(record.snapshot.caller.number.clone()),
            "CALLERID(name)" => return Ok(record.snapshot.caller.name.clone()),
            _ => {}
        }
        record
            .variables
            .get(name)
            .cloned()
            .ok_or_else(|| AriError::NotFound { message: "Provided variable was not found".into() })
    }

    pub fn set_variable(&mut self, box_index: BoxIndex, id: &str, name: &str, value: &str) -> Result<(), AriError> {
        let channel = self.existing(box_index, id)?;
        lineup_ari::ids::validate_variable_name(name)
            .map_err(|_| AriError::BadRequest { message: "Variable name is required".into() })?;
        self.set_variable_internal(&channel, name, value);
        Ok(())
    }

    /// `POST /channels/{id}/continue`: leaves Stasis after queued commands (a playing prompt
    /// finishes first), then runs the dialplan from the given or next priority.
    pub fn continue_in_dialplan(
        &mut self,
        box_index: BoxIndex,
        id: &str,
        context: Option<String>,
        exten: Option<String>,
        priority: Option<i64>,
    ) -> Result<(), AriError> {
        let channel = self.in_stasis(box_index, id)?;
        self.enqueue_control(&channel, ControlCommand::Continue { context, exten, priority })
    }

    /// `POST /channels` (originate).
    pub fn originate(&mut self, box_index: BoxIndex, request: &OriginateParams) -> Result<Channel, AriError> {
        let (technology, resource) = request
            .endpoint
            .split_once('/')
            .filter(|(technology, resource)| !technology.is_empty() && !resource.is_empty())
            .ok_or_else(|| AriError::BadRequest { message: "Invalid endpoint specified".into() })?;
        if request.app.is_some() == request.extension.is_some() {
            return Err(AriError::BadRequest {
                message: "Originate with 'app' or 'extension': one of them is required, not both".into(),
            });
        }
        if let Some(app) = &request.app {
            if !self.pbx(box_index)?.applications.contains(app) {
                return Err(AriError::BadRequest { message: format!("Application '{app}' is not registered") });
            }
        }
        let caller = request.caller_id.as_deref().map(parse_caller_id).unwrap_or_default();
        let timeout_s = match request.timeout_s {
            Some(timeout) if timeout > 0 => timeout as u64,
            Some(-1) => u64::MAX / 2_000,
            _ => RING_TIMEOUT_S_DEFAULT,
        };
        // The answer is the channel as created, before any dialing progress (as recorded).
        match technology {
            "Local" => self.originate_local(box_index, request, resource, caller),
            _ => self.originate_technology(box_index, request, technology, resource, caller, timeout_s),
        }
    }

    fn prepare_originated(&mut self, channel: &ChannelRef, request: &OriginateParams) {
        let Some(record) = self.channel_mut(channel) else { return };
        for (name, value) in &request.variables {
            record.variables.insert(name.clone(), value.clone());
        }
        if let Some(app) = &request.app {
            record.originate_subscribers.insert(app.clone());
            record.stasis_pending = Some((app.clone(), request.app_args.clone()));
        } else if let Some(extension) = &request.extension {
            let context = request.context.clone().unwrap_or_else(|| "default".into());
            record.dialplan_after_answer = Some((context, extension.clone(), request.priority.unwrap_or(1)));
        }
    }

    fn originate_local(
        &mut self,
        box_index: BoxIndex,
        request: &OriginateParams,
        resource: &str,
        caller: CallerId,
    ) -> Result<Channel, AriError> {
        let (exten, context) = resource.split_once('@').unwrap_or((resource, "default"));
        let sequence = self.boxes[box_index.0].next_local_sequence;
        let location = DialplanLocation {
            context: context.to_string(),
            exten: exten.to_string(),
            priority: 1,
            app_name: "AppDial2".into(),
            app_data: "(Outgoing Line)".into(),
        };
        let first = self.create_channel_record(
            box_index,
            request.channel_id.as_ref(),
            format!("Local/{resource}-{sequence:08x};1"),
            ChannelState::Down,
            caller.clone(),
            location.clone(),
            ChannelRole::Local,
        )?;
        let second_location = DialplanLocation { app_name: String::new(), app_data: String::new(), ..location };
        let second = match self.create_channel_record(
            box_index,
            request.other_channel_id.as_ref(),
            format!("Local/{resource}-{sequence:08x};2"),
            ChannelState::Ring,
            caller,
            second_location,
            ChannelRole::Local,
        ) {
            Ok(second) => second,
            Err(error) => {
                self.boxes[box_index.0].channels.remove(&first.id);
                return Err(error);
            }
        };
        self.boxes[box_index.0].next_local_sequence += 1;
        self.prepare_originated(&first, request);
        let app = request.app.clone();
        for (channel, peer) in [(&first, &second), (&second, &first)] {
            let record = self.channel_mut(channel).expect("created");
            record.media_peer = Some(peer.clone());
            if let Some(app) = &app {
                // An originate into an application subscribes it to both halves (recorded).
                record.originate_subscribers.insert(app.clone());
            }
        }
        self.channel_mut(&first).expect("created").dialing = Some(DialState { dialstring: resource.to_string() });
        let created = self.snapshot(&first).expect("created");
        let dialstring = resource.to_string();
        self.schedule(ORIGINATE_DIAL_DELAY_MS, Timer::StartLocalDial { first, second, dialstring });
        Ok(created)
    }

    fn start_local_dial(&mut self, first: &ChannelRef, second: &ChannelRef, dialstring: String) {
        let Some(peer) = self.snapshot(first) else { return };
        self.emit_for_channel(
            first,
            EventKind::Dial {
                peer,
                dialstatus: String::new(),
                caller: None,
                dialstring: Some(dialstring),
                forward: Some(String::new()),
            },
        );
        self.run_dialplan(second);
    }

    fn originate_technology(
        &mut self,
        box_index: BoxIndex,
        request: &OriginateParams,
        technology: &str,
        resource: &str,
        caller: CallerId,
        timeout_s: u64,
    ) -> Result<Channel, AriError> {
        let location = DialplanLocation {
            context: request.context.clone().unwrap_or_else(|| "default".into()),
            exten: request.extension.clone().unwrap_or_else(|| "s".into()),
            priority: 1,
            app_name: "AppDial2".into(),
            app_data: "(Outgoing Line)".into(),
        };
        let trunk = self.find_trunk(box_index, technology, resource);
        let (name_resource, role) = match &trunk {
            Some((route, _)) => (route.trunk.clone(), ChannelRole::Trunk),
            None => {
                let behaviour = self.boxes[box_index.0].phones.get(resource).cloned().unwrap_or_default();
                (resource.to_string(), ChannelRole::Phone { resource: resource.to_string(), behaviour })
            }
        };
        let name = self.technology_channel_name(box_index, technology, &name_resource);
        let channel = self.create_channel_record(
            box_index,
            request.channel_id.as_ref(),
            name,
            ChannelState::Down,
            caller.clone(),
            location,
            role,
        )?;
        self.prepare_originated(&channel, request);
        let created = self.snapshot(&channel).expect("created");
        let dialstring = resource.to_string();
        self.schedule(ORIGINATE_DIAL_DELAY_MS, Timer::StartDial { channel, dialstring, timeout_s, caller });
        Ok(created)
    }

    fn find_trunk(&self, box_index: BoxIndex, technology: &str, resource: &str) -> Option<(TrunkRoute, String)> {
        let routes = &self.boxes.get(box_index.0)?.config.trunks;
        routes.iter().filter(|route| route.technology == technology).find_map(|route| {
            let exten = match technology {
                "IAX2" => resource.strip_prefix(&format!("{}/", route.trunk))?,
                _ => resource.strip_suffix(&format!("@{}", route.trunk))?,
            };
            (!exten.is_empty()).then(|| (route.clone(), exten.to_string()))
        })
    }

    /// Dials a technology channel: a trunk call to another box, or a phone.
    fn start_dialing(&mut self, channel: &ChannelRef, dialstring: &str, timeout_s: u64, caller: CallerId) {
        let Some(record) = self.channel_mut(channel) else { return };
        record.dialing = Some(DialState { dialstring: dialstring.to_string() });
        let role = record.role.clone();
        let technology = record.snapshot.name.split('/').next().unwrap_or("").to_string();
        let peer = record.snapshot.clone();
        self.emit_for_channel(
            channel,
            EventKind::Dial {
                peer,
                dialstatus: String::new(),
                caller: None,
                dialstring: Some(dialstring.to_string()),
                forward: Some(String::new()),
            },
        );
        match role {
            ChannelRole::Trunk => {
                let Some((route, exten)) = self.find_trunk(channel.box_index, &technology, dialstring) else { return };
                let source_name = self.boxes[channel.box_index.0].config.name.clone();
                let name = self.technology_channel_name(route.target, &technology, &source_name);
                let location = DialplanLocation {
                    context: route.context.clone(),
                    exten,
                    priority: 1,
                    app_name: String::new(),
                    app_data: String::new(),
                };
                let inbound = match self.create_channel_record(
                    route.target,
                    None,
                    name,
                    ChannelState::Ring,
                    caller,
                    location,
                    ChannelRole::Trunk,
                ) {
                    Ok(inbound) => inbound,
                    Err(_) => {
                        self.hangup(channel, HangupOrigin::DialFailed { cause: 34, dialstatus: "CONGESTION" });
                        return;
                    }
                };
                self.channel_mut(channel).expect("live").media_peer = Some(inbound.clone());
                self.channel_mut(&inbound).expect("created").media_peer = Some(channel.clone());
                self.schedule(timeout_s.saturating_mul(1000), Timer::RingTimeout { channel: channel.clone() });
                self.run_dialplan(&inbound);
            }
            ChannelRole::Phone { resource, behaviour } => {
                if !self.boxes[channel.box_index.0].phones.contains_key(&resource) {
                    self.hangup(channel, HangupOrigin::DialFailed { cause: 20, dialstatus: "CHANUNAVAIL" });
                    return;
                }
                if behaviour.busy {
                    self.hangup(channel, HangupOrigin::DialFailed { cause: 17, dialstatus: "BUSY" });
                    return;
                }
                self.schedule(0, Timer::PhoneRinging { channel: channel.clone() });
                if let Some(answer_after_ms) = behaviour.answer_after_ms {
                    if answer_after_ms < timeout_s.saturating_mul(1000) {
                        self.schedule(answer_after_ms, Timer::PhoneAnswer { channel: channel.clone() });
                    }
                }
                self.schedule(timeout_s.saturating_mul(1000), Timer::RingTimeout { channel: channel.clone() });
            }
            ChannelRole::Local => {}
        }
    }

    /// `POST /channels/create`: the channel enters Stasis at once; `dial` rings it.
    pub fn create_channel(&mut self, box_index: BoxIndex, request: &OriginateParams) -> Result<Channel, AriError> {
        let app = request.app.clone().ok_or_else(|| AriError::BadRequest { message: "app is required".into() })?;
        if !self.pbx(box_index)?.applications.contains(&app) {
            return Err(AriError::BadRequest { message: format!("Application '{app}' is not registered") });
        }
        let (technology, resource) = request
            .endpoint
            .split_once('/')
            .filter(|(technology, resource)| !technology.is_empty() && !resource.is_empty() && *technology != "Local")
            .ok_or_else(|| AriError::BadRequest { message: "Invalid endpoint specified".into() })?;
        let caller = request.caller_id.as_deref().map(parse_caller_id).unwrap_or_default();
        let trunk = self.find_trunk(box_index, technology, resource);
        let (name_resource, role) = match trunk {
            Some((route, _)) => (route.trunk, ChannelRole::Trunk),
            None => {
                let behaviour = self.boxes[box_index.0].phones.get(resource).cloned().unwrap_or_default();
                (resource.to_string(), ChannelRole::Phone { resource: resource.to_string(), behaviour })
            }
        };
        let name = self.technology_channel_name(box_index, technology, &name_resource);
        let location = DialplanLocation {
            context: "default".into(),
            exten: "s".into(),
            priority: 1,
            app_name: String::new(),
            app_data: String::new(),
        };
        let channel = self.create_channel_record(
            box_index,
            request.channel_id.as_ref(),
            name,
            ChannelState::Down,
            caller,
            location,
            role,
        )?;
        let record = self.channel_mut(&channel).expect("created");
        record.originate_subscribers.insert(app.clone());
        record.variables.extend(request.variables.clone());
        record.dial_resource = Some(resource.to_string());
        self.enter_stasis(&channel, app, request.app_args.clone());
        Ok(self.snapshot(&channel).expect("created"))
    }

    /// `POST /channels/{id}/dial` for a channel made with `create`.
    pub fn dial(&mut self, box_index: BoxIndex, id: &str, timeout_s: u64) -> Result<(), AriError> {
        let channel = self.in_stasis(box_index, id)?;
        let record = self.channel(&channel).expect("exists");
        if record.dialing.is_some() || record.snapshot.state != ChannelState::Down {
            return Err(AriError::Conflict { message: "Channel is already dialing or up".into() });
        }
        let resource = record
            .dial_resource
            .clone()
            .ok_or_else(|| AriError::Conflict { message: "Channel was not created for dialing".into() })?;
        let caller = record.snapshot.caller.clone();
        let timeout_s = if timeout_s == 0 { u64::MAX / 2_000 } else { timeout_s };
        self.schedule(ORIGINATE_DIAL_DELAY_MS, Timer::StartDial { channel, dialstring: resource, timeout_s, caller });
        Ok(())
    }

    pub fn list_bridges(&self, box_index: BoxIndex) -> Result<Vec<Bridge>, AriError> {
        Ok(self.pbx(box_index)?.bridges.values().map(|record| record.snapshot.clone()).collect())
    }

    pub fn get_bridge(&self, box_index: BoxIndex, id: &str) -> Result<Bridge, AriError> {
        self.pbx(box_index)?.bridges.get(id).map(|record| record.snapshot.clone()).ok_or_else(|| not_found("Bridge"))
    }

    /// `POST /bridges`: `type` parsed left to right as `res_stasis.c` does.
    pub fn create_bridge(
        &mut self,
        box_index: BoxIndex,
        bridge_type: Option<&str>,
        bridge_id: Option<&str>,
        name: Option<&str>,
    ) -> Result<Bridge, AriError> {
        let pbx = self.pbx(box_index)?;
        if let Some(id) = bridge_id {
            if pbx.bridges.contains_key(id) {
                return Err(AriError::Conflict { message: format!("Bridge with id '{id}' already exists") });
            }
        }
        if pbx.bridges.len() >= BRIDGES_PER_BOX_MAX_COUNT {
            return Err(AriError::ServerError { message: "Too many bridges".into() });
        }
        let failed = || AriError::ServerError {
            message: format!(
                "Unable to create bridge. Possible duplicate bridge id '{}'",
                bridge_id.unwrap_or("(null)")
            ),
        };
        let mut kind: Option<BridgeKind> = None;
        let mut native_capable = true;
        for token in bridge_type.unwrap_or("mixing").split(',').map(str::trim) {
            match token {
                "mixing" if kind != Some(BridgeKind::Holding) => {
                    kind = Some(BridgeKind::Mixing);
                    native_capable = true;
                }
                "holding" if kind != Some(BridgeKind::Mixing) => kind = Some(BridgeKind::Holding),
                "dtmf_events" | "proxy_media" => native_capable = false,
                "video_sfu" | "video_single" | "sdp_label" => {}
                _ => return Err(failed()),
            }
        }
        let kind = kind.unwrap_or(BridgeKind::Mixing);
        let id = match bridge_id {
            Some(id) => id.to_string(),
            None => self.next_object_id(box_index, "bridge"),
        };
        let snapshot = Bridge {
            id: lineup_ari::BridgeId::new(id.clone())?,
            technology: if kind == BridgeKind::Holding { "holding_bridge" } else { "simple_bridge" }.into(),
            bridge_type: kind,
            bridge_class: "stasis".into(),
            creator: "Stasis".into(),
            name: name.unwrap_or("").to_string(),
            channels: vec![],
            creationtime: self.timestamp(),
            video_mode: Some("talker".into()),
        };
        let record = BridgeRecord {
            snapshot: snapshot.clone(),
            subscribers: BTreeSet::new(),
            native_capable: native_capable && kind == BridgeKind::Mixing,
        };
        self.boxes[box_index.0].bridges.insert(id, record);
        Ok(snapshot)
    }

    /// `POST /bridges/{id}/addChannel`: each channel joins once its queued commands (a
    /// playing prompt, DTMF) are done, as Asterisk's channel control queue does.
    pub fn add_channels(&mut self, box_index: BoxIndex, bridge: &str, channels: &[String]) -> Result<(), AriError> {
        if !self.pbx(box_index)?.bridges.contains_key(bridge) {
            return Err(not_found("Bridge"));
        }
        if channels.is_empty() {
            return Err(AriError::BadRequest { message: "Missing parameter channel".into() });
        }
        let mut resolved = Vec::with_capacity(channels.len());
        for id in channels {
            let channel = self
                .existing(box_index, id)
                .map_err(|_| AriError::BadRequest { message: "Channel not found".into() })?;
            let record = self.channel(&channel).expect("exists");
            if record.stasis_app.is_none() || record.hanging_up {
                return Err(AriError::Unprocessable { message: "Channel not in Stasis application".into() });
            }
            resolved.push(channel);
        }
        for channel in resolved {
            self.enqueue_control(&channel, ControlCommand::JoinBridge(bridge.to_string()))?;
        }
        Ok(())
    }

    pub fn remove_channels(&mut self, box_index: BoxIndex, bridge: &str, channels: &[String]) -> Result<(), AriError> {
        let record = self.pbx(box_index)?.bridges.get(bridge).ok_or_else(|| not_found("Bridge"))?;
        if channels.is_empty() {
            return Err(AriError::BadRequest { message: "Missing parameter channel".into() });
        }
        for id in channels {
            self.existing(box_index, id).map_err(|_| AriError::BadRequest { message: "Channel not found".into() })?;
            if !record.snapshot.channels.iter().any(|member| member.as_str() == id) {
                return Err(AriError::Unprocessable { message: "Channel not in this bridge".into() });
            }
        }
        for id in channels {
            let channel = ChannelRef { box_index, id: id.clone() };
            self.leave_bridge(&channel, bridge);
        }
        Ok(())
    }

    /// `DELETE /bridges/{id}`: remaining channels leave, then the bridge is gone.
    pub fn destroy_bridge(&mut self, box_index: BoxIndex, bridge: &str) -> Result<(), AriError> {
        let record = self.pbx(box_index)?.bridges.get(bridge).ok_or_else(|| not_found("Bridge"))?;
        let members: Vec<String> = record.snapshot.channels.iter().map(|member| member.to_string()).collect();
        for id in members {
            let channel = ChannelRef { box_index, id };
            self.leave_bridge(&channel, bridge);
        }
        let record = self.boxes[box_index.0].bridges.remove(bridge).expect("checked");
        self.emit(box_index, &record.subscribers, EventKind::BridgeDestroyed { bridge: record.snapshot });
        Ok(())
    }

    pub fn list_applications(&self, box_index: BoxIndex) -> Result<Vec<lineup_ari::Application>, AriError> {
        let names: Vec<String> = self.pbx(box_index)?.applications.iter().cloned().collect();
        names.iter().map(|name| self.get_application(box_index, name)).collect()
    }

    pub fn get_application(&self, box_index: BoxIndex, name: &str) -> Result<lineup_ari::Application, AriError> {
        let pbx = self.pbx(box_index)?;
        if !pbx.applications.contains(name) {
            return Err(not_found("Application"));
        }
        let channel_ids = pbx
            .channels
            .values()
            .filter(|record| record.stasis_app.as_deref() == Some(name) || record.originate_subscribers.contains(name))
            .map(|record| record.snapshot.id.to_string())
            .collect();
        let bridge_ids = pbx
            .bridges
            .values()
            .filter(|record| record.subscribers.contains(name))
            .map(|record| record.snapshot.id.to_string())
            .collect();
        Ok(lineup_ari::Application {
            name: name.to_string(),
            channel_ids,
            bridge_ids,
            endpoint_ids: vec![],
            device_names: vec![],
            events_allowed: vec![],
            events_disallowed: vec![],
        })
    }
}

/// Parameters of originate and create, as they arrive over ARI (strings already split).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct OriginateParams {
    pub endpoint: String,
    pub app: Option<String>,
    pub app_args: Vec<String>,
    pub context: Option<String>,
    pub extension: Option<String>,
    pub priority: Option<i64>,
    pub channel_id: Option<ChannelId>,
    pub other_channel_id: Option<ChannelId>,
    pub caller_id: Option<String>,
    pub timeout_s: Option<i64>,
    pub variables: BTreeMap<String, String>,
}
