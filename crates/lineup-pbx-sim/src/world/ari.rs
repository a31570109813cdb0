//! The ARI channel and application operations, as Asterisk answers them.

use super::config::BoxIndex;
use super::records::{ChannelRole, ControlCommand, HangupOrigin};
use super::timers::Timer;
use super::{not_found, PbxWorld, ORIGINATE_DIAL_DELAY_MS, RING_TIMEOUT_S_DEFAULT};
use lineup_ari::model::parse_caller_id;
use lineup_ari::{AriError, Channel, ChannelId, ChannelState, DialplanLocation};
use std::collections::BTreeMap;

/// Parameters of originate and create, as they arrive over ARI (strings already split).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct OriginateParams {
    pub endpoint: String,
    pub app: Option<String>,
    pub app_args: Vec<String>,
    pub context: Option<String>,
    pub extension: Option<String>,
    pub priority: Option<i64>,
    pub channel_id: Option<ChannelId>,
    pub other_channel_id: Option<ChannelId>,
    pub caller_id: Option<String>,
    pub timeout_s: Option<i64>,
    pub variables: BTreeMap<String, String>,
}

/// The ARI operations, as Asterisk answers them.
impl PbxWorld {
    pub fn list_channels(&self, box_index: BoxIndex) -> Result<Vec<Channel>, AriError> {
        Ok(self.pbx(box_index)?.channels.values().map(|record| record.snapshot.clone()).collect())
    }

    pub fn get_channel(&self, box_index: BoxIndex, id: &str) -> Result<Channel, AriError> {
        let channel = self.existing(box_index, id)?;
        Ok(self.snapshot(&channel).expect("exists"))
    }

    pub fn answer(&mut self, box_index: BoxIndex, id: &str) -> Result<(), AriError> {
        let channel = self.in_stasis(box_index, id)?;
        self.answer_channel(&channel);
        Ok(())
    }

    pub fn ring(&mut self, box_index: BoxIndex, id: &str) -> Result<(), AriError> {
        let channel = self.in_stasis(box_index, id)?;
        let state = self.channel(&channel).map(|record| record.snapshot.state).expect("exists");
        if state != ChannelState::Up {
            self.set_state(&channel, ChannelState::Ringing);
        }
        Ok(())
    }

    /// `DELETE /channels/{id}`; `cause` from `reason`/`reason_code` (16 when neither).
    pub fn hangup_channel(&mut self, box_index: BoxIndex, id: &str, cause: i32) -> Result<(), AriError> {
        let channel = self.existing(box_index, id)?;
        self.hangup(&channel, HangupOrigin::Rest { cause });
        Ok(())
    }

    /// `GET /channels/{id}/variable`: a name ending with `)` is a function evaluated on the
    /// channel as Asterisk does from ARI (see `astdb.rs`); a plain name a channel variable.
    pub fn get_variable(&self, box_index: BoxIndex, id: &str, name: &str) -> Result<String, AriError> {
        let channel = self.existing(box_index, id)?;
        let record = self.channel(&channel).expect("exists");
        if name.ends_with(')') {
            return self.ari_function_read(box_index, record, name);
        }
        record
            .variables
            .get(name)
            .cloned()
            .ok_or_else(|| AriError::NotFound { message: "Provided variable was not found".into() })
    }

    pub fn set_variable(&mut self, box_index: BoxIndex, id: &str, name: &str, value: &str) -> Result<(), AriError> {
        let channel = self.existing(box_index, id)?;
        lineup_ari::ids::validate_variable_name(name)
            .map_err(|_| AriError::BadRequest { message: "Variable name is required".into() })?;
        self.set_variable_internal(&channel, name, value);
        Ok(())
    }

    /// `POST /channels/{id}/continue`: leaves Stasis after queued commands (a playing prompt
    /// finishes first), then runs the dialplan from the given or next priority.
    pub fn continue_in_dialplan(
        &mut self,
        box_index: BoxIndex,
        id: &str,
        context: Option<String>,
        exten: Option<String>,
        priority: Option<i64>,
    ) -> Result<(), AriError> {
        let channel = self.in_stasis(box_index, id)?;
        self.enqueue_control(&channel, ControlCommand::Continue { context, exten, priority })
    }

    /// `POST /channels` (originate).
    pub fn originate(&mut self, box_index: BoxIndex, request: &OriginateParams) -> Result<Channel, AriError> {
        let (technology, resource) = request
            .endpoint
            .split_once('/')
            .filter(|(technology, resource)| !technology.is_empty() && !resource.is_empty())
            .ok_or_else(|| AriError::BadRequest { message: "Invalid endpoint specified".into() })?;
        if request.app.is_some() == request.extension.is_some() {
            return Err(AriError::BadRequest {
                message: "Originate with 'app' or 'extension': one of them is required, not both".into(),
            });
        }
        if let Some(app) = &request.app {
            if !self.pbx(box_index)?.applications.contains(app) {
                return Err(AriError::BadRequest { message: format!("Application '{app}' is not registered") });
            }
        }
        let caller = request.caller_id.as_deref().map(parse_caller_id).unwrap_or_default();
        let timeout_s = match request.timeout_s {
            Some(timeout) if timeout > 0 => timeout as u64,
            Some(-1) => u64::MAX / 2_000,
            _ => RING_TIMEOUT_S_DEFAULT,
        };
        // The answer is the channel as created, before any dialing progress (as recorded).
        match technology {
            "Local" => self.originate_local(box_index, request, resource, caller),
            _ => self.originate_technology(box_index, request, technology, resource, caller, timeout_s),
        }
    }

    /// `POST /channels/create`: the channel enters Stasis at once; `dial` rings it. A `Local`
    /// endpoint makes both halves, the first (the given `channelId`) in Stasis, the second
    /// (`X;2`) down and never run; dialing such a channel is not modelled (refused). Hanging
    /// up either half hangs up the other.
    pub fn create_channel(&mut self, box_index: BoxIndex, request: &OriginateParams) -> Result<Channel, AriError> {
        let app = request.app.clone().ok_or_else(|| AriError::BadRequest { message: "app is required".into() })?;
        if !self.pbx(box_index)?.applications.contains(&app) {
            return Err(AriError::BadRequest { message: format!("Application '{app}' is not registered") });
        }
        let (technology, resource) = request
            .endpoint
            .split_once('/')
            .filter(|(technology, resource)| !technology.is_empty() && !resource.is_empty())
            .ok_or_else(|| AriError::BadRequest { message: "Invalid endpoint specified".into() })?;
        if technology == "Local" {
            return self.create_local_channel(box_index, request, resource, app);
        }
        let caller = request.caller_id.as_deref().map(parse_caller_id).unwrap_or_default();
        let trunk = self.find_trunk(box_index, technology, resource);
        let (name_resource, role) = match trunk {
            Some((route, _)) => (route.trunk, ChannelRole::Trunk),
            None => {
                let behaviour = self.boxes[box_index.0].phones.get(resource).cloned().unwrap_or_default();
                (resource.to_string(), ChannelRole::Phone { resource: resource.to_string(), behaviour })
            }
        };
        let name = self.technology_channel_name(box_index, technology, &name_resource);
        let location = origin_location();
        let channel = self.create_channel_record(
            box_index,
            request.channel_id.as_ref(),
            name,
            ChannelState::Down,
            caller,
            location,
            role,
        )?;
        let record = self.channel_mut(&channel).expect("created");
        record.originate_subscribers.insert(app.clone());
        record.variables.extend(request.variables.clone());
        record.dial_resource = Some(resource.to_string());
        self.enter_stasis(&channel, app, request.app_args.clone());
        Ok(self.snapshot(&channel).expect("created"))
    }

    /// `POST /channels/create` of a `Local/exten@context` endpoint: both halves, not dialed.
    fn create_local_channel(
        &mut self,
        box_index: BoxIndex,
        request: &OriginateParams,
        resource: &str,
        app: String,
    ) -> Result<Channel, AriError> {
        let caller = request.caller_id.as_deref().map(parse_caller_id).unwrap_or_default();
        let location = super::dialing::local_location(resource, "", "");
        let second = (ChannelState::Down, location.clone());
        let (first, second) = self.create_local_pair(box_index, request, resource, caller, location, second)?;
        for channel in [&first, &second] {
            self.channel_mut(channel).expect("created").originate_subscribers.insert(app.clone());
        }
        self.channel_mut(&first).expect("created").variables.extend(request.variables.clone());
        self.enter_stasis(&first, app, request.app_args.clone());
        Ok(self.snapshot(&first).expect("created"))
    }

    /// `POST /channels/{id}/dial` for a channel made with `create`.
    pub fn dial(&mut self, box_index: BoxIndex, id: &str, timeout_s: u64) -> Result<(), AriError> {
        let channel = self.in_stasis(box_index, id)?;
        let record = self.channel(&channel).expect("exists");
        if record.dialing.is_some() || record.snapshot.state != ChannelState::Down {
            return Err(AriError::Conflict { message: "Channel is already dialing or up".into() });
        }
        let resource = record
            .dial_resource
            .clone()
            .ok_or_else(|| AriError::Conflict { message: "Channel was not created for dialing".into() })?;
        let caller = record.snapshot.caller.clone();
        let timeout_s = if timeout_s == 0 { u64::MAX / 2_000 } else { timeout_s };
        self.schedule(ORIGINATE_DIAL_DELAY_MS, Timer::StartDial { channel, dialstring: resource, timeout_s, caller });
        Ok(())
    }

    pub fn list_applications(&self, box_index: BoxIndex) -> Result<Vec<lineup_ari::Application>, AriError> {
        let names: Vec<String> = self.pbx(box_index)?.applications.iter().cloned().collect();
        names.iter().map(|name| self.get_application(box_index, name)).collect()
    }

    pub fn get_application(&self, box_index: BoxIndex, name: &str) -> Result<lineup_ari::Application, AriError> {
        let pbx = self.pbx(box_index)?;
        if !pbx.applications.contains(name) {
            return Err(not_found("Application"));
        }
        let channel_ids = pbx
            .channels
            .values()
            .filter(|record| record.stasis_app.as_deref() == Some(name) || record.originate_subscribers.contains(name))
            .map(|record| record.snapshot.id.to_string())
            .collect();
        let bridge_ids = pbx
            .bridges
            .values()
            .filter(|record| record.subscribers.contains(name))
            .map(|record| record.snapshot.id.to_string())
            .collect();
        Ok(lineup_ari::Application {
            name: name.to_string(),
            channel_ids,
            bridge_ids,
            endpoint_ids: vec![],
            device_names: vec![],
            events_allowed: vec![],
            events_disallowed: vec![],
        })
    }
}

/// Where a channel created over ARI (originated, or a snoop) starts: Asterisk's `default,s,1`.
pub(super) fn origin_location() -> DialplanLocation {
    DialplanLocation {
        context: "default".into(),
        exten: "s".into(),
        priority: 1,
        app_name: String::new(),
        app_data: String::new(),
    }
}
