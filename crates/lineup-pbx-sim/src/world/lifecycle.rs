//! A channel's life short of its hangup: creation and naming, state changes and
//! answering, channel variables, entering and leaving Stasis.

use super::config::BoxIndex;
use super::records::{ChannelRecord, ChannelRef, ChannelRole, Moh};
use super::timers::Timer;
use super::{PbxWorld, CHANNELS_PER_BOX_MAX_COUNT};
use lineup_ari::{AriError, CallerId, Channel, ChannelId, ChannelState, DialplanLocation, EventKind};
use std::collections::{BTreeMap, BTreeSet, VecDeque};

impl PbxWorld {
    #[allow(clippy::too_many_arguments)]
    pub(super) fn create_channel_record(
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
            hangup_handlers: Vec::new(),
            snoops: Vec::new(),
        };
        self.boxes[box_index.0].channels.insert(id.clone(), record);
        Ok(ChannelRef { box_index, id })
    }

    pub(super) fn technology_channel_name(&mut self, box_index: BoxIndex, technology: &str, resource: &str) -> String {
        let pbx = &mut self.boxes[box_index.0];
        let sequence = pbx.next_technology_sequence;
        pbx.next_technology_sequence += 1;
        format!("{technology}/{resource}-{sequence:08x}")
    }

    pub(super) fn set_variable_internal(&mut self, channel: &ChannelRef, name: &str, value: &str) {
        let Some(record) = self.channel_mut(channel) else { return };
        record.variables.insert(name.to_string(), value.to_string());
        let snapshot = record.snapshot.clone();
        self.emit_for_channel(
            channel,
            EventKind::ChannelVarset { variable: name.to_string(), value: value.to_string(), channel: Some(snapshot) },
        );
    }

    pub(super) fn set_state(&mut self, channel: &ChannelRef, state: ChannelState) {
        let Some(record) = self.channel_mut(channel) else { return };
        if record.snapshot.state == state {
            return;
        }
        record.snapshot.state = state;
        let snapshot = record.snapshot.clone();
        self.emit_for_channel(channel, EventKind::ChannelStateChange { channel: snapshot });
    }

    /// Answers a channel and, through a Local pair or trunk, the channel that dialed it.
    pub(super) fn answer_channel(&mut self, channel: &ChannelRef) {
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
    pub(super) fn dialed_channel_answered(&mut self, channel: &ChannelRef) {
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

    pub(super) fn enter_stasis(&mut self, channel: &ChannelRef, application: String, args: Vec<String>) {
        let Some(record) = self.channel_mut(channel) else { return };
        record.in_dialplan_application = false;
        record.application_before_stasis =
            Some((record.snapshot.dialplan.app_name.clone(), record.snapshot.dialplan.app_data.clone()));
        record.snapshot.dialplan.app_name = "Stasis".into();
        record.snapshot.dialplan.app_data =
            if args.is_empty() { application.clone() } else { format!("{application},{}", args.join(",")) };
        // Cleared on entry (subscribers from an originate see it, as recorded), so a caller
        // whose earlier try failed no longer reads FAILED.
        self.set_variable_internal(channel, "STASISSTATUS", "");
        let Some(record) = self.channel_mut(channel) else { return };
        record.stasis_app = Some(application.clone());
        let snapshot = record.snapshot.clone();
        self.emit_for_channel(channel, EventKind::StasisStart { args, channel: snapshot, replace_channel: None });
    }

    pub(super) fn leave_stasis(&mut self, channel: &ChannelRef) {
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
}
