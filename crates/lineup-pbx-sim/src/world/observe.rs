//! Observations for tests and harnesses: what a human hears, who is connected to whom,
//! what a destroyed channel left behind, the live channels.

use super::config::BoxIndex;
use super::records::{ChannelRef, ChannelRole, EndedChannel, Moh};
use super::{PbxWorld, AUDIO_PATH_HOPS_MAX_COUNT};
use lineup_ari::{BridgeKind, ChannelId, ChannelState};
use std::collections::BTreeSet;

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

/// A direction of audio on a channel, seen from the channel: sent to it or coming from it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Flow {
    In,
    Out,
}

/// The state of one `connected_parties` walk: what was visited, who was heard.
struct AudioWalk {
    seen: BTreeSet<(ChannelRef, Flow)>,
    parties: BTreeSet<(BoxIndex, String)>,
}

impl AudioWalk {
    /// Whether `(channel, flow)` is new and the walk is within its bound.
    fn visit(&mut self, channel: &ChannelRef, flow: Flow) -> bool {
        // Each channel is visited at most once per flow.
        self.seen.len() < 2 * AUDIO_PATH_HOPS_MAX_COUNT && self.seen.insert((channel.clone(), flow))
    }
}

impl PbxWorld {
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

    /// The humans `start` hears: the audio Asterisk sends to it (`out`). Audio flows through
    /// mixing bridges, answered Local pairs and trunk legs, and snoop channels: a snoop hears
    /// its target's `in` (what the target's phone picks up) and `out` (what it plays) as its
    /// `spy` says, and what reaches the snoop from its own bridge is added to the target's
    /// `in` or `out` as its `whisper` says.
    fn connected_parties(&self, start: &ChannelRef) -> Vec<(BoxIndex, String)> {
        let mut walk = AudioWalk { seen: BTreeSet::new(), parties: BTreeSet::new() };
        self.out_audio(start, &mut walk);
        walk.parties
            .remove(&(start.box_index, self.channel(start).map(|r| r.snapshot.name.clone()).unwrap_or_default()));
        walk.parties.into_iter().collect()
    }

    /// Adds the humans heard in the audio Asterisk sends to `channel`.
    fn out_audio(&self, channel: &ChannelRef, walk: &mut AudioWalk) {
        if !walk.visit(channel, Flow::Out) {
            return;
        }
        let Some(record) = self.channel(channel) else { return };
        // Participants of a holding bridge wait side by side; they do not hear each other.
        let bridge = record.bridge.as_ref().and_then(|id| self.boxes[channel.box_index.0].bridges.get(id));
        if let Some(bridge) = bridge.filter(|bridge| bridge.snapshot.bridge_type == BridgeKind::Mixing) {
            for member in bridge.snapshot.channels.iter().filter(|member| member.as_str() != channel.id) {
                self.in_audio(&ChannelRef { box_index: channel.box_index, id: member.to_string() }, walk);
            }
        }
        // What a whispering snoop is sent from its own bridge is mixed into what it whispers into.
        for snoop in self.snoops_on(channel).into_iter().filter(|snoop| snoop.whisper.includes_out()) {
            self.out_audio(&snoop.channel, walk);
        }
    }

    /// Adds the humans heard in the audio `channel` sends into Asterisk.
    fn in_audio(&self, channel: &ChannelRef, walk: &mut AudioWalk) {
        if !walk.visit(channel, Flow::In) {
            return;
        }
        let Some(record) = self.channel(channel) else { return };
        match &record.role {
            ChannelRole::Phone { .. } => {
                walk.parties.insert((channel.box_index, record.snapshot.name.clone()));
            }
            // Media through a Local pair or trunk only flows once answered.
            ChannelRole::Local | ChannelRole::Trunk => {
                if let Some(peer) = record.media_peer.as_ref().filter(|_| record.snapshot.state == ChannelState::Up) {
                    self.out_audio(peer, walk);
                }
            }
            ChannelRole::Snoop { target, spy, .. } => {
                if spy.includes_in() {
                    self.in_audio(target, walk);
                }
                if spy.includes_out() {
                    self.out_audio(target, walk);
                }
            }
        }
        for snoop in self.snoops_on(channel).into_iter().filter(|snoop| snoop.whisper.includes_in()) {
            self.out_audio(&snoop.channel, walk);
        }
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
}
