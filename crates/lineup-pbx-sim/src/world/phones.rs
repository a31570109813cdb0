//! The scripted humans: a phone placing a call, its keys, its hangup.

use super::config::{BoxIndex, PhoneBehaviour, PhoneCall, ScriptedKeys};
use super::records::{ChannelRef, ChannelRole, HangupOrigin};
use super::timers::Timer;
use super::{PbxWorld, KEY_SPACING_MS};
use crate::error::SimError;
use lineup_ari::{ChannelId, ChannelState, DialplanLocation};

impl PbxWorld {
    /// A phone dials `context`/`exten`: the channel appears ringing and runs the dialplan.
    pub fn place_call(&mut self, box_index: BoxIndex, call: PhoneCall) -> Result<ChannelId, SimError> {
        let pbx = self.boxes.get(box_index.0).ok_or_else(|| SimError::InvalidSetup("no such box".into()))?;
        if pbx.config.dialplan.find(&call.context, &call.exten).is_none() {
            return Err(SimError::InvalidSetup(format!("no extension {}@{}", call.exten, call.context)));
        }
        for keys in &call.keys {
            lineup_ari::model::validate_dtmf(&keys.digits)
                .map_err(|error| SimError::InvalidSetup(error.to_string()))?;
        }
        let name = self.technology_channel_name(box_index, "PJSIP", &call.phone);
        let dialplan = DialplanLocation {
            context: call.context.clone(),
            exten: call.exten.clone(),
            priority: 1,
            app_name: String::new(),
            app_data: String::new(),
        };
        let role = ChannelRole::Phone { resource: call.phone.clone(), behaviour: PhoneBehaviour::default() };
        let channel = self
            .create_channel_record(box_index, None, name, ChannelState::Ring, call.caller.clone(), dialplan, role)
            .map_err(|error| SimError::InvalidSetup(error.to_string()))?;
        if let Some(patience_ms) = call.patience_ms {
            self.schedule(patience_ms, Timer::PhoneHangup { channel: channel.clone() });
        }
        self.schedule_keys(&channel, &call.keys);
        let id = ChannelId::new(channel.id.clone()).map_err(|error| SimError::InvalidSetup(error.to_string()))?;
        self.run_dialplan(&channel);
        Ok(id)
    }

    pub(super) fn schedule_keys(&mut self, channel: &ChannelRef, keys: &[ScriptedKeys]) {
        for burst in keys {
            for (index, digit) in burst.digits.chars().enumerate() {
                let delay = burst.at_ms + KEY_SPACING_MS * index as u64;
                self.schedule(delay, Timer::PhoneKey { channel: channel.clone(), digit });
            }
        }
    }

    /// The human on a phone channel hangs up.
    pub fn phone_hangup(&mut self, box_index: BoxIndex, channel: &ChannelId) -> bool {
        let channel = ChannelRef { box_index, id: channel.to_string() };
        if self.channel(&channel).is_none() {
            return false;
        }
        self.hangup(&channel, HangupOrigin::Human { cause: 16 });
        true
    }

    /// The human on a phone channel presses keys now (spaced `KEY_SPACING_MS`).
    pub fn phone_press(&mut self, box_index: BoxIndex, channel: &ChannelId, digits: &str) -> Result<(), SimError> {
        lineup_ari::model::validate_dtmf(digits).map_err(|error| SimError::InvalidSetup(error.to_string()))?;
        let channel = ChannelRef { box_index, id: channel.to_string() };
        self.schedule_keys(&channel, &[ScriptedKeys { at_ms: 0, digits: digits.to_string() }]);
        Ok(())
    }
}
