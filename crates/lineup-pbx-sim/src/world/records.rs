//! The state the world keeps per box: channel, bridge and playback records, what waits on
//! a channel, and what a destroyed channel left behind.

use super::config::{BoxConfig, BoxIndex, PhoneBehaviour};
use lineup_ari::{Bridge, Channel, Playback, SnoopDirection};
use std::collections::{BTreeMap, BTreeSet, VecDeque};

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

#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(super) struct ChannelRef {
    pub(super) box_index: BoxIndex,
    pub(super) id: String,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) enum ChannelRole {
    /// A half of a Local channel pair.
    Local,
    /// A leg of a trunk call between boxes.
    Trunk,
    /// A phone with a scripted human behind it.
    Phone { resource: String, behaviour: PhoneBehaviour },
    /// A snoop channel on `target` (`POST /channels/{id}/snoop`): it hears the target's audio
    /// in the `spy` directions and speaks into it in the `whisper` directions.
    Snoop { target: ChannelRef, spy: SnoopDirection, whisper: SnoopDirection },
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) enum Moh {
    Off,
    Playing(String),
    /// A play paused it; Asterisk does not resume it.
    Paused(String),
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) enum ControlCommand {
    Play(String),
    Dtmf(char),
    JoinBridge(String),
    Continue { context: Option<String>, exten: Option<String>, priority: Option<i64> },
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) enum HangupOrigin {
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
    /// The channel a snoop channel was on went away: its audiohook is gone, so the snoop
    /// channel hangs up on its own.
    SnoopTargetGone { from: ChannelRef },
}

#[derive(Clone, Debug)]
pub(super) struct DialState {
    pub(super) dialstring: String,
}

#[derive(Clone, Debug)]
pub(super) struct ChannelRecord {
    pub(super) snapshot: Channel,
    pub(super) role: ChannelRole,
    pub(super) stasis_app: Option<String>,
    /// Originate/create with `app`: enter that application once answered.
    pub(super) stasis_pending: Option<(String, Vec<String>)>,
    /// Originate to the dialplan: run from here once answered.
    pub(super) dialplan_after_answer: Option<(String, String, i64)>,
    /// Applications that subscribed through originate/create; they keep the channel's events
    /// until it is destroyed (the recording shows `ChannelDestroyed` reaching them).
    pub(super) originate_subscribers: BTreeSet<String>,
    pub(super) media_peer: Option<ChannelRef>,
    pub(super) control_queue: VecDeque<ControlCommand>,
    pub(super) control_busy: bool,
    pub(super) current_playback: Option<String>,
    pub(super) moh: Moh,
    pub(super) bridge: Option<String>,
    pub(super) variables: BTreeMap<String, String>,
    pub(super) dialing: Option<DialState>,
    pub(super) hanging_up: bool,
    /// The dialplan application before Stasis, shown again after StasisEnd (recorded).
    pub(super) application_before_stasis: Option<(String, String)>,
    /// Parked in a dialplan application (`Wait`): a hangup interrupts it and clears it.
    pub(super) in_dialplan_application: bool,
    /// What `dial` rings, for a channel made with `create`.
    pub(super) dial_resource: Option<String>,
    /// Pushed with `CHANNEL(hangup_handler_push)`, run at hangup (last pushed first).
    pub(super) hangup_handlers: Vec<super::astdb::HangupHandler>,
    /// Ids of the live snoop channels on this channel, oldest first.
    pub(super) snoops: Vec<String>,
}

#[derive(Clone, Debug)]
pub(super) struct BridgeRecord {
    pub(super) snapshot: Bridge,
    pub(super) subscribers: BTreeSet<String>,
    /// Whether Asterisk could bridge natively (media bypassing the core, so no DTMF events).
    pub(super) native_capable: bool,
}

#[derive(Clone, Debug)]
pub(super) struct PlaybackRecord {
    pub(super) snapshot: Playback,
    pub(super) channel: String,
    pub(super) media: Vec<String>,
    pub(super) index: usize,
}

#[derive(Clone, Debug)]
pub(super) struct PbxBox {
    pub(super) config: BoxConfig,
    pub(super) channels: BTreeMap<String, ChannelRecord>,
    pub(super) bridges: BTreeMap<String, BridgeRecord>,
    pub(super) playbacks: BTreeMap<String, PlaybackRecord>,
    pub(super) applications: BTreeSet<String>,
    pub(super) phones: BTreeMap<String, PhoneBehaviour>,
    /// The last `ENDED_CHANNELS_PER_BOX_MAX_COUNT` channels destroyed, oldest first.
    pub(super) ended: VecDeque<EndedChannel>,
    pub(super) next_unique_sequence: u64,
    pub(super) next_local_sequence: u64,
    pub(super) next_technology_sequence: u64,
    pub(super) next_object_sequence: u64,
    /// The box's AstDB, `family/key` → value.
    pub(super) astdb: BTreeMap<String, String>,
    /// Writes of new AstDB keys dropped at `ASTDB_ENTRIES_PER_BOX_MAX_COUNT`.
    pub(super) astdb_writes_dropped: u64,
    /// Global variables set over ARI (`POST /asterisk/variable` with a plain name).
    pub(super) globals: BTreeMap<String, String>,
}
