//! The world's timers: what can be due later, scheduling it, and firing it.

use super::config::BoxIndex;
use super::records::{ChannelRef, HangupOrigin, Moh};
use super::{PbxWorld, TIMERS_MAX_COUNT};
use lineup_ari::CallerId;

#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) enum Timer {
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

impl PbxWorld {
    pub(super) fn schedule(&mut self, delay_ms: u64, timer: Timer) {
        if self.timers.len() >= TIMERS_MAX_COUNT {
            self.dropped_timers += 1;
            return;
        }
        self.timer_sequence += 1;
        self.timers.insert((self.now_ms + delay_ms, self.timer_sequence), timer);
    }

    pub(super) fn fire(&mut self, timer: Timer) {
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
            Timer::PhoneRinging { channel } => self.phone_ringing(&channel),
            Timer::PhoneAnswer { channel } => {
                if self.is_being_dialed(&channel) {
                    self.dialed_channel_answered(&channel);
                }
            }
            Timer::RingTimeout { channel } => {
                if self.is_being_dialed(&channel) {
                    self.hangup(&channel, HangupOrigin::DialFailed { cause: 19, dialstatus: "NOANSWER" });
                }
            }
            Timer::PhoneHangup { channel } => self.hangup(&channel, HangupOrigin::Human { cause: 16 }),
            Timer::PhoneKey { channel, digit } => self.dtmf_received(&channel, digit),
        }
    }
}
