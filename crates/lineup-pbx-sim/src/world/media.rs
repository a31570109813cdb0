//! What a channel plays and hears in turn: its control queue (prompts and DTMF one after
//! another, bridge joins and continues behind them), playbacks, hold music and received
//! digits.

use super::config::BoxIndex;
use super::records::{ChannelRef, ControlCommand, Moh, PlaybackRecord};
use super::timers::Timer;
use super::{
    not_found, PbxWorld, CONTROL_QUEUE_MAX_COMMANDS, DTMF_COMMAND_SPAN_MS, DTMF_DURATION_MS, DTMF_RECEIVED_OFFSET_MS,
};
use crate::sounds::{media_duration_ms, media_exists};
use lineup_ari::{AriError, EventKind, Playback, PlaybackId, PlaybackState};

/// How long one item of a playback lasts here: a sound the box does not have fails at once,
/// as on Asterisk ("File … does not exist in any format"); anything else plays its length.
fn item_duration_ms(media_uri: &str) -> u64 {
    if media_exists(media_uri) {
        media_duration_ms(media_uri)
    } else {
        0
    }
}

impl PbxWorld {
    pub(super) fn enqueue_control(&mut self, channel: &ChannelRef, command: ControlCommand) -> Result<(), AriError> {
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

    pub(super) fn control_done(&mut self, channel: &ChannelRef) {
        if let Some(record) = self.channel_mut(channel) {
            record.control_busy = false;
        }
        self.pump_control(channel);
    }

    /// Returns true if the playback now occupies the channel.
    fn start_playback(&mut self, channel: &ChannelRef, playback: &str) -> bool {
        let box_index = channel.box_index;
        let Some(record) = self.boxes[box_index.0].playbacks.get_mut(playback) else { return false };
        record.snapshot.state = PlaybackState::Playing;
        let snapshot = record.snapshot.clone();
        let duration = item_duration_ms(&record.media[0]);
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

    pub(super) fn playback_item_done(&mut self, box_index: BoxIndex, playback: &str) {
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
            let duration = item_duration_ms(&record.media[record.index]);
            self.emit_for_channel(&channel, EventKind::PlaybackContinuing { playback: continuing });
            self.emit_for_channel(&channel, EventKind::PlaybackStarted { playback: started });
            self.schedule(duration, Timer::PlaybackItemDone { box_index, playback: playback.to_string() });
            return;
        }
        // Asterisk ends a playback whose last item could not be played as `failed`; an
        // earlier missing item only moves it on to the next (Continuing).
        let last_failed = !media_exists(&record.media[record.index]);
        let state = if last_failed { PlaybackState::Failed } else { PlaybackState::Done };
        self.finish_playback(box_index, playback, state);
        self.control_done(&channel);
    }

    fn finish_playback(&mut self, box_index: BoxIndex, playback: &str, state: PlaybackState) {
        let Some(mut record) = self.boxes[box_index.0].playbacks.remove(playback) else { return };
        record.snapshot.state = state;
        let channel = ChannelRef { box_index, id: record.channel.clone() };
        if let Some(channel_record) = self.channel_mut(&channel) {
            if channel_record.current_playback.as_deref() == Some(playback) {
                channel_record.current_playback = None;
            }
        }
        self.emit_for_channel(&channel, EventKind::PlaybackFinished { playback: record.snapshot });
    }

    pub(super) fn stop_current_playback(&mut self, channel: &ChannelRef) {
        let Some(playback) = self.channel(channel).and_then(|record| record.current_playback.clone()) else { return };
        self.finish_playback(channel.box_index, &playback, PlaybackState::Done);
        if let Some(record) = self.channel_mut(channel) {
            record.control_busy = false;
        }
    }

    pub(super) fn dtmf_received(&mut self, channel: &ChannelRef, digit: char) {
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

/// The ARI operations on a channel's media, as Asterisk answers them.
impl PbxWorld {
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
            self.finish_playback(box_index, id, PlaybackState::Done);
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
}
