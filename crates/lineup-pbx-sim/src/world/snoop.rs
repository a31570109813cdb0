//! Snoop channels (`POST /channels/{id}/snoop`), as `stasis_snoop.c` makes them: a channel
//! named `Snoop/<target uniqueid>-<sequence>`, up at once and in the given application, that
//! hears the target's audio in its `spy` directions and speaks into it in its `whisper`
//! directions (`observe.rs` follows both). It lives on an audiohook of the target: when the
//! target goes away the snoop channel hangs up by itself; hanging up the snoop channel leaves
//! the target as it was.

use super::config::BoxIndex;
use super::records::{ChannelRef, ChannelRole, HangupOrigin};
use super::{not_found, PbxWorld};
use lineup_ari::{AriError, CallerId, Channel, ChannelId, ChannelState, SnoopDirection};

/// What a snoop request carries besides the snooped channel, as it arrives over ARI.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SnoopParams {
    pub app: String,
    pub app_args: Vec<String>,
    pub spy: SnoopDirection,
    pub whisper: SnoopDirection,
    pub snoop_id: Option<ChannelId>,
}

/// A live snoop channel on some channel, and where it whispers.
#[derive(Clone, Debug)]
pub(super) struct SnoopOn {
    pub(super) channel: ChannelRef,
    pub(super) whisper: SnoopDirection,
}

impl PbxWorld {
    /// `POST /channels/{target}/snoop`. Refused as Asterisk refuses: no direction at all or no
    /// application (400), a target that is gone or hanging up (404), a `snoopId` in use (409).
    /// The target need not be in Stasis.
    pub fn snoop(&mut self, box_index: BoxIndex, target: &str, params: &SnoopParams) -> Result<Channel, AriError> {
        if params.spy == SnoopDirection::None && params.whisper == SnoopDirection::None {
            return Err(AriError::BadRequest {
                message: "Direction must be specified for at least spy or whisper".into(),
            });
        }
        if params.app.is_empty() {
            return Err(AriError::BadRequest { message: "Application name is required".into() });
        }
        if !self.pbx(box_index)?.applications.contains(&params.app) {
            return Err(AriError::BadRequest { message: format!("Application '{}' is not registered", params.app) });
        }
        let target = self.existing(box_index, target)?;
        if self.channel(&target).map(|record| record.hanging_up).unwrap_or(true) {
            return Err(not_found("Channel"));
        }
        let name = self.technology_channel_name(box_index, "Snoop", &target.id);
        let location = super::ari::origin_location();
        let role = ChannelRole::Snoop { target: target.clone(), spy: params.spy, whisper: params.whisper };
        let snoop = self.create_channel_record(
            box_index,
            params.snoop_id.as_ref(),
            name,
            ChannelState::Up,
            CallerId::default(),
            location,
            role,
        )?;
        if let Some(record) = self.channel_mut(&target) {
            record.snoops.push(snoop.id.clone());
        }
        // The application is subscribed to the snoop channel as to an originated one, so its
        // `ChannelDestroyed` reaches it after the `StasisEnd`.
        if let Some(record) = self.channel_mut(&snoop) {
            record.originate_subscribers.insert(params.app.clone());
        }
        self.enter_stasis(&snoop, params.app.clone(), params.app_args.clone());
        Ok(self.snapshot(&snoop).expect("created"))
    }

    /// The live snoop channels on `channel`, oldest first.
    pub(super) fn snoops_on(&self, channel: &ChannelRef) -> Vec<SnoopOn> {
        let Some(record) = self.channel(channel) else { return Vec::new() };
        record
            .snoops
            .iter()
            .filter_map(|id| {
                let snoop = ChannelRef { box_index: channel.box_index, id: id.clone() };
                match &self.channel(&snoop)?.role {
                    ChannelRole::Snoop { whisper, .. } => Some(SnoopOn { channel: snoop, whisper: *whisper }),
                    _ => None,
                }
            })
            .collect()
    }

    /// `channel` is going away: every snoop channel on it hangs up.
    pub(super) fn end_snoops_on(&mut self, channel: &ChannelRef) {
        let snoops = self.channel_mut(channel).map(|record| std::mem::take(&mut record.snoops)).unwrap_or_default();
        for id in snoops {
            let snoop = ChannelRef { box_index: channel.box_index, id };
            self.hangup(&snoop, HangupOrigin::SnoopTargetGone { from: channel.clone() });
        }
    }

    /// A snoop channel being destroyed leaves its target's list.
    pub(super) fn forget_snoop(&mut self, channel: &ChannelRef) {
        let Some(ChannelRole::Snoop { target, .. }) = self.channel(channel).map(|record| record.role.clone()) else {
            return;
        };
        if let Some(record) = self.channel_mut(&target) {
            record.snoops.retain(|id| id != &channel.id);
        }
    }
}
