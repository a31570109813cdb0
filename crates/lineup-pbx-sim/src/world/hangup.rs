//! Tearing a channel down, with the events Asterisk reports on the way.

use super::records::{ChannelRef, ChannelRole, EndedBy, EndedChannel, HangupOrigin};
use super::{PbxWorld, ENDED_CHANNELS_PER_BOX_MAX_COUNT, SNOOP_HANGUP_CAUSE};
use lineup_ari::model::cause_text;
use lineup_ari::{Channel, EventKind};

impl HangupOrigin {
    /// The hangup cause the channel is destroyed with (and its peer hung up with).
    fn cause(&self) -> i32 {
        match self {
            HangupOrigin::Rest { cause }
            | HangupOrigin::Local { cause }
            | HangupOrigin::Human { cause }
            | HangupOrigin::Peer { cause, .. }
            | HangupOrigin::DialFailed { cause, .. } => *cause,
            HangupOrigin::SnoopTargetGone { .. } => SNOOP_HANGUP_CAUSE,
        }
    }

    fn ended_by(&self) -> EndedBy {
        match self {
            HangupOrigin::Rest { .. } => EndedBy::Ari,
            HangupOrigin::Local { .. } => EndedBy::Dialplan,
            HangupOrigin::Human { .. } => EndedBy::Human,
            HangupOrigin::Peer { from, .. } => EndedBy::Peer { box_index: from.box_index, channel: from.id.clone() },
            HangupOrigin::DialFailed { .. } => EndedBy::DialFailed,
            HangupOrigin::SnoopTargetGone { from } => {
                EndedBy::Peer { box_index: from.box_index, channel: from.id.clone() }
            }
        }
    }

    /// The `Dial` status reported when the channel hangs up while still being dialed; a
    /// failed dial has reported its own already.
    fn unanswered_dial_status(&self) -> Option<&'static str> {
        match self {
            HangupOrigin::DialFailed { .. } | HangupOrigin::SnoopTargetGone { .. } => None,
            HangupOrigin::Rest { .. } | HangupOrigin::Local { .. } | HangupOrigin::Human { .. } => Some("CANCEL"),
            // The dialed side (the far half of a Local pair, the far leg of a trunk) refused.
            HangupOrigin::Peer { cause, .. } => Some(match cause {
                17 => "BUSY",
                18 | 19 => "NOANSWER",
                34 => "CONGESTION",
                _ => "CANCEL",
            }),
        }
    }
}

impl PbxWorld {
    pub(super) fn hangup(&mut self, channel: &ChannelRef, origin: HangupOrigin) {
        let Some(snapshot) = self.mark_hanging_up(channel) else { return };
        let cause = origin.cause();
        self.report_hangup_request(channel, &origin, snapshot);
        // A hangup while the channel is still being dialed cancels the dial.
        if let Some(dialstatus) = origin.unanswered_dial_status() {
            self.report_unanswered_dial(channel, dialstatus);
        }
        self.detach_for_hangup(channel, cause);
        // Out of Stasis and its bridge, before it is destroyed: as Asterisk runs them.
        self.run_hangup_handlers(channel);
        let Some(snapshot) = self.final_snapshot(channel) else { return };
        self.destroy_channel(channel, snapshot, cause, origin.ended_by());
    }

    /// Marks the channel as hanging up and drops its queued commands; `None` when it is gone
    /// or already hanging up.
    fn mark_hanging_up(&mut self, channel: &ChannelRef) -> Option<Channel> {
        let record = self.channel_mut(channel)?;
        if record.hanging_up {
            return None;
        }
        record.hanging_up = true;
        record.control_queue.clear();
        Some(record.snapshot.clone())
    }

    fn report_hangup_request(&mut self, channel: &ChannelRef, origin: &HangupOrigin, snapshot: Channel) {
        let request = |cause: i32, soft: Option<bool>, channel: Channel| EventKind::ChannelHangupRequest {
            cause: Some(cause),
            tech_cause: None,
            soft,
            channel,
        };
        match origin {
            // ARI's soft hangup reports AST_SOFTHANGUP_EXPLICIT (32) as the cause (recorded).
            HangupOrigin::Rest { .. } => self.emit_for_channel(channel, request(32, Some(true), snapshot)),
            HangupOrigin::Local { cause } | HangupOrigin::Human { cause } => {
                self.emit_for_channel(channel, request(*cause, None, snapshot))
            }
            HangupOrigin::SnoopTargetGone { .. } => {
                self.emit_for_channel(channel, request(SNOOP_HANGUP_CAUSE, None, snapshot))
            }
            HangupOrigin::Peer { cause, .. } => {
                self.emit_for_channel(channel, request(*cause, None, snapshot.clone()));
                self.emit_for_channel(channel, request(*cause, Some(true), snapshot));
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
    }

    /// Ends a dial still in progress with `dialstatus`, if the channel is being dialed.
    fn report_unanswered_dial(&mut self, channel: &ChannelRef, dialstatus: &str) {
        let Some(dialing) = self.channel_mut(channel).and_then(|record| record.dialing.take()) else { return };
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

    /// Stops the channel's prompt, takes it out of its bridge and Stasis, and hangs up the
    /// other half of its Local pair or trunk call.
    fn detach_for_hangup(&mut self, channel: &ChannelRef, cause: i32) {
        self.stop_current_playback(channel);
        if let Some(bridge) = self.channel(channel).and_then(|record| record.bridge.clone()) {
            self.leave_bridge(channel, &bridge);
        }
        self.leave_stasis(channel);
        if let Some(peer) = self.channel(channel).and_then(|record| record.media_peer.clone()) {
            self.hangup(&peer, HangupOrigin::Peer { cause, from: channel.clone() });
        }
        self.end_snoops_on(channel);
    }

    /// The snapshot the channel is destroyed with. A Local half takes its partner's connected
    /// line as its caller when the pair tears down, and an interrupted dialplan application
    /// is cleared (both recorded).
    fn final_snapshot(&mut self, channel: &ChannelRef) -> Option<Channel> {
        let partner_connected = self
            .channel(channel)
            .filter(|record| record.role == ChannelRole::Local)
            .and_then(|record| record.media_peer.as_ref())
            .and_then(|peer| self.channel(peer))
            .map(|peer| peer.snapshot.connected.clone());
        let record = self.channel_mut(channel)?;
        if let Some(connected) = partner_connected {
            record.snapshot.caller = connected;
        }
        if record.in_dialplan_application {
            record.snapshot.dialplan.app_name.clear();
            record.snapshot.dialplan.app_data.clear();
        }
        Some(record.snapshot.clone())
    }

    /// Reports `ChannelDestroyed`, then forgets the channel, keeping what it left behind
    /// among the box's last ended channels.
    fn destroy_channel(&mut self, channel: &ChannelRef, snapshot: Channel, cause: i32, ended_by: EndedBy) {
        self.emit_for_channel(
            channel,
            EventKind::ChannelDestroyed {
                cause,
                cause_txt: cause_text(cause).to_string(),
                tech_cause: None,
                channel: snapshot,
            },
        );
        self.forget_snoop(channel);
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
        // `detach_for_hangup` took it out of its bridge: no bridge may list a channel that is gone.
        debug_assert!(self.bridge_membership_agrees(channel), "destroyed {channel:?} is still in a bridge");
    }
}
