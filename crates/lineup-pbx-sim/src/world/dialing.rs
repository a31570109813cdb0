//! Dialing out: originates into Local pairs and technology channels, trunk calls to
//! another box, and ringing phones.

use super::ari::OriginateParams;
use super::config::{BoxIndex, PhoneBehaviour, TrunkRoute};
use super::records::{ChannelRef, ChannelRole, DialState, HangupOrigin};
use super::timers::Timer;
use super::{PbxWorld, ORIGINATE_DIAL_DELAY_MS};
use lineup_ari::{AriError, CallerId, Channel, ChannelId, ChannelState, DialplanLocation, EventKind};

impl PbxWorld {
    fn prepare_originated(&mut self, channel: &ChannelRef, request: &OriginateParams) {
        let Some(record) = self.channel_mut(channel) else { return };
        for (name, value) in &request.variables {
            record.variables.insert(name.clone(), value.clone());
        }
        if let Some(app) = &request.app {
            record.originate_subscribers.insert(app.clone());
            record.stasis_pending = Some((app.clone(), request.app_args.clone()));
        } else if let Some(extension) = &request.extension {
            let context = request.context.clone().unwrap_or_else(|| "default".into());
            record.dialplan_after_answer = Some((context, extension.clone(), request.priority.unwrap_or(1)));
        }
    }

    pub(super) fn originate_local(
        &mut self,
        box_index: BoxIndex,
        request: &OriginateParams,
        resource: &str,
        caller: CallerId,
    ) -> Result<Channel, AriError> {
        let location = local_location(resource, "AppDial2", "(Outgoing Line)");
        let second = (ChannelState::Ring, local_location(resource, "", ""));
        let (first, second) = self.create_local_pair(box_index, request, resource, caller, location, second)?;
        self.prepare_originated(&first, request);
        if let Some(app) = &request.app {
            // An originate into an application subscribes it to both halves (recorded).
            for channel in [&first, &second] {
                self.channel_mut(channel).expect("created").originate_subscribers.insert(app.clone());
            }
        }
        self.channel_mut(&first).expect("created").dialing = Some(DialState { dialstring: resource.to_string() });
        let created = self.snapshot(&first).expect("created");
        let dialstring = resource.to_string();
        self.schedule(ORIGINATE_DIAL_DELAY_MS, Timer::StartLocalDial { first, second, dialstring });
        Ok(created)
    }

    /// The two halves of a `Local/exten@context` channel, each the other's media peer: `;1`
    /// down at `first_location`, `;2` in the given state at its location. Neither is dialed.
    pub(super) fn create_local_pair(
        &mut self,
        box_index: BoxIndex,
        request: &OriginateParams,
        resource: &str,
        caller: CallerId,
        first_location: DialplanLocation,
        (second_state, second_location): (ChannelState, DialplanLocation),
    ) -> Result<(ChannelRef, ChannelRef), AriError> {
        let sequence = self.boxes[box_index.0].next_local_sequence;
        let first = self.create_channel_record(
            box_index,
            request.channel_id.as_ref(),
            format!("Local/{resource}-{sequence:08x};1"),
            ChannelState::Down,
            caller.clone(),
            first_location,
            ChannelRole::Local,
        )?;
        // Asterisk (core_unreal.c): given a channelId X and no otherChannelId, the second
        // half is X;2.
        let second_id = match (&request.other_channel_id, &request.channel_id) {
            (Some(other), _) => Some(other.clone()),
            (None, Some(first)) => Some(ChannelId::new(format!("{first};2"))?),
            (None, None) => None,
        };
        let second = match self.create_channel_record(
            box_index,
            second_id.as_ref(),
            format!("Local/{resource}-{sequence:08x};2"),
            second_state,
            caller,
            second_location,
            ChannelRole::Local,
        ) {
            Ok(second) => second,
            Err(error) => {
                self.boxes[box_index.0].channels.remove(&first.id);
                return Err(error);
            }
        };
        self.boxes[box_index.0].next_local_sequence += 1;
        for (channel, peer) in [(&first, &second), (&second, &first)] {
            self.channel_mut(channel).expect("created").media_peer = Some(peer.clone());
        }
        Ok((first, second))
    }

    pub(super) fn start_local_dial(&mut self, first: &ChannelRef, second: &ChannelRef, dialstring: String) {
        let Some(peer) = self.snapshot(first) else { return };
        self.emit_for_channel(
            first,
            EventKind::Dial {
                peer,
                dialstatus: String::new(),
                caller: None,
                dialstring: Some(dialstring),
                forward: Some(String::new()),
            },
        );
        self.run_dialplan(second);
    }

    pub(super) fn originate_technology(
        &mut self,
        box_index: BoxIndex,
        request: &OriginateParams,
        technology: &str,
        resource: &str,
        caller: CallerId,
        timeout_s: u64,
    ) -> Result<Channel, AriError> {
        let location = DialplanLocation {
            context: request.context.clone().unwrap_or_else(|| "default".into()),
            exten: request.extension.clone().unwrap_or_else(|| "s".into()),
            priority: 1,
            app_name: "AppDial2".into(),
            app_data: "(Outgoing Line)".into(),
        };
        let trunk = self.find_trunk(box_index, technology, resource);
        let (name_resource, role) = match &trunk {
            Some((route, _)) => (route.trunk.clone(), ChannelRole::Trunk),
            None => {
                let behaviour = self.boxes[box_index.0].phones.get(resource).cloned().unwrap_or_default();
                (resource.to_string(), ChannelRole::Phone { resource: resource.to_string(), behaviour })
            }
        };
        let name = self.technology_channel_name(box_index, technology, &name_resource);
        let channel = self.create_channel_record(
            box_index,
            request.channel_id.as_ref(),
            name,
            ChannelState::Down,
            caller.clone(),
            location,
            role,
        )?;
        self.prepare_originated(&channel, request);
        let created = self.snapshot(&channel).expect("created");
        let dialstring = resource.to_string();
        self.schedule(ORIGINATE_DIAL_DELAY_MS, Timer::StartDial { channel, dialstring, timeout_s, caller });
        Ok(created)
    }

    pub(super) fn find_trunk(
        &self,
        box_index: BoxIndex,
        technology: &str,
        resource: &str,
    ) -> Option<(TrunkRoute, String)> {
        let routes = &self.boxes.get(box_index.0)?.config.trunks;
        routes.iter().filter(|route| route.technology == technology).find_map(|route| {
            let exten = match technology {
                "IAX2" => resource.strip_prefix(&format!("{}/", route.trunk))?,
                _ => resource.strip_suffix(&format!("@{}", route.trunk))?,
            };
            (!exten.is_empty()).then(|| (route.clone(), exten.to_string()))
        })
    }

    /// Dials a technology channel: a trunk call to another box, or a phone.
    pub(super) fn start_dialing(&mut self, channel: &ChannelRef, dialstring: &str, timeout_s: u64, caller: CallerId) {
        let Some(record) = self.channel_mut(channel) else { return };
        record.dialing = Some(DialState { dialstring: dialstring.to_string() });
        let role = record.role.clone();
        let technology = record.snapshot.name.split('/').next().unwrap_or("").to_string();
        let peer = record.snapshot.clone();
        self.emit_for_channel(
            channel,
            EventKind::Dial {
                peer,
                dialstatus: String::new(),
                caller: None,
                dialstring: Some(dialstring.to_string()),
                forward: Some(String::new()),
            },
        );
        match role {
            ChannelRole::Trunk => self.dial_trunk(channel, &technology, dialstring, timeout_s, caller),
            ChannelRole::Phone { resource, behaviour } => self.ring_phone(channel, &resource, &behaviour, timeout_s),
            ChannelRole::Local | ChannelRole::Snoop { .. } => {}
        }
    }

    /// A trunk call: the inbound leg appears at the target box and runs its dialplan there.
    fn dial_trunk(
        &mut self,
        channel: &ChannelRef,
        technology: &str,
        dialstring: &str,
        timeout_s: u64,
        caller: CallerId,
    ) {
        let Some((route, exten)) = self.find_trunk(channel.box_index, technology, dialstring) else { return };
        let source_name = self.boxes[channel.box_index.0].config.name.clone();
        let name = self.technology_channel_name(route.target, technology, &source_name);
        let location = DialplanLocation {
            context: route.context.clone(),
            exten,
            priority: 1,
            app_name: String::new(),
            app_data: String::new(),
        };
        let inbound = match self.create_channel_record(
            route.target,
            None,
            name,
            ChannelState::Ring,
            caller,
            location,
            ChannelRole::Trunk,
        ) {
            Ok(inbound) => inbound,
            Err(_) => {
                self.hangup(channel, HangupOrigin::DialFailed { cause: 34, dialstatus: "CONGESTION" });
                return;
            }
        };
        self.channel_mut(channel).expect("live").media_peer = Some(inbound.clone());
        self.channel_mut(&inbound).expect("created").media_peer = Some(channel.clone());
        self.schedule(timeout_s.saturating_mul(1000), Timer::RingTimeout { channel: channel.clone() });
        self.run_dialplan(&inbound);
    }

    /// A phone: refused when unknown or busy, else it rings and its human answers on script.
    fn ring_phone(&mut self, channel: &ChannelRef, resource: &str, behaviour: &PhoneBehaviour, timeout_s: u64) {
        if !self.boxes[channel.box_index.0].phones.contains_key(resource) {
            self.hangup(channel, HangupOrigin::DialFailed { cause: 20, dialstatus: "CHANUNAVAIL" });
            return;
        }
        if behaviour.busy {
            self.hangup(channel, HangupOrigin::DialFailed { cause: 17, dialstatus: "BUSY" });
            return;
        }
        self.schedule(0, Timer::PhoneRinging { channel: channel.clone() });
        if let Some(answer_after_ms) = behaviour.answer_after_ms {
            if answer_after_ms < timeout_s.saturating_mul(1000) {
                self.schedule(answer_after_ms, Timer::PhoneAnswer { channel: channel.clone() });
            }
        }
        self.schedule(timeout_s.saturating_mul(1000), Timer::RingTimeout { channel: channel.clone() });
    }

    /// Whether `channel` is still being dialed (not answered, not failed, not gone).
    pub(super) fn is_being_dialed(&self, channel: &ChannelRef) -> bool {
        self.channel(channel).map(|r| r.dialing.is_some()).unwrap_or(false)
    }

    /// A dialed phone starts ringing: its state, and `Dial` with `RINGING`.
    pub(super) fn phone_ringing(&mut self, channel: &ChannelRef) {
        if !self.is_being_dialed(channel) {
            return;
        }
        self.set_state(channel, ChannelState::Ringing);
        let record = self.channel(channel).expect("live");
        let dialstring = record.dialing.as_ref().map(|d| d.dialstring.clone());
        let peer = record.snapshot.clone();
        self.emit_for_channel(
            channel,
            EventKind::Dial {
                peer,
                dialstatus: "RINGING".into(),
                caller: None,
                dialstring,
                forward: Some(String::new()),
            },
        );
    }
}

/// Where a `Local/exten@context` half starts (context `default` when none is given).
pub(super) fn local_location(resource: &str, app_name: &str, app_data: &str) -> DialplanLocation {
    let (exten, context) = resource.split_once('@').unwrap_or((resource, "default"));
    DialplanLocation {
        context: context.to_string(),
        exten: exten.to_string(),
        priority: 1,
        app_name: app_name.into(),
        app_data: app_data.into(),
    }
}
