//! The Asterisk model: boxes (one per site), channels, bridges, playbacks, trunks between
//! boxes, and the scripted humans at the far end of phone channels.
//!
//! Sans-IO: no sockets, no clock, no randomness. Time enters through `advance_to(now_ms)`;
//! every operation happens at the current virtual time; events leave through
//! `drain_outputs()`. The same `PbxWorld` is driven by the deterministic simulator directly
//! and by `server::LiveWorld` behind the HTTP + WebSocket face.
//!
//! This file holds the world itself: its limits, its clock and outputs, and the lookups every
//! part shares. The parts, each an `impl PbxWorld` of its own: `config` (what a world is set
//! up with), `records` (the state kept per box), `timers`, `lifecycle` (a channel from
//! creation through Stasis), `hangup`, `dialplan_run`, `dialing` (originates, trunk calls,
//! ringing phones), `media` (control queue, playbacks, hold music, DTMF), `bridges`, `phones`
//! (the scripted humans), `observe` (what tests and harnesses look at), `ari` (the channel and
//! application operations).

mod ari;
mod astdb;
mod bridges;
mod config;
mod dialing;
mod dialplan_run;
mod hangup;
mod lifecycle;
mod media;
mod observe;
mod phones;
mod records;
mod snoop;
mod timers;

pub use ari::OriginateParams;
pub use astdb::{ASTDB_ENTRIES_PER_BOX_MAX_COUNT, HANGUP_HANDLERS_PER_CHANNEL_MAX_COUNT};
pub use config::{
    federated_sites, BoxConfig, BoxIndex, PhoneBehaviour, PhoneCall, ScriptedKeys, TrunkRoute,
    DEPLOYED_EXTENSIONS_CONF, TRUNK_ENTRY_CONTEXT,
};
pub use observe::AudioPath;
pub use records::{EndedBy, EndedChannel};
pub use snoop::SnoopParams;

use crate::error::SimError;
use crate::time::format_timestamp;
use lineup_ari::{AriError, AriEvent, Channel, EventKind};
use records::{ChannelRecord, ChannelRef, PbxBox};
use std::collections::{BTreeMap, BTreeSet, VecDeque};
use timers::Timer;

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
/// The cause a snoop channel hangs up with when the channel it was on goes away.
pub const SNOOP_HANGUP_CAUSE: i32 = 16;
/// Ended channels remembered per box (`ended_channel`); the oldest is forgotten first.
pub const ENDED_CHANNELS_PER_BOX_MAX_COUNT: usize = 1_024;
/// One event for one application of one box.
#[derive(Clone, Debug, PartialEq)]
pub struct WorldOutput {
    pub box_index: BoxIndex,
    pub event: AriEvent,
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
                astdb: BTreeMap::new(),
                astdb_writes_dropped: 0,
                globals: BTreeMap::new(),
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

    fn timestamp(&self) -> String {
        format_timestamp(self.epoch_ms + self.now_ms)
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
}
