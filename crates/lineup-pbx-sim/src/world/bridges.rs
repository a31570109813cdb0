//! Bridges: their ARI operations, and channels joining and leaving them.

use super::config::BoxIndex;
use super::records::{BridgeRecord, ChannelRef, ControlCommand};
use super::{not_found, PbxWorld, BRIDGES_PER_BOX_MAX_COUNT};
use lineup_ari::{AriError, Bridge, BridgeKind, EventKind};
use std::collections::BTreeSet;

impl PbxWorld {
    pub(super) fn join_bridge(&mut self, channel: &ChannelRef, bridge: &str) {
        debug_assert!(self.bridge_membership_agrees(channel), "{channel:?} before joining {bridge}");
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
        debug_assert!(self.bridge_membership_agrees(channel), "{channel:?} after joining {bridge}");
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

    pub(super) fn leave_bridge(&mut self, channel: &ChannelRef, bridge: &str) {
        debug_assert!(self.bridge_membership_agrees(channel), "{channel:?} before leaving {bridge}");
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
        debug_assert!(self.bridge_membership_agrees(channel), "{channel:?} after leaving {bridge}");
        self.emit(box_index, &subscribers, EventKind::ChannelLeftBridge { bridge: bridge_snapshot, channel: snapshot });
    }

    /// Whether a channel's record and its box's bridges agree on where it is: the bridge the
    /// record names exists and lists it once, and no other bridge lists it (a channel that is
    /// gone is listed by none). The two sides are written apart (`join_bridge`,
    /// `leave_bridge`), so debug builds check it on both sides of every change.
    pub(super) fn bridge_membership_agrees(&self, channel: &ChannelRef) -> bool {
        let bridges = &self.boxes[channel.box_index.0].bridges;
        let named = self.channel(channel).and_then(|record| record.bridge.as_deref());
        let named_exists = named.is_none_or(|id| bridges.contains_key(id));
        named_exists
            && bridges.iter().all(|(id, record)| {
                let listed = record.snapshot.channels.iter().filter(|member| member.as_str() == channel.id).count();
                listed == usize::from(named == Some(id.as_str()))
            })
    }
}

/// The ARI bridge operations, as Asterisk answers them.
impl PbxWorld {
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
        debug_assert!(
            self.boxes[box_index.0].channels.values().all(|channel| channel.bridge.as_deref() != Some(bridge)),
            "a channel still names the destroyed bridge {bridge}"
        );
        self.emit(box_index, &record.subscribers, EventKind::BridgeDestroyed { bridge: record.snapshot });
        Ok(())
    }
}
