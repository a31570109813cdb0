//! `Ari` over a `LiveWorld` with no sockets: site control and the simulator can run against
//! the stand-in through the same trait as against a real Asterisk, and under tokio's paused
//! clock (`start_paused`) the world's timers run in virtual time.

use crate::server::LiveWorld;
use lineup_ari::events::{EventStreamItem, EventStreamStats, EVENT_BUFFER_CAPACITY_EVENTS};
use lineup_ari::{
    Application, ApplicationName, Ari, AriError, AriEvents, Bridge, BridgeId, Channel, ChannelId, ContinueTarget,
    CreateBridgeRequest, CreateChannelRequest, DialRequest, EventDeduplicator, HangupReason, Media, OriginateRequest,
    OriginateTarget, Playback, PlaybackId, SnoopRequest,
};
use lineup_pbx_sim::world::{BoxIndex, OriginateParams, SnoopParams};
use std::sync::Arc;
use tokio::sync::mpsc;

/// One box of a `LiveWorld`, as an `Ari`.
#[derive(Clone, Debug)]
pub struct InMemoryAri {
    live: Arc<LiveWorld>,
    box_index: BoxIndex,
}

impl InMemoryAri {
    pub fn new(live: Arc<LiveWorld>, box_index: BoxIndex) -> InMemoryAri {
        InMemoryAri { live, box_index }
    }

    /// The events of `applications`, de-duplicated as the WebSocket client does. Taking an
    /// application over from another consumer works as with Asterisk's WebSockets.
    pub fn events(&self, applications: &[ApplicationName]) -> Result<AriEvents, AriError> {
        let names = applications.iter().map(|name| name.to_string()).collect();
        let (subscription, mut source) = self
            .live
            .subscribe(self.box_index, names)
            .map_err(|status| AriError::WebSocket(format!("stand-in refused the subscription: {status}")))?;
        let (sender, receiver) = mpsc::channel(EVENT_BUFFER_CAPACITY_EVENTS);
        let stats = Arc::new(EventStreamStats::default());
        let forwarder_stats = Arc::clone(&stats);
        let live = Arc::clone(&self.live);
        tokio::spawn(async move {
            let connection_serial = forwarder_stats.record_connection();
            if sender.send(EventStreamItem::Connected { connection_serial }).await.is_err() {
                live.unsubscribe(subscription);
                return;
            }
            let mut dedup = EventDeduplicator::new();
            while let Some(event) = source.recv().await {
                if !dedup.admit(&event) {
                    forwarder_stats.record_duplicate_event();
                    continue;
                }
                if sender.send(EventStreamItem::Event(event)).await.is_err() {
                    break;
                }
            }
            live.unsubscribe(subscription);
            let reason = "stand-in dropped the subscription".to_string();
            let _ = sender.send(EventStreamItem::Disconnected { reason }).await;
        });
        Ok(AriEvents::from_receiver(receiver, stats))
    }

    fn originate_params(
        endpoint: String,
        target: Option<&OriginateTarget>,
        app: Option<&ApplicationName>,
        app_args: &[String],
    ) -> OriginateParams {
        let mut params = OriginateParams { endpoint, app_args: app_args.to_vec(), ..OriginateParams::default() };
        match target {
            Some(OriginateTarget::Application { app, app_args }) => {
                params.app = Some(app.to_string());
                params.app_args = app_args.clone();
            }
            Some(OriginateTarget::Dialplan { context, extension, priority }) => {
                params.context = Some(context.clone());
                params.extension = Some(extension.clone());
                params.priority = Some(*priority);
            }
            None => params.app = app.map(ApplicationName::to_string),
        }
        params
    }
}

fn strings(ids: &[ChannelId]) -> Vec<String> {
    ids.iter().map(ChannelId::to_string).collect()
}

impl Ari for InMemoryAri {
    fn subscribe_events(&self, applications: &[ApplicationName]) -> Result<AriEvents, AriError> {
        self.events(applications)
    }

    async fn answer(&self, channel: &ChannelId) -> Result<(), AriError> {
        self.live.with_world(|world| world.answer(self.box_index, channel.as_str()))
    }

    async fn hangup(&self, channel: &ChannelId, reason: HangupReason) -> Result<(), AriError> {
        self.live.with_world(|world| world.hangup_channel(self.box_index, channel.as_str(), reason.cause_code()))
    }

    async fn ring(&self, channel: &ChannelId) -> Result<(), AriError> {
        self.live.with_world(|world| world.ring(self.box_index, channel.as_str()))
    }

    async fn play(
        &self,
        channel: &ChannelId,
        playback: Option<&PlaybackId>,
        media: &[Media],
    ) -> Result<Playback, AriError> {
        let media: Vec<String> = media.iter().map(Media::to_string).collect();
        self.live.with_world(|world| world.play(self.box_index, channel.as_str(), playback, &media))
    }

    async fn stop_playback(&self, playback: &PlaybackId) -> Result<(), AriError> {
        self.live.with_world(|world| world.stop_playback(self.box_index, playback.as_str()))
    }

    async fn start_moh(&self, channel: &ChannelId, class: Option<&str>) -> Result<(), AriError> {
        self.live.with_world(|world| world.start_moh(self.box_index, channel.as_str(), class))
    }

    async fn stop_moh(&self, channel: &ChannelId) -> Result<(), AriError> {
        self.live.with_world(|world| world.stop_moh(self.box_index, channel.as_str()))
    }

    async fn send_dtmf(&self, channel: &ChannelId, digits: &str) -> Result<(), AriError> {
        self.live.with_world(|world| world.send_dtmf(self.box_index, channel.as_str(), digits))
    }

    async fn snoop(&self, request: &SnoopRequest) -> Result<Channel, AriError> {
        let params = SnoopParams {
            app: request.app.to_string(),
            app_args: request.app_args.clone(),
            spy: request.spy,
            whisper: request.whisper,
            snoop_id: request.snoop_id.clone(),
        };
        self.live.with_world(|world| world.snoop(self.box_index, request.channel.as_str(), &params))
    }

    async fn originate(&self, request: &OriginateRequest) -> Result<Channel, AriError> {
        let mut params = InMemoryAri::originate_params(request.endpoint.to_string(), Some(&request.target), None, &[]);
        params.channel_id = request.channel_id.clone();
        params.other_channel_id = request.other_channel_id.clone();
        params.caller_id = request.caller_id.clone();
        params.timeout_s = request.timeout_s.map(i64::from);
        params.variables = request.variables.clone();
        self.live.with_world(|world| world.originate(self.box_index, &params))
    }

    async fn create_channel(&self, request: &CreateChannelRequest) -> Result<Channel, AriError> {
        let mut params =
            InMemoryAri::originate_params(request.endpoint.to_string(), None, Some(&request.app), &request.app_args);
        params.channel_id = request.channel_id.clone();
        params.other_channel_id = request.other_channel_id.clone();
        params.variables = request.variables.clone();
        self.live.with_world(|world| world.create_channel(self.box_index, &params))
    }

    async fn dial(&self, channel: &ChannelId, request: &DialRequest) -> Result<(), AriError> {
        self.live.with_world(|world| world.dial(self.box_index, channel.as_str(), u64::from(request.timeout_s)))
    }

    async fn continue_in_dialplan(
        &self,
        channel: &ChannelId,
        target: &ContinueTarget,
        variables: &[(String, String)],
    ) -> Result<(), AriError> {
        self.live.with_world(|world| {
            for (name, value) in variables {
                world.set_variable(self.box_index, channel.as_str(), name, value)?;
            }
            world.continue_in_dialplan(
                self.box_index,
                channel.as_str(),
                target.context.clone(),
                target.extension.clone(),
                target.priority,
            )
        })
    }

    async fn get_variable(&self, channel: &ChannelId, name: &str) -> Result<String, AriError> {
        self.live.with_world(|world| world.get_variable(self.box_index, channel.as_str(), name))
    }

    async fn asterisk_variable(&self, name: &str) -> Result<String, AriError> {
        self.live.with_world(|world| world.asterisk_variable(self.box_index, name))
    }

    async fn set_asterisk_variable(&self, name: &str, value: &str) -> Result<(), AriError> {
        self.live.with_world(|world| world.set_asterisk_variable(self.box_index, name, value))
    }

    async fn set_variable(&self, channel: &ChannelId, name: &str, value: &str) -> Result<(), AriError> {
        self.live.with_world(|world| world.set_variable(self.box_index, channel.as_str(), name, value))
    }

    async fn get_channel(&self, channel: &ChannelId) -> Result<Channel, AriError> {
        self.live.with_world(|world| world.get_channel(self.box_index, channel.as_str()))
    }

    async fn list_channels(&self) -> Result<Vec<Channel>, AriError> {
        self.live.with_world(|world| world.list_channels(self.box_index))
    }

    async fn create_bridge(&self, request: &CreateBridgeRequest) -> Result<Bridge, AriError> {
        self.live.with_world(|world| {
            world.create_bridge(
                self.box_index,
                Some(request.bridge_type.as_str()),
                Some(request.bridge_id.as_str()),
                request.name.as_deref(),
            )
        })
    }

    async fn add_channels(&self, bridge: &BridgeId, channels: &[ChannelId]) -> Result<(), AriError> {
        self.live.with_world(|world| world.add_channels(self.box_index, bridge.as_str(), &strings(channels)))
    }

    async fn remove_channels(&self, bridge: &BridgeId, channels: &[ChannelId]) -> Result<(), AriError> {
        self.live.with_world(|world| world.remove_channels(self.box_index, bridge.as_str(), &strings(channels)))
    }

    async fn destroy_bridge(&self, bridge: &BridgeId) -> Result<(), AriError> {
        self.live.with_world(|world| world.destroy_bridge(self.box_index, bridge.as_str()))
    }

    async fn get_bridge(&self, bridge: &BridgeId) -> Result<Bridge, AriError> {
        self.live.with_world(|world| world.get_bridge(self.box_index, bridge.as_str()))
    }

    async fn list_bridges(&self) -> Result<Vec<Bridge>, AriError> {
        self.live.with_world(|world| world.list_bridges(self.box_index))
    }

    async fn get_application(&self, application: &ApplicationName) -> Result<Application, AriError> {
        self.live.with_world(|world| world.get_application(self.box_index, application.as_str()))
    }
}
