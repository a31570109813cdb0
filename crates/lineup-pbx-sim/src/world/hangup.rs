//! Tearing a channel down, with the events Asterisk reports on the way.

use super::records::{ChannelRef, ChannelRole, EndedBy, EndedChannel, HangupOrigin};
use super::{PbxWorld, ENDED_CHANNELS_PER_BOX_MAX_COUNT};
use lineup_ari::model::cause_text;
use lineup_ari::EventKind;

impl PbxWorld {
    pub(super) fn hangup(&mut self, channel: &ChannelRef, origin: HangupOrigin) {
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
}
