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
}
